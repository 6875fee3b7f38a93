"""Whose queue a routed request goes to: nobody is left without a person due to call them back.

The rules decide where a request belongs (`routing.decision`); the digital-divide programme can be
full or suspended (as during the 2020 lockdown), and a place in it is not a callback. So:

- a person with a callback promise (a caller of the free line) is called back by a training
  advisor within it; a programme place, admitted or waitlisted, comes on top, never instead;
- a person the programme admits is called by its team;
- a person on the programme's waitlist waits in an advisor's queue meanwhile, and keeps the place.

Pure: the service asks the programme first, then queues the request where this says.
"""

from __future__ import annotations

from schemas import ProgrammePlace, Target

__all__ = ["callback_team", "team_after_admission"]


def callback_team(target: Target, programme: ProgrammePlace | None, *, promised: bool) -> Target:
    """The team whose queue the request joins, for a decision's `target` and programme place."""
    if target is not Target.DIGITAL_DIVIDE:
        return target
    if promised or programme is None or not programme.admitted:
        return Target.ADVISORS
    return Target.DIGITAL_DIVIDE


def team_after_admission(*, promised: bool, queued: bool, closed: bool) -> Target | None:
    """Where a request admitted from the programme's waitlist goes now; None: it stays where it is.

    Still queued and without a promise: the programme's team takes it over from the advisors.
    Already called back (closed): the programme's team calls again, to start the programme.
    Held by an advisor, or promised a callback by one: the advisor keeps it, and sees the place.
    """
    if closed:
        return Target.DIGITAL_DIVIDE
    if queued and not promised:
        return Target.DIGITAL_DIVIDE
    return None
