from pydantic import Field

from chat_core.settings import ListSetting, ServiceSettings, default_edge_id


class EdgeSettings(ServiceSettings):
    edge_id: str = Field(default_factory=default_edge_id)
    # Larger frames close the socket with 1009 (message too big).
    max_frame_bytes: int = 64 * 1024
    # WebSocket pings from the edge; a client that does not answer within the timeout is gone.
    ping_interval_seconds: float = 20.0
    ping_timeout_seconds: float = 20.0
    # Presence treats an edge silent for a few of these as dead and expires its connections.
    announce_interval_seconds: float = 10.0
    # Last-active time is kept to this precision; it keeps a heartbeat storm off the database.
    heartbeat_forward_interval_seconds: float = 45.0
    # A delivery shard stays bound this long after its last user here left, so users who come
    # and go do not bind and unbind it each time (docs/edge.md).
    delivery_shard_linger_seconds: float = Field(default=60.0, ge=0, le=3600)
    # A resume (`?since=`) replays at most this many messages, then says truncated.
    replay_max_messages: int = Field(default=1000, ge=1, le=100_000)
    # The presence snapshot after admission covers at most this many contacts.
    snapshot_max_contacts: int = Field(default=500, ge=0, le=100_000)
    # On SIGTERM: /readyz answers 503 this long (the load balancer stops sending new sockets;
    # HAProxy notices within 2 s), then every socket is closed with 1012. Drain, the closes
    # and the lifespan shutdown fit in compose's 10 s stop grace period.
    drain_seconds: float = Field(default=5.0, ge=0, le=30)

    # --- abuse limits and flow control (README, "Limits") ---------------------------------
    # Inbound frames per socket, heartbeats included: sustained rate and burst.
    frame_rate_per_second: float = Field(default=20.0, gt=0)
    frame_burst: int = Field(default=40, ge=1)
    # Still over the frame rate after this long: closed with 1008.
    abuse_close_after_seconds: float = Field(default=5.0, gt=0)
    # More invalid frames than this within the window: closed with 1008.
    invalid_frames_max: int = Field(default=100, ge=1)
    invalid_frames_window_seconds: float = Field(default=10.0, gt=0)
    # Sockets this edge holds at most; the next is closed with 1013 (try again later).
    max_sockets: int = Field(default=50_000, ge=1)
    # New sockets per second per client address (burst the same); beyond: HTTP 429.
    admissions_per_second_per_address: float = Field(default=20.0, gt=0)
    # Addresses or networks never limited per address (an office NAT, a health checker).
    admission_exempt: ListSetting = Field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    # What may wait for one socket to read (a phone on a slow network catching up on a busy
    # evening: hundreds of messages); beyond either bound the socket is closed with 3008.
    outbound_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    outbound_max_frames: int = Field(default=1000, ge=1)
    # How long a close may wait on a peer that does not read before the edge drops it.
    close_timeout_seconds: float = Field(default=5.0, gt=0)
