"""Child processes that never outlive their parent, even if the parent is SIGKILLed."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for children: Linux sends them SIGTERM when the parent dies. Children
    run in their own session (so a Ctrl-C reaches only the parent, which stops them in
    order), which would otherwise leave them running after a hard kill of the parent."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
