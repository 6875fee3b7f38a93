"""Which channel tells a person what, and whether a message may go out now. Pure: no I/O, no clock.

The channel policy, notice by notice:

- request routed (advisors, espaces numériques, digital divide, Cité des métiers): SMS if a mobile
  number is known, else e-mail;
- contact attempted, nobody answered; request withdrawn by the person; callback slot chosen by
  the person: SMS if a mobile number is known, else e-mail (a short confirmation);
- request closed as unreachable (the last allowed call went unanswered): e-mail if an address is
  known, else SMS - one written account of the calls and of how to reach us, to keep;
- enrolment confirmed or waitlisted, exam scheduled, certificate issued: e-mail if an address is known (links
  and details), **plus** a short SMS if a mobile number is known.

- A request update is short and urgent (someone is about to call): a text reaches a phone that
  rings anyway. Enrolments, exams and certificates carry links, login instructions and a list of
  what to bring: that is an e-mail, with a text to say it was sent.
- "Mobile" means a number that can take a text (`is_mobile`, from `phonenumbers`): a Belgian
  landline is not one, and a request with only a landline is told by e-mail.
- A channel the person opted out of is recorded as a *skipped* delivery (so support sees why)
  and, for a request update, replaced by the other channel if that one is usable.
- No consent to be contacted: every delivery is recorded as skipped (`no_consent`), none is sent.
  No usable address at all: one skipped e-mail delivery (`no_address`).
- Quiet hours (`QuietHours`, 21:00-08:00 Brussels by default) defer a text to their end; e-mail
  goes out at any time.
- SMS only to the countries we text (`SmsCountries`, Belgium by default): a mobile number
  elsewhere gets no text, recorded as a *skipped* SMS (`country_not_allowed`) and, as for an
  opt-out, replaced by the e-mail when there is one. A text costs money and carries our name;
  an anonymous form could otherwise make us text any number in the world.
- A text that fails for good (invalid number, or every attempt failed) falls back to e-mail when
  the person has a usable address and the event has no e-mail delivery yet (`fallback_channel`).

The same rules run again just before sending (`check_before_sending`), because a person can opt
out, or be erased, between the event and the send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import phonenumbers

from notification.model import Reachability, SkipReason
from notification.notices import NoticeKind
from notification.quiet_hours import QuietHours
from schemas import NotificationChannel

__all__ = [
    "BELGIUM_ONLY",
    "Defer",
    "Go",
    "PlannedDelivery",
    "SendCheck",
    "Skip",
    "SmsCountries",
    "check_before_sending",
    "fallback_channel",
    "is_mobile",
    "plan_channels",
]

EMAIL = NotificationChannel.EMAIL
SMS = NotificationChannel.SMS

_TEXTABLE = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


@lru_cache(maxsize=4096)
def is_mobile(phone: str) -> bool:
    """Whether an E.164 number can take a text (mobile, or a plan that does not tell them apart)."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _TEXTABLE


class SmsCountries:
    """The countries we send texts to, from ISO 3166 codes (`BE`) or calling codes (`32`, `+32`).

    A calling code stands for every region that shares it (`+1`: the US, Canada and the
    Caribbean), because that is what a number tells us; an ISO code only for its own region.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        regions: set[str] = set()
        for entry in entries:
            code = entry.strip().upper().removeprefix("+")
            if code.isdigit():
                found = phonenumbers.region_codes_for_country_code(int(code))
                if not found or found == ("ZZ",):
                    raise ValueError(f"unknown calling code {entry!r}")
                regions.update(found)
            elif code in phonenumbers.SUPPORTED_REGIONS:
                regions.add(code)
            else:
                raise ValueError(f"unknown country {entry!r}: an ISO 3166 code (BE) or a calling code (+32)")
        self.regions = frozenset(regions)

    def allows(self, phone: str) -> bool:
        """Whether an E.164 number belongs to one of the countries; an unparseable one does not."""
        try:
            number = phonenumbers.parse(phone, None)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.region_code_for_number(number) in self.regions


BELGIUM_ONLY = SmsCountries(["BE"])
"""The default of `NOTIFICATION_SMS_ALLOWED_COUNTRIES`."""


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    channel: NotificationChannel
    skip: SkipReason | None = None
    """Set when the delivery is recorded but not sent."""


def _usable(channel: NotificationChannel, who: Reachability) -> bool:
    has = who.has_email if channel is EMAIL else who.has_mobile
    return has and channel not in who.opted_out


def _refused(channel: NotificationChannel, who: Reachability) -> SkipReason | None:
    """Why a known channel is not used for this person: opted out, or a country we do not text."""
    if channel in who.opted_out:
        return SkipReason.OPTED_OUT
    if channel is SMS and not who.sms_country_allowed:
        return SkipReason.COUNTRY_NOT_ALLOWED
    return None


def _known(channel: NotificationChannel, who: Reachability) -> bool:
    return who.has_email if channel is EMAIL else who.has_mobile


def plan_channels(kind: NoticeKind, who: Reachability) -> tuple[PlannedDelivery, ...]:
    """The deliveries a notice of `kind` gets: at most one per channel, each sent or skipped."""
    if kind.is_request_update or kind.is_written_account:
        # The first known channel of SMS-then-e-mail (e-mail-then-SMS for a written account); an
        # opted-out one is skipped and the next used.
        wanted = [c for c in ((EMAIL, SMS) if kind.is_written_account else (SMS, EMAIL)) if _known(c, who)]
        planned: list[PlannedDelivery] = []
        for channel in wanted:
            if (refused := _refused(channel, who)) is not None:
                planned.append(PlannedDelivery(channel, refused))
                continue
            planned.append(PlannedDelivery(channel))
            break
    else:
        planned = [PlannedDelivery(c, _refused(c, who)) for c in (EMAIL, SMS) if _known(c, who)]
    if not planned:
        return (PlannedDelivery(EMAIL, SkipReason.NO_ADDRESS),)
    if not who.consent:
        return tuple(PlannedDelivery(p.channel, SkipReason.NO_CONSENT) for p in planned)
    return tuple(planned)


def fallback_channel(channel: NotificationChannel, who: Reachability) -> NotificationChannel | None:
    """The channel to try when `channel` will never deliver: e-mail for a text, nothing for an e-mail."""
    if channel is SMS and who.consent and _usable(EMAIL, who):
        return EMAIL
    return None


@dataclass(frozen=True, slots=True)
class Go:
    pass


@dataclass(frozen=True, slots=True)
class Skip:
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime


SendCheck = Go | Skip | Defer


def check_before_sending(
    channel: NotificationChannel, who: Reachability | None, *, erased: bool, now: datetime, quiet_hours: QuietHours
) -> SendCheck:
    """Whether a claimed delivery goes out now, is skipped for good, or waits for the quiet hours to end."""
    if erased:
        return Skip(SkipReason.ERASED)
    if who is None or not _known(channel, who):
        return Skip(SkipReason.NO_ADDRESS)
    if not who.consent:
        return Skip(SkipReason.NO_CONSENT)
    if (refused := _refused(channel, who)) is not None:
        return Skip(refused)
    if channel is SMS:
        allowed = quiet_hours.next_allowed(now)
        if allowed != now:
            return Defer(allowed)
    return Go()
