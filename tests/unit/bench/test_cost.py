"""The cost scenario's bookkeeping: frames matched to sends, and what a step's row says."""

import random
from typing import cast

import pytest

from chat_bench.pacing import PacedRun
from chat_bench.progress import Progress
from chat_bench.scenarios.context import Context
from chat_bench.scenarios.cost import SendLoad, parse_rates, parse_vias, step_row
from chat_bench.sockets import Device
from chat_bench.stack import Endpoints

A, B = "+84300000001", "+84300000002"


class Seen:
    """Stands in for a Device: the load only asks whose socket a frame came on."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id


def on(user_id: str) -> Device:
    return cast(Device, Seen(user_id))


def new_load(sends: int) -> SendLoad:
    url = "http://127.0.0.1:9"
    ctx = Context(Endpoints(url, url, url), Progress(), random.Random(1), run_tag="t")
    load = SendLoad(ctx, pairs=[(A, B, "c1")])
    load.plan("rest 10/s", sends)
    for number, send in enumerate(load.sends):
        send.sent_at = 100.0 + number
        send.awaited = True
        load.awaiting += 1
    return load


def message(seq: int, message_id: str) -> dict[str, object]:
    return {"event": "new_message", "content": f"t:{seq}", "messageId": message_id}


def test_the_speaker_alternates_on_each_pass_over_the_conversations() -> None:
    load = new_load(3)
    assert [(s.sender, s.recipient) for s in load.sends] == [(A, B), (B, A), (A, B)]


def test_a_second_copy_on_either_socket_is_a_duplicate() -> None:
    load = new_load(2)
    for send in load.sends:
        send.accepted, send.message_id = True, f"m{send.seq}"
    load.on_frame(on(B), message(0, "m0"), 100.010)
    load.on_frame(on(B), message(0, "m0"), 100.020)  # the recipient, twice
    load.on_frame(on(A), message(0, "m0"), 100.011)  # the sender's own socket, once: fine
    load.on_frame(on(A), message(1, "m1"), 101.005)
    load.on_frame(on(B), message(1, "m1"), 101.006)
    load.on_frame(on(B), message(1, "m1"), 101.007)  # the sender's own socket, twice
    assert [s.duplicates for s in load.sends] == [1, 1]
    assert load.sends[0].delivered_at == 100.010
    assert load.awaiting == 0


def test_two_stored_messages_for_one_send_count_as_a_duplicate() -> None:
    load = new_load(1)
    send = load.sends[0]
    send.accepted, send.message_id = True, "m0"
    load.on_frame(on(B), message(0, "other"), 100.01)
    assert send.duplicates == 1


def test_a_socket_send_is_answered_by_its_ack_or_its_error() -> None:
    load = new_load(2)
    load.on_frame(
        on(A), {"event": "message_ack", "clientMessageId": "t-0", "messageId": "m0"}, 100.004
    )
    load.on_frame(
        on(B), {"event": "error", "clientMessageId": "t-1", "message": "not a member"}, 101.002
    )
    load.on_frame(on(A), {"event": "error", "message": "unknown event 'send_message'"}, 102.0)
    first, second = load.sends
    assert (first.accepted, first.answered_at, first.message_id) == (True, 100.004, "m0")
    assert (second.accepted, second.error) == (False, "error: not a member")
    assert load.stray_errors == ["unknown event 'send_message'"]
    assert load.awaiting == 1  # the first still waits for its delivery


def test_frames_nobody_sent_are_unexpected() -> None:
    load = new_load(1)
    load.on_frame(on(B), message(7, "m7"), 1.0)
    load.on_frame(on(B), {"event": "new_message", "content": "hello"}, 1.0)
    load.on_frame(on("+84399999999"), message(0, "m0"), 1.0)
    assert len(load.unexpected) == 3


def test_a_step_row_counts_undelivered_as_infinitely_late_and_says_why_it_was_not_held() -> None:
    load = new_load(100)
    for send in load.sends:
        send.accepted, send.answered_at = True, send.sent_at + 0.002
        send.delivered_at = send.sent_at + 0.005
    lost = load.sends[42]
    lost.delivered_at = None
    load.sends[7].recipient_frames = 2
    run = PacedRun(scheduled=100, launched=100, started_at=0.0, finished_launching_at=99.0)
    row = step_row(load, "rest 10/s", "rest", 1.0, run, limit_ms=100)
    assert row["sent"] == row["accepted"] == 100
    assert (row["lost"], row["duplicates"], row["refused"]) == (1, 1, 0)
    assert row["latency_p50_ms"] == 5.0
    assert row["latency_p99_ms"] == 5.0  # the 99th of 100 is still delivered
    assert row["answer_p99_ms"] == 2.0
    assert row["really_offered"] is True
    assert row["held"] is False
    assert row["why"] == "1 lost; 1 duplicates"


def test_a_step_offered_below_95_percent_is_not_held() -> None:
    load = new_load(10)
    for send in load.sends:
        send.accepted, send.delivered_at = True, send.sent_at + 0.001
    run = PacedRun(scheduled=10, launched=10, started_at=0.0, finished_launching_at=9.0)
    row = step_row(load, "rest 10/s", "rest", 2.0, run, limit_ms=100)
    assert (row["achieved_rate_per_s"], row["really_offered"], row["held"]) == (1.0, False, False)
    assert row["why"] == "offered only 1/s"


def test_rates_and_ways_are_checked() -> None:
    assert parse_rates("100, 200,400") == [100.0, 200.0, 400.0]
    assert parse_vias("rest,socket") == ["rest", "socket"]
    for bad in ("", "100,-5", "fast"):
        with pytest.raises(ValueError, match="rates"):
            parse_rates(bad)
    with pytest.raises(ValueError, match="via"):
        parse_vias("carrier pigeon")


def test_refused_sends_are_counted_apart_from_the_latency_of_accepted_ones() -> None:
    load = new_load(4)
    for send in load.sends[:2]:
        send.accepted, send.delivered_at = True, send.sent_at + 0.004
    for send in load.sends[2:]:
        send.error = "HTTP 503: too many sends in progress"
    run = PacedRun(scheduled=4, launched=4, started_at=0.0, finished_launching_at=3.0)
    row = step_row(load, "rest 10/s", "rest", 1.0, run, limit_ms=100)
    assert (row["accepted"], row["refused"], row["lost"]) == (2, 2, 0)
    assert row["latency_p50_ms"] == row["latency_p99_ms"] == 4.0
    assert row["held"] is False
    assert row["why"] == "2 refused or unanswered"
