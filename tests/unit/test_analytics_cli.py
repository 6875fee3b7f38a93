"""`python -m analytics` without a broker: option parsing, defaults, and errors refused before any I/O."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from typer.testing import CliRunner

import analytics
from analytics.cli import app, parse_instant, previous_month
from analytics.replay import default_database_name, resolve_topics
from analytics.settings import AnalyticsSettings
from schemas.topics import ALL_TOPICS, TRAINING_REQUESTS
from services.calendar import BRUSSELS

pytestmark = pytest.mark.unit

runner = CliRunner()


def test_the_public_surface() -> None:
    assert set(analytics.__all__) >= {"replay", "ReplayStats", "run_report", "Report", "what_if", "WhatIfReport", "simulate"}
    for name in analytics.__all__:
        assert getattr(analytics, name) is not None


def test_instants_without_an_offset_are_brussels_time() -> None:
    assert parse_instant("2026-03-01") == datetime(2026, 3, 1, tzinfo=BRUSSELS)
    assert parse_instant("2026-03-01T00:00:00+01:00") == datetime(2026, 3, 1, tzinfo=BRUSSELS)
    assert parse_instant(None) is None


def test_what_if_defaults_to_last_month() -> None:
    assert previous_month(date(2026, 4, 17)) == (datetime(2026, 3, 1, tzinfo=BRUSSELS), datetime(2026, 4, 1, tzinfo=BRUSSELS))
    assert previous_month(date(2026, 1, 5)) == (datetime(2025, 12, 1, tzinfo=BRUSSELS), datetime(2026, 1, 1, tzinfo=BRUSSELS))


def test_topics_are_the_declared_ones() -> None:
    assert resolve_topics(None) == ALL_TOPICS
    assert resolve_topics(["training.requests.v1", " training.requests.v1 "]) == (TRAINING_REQUESTS,)
    with pytest.raises(ValueError, match="unknown topic"):
        resolve_topics(["training.requests"])
    assert default_database_name(datetime(2026, 3, 1, 9, 30, 5)) == "analytics_20260301_093005"


def test_bad_options_are_refused_before_connecting() -> None:
    unknown = runner.invoke(app, ["replay", "--topics", "no.such.topic"])
    assert unknown.exit_code == 2 and "unknown topic" in unknown.output
    services_db = runner.invoke(app, ["replay", "--into", AnalyticsSettings().mongo.database])
    assert services_db.exit_code == 2 and "services' database" in services_db.output
    team = runner.invoke(app, ["what-if", "--team-size", "espaces=8"])
    assert team.exit_code == 2 and "TEAM=N" in team.output
    when = runner.invoke(app, ["replay", "--from", "last tuesday"])
    assert when.exit_code == 2
