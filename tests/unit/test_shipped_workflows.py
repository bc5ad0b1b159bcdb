"""Every shipped BPMN file passes the deployment lint an upload gets, opens in Camunda Modeler,
and bounds its rework loops with the limits the services enforce (SPIFFWORKFLOW.md trap 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from engine.config import PROJECT_ROOT
from engine.services import petitions, screening
from engine.services.definitions import KNOWN_ROLES, validate_bpmn
from engine.workflow import lint_process, lint_xml, parse_definitions

WORKFLOWS = PROJECT_ROOT / "workflows"
SHIPPED = sorted(WORKFLOWS.glob("*.bpmn"))
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
}
# Elements Camunda Modeler draws as shapes, and as edges.
SHAPES = (
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "userTask",
    "scriptTask",
    "serviceTask",
    "manualTask",
    "task",
    "callActivity",
    "subProcess",
    "exclusiveGateway",
    "inclusiveGateway",
    "parallelGateway",
    "eventBasedGateway",
)


def test_the_shipped_files_are_found() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"petition", "hazard", "screening_round", "stabilization"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_parses_and_lints_clean(path: Path) -> None:
    xml = path.read_bytes()
    definitions = parse_definitions(xml, source=path.name)
    assert definitions
    # The same validation an upload gets (deploy_upload): raises on any problem.
    assert [d.process_id for d in validate_bpmn(xml, filename=path.name, lint=True)] == [
        d.process_id for d in definitions
    ]
    assert lint_xml(xml, roles=KNOWN_ROLES, source=path.name) == []
    for definition in definitions:
        assert lint_process(definition, roles=KNOWN_ROLES) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_has_a_diagram_matching_its_elements(path: Path) -> None:
    root = etree.fromstring(path.read_bytes())
    for process in root.xpath("./bpmn:process", namespaces=NS):
        nodes = {
            node.get("id") for kind in SHAPES for node in process.iter(f"{{{NS['bpmn']}}}{kind}")
        }
        flows = {f.get("id") for f in process.iter(f"{{{NS['bpmn']}}}sequenceFlow")}
        shapes = set(root.xpath("//bpmndi:BPMNShape/@bpmnElement", namespaces=NS))
        edges = set(root.xpath("//bpmndi:BPMNEdge/@bpmnElement", namespaces=NS))
        assert nodes - shapes == set(), "elements without a shape"
        assert flows - edges == set(), "flows without an edge"
    known = set(root.xpath("//@id"))
    drawn = root.xpath(
        "//bpmndi:BPMNShape/@bpmnElement | //bpmndi:BPMNEdge/@bpmnElement", namespaces=NS
    )
    assert set(drawn) - known == set(), "diagram elements that do not exist"


def _condition(file: str, flow_id: str) -> str:
    root = etree.fromstring((WORKFLOWS / file).read_bytes())
    found = root.xpath(
        "//bpmn:sequenceFlow[@id=$fid]/bpmn:conditionExpression/text()", namespaces=NS, fid=flow_id
    )
    assert found, f"{file}: {flow_id} has no condition"
    return str(found[0]).strip()


@pytest.mark.parametrize(
    ("file", "flow_id", "bound"),
    [
        (
            "petition.bpmn",
            "Flow_to_extension",
            f"extension_round <= {petitions.MAX_EXTENSION_REQUESTS}",
        ),
        ("petition.bpmn", "Flow_reply_returned", f"reply_returns <= {petitions.MAX_REPLY_RETURNS}"),
        ("screening_round.bpmn", "Flow_returned", f"sign_returns <= {screening.MAX_SIGN_RETURNS}"),
        (
            "hazard.bpmn",
            "Flow_confirm_rejected",
            f"closure_rejections <= {screening.MAX_CLOSURE_REJECTIONS}",
        ),
        (
            "hazard.bpmn",
            "Flow_approve_rejected",
            f"closure_rejections <= {screening.MAX_CLOSURE_REJECTIONS}",
        ),
    ],
)
def test_loop_backs_carry_the_limits_the_services_enforce(
    file: str, flow_id: str, bound: str
) -> None:
    assert _condition(file, flow_id).endswith(f"and {bound}")


def test_the_limits_are_the_agreed_ones() -> None:
    assert petitions.MAX_EXTENSION_REQUESTS == 3
    assert petitions.MAX_REPLY_RETURNS == 20
    assert screening.MAX_SIGN_RETURNS == 10
    assert screening.MAX_CLOSURE_REJECTIONS == 10
