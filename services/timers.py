"""Durable timers in MongoDB: the callback-due reminder, the SLA breach, reservation timeouts and
call retries fire once, whichever replica is up, even across restarts.

A timer is a document of `routing_timers` with id ``f"{kind}:{key}"``. Firing it takes three
steps, none of which lives only in memory:

1. a replica *claims* a due timer with one conditional update (``pending`` -> ``firing``, its
   name in `claimed_by`, a claim that expires), so two replicas never hold the same claim;
2. it runs the handler and marks the timer ``fired`` **in one transaction**, the mark being
   conditional on the claim still being its own: the effect and the mark commit together or
   not at all;
3. a replica that dies in between leaves a ``firing`` timer whose claim expires; any replica
   then claims it again. A replica that comes back from a pause after its claim was taken over
   finds the mark refused, and its transaction (so its effect) is rolled back.

Handlers must therefore make their effects through the session they are given (the outbox,
a state change), and nothing else that cannot be rolled back. Timer state::

    pending --claim--> firing --complete--> fired
       ^                 |  \\--error, N times--> failed
       |                 \\--claim expires--> claimable again (firing, expired)
    schedule(replace=True) / reschedule      cancel: pending|firing -> cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from services.clock import Clock
from services.mongo import MongoDatabase
from services.tracing import carrier, continued, outgoing_context

__all__ = [
    "TIMERS_COLLECTION",
    "Timer",
    "TimerClaimLost",
    "TimerHandler",
    "TimerKind",
    "TimerState",
    "TimerStore",
    "timer_id",
]

log = structlog.get_logger(__name__)

TIMERS_COLLECTION = "routing_timers"


class TimerKind(StrEnum):
    """The kinds routing schedules; any other string without a colon is accepted too."""

    CALLBACK_DUE = "callback_due"
    SLA_BREACH = "sla_breach"
    RESERVATION_TIMEOUT = "reservation_timeout"
    RETRY_CALL = "retry_call"
    PARTNER_REMINDER = "partner_reminder"


class TimerState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    FIRED = "fired"
    CANCELLED = "cancelled"
    FAILED = "failed"


_LIVE = [TimerState.PENDING.value, TimerState.FIRING.value]


def timer_id(kind: str, key: str) -> str:
    """``f"{kind}:{key}"``; the kind may not hold a colon, so the id reads back unambiguously."""
    if not kind or ":" in kind:
        raise ValueError("a timer kind is a non-empty name without ':'")
    if not key:
        raise ValueError("a timer key must not be empty")
    return f"{kind}:{key}"


@dataclass(frozen=True, slots=True)
class Timer:
    id: str
    kind: str
    key: str
    fire_at: datetime
    payload: dict[str, Any]
    state: TimerState
    claimed_by: str | None
    claim_expires_at: datetime | None
    fired_at: datetime | None
    attempts: int
    trace: Mapping[str, str] = field(default_factory=dict)
    """The W3C trace context it was scheduled in: its firing continues that trace."""

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Timer:
        return cls(
            id=doc["_id"],
            kind=doc["kind"],
            key=doc["key"],
            fire_at=_as_utc(doc["fire_at"]) or _missing("fire_at"),
            payload=dict(doc.get("payload") or {}),
            state=TimerState(doc["state"]),
            claimed_by=doc.get("claimed_by"),
            claim_expires_at=_as_utc(doc.get("claim_expires_at")),
            fired_at=_as_utc(doc.get("fired_at")),
            attempts=int(doc.get("attempts", 0)),
            trace=dict(doc.get("trace") or {}),
        )


TimerHandler = Callable[[Timer, AsyncClientSession], Awaitable[None]]
"""Does a timer's effect through the session (inside the transaction that marks it fired)."""


class TimerClaimLost(Exception):
    """The timer is no longer claimed by this owner (claim expired and taken, cancelled, replaced);
    raised inside the firing transaction so that the handler's effect is rolled back."""


def _as_utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    # A client built without tz_aware=True hands back naive UTC datetimes.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _missing(field: str) -> datetime:
    raise ValueError(f"a timer document without {field}")


def _pending(kind: str, key: str, fire_at: datetime, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A timer's fields when (re)armed: pending at `fire_at`, unclaimed, never attempted."""
    return {
        "kind": kind,
        "key": key,
        "fire_at": _stored_instant(fire_at),
        "payload": dict(payload),
        "state": TimerState.PENDING.value,
        "claimed_by": None,
        "claim_expires_at": None,
        "fired_at": None,
        "attempts": 0,
        "scheduled_at": now,
        # The trace of whatever armed it (within a batch, that of the request `key` names).
        "trace": carrier(outgoing_context(key)),
    }


def _stored_instant(at: datetime) -> datetime:
    """`at` in UTC, rounded *up* to the millisecond BSON keeps, so a timer never fires early."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("fire_at must be timezone-aware")
    utc = at.astimezone(UTC)
    extra = utc.microsecond % 1000
    return utc if extra == 0 else utc + timedelta(microseconds=1000 - extra)


class TimerStore:
    """The timers of one routing replica (`owner`), on the shared `routing_timers` collection.

    `lease` is how long a claim protects a firing timer; a handler that takes longer risks being
    fired by another replica, whose mark then wins and whose transaction alone commits.
    `max_attempts` handler errors turn a timer `failed`.
    """

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        db: MongoDatabase,
        *,
        clock: Clock,
        owner: str,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 5,
        collection: str = TIMERS_COLLECTION,
        tracer: Tracer | None = None,
    ) -> None:
        if not owner:
            raise ValueError("a timer store needs the name of its owner")
        if lease <= timedelta(0):
            raise ValueError("the claim lease must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._collection = db[collection]
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.max_attempts = max_attempts
        self._tracer = tracer or trace.get_tracer(__name__)

    def _now(self) -> datetime:
        return self.clock.now().astimezone(UTC)

    async def ensure_indexes(self) -> None:
        await self._collection.create_index([("state", ASCENDING), ("fire_at", ASCENDING)], name="state_fire_at")
        # For the second branch of the claim: firing timers whose replica died.
        await self._collection.create_index(
            [("state", ASCENDING), ("claim_expires_at", ASCENDING)], name="state_claim_expires_at"
        )

    # --- scheduling ------------------------------------------------------------------

    async def schedule(
        self,
        kind: str,
        key: str,
        fire_at: datetime,
        payload: Mapping[str, Any] | None = None,
        *,
        session: AsyncClientSession | None = None,
        replace: bool = False,
    ) -> bool:
        """Schedule `kind:key` at `fire_at`; True if this call created (or replaced) it.

        Idempotent: a timer that exists, in whatever state, is kept as it is — a redelivered
        event schedules nothing twice and does not re-arm a fired timer. `replace=True`
        re-arms it from scratch (pending, no claim, no attempts) at the new time and payload;
        a replica firing it at that moment loses its claim and its effect is rolled back.
        """
        _id = timer_id(kind, key)
        fields = _pending(kind, key, fire_at, payload or {}, self._now())
        update = {"$set": fields} if replace else {"$setOnInsert": fields}
        try:
            result = await self._collection.update_one({"_id": _id}, update, upsert=True, session=session)
        except DuplicateKeyError:
            # Two upserts of a new id raced; the other one created it.
            return False
        created = result.upserted_id is not None
        if created or replace:
            log.debug("timer.scheduled", kind=kind, key=key, fire_at=fields["fire_at"], replaced=replace and not created)
        return created or replace

    async def schedule_new(
        self, timers: Sequence[tuple[str, str, datetime, Mapping[str, Any]]], *, session: AsyncClientSession | None = None
    ) -> None:
        """`schedule` of many (kind, key, fire_at, payload) timers in one round trip, none replaced:
        each that exists already is kept as it is."""
        if not timers:
            return
        now = self._now()
        await self._collection.bulk_write(
            [
                UpdateOne({"_id": timer_id(kind, key)}, {"$setOnInsert": _pending(kind, key, fire_at, payload, now)}, upsert=True)
                for kind, key, fire_at, payload in timers
            ],
            ordered=True,
            session=session,
        )

    async def reschedule(
        self,
        kind: str,
        key: str,
        fire_at: datetime,
        *,
        payload: Mapping[str, Any] | None = None,
        session: AsyncClientSession | None = None,
    ) -> bool:
        """Move a live (pending or firing) timer to `fire_at`, optionally with a new payload.

        False if it does not exist or already fired, failed or was cancelled: use
        `schedule(..., replace=True)` to re-arm those. A firing timer goes back to pending and
        its current firer loses the claim.
        """
        fields: dict[str, Any] = {
            "fire_at": _stored_instant(fire_at),
            "state": TimerState.PENDING.value,
            "claimed_by": None,
            "claim_expires_at": None,
        }
        if payload is not None:
            fields["payload"] = dict(payload)
        result = await self._collection.update_one(
            {"_id": timer_id(kind, key), "state": {"$in": _LIVE}}, {"$set": fields}, session=session
        )
        return result.matched_count == 1

    async def cancel(self, kind: str, key: str, *, session: AsyncClientSession | None = None) -> bool:
        """Cancel a pending or firing timer; False if there was none live.

        Cancelling a firing timer wins over its firer unless the firer already committed: the
        firer's mark is refused and its effect rolled back.
        """
        result = await self._collection.update_one(
            {"_id": timer_id(kind, key), "state": {"$in": _LIVE}},
            {
                "$set": {
                    "state": TimerState.CANCELLED.value,
                    "cancelled_at": self._now(),
                    "claimed_by": None,
                    "claim_expires_at": None,
                }
            },
            session=session,
        )
        if result.modified_count:
            log.debug("timer.cancelled", kind=kind, key=key)
        return result.modified_count == 1

    async def get(self, kind: str, key: str, *, session: AsyncClientSession | None = None) -> Timer | None:
        doc = await self._collection.find_one({"_id": timer_id(kind, key)}, session=session)
        return Timer.from_document(doc) if doc else None

    # --- firing ----------------------------------------------------------------------

    async def claim_due(self, limit: int = 20, *, kinds: Iterable[str] | None = None) -> list[Timer]:
        """Claim up to `limit` due timers for this owner, earliest first, one conditional update each.

        Due means pending with `fire_at <= now`, or firing with an expired claim (its replica
        died or stalled). `kinds` restricts the claim to the kinds this replica can handle.
        """
        now = self._now()
        query: dict[str, Any] = {
            "$or": [
                {"state": TimerState.PENDING.value, "fire_at": {"$lte": now}},
                {"state": TimerState.FIRING.value, "claim_expires_at": {"$lt": now}},
            ]
        }
        if kinds is not None:
            query["kind"] = {"$in": list(kinds)}
        claimed: list[Timer] = []
        for _ in range(limit):
            doc = await self._collection.find_one_and_update(
                query,
                {"$set": {"state": TimerState.FIRING.value, "claimed_by": self.owner, "claim_expires_at": now + self.lease}},
                sort=[("fire_at", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                break
            claimed.append(Timer.from_document(doc))
        return claimed

    async def complete(self, timer: Timer, *, session: AsyncClientSession | None = None) -> None:
        """Mark `timer` fired if this owner still holds its claim; else raise `TimerClaimLost`.

        Call it inside the transaction of the handler's effect, so that both commit together.
        """
        result = await self._collection.update_one(
            {"_id": timer.id, "state": TimerState.FIRING.value, "claimed_by": self.owner},
            {"$set": {"state": TimerState.FIRED.value, "fired_at": self._now(), "claim_expires_at": None}},
            session=session,
        )
        if result.matched_count != 1:
            raise TimerClaimLost(timer.id)

    async def fire(self, timer: Timer, handler: TimerHandler) -> bool:
        """Run `handler` for a claimed timer and mark it fired, in one transaction.

        True if it fired; False if the claim was lost (someone else fires it, or it was
        cancelled) or the handler failed — the failure is recorded for a retry after the claim
        expires, or the timer turns `failed` after `max_attempts`.
        """

        async def transaction(session: AsyncClientSession) -> None:
            # The mark comes first, although it commits with the effect anyway: a lost claim
            # is found before the handler runs, and the timer's document stays locked by this
            # transaction, so a replica re-claiming it meanwhile waits for our outcome.
            await self.complete(timer, session=session)
            await handler(timer, session)

        # In the trace of the request that armed it, hours or days later: one trace per request.
        with continued(self._tracer, f"timer.{timer.kind}", timer.trace, timer_key=timer.key):
            try:
                async with self._client.start_session() as session:
                    await session.with_transaction(transaction)
            except TimerClaimLost:
                log.info("timer.claim_lost", kind=timer.kind, key=timer.key, owner=self.owner)
                return False
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a handler's failure must not stop the other timers
                await self._record_failure(timer, error)
                return False
            log.info("timer.fired", kind=timer.kind, key=timer.key, owner=self.owner)
            return True

    async def _record_failure(self, timer: Timer, error: Exception) -> None:
        # Left `firing` with its claim: another attempt comes once the claim expires, which
        # spaces retries by the lease. A pipeline update, so the count and the give-up decision
        # are read and written in one step.
        attempts = {"$add": [{"$ifNull": ["$attempts", 0]}, 1]}
        doc = await self._collection.find_one_and_update(
            {"_id": timer.id, "state": TimerState.FIRING.value, "claimed_by": self.owner},
            [
                {
                    "$set": {
                        "attempts": attempts,
                        "last_error": type(error).__name__,
                        "state": {
                            "$cond": [
                                {"$gte": [attempts, self.max_attempts]},
                                TimerState.FAILED.value,
                                TimerState.FIRING.value,
                            ]
                        },
                    }
                }
            ],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            log.info("timer.claim_lost", kind=timer.kind, key=timer.key, owner=self.owner)
        elif doc["state"] == TimerState.FAILED.value:
            log.error("timer.failed", kind=timer.kind, key=timer.key, attempts=doc["attempts"], error_type=type(error).__name__)
        else:
            log.warning(
                "timer.handler_failed",
                kind=timer.kind,
                key=timer.key,
                attempts=doc["attempts"],
                error_type=type(error).__name__,
                retry_at=doc["claim_expires_at"],
            )

    async def run_once(self, handlers: Mapping[str, TimerHandler], *, limit: int = 20) -> int:
        """Claim up to `limit` due timers of the handled kinds and fire them; returns how many fired."""
        fired = 0
        for timer in await self.claim_due(limit, kinds=handlers.keys()):
            if await self.fire(timer, handlers[timer.kind]):
                fired += 1
        return fired

    async def run(
        self,
        handlers: Mapping[str, TimerHandler],
        *,
        poll_interval: float = 0.5,
        stop: asyncio.Event | None = None,
        batch: int = 20,
    ) -> None:
        """Fire due timers until `stop` is set (or forever); `poll_interval` is real seconds between
        empty rounds, while due times are read from the injected clock.

        A batch is claimed at once and fired in turn, so `batch` x the slowest handler should
        stay well under `lease`; past it, another replica takes the rest over (safely, but
        twice the work).
        """
        stop = stop or asyncio.Event()
        pause = poll_interval
        while not stop.is_set():
            try:
                claimed = await self._run_batch(handlers, batch)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - MongoDB unavailable: keep polling, with a back-off
                log.warning("timer.poll_failed", owner=self.owner, error_type=type(error).__name__, pause_s=pause)
                await _sleep_unless(stop, pause)
                pause = min(pause * 2, max(poll_interval, 10.0))
                continue
            pause = poll_interval
            if claimed < batch:
                await _sleep_unless(stop, poll_interval)

    async def _run_batch(self, handlers: Mapping[str, TimerHandler], batch: int) -> int:
        timers = await self.claim_due(batch, kinds=handlers.keys())
        for timer in timers:
            await self.fire(timer, handlers[timer.kind])
        return len(timers)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
