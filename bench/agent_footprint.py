"""Agent footprint: RSS and CPU of `rtcc agent` idle (status only), streaming a 720p30
H.264 file in pass-through, the same with evidence on, and, as the baseline in the same run,
streaming the simulator (which has to encode every picture).

The agent runs from a production install (`pip install .`, no development tools) in a venv
of its own, as on a gateway: development packages change what libraries import (structlog
loads `rich` when it is installed, for one)."""

from __future__ import annotations

import fractions
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import av
import psutil

from bench.center import LOOPBACK, http, running_center, unit_online, wait_until
from bench.results import ROOT, write_results
from firmware_bridge.sim.pattern import PatternRenderer


@dataclass
class Row:
    case: str
    rss_mb: float
    cpu_pct: float


def make_clip(path: Path, seconds: int = 20) -> None:
    renderer = PatternRenderer(1280, 720)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.bit_rate = 2_000_000
        stream.codec_context.profile = "Baseline"
        stream.codec_context.options = {"tune": "zerolatency", "preset": "veryfast", "g": "60"}
        stream.codec_context.time_base = fractions.Fraction(1, 30)
        for n in range(seconds * 30):
            frame = av.VideoFrame(1280, 720, "yuv420p")
            for plane, data in zip(frame.planes, renderer.render(n, n * 33), strict=True):
                plane.update(data)
            frame.pts = n
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


PROD_VENV = ROOT / "bench" / "results" / "prod-venv"


def production_agent() -> list[str]:
    """`rtcc agent` from a venv with only the runtime dependencies (made once, reused)."""
    python = PROD_VENV / "bin" / "python"
    stamp = PROD_VENV / ".installed"
    sources = [ROOT / "pyproject.toml", ROOT / "constraints.txt"]
    if not stamp.exists() or any(p.stat().st_mtime > stamp.stat().st_mtime for p in sources):
        print("preparing a production install for the agent ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PROD_VENV)], check=True)
        build = ROOT / "build"
        had_build = build.exists()
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-c", "constraints.txt", "."],
            cwd=ROOT,
            check=True,
        )
        if not had_build:
            shutil.rmtree(build, ignore_errors=True)  # setuptools' in-tree leftovers
        stamp.touch()
    return [str(python), "-m", "rtcc", "agent"]


def sample(pid: int, seconds: float) -> tuple[float, float]:
    proc = psutil.Process(pid)
    cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = sum(proc.cpu_times()[:2]), time.monotonic()
    return proc.memory_info().rss / 2**20, 100 * (cpu1 - cpu0) / (t1 - t0)


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 15.0
    rows: list[Row] = []
    agent_command = production_agent()
    with tempfile.TemporaryDirectory(prefix="rtcc-footprint-") as tmp:
        work = Path(tmp)
        clip = work / "clip.mp4"
        make_clip(clip)
        with running_center(work, relay_workers=1) as center:
            api = center.api
            base_env = {**center.env, "RTCC_EVIDENCE__ENABLED": "false"}
            for index, (case, video) in enumerate(
                (
                    (
                        "file pass-through 720p30 H.264",
                        {"RTCC_VIDEO__SOURCE": "file", "RTCC_VIDEO__FILE": str(clip)},
                    ),
                    (
                        "file 720p30 + evidence (30 s pre-event buffer)",
                        {
                            "RTCC_VIDEO__SOURCE": "file",
                            "RTCC_VIDEO__FILE": str(clip),
                            "RTCC_EVIDENCE__ENABLED": "true",
                        },
                    ),
                    (
                        "simulator 720p30 H.264 (encodes)",
                        {
                            "RTCC_VIDEO__WIDTH": "1280",
                            "RTCC_VIDEO__HEIGHT": "720",
                            "RTCC_VIDEO__BITRATE": "2000000",
                        },
                    ),
                )
            ):
                unit = f"bench-{index}"
                agent = subprocess.Popen(
                    agent_command,
                    cwd=work,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={
                        **base_env,
                        "RTCC_UNIT_ID": unit,
                        "RTCC_DATA_DIR": str(work / unit),
                        "RTCC_CENTER_URL": api,
                        "RTCC_ICE__HOST_ADDRESSES": LOOPBACK,
                        **video,
                    },
                )
                try:
                    wait_until(partial(unit_online, api, unit, center.key), 30)
                    if not rows:
                        time.sleep(3)
                        rows.append(Row("idle (status only)", *sample(agent.pid, seconds)))
                    http(
                        "POST", f"{api}/api/v1/units/{unit}/stream", center.key, {"reason": "bench"}
                    )
                    # With evidence on, let the pre-event buffer fill first.
                    time.sleep(32 if "evidence" in case else 2)
                    rows.append(Row(f"streaming {case}", *sample(agent.pid, seconds)))
                    http("DELETE", f"{api}/api/v1/units/{unit}/stream", center.key)
                finally:
                    agent.terminate()
                    agent.wait(15)
    print("\nAgent footprint (one `rtcc agent` process)\n")
    print(f"{'case':<58} {'RSS MB':>7} {'CPU %':>6}")
    for row in rows:
        print(f"{row.case:<58} {row.rss_mb:>7.1f} {row.cpu_pct:>6.1f}")
    write_results("agent_footprint", [asdict(r) for r in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
