"""GET /metrics on every service: the families exist and move when real traffic flows."""

from collections.abc import Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clients import WsClient, rest_client
from tests.support.stack import ServiceProcess
from tests.support.users import new_user

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(service: ServiceProcess) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{service.http_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def moved(before: Samples, after: Samples) -> Callable[..., float]:
    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    return delta


async def test_every_service_exports_metrics_that_move_with_traffic(
    edge: ServiceProcess, messaging: ServiceProcess, presence: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    before = {s.name: await scrape(s) for s in (edge, messaging, presence)}

    async with AsyncExitStack() as stack:
        alice_ws = await stack.enter_async_context(WsClient.for_user(edge.ws_url, alice))
        bob_ws = await stack.enter_async_context(WsClient.for_user(edge.ws_url, bob))
        await alice_ws.heartbeat()
        await bob_ws.heartbeat()
        async with WsClient.for_user(edge.ws_url, alice, token="not-a-phone") as refused:
            assert (await refused.wait_closed())[0] == 4001
        await alice_ws.send("not json")
        await alice_ws.wait_event("error")

        rest = await stack.enter_async_context(rest_client(messaging.http_url, alice))
        created = await rest.post("/conversations", json={"participantIds": [bob]})
        conversation_id = created.json()["id"]
        sent = await rest.post(
            f"/conversations/{conversation_id}/messages",
            json={"content": "hi", "messageType": "text"},
        )
        assert sent.status_code == 201
        await bob_ws.wait_event("new_message", messageId=sent.json()["messageId"])
        await alice_ws.send({"event": "typing", "conversationId": conversation_id})
        await bob_ws.wait_event("typing", conversationId=conversation_id)
        async with rest_client(presence.http_url, alice) as presence_rest:
            assert (await presence_rest.get(f"/presence/{bob}")).status_code == 200

        during = await scrape(edge)
        assert value(during, "chat_edge_open_sockets") >= 2

    after = {s.name: await scrape(s) for s in (edge, messaging, presence)}
    edge_moved = moved(before["ws-edge"], after["ws-edge"])
    assert edge_moved("chat_edge_admissions_total", outcome="accepted") >= 2
    assert edge_moved("chat_edge_admissions_total", outcome="unauthenticated") >= 1
    assert edge_moved("chat_edge_frames_in_total", event="typing", outcome="published") >= 1
    assert edge_moved("chat_edge_frames_in_total", outcome="invalid") >= 1
    assert edge_moved("chat_edge_frames_out_total", event="new_message") >= 2
    assert edge_moved("chat_edge_frames_out_total", event="heartbeat_ack") >= 2
    assert edge_moved("chat_delivery_latency_seconds_count", event="new_message") >= 2
    assert edge_moved("chat_broker_publish_confirm_seconds_count", exchange="events") >= 1
    assert edge_moved("chat_db_operation_seconds_count") >= 1

    messaging_moved = moved(before["messaging"], after["messaging"])
    route = "/conversations/{conversation_id}/messages"
    assert messaging_moved("chat_http_requests_total", route=route, status="201") == 1
    assert messaging_moved("chat_http_request_duration_seconds_count", route=route) == 1
    assert messaging_moved("chat_broker_publish_confirm_seconds_count", exchange="deliver") >= 1
    assert messaging_moved("chat_consumer_messages_total", consumer="typing") >= 1
    assert messaging_moved("chat_db_operation_seconds_count", command="insert") >= 1
    for family in ("chat_outbox_backlog", "chat_outbox_oldest_age_seconds"):
        assert any(name == family for name, _ in after["messaging"]), family

    presence_moved = moved(before["presence"], after["presence"])
    assert presence_moved("chat_consumer_messages_total", consumer="presence", outcome="acked") >= 2
    assert presence_moved("chat_http_requests_total", status="200") >= 1
    for family in ("chat_consumer_redeliveries_total", "chat_consumer_dead_letters_total"):
        # Declared with labels, so present once a queue has seen such a message; the family's
        # help line is always there.
        assert family.removesuffix("_total") in {
            f.name for f in text_string_to_metric_families(await _text(presence))
        }


async def _text(service: ServiceProcess) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"{service.http_url}/metrics")).text
