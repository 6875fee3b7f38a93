"""The envelope every event carries: the CloudEvents 1.0 attributes plus correlation,
causation, schema version and the acting person, so that any adapter can emit and trace any event."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ACTOR", "EVENT_TYPE_PREFIX", "Event", "acting_as", "type_field"]

EVENT_TYPE_PREFIX = "be.bruxellesformation."


def type_field(event_type: str) -> Any:
    """The `type` field of a concrete event: `type: Literal["x"] = type_field("x")`.

    The type is how a reader picks the class to decode into. It is written out rather
    than derived from the class name so that renaming a class never changes the wire.
    """
    return Field(
        default=event_type,
        description="CloudEvents `type`: what happened, in reverse-DNS form; fixed per class.",
        examples=[event_type],
    )


ACTOR: ContextVar[str | None] = ContextVar("actor", default=None)
"""The authenticated principal (token subject) on whose request events are being made, if any.

Set by the HTTP access check (`services.auth.requires`) once a token is accepted; an event made while it
is set records it as `actor`, however deep in a use case the event is made. Consumers, timers and relays
run in tasks of their own, outside any request, and record none."""


@contextmanager
def acting_as(subject: str | None) -> Iterator[None]:
    """Make the events of a block record `subject` as their actor (tests, scripts)."""
    token = ACTOR.set(subject)
    try:
        yield
    finally:
        ACTOR.reset(token)


def _current_actor() -> str | None:
    return ACTOR.get()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _root_correlation(data: dict[str, Any]) -> Any:
    # A root event correlates with itself. If `id` failed validation it is missing here;
    # the error is reported on `id`, so the placeholder is never used.
    return data.get("id")


class Event(BaseModel):
    """Base of all events: an immutable fact with its CloudEvents envelope.

    Subclasses are past-tense names, add their payload fields and fix `type` with
    `type_field`. They inherit `frozen=True` (facts do not change) and `extra="ignore"`
    (a newer producer may add optional fields; an older consumer must still read them).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    SCHEMA_VERSION: ClassVar[int] = 1
    """The highest `schema_version` of this event that this code understands."""

    id: UUID = Field(
        default_factory=uuid4,
        description="CloudEvents `id`: unique id of this event; consumers deduplicate on it.",
        examples=["0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11"],
    )
    source: str = Field(
        min_length=1,
        pattern=r"^\S+$",
        description="CloudEvents `source`: URI-reference of the producer that emitted the event.",
        examples=["/intake/web", "/routing", "/notification/sms"],
    )
    type: str = Field(
        min_length=1,
        description="CloudEvents `type`: what happened, in reverse-DNS form.",
        examples=["be.bruxellesformation.training.request.received"],
    )
    specversion: Literal["1.0"] = Field(
        default="1.0",
        description="CloudEvents specification version.",
        examples=["1.0"],
    )
    time: AwareDatetime = Field(
        default_factory=_utc_now,
        description="CloudEvents `time`: when it happened (RFC 3339, with an offset).",
        examples=["2025-03-10T09:15:00Z"],
    )
    subject: str | None = Field(
        default=None,
        description="CloudEvents `subject`: the request id or person id the event is about.",
        examples=["3f2b1c9e-7d4a-4e55-b1a2-0c9d8e7f6a54"],
    )
    correlation_id: UUID = Field(
        default_factory=_root_correlation,
        description=(
            "Id of the first event of the conversation this event belongs to "
            "(wire: `correlationid`). Defaults to the event's own id for a root event."
        ),
        examples=["0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11"],
    )
    causation_id: UUID | None = Field(
        default=None,
        description="Id of the event that directly caused this one (wire: `causationid`).",
        examples=["5d7e0f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"],
    )
    actor: str | None = Field(
        default_factory=_current_actor,
        description=(
            "Extension attribute `actor`: the authenticated principal (the token's subject, e.g. `adv-1`) whose "
            "action caused this event; absent when a process caused it."
        ),
        examples=["adv-1"],
    )
    schema_version: int = Field(
        default=1,
        ge=1,
        description=(
            "Version of this event's payload schema (wire: `schemaversion`). Within a "
            "topic version a new schema version only adds optional fields."
        ),
        examples=[1],
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        declared = cls.model_fields["type"].default
        # Caught at import time rather than on the first message: a wrong type would
        # route the event nowhere.
        if isinstance(declared, str) and not declared.startswith(EVENT_TYPE_PREFIX):
            raise TypeError(f"{cls.__qualname__}.type must start with {EVENT_TYPE_PREFIX!r}, got {declared!r}")

    @model_validator(mode="before")
    @classmethod
    def _current_schema_version(cls, data: Any) -> Any:
        # A field default cannot see the class, and a subclass that bumps SCHEMA_VERSION
        # must not also have to remember to bump the default.
        if isinstance(data, dict) and "schema_version" not in data:
            return {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @field_validator("schema_version")
    @classmethod
    def _not_from_the_future(cls, version: int) -> int:
        if version > cls.SCHEMA_VERSION:
            raise ValueError(f"schema version {version} is newer than {cls.SCHEMA_VERSION}, the highest this code understands")
        return version

    @classmethod
    def event_type(cls) -> str:
        """The CloudEvents `type` of this event class."""
        declared = cls.model_fields["type"].default
        if not isinstance(declared, str):
            raise TypeError(f"{cls.__qualname__} is not a concrete event: it has no fixed type")
        return declared

    @classmethod
    def following(cls, previous: Event, /, *, source: str, **fields: Any) -> Self:
        """Build the event that `previous` caused, in the same conversation.

        Sets `correlation_id` to the previous event's, `causation_id` to its id and,
        unless given, `subject` to its subject.
        """
        fields.setdefault("subject", previous.subject)
        return cls(
            source=source,
            correlation_id=previous.correlation_id,
            causation_id=previous.id,
            **fields,
        )

    @property
    def event_id(self) -> UUID:
        """Alias of `id`, for readers who do not think in CloudEvents."""
        return self.id

    @property
    def occurred_at(self) -> datetime:
        """Alias of `time`, for readers who do not think in CloudEvents."""
        return self.time
