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
    try:
        definitions = parse_definitions(path.read_bytes(), source=name)
    except DefinitionError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.message
            assert problem.message_zh
        assert name in str(exc)
        # Refusals that come from a specific place in the model say which element.
        assert any(p.element_id for p in exc.problems) or "could not be read" in str(exc)
    else:
        assert definitions
        for definition in definitions:
            assert definition.process_id
