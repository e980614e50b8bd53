"""Remote start: API call -> the first decoded frame at a viewer, through the whole center
(broker, fleet, MQTT command, agent WHIP publish, relay worker, WHEP viewer)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

from bench.center import LOOPBACK, CenterProcess, running_center, unit_online, wait_until
from bench.media_peers import Viewer
from bench.results import ROOT, write_results
from central.relay import passthrough


async def trial(http: httpx.AsyncClient, api: str, unit: str) -> tuple[float, float]:
    """(API answer s, first decoded frame s), both from the moment of the API call."""
    asked = time.time()
    answer = await http.post(f"{api}/api/v1/units/{unit}/stream", json={"reason": "bench"})
    grant = answer.raise_for_status().json()
    answered = time.time()
    viewer = Viewer("h264")
    await viewer.join(http, grant["whep_url"], grant["token"])
    viewer.count_from(asked)
    deadline = time.time() + 10
    while not viewer.latencies and time.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    first = time.time()
    await viewer.pc.close()
    await http.delete(f"{api}/api/v1/units/{unit}/stream")
    await asyncio.sleep(1.0)
    return answered - asked, first - asked


async def run(center: CenterProcess, work: Path, trials: int) -> list[tuple[float, float]]:
    passthrough.install()
    null = asyncio.subprocess.DEVNULL
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtcc",
        "agent",
        cwd=ROOT,
        stdout=null,
        stderr=null,
        env={
            **center.env,
            "RTCC_UNIT_ID": "bench-1",
            "RTCC_DATA_DIR": str(work / "a"),
            "RTCC_CENTER_URL": center.api,
            "RTCC_ICE__HOST_ADDRESSES": LOOPBACK,
        },
    )
    try:
        await asyncio.to_thread(
            wait_until, partial(unit_online, center.api, "bench-1", center.key), 30
        )
        headers = {"Authorization": f"Bearer {center.key}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            return [await trial(http, center.api, "bench-1") for _ in range(trials)]
    finally:
        agent.terminate()
        await asyncio.wait_for(agent.wait(), 30)


def main(argv: list[str]) -> int:
    trials = int(argv[0]) if argv else 7
    with (
        tempfile.TemporaryDirectory(prefix="rtcc-start-") as tmp,
        running_center(Path(tmp)) as center,
    ):
        results = asyncio.run(run(center, Path(tmp), trials))
    api = sorted(r[0] for r in results)
    first = sorted(r[1] for r in results)
    print(f"\nRemote start (API call -> ...), simulator H.264 640x480, {trials} trials\n")
    print(f"{'':<28} {'p50 ms':>7} {'max ms':>7}")
    print(
        f"{'API answer (stream live)':<28} {1000 * api[len(api) // 2]:>7.0f} {1000 * api[-1]:>7.0f}"
    )
    print(
        f"{'first decoded frame':<28} {1000 * first[len(first) // 2]:>7.0f} "
        f"{1000 * first[-1]:>7.0f}"
    )
    write_results("remote_start", {"api_s": api, "first_frame_s": first})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
