"""A stand-in for the machine `--install-service` installs on: it records the system
commands instead of running them, and answers what the installer asks of the system."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.install_service import Ran

# Whom the service's user is made as: another user than the test's when the test may chown
# to one (as root), else the test's own (so that chown works and changes nothing).
SERVICE_IDS = (4242, 4243) if os.geteuid() == 0 else (os.getuid(), os.getgid())


@dataclass
class RecordingHost:
    root: bool = True
    systemd: bool = True
    users: dict[str, tuple[int, int]] = field(default_factory=dict)
    groups: frozenset[str] = frozenset({"dialout", "video"})
    # argv[0] (or "systemctl restart") -> what that command answers instead of success.
    failing: dict[str, Ran] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def is_root(self) -> bool:
        return self.root

    def systemd_running(self) -> bool:
        return self.systemd

    def user_ids(self, name: str) -> tuple[int, int] | None:
        return self.users.get(name)

    def has_group(self, name: str) -> bool:
        return name in self.groups

    def run(self, argv: Sequence[str]) -> Ran:
        self.calls.append(list(argv))
        for key in (" ".join(argv[:2]), argv[0]):
            if key in self.failing:
                return self.failing[key]
        if argv[0] == "useradd":
            self.users[argv[-1]] = SERVICE_IDS
        return Ran(0, "")
