"""Network-namespace plumbing for the lab: iproute2 commands, processes started with
`ip netns exec`, and calls made from inside a namespace without a new process.

A network namespace belongs to a thread, not to a process: `call_in` runs a function on a
fresh thread that first joins the namespace. Sockets it creates stay in that namespace for
their whole life, whichever thread uses them later, and processes it starts are born there.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(Exception):
    pass


def unavailable() -> str | None:
    """Why network namespaces cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


def sh(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def exec_argv(namespace: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv]


def call_in(namespace: str, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a new thread that has joined `namespace`; its result or its error."""
    result: list[T] = []
    error: list[BaseException] = []

    def enter_and_run() -> None:
        try:
            fd = os.open(NETNS_DIR / namespace, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns {namespace}: {os.strerror(errno)}")
            finally:
                os.close(fd)
            result.append(fn(*args))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=enter_and_run, name=f"netns-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def write_sysctl(namespace: str, key: str, value: str) -> None:
    """A per-namespace sysctl (net.*), skipped when this kernel lacks the key."""

    def write() -> None:
        path = Path("/proc/sys") / key.replace(".", "/")
        if path.exists():
            path.write_text(value)

    call_in(namespace, write)
