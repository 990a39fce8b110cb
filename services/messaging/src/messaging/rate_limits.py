"""Per-user REST limits: message sends, conversation creation and reads (the chat list,
history, one message, /sync), each its own bucket (429 with Retry-After).

Counted in this process's memory: several messaging processes behind a load balancer each
count on their own, so a user's effective limit is up to N times the setting with N
processes (sticky routing by user keeps it exact). Good enough to stop a runaway client;
a shared counter would cost a broker or database round trip per request.
"""

import re
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from chat_core.limits import KeyedLimiter, Rate, retry_after_header
from messaging.config import MessagingSettings
from messaging.deps import CurrentUser

_SEND_PATH = re.compile(r"^/conversations/\{[^/}]+\}/messages$")
_CREATE_PATH = "/conversations"


@dataclass(frozen=True)
class Limit:
    what: str
    limiter: KeyedLimiter

    def describe(self) -> str:
        rate = self.limiter.rate
        return f"at most {rate.per_second:g} a second, bursts of {rate.burst:g}"


class RestLimits:
    def __init__(self, settings: MessagingSettings) -> None:
        self.sends = Limit(
            "messages sent",
            KeyedLimiter(Rate(settings.send_rate_per_second, settings.send_burst)),
        )
        self.conversations = Limit(
            "conversations created",
            KeyedLimiter(Rate(settings.conversation_rate_per_second, settings.conversation_burst)),
        )
        # Reads are cheaper than sends, but history and /sync pages are the costliest queries
        # a user can repeat; their own bucket, so reading never uses up a user's sends.
        self.reads = Limit(
            "reads", KeyedLimiter(Rate(settings.read_rate_per_second, settings.read_burst))
        )

    def for_route(self, method: str, path: str) -> Limit | None:
        if method == "GET":
            return self.reads
        if method != "POST":
            return None
        if path == _CREATE_PATH:
            return self.conversations
        if _SEND_PATH.match(path):
            return self.sends
        return None


async def enforce_rest_limits(request: Request, user_id: CurrentUser) -> None:
    """A router dependency: FastAPI caches `current_user` per request, so the route's own
    admission is not repeated."""
    limits: RestLimits = request.app.state.rest_limits
    route = request.scope.get("route")
    limit = limits.for_route(request.method, getattr(route, "path", ""))
    if limit is None:
        return
    wait = limit.limiter.acquire(user_id)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limited: too many {limit.what} ({limit.describe()}); retry later",
            headers={"Retry-After": retry_after_header(wait)},
        )
