"""The pure part of routing requests in batches: which requests of a batch can be routed together,
and in what order their teams are offered work.

A batch is routed in one transaction (`RoutingService.route_batch`) only where that gives each
request the effect `RoutingService.route` gives it alone: a request seen twice in the batch, one
that joins another request, or one that takes a programme place is routed alone, after the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas import TrainingRequestReceived

__all__ = ["FailedRequest", "RequestNotRoutedYet", "Split", "offer_order", "split_batch"]


class RequestNotRoutedYet(Exception):
    """A person's event (a slot chosen, a withdrawal, a correction) about a request routing has no
    case of yet - its routing failed and waits for a retry: the event is retried later too, so that
    it applies once the request is routed rather than being lost."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request {request_id} is not routed yet")
        self.request_id = request_id


@dataclass(frozen=True)
class FailedRequest:
    """A request whose routing failed, with the error: the consumer treats it as it treats the
    failure of a request routed alone (retried later or dead-lettered)."""

    request: TrainingRequestReceived
    error: Exception


@dataclass(frozen=True)
class Split:
    together: list[TrainingRequestReceived]
    """The first delivery of each event in the batch, not processed before: routed in one transaction."""
    alone: list[TrainingRequestReceived]
    """Every other record, in the batch's order: routed one by one after the others commit."""


def split_batch(requests: Sequence[TrainingRequestReceived], processed: set[str]) -> Split:
    """Split a batch: `processed` holds the ids (as strings) of the events processed before.

    Only the first record of an event id or of a request id is routed together: a second copy is
    routed alone afterwards, where the processed-events record turns it into no effect, as it does
    for a redelivery.
    """
    together: list[TrainingRequestReceived] = []
    alone: list[TrainingRequestReceived] = []
    seen_events: set[str] = set()
    seen_requests: set[str] = set()
    for request in requests:
        event_id = str(request.id)
        first = event_id not in seen_events and request.request_id not in seen_requests
        seen_events.add(event_id)
        seen_requests.add(request.request_id)
        if first and event_id not in processed and not request.linked_request_ids:
            together.append(request)
        else:
            alone.append(request)
    return Split(together=together, alone=alone)


def offer_order(priority: int, deadline: datetime | None, received_at: datetime, request_id: str) -> tuple[object, ...]:
    """Most urgent first: the higher score, then the nearer deadline, then the longer wait."""
    return (-priority, deadline is None, deadline or received_at, received_at, request_id)
