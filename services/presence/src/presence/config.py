from pydantic import Field

from chat_core.settings import ServiceSettings


class PresenceSettings(ServiceSettings):
    edge_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "An edge silent this long is dead and its connections expire (edges announce "
            "every 10 s: three missed)."
        ),
    )
    connection_idle_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description=(
            "A connection with no heartbeat this long expires. Clients heartbeat every 30 s "
            "and an edge forwards at most one per 45 s (HEARTBEAT_FORWARD_INTERVAL_SECONDS): "
            "two forwards missed."
        ),
    )
    sweep_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often dead edges' and idle connections are expired.",
    )
    contacts_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description=(
            "How long a user's contacts stay cached. They change only when a conversation is "
            "created, which invalidates them at once; the TTL covers events another presence "
            "instance consumed."
        ),
    )
    batch_limit: int = Field(
        default=200,
        ge=1,
        le=1000,
        description="The most user ids one batch request may ask for.",
    )
    broadcast_max_members: int = Field(
        default=100,
        ge=2,
        description=(
            "Status changes go only through conversations of at most this many members; "
            "larger groups see presence through the batch route and the edge's snapshot "
            "(docs/presence.md)."
        ),
    )
    max_devices_per_user: int = Field(
        default=10,
        ge=1,
        description="Sockets a user may hold across all edges; one more closes the oldest: 4029.",
    )
