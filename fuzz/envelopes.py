"""Coverage-guided fuzzing (atheris) of what arrives from outside at the center: MQTT topics
and payloads, command arguments and trigger bodies, stream tokens and evidence manifests, and
at the unit what gpsd reports. Only the documented errors may escape.

    .venv/bin/python fuzz/envelopes.py -max_total_time=60
"""

from __future__ import annotations

import contextlib
import sys

import atheris

INSTRUMENTED = ["firmware_bridge", "protocol", "agent.vehicle.gpsd_reports"]

# Only our code: instrumenting some compiled third-party modules crashes the fuzzer.
with atheris.instrument_imports(include=INSTRUMENTED, enable_loader_override=False):
    from pydantic import ValidationError

    from agent.vehicle.gpsd_reports import parse_line
    from protocol import ProtocolError
    from protocol.codec import decode
    from protocol.commands import COMMAND_ARGS, CommandName
    from protocol.events import TriggerBody
    from protocol.evidence import parse_manifest, verify
    from protocol.tokens import TokenError, TokenSigner

SIGNER = TokenSigner({"k": b"k" * 32}, "k")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    topic = fdp.ConsumeUnicodeNoSurrogates(80)
    payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
    with contextlib.suppress(ProtocolError):
        decode(topic, payload)
    name = fdp.PickValueInList(list(CommandName))
    with contextlib.suppress(ValidationError):
        COMMAND_ARGS[name].model_validate_json(payload)
    with contextlib.suppress(ValidationError):
        TriggerBody.model_validate_json(payload)
    parse_line(payload, 0.0)
    text = fdp.ConsumeUnicodeNoSurrogates(600)
    with contextlib.suppress(TokenError):
        SIGNER.verify(text, "whep", "stream", 0.0)
    entries, _ = parse_manifest(text)
    verify(entries, {}, None)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
