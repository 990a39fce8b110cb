"""REST sends between the two members of one-to-one conversations, and the `new_message`
frames that come back on the members' sockets, matched send by send.

Each send gets a sequence number carried in its content; the monotonic time just before the
request is written is kept beside it, and the recipient's socket looks it up on arrival, so
latency is REST-to-recipient-WebSocket as a client app would see it, over one clock.
"""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from chat_bench.pacing import PacedRun, paced
from chat_bench.rest import RestClient
from chat_bench.sockets import BenchSocket, Frame

REST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    conversation_id: str


@dataclass
class Sent:
    seq: int
    sender: str
    recipient: str
    conversation_id: str
    phase: str
    sent_at: float = 0.0
    answered_at: float | None = None
    status: int | None = None
    message_id: str | None = None
    error: str | None = None
    delivered_at: float | None = None
    delivered_message_id: str | None = None
    deliveries: int = 0
    echoes: int = 0
    awaited: bool = False

    @property
    def accepted(self) -> bool:
        return self.status == 201

    @property
    def latency(self) -> float | None:
        return None if self.delivered_at is None else self.delivered_at - self.sent_at


class MessageLoad:
    def __init__(self, rest: RestClient, run_tag: str) -> None:
        self._rest = rest
        # Set once the conversations exist; sockets are opened (and may receive) before.
        self.pairs: Sequence[Pair] = ()
        self._tag = f"{run_tag}:"
        self.records: list[Sent] = []
        self.unexpected: list[str] = []
        self.other_frames: dict[str, int] = {}
        self.launched = 0
        self._awaiting = 0
        self._none_awaiting = asyncio.Event()
        self._none_awaiting.set()

    # --- receiving ------------------------------------------------------------------------

    def on_frame(self, socket: BenchSocket, frame: Frame, at: float) -> None:
        event = str(frame.get("event"))
        if event != "new_message":
            self.other_frames[event] = self.other_frames.get(event, 0) + 1
            return
        content = str(frame.get("content", ""))
        seq_text = content[len(self._tag) :] if content.startswith(self._tag) else ""
        if not seq_text.isdigit() or int(seq_text) >= len(self.records):
            self.unexpected.append(f"{socket.user_id} got a message we never sent: {content!r}")
            return
        record = self.records[int(seq_text)]
        if socket.user_id == record.sender:
            record.echoes += 1
        elif socket.user_id == record.recipient:
            record.deliveries += 1
            if record.deliveries == 1:
                record.delivered_at = at
                record.delivered_message_id = str(frame.get("messageId"))
                self._settle(record)
        else:
            self.unexpected.append(f"{socket.user_id} got message {record.seq} of others")

    # --- sending --------------------------------------------------------------------------

    async def run(self, phase: str, rate: float, seconds: float) -> PacedRun:
        """Offer `rate` sends per second for `seconds`, open loop.

        At most one request per pooled HTTP connection is in flight: beyond that the stack is
        saturated anyway, and requests queued inside httpx's pool cost the client quadratic
        CPU, which would stall this process and distort every timestamp it takes."""
        if not self.pairs:
            raise ValueError("no conversations to send in")
        count = max(1, round(rate * seconds))
        first = len(self.records)
        for offset in range(count):
            seq = first + offset
            pair = self.pairs[seq % len(self.pairs)]
            # Alternate who speaks on each pass over the conversations.
            forward = (seq // len(self.pairs)) % 2 == 0
            sender, recipient = (pair.first, pair.second) if forward else (pair.second, pair.first)
            self.records.append(Sent(seq, sender, recipient, pair.conversation_id, phase))

        async def send(index: int) -> None:
            await self._send(self.records[first + index])

        return await paced(
            count,
            send,
            rate=rate,
            max_in_flight=self._rest.max_connections,
            settle_timeout=REST_TIMEOUT + 5,
            overrun=max(1.0, 0.1 * seconds),
        )

    async def _send(self, record: Sent) -> None:
        record.awaited = True
        self.launched += 1
        self._awaiting += 1
        self._none_awaiting.clear()
        content = f"{self._tag}{record.seq}"
        record.sent_at = time.monotonic()
        try:
            response = await self._rest.send_message(
                record.sender, record.conversation_id, content, f"bench-{content}"
            )
        except Exception as error:
            record.error = f"{type(error).__name__}: {error}"
            self._settle(record)
            return
        record.answered_at = time.monotonic()
        record.status = response.status_code
        if response.status_code == 201:
            record.message_id = str(response.json().get("messageId"))
        else:
            record.error = f"HTTP {response.status_code}: {response.text[:200]}"
            self._settle(record)

    def _settle(self, record: Sent) -> None:
        if record.awaited:
            record.awaited = False
            self._awaiting -= 1
            if self._awaiting == 0:
                self._none_awaiting.set()

    async def drain(self, idle_seconds: float, max_seconds: float = 120.0) -> bool:
        """Wait until every accepted send reached its recipient; False once nothing has
        arrived for `idle_seconds` (or after `max_seconds`): late is not lost, silent is."""
        deadline = time.monotonic() + max_seconds
        while True:
            delivered = self.delivered_count()
            wait = min(idle_seconds, deadline - time.monotonic())
            if wait <= 0:
                return False
            try:
                await asyncio.wait_for(self._none_awaiting.wait(), wait)
            except TimeoutError:
                if self.delivered_count() == delivered:
                    return False
                continue
            return True

    @property
    def awaiting(self) -> int:
        return self._awaiting

    # --- accounting -----------------------------------------------------------------------

    def of_phase(self, phase: str) -> list[Sent]:
        """The sends of a phase that were started: those the in-flight cap held back past
        the phase's end were scheduled but never offered (`not_offered`)."""
        return [r for r in self.records if r.phase == phase and r.sent_at > 0]

    def delivered_count(self) -> int:
        return sum(r.delivered_at is not None for r in self.records)

    def correctness(
        self, *, refusals_are_problems: bool = True
    ) -> tuple[dict[str, int], list[str]]:
        """Counts over every send (warm-up included) and the problems they show.

        `sent` counts what the stack accepted (201). A request that timed out on our side may
        still have been stored and delivered: it counts under `timed_out`, never as lost. A
        send refused or timed out is a problem unless overload is the point (ceiling)."""
        launched = [r for r in self.records if r.sent_at > 0]
        accepted = [r for r in launched if r.accepted]
        lost = [r for r in accepted if r.delivered_at is None]
        duplicates = sum(max(0, r.deliveries - 1) + max(0, r.echoes - 1) for r in launched)
        mismatched = [
            r
            for r in accepted
            if r.delivered_message_id is not None and r.delivered_message_id != r.message_id
        ]
        refused = [r for r in launched if r.status is not None and not r.accepted]
        timed_out = [r for r in launched if r.status is None]
        counts = {
            "requests": len(launched),
            "sent": len(accepted),
            "delivered": len(accepted) - len(lost),
            "lost": len(lost),
            "duplicates": duplicates,
            "refused": len(refused),
            "timed_out": len(timed_out),
            "timed_out_but_delivered": sum(r.delivered_at is not None for r in timed_out),
            "sender_echoes": sum(r.echoes > 0 for r in accepted),
            "unexpected_frames": len(self.unexpected),
        }
        problems = []
        if lost:
            problems.append(f"{len(lost)} accepted messages never reached their recipient")
        if duplicates:
            problems.append(f"{duplicates} duplicate new_message deliveries")
        failed = refused + timed_out
        if failed and refusals_are_problems:
            problems.append(f"{len(failed)} sends refused or timed out, e.g. {failed[0].error}")
        if mismatched:
            problems.append(f"{len(mismatched)} new_message frames with another messageId")
        if self.unexpected:
            problems.append(f"{len(self.unexpected)} unexpected frames, e.g. {self.unexpected[0]}")
        return counts, problems


def pair_up(user_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Users 0-1, 2-3, ...: each in exactly one one-to-one conversation."""
    if len(user_ids) < 2 or len(user_ids) % 2:
        raise ValueError("an even number of users, at least 2, is needed")
    return [(user_ids[i], user_ids[i + 1]) for i in range(0, len(user_ids), 2)]
