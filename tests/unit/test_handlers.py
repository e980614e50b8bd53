"""The command table: typed arguments in, typed results out, refusals as `failed`."""

from __future__ import annotations

from pathlib import Path

import structlog

from agent.evidence.manager import EvidenceManager
from agent.handlers import run_command
from agent.store import Meta, open_store
from agent.stream_keeper import StreamKeeper
from protocol import Command, CommandStatus, RuntimeConfig
from runtime.mqtt import NotConnected
from tests.helpers import agent_settings

LOG = structlog.get_logger("test")


class Unit:
    """A unit without MQTT, camera or evidence: what the handlers see of one."""

    def __init__(self, data_dir: Path) -> None:
        settings = agent_settings("u1", "mqtt://127.0.0.1:1", data_dir)
        self.streams = StreamKeeper(
            settings, Meta(open_store(data_dir / "a.db")), lambda: None, print
        )
        self.config = RuntimeConfig()
        self.sid = 7
        self.connected = True
        self.published = 0

    def now(self) -> float:
        return 1000.0

    def evidence_or_none(self) -> EvidenceManager | None:
        return None

    def rebirth(self) -> None:
        if not self.connected:
            raise NotConnected("offline")
        self.published += 1

    def camera_record(self, _on: bool) -> bool:
        return False

    def save_config(self, config: RuntimeConfig) -> None:
        self.config = config

    def state_changed(self) -> None:
        self.published += 1


def command(name: str, **args: object) -> Command:
    return Command.model_validate(
        {"name": name, "cmd_id": "c1", "reply_to": "r", "expires_at": 2000.0, "args": args}
    )


async def test_results_are_the_typed_models_on_the_wire(tmp_path: Path) -> None:
    unit = Unit(tmp_path)
    ping = await run_command(unit, command("ping"), LOG)
    assert (ping.status, ping.data) == (CommandStatus.DONE, {"pong": 1000.0, "sid": 7})
    stop = await run_command(unit, command("stream.stop"), LOG)
    assert stop.data == {"stopped": None}
    rebirth = await run_command(unit, command("rebirth"), LOG)
    assert rebirth.data == {"sid": 7} and unit.published == 1


async def test_config_set_changes_only_what_it_names(tmp_path: Path) -> None:
    unit = Unit(tmp_path)
    done = await run_command(unit, command("config.set", state_heartbeat_s=7), LOG)
    assert done.status is CommandStatus.DONE
    assert unit.config == RuntimeConfig(state_heartbeat_s=7)
    bad = await run_command(unit, command("config.set", state_heartbeat_s=-1), LOG)
    assert bad.status is CommandStatus.FAILED and bad.detail.startswith("state_heartbeat_s")
    assert unit.config.state_heartbeat_s == 7


async def test_arguments_that_do_not_fit_and_refusals_answer_failed(tmp_path: Path) -> None:
    unit = Unit(tmp_path)
    extra = await run_command(unit, command("ping", surely_not=1), LOG)
    assert extra.status is CommandStatus.FAILED and extra.detail.startswith("ping: surely_not")
    start = await run_command(unit, command("stream.start", stream_id="s1"), LOG)
    assert start.status is CommandStatus.FAILED and start.detail.startswith("stream.start: token")
    recording = await run_command(unit, command("recording.start"), LOG)
    assert recording.detail == "evidence recording is disabled on this unit"
    unit.connected = False
    offline = await run_command(unit, command("rebirth"), LOG)
    assert (offline.status, offline.detail) == (CommandStatus.FAILED, "not connected")
