"""The analysts' report and routing agree on the same stream of events.

The stream is made by routing's own code, driven as `RoutingService` drives it: `decide_route`,
the callback promise of the shipped policy (`routing.sla`), `open_case`, then `decide` with the
desk's calls, redirects, joined requests kept by their sibling's call, and the callback timers
fired when routing's clock passes them (`MarkCallbackDue`, `MarkBreached`). Routing's clock is a
simulated one, moved by hand as the demo's operator does. Its events are stamped either by that
clock (a live routing) or by a clock that barely moves while it runs days ahead (the demo: the
stamps are the wall clock's, routing's clock was advanced by 48 hours and more).

Whatever the stamps, the report's late promises are the breaches routing recorded, channel by
channel, once routing's timers have fired; before they have, the report reads the missed deadline
late on its own.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest

from analytics.readmodel import to_document
from analytics.report import Report, build_report
from routing.case import (
    Case,
    Effects,
    KeepPromiseOfJoined,
    MarkBreached,
    MarkCallbackDue,
    RecordContact,
    Redirect,
    ScheduleTimer,
    decide,
    open_case,
)
from routing.decision import decide_route
from routing.rules import load_rules
from routing.sla import callback_deadline, due_at
from schemas import (
    CallbackSlaBreached,
    Channel,
    ContactOutcome,
    Event,
    Target,
    TrainingRequestReceived,
)
from services.calendar import BRUSSELS, BrusselsCalendar
from services.clock import FixedClock
from services.timers import TimerKind
from tests.factories import make_request

pytestmark = pytest.mark.unit

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=BRUSSELS)  # an ordinary working week in Brussels
CHANNELS = ("phone", "email", "web")


class Routing:
    """Routing's decisions and case transitions over in-memory cases and timers.

    `clock` is routing's (simulated) clock: the desk's calls and the timers happen at its time.
    With `lagging_stamps`, events are stamped a second apart from the first request on, as the
    wall clock stamped the demo's while its routing clock was advanced by days.
    """

    def __init__(self, start: datetime, *, lagging_stamps: bool) -> None:
        self.rules = load_rules()
        self.calendar = BrusselsCalendar()
        self.clock = FixedClock(start)
        self.lagging = lagging_stamps
        self.cases: dict[str, Case] = {}
        self.timers: dict[tuple[TimerKind, str], ScheduleTimer] = {}
        self.events: list[Event] = []
        self._last_stamp: datetime | None = None

    # --- what comes in ----------------------------------------------------------------------

    def receive(self, channel: Channel, *, linked: tuple[str, ...] = (), person: str | None = None) -> str:
        """A request received now (routing's time) and routed as `RoutingService.route` does."""
        request_id = str(uuid.uuid4())
        received_at = self.clock.now()
        request = make_request(
            request_id=request_id,
            person_id=person or f"p-{request_id[:8]}",
            channel=channel,
            received_at=received_at,
            time=received_at,
            linked_request_ids=list(linked),
        )
        self.events.append(request)  # intake's stamp: the instant it received the request
        self._last_stamp = max(self._last_stamp or received_at, received_at)
        self._route(request)
        return request_id

    def _route(self, request: TrainingRequestReceived) -> None:
        decision = decide_route(request, rules=self.rules, now=request.received_at)
        open_linked = [c for i in request.linked_request_ids if (c := self.cases.get(i)) is not None and c.is_open]
        joined_to = min(open_linked, key=lambda c: c.received_at).request_id if open_linked else None
        deadline = callback_deadline(request.received_at, self.rules.sla, self.calendar, channel=request.channel)
        due = due_at(deadline, self.rules.sla, self.calendar, received_at=request.received_at) if deadline else None
        opening = open_case(request, decision, joined_to=joined_to, deadline=deadline, due=due)
        self.cases[request.request_id] = opening.case
        self._emit(opening.routed)
        self._apply(opening.effects)

    # --- the desk -----------------------------------------------------------------------------

    def call(self, request_id: str, outcome: ContactOutcome, *, redirect_to: Target | None = None) -> None:
        command = RecordContact(
            worker_id="adv-1",
            outcome=outcome,
            now=self.clock.now(),
            retry_after=timedelta(hours=2),
            redirect_to=redirect_to,
        )
        effects = self._decide(request_id, command)
        if command.reaches_person:
            for joined in [c for c in self.cases.values() if c.joined_to == request_id and c.sla == "pending"]:
                self._decide(joined.request_id, KeepPromiseOfJoined(now=command.now))
        if redirect_to is not None:
            cause = effects.events[0]
            self._decide(
                request_id, Redirect(target=redirect_to, worker_id="adv-1", rule_set_version=self.rules.version, cause=cause)
            )

    # --- time ---------------------------------------------------------------------------------

    def advance(self, delta: timedelta, *, fire_timers: bool = True) -> None:
        """Move routing's clock; the timers due by then fire in order, each at its own instant
        (`fire_timers=False`: the clock moved, the timer loop has not run yet)."""
        until = self.clock.now() + delta
        while fire_timers and (due := [t for t in self.timers.values() if t.fire_at <= until]):
            timer = min(due, key=lambda t: (t.fire_at, t.kind.value, t.key))
            del self.timers[(timer.kind, timer.key)]
            self.clock.at = max(self.clock.at, timer.fire_at)
            command: MarkCallbackDue | MarkBreached
            if timer.kind is TimerKind.CALLBACK_DUE:
                command = MarkCallbackDue(now=self.clock.now(), event_id=uuid.uuid4(), assignee_id=None)
            else:
                command = MarkBreached(
                    now=self.clock.now(),
                    event_id=uuid.uuid4(),
                    assignee_id=None,
                    escalate=self.rules.sla.escalate_after_breach,
                )
            self._decide(timer.key, command)
        self.clock.at = until

    def run_timers(self) -> None:
        self.advance(timedelta(0))

    # --- plumbing -----------------------------------------------------------------------------

    def _decide(self, request_id: str, command: object) -> Effects:
        case, effects = decide(self.cases[request_id], command)  # type: ignore[arg-type]
        self.cases[request_id] = case
        for event in effects.events:
            self._emit(event)
        self._apply(effects)
        return effects

    def _apply(self, effects: Effects) -> None:
        for cancel in effects.cancel:
            self.timers.pop((cancel.kind, cancel.key), None)
        for timer in effects.schedule:
            self.timers[(timer.kind, timer.key)] = timer

    def _emit(self, event: Event) -> None:
        # Monotonic stamps, so that the stream's order is the order things happened in.
        last = self._last_stamp or self.clock.now()
        stamp = last + timedelta(seconds=1) if self.lagging else max(self.clock.now(), last + timedelta(milliseconds=1))
        self._last_stamp = stamp
        self.events.append(event.model_copy(update={"time": stamp}))

    # --- what the stream says ---------------------------------------------------------------

    def report(self) -> Report:
        return build_report([to_document(event) for event in self.events])

    def recorded_breaches(self) -> Counter[str]:
        channels = {e.request_id: e.channel.value for e in self.events if isinstance(e, TrainingRequestReceived)}
        return Counter(channels[e.request_id] for e in self.events if isinstance(e, CallbackSlaBreached))


def the_demos_day(routing: Routing) -> dict[str, str]:
    """The demo's scenario and a few more: who called, who was reached, when."""
    ids = {
        "phone reached late": routing.receive(Channel.PHONE),
        "phone reached at once": routing.receive(Channel.PHONE, person="p-twice"),
        "web, no promise": routing.receive(Channel.WEB),
        "email, no promise": routing.receive(Channel.EMAIL),
        "phone redirected": routing.receive(Channel.PHONE),
    }
    routing.advance(timedelta(minutes=20))
    # The same person calls again before anyone called back: the new request joins the open one.
    ids["phone joined"] = routing.receive(Channel.PHONE, linked=(ids["phone reached at once"],), person="p-twice")
    routing.advance(timedelta(minutes=10))
    routing.call(ids["phone reached at once"], ContactOutcome.ADVICE_GIVEN)  # keeps the joined one's promise too
    routing.call(ids["phone redirected"], ContactOutcome.REDIRECTED, redirect_to=Target.ESPACES_NUMERIQUES)
    routing.call(ids["phone reached late"], ContactOutcome.NO_ANSWER)
    # The operator moves routing's clock, twelve hours at a time, past every deadline of the morning.
    for _ in range(5):
        routing.advance(timedelta(hours=12))
    routing.call(ids["phone reached late"], ContactOutcome.ADVICE_GIVEN)  # by a desk call, after its deadline
    routing.advance(timedelta(hours=12))
    routing.call(ids["web, no promise"], ContactOutcome.ADVICE_GIVEN)  # three days after it came in
    ids["phone, promise still running"] = routing.receive(Channel.PHONE)
    return ids


def assert_report_agrees_with_routing(report: Report, routing: Routing) -> None:
    recorded = routing.recorded_breaches()
    table = report.table("sla_by_channel")
    for channel in (c for c in CHANNELS if c in table.column("channel")):
        row = table.row(channel)
        assert row["breached_recorded"] == row["late"] == recorded[channel], channel
        assert row["met"] + row["late"] + row["pending"] == row["with_promise"], channel
        assert row["with_promise"] + row["no_promise"] == row["requests"], channel
    everything = table.row("all")
    assert everything["breached_recorded"] == everything["late"] == sum(recorded.values())


@pytest.mark.parametrize("lagging_stamps", [False, True], ids=["stamped-by-routing's-clock", "stamps-lag-routing's-clock"])
def test_the_report_counts_late_exactly_the_breaches_routing_recorded(lagging_stamps: bool) -> None:
    routing = Routing(MONDAY, lagging_stamps=lagging_stamps)
    ids = the_demos_day(routing)
    report = routing.report()

    assert_report_agrees_with_routing(report, routing)
    by_channel = report.table("sla_by_channel")
    phone = by_channel.row("phone")
    # Reached at once (and its joined twin, kept by the same call), redirected after a call that reached
    # the person: met; reached after its deadline by the desk: late, as routing recorded; one still running.
    assert (phone["with_promise"], phone["met"], phone["late"], phone["breached_recorded"], phone["pending"]) == (5, 3, 1, 1, 1)
    assert routing.recorded_breaches() == Counter({"phone": 1})
    assert [e.request_id for e in routing.events if isinstance(e, CallbackSlaBreached)] == [ids["phone reached late"]]
    # The web request had no promise: reached three days later, it is not late, and its wait is reported.
    web = by_channel.row("web")
    assert (web["requests"], web["with_promise"], web["late"], web["no_promise"]) == (1, 0, 0, 1)
    assert report.table("time_to_first_contact").row("web")["contacted"] == 1
    assert dict(report.table("overview").rows)["late without a recorded breach"] == 0


def test_a_stream_cut_before_routings_timer_fired_reads_the_missed_deadline_late_and_the_whole_stream_agrees() -> None:
    routing = Routing(MONDAY, lagging_stamps=False)
    missed = routing.receive(Channel.PHONE)
    reached = routing.receive(Channel.PHONE)
    routing.receive(Channel.WEB)
    routing.call(reached, ContactOutcome.ADVICE_GIVEN)
    routing.advance(timedelta(days=3), fire_timers=False)  # the timer loop has not run yet
    routing.receive(Channel.EMAIL)  # something happened after the deadline: the stream's time is past it

    cut = routing.report()
    row = cut.table("sla_by_channel").row("phone")
    assert (row["met"], row["late"], row["breached_recorded"], row["pending"]) == (1, 1, 0, 0)
    assert dict(cut.table("overview").rows)["late without a recorded breach"] == 1

    routing.run_timers()
    whole = routing.report()
    assert_report_agrees_with_routing(whole, routing)
    assert [e.request_id for e in routing.events if isinstance(e, CallbackSlaBreached)] == [missed]
    assert whole.table("sla_by_channel").row("phone")["late"] == 1
