"""cost: what one persisted send costs, per process, at given rates (issue 19's protocol).

`--users` 1,000 online in 500 one-to-one conversations; open-loop sends in `--step-seconds`
10 s steps at each of `--rates` (100, 200, 400/s), alternating the speaker on each pass over
the conversations. `--via rest`: `POST /conversations/{id}/messages`; `--via socket`: the
sender's WebSocket carries `send_message` and its `message_ack` comes back on it (a stack that
answers `error` for the unknown event is reported as not supporting it, not as failing);
`--via rest,socket` runs every rate both ways on the same population.

Per step: offered against really offered (>= 95 %?), send -> recipient socket p50/p99, send ->
answer (REST response or `message_ack`) p50/p99, refused, lost (accepted, never delivered
after the final drain), duplicates (a recipient's or the sender's own socket receiving one
send's message twice, or two messages stored for one send) and CPU ms per send for every
process, the servers together and the generator, per accepted (persisted) send.
"""

import asyncio
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import orjson

from chat_bench.cpu import GENERATOR, Window
from chat_bench.pacing import PacedRun, paced
from chat_bench.population import (
    ConversationSpec,
    Online,
    create_conversations,
    crowd_figures,
    online_users,
    record_setup_retries,
    settle,
)
from chat_bench.results import Figure, ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import Device, Frame
from chat_bench.stats import percentile, to_ms
from chat_bench.users import fresh_user_ids

MIN_OFFERED_SHARE = 0.95
PROBE_TIMEOUT = 10.0
VIAS = ("rest", "socket")
STEP_FIGURES = frozenset(
    {
        "achieved_rate_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "answer_p50_ms",
        "answer_p99_ms",
        "refused",
        "unanswered",
        "lost",
        "duplicates",
        "generator_ms_per_request",
    }
)


@dataclass(frozen=True)
class CostOptions:
    users: int = 1000
    rates: str = "100,200,400"
    step_seconds: float = 10.0
    # Sends at the first rate before the first step, not measured.
    warmup: float = 3.0
    via: str = "rest"
    # After each step: how long its last messages may take to arrive (inside its CPU window).
    step_grace: float = 3.0
    # After the last step: give up once no delivery has arrived for this long.
    drain_timeout: float = 15.0
    duplicate_window: float = 1.0
    # A step is held when really offered, p99 within this, nothing refused, lost or doubled.
    p99_limit_ms: float = 100.0


SMOKE = CostOptions(
    users=20,
    rates="20,40",
    step_seconds=1.5,
    warmup=0.5,
    via="rest,socket",
    step_grace=2,
    drain_timeout=5,
    duplicate_window=0.5,
    p99_limit_ms=1000,
)


def parse_rates(text: str) -> list[float]:
    problem = f"--rates wants positive numbers separated by commas, got {text!r}"
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(problem) from None
    if not rates or any(not math.isfinite(r) or r <= 0 for r in rates):
        raise ValueError(problem)
    return rates


def parse_vias(text: str) -> list[str]:
    vias = [part.strip() for part in text.split(",") if part.strip()]
    if not vias or any(v not in VIAS for v in vias):
        raise ValueError(f"--via wants rest, socket or rest,socket, got {text!r}")
    return vias


@dataclass(slots=True)
class Send:
    seq: int
    sender: str
    recipient: str
    conversation_id: str
    step: str
    sent_at: float = 0.0
    # The REST response, or the message_ack on the sender's socket.
    answered_at: float | None = None
    accepted: bool = False
    error: str | None = None
    message_id: str | None = None
    delivered_at: float | None = None
    recipient_frames: int = 0
    sender_frames: int = 0
    other_ids: int = 0
    awaited: bool = False

    @property
    def launched(self) -> bool:
        return self.sent_at > 0

    @property
    def duplicates(self) -> int:
        return max(0, self.recipient_frames - 1) + max(0, self.sender_frames - 1) + self.other_ids


@dataclass
class SendLoad:
    """Every send of the run, and the frames that answer them, matched by the sequence
    number in the content (`<tag>:<seq>`) and the clientMessageId (`<tag>-<seq>`)."""

    ctx: Context
    pairs: list[tuple[str, str, str]] = field(default_factory=list)
    online: Online | None = None
    sends: list[Send] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    other_frames: Counter[str] = field(default_factory=Counter)
    # Error frames that name no send: what a stack without `send_message` answers.
    stray_errors: list[str] = field(default_factory=list)
    awaiting: int = 0
    none_awaiting: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tag(self) -> str:
        return self.ctx.run_tag

    def on_frame(self, device: Device, frame: Frame, at: float) -> None:
        event = frame.get("event")
        if event == "new_message":
            self._delivered(device.user_id, frame, at)
        elif event == "message_ack":
            found = self._by_client_id(frame.get("clientMessageId"))
            if found is not None and found.answered_at is None:
                found.answered_at, found.accepted = at, True
                found.message_id = str(frame.get("messageId"))
                self._check_id(found, found.message_id)
        elif event == "error":
            found = self._by_client_id(frame.get("clientMessageId"))
            if found is None:
                self.stray_errors.append(str(frame.get("message")))
            elif found.answered_at is None:
                found.answered_at, found.error = at, f"error: {frame.get('message')}"
                self._settle(found)
        else:
            self.other_frames[str(event)] += 1

    def _by_client_id(self, value: object) -> Send | None:
        text = str(value)
        prefix = f"{self.tag}-"
        if not text.startswith(prefix) or not text[len(prefix) :].isdigit():
            return None
        seq = int(text[len(prefix) :])
        return self.sends[seq] if seq < len(self.sends) else None

    def _delivered(self, user_id: str, frame: Frame, at: float) -> None:
        content = str(frame.get("content", ""))
        prefix = f"{self.tag}:"
        seq_text = content[len(prefix) :] if content.startswith(prefix) else ""
        if not seq_text.isdigit() or int(seq_text) >= len(self.sends):
            self.unexpected.append(f"{user_id} got a message never sent: {content[:60]!r}")
            return
        send = self.sends[int(seq_text)]
        message_id = str(frame.get("messageId"))
        if user_id == send.sender:
            send.sender_frames += 1
        elif user_id == send.recipient:
            send.recipient_frames += 1
            if send.delivered_at is None:
                send.delivered_at = at
                self._settle(send)
        else:
            self.unexpected.append(f"{user_id} got message {send.seq} of others")
            return
        self._check_id(send, message_id)

    def _check_id(self, send: Send, message_id: str) -> None:
        if send.message_id is None:
            send.message_id = message_id
        elif message_id != send.message_id:
            send.other_ids += 1

    def _settle(self, send: Send) -> None:
        if send.awaited:
            send.awaited = False
            self.awaiting -= 1
            if self.awaiting == 0:
                self.none_awaiting.set()

    def plan(self, step: str, count: int) -> int:
        first = len(self.sends)
        for seq in range(first, first + count):
            first_user, second_user, conversation_id = self.pairs[seq % len(self.pairs)]
            forward = (seq // len(self.pairs)) % 2 == 0
            sender, recipient = (first_user, second_user) if forward else (second_user, first_user)
            self.sends.append(Send(seq, sender, recipient, conversation_id, step))
        return first

    def _start(self, send: Send) -> None:
        send.awaited = True
        self.awaiting += 1
        self.none_awaiting.clear()
        send.sent_at = time.monotonic()

    async def send_rest(self, send: Send) -> None:
        self._start(send)
        try:
            status, body = await self.ctx.messaging.send_message(
                send.sender,
                send.conversation_id,
                f"{self.tag}:{send.seq}",
                f"{self.tag}-{send.seq}",
            )
        except Exception as error:
            send.error = f"{type(error).__name__}: {error}"
            self._settle(send)
            return
        send.answered_at = time.monotonic()
        if status == 201:
            send.accepted = True
            self._check_id(send, str(orjson.loads(body).get("messageId")))
        else:
            send.error = f"HTTP {status}: {body[:200].decode(errors='replace')}"
            self._settle(send)

    async def send_socket(self, send: Send) -> None:
        assert self.online is not None
        frame = orjson.dumps(
            {
                "event": "send_message",
                "conversationId": send.conversation_id,
                "content": f"{self.tag}:{send.seq}",
                "messageType": "text",
                "clientMessageId": f"{self.tag}-{send.seq}",
            }
        )
        self._start(send)
        try:
            self.online[send.sender].send(frame)
        except Exception as error:
            send.error = f"{type(error).__name__}: {error}"
            self._settle(send)

    async def offer(self, step: str, via: str, rate: float, seconds: float) -> PacedRun:
        count = max(1, round(rate * seconds))
        first = self.plan(step, count)
        send = self.send_rest if via == "rest" else self.send_socket

        async def action(index: int) -> None:
            await send(self.sends[first + index])

        return await paced(
            count,
            action,
            rate=rate,
            max_in_flight=self.ctx.messaging.connections if via == "rest" else 10_000,
            settle_timeout=15,
            overrun=max(1.0, 0.1 * seconds),
        )

    async def drain(self, idle_seconds: float, max_seconds: float = 120.0) -> bool:
        """Until every started send is delivered or failed; False once nothing has arrived
        for `idle_seconds` (or after `max_seconds`): late is not lost, silent is."""
        deadline = time.monotonic() + max_seconds
        while self.awaiting:
            delivered = sum(s.delivered_at is not None for s in self.sends)
            wait = min(idle_seconds, deadline - time.monotonic())
            if wait <= 0:
                return False
            try:
                await asyncio.wait_for(self.none_awaiting.wait(), wait)
            except TimeoutError:
                if sum(s.delivered_at is not None for s in self.sends) == delivered:
                    return False
        return True

    async def socket_supported(self) -> str | None:
        """None when the stack takes `send_message`; else why not (its error frame)."""
        (probe,) = self.sends[self.plan("probe", 1) :]
        before = len(self.stray_errors)
        await self.send_socket(probe)
        deadline = time.monotonic() + PROBE_TIMEOUT
        while time.monotonic() < deadline:
            if probe.answered_at is not None or probe.delivered_at is not None:
                return None if probe.accepted or probe.delivered_at else probe.error
            if len(self.stray_errors) > before:
                break
            await asyncio.sleep(0.05)
        # Not taken: the probe is out of every count.
        self._settle(probe)
        probe.sent_at = 0.0
        if len(self.stray_errors) > before:
            return self.stray_errors[-1]
        return f"no message_ack or error within {PROBE_TIMEOUT:g}s"


def step_row(
    load: SendLoad, step: str, via: str, rate: float, run: PacedRun, limit_ms: float
) -> dict[str, Figure]:
    """One step's figures, after the final drain (so late deliveries and duplicates count).
    Latency is over the accepted sends, one never delivered being infinitely late; refusals
    are counted apart (and keep the step from being held)."""
    launched = [s for s in load.sends if s.step == step and s.launched]
    accepted = [s for s in launched if s.accepted]
    latencies = sorted(
        s.delivered_at - s.sent_at if s.delivered_at is not None else math.inf for s in accepted
    )
    answers = sorted(s.answered_at - s.sent_at for s in launched if s.answered_at is not None)
    lost = sum(s.delivered_at is None for s in accepted)
    duplicates = sum(s.duplicates for s in launched)
    refused = len(launched) - len(accepted)
    # Neither a response (or message_ack) nor an error: delivered or not, the sender never heard.
    unanswered = [s for s in launched if s.answered_at is None]
    p99 = percentile(latencies, 0.99) if latencies else math.inf
    share = run.achieved_rate / rate if rate else 0.0
    reasons = []
    if share < MIN_OFFERED_SHARE:
        reasons.append(f"offered only {run.achieved_rate:g}/s")
    if refused:
        reasons.append(f"{refused} refused or unanswered")
    if lost:
        reasons.append(f"{lost} lost")
    if duplicates:
        reasons.append(f"{duplicates} duplicates")
    if p99 * 1000 > limit_ms:
        reasons.append(f"p99 over {limit_ms:g} ms")

    def ms(values: list[float], fraction: float) -> float | None:
        value = percentile(values, fraction) if values else math.inf
        return to_ms(value) if math.isfinite(value) else None

    return {
        "step": step,
        "via": via,
        "offered_rate_per_s": rate,
        "achieved_rate_per_s": run.achieved_rate,
        "offered_share": round(share, 3),
        "really_offered": share >= MIN_OFFERED_SHARE,
        "not_offered": run.skipped,
        "sent": len(launched),
        "accepted": len(accepted),
        "refused": refused,
        "unanswered": len(unanswered),
        "unanswered_but_delivered": sum(s.delivered_at is not None for s in unanswered),
        "lost": lost,
        "duplicates": duplicates,
        "latency_p50_ms": ms(latencies, 0.5),
        "latency_p99_ms": ms(latencies, 0.99),
        "answer_p50_ms": ms(answers, 0.5),
        "answer_p99_ms": ms(answers, 0.99),
        "held": not reasons,
        "why": "; ".join(reasons) or "ok",
    }


async def run(ctx: Context, options: CostOptions) -> ScenarioResult:
    result = ScenarioResult("cost", asdict(options))
    rates, vias = parse_rates(options.rates), parse_vias(options.via)
    if options.users < 2 or options.users % 2:
        raise ValueError("--users must be even and at least 2")
    load = SendLoad(ctx)
    user_ids = fresh_user_ids(options.users, ctx.rng)
    pairs = [(user_ids[i], user_ids[i + 1]) for i in range(0, len(user_ids), 2)]
    # Conversations first, then the users come online, as when people open the app.
    ids = await create_conversations(ctx, [ConversationSpec(a, (b,)) for a, b in pairs])
    load.pairs = [(a, b, c) for (a, b), c in zip(pairs, ids, strict=True)]
    steps: list[tuple[str, str, float, PacedRun, Window]] = []
    async with online_users(ctx, user_ids, load.on_frame) as online:
        load.online = online
        settle_seconds = await settle(ctx, user_ids)
        if "socket" in vias:
            why_not = await load.socket_supported()
            result.figures["socket_send_supported"] = why_not is None
            if why_not is not None:
                result.notes.append(f"socket sends unsupported by this stack: {why_not}")
                vias.remove("socket")
        if vias and options.warmup > 0:
            ctx.progress.say(f"warm-up: {rates[0]:g}/s for {options.warmup:g}s")
            await load.offer("warmup", vias[0], rates[0], options.warmup)
            await load.drain(options.step_grace, options.step_grace)
        for rate in rates:
            for via in vias:
                step = f"{via} {rate:g}/s"
                ctx.progress.say(f"{step} for {options.step_seconds:g}s")
                with ctx.cpu.window() as window:
                    paced_run = await load.offer(step, via, rate, options.step_seconds)
                    await load.drain(options.step_grace, options.step_grace)
                steps.append((step, via, rate, paced_run, window))
                answered = sum(s.accepted for s in load.sends if s.step == step)
                ctx.progress.say(
                    f"{step}: offered {paced_run.achieved_rate:g}/s, {answered} accepted, "
                    f"servers {window.per_operation(answered).get('cpu_ms_per_op_servers')} ms "
                    "CPU per accepted send"
                )
        drained = await load.drain(options.drain_timeout)
        ctx.progress.say(f"{'all delivered' if drained else 'drain timed out'}")
        await asyncio.sleep(options.duplicate_window)

    for step, via, rate, paced_run, window in steps:
        row = step_row(load, step, via, rate, paced_run, options.p99_limit_ms)
        # Per persisted send: what refused requests cost is charged to the accepted ones.
        accepted_count, sent = row["accepted"], row["sent"]
        assert isinstance(accepted_count, int)
        assert isinstance(sent, int)
        # The generator did the work of every request, refused or not.
        generator = window.spent.get(GENERATOR, 0.0) * 1000 / sent if sent else None
        result.rows.append(
            {
                **row,
                **window.per_operation(accepted_count),
                "generator_ms_per_request": None if generator is None else round(generator, 3),
            }
        )
    launched = [s for s in load.sends if s.launched]
    accepted = [s for s in launched if s.accepted]
    lost = sum(s.delivered_at is None for s in accepted)
    duplicates = sum(s.duplicates for s in launched)
    unaccepted = [s for s in launched if not s.accepted]
    result.figures.update(
        {
            "users": options.users,
            "conversations": len(ids),
            **crowd_figures(online, settle_seconds),
            "sent": len(launched),
            "accepted": len(accepted),
            "refused": len(unaccepted),
            "lost": lost,
            "duplicates": duplicates,
            "unexpected_frames": len(load.unexpected),
        }
    )
    for via in vias:
        held = [rate for step, v, rate, _, _ in steps if v == via and _held(result, step)]
        result.figures[f"highest_rate_held_{via}"] = max(held, default=None)
    for row in result.rows:
        # Each step's figures at the top too, named `<via>_<rate>_<figure>`: what targets
        # and `chat-bench regress` compare.
        prefix = f"{row['via']}_{row['offered_rate_per_s']:g}_"
        result.figures.update(
            {prefix + k: v for k, v in row.items() if k in STEP_FIGURES or k.startswith("cpu_")}
        )
    if lost:
        result.problems.append(f"{lost} accepted messages never reached their recipient")
    if duplicates:
        result.problems.append(f"{duplicates} duplicate deliveries")
    if unaccepted:
        # Shedding under overload is the stack's right (a 503 says so); it shows in `held`.
        why = unaccepted[0].error or "no answer at all"
        result.notes.append(f"{len(unaccepted)} sends refused or unanswered, e.g. {why}")
    if load.unexpected:
        result.problems.append(f"{len(load.unexpected)} unexpected frames: {load.unexpected[0]}")
    if load.other_frames:
        result.notes.append(f"other frames received: {dict(load.other_frames)}")
    record_setup_retries(result, ctx.messaging)
    return result


def _held(result: ScenarioResult, step: str) -> bool:
    return any(row["step"] == step and row["held"] is True for row in result.rows)
