"""Messages in the person's language: Jinja2 templates in French, Dutch and English.

One template per notice kind and language, `templates/<lang>/<kind>.j2`, holds four blocks:
`subject`, `text` (the e-mail's plain part), `html` (its HTML part, put inside
`templates/_layout.html`) and `sms`. Translators see one message in one file; only how to reach
a person (`reach_us()`, `reach_us_short()`) comes from `services.helpline`, the same in every message. The same file is
read by two Jinja environments: without autoescaping for the subject, the text and the SMS, and
with it for the HTML block, so a course title cannot inject markup. Both use `StrictUndefined`:
a missing variable is an error, never an empty hole in a letter.

A language without templates falls back to French (Bruxelles Formation's first language).
Dates are shown in Europe/Brussels, written the way each language writes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateNotFound, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from notification.gsm import to_gsm7
from services.free_text import clean_name
from services.helpline import reach_us, reach_us_short
from services.local_time import format_date, format_datetime, format_time

__all__ = [
    "BLOCKS",
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "TEMPLATES_DIR",
    "MessageRenderer",
    "RenderedMessage",
    "format_date",
    "format_datetime",
]

TEMPLATES_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("fr", "nl", "en")
DEFAULT_LANGUAGE = "fr"
BLOCKS = ("subject", "text", "html", "sms")


@pass_context
def _date_filter(context: Context, value: date | str) -> str:
    return format_date(value, context["lang"])


@pass_context
def _datetime_filter(context: Context, value: datetime | str) -> str:
    return format_datetime(value, context["lang"])


@pass_context
def _time_filter(context: Context, value: datetime | str) -> str:
    return format_time(value, context["lang"])


@pass_context
def _reach_us(context: Context) -> str:
    return reach_us(context["lang"])


@pass_context
def _reach_us_short(context: Context) -> str:
    return reach_us_short(context["lang"])


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    template: str
    """`<kind>.<language>`, as published in NotificationSent/NotificationFailed."""
    language: str
    subject: str
    text: str
    html: str
    sms: str


def _is_web_link(url: str | None) -> bool:
    # Only a web link goes into a message and an <a href>: never a javascript: or data: URL.
    return url is not None and url.lower().startswith(("https://", "http://"))


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _paragraphs(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


class MessageRenderer:
    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        loader = FileSystemLoader(directory)
        options: dict[str, Any] = {"loader": loader, "undefined": StrictUndefined, "trim_blocks": True, "lstrip_blocks": True}
        self._text_env = Environment(autoescape=False, **options)  # noqa: S701 - plain text and SMS: escaping would garble them
        self._html_env = Environment(autoescape=True, **options)
        for env in (self._text_env, self._html_env):
            env.filters.update({"date": _date_filter, "datetime": _datetime_filter, "time": _time_filter})
            # The free line and its hours, worded once per language (`services.helpline`).
            env.globals.update({"reach_us": _reach_us, "reach_us_short": _reach_us_short})
        self.directory = directory

    def language_for(self, kind: str, requested: str | None) -> str:
        """`requested` if this kind has a template in it, else French."""
        if requested in LANGUAGES and (self.directory / requested / f"{kind}.j2").is_file():
            return requested
        return DEFAULT_LANGUAGE

    def render(
        self,
        kind: str,
        language: str | None,
        facts: Mapping[str, Any],
        *,
        name: str | None = None,
        with_email: bool = False,
        status_url: str | None = None,
    ) -> RenderedMessage:
        """Every block of `kind` in `language` (or French); raises `jinja2.UndefinedError` on a missing variable.

        `name` is the person's name, if known; `with_email` says whether an e-mail goes with the
        SMS, so that the text can say "details by e-mail" only when it is true; `status_url` is the
        link to the request's status page, if intake minted one (read from the contact projection
        when the message is sent, like the address, so an erasure takes it away).
        """
        lang = self.language_for(kind, language)
        path = f"{lang}/{kind}.j2"
        if not (self.directory / path).is_file():
            raise TemplateNotFound(path)
        # Defence in depth: intake already refuses or cleans names, but a name with a link or a
        # control character must never reach a message signed by us, whatever stored it.
        variables = {
            **facts,
            "name": clean_name(name),
            "lang": lang,
            "with_email": with_email,
            "status_url": status_url if _is_web_link(status_url) else None,
        }
        text_template = self._text_env.get_template(path)
        subject = _one_line(self._block(text_template, "subject", variables))
        text = _paragraphs(self._block(text_template, "text", variables))
        sms = to_gsm7(_one_line(self._block(text_template, "sms", variables)))
        html_template = self._html_env.get_template(path)
        body = Markup(self._block(html_template, "html", variables))  # noqa: S704 - rendered with autoescaping
        html = self._html_env.get_template("_layout.html").render(lang=lang, subject=subject, content=body)
        return RenderedMessage(template=f"{kind}.{lang}", language=lang, subject=subject, text=text, html=html, sms=sms)

    @staticmethod
    def _block(template: Template, block: str, variables: dict[str, Any]) -> str:
        try:
            render = template.blocks[block]
        except KeyError:
            raise LookupError(f"template {template.name} has no block {block!r}") from None
        return "".join(render(template.new_context(variables)))
