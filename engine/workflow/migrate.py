"""Move a running instance to a newer version of its process (SpiffWorkflow's diff/migrate).

SpiffWorkflow 3.2 aligns the task specs of two versions by BPMN id (then by structure) and
can re-point an instance's tasks at the new specs; READY and WAITING tasks are reset and
predicted again from the new spec. An instance can move only when every task it has (done
or open) still exists in the new version: a task whose element was removed would leave the
instance pointing at a spec the new version does not have. `check_migration` says whether
and why not, without changing anything; `migrate` does it and returns the new Snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.util.task import TaskState

from engine.workflow.errors import Problem, problem
from engine.workflow.parser import Definition
from engine.workflow.runtime import Snapshot, WorkflowRuntime, _load, _serializer
from engine.workflow.timeclock import using_clock


@dataclass(frozen=True)
class MigrationCheck:
    """Whether an instance can move to the new version; `problems` say why not."""

    possible: bool
    problems: tuple[Problem, ...]
    changed: tuple[str, ...]  # BPMN ids of open tasks whose element changed (they are re-opened)
    added: tuple[str, ...]  # BPMN ids the new version adds


def _label(task: Any) -> str:
    spec = task.task_spec
    return str(getattr(spec, "bpmn_id", None) or spec.name)


def _diff(workflow: Any, new: Definition) -> tuple[Any, dict[str, Any]]:
    registry = _serializer().registry
    return diff_workflow(  # type: ignore[no-any-return]
        registry, workflow, new._spec, dict(new._subprocess_specs)
    )


def _assess(workflow: Any, new: Definition) -> MigrationCheck:
    top, subs = _diff(workflow, new)
    problems: list[Problem] = []
    for task in top.removed:
        bpmn_id = _label(task)
        if getattr(task.task_spec, "bpmn_id", None) is None:
            continue  # SpiffWorkflow's own bookkeeping specs (Root, End) have no element
        if task.state & (TaskState.PREDICTED_MASK | TaskState.FUTURE):
            continue  # only predicted: migration resets and predicts those branches again
        problems.append(
            problem(
                bpmn_id,
                f"element '{bpmn_id}' this instance has reached does not exist in the new version",
                f"本实例已到达的环节 '{bpmn_id}' 在新版本中不存在",
            )
        )
    for sp_id, sub_diff in subs.items():
        sub = workflow.subprocesses.get(sp_id)
        name = getattr(getattr(sub, "spec", None), "name", str(sp_id))
        if sub_diff is None:
            problems.append(
                problem(
                    name,
                    f"subprocess '{name}' this instance runs does not exist in the new version",
                    f"本实例正在运行的子流程 '{name}' 在新版本中不存在",
                )
            )
            continue
        for task in sub_diff.removed:
            if getattr(task.task_spec, "bpmn_id", None) is None:
                continue
            if task.state & (TaskState.PREDICTED_MASK | TaskState.FUTURE):
                continue
            bpmn_id = _label(task)
            problems.append(
                problem(
                    bpmn_id,
                    f"element '{bpmn_id}' of subprocess '{name}' does not exist in the new version",
                    f"子流程 '{name}' 的环节 '{bpmn_id}' 在新版本中不存在",
                )
            )
    open_states = TaskState.READY | TaskState.WAITING | TaskState.STARTED
    changed = sorted(
        {
            _label(t)
            for t in top.changed
            if t.state & open_states and getattr(t.task_spec, "bpmn_id", None)
        }
    )
    added = sorted(
        str(s.bpmn_id)
        for s in new._spec.task_specs.values()
        if getattr(s, "bpmn_id", None) and s.name not in workflow.spec.task_specs
    )
    return MigrationCheck(not problems, tuple(problems), tuple(changed), tuple(added))


def check_migration(
    runtime: WorkflowRuntime, old: Definition, state: str, new: Definition
) -> MigrationCheck:
    """Can this stored instance of `old` move to `new`? Nothing is changed."""
    if old.process_id != new.process_id:
        return MigrationCheck(
            False,
            (
                problem(
                    new.process_id,
                    f"the new version runs process '{new.process_id}', not '{old.process_id}'",
                    f"新版本的流程为 '{new.process_id}'，而不是 '{old.process_id}'",
                ),
            ),
            (),
            (),
        )
    with using_clock(runtime._clock):
        try:
            workflow = _load(state, old, runtime._engine)
        except Exception as exc:
            return MigrationCheck(
                False,
                (
                    problem(
                        None,
                        f"the stored instance cannot be loaded: {exc}",
                        f"无法读取已保存的流程实例：{exc}",
                    ),
                ),
                (),
                (),
            )
        try:
            return _assess(workflow, new)
        except Exception as exc:  # SpiffWorkflow's diff on odd models (trap 12)
            return MigrationCheck(
                False,
                (
                    problem(
                        None,
                        f"the versions cannot be compared: {type(exc).__name__}: {exc}",
                        f"无法比较两个版本：{type(exc).__name__}: {exc}",
                    ),
                ),
                (),
                (),
            )


def migrate(runtime: WorkflowRuntime, old: Definition, state: str, new: Definition) -> Snapshot:
    """Move an instance to `new` (check first); open tasks are re-opened on the new spec."""
    with using_clock(runtime._clock):
        workflow = _load(state, old, runtime._engine)
        verdict = _assess(workflow, new)
        if not verdict.possible:
            raise ValueError("; ".join(p.message for p in verdict.problems))
        top, subs = _diff(workflow, new)
        migrate_workflow(top, workflow, new._spec)
        workflow.subprocess_specs = dict(new._subprocess_specs)
        for sp_id, sub_diff in subs.items():
            sub = workflow.subprocesses[sp_id]
            migrate_workflow(sub_diff, sub, new._subprocess_specs[sub.spec.name])
        error = runtime._advance(workflow, None)
        return runtime._finish(new, workflow, error, previous=state)
