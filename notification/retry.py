"""What happens after a sending attempt: sent, retried later (exponential backoff with jitter), or given up.

Pure, but for the random jitter, which comes from an injected `random.Random`. With the defaults
a delivery is tried 6 times: at once, then about 5 s, 25 s, 2 min, 10 min and 30 min (capped)
after each failure, each wait ±20 %, so that messages failing together (a provider outage) do
not all come back in the same second. A provider's own `Retry-After` wins over the schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from notification.model import DeliveryStatus
from notification.ports import SendResult, SendStatus

__all__ = ["NextStep", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class NextStep:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    final: bool
    """Whether no further attempt will be made."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base: timedelta = timedelta(seconds=5)
    factor: float = 5.0
    cap: timedelta = timedelta(minutes=30)
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base <= timedelta(0) or self.factor < 1 or self.cap < self.base:
            raise ValueError("backoff needs base > 0, factor >= 1 and cap >= base")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    def nominal_delay(self, failures: int) -> timedelta:
        """The wait after the `failures`-th failed attempt, before jitter: base x factor^(failures-1), capped."""
        if failures < 1:
            raise ValueError("failures counts from 1")
        seconds = self.base.total_seconds() * self.factor ** (failures - 1)
        return min(timedelta(seconds=seconds), self.cap)

    def delay(self, failures: int, rng: random.Random) -> timedelta:
        """`nominal_delay` spread uniformly over ±`jitter`."""
        nominal = self.nominal_delay(failures)
        return nominal * rng.uniform(1 - self.jitter, 1 + self.jitter)

    def after(self, result: SendResult, *, attempts: int, now: datetime, rng: random.Random) -> NextStep:
        """The delivery's state after its `attempts`-th attempt ended with `result`."""
        if result.status is SendStatus.SENT:
            return NextStep(DeliveryStatus.SENT, None, final=True)
        if result.status is SendStatus.PERMANENT:
            return NextStep(DeliveryStatus.BOUNCED if result.bounced else DeliveryStatus.FAILED, None, final=True)
        if attempts >= self.max_attempts:
            return NextStep(DeliveryStatus.FAILED, None, final=True)
        at = max(result.retry_at, now) if result.retry_at is not None else now + self.delay(attempts, rng)
        return NextStep(DeliveryStatus.QUEUED, at, final=False)
