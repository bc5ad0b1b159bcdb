"""Every MIWG interchange file gets a clear answer: definitions, or a DefinitionError."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.workflow import DefinitionError, parse_definitions

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "bpmn-miwg"
FILES = sorted(CORPUS.rglob("*.bpmn"))


def test_corpus_is_present() -> None:
    assert len(FILES) > 60
    assert "Creative Commons Attribution 3.0" in (CORPUS / "README.md").read_text()


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_is_deployed_or_refused_clearly(path: Path) -> None:
    name = str(path.relative_to(CORPUS))
    refusal: DefinitionError | None = None
    try:
        definitions = parse_definitions(path.read_bytes(), source=name)
    except DefinitionError as exc:  # any other exception fails the test
        refusal, definitions = exc, []
    if refusal is not None:
        assert refusal.problems
        assert all(p.message and p.message_zh for p in refusal.problems)
        assert name in str(refusal)
        # Every refusal in the corpus says which element it is about.
        assert any(p.element_id for p in refusal.problems)
    else:
        assert definitions
        assert all(d.process_id for d in definitions)
