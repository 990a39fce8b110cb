from pydantic import Field

from chat_core.settings import ServiceSettings, default_edge_id


class EdgeSettings(ServiceSettings):
    edge_id: str = Field(default_factory=default_edge_id)
    # Larger frames close the socket with 1009 (message too big).
    max_frame_bytes: int = 64 * 1024
    ping_interval_seconds: float = 20.0
    ping_timeout_seconds: float = 20.0
    # Presence treats an edge silent for a few of these as dead and expires its connections.
    announce_interval_seconds: float = 10.0
    # Last-active time is kept to this precision; it keeps a heartbeat storm off the database.
    heartbeat_forward_interval_seconds: float = 45.0
    # A resume (`?since=`) replays at most this many messages, then says truncated.
    replay_max_messages: int = Field(default=1000, ge=1, le=100_000)
    # The presence snapshot after admission covers at most this many contacts.
    snapshot_max_contacts: int = Field(default=500, ge=0, le=100_000)
