"""Spec sections 2-3 at the edge: heartbeat, and a clear error for every kind of bad frame."""

import json

import pytest

from tests.support.clients import WsClient
from tests.support.stack import ServiceProcess
from tests.support.users import new_user

BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("not json at all", "frame is not valid JSON"),
    ('{"event": "heartbeat"', "frame is not valid JSON"),
    ("[]", "frame must be a JSON object"),
    ('"heartbeat"', "frame must be a JSON object"),
    ("42", "frame must be a JSON object"),
    ("null", "frame must be a JSON object"),
    ("{}", "frame has no 'event' field"),
    ('{"conversationId": "abc"}', "frame has no 'event' field"),
    ('{"event": "dance"}', "unknown event 'dance'"),
    ('{"event": 7}', "unknown event '7'"),
    ('{"event": "new_message"}', "unknown event 'new_message'"),
    ('{"event": "typing"}', "invalid typing event: conversationId: Field required"),
    ('{"event": "typing", "conversationId": 12}', "conversationId: Input should be a valid string"),
    ('{"event": "typing", "conversationId": ""}', "conversationId: String should have at least"),
    ('{"event": "message_read", "conversationId": "c"}', "messageId: Field required"),
    ('{"event": "message_read", "messageId": ["m"], "conversationId": "c"}', "messageId"),
    ('{"event": "status_change"}', "invalid status_change event: status: Field required"),
    (
        '{"event": "status_change", "status": "sleeping"}',
        "'available', 'away', 'busy' or 'offline'",
    ),
    ('{"event": "status_change", "status": null}', "status"),
    (b'{"event": "heartbeat"}', "binary frames are not supported"),
]


async def test_heartbeat_is_acknowledged(edge: ServiceProcess) -> None:
    async with WsClient.for_user(edge.ws_url, new_user()) as client:
        await client.send({"event": "heartbeat"})
        assert await client.next_event() == {"event": "heartbeat_ack"}


@pytest.mark.parametrize(("frame", "expected"), BAD_FRAMES)
async def test_bad_frame_gets_an_error_event_and_the_connection_lives_on(
    edge: ServiceProcess, frame: str | bytes, expected: str
) -> None:
    async with WsClient.for_user(edge.ws_url, new_user()) as client:
        await client.send(frame)
        error = await client.next_event()
        assert error["event"] == "error"
        assert expected in error["message"]
        assert set(error) == {"event", "message"}
        await client.heartbeat()


async def test_many_bad_frames_in_a_row_do_not_close_the_socket(edge: ServiceProcess) -> None:
    async with WsClient.for_user(edge.ws_url, new_user()) as client:
        for frame, _ in BAD_FRAMES:
            await client.send(frame)
        errors = [await client.next_event() for _ in BAD_FRAMES]
        assert [e["event"] for e in errors] == ["error"] * len(BAD_FRAMES)
        await client.heartbeat()


async def test_frame_over_64_kib_closes_with_1009(edge: ServiceProcess) -> None:
    async with WsClient.for_user(edge.ws_url, new_user()) as client:
        await client.send(json.dumps({"event": "typing", "conversationId": "x" * (64 * 1024)}))
        code, _ = await client.wait_closed()
        assert code == 1009


async def test_frame_just_under_the_limit_is_answered(edge: ServiceProcess) -> None:
    async with WsClient.for_user(edge.ws_url, new_user()) as client:
        padding = "x" * (64 * 1024 - 100)
        await client.send(json.dumps({"event": "heartbeat", "padding": padding}))
        assert await client.next_event() == {"event": "heartbeat_ack"}
