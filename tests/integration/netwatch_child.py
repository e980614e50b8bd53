"""Runs a NetworkWatch and prints JSON lines: {"ready": true} once it listens, then one
{"changes": [...]} per callback. For tests/integration/test_netwatch.py, which starts it
inside a network namespace (`ip netns exec <ns> python -m tests.integration.netwatch_child`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from runtime.netwatch import NetworkWatch
from runtime.rtnetlink import NetworkChange


def emit(line: dict[str, object]) -> None:
    print(json.dumps(line), flush=True)


async def main() -> None:
    def on_change(changes: list[NetworkChange]) -> None:
        emit({"changes": [dataclasses.asdict(c) for c in changes]})

    watch = NetworkWatch(on_change)
    task = asyncio.create_task(watch.run(), name="netwatch")
    await watch.watching.wait()
    emit({"ready": True})
    await task  # until the test terminates this process


if __name__ == "__main__":
    asyncio.run(main())
