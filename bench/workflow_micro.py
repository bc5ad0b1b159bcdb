"""Micro-benchmark: raw SpiffWorkflow complete cycle vs WorkflowRuntime.complete (medians)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.clock import SettableClock
from engine.workflow import WorkflowRuntime, parse_definition

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/bpmn/simple_review.bpmn"
RUNS = 500
FORM = {"decision": "approve", "decided_on": "2026-01-05", "amount": 5, "comment": "ok"}


def median_ms(func: Callable[[], object]) -> float:
    for _ in range(20):
        func()
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    xml = FIXTURE.read_bytes()
    parser = CamundaParser()
    parser.add_bpmn_xml(etree.fromstring(xml.replace(b">P3D<", b'>"P3D"<')), "bench")
    spec = parser.get_spec("simple_review")
    subs = parser.get_subprocess_specs("simple_review")
    ser = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    wf = BpmnWorkflow(spec, subs)
    for task in wf.get_tasks(state=TaskState.READY):
        task.data.update({"unit_id": 7})
    wf.do_engine_steps()
    raw_state = ser.serialize_json(wf)

    def raw_cycle() -> None:
        w = ser.deserialize_json(raw_state)
        task = w.get_tasks(state=TaskState.READY, manual=True)[0]
        task.data.update(FORM)
        task.run()
        w.do_engine_steps()
        ser.serialize_json(w)

    definition = parse_definition(xml)
    runtime = WorkflowRuntime(SettableClock(datetime(2026, 1, 5, tzinfo=UTC)))
    started = runtime.start(definition, {"unit_id": 7})
    task_id = started.tasks[0].id

    def runtime_cycle() -> None:
        snap = runtime.complete(definition, started.state, task_id, FORM)
        assert snap.status == "running", snap.error

    print(f"state size: raw {len(raw_state)} B, runtime {len(started.state)} B")
    print(f"raw SpiffWorkflow cycle : {median_ms(raw_cycle):.3f} ms (median of {RUNS})")
    print(f"runtime.complete cycle  : {median_ms(runtime_cycle):.3f} ms (median of {RUNS})")
    load_ms = median_ms(lambda: runtime.load(definition, started.state))
    print(f"runtime.load            : {load_ms:.3f} ms")


if __name__ == "__main__":
    main()
