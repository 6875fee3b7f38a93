"""WCAG 2.1 AA checks of a page open in Playwright, with Deque's axe-core (pinned in tests/axe, installed by
scripts/setup.sh): `await assert_accessible(page, "form fr")` injects axe into the page, runs the rules
tagged WCAG 2.0/2.1 A and AA, and fails with each violation's rule, impact, help and elements.

Pages that send a Content-Security-Policy (the seat-offer and verification pages do) refuse an injected
script: open them in a context made with `bypass_csp=True`.

axe finds what a machine can decide (contrast, names, labels, lang, landmarks, ARIA); about half of
WCAG still needs a person (meaningful order, clear words, error suggestions, zoom): see the README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

_RUN = """async (tags) => {
  const results = await axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")),
    summaries: v.nodes.map((n) => n.failureSummary || ""),
  }));
}"""


def require_axe() -> None:
    """Skip when scripts/setup.sh could not install axe-core (no npm), like the other npm-backed tests."""
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: scripts/setup.sh installs it with npm")


def axe_version() -> str:
    import json

    return str(json.loads((AXE.parent / "package.json").read_text())["version"])


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The WCAG 2.1 A/AA violations axe-core finds on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=AXE.read_text())
    violations: list[dict[str, Any]] = await page.evaluate(_RUN, WCAG_21_AA)
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']}")
        for target, summary in zip(v["targets"], v["summaries"], strict=True):
            lines.append(f"    at {target}: {' '.join(summary.split())[:300]}")
    return "\n".join(lines)


async def assert_accessible(page: Any, name: str) -> None:
    """No WCAG 2.1 A/AA violation on `page` (named `name` in the failure message)."""
    violations = await axe_violations(page)
    if violations:
        print(f"axe-core on {name} ({page.url}):\n{describe(violations)}")
    assert not violations, f"{len(violations)} WCAG 2.1 AA violation(s) on {name} ({page.url}):\n{describe(violations)}"
