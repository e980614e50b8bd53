"""`rtcc provision enroll --install-service`: the shipped systemd unit, installed and started.

The unit file (agent/systemd/rtcc-agent.service) is the one source of where things are: its
StateDirectory= is the folder enrollment writes to, its ExecStart= reads agent.toml there,
and its User= owns that folder. Installing puts the unit in /etc/systemd/system with
ExecStart= pointing at the rtcc being run, makes the user (as root), hands it the folder,
and enables and starts the service. The system commands go through a `Host`, so tests run
all of it under a temporary root with the commands recorded instead of run.

RTCC_INSTALL_ROOT moves /etc and /var/lib under another directory, for tests: agent.toml and
the unit still name the paths as seen on the gateway, and no user or service of this machine
is touched (the commands are printed).
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol, TextIO

from runtime.files import write_atomic

UNIT_NAME = "rtcc-agent.service"
SHIPPED_UNIT = Path(__file__).parent / "systemd" / UNIT_NAME
ROOT_ENV = "RTCC_INSTALL_ROOT"
UNIT_DIR = PurePosixPath("/etc/systemd/system")
STATE_ROOT = PurePosixPath("/var/lib")
# What the agent opens besides its own files: serial links (dialout) and cameras (video).
DEVICE_GROUPS = ("dialout", "video")
# Hidden from the service by the unit's ProtectHome=yes.
HOME_PREFIXES = ("/home/", "/root/", "/run/user/")


class InstallFailed(Exception):
    """Why the service was not installed, in one line for the tech."""


@dataclass(frozen=True, slots=True)
class Ran:
    returncode: int
    output: str


class Host(Protocol):
    """The system the service is installed on: what the installer asks of it and runs."""

    def is_root(self) -> bool: ...

    def systemd_running(self) -> bool: ...

    def user_ids(self, name: str) -> tuple[int, int] | None: ...

    def has_group(self, name: str) -> bool: ...

    def run(self, argv: Sequence[str]) -> Ran: ...


class SystemHost:
    """This machine."""

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def systemd_running(self) -> bool:
        # sd_booted(): systemd is PID 1 (not so in most containers).
        return Path("/run/systemd/system").is_dir()

    def user_ids(self, name: str) -> tuple[int, int] | None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return entry.pw_uid, entry.pw_gid

    def has_group(self, name: str) -> bool:
        try:
            grp.getgrnam(name)
        except KeyError:
            return False
        return True

    def run(self, argv: Sequence[str]) -> Ran:
        try:
            done = subprocess.run(
                list(argv), check=False, capture_output=True, text=True, timeout=300
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Ran(127, str(exc))
        return Ran(done.returncode, (done.stderr or done.stdout).strip())


class RelocatedHost(SystemHost):
    """Under RTCC_INSTALL_ROOT: this machine's users and services are not the ones being
    installed, so nothing is changed on it; the commands are printed instead."""

    def is_root(self) -> bool:
        return False

    def systemd_running(self) -> bool:
        return False


def system_host(root: Path) -> Host:
    return SystemHost() if root == Path("/") else RelocatedHost()


@dataclass(frozen=True, slots=True)
class UnitFacts:
    """What the unit file says about where the agent runs."""

    user: str
    group: str
    state_dir: PurePosixPath
    config: PurePosixPath

    @classmethod
    def parse(cls, text: str) -> UnitFacts:
        service = _section(text, "Service")
        missing = [k for k in ("User", "StateDirectory", "ExecStart") if k not in service]
        if missing:
            raise InstallFailed(f"the unit file has no {', '.join(missing)}= in [Service]")
        argv = shlex.split(service["ExecStart"])
        if "--config" not in argv[:-1]:
            raise InstallFailed("the unit file's ExecStart= has no --config FILE")
        state_dir = STATE_ROOT / service["StateDirectory"].split()[0]
        config = PurePosixPath(argv[argv.index("--config") + 1])
        if config != state_dir / "agent.toml":
            raise InstallFailed(
                f"the unit file's agent reads {config}, but enrollment writes"
                f" {state_dir / 'agent.toml'} (its StateDirectory=)"
            )
        user = service["User"]
        return cls(user, service.get("Group", user), state_dir, config)


def _section(text: str, name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == f"[{name}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), value.strip())  # first: ExecStart is one
    return found


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things go: under `root` ("/" on a gateway)."""

    root: Path
    facts: UnitFacts

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], unit_text: str) -> Layout:
        return cls(Path(environ.get(ROOT_ENV) or "/"), UnitFacts.parse(unit_text))

    def at(self, path: PurePosixPath) -> Path:
        return self.root / path.relative_to("/")

    @property
    def unit_file(self) -> Path:
        return self.at(UNIT_DIR / UNIT_NAME)

    @property
    def folder(self) -> Path:
        """Where enrollment must write for the unit to find it."""
        return self.at(self.facts.state_dir)

    def check_writable(self, host: Host) -> None:
        """Before the code is spent: the unit can be put in place."""
        place = self.unit_file.parent
        while not place.exists() and place != place.parent:
            place = place.parent
        if not os.access(place, os.W_OK):
            hint = "" if host.is_root() else ": run it as root (sudo)"
            raise InstallFailed(f"cannot write {self.unit_file.parent}{hint}")


def rtcc_command() -> list[str]:
    """How systemd starts this rtcc: its console script next to this Python, else the
    module with this Python."""
    script = Path(sys.executable).parent / "rtcc"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("rtcc")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "rtcc"]


def unit_text(shipped: str, command: Sequence[str], facts: UnitFacts) -> str:
    """The shipped unit with ExecStart= running `command`."""
    start = shlex.join([*command, "agent", "--config", str(facts.config)])
    lines = [
        f"ExecStart={start}" if line.startswith("ExecStart=") else line
        for line in shipped.splitlines()
    ]
    return "\n".join(lines) + "\n"


def install(layout: Layout, shipped: str, host: Host, out: TextIO) -> None:
    """Put the unit in place, give the enrollment folder to the service's user, enable and
    start it; InstallFailed for what stops that. Steps that need root or a running systemd
    are skipped with the commands to run instead."""
    facts = layout.facts
    command = rtcc_command()
    write_atomic(layout.unit_file, unit_text(shipped, command, facts).encode(), mode=0o644)
    print(f"Installed {layout.unit_file} (runs {shlex.join(command)}).", file=out, flush=True)
    if command[0].startswith(HOME_PREFIXES):
        print(
            f"Warning: {command[0]} is under a home folder, which the unit's ProtectHome=yes"
            " hides from the service: install rtcc under /opt (e.g. python3 -m venv /opt/rtcc).",
            file=out,
        )
    if not host.is_root():
        print(
            f"Not root: {facts.user} not created and {layout.folder} not given to it."
            f" As root run: {shlex.join(useradd_argv(facts, host))};"
            f" chown -R {facts.user}:{facts.group} {layout.folder}",
            file=out,
        )
    else:
        uid, gid = _ensure_user(facts, host, out)
        give_folder(layout.folder, uid, gid)
        print(f"Gave {layout.folder} to {facts.user}.", file=out, flush=True)
    _start(host, out)


def useradd_argv(facts: UnitFacts, host: Host) -> list[str]:
    groups = [g for g in DEVICE_GROUPS if host.has_group(g)]
    return [
        "useradd",
        "--system",
        "--user-group",
        *(["--groups", ",".join(groups)] if groups else []),
        "--home-dir",
        str(facts.state_dir),
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        facts.user,
    ]


def _ensure_user(facts: UnitFacts, host: Host, out: TextIO) -> tuple[int, int]:
    ids = host.user_ids(facts.user)
    if ids is not None:
        return ids
    ran = host.run(useradd_argv(facts, host))
    if ran.returncode != 0:
        raise InstallFailed(f"useradd {facts.user} failed: {ran.output or ran.returncode}")
    ids = host.user_ids(facts.user)
    if ids is None:
        raise InstallFailed(f"useradd succeeded but there is no user {facts.user}")
    print(f"Created system user {facts.user}.", file=out, flush=True)
    return ids


def give_folder(folder: Path, uid: int, gid: int) -> None:
    """The folder and everything in it, symlinks themselves (never what they lead to)."""
    os.lchown(folder, uid, gid)
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            os.lchown(Path(parent) / name, uid, gid)


# enable + restart rather than enable --now: a re-enrolled gateway whose agent already runs
# must restart it to use the new certificate.
START = (
    ("systemctl", "daemon-reload"),
    ("systemctl", "enable", UNIT_NAME),
    ("systemctl", "restart", UNIT_NAME),
)


def _start(host: Host, out: TextIO) -> None:
    commands = "; ".join(shlex.join(c) for c in START)
    if not host.systemd_running():
        print(
            f"systemd is not running here (a container?): the service is not started. On the"
            f" gateway run: {commands}",
            file=out,
        )
        return
    if not host.is_root():
        print(f"Not root: the service is not started. As root run: {commands}", file=out)
        return
    for argv in START:
        ran = host.run(argv)
        if ran.returncode != 0:
            raise InstallFailed(f"{shlex.join(argv)} failed: {ran.output or ran.returncode}")
    print(f"Enabled and started {UNIT_NAME} (journalctl -u {UNIT_NAME} for its log).", file=out)
