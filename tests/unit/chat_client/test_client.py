"""chat_client's pure parts: URLs, backoff, close-code actions, decoding and de-duplication."""

import json

import pytest

from chat_client import Backoff, ChatClient, UnknownEvent, close_action, socket_url
from chat_client.connection import _Seen
from chat_core.close_codes import ClientAction
from chat_core.events import HeartbeatAck, NewMessage, TypingIndicator


def new_message(message_id: str) -> str:
    return json.dumps(
        {
            "event": "new_message",
            "conversationId": "c1",
            "messageId": message_id,
            "senderId": "+84912345678",
            "content": "hi",
            "messageType": "text",
            "timestamp": "2025-01-31T09:30:00.123+00:00",
            "seq": 3,
        }
    )


def test_socket_url_encodes_plus_and_since() -> None:
    url = socket_url("ws://h:1", "+84912345678", "+84912345678", since="abc")
    assert url == "ws://h:1/ws/%2B84912345678?token=%2B84912345678&since=abc"
    assert "since" not in socket_url("ws://h:1", "u", "t")


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (None, ClientAction.RECONNECT),
        (1006, ClientAction.RECONNECT),
        (1012, ClientAction.RECONNECT),
        (3008, ClientAction.RECONNECT),
        (1013, ClientAction.BACK_OFF),
        (4001, ClientAction.STOP),
        (4003, ClientAction.STOP),
        (4029, ClientAction.STOP),
        (4999, ClientAction.STOP),
    ],
)
def test_close_action(code: int | None, action: ClientAction) -> None:
    assert close_action(code) is action


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, factor=2.0, slow_start=4.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)]:
        delay = backoff.delay(attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.delay(0, slow=True) >= 2.0


def test_seen_window_is_bounded() -> None:
    seen = _Seen(2)
    assert seen.add("a")
    assert not seen.add("a")
    assert seen.add("b")
    assert seen.add("c")
    assert "a" not in seen
    assert "c" in seen


async def test_decoding_dedup_cursor_and_unknown_events() -> None:
    client = ChatClient("ws://127.0.0.1:1", "+84912345678")
    client._receive(new_message("m1"))
    client._receive(new_message("m1"))
    client._receive(
        json.dumps({"event": "typing", "conversationId": "c1", "userId": "+84987654321"})
    )
    client._receive(json.dumps({"event": "from_the_future", "x": 1}))
    client._receive(json.dumps({"event": "heartbeat_ack"}))
    client._receive("not json")
    events = client.drain()
    assert [type(event) for event in events] == [
        NewMessage,
        TypingIndicator,
        UnknownEvent,
        HeartbeatAck,
    ]
    assert client.cursor == "m1"
    client._receive(json.dumps({"event": "replay_done", "truncated": False, "nextSince": "n9"}))
    assert client.cursor == "n9"
    assert client.drain() == []
