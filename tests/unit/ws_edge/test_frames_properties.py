"""Property tests of the frame decoder: whatever text arrives, the edge gets either a typed
frame or one short, readable BadFrame; never another exception, never an echo of the input."""

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_core.events import CLIENT_EVENTS, STATUSES, ClientFrame, client_frame_adapter
from ws_edge.frames import BadFrame, decode_client_frame

# An error is one line a person can read; echoing a 64 KiB input back would make the edge
# an amplifier.
MAX_ERROR_CHARS = 600

ids = st.text(min_size=1, max_size=128)
valid_frames = st.one_of(
    st.fixed_dictionaries({"event": st.just("typing"), "conversationId": ids}),
    st.fixed_dictionaries(
        {"event": st.just("message_read"), "conversationId": ids, "messageId": ids}
    ),
    st.fixed_dictionaries({"event": st.just("heartbeat")}),
    st.fixed_dictionaries({"event": st.just("status_change"), "status": st.sampled_from(STATUSES)}),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)


def decode(text: str) -> ClientFrame | str:
    """The frame, or the error message the client would get."""
    try:
        return decode_client_frame(text)
    except BadFrame as error:
        message = str(error)
        assert message
        assert len(message) <= MAX_ERROR_CHARS, message[:200]
        return message


@given(st.text(max_size=2000))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_any_text_is_a_frame_or_one_short_error(text: str) -> None:
    decode(text)


@given(json_values)
def test_any_json_is_a_frame_or_one_short_error(value: Any) -> None:
    decode(json.dumps(value))


@given(valid_frames, st.dictionaries(st.text(max_size=10), json_values, max_size=3))
def test_valid_frames_decode_to_what_was_sent_whatever_extra_fields_come_along(
    frame: dict[str, Any], extra: dict[str, Any]
) -> None:
    decoded = decode(json.dumps({**extra, **frame}))
    assert not isinstance(decoded, str), decoded
    assert decoded.model_dump(by_alias=True) == client_frame_adapter.validate_python(
        frame
    ).model_dump(by_alias=True)


@given(valid_frames, st.data())
def test_a_frame_with_one_field_of_the_wrong_type_says_which_field(
    frame: dict[str, Any], data: st.DataObject
) -> None:
    fields = [key for key in frame if key != "event"]
    if not fields:
        return
    field = data.draw(st.sampled_from(fields))
    wrong = data.draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.none()))
    message = decode(json.dumps({**frame, field: wrong}))
    assert isinstance(message, str)
    assert field in message


@given(st.text(min_size=1, max_size=20) | st.text(min_size=600, max_size=5000))
def test_an_unknown_event_name_is_not_echoed_at_length(name: str) -> None:
    message = decode(json.dumps({"event": name}))
    if name not in CLIENT_EVENTS:
        assert isinstance(message, str)
        assert message.startswith("unknown event")


def test_deep_nesting_and_huge_numbers_are_refused_plainly() -> None:
    for text in (
        "[" * 20_000 + "]" * 20_000,
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        '{"event": "typing", "conversationId": ' + "9" * 5_000 + "}",
        '{"event": 1e999}',
        '{"event": "heartbeat", "x": -1e999}',
        '{"event": "typing", "conversationId": "\\ud800"}',
        '{"event": "status_change", "status": "busy\\u0000"}',
    ):
        decode(text)
