from pydantic import Field

from chat_core.settings import ServiceSettings


class MessagingSettings(ServiceSettings):
    max_content_chars: int = Field(
        default=4000,
        ge=1,
        le=100_000,
        description=(
            "Longest message, in characters (code points), not bytes; 4000 is a long chat "
            "message, far from a document."
        ),
    )
    max_participants: int = Field(
        default=256,
        ge=2,
        le=10_000,
        description="Members of one conversation, the creator included.",
    )
    typing_throttle_seconds: float = Field(
        default=1.0,
        ge=0,
        description="A fast typist's keystrokes become at most one typing event per this.",
    )
    outbox_min_age_seconds: float = Field(
        default=10.0,
        ge=0,
        description=(
            "The relay publishes outbox entries older than this: younger ones still belong "
            "to the request that wrote them, which marks them published."
        ),
    )
    relay_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the relay looks for such entries (and the outbox is sampled).",
    )
    outbox_flush_interval_seconds: float = Field(
        default=0.1,
        gt=0,
        description=(
            "What sends leave for later (the conversation's last-message hint, the sender's "
            "own read position) is written in one batch per interval, then their outbox "
            "entries are deleted in one more: the bound on how long a sender's chat list can "
            "show their own message unread, through another messaging process."
        ),
    )
    members_cache_size: int = Field(
        default=50_000,
        ge=1,
        description="Conversations whose participants stay cached in memory (they never change).",
    )
    send_takeover_seconds: float = Field(
        default=10.0,
        ge=0,
        description=(
            "A repeated clientMessageId whose first send left no trace after this long is "
            "finished by the repeat, under the first send's message id."
        ),
    )
    sync_max_limit: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Upper bound on one /sync page and on a WebSocket resume's replay.",
    )
    max_concurrent_sends: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description=(
            "Load shedding: at most this many sends run at once in this process (overload.py)."
        ),
    )
    send_queue_timeout_seconds: float = Field(
        default=0.5,
        ge=0,
        description=(
            "A send that cannot start within this is answered 503 + Retry-After before any work."
        ),
    )
    send_rate_per_second: float = Field(
        default=20.0,
        gt=0,
        description="Per user, per process (messaging.rate_limits): messages sent a second.",
    )
    send_burst: int = Field(
        default=40, ge=1, description="Messages one user may send at once, beyond the rate."
    )
    conversation_rate_per_second: float = Field(
        default=2.0,
        gt=0,
        description="Per user, per process: conversations created a second.",
    )
    conversation_burst: int = Field(
        default=2, ge=1, description="Conversations one user may create at once."
    )
    read_rate_per_second: float = Field(
        default=20.0,
        gt=0,
        description=(
            "Per user, per process: GET requests (chat list, history, one message, /sync) a "
            "second, sustained; beyond READ_BURST at once, 429 + Retry-After."
        ),
    )
    read_burst: int = Field(
        default=60,
        ge=1,
        description="GETs one user may make at once: an app opening a chat list and pages.",
    )
