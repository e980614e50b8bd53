"""A real cut of the vehicle's link: vehicle namespace <-> bridge (the fault) <-> core
namespace with the relay and a viewer. The stream must come back by itself and the viewer
must decode again without rejoining. Needs root and iproute2 (the namespaces are made and
removed here; only a private test range inside them is used)."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from protocol.tokens import TokenSigner
from tests.helpers import ROOT

KEY = b"link-cut-test-key-link-cut-test!"
SIGNER = TokenSigner({"k": KEY}, "k")
CUT_S = 5.0

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("bridge"),
    reason="needs root and iproute2 for network namespaces",
)


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def lab(unique: str) -> Iterator[dict[str, str]]:
    tag = unique[:6]
    names = {"veh": f"rv{tag}", "core": f"rc{tag}", "link": f"rl{tag}", "tag": tag}
    try:
        for ns in ("veh", "core", "link"):
            sh("ip", "netns", "add", names[ns])
            sh("ip", "-n", names[ns], "link", "set", "lo", "up")
        for side, ns in (("v", "veh"), ("c", "core")):
            sh(
                "ip",
                "link",
                "add",
                f"{side}a{tag}",
                "type",
                "veth",
                "peer",
                "name",
                f"{side}b{tag}",
            )
            sh("ip", "link", "set", f"{side}a{tag}", "netns", names[ns])
            sh("ip", "link", "set", f"{side}b{tag}", "netns", names["link"])
        link = ("ip", "-n", names["link"], "link")
        sh(*link, "add", f"br{tag}", "type", "bridge")
        for dev in (f"vb{tag}", f"cb{tag}"):
            sh(*link, "set", dev, "master", f"br{tag}")
            sh(*link, "set", dev, "up")
        sh(*link, "set", f"br{tag}", "up")
        for ns, dev, address in (
            ("veh", f"va{tag}", "10.200.7.2/24"),
            ("core", f"ca{tag}", "10.200.7.1/24"),
        ):
            sh("ip", "-n", names[ns], "addr", "add", address, "dev", dev)
            sh("ip", "-n", names[ns], "link", "set", dev, "up")
        yield names
    finally:
        for ns in ("veh", "core", "link"):
            subprocess.run(["ip", "netns", "del", names[ns]], capture_output=True, check=False)


def in_ns(
    ns: str, *args: str, env: dict[str, str] | None = None, stdout: int | None = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def get_status(ns: str, url: str, timeout: float) -> int | None:
    """GET `url` from inside namespace `ns`; its status, or None if nothing answered."""
    probe = (
        "import sys, httpx; print(httpx.get(sys.argv[1], timeout=float(sys.argv[2])).status_code)"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", probe, url, str(timeout)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout + 10,
    )
    return int(done.stdout) if done.returncode == 0 else None


def wait_until_answers(ns: str, url: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while get_status(ns, url, 1.0) != 200:
        assert time.monotonic() < deadline, f"{url} did not answer within {within_s} s"


def test_stream_survives_a_cut_of_the_vehicle_link(lab: dict[str, str]) -> None:
    base = "http://10.200.7.1:8000"
    now = time.time()
    procs = [
        in_ns(
            lab["core"],
            "-m",
            "rtcc",
            "relay-worker",
            env={
                "RTCC_WORKER__HOST": "10.200.7.1",
                "RTCC_WORKER__PORT": "8000",
                "RTCC_TOKENS__KEYS": json.dumps({"k": base64.b64encode(KEY).decode()}),
                "RTCC_TOKENS__CURRENT": "k",
                "RTCC_ICE__HOST_ADDRESSES": '["10.200.7.1"]',
                "RTCC_LOG__LEVEL": "warning",
            },
        )
    ]
    try:
        wait_until_answers(lab["core"], f"{base}/healthz", 20)
        procs.append(
            in_ns(
                lab["veh"],
                "-m",
                "bench.media_peers",
                "publish",
                f"{base}/whip/cut",
                SIGNER.issue("whip", "cut", now, 600),
                "--codec",
                "vp8",
                "--width",
                "320",
                "--height",
                "240",
                "--ice-host",
                "10.200.7.2",
            )
        )
        # The worker answers once the publisher's media arrives (a long poll).
        assert get_status(lab["core"], f"{base}/streams/cut/live?timeout=20", 25) == 200
        viewer = in_ns(
            lab["core"],
            "-m",
            "bench.media_peers",
            "view",
            f"{base}/whep/cut",
            SIGNER.issue("whep", "cut", now, 600),
            "--codec",
            "vp8",
            "--seconds",
            "20",
            "--warmup",
            "1",
            "--ice-host",
            "10.200.7.1",
            stdout=subprocess.PIPE,
        )
        procs.append(viewer)
        assert viewer.stdout is not None
        assert json.loads(viewer.stdout.readline())["ready"]
        started = time.monotonic()
        time.sleep(4.0)  # the schedule: video flows steadily before the cut
        bridge = (
            "ip",
            "netns",
            "exec",
            lab["link"],
            "bridge",
            "link",
            "set",
            "dev",
            f"vb{lab['tag']}",
            "state",
        )
        cut_at = time.monotonic() - started
        sh(*bridge, "0")  # blocking: frames are dropped, the link stays up
        time.sleep(CUT_S)
        sh(*bridge, "3")  # forwarding again
        restored_at = time.monotonic() - started
        result = json.loads(viewer.stdout.readline())
        arrivals, decoded = result["arrivals"], result["decoded_at"]
        before = [t for t in arrivals if t < cut_at]
        during = [t for t in arrivals if cut_at + 0.5 < t < restored_at]
        after = [t for t in decoded if t > restored_at]
        assert len(before) > 60 and not during
        resumed = [t for t in arrivals if t > restored_at]
        assert after and after[0] - restored_at < 3.0, (restored_at, after[:1], resumed[:1])
        assert len(after) > 60
        assert result["state"] == "connected"  # the viewer never had to rejoin
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(15)
