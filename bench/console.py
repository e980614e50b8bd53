"""The console and patrol pages in Debian's headless Chromium against a whole center (each
part its own process: Mosquitto, `rtcc central`, agents, the body-cam simulator), in one run:

1. holster draw on the body-cam -> the alert at the center, the banner in the console's DOM,
   the banner painted (p50/p99), each alert acknowledged before the next;
2. a click on the banner's "Open video" -> the first frame the tile's <video> presents
   (requestVideoFrameCallback), the tile closed between rounds;
3. a dispatcher's share (POST /api/v1/shares) -> its card painted on the patrol page of a
   unit near the scene, revoked between rounds;
4. the console on an empty map, then with N units (default 5,000) driving circles across a
   city, each sending its state every `--move-interval` s: navigation -> every unit in the
   markers layer, the map fitted and painted; then frames per second (requestAnimationFrame)
   while they all move, fitted and at street level. The ratio to the empty map is the cost.

Times are epoch ms on the one machine clock: the benchmark's time.time() and the browser's
performance.timeOrigin + performance.now(). Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import multiprocessing
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext

from bench.center import LOOPBACK, CenterProcess, http, running_center, wait_until
from bench.console_browser import Chromium, alert_rounds, chromium, map_run, share_rounds
from bench.mqtt_load import Unit, publish_packet, state_body
from bench.results import ROOT, write_results
from bench.trigger_alert import summarise
from central.access.passwords import PasswordSettings
from central.access.policy import Role
from central.broker import free_port
from central.db.engine import default_url
from central.db.schema import open_migrated
from central.people import Operator, People

CITY = (40.7128, -74.0060)
CITY_HALF_SIDE_M = 10_000.0  # the fleet drives within a 20 x 20 km square around CITY
M_PER_DEG_LAT = 111_320.0
CAMERA_UNIT = "cam-unit"  # wears the simulated body-cam, at CITY
PATROL_UNIT = "patrol-unit"  # 670 m north of it; its in-car laptop is signed in
DISPATCHER, PATROL = "bench-dispatcher", "bench-patrol"
PASSWORD = secrets.token_urlsafe(18)
# The holster draw raises an alert and takes the unit live, with no cooldown so that rounds
# can follow each other (the default rule ignores a second draw within 10 s).
TRIGGERS = [{"event": "trigger.holster_draw", "actions": ["alert", "stream"], "cooldown_s": 0}]
TICKS_PER_S = 20


# ---- the fleet: N units driving circles, on raw MQTT (bench/mqtt_load.py) ---------------------


@dataclass(frozen=True)
class Route:
    """A unit driving a circle of `radius_m` around (lat, lon)."""

    lat: float
    lon: float
    radius_m: float
    speed_mps: float
    phase: float

    @classmethod
    def somewhere(cls, rng: random.Random) -> Route:
        north, east = (rng.uniform(-CITY_HALF_SIDE_M, CITY_HALF_SIDE_M) for _ in range(2))
        lat = CITY[0] + north / M_PER_DEG_LAT
        lon = CITY[1] + east / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
        return cls(lat, lon, rng.uniform(150, 600), rng.uniform(5, 16), rng.uniform(0, math.tau))

    def at(self, t: float) -> tuple[float, float, float]:
        """(lat, lon, heading) at time t: anticlockwise, so the heading is minus the angle."""
        angle = self.phase + self.speed_mps / self.radius_m * t
        north, east = self.radius_m * math.sin(angle), self.radius_m * math.cos(angle)
        lat = self.lat + north / M_PER_DEG_LAT
        lon = self.lon + east / (M_PER_DEG_LAT * math.cos(math.radians(self.lat)))
        heading = math.degrees(-angle) % 360.0
        return round(lat, 7), round(lon, 7), heading if heading < 360.0 else 0.0


class MovingUnit(Unit):
    def __init__(self, unit_id: str, route: Route, state: dict[str, Any]) -> None:
        super().__init__(unit_id, b"")
        self.route = route
        self.state = state
        self.presence = f"rtcc/v1/units/{unit_id}/presence".encode()

    def send(self, topic: bytes, body: bytes) -> None:
        assert self.writer is not None
        self.seq += 1
        head = f'{{"v":1,"id":"{uuid.uuid4()}","sid":1,"seq":{self.seq},"ts":{time.time()},"body":'
        self.writer.write(publish_packet(topic, self.seq % 65535 + 1, head.encode() + body + b"}"))

    def born(self) -> None:
        self.send(self.presence, b'{"online":true,"reason":"birth"}')

    def move(self, now: float) -> None:
        lat, lon, heading = self.route.at(now)
        position = self.state["position"] | {
            "lat": lat,
            "lon": lon,
            "heading_deg": heading,
            "speed_mps": self.route.speed_mps,
            "fix_ts": now,
        }
        body = json.dumps(self.state | {"position": position}, separators=(",", ":"))
        self.send(self.topic, body.encode())


async def _drive(port: int, count: int, interval_s: float, connected: Event, stop: Event) -> None:
    rng = random.Random(11)
    state = json.loads(state_body(0))  # a valid state, as the load generator sends
    fleet = [MovingUnit(f"fleet-{n:05d}", Route.somewhere(rng), state) for n in range(count)]
    for start in range(0, count, 200):
        batch = fleet[start : start + 200]
        await asyncio.gather(*(unit.connect("127.0.0.1", port) for unit in batch))
        for unit in batch:
            unit.born()
            unit.move(time.time())
    connected.set()
    slots = max(1, round(interval_s * TICKS_PER_S))  # each unit moves once every `slots` ticks
    began, tick = time.monotonic(), 0
    while not stop.is_set():
        now = time.time()
        for unit in fleet[tick % slots :: slots]:
            unit.move(now)
        tick += 1
        await asyncio.sleep(max(0.0, began + tick / TICKS_PER_S - time.monotonic()))
    await asyncio.gather(*(unit.close() for unit in fleet))


def drive_fleet(port: int, count: int, interval_s: float, connected: Event, stop: Event) -> None:
    asyncio.run(_drive(port, count, interval_s, connected, stop))


@contextlib.contextmanager
def moving_fleet(broker_port: int, count: int, interval_s: float) -> Iterator[None]:
    """The fleet in a process of its own: its 2,500 messages a second never hold up the
    benchmark's own reading of the pages."""
    spawn = multiprocessing.get_context("spawn")
    connected, stop = spawn.Event(), spawn.Event()
    args = (broker_port, count, interval_s, connected, stop)
    process = spawn.Process(target=drive_fleet, args=args, daemon=True)
    process.start()
    try:
        if not connected.wait(120):
            raise TimeoutError("the fleet did not connect")
        yield
    finally:
        stop.set()
        process.join(30)
        if process.is_alive():
            process.terminate()


# ---- the center's people and the units on the scene ------------------------------------------


def make_logins(center_dir: Path) -> str:
    """A dispatcher and the patrol unit's login, in the center's database before it starts;
    returns the dispatcher's TOTP secret."""
    center_dir.mkdir(parents=True, exist_ok=True)
    database = open_migrated(default_url(center_dir))
    try:
        people = People(database, Operator("bench"), PasswordSettings())
        people.add(DISPATCHER, Role.DISPATCHER.value, PASSWORD)
        people.add(PATROL, Role.PATROL.value, PASSWORD, unit_id=PATROL_UNIT)
        return people.enroll_totp(DISPATCHER).secret
    finally:
        database.close()


def _rtcc(center: CenterProcess, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rtcc", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**center.env, **env},
    )


def _agent(center: CenterProcess, work: Path, unit: str, north_m: float, **env: str) -> Any:
    return _rtcc(
        center,
        "agent",
        RTCC_UNIT_ID=unit,
        RTCC_DATA_DIR=str(work / unit),
        RTCC_CENTER_URL=center.api,
        RTCC_ICE__HOST_ADDRESSES=LOOPBACK,
        RTCC_EVIDENCE__ENABLED="false",
        RTCC_SIM__LAT=str(CITY[0] + north_m / M_PER_DEG_LAT),
        RTCC_SIM__LON=str(CITY[1]),
        RTCC_SIM__RADIUS_M="40",
        RTCC_SIM__SPEED_MPS="3",
        RTCC_SIM__EVENT_INTERVAL_S="0",  # no random events: every alert is a holster draw
        RTCC_RUNTIME__POSITION_MIN_INTERVAL_S="2",
        **env,
    )


@contextlib.contextmanager
def units_on_scene(center: CenterProcess, work: Path) -> Iterator[int]:
    """The body-cam simulator, its unit's agent and the patrol unit's agent; yields the
    simulator's control port once the camera is connected and the patrol has a fix."""
    link, control = free_port(), free_port()
    listen = ["--listen", f"tcp://127.0.0.1:{link}", "--control", f"127.0.0.1:{control}"]
    procs = [
        _rtcc(center, "bodycam-sim", *listen),
        _agent(
            center,
            work,
            CAMERA_UNIT,
            0.0,
            RTCC_DEVICE__LINK=f"tcp://127.0.0.1:{link}",
            RTCC_TRIGGERS=json.dumps(TRIGGERS),
        ),
        _agent(center, work, PATROL_UNIT, 670.0),
    ]

    def unit(name: str) -> Any:
        found = http("GET", f"{center.api}/api/v1/units/{name}", center.key)
        return found["online"] and found["state"]

    try:
        wait_until(lambda: (unit(CAMERA_UNIT) or {})["camera"]["connected"], 60)
        wait_until(lambda: (unit(PATROL_UNIT) or {})["position"], 60)
        yield control
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


# ---- the run ---------------------------------------------------------------------------------


def _health(center: CenterProcess) -> Any:
    return http("GET", f"{center.api}/healthz", center.key)


def states_ingested(center: CenterProcess) -> float:
    """The state messages the fleet service has taken in (its Prometheus counter)."""
    headers = {"Authorization": f"Bearer {center.key}"}
    request = urllib.request.Request(f"{center.api}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith('rtcc_mqtt_messages_total{kind="state"}'):
                return float(line.split()[-1])
    return 0.0


def say(what: str) -> None:
    print(f"[console] {what}", flush=True)


def scene_rounds(
    browser: Chromium,
    people: tuple[BrowserContext, BrowserContext],
    center: CenterProcess,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, list[dict[str, Any]]]:
    """Holster draws (with clicks) and shares, with the units on the scene."""
    desk, patrol = people
    if not (args.alerts or args.shares):
        return {"alerts": [], "shares": []}
    say("units on the scene: body-cam simulator, its unit, a patrol unit")
    with units_on_scene(center, work) as control:
        say(f"{args.alerts} holster draws, {args.clicks} of them clicked open")
        alerts = alert_rounds(browser, desk, center, control, CAMERA_UNIT, args.alerts, args.clicks)
        say(f"{args.shares} shares")
        shares = share_rounds(
            browser, desk, patrol, center, (CAMERA_UNIT, PATROL_UNIT), args.shares
        )
        # Its video no longer wanted: the center does not keep asking a unit gone away.
        http("DELETE", f"{center.api}/api/v1/units/{CAMERA_UNIT}/stream", center.key)
    return {"alerts": alerts, "shares": shares}


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    secret = make_logins(work / "center")
    with running_center(work, relay_workers=1) as center, chromium(center.api) as browser:
        wait_until(lambda: _health(center)["mqtt_connected"], 30)
        desk = browser.sign_in(DISPATCHER, PASSWORD, secret)
        patrol = browser.sign_in(PATROL, PASSWORD, None)
        # Once to fill the browser's cache, so that both map runs load the page alike.
        warm = browser.window(desk)
        warm.open("/console", "window.rtccConsole?.ready")
        warm.page.close()
        say("the console on an empty map")
        span = (args.settle, args.seconds)
        ingested = functools.partial(states_ingested, center)
        maps = {"empty": map_run(browser, desk, 0, CITY, span, ingested)}
        result = scene_rounds(browser, (desk, patrol), center, args, work)
        say(f"{args.units} units driving, a state every {args.move_interval:g} s each")
        broker_port = int(center.broker_url.rsplit(":", 1)[1])
        with moving_fleet(broker_port, args.units, args.move_interval):
            health = wait_until(
                lambda: (h := _health(center))["units_online"] >= args.units and h, 60
            )
            say("the console with all of them")
            expected = int(health["units_known"])
            maps["moving"] = map_run(browser, desk, expected, CITY, span, ingested)
        return result | {"maps": maps, "chromium": browser.browser.version}


def latencies(result: dict[str, Any]) -> list[dict[str, Any]]:
    alerts, shares = result["alerts"], result["shares"]
    clicks = [r["click_to_frame_ms"] for r in alerts if "click_to_frame_ms" in r]
    rows = [
        ("holster draw -> alert at the center", [r["center_ms"] for r in alerts]),
        ("holster draw -> banner in the DOM", [r["dom_ms"] for r in alerts]),
        ("holster draw -> banner painted", [r["painted_ms"] for r in alerts]),
        ("click -> first frame in the tile", clicks),
        ("share POST -> answered", [r["answer_ms"] for r in shares]),
        ("share POST -> patrol card painted", [r["painted_ms"] for r in shares]),
    ]
    return [summarise(name, values) for name, values in rows if values]


def print_tables(result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    print(f"\nConsole and patrol pages, Chromium {result['chromium']} headless, loopback\n")
    print(f"{'path (ms)':<38} {'p50':>7} {'p99':>7} {'max':>7} {'n':>4}")
    for r in rows:
        p50, p99, worst, n = r["p50_ms"], r["p99_ms"], r["max_ms"], len(r["samples"])
        print(f"{r['path']:<38} {p50:>7.1f} {p99:>7.1f} {worst:>7.1f} {n:>4}")
    print(
        f"\n{'map':<24} {'markers':>7} {'render ms':>9} {'fps':>5} {'gap p99':>7} "
        f"{'gap max':>7} {'center/s':>8} {'page/s':>6} {'moving':>6} {'on show':>7} "
        f"{'behind%':>7} {'heap MB':>7}"
    )
    for name, runs in result["maps"].items():
        for r in runs:
            render = f"{r['first_render_ms']:.0f}" if r.get("first_render_ms") else "-"
            heap = f"{r['heap_mb']:.1f}" if r["heap_mb"] is not None else "-"
            print(
                f"{name + ', ' + r['view']:<24} {r['markers']:>7} {render:>9} {r['fps']:>5.1f} "
                f"{r['gap_p99_ms']:>7.1f} {r['gap_max_ms']:>7.1f} "
                f"{r['center_states_per_s']:>8.0f} {r['received_per_s']:>6.0f} "
                f"{r['units_moving']:>6} {r['on_show']:>7.0f} {r['behind_pct']:>7.1f} {heap:>7}"
            )
    ratio = result["fps_ratio"]
    print(f"\nframe rate, {result['units']} moving (fitted) / empty map: {ratio:.2f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.console", description=__doc__)
    parser.add_argument("--alerts", type=int, default=20, help="holster draws")
    parser.add_argument("--clicks", type=int, default=5, help="of those, clicked open")
    parser.add_argument("--shares", type=int, default=5)
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--move-interval", type=float, default=2.0, help="s between states")
    parser.add_argument("--seconds", type=float, default=10.0, help="frame rate window")
    parser.add_argument("--settle", type=float, default=2.0, help="s before that window")
    parser.add_argument(
        "--quick", action="store_true", help="5 draws, 2 clicks, 2 shares, 1,000 units, 5 s"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.alerts, args.clicks, args.shares, args.units, args.seconds = 5, 2, 2, 1000, 5.0
    with tempfile.TemporaryDirectory(prefix="rtcc-console-") as tmp:
        result = run(args, Path(tmp))
    fitted = [r for runs in result["maps"].values() for r in runs if r["view"] == "fitted"]
    result |= {
        "units": args.units,
        "move_interval_s": args.move_interval,
        "fps_ratio": fitted[1]["fps"] / fitted[0]["fps"],
        "cpus": os.cpu_count(),
    }
    rows = latencies(result)
    print_tables(result, rows)
    write_results("console", {"summary": rows, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
