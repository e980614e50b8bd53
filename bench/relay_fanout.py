"""Relay fan-out: our pass-through relay against aiortc's MediaRelay (decode once, encode
per viewer), in ONE run, publisher, relay and viewers each in their own process.

Reports relay CPU: with the publisher alone (ingest: receive, and for MediaRelay decode),
with N viewers, per viewer (total / N) and per viewer above ingest ((total - ingest) / N,
what each viewer adds); fps at the viewers, capture-to-viewer latency p50/p99 (from
the stamps one viewer decodes), and viewer join -> first frame. All viewers of a case run in
one process, whose CPU is shown too (`rcv%`): where it nears 100 %, the viewers, not the
relay, set the frame rate they see. `fps in` is what the relay got from the publisher over
the same time: where the viewers see about that much, the publisher (its encoder, or its
degrade ladder answering the relay's feedback) set their frame rate, not the fan-out.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from bench.results import ROOT, write_results
from bench.table import Column, print_table
from central.broker import free_port
from protocol.tokens import TokenSigner

KEY = b"bench-key-bench-key-bench-key-32"
SIGNER = TokenSigner({"b": KEY}, "b")


@dataclass
class Row:
    system: str
    codec: str
    size: str
    viewers: int
    connected: int
    ingest_cpu_pct: float
    relay_cpu_pct: float
    cpu_per_viewer_pct: float
    viewer_cpu_pct: float
    fps_mean: float
    fps_min: float
    latency_p50_ms: float
    latency_p99_ms: float
    join_p50_ms: float
    relay_added_p50_ms: float
    relay_added_p99_ms: float
    receivers_cpu_pct: float
    # Frames the relay got from the publisher per second meanwhile: viewers see no more.
    fps_in: float

    @property
    def relay_added_ms(self) -> str:
        """What the relay adds to the latency, p50/p99, the slash in the middle of its cell."""
        return f"{self.relay_added_p50_ms:>7.2f}/{self.relay_added_p99_ms:<7.2f}"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def _server(system: str, port: int, codec: str) -> subprocess.Popen[bytes]:
    if system == "rtcc":
        env = {
            **os.environ,
            "RTCC_WORKER__PORT": str(port),
            "RTCC_LOG__LEVEL": "warning",
            "RTCC_TOKENS__KEYS": json.dumps({"b": base64.b64encode(KEY).decode()}),
            "RTCC_TOKENS__CURRENT": "b",
            "RTCC_ICE__HOST_ADDRESSES": '["127.0.0.1"]',
        }
        cmd = [sys.executable, "-m", "rtcc", "relay-worker"]
    else:
        env = dict(os.environ)
        cmd = [sys.executable, "-m", "bench.mediarelay_server", str(port), codec]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _frames_in(base: str) -> int:
    with urllib.request.urlopen(f"{base}/streams", timeout=5) as answer:
        return int(json.load(answer)[0]["frames_in"])


def _cpu_pct(process: psutil.Process, seconds: float) -> float:
    cpu0, t0 = sum(process.cpu_times()[:2]), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = sum(process.cpu_times()[:2]), time.monotonic()
    return 100 * (cpu1 - cpu0) / (t1 - t0)


def run_case(
    system: str, codec: str, width: int, height: int, n: int, seconds: float, light: bool = False
) -> Row:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stream = f"bench-{codec}-{width}"
    now = time.time()
    server = _server(system, port, codec)
    procs: list[subprocess.Popen[Any]] = [server]
    try:
        _wait_port(port)
        bitrate = 1_000_000 if height <= 480 else 2_000_000
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.media_peers",
                    "publish",
                    f"{base}/whip/{stream}",
                    SIGNER.issue("whip", stream, now, 3600),
                    "--codec",
                    codec,
                    "--width",
                    str(width),
                    "--height",
                    str(height),
                    "--bitrate",
                    str(bitrate),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        relay = psutil.Process(server.pid)
        time.sleep(1.0)
        ingest_cpu = _cpu_pct(relay, 3.0)
        viewers = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.media_peers",
                "view",
                f"{base}/whep/{stream}",
                SIGNER.issue("whep", stream, now, 3600),
                "--n",
                str(n),
                "--codec",
                codec,
                "--seconds",
                str(seconds),
                *(["--light"] if light else []),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(viewers)
        assert viewers.stdout is not None
        ready = viewers.stdout.readline()
        if not ready:
            raise RuntimeError("viewers failed")
        receivers = psutil.Process(viewers.pid)
        frames0 = _frames_in(base) if system == "rtcc" else 0
        cpu0, t0 = sum(relay.cpu_times()[:2]), time.monotonic()
        rcv0 = sum(receivers.cpu_times()[:2])
        result = json.loads(viewers.stdout.readline())
        cpu1, t1 = sum(relay.cpu_times()[:2]), time.monotonic()
        rcv1 = sum(receivers.cpu_times()[:2])
        added: dict[str, Any] = {}
        if system == "rtcc":
            with urllib.request.urlopen(f"{base}/streams", timeout=5) as answer:
                added = json.load(answer)[0]
        viewers.wait(30)
        relay_cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
        latencies = [1000 * x for x in result["latencies"]]
        return Row(
            system="rtcc pass-through" if system == "rtcc" else "aiortc MediaRelay",
            codec=codec,
            size=f"{width}x{height}",
            viewers=n,
            connected=result["connected"],
            ingest_cpu_pct=ingest_cpu,
            relay_cpu_pct=relay_cpu,
            cpu_per_viewer_pct=relay_cpu / n,
            viewer_cpu_pct=max(relay_cpu - ingest_cpu, 0.0) / n,
            fps_mean=sum(result["fps"]) / len(result["fps"]),
            fps_min=min(result["fps"]),
            latency_p50_ms=_pct(latencies, 0.5),
            latency_p99_ms=_pct(latencies, 0.99),
            join_p50_ms=1000 * _pct(result["join_s"], 0.5),
            relay_added_p50_ms=added.get("relay_delay_p50_ms") or float("nan"),
            relay_added_p99_ms=added.get("relay_delay_p99_ms") or float("nan"),
            receivers_cpu_pct=100 * (rcv1 - rcv0) / (t1 - t0),
            fps_in=(added["frames_in"] - frames0) / (t1 - t0) if added else float("nan"),
        )
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


COLUMNS = (
    Column("system", "system", "<20"),
    Column("codec", "codec", "<5"),
    Column("size", "size", "<8"),
    Column("N", "viewers", ">4"),
    Column("conn", "connected", ">4"),
    Column("ingest%", "ingest_cpu_pct", ">7.1f"),
    Column("relay%", "relay_cpu_pct", ">7.1f"),
    Column("%/viewer", "cpu_per_viewer_pct", ">8.2f"),
    Column("+%/view", "viewer_cpu_pct", ">7.2f"),
    Column("fps", "fps_mean", ">5.1f"),
    Column("fpsmin", "fps_min", ">6.1f"),
    Column("p50 ms", "latency_p50_ms", ">7.1f"),
    Column("p99 ms", "latency_p99_ms", ">7.1f"),
    Column("join ms", "join_p50_ms", ">7.0f"),
    Column("relay+ p50/p99", "relay_added_ms", ">15"),
    Column("rcv%", "receivers_cpu_pct", ">6.1f"),
    Column("fps in", "fps_in", ">6.1f"),
)


def marginal(rows: list[Row], row: Row) -> float:
    """CPU each viewer adds: the slope from the same system's 1-viewer run."""
    one = next(
        (
            r
            for r in rows
            if r.system == row.system
            and r.codec == row.codec
            and r.size == row.size
            and r.viewers == 1
        ),
        None,
    )
    if one is None or row.viewers == 1:
        return row.cpu_per_viewer_pct
    return (row.relay_cpu_pct - one.relay_cpu_pct) / (row.viewers - 1)


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for ours in (r for r in rows if r.system.startswith("rtcc")):
        for base in rows:
            if (
                not base.system.startswith("rtcc")
                and base.codec == ours.codec
                and base.size == ours.size
                and base.viewers == ours.viewers
            ):
                out.append(
                    {
                        "codec": ours.codec,
                        "size": ours.size,
                        "viewers": ours.viewers,
                        "cpu_per_viewer_ratio": base.cpu_per_viewer_pct
                        / max(ours.cpu_per_viewer_pct, 0.01),
                        "above_ingest_ratio": base.viewer_cpu_pct / max(ours.viewer_cpu_pct, 0.01),
                        "marginal_cpu_ratio": marginal(rows, base)
                        / max(marginal(rows, ours), 0.01),
                    }
                )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.relay_fanout", description=__doc__)
    parser.add_argument("--ours", default="1,4,16,64", help="viewer counts for rtcc")
    parser.add_argument("--baseline", default="1,4,16", help="viewer counts for MediaRelay")
    parser.add_argument("--codecs", default="vp8,h264")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--scale",
        default="150,300,400",
        help="viewer counts for rtcc at 480p with light (count-only) viewers, to saturation",
    )
    args = parser.parse_args(argv)
    rows = []
    for codec in args.codecs.split(","):
        for size in args.sizes.split(","):
            width, height = (int(x) for x in size.split("x"))
            for system, counts in (("rtcc", args.ours), ("mediarelay", args.baseline)):
                for n in (int(c) for c in counts.split(",") if c):
                    try:
                        rows.append(run_case(system, codec, width, height, n, args.seconds))
                    except (RuntimeError, TimeoutError, ValueError) as exc:
                        print(f"  {system} {codec} {size} N={n}: failed ({exc})")
                    print_table(COLUMNS, rows[-1:]) if rows else None
    for codec in args.codecs.split(","):
        for n in (int(c) for c in args.scale.split(",") if c):
            try:
                rows.append(run_case("rtcc", codec, 640, 480, n, args.seconds, light=True))
            except (RuntimeError, TimeoutError, ValueError) as exc:
                print(f"  rtcc {codec} 640x480 N={n} (light viewers): failed ({exc})")
            print_table(COLUMNS, rows[-1:]) if rows else None
    print("\nRelay fan-out (same run; CPU is the relay process only)\n")
    print_table(COLUMNS, rows)
    for r in ratios(rows):
        print(
            f"  {r['codec']} {r['size']} N={r['viewers']}: MediaRelay / rtcc CPU per viewer "
            f"= {r['cpu_per_viewer_ratio']:.1f}x (above ingest: {r['above_ingest_ratio']:.1f}x, "
            f"slope from N=1: {r['marginal_cpu_ratio']:.1f}x)"
        )
    write_results("relay_fanout", {"rows": [asdict(r) for r in rows], "ratios": ratios(rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
