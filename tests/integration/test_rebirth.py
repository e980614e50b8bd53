"""A sequence gap (the broker dropped messages for the center) triggers a rebirth."""

import asyncio
import time
from pathlib import Path

from central.broker import MosquittoOptions, MosquittoProcess
from protocol import CommandResult, Presence, Topic
from tests.helpers import running_agent, running_center, stop_link_task, wait_for
from tests.integration.test_commands import raw_client


async def test_seq_gap_triggers_rebirth_and_full_state(unique: str, tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path / "b", MosquittoOptions(max_queued_messages=10))
    broker.start()
    unit = f"u-{unique}"
    presences: list[Presence | CommandResult] = []
    try:
        async with (
            running_center(broker.url, f"c-{unique}") as center,
            running_agent(
                unit,
                broker.url,
                tmp_path / "agent",
                runtime={"state_heartbeat_s": 3600},
                sim={"speed_mps": 0},
            ) as agent,
            raw_client(broker.url, f"w-{unique}", [str(Topic.presence(unit))], presences),
        ):
            await wait_for(lambda: (r := center.fleet.registry.get(unit)) and r.online)
            # The center goes away; its session stays, but the broker keeps only 10 messages.
            link = center.fleet.link
            await link.close()
            await wait_for(lambda: not link.connected.is_set())
            for n in range(40):
                agent.record_event("test.tick", {"n": n}, time.time())
            await wait_for(lambda: agent.outbox.rows == 0)
            gap_at = time.time()
            task = asyncio.create_task(center.fleet.run())
            try:
                await asyncio.wait_for(link.connected.wait(), 10)
                agent.record_event("test.tick", {"n": 40}, time.time())
                await wait_for(lambda: center.metric("rtcc_seq_gaps_total") >= 1)
                assert center.metric("rtcc_rebirths_requested_total") == 1
                await wait_for(
                    lambda: any(
                        isinstance(p, Presence) and p.reason == "rebirth" for p in presences
                    )
                )
                await wait_for(lambda: (center.fleet.registry.get(unit).state_ts or 0) > gap_at)  # type: ignore[union-attr]
                record = center.fleet.registry.get(unit)
                assert record is not None and record.online and record.state is not None
            finally:
                await stop_link_task(link, task)
    finally:
        broker.stop()
