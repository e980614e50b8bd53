"""The typed contracts: every command's arguments and result, trigger bodies, the stamper."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.handlers import HANDLERS
from agent.triggers import DEFAULT_RULES
from firmware_bridge.link.bodycam import BUTTON_EVENTS, SENSOR_EVENTS
from protocol import Presence, Stamper, Topic, decode
from protocol.commands import (
    COMMAND_ARGS,
    COMMAND_RESULTS,
    CommandName,
    ConfigSetArgs,
    RecordingStartArgs,
)
from protocol.events import TRIGGER_EVENTS, EventType, TriggerBody
from protocol.streams import StreamStartArgs
from protocol.upload import SegmentUpload, segment_path

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def test_every_command_has_arguments_a_result_and_a_handler() -> None:
    assert set(COMMAND_ARGS) == set(COMMAND_RESULTS) == set(HANDLERS) == set(CommandName)
    assert COMMAND_ARGS[CommandName.STREAM_START] is StreamStartArgs


def test_arguments_refuse_unknown_fields_and_keep_their_defaults() -> None:
    assert RecordingStartArgs.model_validate({}).trigger == "command"
    assert ConfigSetArgs.model_validate({"state_heartbeat_s": 7}).state_heartbeat_s == 7
    for model in COMMAND_ARGS.values():
        with pytest.raises(ValidationError):
            model.model_validate({"surely_not_an_argument": 1})


@given(st.sampled_from(list(CommandName)), st.dictionaries(st.text(max_size=24), JSON))
def test_any_arguments_either_fit_or_raise_a_validation_error(
    name: CommandName, args: dict[str, object]
) -> None:
    with contextlib.suppress(ValidationError):
        COMMAND_ARGS[name].model_validate(args)


@given(st.dictionaries(st.sampled_from(["trigger", "actions", "stream", "recording"]), JSON))
def test_any_trigger_body_either_fits_or_raises_a_validation_error(data: dict[str, object]) -> None:
    try:
        body = TriggerBody.model_validate(data)
    except ValidationError:
        return
    assert body.event_type in TRIGGER_EVENTS


def test_event_types_are_valid_names_on_the_wire() -> None:
    for event_type in EventType:
        assert Topic.event("u1", event_type).name == event_type


def test_the_body_cam_and_the_default_rules_name_events_of_the_contract() -> None:
    named = [*BUTTON_EVENTS.values(), *SENSOR_EVENTS.values(), *(r.event for r in DEFAULT_RULES)]
    assert {EventType(name) for name in named}


def test_the_stamper_numbers_a_session_from_its_will() -> None:
    stamper, topic = Stamper(), Topic.presence("u1")
    will = decode(topic, stamper.session(41, topic, Presence(online=False, reason="lwt"), 5.0))
    assert (will.envelope.sid, will.envelope.seq) == (41, 0)
    msg_id = uuid.uuid4()
    birth = Presence(online=True, reason="birth")
    first = decode(topic, stamper.stamp(topic, birth, 6.0, msg_id)).envelope
    second = decode(topic, stamper.stamp(topic, birth, 7.0)).envelope
    assert (first.seq, first.id, first.ts) == (1, msg_id, 6.0)
    assert (second.sid, second.seq) == (41, 2)
    stamper.session(42, topic, Presence(online=False, reason="lwt"), 8.0)
    assert decode(topic, stamper.stamp(topic, birth, 9.0)).envelope.seq == 1


def test_the_upload_contract() -> None:
    assert segment_path("u1-r", 3) == "/api/v1/evidence/u1-r/segments/3"
    state = SegmentUpload.model_validate_json(
        json.dumps({"offset": 5, "size": 9, "confirmed": False})
    )
    assert state.offset == 5 and not state.confirmed
