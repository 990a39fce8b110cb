"""Every Prometheus metric the services export, defined once (prometheus-client).

Each service process serves its own registry as Prometheus text on `GET /metrics`; Prometheus
adds `job` and `instance`, so no metric carries a service or instance label. Label values come
from small fixed sets (event names, close-code names, route templates), never from user data.
deploy/grafana/dashboards/chat.json charts them; docs/observability.md says what each means.
"""

import contextlib
import functools
from collections.abc import Iterator
from datetime import datetime
from time import perf_counter

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from chat_core.clock import utcnow
from chat_core.close_codes import CloseCode

# Latencies of a chat system: sub-millisecond to a few seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# --- ws-edge ----------------------------------------------------------------------------

OPEN_SOCKETS = Gauge("chat_edge_open_sockets", "WebSockets this edge holds now")
ADMISSIONS = Counter(
    "chat_edge_admissions_total",
    "WebSocket admissions by outcome: accepted, or the close code's name of a refusal",
    ["outcome"],
)
FRAMES_IN = Counter(
    "chat_edge_frames_in_total",
    "Client frames by event and outcome (published, answered, invalid, publish_failed, ...)",
    ["event", "outcome"],
)
FRAMES_OUT = Counter("chat_edge_frames_out_total", "Frames written to sockets, by event", ["event"])
DELIVERY_LATENCY = Histogram(
    "chat_delivery_latency_seconds",
    "From the event's origin (for new_message: the message stored) to its frame written to "
    "a socket, by event",
    ["event"],
    buckets=LATENCY_BUCKETS,
)
SOCKET_CLOSES = Counter(
    "chat_edge_socket_closes_total", "Sockets closed by the edge, by close code name", ["code"]
)

# --- broker -----------------------------------------------------------------------------

PUBLISH_CONFIRM = Histogram(
    "chat_broker_publish_confirm_seconds",
    "Publish until the broker's confirm, by exchange kind (events, deliver)",
    ["exchange"],
    buckets=LATENCY_BUCKETS,
)
PUBLISH_FAILURES = Counter(
    "chat_broker_publish_failures_total", "Publishes that raised, by exchange kind", ["exchange"]
)
CONSUMED = Counter(
    "chat_consumer_messages_total",
    "Messages a worker consumed, by queue and outcome (acked, requeued, retried, "
    "dead_lettered, poison)",
    ["consumer", "outcome"],
)
REDELIVERIES = Counter(
    "chat_consumer_redeliveries_total",
    "Messages that arrived flagged redelivered (a requeue or a consumer that died)",
    ["consumer"],
)
DEAD_LETTERS = Counter(
    "chat_consumer_dead_letters_total",
    "Messages sent to the dead-letter queue, by queue and reason (poison, failed_twice)",
    ["consumer", "reason"],
)

# --- messaging --------------------------------------------------------------------------

OUTBOX_BACKLOG = Gauge("chat_outbox_backlog", "Outbox entries not yet deleted")
OUTBOX_OLDEST_AGE = Gauge(
    "chat_outbox_oldest_age_seconds", "Age of the oldest outbox entry (0 when empty)"
)

# --- presence ---------------------------------------------------------------------------

PRESENCE_WRITE = Histogram(
    "chat_presence_write_seconds",
    "One write-behind of held presence (a bulk write of every user changed meanwhile): the "
    "lag of the stored copy behind memory is at most two of these",
    buckets=LATENCY_BUCKETS,
)
PRESENCE_WRITE_USERS = Histogram(
    "chat_presence_write_users",
    "Users in one write-behind",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
PRESENCE_HELD = Gauge("chat_presence_held_users", "Users whose presence this process holds")

# --- every HTTP service -----------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "chat_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "chat_http_request_duration_seconds",
    "HTTP request latency by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
DB_LATENCY = Histogram(
    "chat_db_operation_seconds",
    "MongoDB round trips of the hot paths (batched writes, _id lookups) by command and outcome",
    ["command", "outcome"],
    buckets=LATENCY_BUCKETS,
)


def code_name(code: int) -> str:
    """unauthenticated for 4001, service_restart for 1012; the number if it has no name."""
    try:
        return CloseCode(code).name.lower()
    except ValueError:
        return str(code)


def admission(outcome: int | str) -> None:
    """`accepted`, or a refusal's close code (or a limit's name)."""
    ADMISSIONS.labels(code_name(outcome) if isinstance(outcome, int) else outcome).inc()


def closed(code: int) -> None:
    SOCKET_CLOSES.labels(code_name(code)).inc()


def delivered(event: str, origin: datetime | None) -> None:
    frames_out, latency = _delivery_series(event)
    frames_out.inc()
    if origin is not None:
        latency.observe(max((utcnow() - origin).total_seconds(), 0.0))


@functools.cache
def _delivery_series(event: str) -> tuple[Counter, Histogram]:
    # Once per event name (a handful): `labels()` takes a lock and builds a key each call,
    # and this runs for every frame delivered.
    return FRAMES_OUT.labels(event), DELIVERY_LATENCY.labels(event)


def outbox_sample(backlog: int, oldest: datetime | None) -> None:
    OUTBOX_BACKLOG.set(backlog)
    OUTBOX_OLDEST_AGE.set((utcnow() - oldest).total_seconds() if oldest is not None else 0.0)


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@contextlib.contextmanager
def timed_db(command: str) -> Iterator[None]:
    """Time one database round trip of the hot paths (group-committed writes, `_id` lookups)
    into DB_LATENCY. Measured at the call site instead of through PyMongo's command
    monitoring, whose listener runs (and builds event objects) on every command."""
    started = perf_counter()
    try:
        yield
    except BaseException:
        DB_LATENCY.labels(command, "failed").observe(perf_counter() - started)
        raise
    DB_LATENCY.labels(command, "ok").observe(perf_counter() - started)


def route_of(scope: Scope) -> str:
    """The matched route's template (/conversations/{conversation_id}), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def observe_request(scope: Scope, status: int, started: float) -> None:
    route, method = route_of(scope), scope.get("method", "")
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(perf_counter() - started)
