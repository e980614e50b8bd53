from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.nearby import DEFAULT_CELL_DEG, NearbyIndex
from protocol.geo import bearing_deg, haversine_m
from protocol.models import Position

Point = tuple[float, float]

# Places where a grid goes wrong first: the poles, the antimeridian, both at once, a city.
ANCHORS: list[Point] = [
    (0.0, 0.0),
    (40.71, -74.0),
    (89.9, 0.0),
    (90.0, 0.0),
    (-89.95, 179.9),
    (10.0, 180.0),
    (-60.0, -180.0),
    (70.0, 179.99),
]


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


@st.composite
def points(draw: st.DrawFn) -> Point:
    if draw(st.booleans()):
        anchor = draw(st.sampled_from(ANCHORS))
    else:
        anchor = (draw(st.floats(-90, 90)), draw(st.floats(-180, 180)))
    lat = min(90.0, max(-90.0, anchor[0] + draw(st.floats(-0.5, 0.5))))
    lon = _wrap(anchor[1] + draw(st.one_of(st.floats(-1.0, 1.0), st.floats(-180.0, 180.0))))
    if abs(lon) > 179.9:
        lon = draw(st.sampled_from([lon, 180.0, -180.0]))
    return lat, lon


def brute_force(units: dict[str, Point], at: Point, radius_m: float) -> list[tuple[str, float]]:
    hits = [(u, haversine_m(*at, *p)) for u, p in units.items()]
    return sorted(((u, d) for u, d in hits if d <= radius_m), key=lambda hit: (hit[1], hit[0]))


def assert_same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [u for u, _ in got] == [u for u, _ in expected]
    assert [d for _, d in got] == pytest.approx([d for _, d in expected], rel=1e-6)


# Mostly what a share asks (up to 50 km), sometimes up to the far side of the Earth.
radii = st.one_of(st.floats(0, 50_000), st.floats(0, 50_000), st.floats(0, 2.1e7))
unit_ids = st.sampled_from([f"u{n}" for n in range(40)])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("update"), unit_ids, points()), st.tuples(st.just("remove"), unit_ids)
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=operations,
    queries=st.lists(st.tuples(points(), radii), min_size=1, max_size=8),
    cell_deg=st.sampled_from([0.001, DEFAULT_CELL_DEG, 0.05, 1.0, 7.0, 180.0]),
)
def test_within_is_exactly_brute_force(
    ops: list[tuple[str, str] | tuple[str, str, Point]],
    queries: list[tuple[Point, float]],
    cell_deg: float,
) -> None:
    index, units = NearbyIndex(cell_deg), dict[str, Point]()
    for op in ops:
        if op[0] == "update" and len(op) == 3:
            index.update(op[1], *op[2])
            units[op[1]] = op[2]
        else:
            index.remove(op[1])
            units.pop(op[1], None)
    assert len(index) == len(units)
    for unit_id, position in units.items():
        assert index.position(unit_id) == position
    for at, radius_m in queries:
        assert_same(index.within(*at, radius_m), brute_force(units, at, radius_m))
        # The query point itself as a unit's position finds it at distance 0.
        for unit_id, position in list(units.items())[:3]:
            assert (unit_id, 0.0) in index.within(*position, radius_m)


def destination(at: Point, bearing: float, distance_m: float) -> Point:
    """Where a great circle from `at` towards `bearing` ends after `distance_m`."""
    lat1, lon1, theta = math.radians(at[0]), math.radians(at[1]), math.radians(bearing)
    delta = distance_m / 6_371_000.0
    lat2 = math.asin(
        math.sin(lat1) * math.cos(delta) + math.cos(lat1) * math.sin(delta) * math.cos(theta)
    )
    lon2 = lon1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(lat1),
        math.cos(delta) - math.sin(lat1) * math.sin(lat2),
    )
    return min(90.0, max(-90.0, math.degrees(lat2))), _wrap(math.degrees(lon2))


@settings(max_examples=300, deadline=None)
@given(
    at=points(),
    radius_m=radii,
    ring=st.lists(st.tuples(st.floats(0, 360), st.floats(0.9, 1.1)), min_size=1, max_size=60),
    cell_deg=st.sampled_from([0.001, DEFAULT_CELL_DEG, 0.05, 1.0, 7.0]),
)
def test_units_on_the_rim_of_the_radius_are_found_as_brute_force_finds_them(
    at: Point, radius_m: float, ring: list[tuple[float, float]], cell_deg: float
) -> None:
    index, units = NearbyIndex(cell_deg), dict[str, Point]()
    for n, (bearing, scale) in enumerate(ring):
        units[f"u{n}"] = destination(at, bearing, radius_m * scale)
        index.update(f"u{n}", *units[f"u{n}"])
    assert_same(index.within(*at, radius_m), brute_force(units, at, radius_m))


def test_a_dense_row_is_searched_by_its_span() -> None:
    # More occupied cells in a row than the span holds: the index looks cells up by column.
    index = NearbyIndex()
    units = {f"u{n}": (40.71, -74.5 + n * 0.005) for n in range(200)}
    for unit_id, position in units.items():
        index.update(unit_id, *position)
    for lon in (-74.4, -74.0, -73.61):
        assert_same(index.within(40.71, lon, 2_000), brute_force(units, (40.71, lon), 2_000))


@pytest.mark.parametrize("lat", [0.0, 40.71, -60.0, 85.0, 89.9])
@pytest.mark.parametrize("east", [True, False])
@pytest.mark.parametrize("boundary", [-74.0, 180.0, -180.0])
def test_the_widest_point_of_the_circle_is_found_just_across_a_column_boundary(
    lat: float, east: bool, boundary: float
) -> None:
    # The circle reaches farthest in longitude at asin(sin r / cos lat), a little north of
    # east at a north latitude. Place the query so that this point lies just across the edge
    # of a column: a reach cut short by rounding or a missing wrap would not look there.
    radius_m, cell = 2_000.0, DEFAULT_CELL_DEG
    edge = boundary - (boundary + 180.0) % cell if boundary != 180.0 else 180.0
    r = radius_m * (1 - 1e-6) / 6_371_000.0
    half = math.degrees(math.asin(math.sin(r) / math.cos(math.radians(lat))))
    widest_lat = math.degrees(math.asin(math.sin(math.radians(lat)) / math.cos(r)))
    sign = 1.0 if east else -1.0
    query_lon = _wrap(edge - sign * 0.9999 * half)
    unit = (widest_lat, _wrap(query_lon + sign * half))
    assert haversine_m(lat, query_lon, *unit) <= radius_m
    index = NearbyIndex(cell)
    index.update("widest", *unit)
    assert [u for u, _ in index.within(lat, query_lon, radius_m)] == ["widest"]


@given(a=st.tuples(st.floats(-90, 90), st.floats(-180, 180)), b=points())
def test_haversine_is_the_contracts_distance(a: Point, b: Point) -> None:
    pa, pb = Position(lat=a[0], lon=a[1], fix_ts=0), Position(lat=b[0], lon=b[1], fix_ts=0)
    assert haversine_m(*a, *b) == pa.distance_m(pb)


def test_a_kilometre_of_latitude_is_the_default_cell() -> None:
    assert haversine_m(0, 0, DEFAULT_CELL_DEG, 0) == pytest.approx(1000.0)


def test_units_across_the_antimeridian_are_neighbours() -> None:
    index = NearbyIndex()
    index.update("east", 0.0, 179.999)
    index.update("west", 0.0, -179.999)
    index.update("edge", 0.0, 180.0)
    hits = dict(index.within(0.0, -180.0, 300))
    assert set(hits) == {"east", "west", "edge"}
    assert hits["edge"] == pytest.approx(0.0, abs=1e-6)
    assert hits["west"] == pytest.approx(111.2, abs=0.1)


def test_near_a_pole_every_longitude_is_searched() -> None:
    index = NearbyIndex()
    for n, lon in enumerate(range(-180, 180, 30)):
        index.update(f"u{n}", 89.995, float(lon))
    index.update("far", 89.0, 0.0)
    hits = index.within(90.0, 0.0, 1_000)
    assert len(hits) == 12
    assert all(d == pytest.approx(556.0, abs=1.0) for _, d in hits)


def test_a_radius_past_a_quarter_of_the_earth_reaches_over_the_pole() -> None:
    # sin(r) falls again past 90 degrees of arc: the reach must come from the pole, not sin r.
    index = NearbyIndex()
    index.update("over the pole", 60.0, 100.0)
    assert [u for u, _ in index.within(0.0, 0.0, 12_000_000)] == ["over the pole"]


def test_longitude_reach_widens_with_latitude() -> None:
    # 2 km east of the point is 0.018 degrees of longitude at the equator but 0.036 at 60 N.
    index = NearbyIndex()
    index.update("east", 60.0, 0.035)
    assert [u for u, _ in index.within(60.0, 0.0, 2_000)] == ["east"]
    assert index.within(0.0, 0.0, 2_000) == []


def test_moves_and_removals() -> None:
    index = NearbyIndex()
    index.update("a", 40.71, -74.0)
    index.update("a", 40.71, -74.0001)  # same cell
    index.update("b", 40.72, -74.0)
    assert [u for u, _ in index.within(40.71, -74.0, 2_000)] == ["a", "b"]
    index.update("a", 41.5, -74.0)  # drove away
    assert [u for u, _ in index.within(40.71, -74.0, 2_000)] == ["b"]
    index.remove("b")
    index.remove("b")
    index.remove("never")
    assert index.within(40.71, -74.0, 2_000) == []
    assert len(index) == 1 and "a" in index and "b" not in index
    assert index.position("b") is None


def test_nearest_first_then_by_id() -> None:
    index = NearbyIndex()
    for unit_id in ("c", "a", "b"):
        index.update(unit_id, 1.0, 1.0)
    index.update("near", 0.0, 0.0)
    assert [u for u, _ in index.within(0.0, 0.0, 200_000)] == ["near", "a", "b", "c"]


@pytest.mark.parametrize(
    ("to", "expected"),
    [((1.0, 0.0), 0.0), ((0.0, 1.0), 90.0), ((-1.0, 0.0), 180.0), ((0.0, -1.0), 270.0)],
)
def test_bearing_cardinal_directions(to: Point, expected: float) -> None:
    assert bearing_deg(0.0, 0.0, *to) == pytest.approx(expected)


def test_bearing_across_the_antimeridian_points_east() -> None:
    assert bearing_deg(0.0, 179.9, 0.0, -179.9) == pytest.approx(90.0)
    assert bearing_deg(1.0, 1.0, 1.0, 1.0) == 0.0


@given(a=points(), b=points())
def test_bearing_is_in_range(a: Point, b: Point) -> None:
    assert 0.0 <= bearing_deg(*a, *b) < 360.0


@pytest.mark.parametrize(
    ("lat", "lon"), [(91.0, 0.0), (0.0, 180.5), (math.nan, 0.0), (0.0, math.inf)]
)
def test_positions_off_the_globe_are_refused(lat: float, lon: float) -> None:
    index = NearbyIndex()
    with pytest.raises(ValueError):
        index.update("u", lat, lon)
    with pytest.raises(ValueError):
        index.within(lat, lon, 10)
    assert len(index) == 0


@pytest.mark.parametrize("radius", [-1.0, math.nan, math.inf])
def test_bad_radius_is_refused(radius: float) -> None:
    with pytest.raises(ValueError):
        NearbyIndex().within(0.0, 0.0, radius)


@pytest.mark.parametrize("cell", [0.0, -1.0, 181.0, math.nan])
def test_bad_cell_size_is_refused(cell: float) -> None:
    with pytest.raises(ValueError):
        NearbyIndex(cell)
