"""An optional CAPTCHA on the web form and the JSON API: the provider's token, checked with its verify endpoint.

Off unless `INTAKE_WEB_CAPTCHA_VERIFY_URL` and `INTAKE_WEB_CAPTCHA_SECRET` are both set (local
runs and tests leave them unset). Turnstile, hCaptcha and reCAPTCHA share one protocol: the
widget puts a token in the form (`cf-turnstile-response`, `h-captcha-response`,
`g-recaptcha-response`; ours is `captcha_token`), and the server POSTs `secret`, `response` and
`remoteip` to the provider's siteverify URL, which answers JSON with `success`. API clients send
the token in the `X-Captcha-Token` header (not in the body: the body's hash is the retry key).

A provider that cannot be reached fails *closed* (503 with Retry-After): the check is switched
on when someone is scripting the form, and failing open then would switch it off for them. The
person keeps what they typed and is told to try again in a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import httpx
import structlog
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "API_TOKEN_HEADER",
    "FORM_TOKEN_FIELDS",
    "CaptchaSettings",
    "CaptchaVerdict",
    "CaptchaVerifier",
    "CaptchaWidget",
    "token_from_form",
]

log = structlog.get_logger(__name__)

FORM_TOKEN_FIELDS = ("captcha_token", "cf-turnstile-response", "h-captcha-response", "g-recaptcha-response")
"""Where a form's token may be: our generic field first, then the providers' widgets' own."""
API_TOKEN_HEADER = "X-Captcha-Token"  # noqa: S105 - a header name, not a secret
MAX_TOKEN_CHARS = 4096
"""Providers' tokens are a few hundred characters; a longer one is not sent on to them."""


class CaptchaSettings(BaseSettings):
    """From `INTAKE_WEB_CAPTCHA_*`; the check is on only when both the verify URL and the secret are set."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_WEB_CAPTCHA_", extra="ignore")

    verify_url: str | None = Field(
        None, description="The provider's siteverify endpoint, e.g. https://challenges.cloudflare.com/turnstile/v0/siteverify."
    )
    secret: SecretStr | None = Field(None, description="The provider's secret key for that endpoint.")
    timeout: timedelta = Field(timedelta(seconds=5), description="For the whole verify call; beyond it the form answers 503.")
    site_key: str | None = Field(None, description="The widget's public site key, rendered in the form.")
    script_url: str | None = Field(
        None, description="The provider's widget script, e.g. https://challenges.cloudflare.com/turnstile/v0/api.js."
    )
    widget_class: str = Field("cf-turnstile", description="CSS class the provider's script looks for (h-captcha, g-recaptcha).")

    @property
    def enabled(self) -> bool:
        return bool(self.verify_url and self.secret and self.secret.get_secret_value())

    def widget(self) -> CaptchaWidget | None:
        if not (self.enabled and self.site_key and self.script_url):
            return None
        return CaptchaWidget(site_key=self.site_key, script_url=self.script_url, css_class=self.widget_class)


@dataclass(frozen=True, slots=True)
class CaptchaWidget:
    """What the form page needs to show the provider's widget."""

    site_key: str
    script_url: str
    css_class: str

    @property
    def origin(self) -> str:
        url = httpx.URL(self.script_url)
        return f"{url.scheme}://{url.netloc.decode()}"


class CaptchaVerdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    """No token, or the provider said no: 422 on the API, the form again with an error."""
    UNAVAILABLE = "unavailable"
    """The provider did not answer in time, or not in JSON: 503 with Retry-After (fail closed)."""


class CaptchaVerifier:
    """Checks one token with the provider. Pass `transport` to talk to a fake provider in tests."""

    def __init__(
        self, verify_url: str, secret: str, *, timeout_s: float = 5.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._url = verify_url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: CaptchaSettings) -> CaptchaVerifier | None:
        if not settings.enabled:
            return None
        assert settings.verify_url is not None and settings.secret is not None  # enabled says so
        return cls(settings.verify_url, settings.secret.get_secret_value(), timeout_s=settings.timeout.total_seconds())

    async def verify(self, token: str | None, remote_ip: str | None) -> CaptchaVerdict:
        if not token or len(token) > MAX_TOKEN_CHARS:
            log.info("web.captcha_failed", reason="no_token" if not token else "token_too_long")
            return CaptchaVerdict.FAILED
        form = {"secret": self._secret, "response": token}
        if remote_ip:
            form["remoteip"] = remote_ip
        try:
            response = await self._client.post(self._url, data=form)
            if response.status_code >= 500 or response.status_code == 429:
                raise httpx.HTTPStatusError("provider unavailable", request=response.request, response=response)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("web.captcha_unavailable", error_type=type(error).__name__)
            return CaptchaVerdict.UNAVAILABLE
        if isinstance(answer, dict) and answer.get("success") is True:
            return CaptchaVerdict.PASSED
        codes = answer.get("error-codes") if isinstance(answer, dict) else None
        log.info("web.captcha_failed", reason="refused", codes=codes if isinstance(codes, list) else None)
        return CaptchaVerdict.FAILED

    async def aclose(self) -> None:
        await self._client.aclose()


def token_from_form(form: Mapping[str, object]) -> str | None:
    """The first non-empty token among the fields the widgets use."""
    for name in FORM_TOKEN_FIELDS:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
