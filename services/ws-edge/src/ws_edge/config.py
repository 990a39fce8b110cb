from typing import Annotated

from pydantic import AfterValidator, Field

from chat_core.ids import is_user_id
from chat_core.settings import ListSetting, ServiceSettings, default_edge_id


def _fits_a_queue_name(edge_id: str) -> str:
    # `<prefix>.edge.<id>` is a queue name, at most 255 bytes: the same bound as a user id's.
    if not is_user_id(edge_id):
        raise ValueError("EDGE_ID must be printable and 1 to 128 bytes of UTF-8")
    return edge_id


class EdgeSettings(ServiceSettings):
    edge_id: Annotated[str, AfterValidator(_fits_a_queue_name)] = Field(
        default_factory=default_edge_id,
        description=(
            "This edge's name: its delivery queue's and its presence records'. Unique per "
            "running edge; printable, at most 128 bytes. Default <hostname>-<pid>."
        ),
    )
    max_frame_bytes: int = Field(
        default=64 * 1024,
        description="Larger frames close the socket with 1009 (message too big).",
    )
    ping_interval_seconds: float = Field(
        default=20.0, description="How often the edge pings each socket (WebSocket ping)."
    )
    ping_timeout_seconds: float = Field(
        default=20.0,
        description="A client that does not answer a ping within this is gone: closed.",
    )
    announce_interval_seconds: float = Field(
        default=10.0,
        description=(
            "How often the edge tells presence it is alive; presence treats an edge silent "
            "for a few of these as dead and expires its connections."
        ),
    )
    heartbeat_forward_interval_seconds: float = Field(
        default=45.0,
        description=(
            "Last-active time is kept to this precision: at most one heartbeat per connection "
            "per interval goes on to presence, which keeps a heartbeat storm off the database."
        ),
    )
    replay_max_messages: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="A resume (`?since=`) replays at most this many messages, then says truncated.",
    )
    snapshot_max_contacts: int = Field(
        default=500,
        ge=0,
        le=100_000,
        description="The presence snapshot after admission covers at most this many contacts.",
    )
    drain_seconds: float = Field(
        default=5.0,
        ge=0,
        le=30,
        description=(
            "On SIGTERM: /readyz answers 503 this long (the load balancer stops sending new "
            "sockets; HAProxy notices within 2 s), then every socket is closed with 1012. "
            "Drain, the closes and the lifespan shutdown fit in compose's 10 s stop grace "
            "period."
        ),
    )

    # Abuse limits and flow control: README, "Limits", and docs/limits.md.
    frame_rate_per_second: float = Field(
        default=20.0,
        gt=0,
        description="Inbound frames per socket a second, heartbeats included (sustained).",
    )
    frame_burst: int = Field(
        default=40, ge=1, description="Inbound frames one socket may send at once."
    )
    abuse_close_after_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Still over the frame rate after this long: closed with 1008.",
    )
    invalid_frames_max: int = Field(
        default=100,
        ge=1,
        description="More invalid frames than this within the window: closed with 1008.",
    )
    invalid_frames_window_seconds: float = Field(
        default=10.0, gt=0, description="The window INVALID_FRAMES_MAX counts over."
    )
    max_sockets: int = Field(
        default=50_000,
        ge=1,
        description="Sockets this edge holds at most; the next is closed with 1013 (try later).",
    )
    admissions_per_second_per_address: float = Field(
        default=20.0,
        gt=0,
        description="New sockets per second per client address (burst the same); beyond: HTTP 429.",
    )
    admission_exempt: ListSetting = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1"],
        description=(
            "Addresses or networks never limited per address (an office NAT, a health checker)."
        ),
    )
    max_sockets_per_address: int = Field(
        default=1000,
        ge=1,
        description=(
            "Open sockets one client address may hold on this edge; the next upgrade gets "
            "HTTP 429. High, because a carrier NAT puts many phones behind one address; "
            "ADMISSION_EXEMPT addresses are not counted."
        ),
    )
    outbound_max_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description=(
            "Bytes that may wait for one socket to read (a phone on a slow network catching "
            "up on a busy evening: hundreds of messages); beyond it the socket is closed with "
            "3008."
        ),
    )
    outbound_max_frames: int = Field(
        default=1000,
        ge=1,
        description="Frames that may wait for one socket to read; beyond it, 3008 likewise.",
    )
    close_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long a close may wait on a peer that does not read before it is dropped.",
    )
    delivery_shard_linger_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description=(
            "A delivery shard stays bound this long after its last user here left, so users "
            "who come and go do not bind and unbind it each time (docs/edge.md)."
        ),
    )
