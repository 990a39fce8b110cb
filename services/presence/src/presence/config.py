from pydantic import Field

from chat_core.settings import ServiceSettings


class PresenceSettings(ServiceSettings):
    # Edges announce every 10 s; three missed announcements mean the edge is dead.
    edge_timeout_seconds: float = Field(default=30.0, gt=0)
    # Clients heartbeat every 30 s and an edge forwards at most one per connection per 45 s
    # (its HEARTBEAT_FORWARD_INTERVAL_SECONDS): idle this long means two forwards missed.
    connection_idle_timeout_seconds: float = Field(default=120.0, gt=0)
    # How often dead edges' and idle connections are expired.
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # Contacts change only when a conversation is created, which invalidates them at once;
    # the TTL covers events another presence instance consumed.
    contacts_cache_seconds: float = Field(default=60.0, ge=0)
    # The most user ids one batch request may ask for.
    batch_limit: int = Field(default=200, ge=1, le=1000)
    # Status changes go only through conversations of at most this many members; larger
    # groups see presence through the batch route and the edge's snapshot (docs/presence.md).
    broadcast_max_members: int = Field(default=100, ge=2)
    # Sockets one user may hold across all edges; one more closes their oldest with 4029.
    max_devices_per_user: int = Field(default=10, ge=1)
