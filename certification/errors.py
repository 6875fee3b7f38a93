"""What certification refuses, as typed errors that carry the HTTP status the API answers with.

    CertificationError (status, default 409)        - a staff or candidate action that cannot be done
     |- Unknown (404)                                 - no such candidate, offer, session, centre, ...
     |- Invalid (422)                                 - the request itself is wrong (no seat, no zone, ...)
     |- OfferClosed (409)                             - the offer was answered or expired
     |- OfferPastDeadline (409)                       - the offer is still open but its deadline passed
     |- OfferTooLate (409)                            - the session starts too soon to leave time to answer
     |- NotWaiting (409)                              - the candidate cannot take an offer now
     `- SessionFull (409)                             - no seat left in the session
    ConcurrencyConflict                               - someone else saved first: load again and decide again

`ConcurrencyConflict` is not a `CertificationError`: nobody reads it; use cases catch it and retry.
"""

from __future__ import annotations

__all__ = [
    "CertificationError",
    "ConcurrencyConflict",
    "Invalid",
    "NotWaiting",
    "OfferClosed",
    "OfferPastDeadline",
    "OfferTooLate",
    "SessionFull",
    "Unknown",
]


class CertificationError(Exception):
    """A staff or candidate action that cannot be done, with the reason they read and an HTTP status."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Unknown(CertificationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)


class Invalid(CertificationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=422)


class OfferClosed(CertificationError):
    """The offer is accepted, declined or expired, so this answer cannot be given."""


class OfferPastDeadline(CertificationError):
    """The offer is still `offered`, but its deadline passed (its timer has not fired yet)."""


class OfferTooLate(CertificationError):
    """The session starts too soon for an offer to leave the minimum time to answer before the margin."""


class NotWaiting(CertificationError):
    """The candidate is not on the waitlist, or turned this session down: no offer for them."""


class SessionFull(CertificationError):
    """No seat left in the session (held and booked fill it)."""


class ConcurrencyConflict(Exception):
    """A save found another version than the one loaded (or a new aggregate already stored)."""
