"""Routing keys, queue bindings and what each consumer accepts all come from the schemas."""

from typing import get_args

from chat_core.broker import (
    DIRECT_EVENTS,
    QUEUE_BINDINGS,
    QUEUE_EVENTS,
    QUEUE_KINDS,
    SUBSCRIBED_EVENTS,
)
from chat_core.events import (
    CLIENT_EVENTS,
    CLIENT_FRAMES,
    ClientEvent,
    InboundEvent,
    SweepTick,
    members_of,
    routing_kind,
)


def test_client_events_are_the_specs_four_in_its_order_then_the_additions() -> None:
    assert CLIENT_EVENTS == ("typing", "message_read", "heartbeat", "status_change", "send_message")


def test_the_client_event_envelope_has_one_kind_per_client_frame() -> None:
    literal = set(get_args(ClientEvent.model_fields["event"].annotation))

    assert literal == {routing_kind(frame) for frame in CLIENT_FRAMES}


def test_every_inbound_kind_is_received_by_exactly_one_queue() -> None:
    kinds = {
        kind
        for envelope in members_of(InboundEvent)
        for kind in (
            [routing_kind(f) for f in CLIENT_FRAMES]
            if envelope is ClientEvent
            else [routing_kind(envelope)]
        )
        if envelope not in SUBSCRIBED_EVENTS
    }
    receivers = {
        kind: [q for q, accepted in QUEUE_KINDS.items() if kind in accepted] for kind in kinds
    }

    assert {kind: len(queues) for kind, queues in receivers.items()} == dict.fromkeys(kinds, 1)


def test_direct_events_are_accepted_but_never_bound() -> None:
    assert SweepTick in DIRECT_EVENTS
    assert "presence.sweep" in QUEUE_KINDS["presence"]
    assert all("presence.sweep" not in keys for keys in QUEUE_BINDINGS.values())


def test_bindings_are_the_routing_kinds_of_each_queues_events() -> None:
    assert QUEUE_BINDINGS["typing"] == ("client.typing",)
    assert QUEUE_BINDINGS["messaging"] == ("client.message_read", "read.sent", "reads.sent")
    assert QUEUE_BINDINGS["sends"] == ("client.send_message",)
    assert QUEUE_BINDINGS["presence-edges"] == ("edge.alive",)
    assert set(QUEUE_BINDINGS["presence"]) == {
        "conn.opened",
        "conn.closed",
        "client.heartbeat",
        "client.status_change",
        "conversation.created",
    }
    assert set(QUEUE_EVENTS) == set(QUEUE_BINDINGS)


def test_subscribed_events_are_bound_to_no_work_queue() -> None:
    for event in SUBSCRIBED_EVENTS:
        assert all(routing_kind(event) not in kinds for kinds in QUEUE_KINDS.values())
