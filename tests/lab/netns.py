"""Network-namespace plumbing for the lab: iproute2 commands, processes started with
`ip netns exec`, and calls made from inside a namespace without a new process.

A network namespace belongs to a thread, not to a process: a `NamespaceWorker` is one
thread that joins a namespace and runs the functions handed to it. Sockets they create stay
in that namespace for their whole life, whichever thread uses them later, and processes
they start are born there. The thread lives as long as the lab, because Linux tells a child
that asked for a parent-death signal (runtime.process.die_with_parent) when the *thread*
that started it ends.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


class NamespaceWorker:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"netns-{namespace}", initializer=self._enter
        )

    def _enter(self) -> None:
        fd = os.open(NETNS_DIR / self.namespace, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns {self.namespace}: {os.strerror(errno)}")
        finally:
            os.close(fd)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` inside the namespace: its result or its error. Calls take turns on
        one thread, so each should return promptly."""
        return self._executor.submit(fn, *args).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def write_sysctl(key: str, value: str) -> None:
    """A sysctl of the calling thread's namespace (net.*); skipped when the kernel lacks it."""
    path = Path("/proc/sys") / key.replace(".", "/")
    if path.exists():
        path.write_text(value)
