"""Which broker refusals cost the outbox a row: "not authorized" keeps it (retried after a
pause, the rows already in flight answered first and not sent again); any other refusal is
final for that row, as before. The broker's answers are scripted per topic and come in
the order the publishes went out."""

import asyncio
from collections import Counter
from pathlib import Path

from agent.outbox import Outbox, OutboxRow
from agent.pump import NOT_AUTHORIZED, OutboxPump
from agent.store import open_store
from runtime.backoff import Backoff
from runtime.mqtt import PublishRejected
from tests.helpers import wait_for

QUOTA_EXCEEDED = 151


class ScriptedLink:
    """Answers each publish in turn: refusals (a reason) for a topic, then PUBACKs."""

    def __init__(self, refusals: dict[str, list[int]]) -> None:
        self.connected = asyncio.Event()
        self.connected.set()
        self.refusals = refusals
        self.published: Counter[str] = Counter()
        self._answered = 0

    def publish(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        reasons = self.refusals.get(topic, [])
        reason = reasons.pop(0) if reasons else None
        self.published[payload.decode()] += 1
        self._answered += 1

        def answer() -> None:
            if reason is None:
                future.set_result(None)
            else:
                future.set_exception(PublishRejected(f"reason code {reason}", reason))

        # One answer per loop turn, in order: the first can be seen before the others.
        loop.call_later(0.001 * self._answered, answer)
        return future


def raw(row: OutboxRow) -> tuple[str, bytes]:
    return row.topic, row.body


async def pumped(
    tmp_path: Path, link: ScriptedLink, topics: list[str]
) -> tuple[Outbox, OutboxPump]:
    outbox = Outbox(open_store(tmp_path / "agent.db"))
    for i, topic in enumerate(topics):
        outbox.put(f"m{i}", topic, 0.0, f"m{i}".encode())
    pump = OutboxPump(outbox, link, raw, held_backoff=Backoff(initial_s=0.01, max_s=0.05))  # type: ignore[arg-type]
    return outbox, pump


async def run_until_empty(outbox: Outbox, pump: OutboxPump) -> None:
    task = asyncio.create_task(pump.run())
    try:
        await wait_for(lambda: outbox.rows == 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_not_authorized_keeps_the_row_and_sends_the_others_once(tmp_path: Path) -> None:
    link = ScriptedLink({"a": [NOT_AUTHORIZED, NOT_AUTHORIZED]})
    outbox, pump = await pumped(tmp_path, link, ["a", "b", "b", "b"])
    await run_until_empty(outbox, pump)
    assert pump.not_authorized == 2 and outbox.dropped == 0 and pump.sent == 4
    assert link.published == {"m0": 3, "m1": 1, "m2": 1, "m3": 1}


async def test_another_refusal_drops_the_row(tmp_path: Path) -> None:
    link = ScriptedLink({"a": [QUOTA_EXCEEDED]})
    outbox, pump = await pumped(tmp_path, link, ["a", "b"])
    await run_until_empty(outbox, pump)
    assert pump.not_authorized == 0 and outbox.dropped == 1 and pump.sent == 1
    assert link.published == {"m0": 1, "m1": 1}
