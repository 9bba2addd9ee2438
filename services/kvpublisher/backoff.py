"""Retry delays: exponential, bounded, jittered — a pure function of the attempt number.

A Consul that is down must not be hammered (hundreds of publishers, thousands of clusters), yet must be
caught up quickly once it is back: the delay doubles from `initial` up to `maximum` and then stays
there, so a recovered Consul is retried within `maximum` seconds. Jitter (± `jitter` of the delay)
keeps many publishers from retrying in lockstep.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_EXPONENT = 64  # 2**64 * any sane initial is far beyond any maximum: no overflow, no effect


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number `attempt` (1 = the first retry after one failure)."""

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def base(self, attempt: int) -> float:
        """The delay before jitter: initial * factor**(attempt-1), capped at maximum."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        return float(min(self.maximum, self.initial * self.factor**exponent))

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """The jittered delay; `rand` in [0, 1) (random.random()), 0.5 means no jitter.

        Never negative and never above `maximum`, whatever the jitter.
        """
        base = self.base(attempt)
        spread = base * self.jitter
        return max(0.0, min(self.maximum, base - spread + 2 * spread * rand))
