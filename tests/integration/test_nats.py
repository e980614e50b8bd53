"""The contract over NATS' MQTT listener (3.1.1 only, no dots in topics): the clustered
broker a city scales out on must carry everything Mosquitto does."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.broker import free_port
from tests.helpers import running_agent, running_center, wait_for

MQTT_311 = {
    "protocol": "3.1.1",
    "keepalive_s": 4,
    "reconnect_initial_s": 0.2,
    "reconnect_max_s": 1.0,
}


@pytest.fixture
def nats_mqtt_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        pytest.skip("nats-server is not installed (Debian: apt-get install nats-server)")
    mqtt_port = free_port()
    conf = tmp_path / "nats.conf"
    conf.write_text(
        f"server_name: rtcc-test\nlisten: 127.0.0.1:{free_port()}\n"
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        f"mqtt {{ listen: 127.0.0.1:{mqtt_port} }}\n"
    )
    log = (tmp_path / "nats.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while b"Server is ready" not in (tmp_path / "nats.log").read_bytes():
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{mqtt_port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        errors = [
            line for line in (tmp_path / "nats.log").read_text().splitlines() if "[ERR]" in line
        ]
        assert not errors, errors


async def test_presence_state_commands_and_events_over_nats(
    nats_mqtt_url: str, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    async with running_center(nats_mqtt_url, f"c-{unique}", mqtt=MQTT_311) as center:
        async with running_agent(unit, nats_mqtt_url, tmp_path, mqtt=MQTT_311) as agent:
            await wait_for(
                lambda: (r := center.fleet.registry.get(unit)) and r.online and r.state is not None,
                timeout=15,
            )
            url = f"/api/v1/units/{unit}/commands"
            ping = await center.http.post(url, json={"name": "ping"})
            assert ping.json()["status"] == "done"
            config = await center.http.post(
                url, json={"name": "config.set", "args": {"state_heartbeat_s": 9}}
            )
            assert config.json()["status"] == "done"
            agent.record_event("button.mark", {"n": 1}, time.time())
            await wait_for(
                lambda: any(
                    e.unit_id == unit and e.event.type == "button.mark"
                    for e in center.fleet.recent_events
                )
            )
        await wait_for(lambda: center.fleet.registry.get(unit).online is False)  # type: ignore[union-attr]
