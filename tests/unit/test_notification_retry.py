"""Exponential backoff with jitter, within its bounds, and what each attempt's result leads to."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from notification.model import DeliveryStatus
from notification.ports import SendResult
from notification.retry import NextStep, RetryPolicy

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
POLICY = RetryPolicy()  # 6 attempts, 5 s x 5^n, capped at 30 min, ±20 %


def test_the_nominal_schedule() -> None:
    delays = [POLICY.nominal_delay(n) for n in range(1, 6)]
    assert delays == [
        timedelta(seconds=5),
        timedelta(seconds=25),
        timedelta(seconds=125),
        timedelta(seconds=625),
        timedelta(minutes=30),  # 3125 s, capped
    ]


@pytest.mark.parametrize("failures", range(1, 8))
def test_jitter_stays_within_twenty_percent(failures: int) -> None:
    rng = random.Random(failures)
    nominal = POLICY.nominal_delay(failures)
    delays = [POLICY.delay(failures, rng) for _ in range(2000)]
    assert all(nominal * 0.8 <= d <= nominal * 1.2 for d in delays)
    # Actually spread: both halves of the band are used, and no two retries share a second.
    assert min(delays) < nominal * 0.85 and max(delays) > nominal * 1.15
    assert len(set(delays)) > 1900


def test_a_provider_failure_is_retried_until_the_last_attempt() -> None:
    rng = random.Random(1)
    failure = SendResult.transient("HTTP 503")
    for attempts in range(1, POLICY.max_attempts):
        step = POLICY.after(failure, attempts=attempts, now=NOW, rng=rng)
        assert step.status is DeliveryStatus.QUEUED and not step.final
        assert step.next_attempt_at is not None
        assert NOW + POLICY.nominal_delay(attempts) * 0.8 <= step.next_attempt_at <= NOW + POLICY.nominal_delay(attempts) * 1.2
    assert POLICY.after(failure, attempts=POLICY.max_attempts, now=NOW, rng=rng) == NextStep(
        DeliveryStatus.FAILED, None, final=True
    )


def test_retry_after_wins_over_the_schedule() -> None:
    later = NOW + timedelta(minutes=7)
    step = POLICY.after(SendResult.transient("HTTP 429", retry_at=later), attempts=1, now=NOW, rng=random.Random(0))
    assert step == NextStep(DeliveryStatus.QUEUED, later, final=False)
    past = POLICY.after(
        SendResult.transient("HTTP 429", retry_at=NOW - timedelta(seconds=5)), attempts=1, now=NOW, rng=random.Random(0)
    )
    assert past.next_attempt_at == NOW


def test_sent_and_permanent_results_are_final() -> None:
    rng = random.Random(0)
    assert POLICY.after(SendResult.sent(), attempts=3, now=NOW, rng=rng) == NextStep(DeliveryStatus.SENT, None, final=True)
    assert POLICY.after(SendResult.permanent("HTTP 400"), attempts=1, now=NOW, rng=rng).status is DeliveryStatus.FAILED
    bounced = POLICY.after(SendResult.permanent("SMTP 550", bounced=True), attempts=1, now=NOW, rng=rng)
    assert bounced == NextStep(DeliveryStatus.BOUNCED, None, final=True)


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.0)
    with pytest.raises(ValueError):
        RetryPolicy(base=timedelta(0))
    with pytest.raises(ValueError):
        POLICY.nominal_delay(0)
