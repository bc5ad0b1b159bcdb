"""WorkflowRuntime on the real fixture BPMN: paths, timers, hostile models, stored state."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import SettableClock
from engine.workflow import (
    DataKeyError,
    Definition,
    TaskNotReadyError,
    WorkflowRuntime,
    parse_definition,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
APPROVE = {"decision": "approve", "decided_on": "2026-03-02", "amount": 10}


def load(name: str) -> Definition:
    return parse_definition((FIXTURES / "bpmn" / name).read_bytes())


@pytest.fixture
def review() -> Definition:
    return load("simple_review.bpmn")


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(T0)


@pytest.fixture
def runtime(clock: SettableClock) -> WorkflowRuntime:
    return WorkflowRuntime(clock)


def test_start_opens_review_for_handlers_with_its_form(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    snap = runtime.start(review, {"unit_id": "12"})
    assert snap.status == "running"
    assert snap.error is None
    (task,) = snap.tasks
    assert (task.bpmn_id, task.name, task.candidate_roles) == (
        "review",
        "Review 审核",
        ("handler",),
    )
    assert task.unit_id == 12
    assert [f.id for f in task.form] == ["decision", "amount", "decided_on", "comment"]
    assert task.data["unit_id"] == "12"
    assert snap.completed == ("start",)
    assert set(snap.active) == {"review", "review_timeout"}
    json.loads(snap.state)  # TEXT JSON


def test_approve_path_sets_due_date_and_completes(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    started = runtime.start(review, {"unit_id": 12})
    snap = runtime.complete(review, started.state, started.tasks[0].id, APPROVE)
    (approve,) = snap.tasks
    assert approve.bpmn_id == "approve"
    assert approve.candidate_roles == ("leader",)
    # add_days(decided_on, 5) = 2026-03-07 -> end of that day in Shanghai, in UTC.
    assert approve.due_at == datetime(2026, 3, 7, 15, 59, 59, tzinfo=UTC)
    assert snap.next_timer_at is None  # the boundary timer went with the review
    assert snap.completed == ("start", "review", "gw_decision")
    done = runtime.complete(review, snap.state, approve.id, {})
    assert done.status == "completed"
    assert done.tasks == ()
    assert done.completed[-2:] == ("approve", "end_approved")
    assert done.data["decision"] == "approve"


def test_reject_goes_to_the_default_flow(runtime: WorkflowRuntime, review: Definition) -> None:
    started = runtime.start(review, {})
    snap = runtime.complete(
        review,
        started.state,
        started.tasks[0].id,
        {"decision": "reject", "decided_on": "2026-03-02"},
    )
    assert snap.status == "completed"
    assert snap.completed[-1] == "rejected"


def test_boundary_timer_fires_after_three_days_per_injected_clock(
    runtime: WorkflowRuntime, review: Definition, clock: SettableClock
) -> None:
    started = runtime.start(review, {"unit_id": 12, "parent_unit_id": 3})
    assert started.next_timer_at == T0 + timedelta(days=3)

    clock.set(T0 + timedelta(days=2))
    early = runtime.fire_timers(review, started.state)
    assert [t.bpmn_id for t in early.tasks] == ["review"]
    assert early.next_timer_at == T0 + timedelta(days=3)

    clock.set(T0 + timedelta(days=3))
    fired = runtime.fire_timers(review, early.state)
    assert [t.bpmn_id for t in fired.tasks] == ["escalate"]
    assert fired.tasks[0].unit_id == 3  # escalate reads unitField=parent_unit_id
    assert fired.next_timer_at is None
    assert "review_timeout" in fired.completed
    assert "review" not in fired.active


def test_runtimes_with_different_clocks_coexist_in_threads(review: Definition) -> None:
    results: dict[str, datetime | None] = {}

    def run(name: str, start: datetime) -> None:
        rt = WorkflowRuntime(SettableClock(start))
        for _ in range(20):
            results[name] = rt.start(review, {}).next_timer_at

    threads = [
        threading.Thread(target=run, args=("a", T0)),
        threading.Thread(target=run, args=("b", T0 + timedelta(days=100))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"a": T0 + timedelta(days=3), "b": T0 + timedelta(days=103)}


@pytest.mark.parametrize("name", ["gateway_import_os.bpmn", "gateway_subclasses.bpmn"])
def test_hostile_gateway_runs_no_code_and_ends_in_error(
    runtime: WorkflowRuntime, name: str
) -> None:
    marker = Path("/tmp/pwned")  # noqa: S108 - the path the hostile fixture targets
    marker.unlink(missing_ok=True)
    snap = runtime.start(load(name), {})
    assert snap.status == "error"
    assert snap.error is not None
    assert "Gateway 'gw_x'" in snap.error
    assert "refused" in snap.error
    assert not marker.exists()
    # The error is stored with the instance.
    assert runtime.load(load(name), snap.state).status == "error"


def test_endless_script_ends_in_error_with_time_limit(clock: SettableClock) -> None:
    runtime = WorkflowRuntime(clock, script_time_limit=0.1)
    snap = runtime.start(load("script_infinite_loop.bpmn"), {})
    assert snap.status == "error"
    assert snap.error is not None
    assert "Script task 'loop_forever'" in snap.error
    assert "time limit" in snap.error


def test_complete_refuses_unknown_or_finished_tasks(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    started = runtime.start(review, {})
    with pytest.raises(TaskNotReadyError):
        runtime.complete(review, started.state, "not-a-uuid", {})
    snap = runtime.complete(review, started.state, started.tasks[0].id, APPROVE)
    with pytest.raises(TaskNotReadyError):
        runtime.complete(review, snap.state, started.tasks[0].id, APPROVE)


@pytest.mark.parametrize("key", ["_x", "len", "days_between"])
def test_reserved_data_keys_are_refused(
    runtime: WorkflowRuntime, review: Definition, key: str
) -> None:
    with pytest.raises(DataKeyError):
        runtime.start(review, {key: 1})
    started = runtime.start(review, {})
    with pytest.raises(DataKeyError):
        runtime.complete(review, started.state, started.tasks[0].id, {key: 1})


def test_set_data_merges_into_open_tasks(runtime: WorkflowRuntime, review: Definition) -> None:
    started = runtime.start(review, {"unit_id": 1})
    snap = runtime.set_data(review, started.state, {"reply_due_at": "2026-04-01", "unit_id": 5})
    assert snap.tasks[0].data["reply_due_at"] == "2026-04-01"
    assert snap.tasks[0].unit_id == 5


def test_cancel_leaves_no_tasks_and_no_timers(runtime: WorkflowRuntime, review: Definition) -> None:
    started = runtime.start(review, {})
    snap = runtime.cancel(review, started.state)
    assert snap.status == "cancelled"
    assert snap.tasks == ()
    assert snap.next_timer_at is None
    assert runtime.load(review, snap.state).status == "cancelled"
    assert runtime.fire_timers(review, snap.state).status == "cancelled"


def test_stored_state_from_this_release_still_loads_and_completes(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    state = (FIXTURES / "state" / "simple_review_review_ready.spiff-3.2.0.json").read_text()
    snap = runtime.load(review, state)
    assert snap.status == "running"
    (task,) = snap.tasks
    assert task.bpmn_id == "review"
    assert task.data["petition_no"] == "XF-2026-0001"
    assert snap.next_timer_at == datetime(2026, 3, 5, 1, 0, tzinfo=UTC)
    after = runtime.complete(review, state, task.id, APPROVE)
    assert [t.bpmn_id for t in after.tasks] == ["approve"]
    assert after.tasks[0].data["petition_no"] == "XF-2026-0001"
    done = runtime.complete(review, after.state, after.tasks[0].id, {})
    assert done.status == "completed"


def test_stored_state_is_a_standard_spiffworkflow_serialization(review: Definition) -> None:
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

    state = (FIXTURES / "state" / "simple_review_review_ready.spiff-3.2.0.json").read_text()
    plain = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    workflow = plain.deserialize_json(state)
    ext = workflow.spec.task_specs["review"].extensions
    assert ext["camunda:candidateGroups"] == "handler"


def test_a_stored_state_names_its_definition_instead_of_embedding_the_spec(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
    from SpiffWorkflow.util.task import TaskState

    from engine.workflow.runtime import full_state

    snap = runtime.start(review, {"unit_id": 12})
    stored = json.loads(snap.state)
    assert stored["spec"] == {"fengqiao_spec_ref": review.process_id, "sha256": review.sha256}
    assert stored["subprocess_specs"] == {}
    assert "task_specs" not in snap.state
    # With the spec put back it is a standard serialization, with the same open task.
    whole = full_state(snap.state, review)
    assert len(whole) > 2 * len(snap.state)
    plain = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    workflow = plain.deserialize_json(whole)
    ready = workflow.get_tasks(state=TaskState.READY, manual=True)
    assert [str(t.id) for t in ready] == [snap.tasks[0].id]
    assert ready[0].data["unit_id"] == 12


def test_a_stored_state_loads_only_with_the_definition_it_names(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    snap = runtime.start(review, {"unit_id": 12})
    # The same process id from other BPMN bytes: another definition, another spec.
    xml = (FIXTURES / "bpmn" / "simple_review.bpmn").read_bytes() + b"\n<!-- v2 -->\n"
    changed = parse_definition(xml)
    assert changed.process_id == review.process_id and changed.sha256 != review.sha256
    broken = runtime.load(changed, snap.state)
    assert broken.status == "error"
    assert broken.error is not None and "sha256" in broken.error
    with pytest.raises(ValueError, match="belongs to process"):
        runtime.complete(changed, snap.state, snap.tasks[0].id, APPROVE)


def test_full_and_compact_fixture_states_load_alike_and_save_compact(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    full = (FIXTURES / "state" / "simple_review_review_ready.spiff-3.2.0.json").read_text()
    compact = (
        FIXTURES / "state" / "simple_review_review_ready.compact.spiff-3.2.0.json"
    ).read_text()
    a, b = runtime.load(review, full), runtime.load(review, compact)
    assert (a.status, a.next_timer_at, a.active) == (b.status, b.next_timer_at, b.active)
    assert [(t.id, t.bpmn_id, dict(t.data)) for t in a.tasks] == [
        (t.id, t.bpmn_id, dict(t.data)) for t in b.tasks
    ]
    after_full = runtime.complete(review, full, a.tasks[0].id, APPROVE)
    after_compact = runtime.complete(review, compact, b.tasks[0].id, APPROVE)
    for after in (after_full, after_compact):
        assert [(t.bpmn_id, dict(t.data)) for t in after.tasks] == [
            ("approve", {**dict(a.tasks[0].data), **APPROVE})
        ]
        # Written compact, whichever form it was read from.
        assert json.loads(after.state)["spec"]["fengqiao_spec_ref"] == review.process_id
        assert len(after.state) < len(full) / 2


def test_load_of_garbage_state_is_an_error_snapshot(
    runtime: WorkflowRuntime, review: Definition
) -> None:
    snap = runtime.load(review, "{not json")
    assert snap.status == "error"
    assert snap.error is not None


def _user_task_bpmn(attributes: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
<bpmn:process id="p" isExecutable="true">
<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:userTask id="t" {attributes}><bpmn:incoming>f1</bpmn:incoming></bpmn:userTask>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="t" />
</bpmn:process></bpmn:definitions>""".encode()


@pytest.mark.parametrize(
    ("due", "data", "expected"),
    [
        ("P3D", {}, T0 + timedelta(days=3)),
        (
            "${reply_due_on}",
            {"reply_due_on": "2026-03-10"},
            datetime(2026, 3, 10, 15, 59, 59, tzinfo=UTC),
        ),
        (
            "due_at",
            {"due_at": "2026-03-10T08:00:00+08:00"},
            datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
        ),
        ("add_days(today(), 1)", {}, datetime(2026, 3, 3, 15, 59, 59, tzinfo=UTC)),
        ("missing_variable", {}, None),
    ],
)
def test_due_date_forms(
    runtime: WorkflowRuntime, due: str, data: dict[str, str], expected: datetime | None
) -> None:
    definition = parse_definition(_user_task_bpmn(f'camunda:dueDate="{due}"'))
    (task,) = runtime.start(definition, data).tasks
    assert task.due_at == expected


@pytest.mark.parametrize(
    ("assignee", "data", "expected"),
    [
        ("zhangsan", {}, "zhangsan"),
        ("${owner}", {"owner": "lisi"}, "lisi"),
        ("owner", {"owner": "lisi"}, "lisi"),
        ("${owner}", {}, None),
    ],
)
def test_assignee_literal_or_expression(
    runtime: WorkflowRuntime, assignee: str, data: dict[str, str], expected: str | None
) -> None:
    definition = parse_definition(_user_task_bpmn(f'camunda:assignee="{assignee}"'))
    (task,) = runtime.start(definition, data).tasks
    assert task.assignee == expected
