"""What one edge process holds: its connections, the broker, and who it admits."""

import asyncio
import contextlib
from dataclasses import dataclass, field

import structlog

from chat_core.auth import Authenticator
from chat_core.client_address import ClientAddresses
from chat_core.clock import utcnow
from chat_core.close_codes import CloseCode
from chat_core.events import EdgeAlive
from chat_core.limits import KeyedLimiter, Rate
from chat_core.origins import OriginPolicy
from chat_core.runtime import Runtime
from chat_core.store.conversations import Conversations
from chat_core.store.messages import Messages
from ws_edge.config import EdgeSettings
from ws_edge.delivery import EdgeDelivery
from ws_edge.flow import FramePolicy, OutboundLimits
from ws_edge.lookups import CoalescedLookups
from ws_edge.open_sockets import SocketsPerAddress
from ws_edge.registry import ConnectionRegistry

log = structlog.get_logger(__name__)


@dataclass
class Edge:
    settings: EdgeSettings
    runtime: Runtime
    authenticator: Authenticator
    delivery: EdgeDelivery
    # Shutting down: /readyz answers 503 so the load balancer sends new sockets elsewhere.
    draining: bool = False
    frame_policy: FramePolicy = field(init=False)
    outbound: OutboundLimits = field(init=False)
    origins: OriginPolicy = field(init=False)
    addresses: ClientAddresses = field(init=False)
    admissions: KeyedLimiter = field(init=False)
    # What admission, resume and the presence snapshot read, made once: each learns on first
    # use how the server filters (IdLookups) and keeps what it learnt; the per-connect
    # lookups are shared by concurrent connects (ws_edge.lookups).
    messages: Messages = field(init=False)
    conversations: Conversations = field(init=False)
    account_docs: CoalescedLookups = field(init=False)
    # Open sockets per client address, each address capped (upgrade.py).
    open_sockets: SocketsPerAddress = field(init=False)
    conversation_lists: CoalescedLookups = field(init=False)
    presences: CoalescedLookups = field(init=False)
    # Sockets accepted and not yet finished, those still being admitted included.
    sockets: int = 0

    def __post_init__(self) -> None:
        settings = self.settings
        self.frame_policy = FramePolicy.from_settings(settings)
        self.outbound = OutboundLimits.from_settings(settings)
        self.origins = OriginPolicy.from_settings(settings)
        self.addresses = ClientAddresses(settings.trusted_proxies, settings.admission_exempt)
        per_address = settings.admissions_per_second_per_address
        self.admissions = KeyedLimiter(Rate(per_address, max(1.0, per_address)))
        db = self.runtime.db
        self.messages = Messages(db)
        self.conversations = Conversations(db)
        self.account_docs = CoalescedLookups(db.users, {"disabled": 1})
        self.open_sockets = SocketsPerAddress(settings.max_sockets_per_address)
        self.conversation_lists = CoalescedLookups(db.user_conversations)
        self.presences = CoalescedLookups(db.presence, {"effective": 1})

    async def fetch_disabled(self, user_id: str) -> bool:
        """The flag as stored: one `_id` lookup in `users`, batched with concurrent
        connects'. Admission asks the process's account cache first (chat_core.accounts)."""
        doc = await self.account_docs.one(user_id)
        return bool(doc and doc.get("disabled"))

    async def contacts_of(self, user_id: str) -> set[str]:
        """Everyone sharing a conversation with the user: their `user_conversations`
        document (chat_core.contacts), one `_id` lookup batched with concurrent connects'."""
        doc = await self.conversation_lists.one(user_id)
        conversations: dict[str, list[str]] = (doc or {}).get("conversations") or {}
        contacts = {p for participants in conversations.values() for p in participants}
        contacts.discard(user_id)
        return contacts

    @property
    def registry(self) -> ConnectionRegistry:
        return self.delivery.registry

    async def readiness(self) -> dict[str, bool]:
        checks = await self.runtime.readiness()
        checks["delivery_queue"] = self.delivery.is_ready()
        checks["accepting"] = not self.draining
        return checks

    async def drain(self) -> None:
        """Before shutting down: stop being ready, give the load balancer time to notice,
        then ask every client to reconnect (1012), which lands them on another edge."""
        self.draining = True
        seconds = self.settings.drain_seconds
        log.info("draining", seconds=seconds, connections=len(self.registry))
        await asyncio.sleep(seconds)
        await self.close_all(CloseCode.SERVICE_RESTART, "edge restarting; reconnect")
        log.info("drained")

    async def announce(self) -> None:
        """Tell presence this edge is alive; silence means its connections are gone."""
        interval = self.settings.announce_interval_seconds
        alive = EdgeAlive(
            edge_id=self.settings.edge_id, at=utcnow(), connections=len(self.registry)
        )
        await self.runtime.broker.publish_event(alive, alive.event, ttl=interval * 3)

    async def close_all(self, code: int, reason: str) -> None:
        for connection in self.registry.all():
            with contextlib.suppress(Exception):
                await connection.close(code, reason)
