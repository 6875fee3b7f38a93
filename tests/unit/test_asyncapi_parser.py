"""The committed AsyncAPI documents pass the official AsyncAPI parser (@asyncapi/parser, pinned in
tests/asyncapi_parser/package-lock.json): no diagnostic of severity error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.asyncapi_checks import DOCS, SERVICE_DOCUMENTS, parser_diagnostics

COMMITTED = [DOCS / f"{service}.json" for service in SERVICE_DOCUMENTS]


@pytest.fixture(scope="module")
def diagnostics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    """The parser's diagnostics of every committed document, and of a broken copy of one (node
    starts once: it takes seconds)."""
    document = json.loads(COMMITTED[1].read_text())
    next(iter(document["operations"].values()))["action"] = "publish"  # AsyncAPI 2's word, not 3's
    broken = tmp_path_factory.mktemp("asyncapi") / "broken.json"
    broken.write_text(json.dumps(document))
    return parser_diagnostics([*COMMITTED, broken])


def test_every_committed_document_passes_the_official_asyncapi_parser(diagnostics: dict[str, list[dict[str, str]]]) -> None:
    committed = {str(path): diagnostics[str(path)] for path in COMMITTED}
    for path, found in committed.items():
        for diagnostic in found:
            print(Path(path).name, diagnostic)

    errors = {path: [d for d in found if d["severity"] == "error"] for path, found in committed.items()}
    assert errors == {str(path): [] for path in COMMITTED}


def test_the_parser_reports_a_broken_document(diagnostics: dict[str, list[dict[str, str]]]) -> None:
    (found,) = [found for path, found in diagnostics.items() if path.endswith("broken.json")]

    assert any(d["severity"] == "error" and d["path"].endswith("action") for d in found), found
