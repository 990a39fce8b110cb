"""A live fuzz of the edge: 10,000 random frames over one real socket (random bytes, random
JSON, mutated valid frames, huge numbers, deep nesting, odd Unicode), on an edge whose rate
limits are raised for it. The edge must not crash, the socket must live, and no frame may
get more than one answer."""

import json
import random
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.clients import WsClient
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FRAMES = 10_000
# Frames sent between two markers; the answers in between are counted against them.
CHUNK = 20
SEED = 20261130
# Only this test's own edge: nothing it sends is ever limited, so every answer is counted.
RAISED = {
    "FRAME_RATE_PER_SECOND": "1000000",
    "FRAME_BURST": "1000000",
    "INVALID_FRAMES_MAX": "1000000",
}
# Kept under the edge's 64 KiB frame limit (a bigger frame is 1009, tested elsewhere).
MAX_FRAME_BYTES = 60_000

VALID = [
    {"event": "typing", "conversationId": "c-fuzz"},
    {"event": "message_read", "conversationId": "c-fuzz", "messageId": "m-1"},
    {"event": "heartbeat"},
]
ODD_TEXT = [
    "\u202e",  # right-to-left override
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte-order mark
    "\u0000",
    "\U0001f600",
    "\u0301",  # combining accent with nothing to combine with
    "\U000e0001",  # language tag
    "\uffff",
    "e\u0301\u0301\u0301",
]


@pytest.fixture(scope="module")
def fuzz_edge(stack: Stack) -> Iterator[ServiceProcess]:
    edge = stack.start("ws-edge", None, EDGE_ID=f"edge-fuzz-{stack.names[1][-6:]}", **RAISED)
    yield edge
    edge.stop()


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**53, -(2**63), 10**30, rng.randint(-(10**9), 10**9)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1e308, -1e-308, rng.random()])
    if kind == 4:
        return odd_string(rng)
    if kind in (5, 6):
        return {odd_string(rng, 8): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def odd_string(rng: random.Random, length: int = 30) -> str:
    parts = [
        rng.choice(ODD_TEXT) if rng.random() < 0.3 else rng.choice(string.printable)
        for _ in range(rng.randrange(length + 1))
    ]
    return "".join(parts)


def mutated_valid(rng: random.Random) -> str:
    frame = dict(rng.choice(VALID))
    how = rng.randrange(5)
    if how == 0 and len(frame) > 1:
        frame.pop(rng.choice([key for key in frame if key != "event"]))
    elif how == 1:
        frame[rng.choice(list(frame))] = random_json(rng)
    elif how == 2:
        frame[odd_string(rng, 10)] = random_json(rng)
    text = json.dumps(frame, ensure_ascii=rng.random() < 0.5)
    if how == 3:
        cut = rng.randrange(len(text))
        text = text[:cut] + text[cut + 1 :]
    elif how == 4:
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice('{}[]",:\\' + "\u0000\u202e") + text[cut:]
    return text


def huge_number(rng: random.Random) -> str:
    digits = "9" * rng.randrange(300, 20_000)
    return rng.choice(
        [
            f'{{"event": "typing", "conversationId": {digits}}}',
            f'{{"event": {digits}}}',
            f'{{"event": "heartbeat", "n": -{digits}.5e99999}}',
            '{"event": "status_change", "status": 1e400}',
        ]
    )


def deep_nesting(rng: random.Random) -> str:
    depth = rng.randrange(100, 20_000)
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"event": "typing", "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


def random_bytes(rng: random.Random) -> str | bytes:
    raw = rng.randbytes(rng.randrange(1, 2000))
    # Half as binary frames, half as text (a text frame must be UTF-8, so invalid bytes are
    # replaced: the edge never sees invalid UTF-8 text, the WebSocket layer refuses that).
    return raw if rng.random() < 0.5 else raw.decode("utf-8", errors="replace")


GENERATORS: list[Callable[[random.Random], str | bytes]] = [
    random_bytes,
    lambda rng: json.dumps(random_json(rng), ensure_ascii=False),
    mutated_valid,
    mutated_valid,
    huge_number,
    deep_nesting,
    lambda rng: json.dumps({"event": odd_string(rng, 200)}, ensure_ascii=False),
]


def fuzz_frames(seed: int, count: int) -> Iterator[str | bytes]:
    rng = random.Random(seed)
    for _ in range(count):
        frame = rng.choice(GENERATORS)(rng)
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
        yield frame if size <= MAX_FRAME_BYTES else frame[: MAX_FRAME_BYTES // 4]


async def test_ten_thousand_random_frames_never_crash_the_edge_or_kill_the_socket(
    fuzz_edge: ServiceProcess,
) -> None:
    answered = late = 0
    async with WsClient.for_user(fuzz_edge.ws_url, new_user()) as client:
        frames = fuzz_frames(SEED, FRAMES)
        for chunk_number in range(FRAMES // CHUNK):
            for _ in range(CHUNK):
                await client.send(next(frames))
            # A marker answered by an error that names it: everything before it is in.
            marker = f"marker-{chunk_number}"
            await client.send({"event": marker})
            answers = []
            while True:
                event = await client.next_event(timeout=30)
                if marker in str(event.get("message", "")):
                    break
                if is_worker_answer(event):
                    # A worker's answer to a valid frame (a read receipt for an unknown
                    # conversation) comes later, through the broker: counted in the total.
                    late += 1
                    continue
                answers.append(event)
            assert len(answers) <= CHUNK, (chunk_number, answers)
            assert all(e["event"] in ("error", "heartbeat_ack") for e in answers), answers
            answered += len(answers)
        # Still alive and still working after all of it.
        await client.heartbeat()
        assert client.close_code is None
    assert fuzz_edge.process.poll() is None
    log = fuzz_edge.log_text()
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log
    # Nearly every frame is invalid and answered once; the valid ones not at all (typing,
    # message_read) or with an ack (heartbeat).
    assert answered >= FRAMES // 2
    assert answered + late <= FRAMES


def is_worker_answer(event: dict[str, Any]) -> bool:
    return event.get("event") == "error" and " refused: " in str(event.get("message", ""))
