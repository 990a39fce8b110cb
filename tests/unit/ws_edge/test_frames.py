import json

import pytest

from chat_core.events import (
    ClientEvent,
    ClientMessageRead,
    ClientStatusChange,
    ClientTyping,
    ConnectionRef,
    ConversationAnnounced,
    Deliver,
    NewMessage,
    UserStatusChange,
    inbound_event_adapter,
    outbound_event_adapter,
)
from ws_edge.frames import BadFrame, decode_client_frame


def test_client_frames_decode_from_the_spec_field_names() -> None:
    frame = decode_client_frame('{"event":"message_read","conversationId":"c1","messageId":"m1"}')
    assert frame == ClientMessageRead(event="message_read", conversation_id="c1", message_id="m1")


def test_unknown_extra_fields_are_ignored_for_forward_compatibility() -> None:
    frame = decode_client_frame('{"event":"typing","conversationId":"c1","draft":"hi"}')
    assert frame == ClientTyping(event="typing", conversation_id="c1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "frame is not valid JSON"),
        ("[1]", "frame must be a JSON object"),
        ('{"x":1}', "frame has no 'event' field"),
        (
            '{"event":"nap"}',
            "unknown event 'nap'; expected one of: typing, message_read, heartbeat, status_change, "
            "send_message",
        ),
        ('{"event":"typing"}', "invalid typing event: conversationId: Field required"),
        (
            '{"event":"message_read"}',
            "invalid message_read event: conversationId: Field required; messageId: Field required",
        ),
    ],
)
def test_bad_frames_are_described_in_words_a_client_developer_understands(
    text: str, message: str
) -> None:
    with pytest.raises(BadFrame) as raised:
        decode_client_frame(text)
    assert str(raised.value) == message


def test_server_frames_use_exactly_the_spec_field_names_plus_seq() -> None:
    frame = NewMessage(
        conversation_id="c",
        message_id="m",
        sender_id="s",
        content="hi",
        message_type="text",
        timestamp="2026-01-01T00:00:00.000+00:00",
        seq=3,
    )
    assert frame.dump() == {
        "event": "new_message",
        "conversationId": "c",
        "messageId": "m",
        "senderId": "s",
        "content": "hi",
        "messageType": "text",
        "timestamp": "2026-01-01T00:00:00.000+00:00",
        "seq": 3,
    }


def test_conversation_created_keeps_a_null_name_like_the_rest_shape() -> None:
    frame = ConversationAnnounced(
        id="c", participant_ids=["a", "b"], name=None, created_at="2026-01-01T00:00:00.000+00:00"
    )
    assert json.loads(frame.to_text()) == {
        "event": "conversation_created",
        "id": "c",
        "participantIds": ["a", "b"],
        "name": None,
        "createdAt": "2026-01-01T00:00:00.000+00:00",
    }


def test_optional_conversation_id_is_omitted_rather_than_null() -> None:
    assert UserStatusChange(user_id="u", status="away").dump() == {
        "event": "user_status_change",
        "userId": "u",
        "status": "away",
    }


def test_envelopes_round_trip_through_their_adapters() -> None:
    ref = ConnectionRef(user_id="u", connection_id="c", edge_id="e")
    envelope = ClientEvent.wrap(ref, ClientStatusChange(event="status_change", status="busy"))
    assert envelope.event == "client.status_change"
    assert inbound_event_adapter.validate_json(envelope.to_json()) == envelope

    deliver = Deliver(frame=UserStatusChange(user_id="u", status="busy"), connection_id="c")
    assert outbound_event_adapter.validate_json(deliver.to_json()) == deliver
