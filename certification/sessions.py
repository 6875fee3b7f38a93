"""Training centres and their exam sessions, as typed states with a version.

A session counts its seats: `held` by pending offers, `booked` by accepted ones. The three
changes to those counters are pure (`hold_seat`, `book_seat`, `free_seat`); a seat is held only
while ``held + booked < seats``, so saving the new version (compare-and-set on `version`) is what
keeps two replicas racing for the last seat from both getting it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from certification.candidate import utc
from certification.errors import SessionFull
from certification.seating import CentreState, SessionSeats

__all__ = ["Centre", "Session", "SessionFull"]


@dataclass(frozen=True, slots=True)
class Centre:
    centre_id: str
    name: str
    address: str
    state: CentreState
    version: int = 0

    @property
    def open(self) -> bool:
        return self.state is CentreState.OPEN

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Centre:
        return cls(doc["_id"], doc["name"], doc["address"], CentreState(doc["state"]), int(doc.get("version", 0)))


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    centre_id: str
    certifications: tuple[str, ...]
    starts_at: datetime
    seats: int
    held: int = 0
    booked: int = 0
    version: int = 0

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Session:
        return cls(
            doc["_id"],
            doc["centre_id"],
            tuple(doc["certifications"]),
            utc(doc["starts_at"]) or doc["starts_at"],
            doc["seats"],
            doc["held"],
            doc["booked"],
            int(doc.get("version", 0)),
        )

    @property
    def seating(self) -> SessionSeats:
        return SessionSeats(
            self.session_id, self.centre_id, frozenset(self.certifications), self.starts_at, self.seats, self.held, self.booked
        )

    def hold_seat(self) -> Session:
        """A seat held for a new offer; `SessionFull` if none is free."""
        if self.held + self.booked >= self.seats:
            raise SessionFull(f"session {self.session_id} is full")
        return replace(self, held=self.held + 1)

    def book_seat(self) -> Session:
        """The held seat of an accepted offer, now booked."""
        if self.held < 1:
            raise RuntimeError(f"session {self.session_id}: no held seat to book (counters out of step)")
        return replace(self, held=self.held - 1, booked=self.booked + 1)

    def free_seat(self) -> Session:
        """The held seat of a declined or expired offer, free again."""
        return replace(self, held=max(0, self.held - 1))
