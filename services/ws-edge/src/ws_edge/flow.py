"""Flow control per socket: how fast a client may write, and how much may wait for it to read.

One policy object per edge, shared by every socket; per socket only the counters live.
"""

from dataclasses import dataclass
from enum import Enum

from chat_core.limits import Rate, TokenBucket
from ws_edge.config import EdgeSettings

# Drops further apart than this are separate episodes: a client that bursts now and then is
# throttled, never closed; one that stays over the limit is.
EPISODE_GAP_SECONDS = 1.0
# The `error` a dropped frame earns is sent at most this often: never an amplifier.
WARN_INTERVAL_SECONDS = 1.0


class Verdict(Enum):
    PASS = "pass"
    DROP = "drop"  # dropped silently: the client was told within the last second
    WARN = "warn"  # dropped, and the client gets one `error` saying it is rate limited
    CLOSE = "close"  # over the limit for too long: close with 1008


@dataclass(frozen=True, slots=True)
class FramePolicy:
    rate: Rate
    # Invalid frames as a bucket: a burst of `invalid_frames_max` drains it and at most
    # max/window refill per second, so more than the max within the window closes the socket.
    invalid: Rate
    abuse_after_seconds: float

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> "FramePolicy":
        return cls(
            rate=Rate(settings.frame_rate_per_second, settings.frame_burst),
            invalid=Rate(
                settings.invalid_frames_max / settings.invalid_frames_window_seconds,
                settings.invalid_frames_max,
            ),
            abuse_after_seconds=settings.abuse_close_after_seconds,
        )


class FrameGate:
    """One socket's inbound counters. Every frame counts, heartbeats and bad frames included."""

    __slots__ = ("dropped_at", "frames", "invalid", "limited_since", "warned_at")

    def __init__(self, policy: FramePolicy, now: float) -> None:
        self.frames = policy.rate.bucket(now)
        self.invalid: TokenBucket | None = None  # most sockets never send a bad frame
        self.limited_since = float("-inf")
        self.dropped_at = float("-inf")
        self.warned_at = float("-inf")

    def admit(self, policy: FramePolicy, now: float) -> Verdict:
        if self.frames.take(policy.rate, now):
            return Verdict.PASS
        if now - self.dropped_at > EPISODE_GAP_SECONDS:
            self.limited_since = now
        self.dropped_at = now
        if now - self.limited_since >= policy.abuse_after_seconds:
            return Verdict.CLOSE
        if now - self.warned_at >= WARN_INTERVAL_SECONDS:
            self.warned_at = now
            return Verdict.WARN
        return Verdict.DROP

    def invalid_frame(self, policy: FramePolicy, now: float) -> bool:
        """Count a bad frame; True when there were too many and the socket must close."""
        if self.invalid is None:
            self.invalid = policy.invalid.bucket(now)
        return not self.invalid.take(policy.invalid, now)


@dataclass(frozen=True, slots=True)
class OutboundLimits:
    """What may wait for one socket to read before it counts as a slow consumer."""

    max_bytes: int
    max_frames: int
    # A slow consumer's 3008 close waits behind what it has not read; after this long the
    # connection is dropped without it.
    close_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> "OutboundLimits":
        return cls(
            max_bytes=settings.outbound_max_bytes,
            max_frames=settings.outbound_max_frames,
            close_timeout_seconds=settings.close_timeout_seconds,
        )
