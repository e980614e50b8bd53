"""A Mosquitto child process: generated config on a free loopback port, restarted if it dies.

Used by `rtcc central` when no external broker is configured, by `rtcc demo`, and by the
test suite (one real broker per test session). With `MosquittoOptions(tls=...)` it listens
with mutual TLS and per-unit access instead (central/broker_security.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from central.broker_security import BrokerTls, crl_problem, dynsec_with_center
from runtime.backoff import Backoff, Retry
from runtime.files import write_atomic
from runtime.process import die_with_parent, keep_running

log = structlog.get_logger("rtcc.broker")


class BrokerError(Exception):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class MosquittoOptions:
    host: str = "127.0.0.1"
    port: int = 0
    persistence: bool = True
    max_queued_messages: int = 100_000
    max_inflight_messages: int = 1000
    # Mutual TLS with per-unit access instead of the plain, open listener (which is then off).
    tls: BrokerTls | None = None

    def render(self, data_dir: Path, port: int) -> str:
        if self.tls is not None:
            lines = self.tls.render(self.host, port, dynsec_file(data_dir))
        else:
            lines = [
                "per_listener_settings false",
                f"listener {port} {self.host}",
                "allow_anonymous true",
            ]
        lines += [
            "set_tcp_nodelay true",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_inflight_messages {self.max_inflight_messages}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages false",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {data_dir}/",
                "autosave_interval 10",
            ]
        if os.geteuid() == 0:
            # Without this, Mosquitto started as root drops to the 'mosquitto' user and can
            # no longer write its persistence file into our data directory.
            lines.append("user root")
        return "\n".join(lines) + "\n"


def dynsec_file(data_dir: Path) -> Path:
    return data_dir / "dynamic-security.json"


class MosquittoProcess:
    def __init__(self, data_dir: Path, options: MosquittoOptions = MosquittoOptions()) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.binary = binary
        self.data_dir = data_dir
        self.options = options
        self.port = options.port or free_port(options.host)
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.options.tls is not None else "mqtt"
        return f"{scheme}://{self.options.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        # The plugin rewrites its file with the default umask: the folder keeps it private.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._check_crl()
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(self.options.render(self.data_dir, self.port))
        if self.options.tls is not None:
            self._write_dynsec(self.options.tls)
        log_file = (self.data_dir / "mosquitto.log").open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=log_file,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C meant for us must not kill the broker before we
            # have said goodbye through it.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (one prctl call, no locks)
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"mosquitto exited at start: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.options.host, self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def _write_dynsec(self, tls: BrokerTls) -> None:
        """The plugin keeps its file up to date with the units; every client's rights are
        made what this version gives at every start (another center id or identity, the
        monitors configured now, or rights changed by an upgrade since it was written)."""
        path = dynsec_file(self.data_dir)
        try:
            text = dynsec_with_center(path.read_text(), tls.identities)
        except FileNotFoundError:
            text = tls.dynsec_text()
        except (OSError, ValueError) as exc:
            aside = path.with_suffix(".unreadable")
            path.replace(aside)
            log.error("dynsec_file_unreadable", error=str(exc), moved_to=str(aside))
            text = tls.dynsec_text()
        write_atomic(path, text.encode(), mode=0o600)

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def reload(self) -> None:
        """Make the broker re-read its configuration and, on the TLS listener, the CRL
        (only a usable one: see central/broker_security.py)."""
        if self._proc is None or self._proc.poll() is not None:
            raise BrokerError("mosquitto is not running")
        self._check_crl()
        self._proc.send_signal(signal.SIGHUP)

    def _check_crl(self) -> None:
        tls = self.options.tls
        if tls is None:
            return
        try:
            problem = crl_problem(
                tls.crl_file.read_bytes(), tls.ca_file.read_bytes(), dt.datetime.now(dt.UTC)
            )
        except OSError as exc:
            problem = str(exc)
        if problem is not None:
            raise BrokerError(f"not using CRL {tls.crl_file}: {problem}")

    def wait(self) -> int:
        """Block until the running broker exits; its return code."""
        assert self._proc is not None
        return self._proc.wait()

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def log_tail(self, lines: int = 5) -> str:
        path = self.data_dir / "mosquitto.log"
        if not path.exists():
            return ""
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])

    async def supervise(self, backoff: Backoff = Backoff(initial_s=0.2, max_s=10.0)) -> None:
        """Keep the broker running on the same port until cancelled; then stop it."""

        def died(code: int) -> None:
            log.error("broker_died", returncode=code, restarts=self.restarts, log=self.log_tail())

        def start_failed(exc: Exception) -> None:
            log.error("broker_start_failed", error=str(exc))

        # Every death after a good start waits the shortest delay; failed starts back off.
        await keep_running(
            _SupervisedBroker(self),
            Retry(backoff, healthy_after_s=0.0),
            died,
            on_start_failed=start_failed,
        )


class _SupervisedBroker:
    """The broker's blocking start, wait and stop, run off the event loop."""

    def __init__(self, broker: MosquittoProcess) -> None:
        self._broker = broker

    @property
    def restarts(self) -> int:
        return self._broker.restarts

    @restarts.setter
    def restarts(self, value: int) -> None:
        self._broker.restarts = value

    async def start(self) -> None:
        if not self._broker.running:
            await asyncio.to_thread(self._broker.start)

    async def wait(self) -> int:
        return await asyncio.to_thread(self._broker.wait)

    async def stop(self) -> None:
        await asyncio.to_thread(self._broker.stop)
