"""WCAG 2.1 AA checks of a page open in Playwright, with Deque's axe-core (pinned in tests/axe, installed by
scripts/setup.sh): `await assert_accessible(page, "form fr")` injects axe into the page, runs the rules
tagged WCAG 2.0/2.1 A and AA and axe's best practices, and fails with each violation's rule, impact, help and elements.

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
BEST_PRACTICE = ["best-practice"]
"""axe's rules beyond WCAG's letter that WCAG's intent asks for: one main landmark, all content in
landmarks, one h1, headings in order. Checked too, since a screen reader user moves by them."""

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


async def axe_violations(page: Any, tags: list[str] | None = None) -> list[dict[str, Any]]:
    """The violations axe-core finds on the page as it is now, of the rules tagged `tags` (by default
    WCAG 2.0/2.1 A and AA, and axe's best practices)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=AXE.read_text())
    violations: list[dict[str, Any]] = await page.evaluate(_RUN, tags or WCAG_21_AA + BEST_PRACTICE)
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']}")
        for target, summary in zip(v["targets"], v["summaries"], strict=True):
            lines.append(f"    at {target}: {' '.join(summary.split())[:300]}")
    return "\n".join(lines)


async def assert_accessible(page: Any, name: str, tags: list[str] | None = None) -> None:
    """No violation of WCAG 2.1 A/AA (and axe's best practices, unless `tags` says otherwise) on `page`,
    named `name` in the failure message."""
    violations = await axe_violations(page, tags)
    if violations:
        print(f"axe-core on {name} ({page.url}):\n{describe(violations)}")
    assert not violations, f"{len(violations)} WCAG 2.1 AA violation(s) on {name} ({page.url}):\n{describe(violations)}"


_FOCUS_INDICATOR = """() => {
  const el = document.activeElement;
  const s = getComputedStyle(el);
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (x, y) => { const [hi, lo] = [lum(x), lum(y)].sort((p, q) => q - p); return (hi + 0.05) / (lo + 0.05); };
  let around = el.parentElement, background = null;
  while (around && !background) {
    const c = parse(getComputedStyle(around).backgroundColor);
    if (c && c.a > 0) background = c;
    around = around.parentElement;
  }
  background = background || { r: 255, g: 255, b: 255, a: 1 };
  const colours = [];
  if (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0) colours.push(parse(s.outlineColor));
  for (const m of s.boxShadow.matchAll(/rgba?\\([^)]+\\)/g)) colours.push(parse(m[0]));
  const shown = colours.filter((c) => c && c.a > 0);
  return {
    style: [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow].join(" | "),
    contrast: Math.max(0, ...shown.map((c) => ratio(c, background))),
  };
}"""


async def focus_indicator(page: Any) -> dict[str, Any]:
    """The focused element's outline and shadow (`style`), and the best contrast of their colours with the
    background around the element (`contrast`): WCAG 1.4.11 asks 3:1 of what shows focus."""
    shown: dict[str, Any] = await page.evaluate(_FOCUS_INDICATOR)
    return shown


async def assert_focus_visible(page: Any, name: str, stops: int = 30) -> int:
    """Tab from the top of `page` through at most `stops` elements: each shows a focus indicator of 3:1 or
    more against its surroundings. Returns how many elements were reached."""
    await page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    seen: list[str] = []
    weak: list[str] = []
    for _ in range(stops):
        await page.keyboard.press("Tab")
        where: str = await page.evaluate(
            "() => { const el = document.activeElement; return el === document.body ? '' : el.tagName.toLowerCase()"
            " + (el.id ? '#' + el.id : '') + ' ' + (el.textContent || el.name || '').trim().slice(0, 40); }"
        )
        if not where or (seen and where == seen[0]):
            break  # back to the address bar or round to the start
        seen.append(where)
        shown = await focus_indicator(page)
        if shown["contrast"] < 3:
            weak.append(f"{where}: {shown['contrast']:.2f}:1 ({shown['style']})")
    assert seen, f"Tab reaches nothing on {name}"
    assert not weak, f"focus hard to see on {name} (3:1 needed):\n" + "\n".join(weak)
    return len(seen)
