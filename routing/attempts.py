"""Attempts with an end: when the desk calls again after a call nobody answered, and how a call
ends a request (its disposition).

Pure (no I/O, no clock). `routing.case.decide` asks these questions; the policy's numbers come
from the rule set's `desk:` section (`max_attempts`, `retry_after_no_answer`).

Spacing. A retry is `retry_after` of *opening time* later (`BrusselsCalendar.add_working_time`):
two hours after a call at 16:30 on a Friday is Monday 10:45, not Friday 18:30 - the remainder
carries over to the next opening, skipping weekends, public holidays and the calendar's extra
closure days. A time the worker chose is kept when the line is open then, and moved to the next
opening otherwise (a Saturday, a holiday, 19:00), never earlier than the call itself.

Dispositions. Advice given, an enrolment and an exam request reached the person: `reached`. A
redirection reached them too but hands the request to another team, which goes on calling: no
disposition yet. A wrong number and a withdrawal close the request at once. A call nobody
answered closes it as `unreachable` when it was the last of the `max_attempts` unanswered calls
in a row since the request was (re)routed; before that, a retry is planned.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas import ContactOutcome, Disposition
from services.calendar import BrusselsCalendar

__all__ = ["CLOSING_OUTCOMES", "closing_disposition", "next_attempt_at", "reaches_person"]

CLOSING_OUTCOMES: dict[ContactOutcome, Disposition] = {
    ContactOutcome.ADVICE_GIVEN: Disposition.REACHED,
    ContactOutcome.ENROLLED: Disposition.REACHED,
    ContactOutcome.EXAM_WANTED: Disposition.REACHED,
    ContactOutcome.WRONG_NUMBER: Disposition.WRONG_NUMBER,
    ContactOutcome.WITHDRAWN: Disposition.WITHDRAWN,
}
"""Outcomes that end a request whatever the count; `no_answer` ends it only at the limit, `redirected` never."""

_NOT_REACHING = frozenset({ContactOutcome.NO_ANSWER, ContactOutcome.WRONG_NUMBER})


def reaches_person(outcome: ContactOutcome) -> bool:
    """Whether someone spoke with the person on the call (which keeps the callback promise).

    A withdrawal is the person's own word, so it reached them; a wrong number did not.
    """
    return outcome not in _NOT_REACHING


def closing_disposition(outcome: ContactOutcome, *, unanswered: int, max_attempts: int | None) -> Disposition | None:
    """The disposition a call with `outcome` ends its request with, or None when the request stays open.

    `unanswered` counts the unanswered calls in a row including this one (for `no_answer`);
    `max_attempts` None means no limit.
    """
    if outcome is ContactOutcome.NO_ANSWER:
        return Disposition.UNREACHABLE if max_attempts is not None and unanswered >= max_attempts else None
    return CLOSING_OUTCOMES.get(outcome)


def next_attempt_at(
    now: datetime, retry_after: timedelta, *, retry_at: datetime | None = None, calendar: BrusselsCalendar | None = None
) -> datetime:
    """When to call again after a call at `now` nobody answered (see the module docstring).

    Without a calendar the old reading applies: `retry_at`, else `retry_after` of elapsed time.
    """
    if calendar is None:
        return retry_at or now + retry_after
    if retry_at is not None:
        return calendar.next_opening(max(retry_at, now))
    # Counting opening time can end exactly at a closing (closing is exclusive): then the next opening.
    return calendar.next_opening(calendar.add_working_time(now, retry_after))
