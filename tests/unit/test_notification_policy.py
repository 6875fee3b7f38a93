"""The channel policy, the checks just before sending, and the SMS-to-e-mail fallback: pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notification.model import Person, Reachability, SkipReason
from notification.notices import NoticeKind
from notification.policy import (
    BELGIUM_ONLY,
    Defer,
    Go,
    PlannedDelivery,
    Skip,
    SmsCountries,
    check_before_sending,
    fallback_channel,
    is_mobile,
    plan_channels,
)
from notification.quiet_hours import QuietHours
from notification.settings import NotificationSettings
from schemas import NotificationChannel

pytestmark = pytest.mark.unit

EMAIL, SMS = NotificationChannel.EMAIL, NotificationChannel.SMS
UPDATES = [k for k in NoticeKind if k.is_request_update]
DETAILED = [
    NoticeKind.ENROLMENT_CONFIRMED,
    NoticeKind.ENROLMENT_WAITLISTED,
    NoticeKind.EXAM_SEAT_OFFERED,
    NoticeKind.EXAM_SCHEDULED,
    NoticeKind.CERTIFICATE_ISSUED,
]
WRITTEN = [k for k in NoticeKind if k.is_written_account]
NOON = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)  # 12:00 in Brussels
NIGHT = datetime(2026, 3, 3, 22, 0, tzinfo=UTC)  # 23:00 in Brussels


def who(
    email: bool = True, mobile: bool = True, consent: bool = True, opted_out: frozenset[NotificationChannel] = frozenset()
) -> Reachability:
    return Reachability(has_email=email, has_mobile=mobile, consent=consent, opted_out=opted_out)


def test_the_request_updates_the_written_accounts_and_the_detailed_notices_partition_the_kinds() -> None:
    groups = (set(UPDATES), set(WRITTEN), set(DETAILED))
    assert set.union(*groups) == set(NoticeKind) and sum(map(len, groups)) == len(NoticeKind)
    assert len(UPDATES) == 8 and WRITTEN == [NoticeKind.REQUEST_CLOSED_UNREACHABLE]


@pytest.mark.parametrize("kind", WRITTEN)
def test_a_written_account_goes_by_email_when_there_is_an_address_else_by_sms(kind: NoticeKind) -> None:
    assert plan_channels(kind, who()) == (PlannedDelivery(EMAIL),)
    assert plan_channels(kind, who(email=False)) == (PlannedDelivery(SMS),)
    assert plan_channels(kind, who(mobile=False)) == (PlannedDelivery(EMAIL),)
    # An opted-out e-mail is recorded as skipped and the text goes instead.
    assert plan_channels(kind, who(opted_out=frozenset({EMAIL}))) == (
        PlannedDelivery(EMAIL, SkipReason.OPTED_OUT),
        PlannedDelivery(SMS),
    )


@pytest.mark.parametrize("kind", UPDATES)
def test_a_request_update_goes_by_sms_when_there_is_a_mobile_else_by_email(kind: NoticeKind) -> None:
    assert plan_channels(kind, who()) == (PlannedDelivery(SMS),)
    assert plan_channels(kind, who(email=False)) == (PlannedDelivery(SMS),)
    assert plan_channels(kind, who(mobile=False)) == (PlannedDelivery(EMAIL),)


@pytest.mark.parametrize("kind", DETAILED)
def test_enrolments_exams_and_certificates_go_by_email_plus_a_short_sms(kind: NoticeKind) -> None:
    assert plan_channels(kind, who()) == (PlannedDelivery(EMAIL), PlannedDelivery(SMS))
    assert plan_channels(kind, who(mobile=False)) == (PlannedDelivery(EMAIL),)
    assert plan_channels(kind, who(email=False)) == (PlannedDelivery(SMS),)


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_without_any_address_one_email_is_recorded_as_skipped(kind: NoticeKind) -> None:
    assert plan_channels(kind, who(email=False, mobile=False)) == (PlannedDelivery(EMAIL, SkipReason.NO_ADDRESS),)


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_without_consent_every_delivery_is_skipped(kind: NoticeKind) -> None:
    planned = plan_channels(kind, who(consent=False))
    assert planned and all(p.skip is SkipReason.NO_CONSENT for p in planned)


def test_an_opted_out_channel_is_skipped_and_a_request_update_uses_the_other() -> None:
    no_sms = frozenset({SMS})
    assert plan_channels(NoticeKind.REQUEST_ROUTED_ADVISORS, who(opted_out=no_sms)) == (
        PlannedDelivery(SMS, SkipReason.OPTED_OUT),
        PlannedDelivery(EMAIL),
    )
    assert plan_channels(NoticeKind.CONTACT_NO_ANSWER, who(email=False, opted_out=no_sms)) == (
        PlannedDelivery(SMS, SkipReason.OPTED_OUT),
    )
    assert plan_channels(NoticeKind.ENROLMENT_CONFIRMED, who(opted_out=no_sms)) == (
        PlannedDelivery(EMAIL),
        PlannedDelivery(SMS, SkipReason.OPTED_OUT),
    )
    # Opting out of e-mail does not stop the SMS of a request update, which never used e-mail.
    assert plan_channels(NoticeKind.REQUEST_ROUTED_ADVISORS, who(opted_out=frozenset({EMAIL}))) == (PlannedDelivery(SMS),)
    assert plan_channels(NoticeKind.EXAM_SCHEDULED, who(opted_out=frozenset({EMAIL, SMS}))) == (
        PlannedDelivery(EMAIL, SkipReason.OPTED_OUT),
        PlannedDelivery(SMS, SkipReason.OPTED_OUT),
    )


@pytest.mark.parametrize(
    ("phone", "mobile"),
    [
        ("+32470123456", True),  # Belgian mobile (Proximus)
        ("+32499123456", True),
        ("+3225551234", False),  # Brussels landline
        ("+33612345678", True),  # French mobile
        ("+31612345678", True),  # Dutch mobile
        ("+3212", False),  # not a number
        ("not a phone", False),
    ],
)
def test_only_a_mobile_number_takes_a_text(phone: str, mobile: bool) -> None:
    assert is_mobile(phone) is mobile


def test_a_person_reachability_holds_flags_only() -> None:
    landline = Person("p", known=True, phone="+3225551234", email=None, consent=True)
    assert landline.reachability(is_mobile=is_mobile) == Reachability(has_email=False, has_mobile=False, consent=True)
    erased = Person("p", known=True, phone="+32470123456", email="a@b.be", consent=True, erased=True)
    assert erased.reachability(is_mobile=is_mobile).consent is False


def test_the_fallback_of_a_text_is_an_email_when_the_person_can_get_one() -> None:
    assert fallback_channel(SMS, who()) is EMAIL
    assert fallback_channel(SMS, who(email=False)) is None
    assert fallback_channel(SMS, who(opted_out=frozenset({EMAIL}))) is None
    assert fallback_channel(SMS, who(consent=False)) is None
    assert fallback_channel(EMAIL, who()) is None


def test_checks_before_sending() -> None:
    quiet = QuietHours()
    assert check_before_sending(SMS, who(), erased=False, now=NOON, quiet_hours=quiet) == Go()
    assert check_before_sending(EMAIL, who(), erased=False, now=NIGHT, quiet_hours=quiet) == Go()
    deferred = check_before_sending(SMS, who(), erased=False, now=NIGHT, quiet_hours=quiet)
    assert isinstance(deferred, Defer) and deferred.until == datetime(2026, 3, 4, 7, 0, tzinfo=UTC)
    assert check_before_sending(SMS, who(opted_out=frozenset({SMS})), erased=False, now=NOON, quiet_hours=quiet) == Skip(
        SkipReason.OPTED_OUT
    )
    assert check_before_sending(SMS, who(mobile=False), erased=False, now=NOON, quiet_hours=quiet) == Skip(SkipReason.NO_ADDRESS)
    assert check_before_sending(EMAIL, who(consent=False), erased=False, now=NOON, quiet_hours=quiet) == Skip(
        SkipReason.NO_CONSENT
    )
    assert check_before_sending(EMAIL, None, erased=False, now=NOON, quiet_hours=quiet) == Skip(SkipReason.NO_ADDRESS)
    assert check_before_sending(EMAIL, who(), erased=True, now=NOON, quiet_hours=quiet) == Skip(SkipReason.ERASED)
    # Skipping wins over deferring: an opted-out text at night is not kept until morning.
    assert check_before_sending(SMS, who(opted_out=frozenset({SMS})), erased=False, now=NIGHT, quiet_hours=quiet) == Skip(
        SkipReason.OPTED_OUT
    )


# --- SMS only to the countries we text --------------------------------------------------------------

BELGIAN_MOBILE, DUTCH_MOBILE, FRENCH_MOBILE, US_MOBILE = "+32470123456", "+31612345678", "+33612345678", "+12025550123"


def test_sms_countries_from_iso_or_calling_codes() -> None:
    assert BELGIUM_ONLY.allows(BELGIAN_MOBILE)
    assert not BELGIUM_ONLY.allows(DUTCH_MOBILE) and not BELGIUM_ONLY.allows(FRENCH_MOBILE)
    assert not BELGIUM_ONLY.allows("not a number")
    benelux = SmsCountries(["be", "+31", " LU "])
    assert benelux.allows(BELGIAN_MOBILE) and benelux.allows(DUTCH_MOBILE) and not benelux.allows(FRENCH_MOBILE)
    assert SmsCountries(["1"]).allows(US_MOBILE)  # a calling code: every region sharing it
    for typo in ("BEL", "999", "XX"):
        with pytest.raises(ValueError, match="unknown"):
            SmsCountries([typo])


def test_the_country_setting_refuses_an_unknown_code() -> None:
    assert NotificationSettings().sms_allowed_countries == frozenset({"BE"})
    assert NotificationSettings(sms_allowed_countries="BE,NL").sms_allowed_countries == frozenset({"BE", "NL"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown country"):
        NotificationSettings(sms_allowed_countries="BE,Belgium")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", UPDATES)
def test_a_request_update_to_a_foreign_mobile_is_refused_and_goes_by_email(kind: NoticeKind) -> None:
    abroad = Reachability(has_email=True, has_mobile=True, consent=True, sms_country_allowed=False)
    assert plan_channels(kind, abroad) == (
        PlannedDelivery(SMS, SkipReason.COUNTRY_NOT_ALLOWED),
        PlannedDelivery(EMAIL),
    )
    no_email = Reachability(has_email=False, has_mobile=True, consent=True, sms_country_allowed=False)
    assert plan_channels(kind, no_email) == (PlannedDelivery(SMS, SkipReason.COUNTRY_NOT_ALLOWED),)


@pytest.mark.parametrize("kind", DETAILED)
def test_a_detailed_notice_keeps_its_email_and_records_the_refused_sms(kind: NoticeKind) -> None:
    abroad = Reachability(has_email=True, has_mobile=True, consent=True, sms_country_allowed=False)
    assert plan_channels(kind, abroad) == (PlannedDelivery(EMAIL), PlannedDelivery(SMS, SkipReason.COUNTRY_NOT_ALLOWED))


def test_the_country_is_checked_again_just_before_sending() -> None:
    abroad = Reachability(has_email=True, has_mobile=True, consent=True, sms_country_allowed=False)
    hours = QuietHours()
    assert check_before_sending(SMS, abroad, erased=False, now=NOON, quiet_hours=hours) == Skip(SkipReason.COUNTRY_NOT_ALLOWED)
    assert check_before_sending(EMAIL, abroad, erased=False, now=NOON, quiet_hours=hours) == Go()
    assert fallback_channel(SMS, abroad) is EMAIL


def test_a_persons_reachability_says_whether_we_text_their_country() -> None:
    dutch = Person("p", known=True, phone=DUTCH_MOBILE, email="a@example.be", consent=True)
    assert not dutch.reachability(is_mobile=is_mobile, sms_country_allowed=BELGIUM_ONLY.allows).sms_country_allowed
    belgian = Person("p", known=True, phone=BELGIAN_MOBILE, consent=True)
    assert belgian.reachability(is_mobile=is_mobile, sms_country_allowed=BELGIUM_ONLY.allows).sms_country_allowed
