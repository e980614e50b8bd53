"""Property-based fuzzing of the center's whole HTTP API from its own OpenAPI document
(schemathesis), against a real `rtcc central` process signed in as a dispatcher: whatever
the generated request, the center answers it without a server error."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from central.access import totp
from central.broker import free_port
from central.db.engine import default_url
from central.db.schema import open_migrated
from central.people import Operator, People
from tests.center_cli import CHEAP_PASSWORDS
from tests.center_tls import ca_file, https_settings

PASSWORD = "a dispatcher's long password"
# Sign-out and unlock would end or change the fuzzer's own session.
SESSION_ROUTES = "/api/v1/session"
# An event stream never ends; its one input (Last-Event-ID) is fuzzed with the feed's core.
LIVE_FEED = "/api/v1/live"
EXAMPLES = 25  # per operation


@dataclass
class RunningCenter:
    url: str
    session: requests.Session


def _signed_in_dispatcher(data_dir: Path) -> str:
    """Makes the dispatcher (with TOTP) in the center's database; returns the TOTP secret."""
    database = open_migrated(default_url(data_dir))
    try:
        people = People(database, Operator("tests"), CHEAP_PASSWORDS)
        people.add("fuzz", "dispatcher", PASSWORD)
        return people.enroll_totp("fuzz").secret
    finally:
        database.close()


def _wait_healthy(session: requests.Session, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    last = ""
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the center exited"
        try:
            answer = session.get(url + "/healthz", timeout=1)
            if answer.status_code == 200:
                return
            last = answer.text
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.1)
    raise TimeoutError(f"the center did not come up: {last}")


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory, mosquitto_url: str) -> Iterator[RunningCenter]:
    data_dir = tmp_path_factory.mktemp("fuzz-center")
    secret = _signed_in_dispatcher(data_dir)
    port = free_port()
    http = https_settings(port)
    env = {
        **os.environ,
        "RTCC_DATA_DIR": str(data_dir),
        "RTCC_MQTT_URL": mosquitto_url,
        "RTCC_HTTP__PORT": str(port),
        "RTCC_HTTP__CERT_FILE": str(http["cert_file"]),
        "RTCC_HTTP__KEY_FILE": str(http["key_file"]),
        "RTCC_RELAY__WORKERS": "1",
        "RTCC_RELAY__ICE__HOST_ADDRESSES": '["127.0.0.1"]',
        "RTCC_LOG__LEVEL": "warning",
        **{
            f"RTCC_ACCESS__PASSWORDS__{field.upper()}": str(getattr(CHEAP_PASSWORDS, field))
            for field in ("time_cost", "memory_kib", "parallelism")
        },
    }
    log = (data_dir / "center.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtcc", "central"], env=env, stdout=log, stderr=log
    )
    url = f"https://127.0.0.1:{port}"
    session = requests.Session()
    # No CA bundle or proxy from the environment: requests would prefer those to `verify`.
    session.trust_env = False
    session.verify = str(ca_file())
    try:
        _wait_healthy(session, url, proc)
        code = totp.code_at(secret, totp.time_step(time.time()))
        body = {"name": "fuzz", "password": PASSWORD, "code": code}
        signed = session.post(url + "/api/v1/session", json=body, timeout=10)
        assert signed.status_code == 200, signed.text
        session.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
        yield RunningCenter(url, session)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert "Traceback" not in (data_dir / "center.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def mosquitto_url(mosquitto: object) -> str:
    return str(getattr(mosquitto, "url"))  # noqa: B009


def test_no_route_answers_a_server_error(center: RunningCenter) -> None:
    document = center.session.get(center.url + "/openapi.json", timeout=10)
    assert document.status_code == 200, document.text
    schema = schemathesis.openapi.from_dict(document.json()).exclude(
        path=[SESSION_ROUTES, LIVE_FEED]
    )
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    assert len(operations) >= 20
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: schemathesis.Case[Any]) -> None:
            response = case.call(
                base_url=center.url, session=center.session, verify=str(ca_file()), timeout=30
            )
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:300]}")

        no_server_error()
    assert not failures, failures
