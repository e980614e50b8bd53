import json
import time

from agent.commands import CommandGate
from protocol import Command, CommandStatus, Envelope, Topic, encode


def gate(unit: str = "u1") -> CommandGate:
    seen: set[str] = set()

    def remember(cmd_id: str, _expires: float, _now: float) -> bool:
        if cmd_id in seen:
            return False
        seen.add(cmd_id)
        return True

    return CommandGate(unit, {"ping", "config.set"}, remember)


def payload(
    name: str = "ping",
    cmd_id: str = "c1",
    expires_in: float = 30.0,
    reply_to: str = "rtcc/v1/units/u1/res",
) -> tuple[str, bytes]:
    topic = Topic.command("u1", name)
    body = Command(name=name, cmd_id=cmd_id, reply_to=reply_to, expires_at=time.time() + expires_in)
    return str(topic), encode(topic, Envelope(sid=1, seq=1, ts=time.time(), body=body))


def test_valid_command_is_accepted_and_run() -> None:
    admission = gate().admit(*payload(), now=time.time())
    assert admission.run is not None and admission.run.name == "ping"
    assert admission.reply is not None and admission.reply.status is CommandStatus.ACCEPTED


def test_duplicate_runs_once() -> None:
    g = gate()
    assert g.admit(*payload(), now=time.time()).run is not None
    again = g.admit(*payload(), now=time.time())
    assert again.run is None and again.reply is None and again.reason == "duplicate"


def test_expired_is_rejected() -> None:
    admission = gate().admit(*payload(expires_in=-1), now=time.time())
    assert admission.run is None
    assert admission.reply is not None and admission.reply.status is CommandStatus.REJECTED
    assert admission.reason == "expired"


def test_unknown_is_rejected() -> None:
    admission = gate().admit(*payload(name="self.destruct"), now=time.time())
    assert admission.reason == "unknown" and admission.reply is not None


def test_foreign_reply_to_is_rejected() -> None:
    admission = gate().admit(*payload(reply_to="rtcc/v1/units/u2/res"), now=time.time())
    assert admission.reason == "bad_reply_to"


def test_malformed_gets_a_rejection_when_the_cmd_id_is_readable() -> None:
    topic, data = payload()
    doc = json.loads(data)
    doc["body"]["expires_at"] = "soon"
    admission = gate().admit(topic, json.dumps(doc).encode(), now=time.time())
    assert admission.run is None and admission.reason == "invalid_payload"
    assert admission.reply is not None and admission.reply.cmd_id == "c1"
    assert gate().admit(topic, b"\xff garbage", now=time.time()).reply is None


def test_command_for_another_unit_is_ignored() -> None:
    admission = gate("u2").admit(*payload(), now=time.time())
    assert admission.run is None and admission.reply is None
