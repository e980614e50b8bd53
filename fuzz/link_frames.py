"""Coverage-guided fuzzing (atheris) of the body-cam link parser and session layer:
whatever bytes arrive, nothing may raise and the buffer stays bounded.

    .venv/bin/python fuzz/link_frames.py -max_total_time=60
"""

from __future__ import annotations

import sys

import atheris

INSTRUMENTED = ["firmware_bridge", "protocol"]

# Only our code: instrumenting some compiled third-party modules crashes the fuzzer.
with atheris.instrument_imports(include=INSTRUMENTED, enable_loader_override=False):
    from firmware_bridge.link.bodycam import BodycamState
    from firmware_bridge.link.frames import MAX_FRAME, FrameParser
    from firmware_bridge.link.session import LinkSession


def test_one_input(data: bytes) -> None:
    parser = FrameParser()
    half = len(data) // 2
    parser.feed(data[:half])
    parser.feed(data[half:])
    assert len(parser._buffer) <= MAX_FRAME
    session, state = LinkSession(), BodycamState()
    for message in session.receive(data, 0.0):
        state.apply(message, 0.0)
    session.outgoing(1.0)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
