"""Deployment lint: the rules a BPMN file must pass before it may run (issue 11).

The hardened parser already refuses malformed, hostile and non-executable files, invalid
timer literals and invalid forms. These rules add what an engine that runs unattended for
years needs: every exclusive/inclusive-gateway flow that is not the default has a
condition; every candidate group names a known role; no task or event splits into
parallel paths without a gateway; and no cycle in the flow graph runs without an exit and
a bound (a timer on the cycle, or a condition comparing a counter with a number).
Each problem names the element and says what is wrong in English and Chinese.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from engine.workflow.errors import Problem, problem
from engine.workflow.parser import BPMN_NS, CAMUNDA_NS, Definition, _parse_xml

# Roles of DESIGN.md §6 (engine.domain.enums.Role); passed in by the caller so this package
# keeps no dependency on the domain layer.
_GATEWAYS_WITH_CONDITIONS = ("exclusiveGateway", "inclusiveGateway")
_GATEWAYS = frozenset(
    {
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
_FLOW_NODES = frozenset(
    {
        "task",
        "userTask",
        "manualTask",
        "scriptTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        *_GATEWAYS,
    }
)
# A counter limit in a condition: `round < 3`, `3 >= notices`, `len(x) <= 5`.
_LIMIT = re.compile(r"(<=?|>=?)\s*-?\d+|-?\d+\s*(<=?|>=?)")


def _local(node: etree._Element) -> str:
    return str(etree.QName(node).localname)


def _bpmn(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


@dataclass
class _Graph:
    nodes: dict[str, etree._Element] = field(default_factory=dict)
    edges: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # (target, flow)
    flows: dict[str, etree._Element] = field(default_factory=dict)


def _graph(process: etree._Element) -> _Graph:
    graph = _Graph()
    for node in process.iter():
        if not isinstance(node.tag, str) or not node.tag.startswith(f"{{{BPMN_NS}}}"):
            continue
        name = _local(node)
        node_id = node.get("id")
        if name in _FLOW_NODES and node_id:
            graph.nodes[node_id] = node
            graph.edges.setdefault(node_id, [])
        elif name == "sequenceFlow" and node_id:
            graph.flows[node_id] = node
    for flow_id, flow in graph.flows.items():
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        if source and target:
            graph.edges.setdefault(source, []).append((target, flow_id))
    for node_id, node in graph.nodes.items():
        attached = node.get("attachedToRef")
        if _local(node) == "boundaryEvent" and attached:
            graph.edges.setdefault(attached, []).append((node_id, None))
    return graph


def _condition(flow: etree._Element | None) -> str:
    if flow is None:
        return ""
    node = flow.find(_bpmn("conditionExpression"))
    return (node.text or "").strip() if node is not None else ""


def _outgoing(graph: _Graph, node_id: str) -> list[etree._Element]:
    return [
        graph.flows[flow_id]
        for _target, flow_id in graph.edges.get(node_id, [])
        if flow_id is not None
    ]


def _check_gateway_conditions(graph: _Graph) -> list[Problem]:
    problems: list[Problem] = []
    for node_id, node in graph.nodes.items():
        if _local(node) not in _GATEWAYS_WITH_CONDITIONS:
            continue
        outgoing = _outgoing(graph, node_id)
        if len(outgoing) < 2:
            continue
        default = node.get("default")
        for flow in outgoing:
            flow_id = flow.get("id") or ""
            if flow_id != default and not _condition(flow):
                problems.append(
                    problem(
                        flow_id,
                        f"flow '{flow_id}' leaves gateway '{node_id}' with no condition "
                        "and is not its default flow",
                        f"顺序流 '{flow_id}' 从网关 '{node_id}' 流出，既没有条件也不是默认流",
                    )
                )
    return problems


def _check_implicit_splits(graph: _Graph) -> list[Problem]:
    problems: list[Problem] = []
    for node_id, node in graph.nodes.items():
        if _local(node) in _GATEWAYS:
            continue
        plain = [f for f in _outgoing(graph, node_id) if not _condition(f)]
        if node.get("default"):
            plain = [f for f in plain if f.get("id") != node.get("default")]
        if len(plain) > 1:
            ids = ", ".join(str(f.get("id")) for f in plain)
            problems.append(
                problem(
                    node_id,
                    f"'{node_id}' has {len(plain)} unconditioned outgoing flows ({ids}): "
                    "an implicit parallel split; use a parallel or exclusive gateway",
                    f"'{node_id}' 有 {len(plain)} 条无条件的流出顺序流（{ids}），"
                    "构成隐式并行分支；请使用并行网关或排他网关",
                )
            )
    return problems


def _check_roles(process: etree._Element, roles: frozenset[str]) -> list[Problem]:
    problems: list[Problem] = []
    known = ", ".join(sorted(roles))
    for task in process.iter(_bpmn("userTask")):
        task_id = task.get("id") or ""
        groups_raw = task.get(f"{{{CAMUNDA_NS}}}candidateGroups")
        assignee = task.get(f"{{{CAMUNDA_NS}}}assignee")
        groups = [g.strip() for g in (groups_raw or "").split(",") if g.strip()]
        if not groups and not assignee:
            problems.append(
                problem(
                    task_id,
                    f"user task '{task_id}' has no candidate group (role) and no assignee: "
                    f"nobody could act on it (roles: {known})",
                    f"用户任务 '{task_id}' 既没有候选组（角色）也没有办理人，无人能办理"
                    f"（可用角色：{known}）",
                )
            )
        for group in groups:
            if group not in roles:
                problems.append(
                    problem(
                        task_id,
                        f"user task '{task_id}': candidate group '{group}' is not a known role "
                        f"({known})",
                        f"用户任务 '{task_id}'：候选组 '{group}' 不是已知角色（{known}）",
                    )
                )
    return problems


def _check_forms(process: etree._Element) -> list[Problem]:
    """Form problems the parser lets through: enums without values, bad defaults."""
    problems: list[Problem] = []
    ns = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
    for task in process.iter(_bpmn("userTask"), _bpmn("startEvent")):
        task_id = task.get("id") or ""
        for xml_field in task.xpath(
            "./bpmn:extensionElements/camunda:formData/camunda:formField", namespaces=ns
        ):
            field_id = xml_field.get("id") or ""
            kind = xml_field.get("type") or "string"
            values = xml_field.xpath("./camunda:value", namespaces=ns)
            if kind == "enum" and not values:
                problems.append(
                    problem(
                        task_id,
                        f"form field '{field_id}' is an enum with no values",
                        f"表单字段 '{field_id}' 是枚举类型，但没有任何选项",
                    )
                )
            default = xml_field.get("defaultValue")
            if default is not None and kind == "long" and not re.fullmatch(r"-?\d+", default):
                problems.append(
                    problem(
                        task_id,
                        f"form field '{field_id}': default '{default}' is not a whole number",
                        f"表单字段 '{field_id}' 的默认值 '{default}' 不是整数",
                    )
                )
            if (
                default is not None
                and kind == "enum"
                and values
                and default not in {v.get("id") for v in values}
            ):
                problems.append(
                    problem(
                        task_id,
                        f"form field '{field_id}': default '{default}' is not one of its values",
                        f"表单字段 '{field_id}' 的默认值 '{default}' 不在选项之中",
                    )
                )
    return problems


def _check_timers(process: etree._Element) -> list[Problem]:
    problems: list[Problem] = []
    for definition in process.iter(_bpmn("timerEventDefinition")):
        event = definition.getparent()
        event_id = event.get("id") if event is not None else None
        kinds = [
            child
            for child in definition
            if isinstance(child.tag, str)
            and _local(child) in {"timeDuration", "timeDate", "timeCycle"}
        ]
        if not kinds:
            problems.append(
                problem(
                    event_id,
                    f"timer '{event_id}' has no duration, date or cycle",
                    f"定时器 '{event_id}' 未设置时长、日期或周期",
                )
            )
        elif len(kinds) > 1:
            problems.append(
                problem(
                    event_id,
                    f"timer '{event_id}' sets more than one of duration, date and cycle",
                    f"定时器 '{event_id}' 同时设置了多个时长、日期或周期",
                )
            )
    return problems


def _sccs(graph: _Graph) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (large files must not recurse)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in graph.nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = [t for t, _f in graph.edges.get(node, []) if t in graph.nodes]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def _check_loops(graph: _Graph) -> list[Problem]:
    problems: list[Problem] = []
    for component in _sccs(graph):
        members = set(component)
        if len(component) == 1:
            node = component[0]
            if not any(t == node for t, _f in graph.edges.get(node, [])):
                continue
        exits: list[str] = []
        bounded = False
        for node_id in component:
            node = graph.nodes[node_id]
            if node.find(_bpmn("timerEventDefinition")) is not None:
                bounded = True
            for target, flow_id in graph.edges.get(node_id, []):
                flow = graph.flows.get(flow_id) if flow_id else None
                if _LIMIT.search(_condition(flow)):
                    bounded = True
                if target not in members:
                    exits.append(target)
                    target_node = graph.nodes.get(target)
                    if (
                        target_node is not None
                        and _local(target_node) == "boundaryEvent"
                        and target_node.find(_bpmn("timerEventDefinition")) is not None
                    ):
                        bounded = True
        first = sorted(component)[0]
        where = ", ".join(sorted(component))
        if not exits:
            problems.append(
                problem(
                    first,
                    f"the cycle through {where} has no exit: an instance would loop forever",
                    f"经过 {where} 的循环没有出口：流程实例将无限循环",
                )
            )
        elif not bounded:
            problems.append(
                problem(
                    first,
                    f"the cycle through {where} is unbounded: add a timer or a condition that "
                    "limits a counter (e.g. round < 3), or model repeats as new cases",
                    f"经过 {where} 的循环没有上限：请增加定时器或限制次数的条件"
                    "（如 round < 3），或将重复的工作建模为新的案件",
                )
            )
    return problems


def lint_process(definition: Definition, *, roles: Iterable[str]) -> list[Problem]:
    """Every deployment rule for one parsed process; an empty list means it may deploy."""
    root = _parse_xml(definition.xml, definition.process_id)
    found = root.xpath(
        "./bpmn:process[@id=$pid]", namespaces={"bpmn": BPMN_NS}, pid=definition.process_id
    )
    return _lint(found[0], frozenset(roles)) if found else []


def lint_xml(xml: bytes, *, roles: Iterable[str], source: str = "<upload>") -> list[Problem]:
    """The deployment rules on every executable process of a file SpiffWorkflow refused too,
    so one upload reports all its problems at once (DefinitionError if not even XML)."""
    root = _parse_xml(xml, source)
    known = frozenset(roles)
    problems: list[Problem] = []
    for process in root.xpath("./bpmn:process", namespaces={"bpmn": BPMN_NS}):
        if process.get("isExecutable", "true") == "true":
            problems += _lint(process, known)
    return _dedupe(problems)


def _lint(process: etree._Element, roles: frozenset[str]) -> list[Problem]:
    graph = _graph(process)
    problems: list[Problem] = []
    problems += _check_gateway_conditions(graph)
    problems += _check_implicit_splits(graph)
    problems += _check_roles(process, roles)
    problems += _check_forms(process)
    problems += _check_timers(process)
    problems += _check_loops(graph)
    problems += _check_expressions(process)
    return _dedupe(problems)


def _check_expressions(process: etree._Element) -> list[Problem]:
    from engine.workflow import sandbox

    problems: list[Problem] = []
    for condition in process.iter(_bpmn("conditionExpression")):
        text = (condition.text or "").strip()
        error = sandbox.check_source(text) if text else None
        if error:
            flow_id = condition.getparent().get("id")
            problems.append(
                problem(flow_id, f"condition refused: {error}", f"条件表达式不被允许：{error}")
            )
    for script in process.iter(_bpmn("script")):
        error = sandbox.check_source(script.text or "", mode="exec") or _imports(script.text)
        if error:
            task_id = script.getparent().get("id")
            problems.append(problem(task_id, f"script refused: {error}", f"脚本不被允许：{error}"))
    return problems


def _imports(source: str | None) -> str | None:
    """Scripts cannot import anything (the sandbox has no __import__): say so at deployment."""
    try:
        tree = ast.parse(source or "")
    except SyntaxError:
        return None  # the sandbox check reports syntax errors
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            return "import statements are not allowed"
    return None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str | None, str]] = set()
    out: list[Problem] = []
    for item in problems:
        key = (item.element_id, item.message)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def evaluate_condition(expression: str, data: Mapping[str, Any], *, element: str) -> Any:
    """Evaluate a case-type data condition with the BPMN sandbox (same language as BPMN)."""
    from engine.workflow import sandbox

    return sandbox.evaluate(expression, data, element=element)


def check_expression(expression: str) -> str | None:
    """Why the sandbox would refuse an expression, or None if it compiles."""
    from engine.workflow import sandbox

    return sandbox.check_source(expression)
