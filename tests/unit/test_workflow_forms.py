"""Form validation and JSON Schema built from the review task's camunda:formData."""

from __future__ import annotations

from pathlib import Path

import marshmallow
import pytest

from engine.workflow import FormField, form_schema, json_schema, parse_definition

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bpmn" / "simple_review.bpmn"


@pytest.fixture(scope="module")
def fields() -> tuple[FormField, ...]:
    return parse_definition(FIXTURE.read_bytes()).user_tasks["review"].form


def test_valid_submission_loads_to_json_friendly_values(fields: tuple[FormField, ...]) -> None:
    loaded = form_schema(fields)().load(
        {"decision": "approve", "amount": "12", "decided_on": "2026-03-02", "comment": "ok"}
    )
    assert loaded == {
        "decision": "approve",
        "amount": 12,
        "decided_on": "2026-03-02",
        "comment": "ok",
    }


@pytest.mark.parametrize(
    ("submitted", "field"),
    [
        ({"decided_on": "2026-03-02"}, "decision"),
        ({"decision": "maybe", "decided_on": "2026-03-02"}, "decision"),
        ({"decision": "approve", "decided_on": "03/02/2026"}, "decided_on"),
        ({"decision": "approve", "decided_on": "2026-03-02", "amount": 1001}, "amount"),
        ({"decision": "approve", "decided_on": "2026-03-02", "amount": -1}, "amount"),
        ({"decision": "approve", "decided_on": "2026-03-02", "comment": "x" * 201}, "comment"),
        ({"decision": "approve", "decided_on": "2026-03-02", "hacker": 1}, "hacker"),
    ],
)
def test_invalid_submissions_name_the_field(
    fields: tuple[FormField, ...], submitted: dict[str, object], field: str
) -> None:
    with pytest.raises(marshmallow.ValidationError) as info:
        form_schema(fields)().load(submitted)
    assert field in info.value.messages
    assert all(isinstance(m, list) and m for m in info.value.messages.values())  # type: ignore[union-attr]


def test_boolean_field_and_schema_cache() -> None:
    flags = (FormField(id="urgent", label="Urgent", type="boolean"),)
    assert form_schema(flags)().load({"urgent": "true"}) == {"urgent": True}
    assert form_schema(flags) is form_schema(list(flags))


def test_json_schema_mirrors_the_form(fields: tuple[FormField, ...]) -> None:
    schema = json_schema(fields)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["decision", "decided_on"]
    props = schema["properties"]
    assert props["decision"]["enum"] == ["approve", "reject"]
    assert props["decision"]["title"] == "处理意见 Decision"
    assert props["decided_on"] == {
        "title": "决定日期 Decided on",
        "type": "string",
        "format": "date",
    }
    assert props["amount"]["type"] == ["integer", "null"]
    assert (props["amount"]["minimum"], props["amount"]["maximum"], props["amount"]["default"]) == (
        0,
        1000,
        0,
    )
    assert props["comment"]["maxLength"] == 200
    assert schema["additionalProperties"] is False
