"""The security tier: each test tries one attack on the real code (and the real servers where it needs
them) and records a row; `make test` prints the table at the end: attack | tried | refused | nothing lost.

A row is recorded by the test itself, after its assertions: a row saying "refused" exists only if the
test checked it was."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

ROWS: list[AttackRow] = []


@dataclass(frozen=True)
class AttackRow:
    attack: str
    tried: str
    refused: bool
    nothing_lost: bool


class Attacks:
    def record(self, attack: str, *, tried: str, refused: bool, nothing_lost: bool) -> None:
        row = AttackRow(attack, tried, refused, nothing_lost)
        ROWS.append(row)
        print(
            f"ATTACK | {row.attack} | {row.tried} | {'refused' if row.refused else 'NOT REFUSED'} | "
            f"{'nothing lost' if row.nothing_lost else 'SOMETHING LOST'}"
        )


@pytest.fixture
def attacks() -> Attacks:
    return Attacks()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    terminalreporter.section("attacks tried (tests/security)")
    width = max(len(row.attack) for row in ROWS)
    terminalreporter.write_line(f"{'attack'.ljust(width)} | tried | refused | nothing lost")
    for row in ROWS:
        terminalreporter.write_line(
            f"{row.attack.ljust(width)} | {row.tried} | {'yes' if row.refused else 'NO'} | {'yes' if row.nothing_lost else 'NO'}"
        )
