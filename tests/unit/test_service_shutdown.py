"""A stopping service does not wait forever on a step that will not end: it names it and goes on."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from services import app

pytestmark = pytest.mark.unit


async def test_a_background_task_that_ignores_its_cancellation_is_named_and_left_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "STOP_TIMEOUT_S", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # a library that swallows the cancellation

    async def polite() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(polite(), name="polite")]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()

    with capture_logs() as logs:
        await asyncio.wait_for(app._stopped_in_time(tasks), timeout=5)

    assert [entry["task"] for entry in logs if entry["event"] == "service.task_not_stopped"] == ["stubborn"]
    assert tasks[1].cancelled()
    release.set()
    tasks[0].cancel()
    await asyncio.wait(tasks)


async def test_a_shutdown_step_that_hangs_times_out_and_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "STOP_TIMEOUT_S", 0.2)

    with capture_logs() as logs:
        await asyncio.wait_for(app._in_time(asyncio.sleep(3600), what="broker.stop"), timeout=5)

    assert [entry["step"] for entry in logs if entry["event"] == "service.stop_step_timed_out"] == ["broker.stop"]
