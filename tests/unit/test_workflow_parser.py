"""engine.workflow parsing: hardened XML, Camunda attributes, timers, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

from engine.workflow import (
    DefinitionError,
    lint_definition,
    parse_definition,
    parse_definitions,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bpmn"
NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'
)


def bpmn(body: str, *, process_id: str = "p", executable: str = "true") -> bytes:
    """A one-process BPMN document around `body`."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {NS} id="d" '
        f'targetNamespace="http://bpmn.io/schema/bpmn">\n'
        f'<bpmn:process id="{process_id}" isExecutable="{executable}">\n{body}\n'
        "</bpmn:process>\n</bpmn:definitions>\n"
    ).encode()


def timer_process(kind: str, text: str) -> bytes:
    """start -> intermediate timer catch event -> end."""
    return bpmn(
        f"""
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:intermediateCatchEvent id="wait">
  <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
  <bpmn:timerEventDefinition id="td">
    <bpmn:{kind} xsi:type="bpmn:tFormalExpression">{text}</bpmn:{kind}>
  </bpmn:timerEventDefinition>
</bpmn:intermediateCatchEvent>
<bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
<bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
"""
    )


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# -- hardened XML -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xxe.bpmn", "billion_laughs.bpmn"])
def test_doctype_and_entities_are_refused(name: str) -> None:
    with pytest.raises(DefinitionError, match="DOCTYPE and entities are not allowed") as info:
        parse_definitions(read(name), source=name)
    assert info.value.problems[0].message_zh


def test_doctype_in_utf16_is_refused_after_parsing() -> None:
    xml = read("xxe.bpmn").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    with pytest.raises(DefinitionError, match="DOCTYPE"):
        parse_definitions(xml.encode("utf-16"))


def test_files_over_5_mb_are_refused() -> None:
    big = bpmn("<!--" + "x" * (5 * 1024 * 1024) + "-->")
    with pytest.raises(DefinitionError, match="larger than 5 MB"):
        parse_definitions(big)


def test_malformed_xml_reports_the_line() -> None:
    with pytest.raises(DefinitionError, match="line 3") as info:
        parse_definitions(b"<?xml version='1.0'?>\n<a>\n<b></a>")
    assert "XML" in info.value.problems[0].message_zh


def test_non_bpmn_root_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"not a BPMN 2\.0 file"):
        parse_definitions(b"<html/>")


# -- processes ----------------------------------------------------------------------------


def test_simple_review_parses_with_camunda_attributes_and_form() -> None:
    definition = parse_definition(read("simple_review.bpmn"))
    assert definition.process_id == "simple_review"
    assert len(definition.sha256) == 64
    review = definition.user_tasks["review"]
    assert review.candidate_roles == ("handler",)
    assert review.unit_field == "unit_id"
    assert review.documentation == "Read the petition and decide."
    fields = {f.id: f for f in review.form}
    assert fields["decision"].type == "enum"
    assert fields["decision"].required
    assert fields["decision"].enum == (("approve", "同意 Approve"), ("reject", "不同意 Reject"))
    assert (fields["amount"].min, fields["amount"].max, fields["amount"].default) == (0, 1000, "0")
    assert fields["decided_on"].type == "date"
    assert fields["decided_on"].properties["max_date"] == "today"
    assert fields["comment"].maxlength == 200
    assert fields["comment"].properties["multiline"] == "true"
    assert definition.user_tasks["escalate"].unit_field == "parent_unit_id"
    assert definition.user_tasks["approve"].due_date == "add_days(decided_on, 5)"


def test_candidate_groups_assignee_and_due_date_survive_serialization() -> None:
    xml = bpmn(
        """
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="t" name="T" camunda:candidateGroups="handler, leader"
    camunda:assignee="${owner}" camunda:dueDate="P2D">
  <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
</bpmn:userTask>
<bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="t" />
<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="end" />
"""
    )
    definition = parse_definition(xml)
    task = definition.user_tasks["t"]
    assert task.candidate_roles == ("handler", "leader")
    assert task.assignee == "${owner}"
    assert task.due_date == "P2D"

    from SpiffWorkflow.bpmn import BpmnWorkflow

    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    restored = serializer.deserialize_json(
        serializer.serialize_json(BpmnWorkflow(definition._spec, {}))
    )
    ext = restored.spec.task_specs["t"].extensions
    assert ext["camunda:candidateGroups"] == "handler, leader"
    assert ext["camunda:assignee"] == "${owner}"
    assert ext["camunda:dueDate"] == "P2D"


def test_one_definition_per_executable_process_and_selection_by_id() -> None:
    two = read("simple_review.bpmn").replace(
        b"</bpmn:process>",
        b'</bpmn:process><bpmn:process id="other" isExecutable="true">'
        b'<bpmn:startEvent id="s2"/></bpmn:process>',
        1,
    )
    assert [d.process_id for d in parse_definitions(two)] == ["simple_review", "other"]
    assert parse_definition(two, process_id="other").process_id == "other"
    with pytest.raises(DefinitionError, match="2 executable processes"):
        parse_definition(two)
    with pytest.raises(DefinitionError, match="no executable process 'nope'"):
        parse_definition(two, process_id="nope")


def test_non_executable_process_is_refused_naming_it() -> None:
    xml = bpmn('<bpmn:startEvent id="s"/>', process_id="drawing", executable="false")
    with pytest.raises(DefinitionError, match="process drawing is not executable") as info:
        parse_definitions(xml)
    assert info.value.problems[0].element_id == "drawing"


def test_form_field_with_reserved_id_is_refused() -> None:
    xml = bpmn(
        """
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="t"><bpmn:extensionElements><camunda:formData>
  <camunda:formField id="len" label="Len" type="string" />
</camunda:formData></bpmn:extensionElements>
<bpmn:incoming>f1</bpmn:incoming></bpmn:userTask>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="t" />
"""
    )
    with pytest.raises(DefinitionError, match="reserved name") as info:
        parse_definitions(xml)
    assert info.value.problems[0].element_id == "t"


# -- timers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("timeDuration", "P15D"),
        ("timeDuration", "PT1H"),
        ("timeCycle", "R3/PT10M"),
        ("timeDate", "2026-10-08T00:00:00+08:00"),
        ("timeDuration", '"P15D"'),
        ("timeDate", "reply_timer_at"),
    ],
)
def test_timer_literals_and_expressions_are_accepted(kind: str, text: str) -> None:
    definition = parse_definition(timer_process(kind, text))
    expression = definition._spec.task_specs["wait"].event_definition.expression
    if text.startswith(("P", "R", "2")):
        assert json.loads(expression.replace("'", '"')) == text  # rewritten to a quoted literal
    else:
        assert expression == text


@pytest.mark.parametrize(
    ("kind", "text"), [("timeDuration", "P15X"), ("timeDate", "2026-13-45"), ("timeDuration", "")]
)
def test_invalid_timer_is_refused_naming_the_event(kind: str, text: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definitions(timer_process(kind, text))
    assert info.value.problems[0].element_id == "wait"


def test_timer_expression_the_sandbox_refuses_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="invalid timer expression") as info:
        parse_definitions(timer_process("timeDate", "__import__('os')"))
    assert info.value.problems[0].element_id == "wait"


# -- lint ----------------------------------------------------------------------------------------


def test_lint_reports_conditions_the_sandbox_refuses() -> None:
    hostile = parse_definition(read("gateway_import_os.bpmn"))
    problems = lint_definition(hostile)
    assert any(p.element_id == "Flow_hostile" and "refused" in p.message for p in problems)
    assert lint_definition(parse_definition(read("simple_review.bpmn"))) == []


def test_gateway_flow_without_condition_and_not_default_is_refused() -> None:
    xml = read("simple_review.bpmn").replace(b' default="Flow_rejected"', b"")
    with pytest.raises(DefinitionError, match="without condition") as info:
        parse_definitions(xml)
    assert info.value.problems[0].element_id == "Flow_rejected"


def test_raw_spiffworkflow_exceptions_become_definition_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.workflow import parser as parser_module

    def broken(self: object, process_id: str) -> object:
        raise KeyError("boom")

    monkeypatch.setattr(parser_module._Parser, "get_spec", broken)
    with pytest.raises(DefinitionError, match="KeyError") as info:
        parse_definitions(read("simple_review.bpmn"), source="x.bpmn")
    assert info.value.problems[0].element_id == "simple_review"
