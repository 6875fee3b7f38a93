"""Each request judged against its own callback promise, the one routing made and recorded.

Routing promises a callback only where its SLA policy covers the request's channel (phone, as
shipped: `routing/data/rules.yaml`, `sla.applies_to`), and says so by a `callback_deadline` on the
request's `TrainingRequestRouted`. The promise is the deadline of the *first* routed event that
carries one: a desk redirect announces the request as routed again with no deadline, which does
not take the promise back. A request whose routed events all lack one had **no promise**: it is
neither met nor late, however long it waited (its time to first contact is reported apart).

Outcomes, as of the stream's own time `as_of` (`analytics.report.stream_time`):

- **late** when routing recorded a `CallbackSlaBreached` for the request (its clock, not the event
  stamps, decides: the demo's simulated clock runs ahead of them), or, with no breach recorded,
  when the person was first reached after the deadline, or not reached while the deadline passed
  before `as_of` (a stream cut before routing's timer fired);
- **met** when the person was first reached at or before the deadline (inclusive, as
  `routing.sla.sla_outcome`), or the request was closed by then without reaching them
  (`TrainingRequestClosed`: unreachable after the last allowed attempt, a wrong number), as routing
  judges it (`routing.attempts`): the desk called within the promise;
- **pending** when nobody reached the person and the deadline is not before `as_of`.

*Reached* is the first `ContactAttempted` whose outcome is not `no_answer` nor `wrong_number`. A request that joined
an open request of the same person (`TrainingRequestRouted.rule_id` `joins-open-request`,
`routing.case.open_case`) waits for that request's call, which keeps its promise too
(`routing.case.KeepPromiseOfJoined`): it counts as reached by the first call that reached the
person on any of its `linked_request_ids` after it was routed.

**A window the person chose** (`CallbackSlotChosen`, status page or phone menu) that ends after the
promise moves routing's deadline to its end, as the person's choice (`routing.case.ChooseSlot`): the
last window chosen before the promise passed (and before the person was reached) counts. Such a
request is judged against both: **met** when settled within the promise still, **by_choice** -
"called later at the person's request" - when settled after the promise but within the window, and
**choice_missed** when the window passed too (routing's breach then records the window's end). Both
are counted apart from `late`: neither is a broken promise of ours in the usual sense.

On a complete stream, routing's timer has fired for every deadline that passed unreached, so the
requests judged late are exactly those with a recorded breach; the report shows both counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = ["JOINS_OPEN_REQUEST", "NO_ANSWER", "PromiseFacts", "PromiseOutcome", "judge", "read_promises"]

PromiseOutcome = Literal["met", "late", "pending", "no_promise", "by_choice", "choice_missed"]

NO_ANSWER: Final = "no_answer"
_NOT_REACHING: Final = frozenset({NO_ANSWER, "wrong_number"})
JOINS_OPEN_REQUEST: Final = "joins-open-request"
"""The rule id routing gives a request that joins an open one of the same person (`routing.case.open_case`)."""


@dataclass(frozen=True, slots=True)
class PromiseFacts:
    """What the stream says of one request's promise."""

    received_at: datetime
    deadline: datetime | None
    """The promise: the first routed event's `callback_deadline` (or a recorded breach's `deadline`)."""
    reached_at: datetime | None
    """The first call that reached the person (for a joined request, possibly on the request it joined)."""
    breach_recorded: bool = False
    """Routing published `CallbackSlaBreached` for the request."""
    closed_at: datetime | None = None
    """Routing closed the request (`TrainingRequestClosed`), reached or not: the promise is settled then."""
    chosen_deadline: datetime | None = None
    """The end of the window the person chose when it ends after the promise (`CallbackSlotChosen`)."""


def judge(facts: PromiseFacts, as_of: datetime | None) -> PromiseOutcome:
    """The outcome of one request's promise as of `as_of` (see the module docstring)."""
    if facts.deadline is None:
        return "no_promise"
    if facts.chosen_deadline is not None and _utc(facts.chosen_deadline) > _utc(facts.deadline):
        return _judge_by_choice(facts, as_of)
    if facts.breach_recorded:
        return "late"
    deadline = _utc(facts.deadline)
    settled = [_utc(t) for t in (facts.reached_at, facts.closed_at) if t is not None]
    if settled:
        return "met" if min(settled) <= deadline else "late"
    if as_of is not None and _utc(as_of) > deadline:
        return "late"
    return "pending"


def _judge_by_choice(facts: PromiseFacts, as_of: datetime | None) -> PromiseOutcome:
    """A promise whose deadline the person moved to the end of the window they chose."""
    assert facts.deadline is not None and facts.chosen_deadline is not None
    promise, chosen = _utc(facts.deadline), _utc(facts.chosen_deadline)
    settled = [_utc(t) for t in (facts.reached_at, facts.closed_at) if t is not None]
    if settled:
        first = min(settled)
        return "met" if first <= promise else "by_choice" if first <= chosen else "choice_missed"
    if facts.breach_recorded or (as_of is not None and _utc(as_of) > chosen):
        return "choice_missed"
    return "pending"


def read_promises(documents: Iterable[Mapping[str, Any]]) -> dict[str, PromiseFacts]:
    """The promise facts of every request with a `TrainingRequestReceived` among read-model `documents`.

    Documents in any order; ties in time are broken by event id, as the report does.
    """
    docs = sorted(documents, key=lambda d: (_utc(d["time"]), str(d["_id"])))
    received: dict[str, datetime] = {}
    linked: dict[str, tuple[str, ...]] = {}
    deadlines: dict[str, datetime] = {}
    routed_at: dict[str, datetime] = {}
    joined: set[str] = set()
    breached: dict[str, datetime] = {}
    reached: dict[str, list[datetime]] = {}
    closed: dict[str, datetime] = {}
    chosen: dict[str, list[tuple[datetime, datetime]]] = {}
    for doc in docs:
        kind, request_id = doc["event"], doc.get("request_id")
        if request_id is None:
            continue
        if kind == "TrainingRequestReceived" and request_id not in received:
            received[request_id] = _utc(doc["received_at"])
            linked[request_id] = tuple(doc.get("linked_request_ids") or ())
        elif kind == "TrainingRequestRouted":
            if request_id not in routed_at:
                routed_at[request_id] = _utc(doc["time"])
                if doc.get("rule_id") == JOINS_OPEN_REQUEST:
                    joined.add(request_id)
            if doc.get("callback_deadline") is not None and request_id not in deadlines:
                deadlines[request_id] = _utc(doc["callback_deadline"])
        elif kind == "CallbackSlaBreached":
            breached.setdefault(request_id, _utc(doc["deadline"]))
        elif kind == "ContactAttempted" and doc.get("outcome") not in _NOT_REACHING:
            reached.setdefault(request_id, []).append(_utc(doc["time"]))
        elif kind == "TrainingRequestClosed":
            closed.setdefault(request_id, _utc(doc["time"]))
        elif kind == "CallbackSlotChosen" and doc.get("slot_end") is not None:
            chosen.setdefault(request_id, []).append((_utc(doc["time"]), _utc(doc["slot_end"])))

    facts: dict[str, PromiseFacts] = {}
    for request_id, at in received.items():
        # A call stamped before the request (intake's clock ahead of routing's) is not time travel.
        calls = [max(t, at) for t in reached.get(request_id, ())]
        if request_id in joined:
            since = routed_at[request_id]
            calls += [max(t, at) for other in linked[request_id] for t in reached.get(other, ()) if t >= since]
        reached_at = min(calls, default=None)
        closed_at = max(closed[request_id], at) if request_id in closed else None
        deadline = deadlines.get(request_id, breached.get(request_id))
        facts[request_id] = PromiseFacts(
            received_at=at,
            deadline=deadline,
            reached_at=reached_at,
            breach_recorded=request_id in breached,
            closed_at=closed_at,
            chosen_deadline=_chosen_deadline(chosen.get(request_id, ()), deadline, reached_at, closed_at),
        )
    return facts


def _chosen_deadline(
    choices: Iterable[tuple[datetime, datetime]], promise: datetime | None, *settled: datetime | None
) -> datetime | None:
    """The end of the last window chosen while routing could still move the deadline - before the
    promise passed and before the request was settled - when it ends after the promise."""
    if promise is None:
        return None
    until = min([promise, *(t for t in settled if t is not None)])
    made = [end for chosen_at, end in choices if chosen_at <= until]
    return made[-1] if made and made[-1] > promise else None


def _utc(at: datetime) -> datetime:
    # Documents read without tz_aware hold naive UTC (BSON dates are UTC).
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
