"""Personal data never reaches the logs in clear, whatever logger emitted it."""

from __future__ import annotations

import ast
import hashlib
import hmac
import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import BaseModel, Field, SecretStr, ValidationError

from services.logging import (
    LOGGED_KEYS,
    LOGGED_SUFFIXES,
    PERSONAL_KEYS,
    PSEUDONYM_HEX_CHARS,
    configure_logging,
    mask_personal_data,
    pseudonym,
    redacting,
    scrub,
    set_pepper,
)
from services.settings import ServiceSettings

pytestmark = pytest.mark.unit


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    configure_logging(service="test", instance="t-1", level="INFO", fmt="json")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_events_come_out_as_json_with_personal_fields_pseudonymised(captured: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "request.received",
        request_id="0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11",
        phone="+32470123456",
        email="Amina.Test@example.org",
        name="Amina Test",
        received_at="2026-11-27 10:30:00",
    )
    [record] = lines(captured)
    assert record["event"] == "request.received"
    assert record["service"] == "test" and record["instance"] == "t-1"
    assert record["request_id"] == "0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11"
    assert record["received_at"] == "2026-11-27 10:30:00"
    text = captured.getvalue()
    for secret in ("+32470123456", "Amina.Test@example.org", "Amina Test", "470123456"):
        assert secret not in text
    assert record["phone"] == pseudonym("+32470123456")


def test_free_text_and_stdlib_loggers_are_scrubbed(captured: io.StringIO) -> None:
    logging.getLogger("aiosmtpd").warning("mail from jan.peeters@voorbeeld.be, bel 0470 12 34 56 of 02/555.66.77")
    structlog.get_logger("t").info("triage.note", note="appelez-moi au 0032 470 12 34 56 svp")
    text = captured.getvalue()
    for secret in ("jan.peeters@voorbeeld.be", "0470 12 34 56", "02/555.66.77", "0032 470 12 34 56"):
        assert secret not in text
    assert "<pii:" in text


def test_nested_contact_and_exceptions_are_masked() -> None:
    event = mask_personal_data(
        None,
        "info",
        {
            "event": "x",
            "contact": {"phone": "+32470123456", "email": "a@b.be"},
            "error": ValueError("bad address a@b.be"),
            "count": 3,
        },
    )
    assert "+32470123456" not in str(event) and "a@b.be" not in str(event)
    assert event["count"] == 3


def test_pseudonym_is_stable_and_case_insensitive() -> None:
    assert pseudonym("A@B.be") == pseudonym(" a@b.be ")
    assert scrub("no personal data here, 3 courses") == "no personal data here, 3 courses"


# --- pseudonyms are keyed: not reversible by hashing every number -----------------------------

BELGIAN_MOBILE = "+32470123456"


def unkeyed_candidates(prefix: str, start: int, stop: int) -> dict[str, str]:
    """What an attacker computes without the pepper: the old unkeyed SHA-256 pseudonyms of a range."""
    out = {}
    for n in range(start, stop):
        number = f"{prefix}{n:06d}"
        digest = hashlib.sha256(number.encode()).hexdigest()
        out[f"<pii:{digest[:10]}>"] = number
        out[f"<pii:{digest[:PSEUDONYM_HEX_CHARS]}>"] = number
    return out


def test_a_pseudonym_depends_on_the_pepper_and_is_not_a_plain_hash() -> None:
    try:
        set_pepper("a" * 32)
        first = pseudonym(BELGIAN_MOBILE)
        set_pepper("b" * 32)
        second = pseudonym(BELGIAN_MOBILE)
    finally:
        set_pepper(None)
    assert first != second
    plain = hashlib.sha256(BELGIAN_MOBILE.encode()).hexdigest()
    for token in (first, second):
        digest = token.removeprefix("<pii:").removesuffix(">")
        assert len(digest) == PSEUDONYM_HEX_CHARS == 16  # 64 bits
        assert not plain.startswith(digest)


def test_brute_force_over_mobile_numbers_finds_a_pseudonym_only_with_the_pepper() -> None:
    pepper = "a-deployment-secret-of-32-chars!!"
    try:
        set_pepper(pepper)
        logged = pseudonym(BELGIAN_MOBILE)
    finally:
        set_pepper(None)
    # The 100,000 numbers around the target (a real attacker would try all 0470-0499 ones).
    assert logged not in unkeyed_candidates("+32470", 100_000, 200_000)
    # Whoever holds the pepper (the operators) can still find it: the search itself works.
    keyed = {
        f"<pii:{hmac.new(pepper.encode(), f'+32470{n:06d}'.encode(), hashlib.sha256).hexdigest()[:16]}>": n
        for n in range(100_000, 200_000)
    }
    assert keyed[logged] == 123456


def test_configure_logging_uses_the_settings_pepper(captured: io.StringIO) -> None:
    configure_logging(service="test", level="INFO", fmt="json", pepper="p" * 32)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured)
    try:
        structlog.get_logger("t").info("x", phone=BELGIAN_MOBILE)
        expected = hmac.new(b"p" * 32, BELGIAN_MOBILE.encode(), hashlib.sha256).hexdigest()[:16]
        assert lines(captured)[0]["phone"] == f"<pii:{expected}>"
    finally:
        set_pepper(None)


def test_the_pepper_setting_is_unprefixed_secret_and_random(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().log_pepper is None  # locally: a random pepper per process
    pepper = secrets.token_hex(32)
    monkeypatch.setenv("LOG_PEPPER", pepper)
    settings = ServiceSettings()
    assert settings.log_pepper == SecretStr(pepper) and pepper not in repr(settings)
    for weak, problem in [("REPLACE_ME", "placeholder"), ("short", "shorter than"), ("s" * 40, "not random enough")]:
        monkeypatch.setenv("LOG_PEPPER", weak)
        with pytest.raises(ValidationError, match=f"LOG_PEPPER is .*{problem}"):
            ServiceSettings()


# --- the allow-list -------------------------------------------------------------------------------


def test_a_key_not_on_the_allow_list_has_its_values_pseudonymised(captured: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "x", request_id="r-1", attempts=2, reason="quiet_hours", gsm=BELGIAN_MOBILE, nickname="Amina", extra={"n": 3}
    )
    [record] = lines(captured)
    assert record["request_id"] == "r-1" and record["attempts"] == 2 and record["reason"] == "quiet_hours"
    assert record["gsm"] == pseudonym(BELGIAN_MOBILE)
    assert record["nickname"] == pseudonym("Amina")
    assert record["extra"] == {"n": pseudonym("3")}
    assert "Amina" not in captured.getvalue() and "470123456" not in captured.getvalue()


def _logged_keys() -> dict[str, set[str]]:
    """Every keyword the code passes to a logger (`log.info("e", key=...)`) -> the files doing so."""
    root = Path(__file__).resolve().parents[2]
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if parts[0] in {"tests", ".venv"} or any(p.startswith(".") for p in parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"debug", "info", "warning", "error", "exception", "critical", "bind"}
                and "log" in ast.unparse(node.func.value).lower()
            ):
                for keyword in node.keywords:
                    if keyword.arg is not None:
                        found.setdefault(keyword.arg, set()).add(str(path.relative_to(root)))
    return found


def test_every_key_the_code_logs_is_declared_safe_or_personal() -> None:
    keys = _logged_keys()
    assert "request_id" in keys and "delivery_id" in keys  # the scan sees the code
    undeclared = {
        key: sorted(files)
        for key, files in keys.items()
        if key not in LOGGED_KEYS and key.lower() not in PERSONAL_KEYS and not key.endswith(LOGGED_SUFFIXES)
    }
    # A new key is pseudonymised until it is added to LOGGED_KEYS (services/logging.py), if safe.
    assert undeclared == {}


# --- exception text ---------------------------------------------------------------------------------


class Contact(BaseModel):
    name: str = Field(max_length=5)


def test_exception_text_is_scrubbed_of_addresses_numbers_and_pydantic_inputs(captured: io.StringIO) -> None:
    given = " ".join(["Amina", "Janssens"])  # not a literal: the traceback quotes source lines
    try:
        Contact(name=given)
    except ValidationError as error:
        invalid = error
    log = structlog.get_logger("t")
    try:
        raise RuntimeError("no route to amina@example.org or +32 470 12 34 56") from invalid
    except RuntimeError as error:
        log.exception("delivery.crashed", error=str(error))
        logging.getLogger("stdlib").exception("crashed")
    try:
        raise invalid
    except ValidationError as error:
        log.warning("form.refused", error=str(error))
    text = captured.getvalue()
    for secret in ("amina@example.org", "470 12 34 56", "Amina Janssens"):
        assert secret not in text
    records = lines(captured)
    assert len(records) == 3
    assert all("input_value=<redacted>" in str(record["exception" if "exception" in record else "error"]) for record in records)
    assert "<pii:" in str(records[0]["exception"])


def test_values_marked_personal_are_replaced_wherever_they_appear(captured: io.StringIO) -> None:
    log = structlog.get_logger("t")
    with redacting("Jan Peeters", None, ""):
        try:
            raise ValueError("header refused for Jan Peeters")
        except ValueError:
            log.exception("mail.refused", delivery_id="d-1")
    log.info("mail.sent", course="Jan Peeters")  # outside the block: not marked any more
    first, second = lines(captured)
    assert "Jan Peeters" not in str(first["exception"]) and pseudonym("Jan Peeters") in str(first["exception"])
    assert second["course"] == "Jan Peeters"


def test_a_missing_pepper_is_warned_about_once(capsys: pytest.CaptureFixture[str]) -> None:
    import services.logging as module

    module._warned_missing_pepper = False
    configure_logging(service="test", fmt="json")  # its handler writes to the captured stderr
    configure_logging(service="test", fmt="json")
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert events == ["logging.pepper_missing"]
