"""In-memory fakes of notification's ports, and the contract every mail and SMS sender keeps.

`MailSenderContract` and `SmsSenderContract` are abstract suites: a subclass supplies a sender
and a way to read what reached the other side. Here they run against the fakes; in
tests/integration/test_notification_adapters.py the same suites run against the real SMTP and
HTTP adapters, talking to a real SMTP sink and a real HTTP provider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable

import pytest

import notification
from notification.ports import MailSender, OutgoingEmail, OutgoingSms, SendResult, SendStatus, SmsSender

pytestmark = pytest.mark.unit


class FakeMailSender(MailSender):
    """Accepts every message (or answers from a script) and keeps what it accepted."""

    def __init__(self, script: Iterable[SendResult] = ()) -> None:
        self.script: deque[SendResult] = deque(script)
        self.sent: list[OutgoingEmail] = []
        self.calls = 0

    async def send(self, email: OutgoingEmail) -> SendResult:
        self.calls += 1
        result = self.script.popleft() if self.script else SendResult.sent(f"fake-{self.calls}")
        if result.status is SendStatus.SENT:
            self.sent.append(email)
        return result


class FakeSmsSender(SmsSender):
    """Like a provider that deduplicates on `reference`: a second copy is acknowledged, not sent."""

    def __init__(self, script: Iterable[SendResult] = ()) -> None:
        self.script: deque[SendResult] = deque(script)
        self.sent: dict[str, OutgoingSms] = {}
        self.calls = 0

    async def send(self, sms: OutgoingSms) -> SendResult:
        self.calls += 1
        result = self.script.popleft() if self.script else SendResult.sent(f"fake-{self.calls}")
        if result.status is SendStatus.SENT:
            self.sent.setdefault(sms.reference, sms)
        return result


def an_email(delivery_id: str = "0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11:email", **overrides: str) -> OutgoingEmail:
    fields = {
        "delivery_id": delivery_id,
        "to_address": "amina@example.org",
        "to_name": "Amina Ël Idrissi",
        "language": "fr",
        "subject": "Inscription confirmée : Excel — niveau 1",
        "text": "Bonjour Amina,\n\nVotre inscription est confirmée.\n",
        "html": "<p>Bonjour Amina,</p><p>Votre inscription est confirmée.</p>",
    }
    fields.update(overrides)
    return OutgoingEmail(**fields)


def an_sms(reference: str = "0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11:sms", to: str = "+32470123456") -> OutgoingSms:
    return OutgoingSms(reference=reference, to=to, text="Bruxelles Formation : un conseiller vous rappellera bientôt.")


class MailSenderContract(ABC):
    """What any `MailSender` promises: a good message is sent once and arrives as given."""

    @abstractmethod
    def sender(self) -> MailSender: ...

    @abstractmethod
    async def received(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every message that reached the other side."""

    async def test_a_message_is_sent_and_arrives_once(self) -> None:
        result = await self.sender().send(an_email())
        assert result.status is SendStatus.SENT
        assert await self.received() == [("amina@example.org", "Inscription confirmée : Excel — niveau 1")]

    async def test_two_messages_arrive_as_two(self) -> None:
        sender = self.sender()
        await sender.send(an_email("a:email"))
        await sender.send(an_email("b:email", to_address="jan@example.org", subject="Inschrijving bevestigd"))
        assert sorted(await self.received()) == [
            ("amina@example.org", "Inscription confirmée : Excel — niveau 1"),
            ("jan@example.org", "Inschrijving bevestigd"),
        ]


class SmsSenderContract(ABC):
    """What any `SmsSender` promises: a text is accepted once, with its reference."""

    @abstractmethod
    def sender(self) -> SmsSender: ...

    @abstractmethod
    async def received(self) -> list[tuple[str, str, str]]:
        """(to, text, reference) of every text the other side accepted."""

    async def test_a_text_is_accepted_with_its_reference(self) -> None:
        result = await self.sender().send(an_sms())
        assert result.status is SendStatus.SENT
        assert await self.received() == [
            (
                "+32470123456",
                "Bruxelles Formation : un conseiller vous rappellera bientôt.",
                "0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11:sms",
            )
        ]


class TestFakeMailSender(MailSenderContract):
    @pytest.fixture(autouse=True)
    def fake(self) -> None:
        self._fake = FakeMailSender()

    def sender(self) -> MailSender:
        return self._fake

    async def received(self) -> list[tuple[str, str]]:
        return [(m.to_address, m.subject) for m in self._fake.sent]

    async def test_a_script_plays_failures_first(self) -> None:
        fake = FakeMailSender([SendResult.transient("SMTP 451")])
        assert (await fake.send(an_email())).status is SendStatus.TRANSIENT
        assert (await fake.send(an_email())).status is SendStatus.SENT
        assert fake.calls == 2 and len(fake.sent) == 1


class TestFakeSmsSender(SmsSenderContract):
    @pytest.fixture(autouse=True)
    def fake(self) -> None:
        self._fake = FakeSmsSender()

    def sender(self) -> SmsSender:
        return self._fake

    async def received(self) -> list[tuple[str, str, str]]:
        return [(s.to, s.text, s.reference) for s in self._fake.sent.values()]

    async def test_a_resent_reference_is_one_text(self) -> None:
        await self._fake.send(an_sms())
        await self._fake.send(an_sms())
        assert len(await self.received()) == 1


def test_the_package_exports_its_ports_and_adapters() -> None:
    assert set(notification.__all__) == {
        "HttpSmsSender",
        "MailSender",
        "NotificationSettings",
        "OutgoingEmail",
        "OutgoingSms",
        "SendResult",
        "SendStatus",
        "SmsSender",
        "SmtpMailSender",
        "create_app",
    }
    for name in notification.__all__:
        assert getattr(notification, name) is not None
