from agent.state import AgentFacts, StatePolicy, build_state
from agent.vehicle.gpsd import GpsdVehicle
from protocol import CameraStatus, Health, Position, RuntimeConfig
from protocol.models import FixKind
from tests.unit.test_codec import state

CONFIG = RuntimeConfig(state_heartbeat_s=30, position_min_interval_s=5, position_min_distance_m=10)


def at(lat: float) -> Position:
    return Position(lat=lat, lon=-74.0, fix_ts=1.0)


def test_first_state_is_due_then_heartbeat() -> None:
    policy = StatePolicy(CONFIG)
    s = state()
    assert policy.due(0.0, s)
    policy.published(0.0, s)
    assert not policy.due(29.0, s)
    assert policy.due(30.0, s)


def test_significant_change_is_due_at_once() -> None:
    policy = StatePolicy(CONFIG)
    policy.published(0.0, state())
    assert policy.due(1.0, state(camera=CameraStatus(connected=False)))
    assert policy.due(1.0, state(battery_pct=48.0))
    assert not policy.due(1.0, state(battery_pct=50.4, uptime_s=99.0))
    assert policy.due(1.0, state(fix=FixKind.NO_FIX))


def test_a_gateway_without_gps_reports_no_position_no_battery_and_says_why() -> None:
    device, events = GpsdVehicle().poll(100.0)
    facts = AgentFacts(
        version="1",
        uptime_s=1.0,
        streaming=False,
        recording=False,
        storage_full=False,
        health=Health(outbox_rows=0, outbox_dropped=0, mqtt_connects=0, commands_rejected=0),
        config=CONFIG,
        fix=GpsdVehicle().fix_kind(100.0),
    )
    unit_state = build_state(device, facts)
    assert events == []
    assert (unit_state.position, unit_state.battery_pct) == (None, None)
    assert unit_state.fix is FixKind.NO_GPS


def test_position_is_rate_limited_by_time_and_distance() -> None:
    policy = StatePolicy(CONFIG)
    policy.published(0.0, state(position=at(40.0)))
    moved = state(position=at(40.001))  # ~111 m
    assert not policy.due(4.0, moved)
    assert policy.due(5.0, moved)
    assert not policy.due(6.0, state(position=at(40.00001)))  # ~1 m: not news


def test_forget_forces_the_next_publish() -> None:
    policy = StatePolicy(CONFIG)
    policy.published(0.0, state())
    policy.forget()
    assert policy.due(0.1, state())
