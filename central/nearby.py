"""Which units are near a scene (pure: no I/O, no clock).

`NearbyIndex` keeps each unit's last position in a grid of cells of equal size in degrees.
A query visits only the cells that can hold a point within the radius: the rows its latitude
band covers and, per row, the columns of the exact longitude reach of a spherical cap, which
widens as cos(latitude) shrinks and wraps at the antimeridian. A cap that holds a pole, or one
whose reach spans every longitude, visits every occupied cell of its rows: slow, but correct.
Every candidate is then measured with the same haversine as a brute-force scan, so the answer
is exactly the brute-force one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from protocol.geo import EARTH_RADIUS_M

# One kilometre of latitude, in degrees.
DEFAULT_CELL_DEG = 1000.0 / (EARTH_RADIUS_M * math.pi / 180.0)
# Widens every search by ~6 mm of arc so that rounding in the reach never hides a point that
# the haversine puts exactly on the radius.
_SEARCH_MARGIN_RAD = 1e-9


def _check_position(lat: float, lon: float) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"not a position: lat {lat}, lon {lon}")


# lat, lon, and lat in radians with its cosine, kept so that a query does not redo them.
Fix = tuple[float, float, float, float]
Cell = dict[str, Fix]


class NearbyIndex:
    def __init__(self, cell_deg: float = DEFAULT_CELL_DEG) -> None:
        if not (math.isfinite(cell_deg) and 0 < cell_deg <= 180):
            raise ValueError(f"cell size must be in (0, 180] degrees, not {cell_deg}")
        self._cell_deg = cell_deg
        self._columns = math.ceil(360.0 / cell_deg)
        # row -> column -> unit id -> fix; empty cells and rows are dropped.
        self._rows: dict[int, dict[int, Cell]] = {}
        self._where: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._where

    def position(self, unit_id: str) -> tuple[float, float] | None:
        where = self._where.get(unit_id)
        if where is None:
            return None
        row, column = where
        lat, lon, _, _ = self._rows[row][column][unit_id]
        return lat, lon

    def update(self, unit_id: str, lat: float, lon: float) -> None:
        """Place the unit at a new position (adds it when it is new)."""
        _check_position(lat, lon)
        where = (self._row(lat), self._column(lon))
        old = self._where.get(unit_id)
        if old != where:
            if old is not None:
                self._drop(unit_id, old)
            self._where[unit_id] = where
        row, column = where
        lat_rad = math.radians(lat)
        fix = (lat, lon, lat_rad, math.cos(lat_rad))
        self._rows.setdefault(row, {}).setdefault(column, {})[unit_id] = fix

    def remove(self, unit_id: str) -> None:
        """Forget the unit; nothing happens when it is not indexed."""
        where = self._where.pop(unit_id, None)
        if where is not None:
            self._drop(unit_id, where)

    def within(self, lat: float, lon: float, radius_m: float) -> list[tuple[str, float]]:
        """Units at most `radius_m` from (lat, lon) with their distance in metres, nearest
        first (ties by unit id)."""
        _check_position(lat, lon)
        if not (math.isfinite(radius_m) and radius_m >= 0):
            raise ValueError(f"radius must be a finite number of metres >= 0, not {radius_m}")
        reach = radius_m / EARTH_RADIUS_M + _SEARCH_MARGIN_RAD
        p1 = math.radians(lat)
        cos_p1 = math.cos(p1)
        # A haversine term above this is beyond the reach: no square root or arcsine for it.
        term_limit = math.sin(reach / 2) ** 2 if reach < math.pi else 2.0
        found: list[tuple[str, float]] = []
        for cell in self._cells_near(lat, lon, reach):
            for unit_id, (_, unit_lon, p2, cos_p2) in cell.items():
                if abs(p2 - p1) > reach:  # in a row the reach touches, yet too far north/south
                    continue
                # haversine_m's operations in its order: distances match a scan exactly.
                dl = math.radians(unit_lon - lon)
                term = math.sin((p2 - p1) / 2) ** 2 + cos_p1 * cos_p2 * math.sin(dl / 2) ** 2
                if term > term_limit:
                    continue
                distance = 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(term)))
                if distance <= radius_m:
                    found.append((unit_id, distance))
        found.sort(key=lambda hit: (hit[1], hit[0]))
        return found

    def _cells_near(self, lat: float, lon: float, reach: float) -> Iterator[Cell]:
        """The occupied cells a cap of angular radius `reach` at (lat, lon) touches."""
        columns = self._column_span(lat, lon, reach)
        reach_deg = math.degrees(reach)
        south, north = max(-90.0, lat - reach_deg), min(90.0, lat + reach_deg)
        for row in range(self._row(south), self._row(north) + 1):
            cells = self._rows.get(row)
            if cells is None:
                continue
            if columns is None:
                yield from cells.values()
            elif len(columns) <= len(cells):
                yield from (cell for column in columns if (cell := cells.get(column)) is not None)
            else:  # a sparse row: cheaper to walk its cells than the span
                yield from (cell for column, cell in cells.items() if column in columns)

    def _row(self, lat: float) -> int:
        return math.floor(lat / self._cell_deg)

    def _column(self, lon: float) -> int:
        # lon 180 (the antimeridian again) falls in the last column, which may be narrower.
        return min(math.floor((lon + 180.0) / self._cell_deg), self._columns - 1)

    def _column_span(self, lat: float, lon: float, reach: float) -> range | set[int] | None:
        """The columns a cap of angular radius `reach` at (lat, lon) touches; None for all."""
        if abs(lat) + math.degrees(reach) >= 90.0:
            return None  # the cap holds a pole: every longitude is near
        # The widest longitude of a cap that misses the poles: asin(sin r / cos lat).
        ratio = math.sin(reach) / math.cos(math.radians(lat))
        if ratio >= 1.0 - 1e-9:
            return None
        half = math.degrees(math.asin(ratio))
        west, east = lon - half, lon + half
        if west > -180.0 and east < 180.0:
            return range(self._column(west), self._column(east) + 1)
        if west <= -180.0:
            west += 360.0
        else:
            east -= 360.0
        # The span crosses the antimeridian: from west to 180 and from -180 to east.
        return {
            *range(self._column(west), self._columns),
            *range(0, self._column(east) + 1),
        }

    def _drop(self, unit_id: str, where: tuple[int, int]) -> None:
        row, column = where
        cells = self._rows[row]
        cell = cells[column]
        del cell[unit_id]
        if not cell:
            del cells[column]
            if not cells:
                del self._rows[row]
