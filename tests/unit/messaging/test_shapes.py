"""One JSON shape for a message: REST items and `new_message` come from the same fields."""

from datetime import UTC, datetime

from chat_core.events import server_frame_adapter
from chat_core.store.messages import Message, message_fields, new_message_frame
from chat_core.store.read_state import ReadPosition
from messaging.schemas import MessageDetail, MessageOut

SPEC_NEW_MESSAGE_FIELDS = {
    "event",
    "conversationId",
    "messageId",
    "senderId",
    "content",
    "messageType",
    "timestamp",
    "seq",
}

MESSAGE = Message(
    message_id="65a1b2c3d4e5f60718293a4b",
    conversation_id="65a1b2c3d4e5f60718293a4c",
    seq=7,
    sender_id="+84912345678",
    content="xin chào",
    message_type="image",
    created_at=datetime(2025, 1, 31, 9, 30, 0, 123_000, tzinfo=UTC),
    client_message_id="device-1-0001",
)


def test_new_message_has_exactly_the_spec_fields() -> None:
    frame = new_message_frame(MESSAGE).dump()
    assert set(frame) == SPEC_NEW_MESSAGE_FIELDS
    assert frame["event"] == "new_message"
    assert frame["timestamp"] == "2025-01-31T09:30:00.123+00:00"
    assert server_frame_adapter.validate_python(frame) == new_message_frame(MESSAGE)


def test_rest_item_is_the_event_plus_extras_never_renamed() -> None:
    item = MessageOut.of(MESSAGE).model_dump(by_alias=True)
    event = new_message_frame(MESSAGE).dump()
    del event["event"]
    assert {k: item[k] for k in event} == event
    assert item["clientMessageId"] == "device-1-0001"
    assert item == {**message_fields(MESSAGE), "clientMessageId": "device-1-0001"}


def test_detail_adds_read_by() -> None:
    read_at = datetime(2025, 1, 31, 10, 0, tzinfo=UTC)
    detail = MessageDetail.with_readers(MESSAGE, [ReadPosition("+84987654321", 9, "z", read_at)])
    dumped = detail.model_dump(by_alias=True)
    assert dumped["readBy"] == [
        {"userId": "+84987654321", "readAt": "2025-01-31T10:00:00.000+00:00"}
    ]
    assert {k: dumped[k] for k in message_fields(MESSAGE)} == message_fields(MESSAGE)
