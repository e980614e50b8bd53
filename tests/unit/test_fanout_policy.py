from __future__ import annotations

import pytest
from pydantic import ValidationError

from central.fanout_policy import (
    AutoSharePolicy,
    Candidate,
    GroupRecordingPolicy,
    Recipient,
    select_share_recipients,
)
from central.nearby import NearbyIndex
from protocol.geo import bearing_deg, haversine_m

SCENE = (40.7100, -74.0000)
# North of the scene by about 111 m per 0.001 degree.
PLACES = {
    "near": (40.7110, -74.0000),  # ~111 m north
    "nearer": (40.7105, -74.0000),  # ~56 m north
    "east": (40.7100, -73.9900),  # ~843 m east
    "far": (40.8000, -74.0000),  # ~10 km north
    "source": (40.7100, -74.0000),  # the unit whose video is shared, at the scene
}
READY = Candidate(online=True, patrol_login=True, fresh=True)


def index_of(places: dict[str, tuple[float, float]]) -> NearbyIndex:
    index = NearbyIndex()
    for unit_id, (lat, lon) in places.items():
        index.update(unit_id, lat, lon)
    return index


def ids(recipients: list[Recipient]) -> list[str]:
    return [r.unit_id for r in recipients]


def share(
    candidates: dict[str, Candidate],
    radius_m: float = 2_000,
    chosen: tuple[str, ...] = (),
    exclude: tuple[str, ...] = ("source",),
    places: dict[str, tuple[float, float]] = PLACES,
) -> list[Recipient]:
    return select_share_recipients(
        index_of(places), candidates, SCENE, radius_m, chosen=chosen, exclude=exclude
    )


def test_ready_units_inside_the_radius_nearest_first_with_their_way_to_the_scene() -> None:
    got = share({u: READY for u in PLACES})
    assert ids(got) == ["nearer", "near", "east"]
    nearer = got[0]
    assert nearer.distance_m == pytest.approx(haversine_m(*SCENE, *PLACES["nearer"]))
    assert nearer.bearing_from_unit_deg == pytest.approx(180.0)  # it heads south
    assert got[2].bearing_from_unit_deg == pytest.approx(bearing_deg(*PLACES["east"], *SCENE))
    assert 265 < (got[2].bearing_from_unit_deg or 0) < 275  # it heads west


def test_outside_the_radius_is_left_out() -> None:
    assert ids(share({u: READY for u in PLACES}, radius_m=100)) == ["nearer"]


@pytest.mark.parametrize(
    "unready",
    [
        Candidate(online=False, patrol_login=True, fresh=True),
        Candidate(online=True, patrol_login=False, fresh=True),
        Candidate(online=True, patrol_login=True, fresh=False),
    ],
    ids=["offline", "no patrol login", "stale fix"],
)
def test_a_unit_near_but_not_ready_is_left_out(unready: Candidate) -> None:
    assert ids(share({"near": unready, "east": READY})) == ["east"]


def test_units_the_center_does_not_know_are_left_out() -> None:
    assert ids(share({"east": READY})) == ["east"]


def test_a_chosen_unit_with_a_patrol_login_gets_it_wherever_and_however_it_is() -> None:
    stale_offline = Candidate(online=False, patrol_login=True, fresh=False)
    got = share({"near": READY, "far": stale_offline}, chosen=("far",))
    assert ids(got) == ["near", "far"]
    assert got[1].distance_m == pytest.approx(10_008, abs=5)
    assert got[1].bearing_from_unit_deg == pytest.approx(180.0)


def test_a_chosen_unit_without_a_position_comes_last_without_distance() -> None:
    got = share({"near": READY, "parked": READY, "a-parked": READY}, chosen=("parked", "a-parked"))
    assert ids(got) == ["near", "a-parked", "parked"]
    assert got[0].distance_m == pytest.approx(111.2, abs=0.5)
    assert got[1:] == [Recipient("a-parked", None, None), Recipient("parked", None, None)]


def test_a_chosen_unit_without_a_patrol_login_or_unknown_is_left_out() -> None:
    no_login = Candidate(online=True, patrol_login=False, fresh=True)
    assert ids(share({"far": no_login}, chosen=("far", "ghost"))) == []


def test_a_chosen_unit_inside_the_radius_appears_once() -> None:
    assert ids(share({"near": READY}, chosen=("near", "near"))) == ["near"]


def test_the_excluded_unit_never_gets_it_even_when_chosen() -> None:
    candidates = {u: READY for u in PLACES}
    assert "source" in ids(share(candidates, exclude=()))
    assert "source" not in ids(share(candidates, chosen=("source",)))
    assert "near" not in ids(share(candidates, chosen=("near",), exclude=("source", "near")))


def test_equal_distances_order_by_unit_id() -> None:
    places = {"c": (40.711, -74.0), "a": (40.711, -74.0), "b": (40.7105, -74.0)}
    assert ids(share({u: READY for u in places}, places=places)) == ["b", "a", "c"]


ONLINE = frozenset(PLACES)


def test_group_recording_is_off_by_default() -> None:
    assert GroupRecordingPolicy().targets("source", "trigger.siren", index_of(PLACES), ONLINE) == []


def test_group_recording_takes_online_units_near_the_trigger_nearest_first() -> None:
    policy = GroupRecordingPolicy(enabled=True)
    index = index_of(PLACES)
    assert policy.targets("source", "trigger.siren", index, ONLINE) == ["nearer", "near"]
    assert policy.targets("source", "trigger.siren", index, {"near", "east"}) == ["near"]


def test_group_recording_per_trigger_radius_and_off() -> None:
    policy = GroupRecordingPolicy(
        enabled=True, per_trigger={"trigger.gunshot": 2_000, "trigger.door": None}
    )
    index = index_of(PLACES)
    gunshot = policy.targets("source", "trigger.gunshot", index, ONLINE)
    assert gunshot == ["nearer", "near", "east"]
    assert policy.targets("source", "trigger.door", index, ONLINE) == []
    assert policy.targets("source", "trigger.lightbar", index, ONLINE) == ["nearer", "near"]


def test_group_recording_needs_the_triggering_units_position() -> None:
    policy = GroupRecordingPolicy(enabled=True)
    assert policy.targets("parked", "trigger.siren", index_of(PLACES), ONLINE) == []


def test_group_recording_refuses_bad_settings() -> None:
    for bad in ({"radius_m": -1}, {"per_trigger": {"x": float("nan")}}, {"radius": 5}):
        with pytest.raises(ValidationError):
            GroupRecordingPolicy.model_validate(bad)


def test_auto_share_applies_to_its_triggers_when_enabled() -> None:
    assert not AutoSharePolicy().applies("trigger.holster_draw")
    policy = AutoSharePolicy(enabled=True)
    assert policy.applies("trigger.holster_draw")
    assert not policy.applies("trigger.siren")
    assert (policy.radius_m, policy.ttl_s) == (2_000, 3_600)
    custom = AutoSharePolicy.model_validate({"enabled": True, "triggers": ["trigger.siren"]})
    assert custom.applies("trigger.siren") and not custom.applies("trigger.holster_draw")


def test_auto_share_refuses_bad_settings() -> None:
    for bad in ({"ttl_s": 0}, {"radius_m": float("inf")}, {"trigger": "x"}):
        with pytest.raises(ValidationError):
            AutoSharePolicy.model_validate(bad)
