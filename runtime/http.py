"""uvicorn embedded in a process that owns its signals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """The process stops every part in order on SIGTERM/Ctrl-C; uvicorn must not grab the
    signals for itself. Stop it with `should_exit = True`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
