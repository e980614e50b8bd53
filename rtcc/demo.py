"""`rtcc demo`: the center (with its supervised Mosquitto) and N simulated units, each a
separate process, with a live view of the fleet in the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import ssl
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.enroll import EnrollFailed, enroll
from agent.enroll_files import EnrollFiles
from central.access.policy import Role, Scope, needs_second_factor
from central.client_keys import add_client
from central.config import CentralSettings
from central.db.schema import open_migrated
from central.people import Operator, People, anchor_file
from central.provisioning import Provisioning
from runtime.backoff import Backoff, Retry
from runtime.config import load_settings
from runtime.files import write_atomic
from runtime.process import ChildProcess, keep_running

REFRESH_S = 3.0
STREAMING_UNITS = 2
STOP_GRACE_S = 10.0
BODYCAM_TRIGGER_S = 60.0


def _port_or_free(preferred: int) -> int:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Child(ChildProcess):
    """One `rtcc` subcommand of the demo (`name` is "agent:unit-01" for an agent)."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, args: Sequence[str] = ()):
        super().__init__(
            [sys.executable, "-m", "rtcc", name.split(":", maxsplit=1)[0], *args],
            env,
            log_path,
            stop_grace_s=STOP_GRACE_S,
        )
        self.name = name
        self.stopping = False

    async def keep_running(self) -> None:
        def exited(code: int) -> None:
            print(f"  ! {self.name} exited ({code}); restarting (see {self.log_path})")

        await keep_running(
            self, Retry(Backoff(initial_s=0.5, max_s=10.0)), exited, stopping=lambda: self.stopping
        )

    async def stop(self) -> None:
        self.stopping = True
        await super().stop()


class Demo:
    def __init__(self, units: int, data_dir: Path | None, http_port: int) -> None:
        self.units = units
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="rtcc-demo-"))
        self.http_port = _port_or_free(http_port)
        self.api = f"https://127.0.0.1:{self.http_port}"
        self.ca_file = self.data_dir / "central" / "tls" / "ca.pem"  # the center makes it
        self.key = ""
        self.logins: list[str] = []

    def _children(self) -> list[Child]:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        broker_port = _port_or_free(0)
        loopback = json.dumps(["127.0.0.1"])  # no media ever leaves this machine
        common = {"RTCC_LOG__FORMAT": "json"}
        central_env = {
            **common,
            "RTCC_DATA_DIR": str(self.data_dir / "central"),
            "RTCC_HTTP__PORT": str(self.http_port),
            "RTCC_BROKER__PORT": str(broker_port),
            # Every simulated gateway enrolls from this one address within a minute.
            "RTCC_PROVISION__ENROLL_ATTEMPTS": str(self.units + 10),
            "RTCC_RELAY__ICE__HOST_ADDRESSES": loopback,
            "RTCC_RELAY__VIEWER_TOKEN_TTL_S": str(8 * 3600),
            # The body-cam's holster draw shares its video with the patrols near it.
            "RTCC_CONSOLE__AUTO_SHARE__ENABLED": "true",
        }
        children = [Child("central", central_env, logs / "central.log")]
        # unit-01 wears a (simulated) body-cam on the link, and keeps evidence.
        self.bodycam_port, self.control_port = _port_or_free(0), _port_or_free(0)
        children.append(
            Child(
                "bodycam-sim",
                common,
                logs / "bodycam-sim.log",
                args=[
                    "--listen",
                    f"tcp://127.0.0.1:{self.bodycam_port}",
                    "--control",
                    f"127.0.0.1:{self.control_port}",
                    "--serial",
                    "DEMO-CAM-01",
                    "--at",
                    f"{BODYCAM_TRIGGER_S:g}=trigger holster_draw",
                ],
            )
        )
        for unit in self.unit_ids:
            # Unit, broker, center and certificates: from the agent.toml enrollment wrote.
            agent_env = {
                **common,
                # The broker's port is new at each run; a kept enrollment names the last one.
                "RTCC_MQTT_URL": f"mqtts://127.0.0.1:{broker_port}",
                "RTCC_SIM__EVENT_INTERVAL_S": "30",
                "RTCC_RUNTIME__POSITION_MIN_INTERVAL_S": "2",
                "RTCC_ICE__HOST_ADDRESSES": loopback,
            }
            if unit == self.unit_ids[0]:
                agent_env["RTCC_DEVICE__LINK"] = f"tcp://127.0.0.1:{self.bodycam_port}"
                agent_env["RTCC_EVIDENCE__PRE_EVENT_S"] = "15"
            else:
                # No body-cam is attached to these units: no camera to keep running.
                agent_env["RTCC_EVIDENCE__ENABLED"] = "false"
            config = ["--config", str(EnrollFiles(self.data_dir / unit).config)]
            children.append(Child(f"agent:{unit}", agent_env, logs / f"{unit}.log", config))
        return children

    @property
    def unit_ids(self) -> list[str]:
        return [f"unit-{n:02d}" for n in range(1, self.units + 1)]

    def _enroll_units(self) -> None:
        """Each simulated gateway enrolls as a tech would enroll a real one: a one-time code,
        keys made in its own folder, a certificate from the center's device CA (mutual TLS
        to the broker). Enrolled once per data directory."""
        settings = load_settings(CentralSettings, data_dir=self.data_dir / "central")
        database = open_migrated(settings.database())
        try:
            provisioning = Provisioning(database, settings.data_dir, settings.provision)
            for unit in self.unit_ids:
                folder = self.data_dir / unit
                if EnrollFiles(folder).config.exists():
                    continue
                code = provisioning.create_code(Operator("demo"), unit)
                enroll(self.api, code, folder, self.ca_file, io.StringIO())
        finally:
            database.close()

    def _make_logins(self) -> None:
        """One login per role, TOTP for the roles that need it, and an API key with every
        scope (for curl and for the demo's own remote starts), printed in the banner and
        kept in `{data_dir}/demo-logins.txt` (0600)."""
        center_dir = self.data_dir / "central"
        center_dir.mkdir(parents=True, exist_ok=True)
        settings = load_settings(CentralSettings, data_dir=center_dir)
        database = open_migrated(settings.database())
        operator = Operator("demo")
        lines = []
        try:
            people = People(database, operator, settings.access.passwords, anchor_file(center_dir))
            for role in Role:
                name = f"demo-{role.value}"
                # The patrol login is the in-car laptop of the unit next to the body-cam's.
                unit = f"unit-{min(2, self.units):02d}" if role is Role.PATROL else None
                password = people.add(name, role.value, unit_id=unit)
                line = f"{role.value:<11}{name:<17} password {password}"
                if unit is not None:
                    line += f"  (unit {unit})"
                if needs_second_factor(role):
                    line += f"  TOTP secret {people.enroll_totp(name).secret}"
                lines.append(line)
            self.key = add_client(database, operator, "demo", [s.value for s in Scope])
        finally:
            database.close()
        lines.append(f"API key    {self.key}")
        self.logins = lines
        write_atomic(
            self.data_dir / "demo-logins.txt", "\n".join(lines).encode() + b"\n", mode=0o600
        )

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self._make_logins)
        children = self._children()
        tasks = [asyncio.create_task(c.keep_running(), name=c.name) for c in children[:1]]
        try:
            if not await self._wait_healthy(stop):
                print(f"center did not come up; see {self.data_dir / 'logs'}")
                return
            try:
                await asyncio.to_thread(self._enroll_units)
            except EnrollFailed as exc:
                print(f"a simulated unit could not enroll: {exc}")
                return
            tasks += [asyncio.create_task(c.keep_running(), name=c.name) for c in children[1:]]
            self._banner(await self._start_streams(stop))
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), REFRESH_S)
                if not stop.is_set():
                    await self._show_fleet()
        finally:
            print("\nstopping: agents first, then the center ...")
            for child in children[1:]:
                child.stopping = True
            await asyncio.gather(*(c.stop() for c in children[1:]))
            await children[0].stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            print(f"stopped. Logs and state are in {self.data_dir}")

    async def _wait_healthy(self, stop: asyncio.Event, timeout: float = 30.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                if (await asyncio.to_thread(self._get, "/healthz"))["mqtt_connected"]:
                    return True
            await asyncio.sleep(0.2)
        return False

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(self.api + path, headers=self._auth())
        with urllib.request.urlopen(request, timeout=5, context=self._tls()) as response:
            return json.load(response)

    def _tls(self) -> ssl.SSLContext:
        """The center's certificate, checked against the CA it made (OSError until then)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    async def _start_streams(self, stop: asyncio.Event) -> list[str]:
        """Remote-start the body-cams of the first units, as a dispatcher would."""
        wanted = [f"unit-{n:02d}" for n in range(1, min(STREAMING_UNITS, self.units) + 1)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not stop.is_set() and loop.time() < deadline:
            with contextlib.suppress(OSError, ValueError):
                units = await asyncio.to_thread(self._get, "/api/v1/units")
                if {u["unit_id"] for u in units if u["online"]} >= set(wanted):
                    break
            await asyncio.sleep(0.3)
        urls = []
        for unit in wanted:
            try:
                grant = await asyncio.to_thread(self._post, f"/api/v1/units/{unit}/stream")
                urls.append(f"{unit}: {grant['view_url']}")
            except (OSError, ValueError, KeyError) as exc:
                urls.append(f"{unit}: could not start its stream ({exc})")
        return urls

    def _post(self, path: str) -> Any:
        body = json.dumps({"reason": "demo"}).encode()
        request = urllib.request.Request(self.api + path, body, self._auth(), method="POST")
        with urllib.request.urlopen(request, timeout=20, context=self._tls()) as response:
            return json.load(response)

    def _banner(self, streams: list[str]) -> None:
        live = "\n".join(f"  live       {line}" for line in streams)
        logins = "\n".join(f"             {line}" for line in self.logins)
        print(f"""
rtcc demo is running: the center, its Mosquitto (mutual TLS) and {self.units} simulated patrol
units, each enrolled with a one-time code and speaking with its own certificate.

{live}

  console    {self.api}/console  (sign in as demo-dispatcher; codes from its TOTP secret)
  patrol     {self.api}/patrol  (demo-patrol, the in-car laptop: no code needed)
  sign in    {self.api}/  (one login per role; authenticator codes from the TOTP secrets)
  HTTPS      the center's own CA is {self.ca_file}: trust it in the browser (Chromium:
             Settings > Privacy > Security > Manage certificates > Authorities > Import;
             curl: --cacert), or accept the warning once for this demo
{logins}
  API        curl --cacert {self.ca_file} -H "Authorization: Bearer $KEY" \\
               {self.api}/api/v1/units
  API docs   {self.api}/docs  (signed in)
  metrics    {self.api}/metrics
  command    curl --cacert {self.ca_file} -X POST {self.api}/api/v1/units/unit-01/commands \\
               -H "Authorization: Bearer $KEY" \\
               -H 'content-type: application/json' -d '{{"name": "ping"}}'
  alerts     {self.api}/api/v1/alerts
  evidence   {self.api}/api/v1/evidence
  body-cam   unit-01's officer draws a weapon {BODYCAM_TRIGGER_S:g} s in (alert, recording with
             15 s before it, evidence uploaded, its video shared with the patrols within
             2 km); do it again yourself with
               printf 'trigger holster_draw\\n' > /dev/tcp/127.0.0.1/{self.control_port}
  logs/state {self.data_dir}

Open a "live" link in a browser to watch a body-cam. Ctrl-C stops everything.
""")

    async def _show_fleet(self) -> None:
        try:
            units = await asyncio.to_thread(self._get, "/api/v1/units")
        except (OSError, ValueError) as exc:
            print(f"  (center unreachable: {exc})")
            return
        online = sum(1 for u in units if u["online"])
        print(f"-- {online}/{len(units)} units online")
        for unit in units:
            state = unit.get("state") or {}
            pos = state.get("position") or {}
            where = f"{pos['lat']:.5f},{pos['lon']:.5f}" if pos else "-"
            speed = f"{pos.get('speed_mps', 0) * 3.6:4.0f} km/h" if pos else ""
            battery = state.get("battery_pct")
            print(
                f"   {unit['unit_id']:<10} {'online ' if unit['online'] else 'offline'} "
                f"{where:<22} {speed:<9} battery {battery if battery is not None else '-'}%"
            )
