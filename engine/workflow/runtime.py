"""Run process instances: start / complete / set data / fire timers -> Snapshot.

Every call deserializes the stored TEXT state, acts, runs engine steps (firing due
timers as of the injected clock), serializes and returns a plain Snapshot. No
SpiffWorkflow object leaves this module. Sandbox failures never escape: they end the
instance in status 'error' with a message naming the BPMN element.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine.clock import LOCAL_TZ, Clock
from engine.workflow import sandbox
from engine.workflow.errors import ScriptError, TaskNotReadyError
from engine.workflow.forms import FormField
from engine.workflow.parser import Definition, UserTaskSpec, is_iso_literal
from engine.workflow.timeclock import firing, using_clock

# Private workflow-data keys (user keys can never start with "_", see sandbox.check_data_keys).
_ERROR_KEY = "_fengqiao_error"
_CANCELLED_KEY = "_fengqiao_cancelled"
_TIMER_EVENT_TYPES = frozenset(
    {"TimeDateEventDefinition", "DurationTimerEventDefinition", "CycleTimerEventDefinition"}
)
_ACTIVE_STATES = TaskState.READY | TaskState.WAITING | TaskState.STARTED


@dataclass(frozen=True)
class HumanTask:
    """A READY user task, with its evaluated assignee, unit and due time."""

    id: str
    bpmn_id: str
    name: str
    candidate_roles: tuple[str, ...]
    assignee: str | None
    unit_id: int | None
    due_at: datetime | None
    form: tuple[FormField, ...]
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """Everything a service stores or shows after one runtime call.

    status: 'running' (human tasks open), 'waiting' (only timers/events pending),
    'completed', 'cancelled' (after cancel()) or 'error' (see `error`).
    """

    state: str
    status: str
    error: str | None
    tasks: tuple[HumanTask, ...]
    next_timer_at: datetime | None
    data: Mapping[str, Any]
    completed: tuple[str, ...]
    active: tuple[str, ...]


# -- SpiffWorkflow glue: every expression and script goes through the sandbox ----------------


def _element_label(task: Any) -> str:
    spec = getattr(task, "task_spec", None)
    if spec is None:
        return "Process"
    bpmn_id = getattr(spec, "bpmn_id", None) or spec.name
    kind = type(spec).__name__
    if "Gateway" in kind:
        label = "Gateway"
    elif "Script" in kind:
        label = "Script task"
    elif "Event" in kind:
        label = "Event"
    elif "MultiInstance" in kind or "Loop" in kind:
        label = "Activity"
    else:
        label = "Task"
    return f"{label} '{bpmn_id}'"


class _SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Environment used where SpiffWorkflow bypasses the engine (process-level conditions)."""

    def __init__(self, time_limit: float) -> None:
        super().__init__({})
        self.time_limit = time_limit

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: Any = None
    ) -> Any:
        """Evaluate in the sandbox."""
        return sandbox.evaluate(
            expression,
            context,
            element="Process",
            time_limit=self.time_limit,
            extra=external_context,
        )

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        """Execute in the sandbox."""
        sandbox.execute(
            script, context, element="Process", time_limit=self.time_limit, extra=external_context
        )
        return True

    def call_service(self, context: Any, **kwargs: Any) -> Any:
        """Service tasks are not supported: there is nothing to call."""
        raise ScriptError("service tasks are not supported")


class _SandboxScriptEngine(PythonScriptEngine):
    """Script engine that evaluates through RestrictedPython and names the element on error."""

    def __init__(self, time_limit: float) -> None:
        super().__init__(environment=_SandboxEnvironment(time_limit))
        self.time_limit = time_limit

    def validate(self, expression: str) -> None:
        """Refuse expressions the sandbox would refuse."""
        error = sandbox.check_source(expression)
        if error is not None:
            raise ScriptError(f"expression refused: {error}")

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        """Evaluate a condition/timer/etc. against the task's data."""
        return sandbox.evaluate(
            expression,
            task.data,
            element=_element_label(task),
            time_limit=self.time_limit,
            extra=external_context,
        )

    def execute(self, task: Any, script: str, external_context: Any = None) -> bool:
        """Run a script task against the task's data."""
        sandbox.execute(
            script or "",
            task.data,
            element=_element_label(task),
            time_limit=self.time_limit,
            extra=external_context,
        )
        return True

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        """Service tasks are not supported."""
        raise ScriptError(f"{_element_label(task)}: service tasks are not supported")


# -- serialization ----------------------------------------------------------------------------

# A stored state is SpiffWorkflow's serialization with the process spec left out: the spec
# is the same for every instance of a definition (~70% of a petition's state), and the case
# row names its definition. In its place the state names the process and the BPMN file's
# sha256 (`_SPEC_REF`), and is restored only with that definition's already-parsed spec.
# `full_state()` puts the spec back, for a plain SpiffWorkflow serializer. States written in
# full (before this format) still load, and are written compact on their next change.
_RESTORE_WITH: threading.local = threading.local()
_SPEC_REF = "fengqiao_spec_ref"


def _spec_ref(definition: Definition) -> dict[str, str]:
    return {_SPEC_REF: definition.process_id, "sha256": definition.sha256}


class _WorkflowConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow: Any) -> dict[str, Any]:
        definition = getattr(_RESTORE_WITH, "definition", None)
        if definition is None or definition._spec is not workflow.spec:
            return dict(super().to_dict(workflow))
        dct: dict[str, Any] = dict(super(BpmnWorkflowConverter, self).to_dict(workflow))
        dct["spec"] = _spec_ref(definition)
        dct["subprocess_specs"] = {}
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> Any:
        definition = getattr(_RESTORE_WITH, "definition", None)
        if definition is None:
            return super().from_dict(dct)
        dct.pop("spec", None)
        dct.pop("subprocess_specs", None)
        workflow = self.target_class(
            definition._spec, dict(definition._subprocess_specs), deserializing=True
        )
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _make_serializer() -> BpmnWorkflowSerializer:
    config = dict(CAMUNDA_CONFIG)
    config[BpmnWorkflow] = _WorkflowConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


_SERIALIZERS = threading.local()


def _serializer() -> BpmnWorkflowSerializer:
    # One per thread: the serializer toggles registry state while encoding.
    ser: BpmnWorkflowSerializer | None = getattr(_SERIALIZERS, "value", None)
    if ser is None:
        ser = _make_serializer()
        _SERIALIZERS.value = ser
    return ser


def _dump(workflow: Any, definition: Definition) -> str:
    ser = _serializer()
    _RESTORE_WITH.definition = definition
    try:
        return str(ser.serialize_json(workflow))
    finally:
        _RESTORE_WITH.definition = None


def _full_specs(definition: Definition) -> tuple[Any, Any]:
    """The definition's spec and subprocess specs as SpiffWorkflow serializes them (memoized)."""
    memo = definition._cache
    if "spec_dict" not in memo:
        ser = _serializer()
        converter = ser.registry
        memo["spec_dict"] = converter.convert(definition._spec)
        memo["subprocess_specs_dict"] = {
            name: converter.convert(spec) for name, spec in definition._subprocess_specs.items()
        }
    return memo["spec_dict"], memo["subprocess_specs_dict"]


def _parse(state: str, definition: Definition) -> dict[str, Any]:
    """The state's dict, checked to belong to `definition`; a compact state gets its spec
    back only when SpiffWorkflow's own migration of an older serialization needs it."""
    try:
        dct = json.loads(state)
        spec = dct.get("spec")
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"stored workflow state is not valid JSON: {exc}") from None
    if isinstance(spec, dict) and _SPEC_REF in spec:
        if spec != _spec_ref(definition):
            raise ValueError(
                f"stored state belongs to process '{spec.get(_SPEC_REF)}' "
                f"(BPMN sha256 {str(spec.get('sha256'))[:12]}), not to '{definition.process_id}' "
                f"(sha256 {definition.sha256[:12]})"
            )
        if dct.get(BpmnWorkflowSerializer.VERSION_KEY) != _serializer().VERSION:
            dct["spec"], dct["subprocess_specs"] = _full_specs(definition)
        return dct  # type: ignore[no-any-return]
    spec_name = (spec or {}).get("name") if isinstance(spec, dict | None) else None
    if spec_name != definition.process_id:
        raise ValueError(
            f"stored state belongs to process '{spec_name}', not '{definition.process_id}'"
        )
    return dct  # type: ignore[no-any-return]


def _load(state: str, definition: Definition, engine: PythonScriptEngine) -> Any:
    ser = _serializer()
    dct = _parse(state, definition)
    ser.migrate(dct)
    _RESTORE_WITH.definition = definition
    try:
        workflow = ser.from_dict(dct)
    finally:
        _RESTORE_WITH.definition = None
    workflow.script_engine = engine
    return workflow


def compact_state(state: str, definition: Definition) -> str | None:
    """A state written in full (with its spec) in the compact form, or None if there is
    nothing to do: already compact, not this definition's process, or from an older
    serializer version (its next change through the runtime migrates and compacts it).

    The runtime never reads an embedded spec (it restores with the definition's parsed
    one), so leaving it out changes nothing about how the instance runs."""
    try:
        dct = json.loads(state)
    except ValueError:
        return None
    spec = dct.get("spec") if isinstance(dct, dict) else None
    if not isinstance(spec, dict) or _SPEC_REF in spec or spec.get("name") != definition.process_id:
        return None
    if dct.get(BpmnWorkflowSerializer.VERSION_KEY) != _serializer().VERSION:
        return None
    if set(dct.get("subprocess_specs") or {}) - set(definition._subprocess_specs):
        return None
    dct["spec"] = _spec_ref(definition)
    dct["subprocess_specs"] = {}
    return json.dumps(dct)


def full_state(state: str, definition: Definition) -> str:
    """The state with its process spec put back: what a plain SpiffWorkflow serializer loads
    (for exports and debugging; the runtime never needs it)."""
    dct = _parse(state, definition)
    if isinstance(dct.get("spec"), dict) and _SPEC_REF in dct["spec"]:
        dct["spec"], dct["subprocess_specs"] = _full_specs(definition)
    ser = _serializer()
    ser.registry._encoder_mode = True
    try:
        return json.dumps(dct, cls=ser._encoder_cls)
    finally:
        ser.registry._encoder_mode = False


# -- evaluating assignee and due date --------------------------------------------------------


@lru_cache(maxsize=4096)
def _unwrap(raw: str) -> tuple[str, bool]:
    """Strip a JUEL-style `${...}` wrapper; the flag says it was explicitly an expression."""
    text = raw.strip()
    if (text.startswith("${") or text.startswith("#{")) and text.endswith("}"):
        return text[2:-1].strip(), True
    return text, False


def _is_data_expression(text: str, data: Mapping[str, Any]) -> bool:
    if sandbox.check_source(text) is not None:
        return False
    names = sandbox.used_names(text)
    return bool(names & data.keys()) and names <= (data.keys() | sandbox.RESERVED_NAMES)


def _end_of_local_day(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), LOCAL_TZ).astimezone(UTC)


def _as_due(value: Any, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        aware: datetime = value if value.tzinfo is not None else value.replace(tzinfo=LOCAL_TZ)
        return aware.astimezone(UTC)
    if isinstance(value, date):
        return _end_of_local_day(value)
    if isinstance(value, timedelta):
        return now + value
    if isinstance(value, str):
        text = value.strip()
        if text.upper().startswith("P"):
            parsed = TimerEventDefinition.parse_iso_duration(text)
            delta: timedelta = TimerEventDefinition.get_timedelta_from_start(parsed, now)
            return now + delta
        if len(text) == 10:
            return _end_of_local_day(date.fromisoformat(text))
        return _as_due(datetime.fromisoformat(text), now)
    raise ValueError(f"cannot read a due date from {value!r}")


# -- the runtime ------------------------------------------------------------------------------


class WorkflowRuntime:
    """Runs instances of parsed Definitions against serialized TEXT state."""

    def __init__(self, clock: Clock, *, script_time_limit: float = sandbox.DEFAULT_TIME_LIMIT):
        self._clock = clock
        self._time_limit = script_time_limit
        self._engine = _SandboxScriptEngine(script_time_limit)

    # public API ---------------------------------------------------------------------------

    def start(self, definition: Definition, data: Mapping[str, Any]) -> Snapshot:
        """Start a new instance with initial data and run it to its first wait."""
        clean = self._clean(data)
        with using_clock(self._clock):
            workflow = BpmnWorkflow(
                definition._spec, dict(definition._subprocess_specs), script_engine=self._engine
            )

            def seed() -> None:
                for task in workflow.get_tasks(state=TaskState.READY):
                    task.data.update(clean)

            error = self._advance(workflow, seed)
            return self._finish(definition, workflow, error, previous="")

    def load(self, definition: Definition, state: str) -> Snapshot:
        """Describe a stored instance without changing it."""
        with using_clock(self._clock):
            try:
                workflow = _load(state, definition, self._engine)
            except Exception as exc:
                return self._broken(state, f"cannot load workflow state: {exc}")
            return self._snapshot(definition, workflow, state, None)

    def complete(
        self, definition: Definition, state: str, task_id: str, data: Mapping[str, Any]
    ) -> Snapshot:
        """Complete one READY human task with (validated) form data and run on."""
        clean = self._clean(data)
        with using_clock(self._clock):
            workflow = _load(state, definition, self._engine)
            task = self._ready_task(workflow, task_id)

            def run() -> None:
                task.data.update(clean)
                task.run()

            error = self._advance(workflow, run)
            return self._finish(definition, workflow, error, previous=state)

    def set_data(self, definition: Definition, state: str, data: Mapping[str, Any]) -> Snapshot:
        """Merge values into every open task's data and the workflow data, then run on."""
        clean = self._clean(data)
        with using_clock(self._clock):
            workflow = _load(state, definition, self._engine)

            def merge() -> None:
                workflow.data.update(clean)
                for task in self._iter_tasks(workflow):
                    if task.state & (TaskState.READY | TaskState.WAITING):
                        task.data.update(clean)

            error = self._advance(workflow, merge)
            return self._finish(definition, workflow, error, previous=state)

    def fire_timers(self, definition: Definition, state: str) -> Snapshot:
        """Fire every timer due as of clock.now() and run on."""
        with using_clock(self._clock):
            workflow = _load(state, definition, self._engine)
            error = self._advance(workflow, None)
            return self._finish(definition, workflow, error, previous=state)

    def cancel(self, definition: Definition, state: str) -> Snapshot:
        """Cancel the instance: status 'cancelled', no open tasks, no timers."""
        with using_clock(self._clock):
            workflow = _load(state, definition, self._engine)
            try:
                workflow.cancel()
            except Exception as exc:
                return self._broken(state, f"cannot cancel: {type(exc).__name__}: {exc}")
            workflow.data[_CANCELLED_KEY] = True
            return self._finish(definition, workflow, None, previous=state)

    # internals ----------------------------------------------------------------------------

    @staticmethod
    def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
        sandbox.check_data_keys(data)
        result: dict[str, Any] = sandbox.jsonable(data)
        return result

    @staticmethod
    def _iter_tasks(workflow: Any) -> list[Any]:
        tasks = list(workflow.tasks.values())
        for sub in workflow.subprocesses.values():
            tasks.extend(sub.tasks.values())
        return tasks

    def _ready_task(self, workflow: Any, task_id: str) -> Any:
        try:
            task = workflow.get_task_from_id(UUID(str(task_id)))
        except Exception:
            raise TaskNotReadyError(f"task {task_id} does not exist in this instance") from None
        if task is None or task.state != TaskState.READY or not task.task_spec.manual:
            raise TaskNotReadyError(f"task {task_id} is not ready")
        return task

    def _advance(self, workflow: Any, action: Callable[[], None] | None) -> str | None:
        """Run `action`, engine steps and due timers; return an error message or None."""
        if workflow.data.get(_CANCELLED_KEY):
            return None
        try:
            if action is not None:
                action()
            workflow.do_engine_steps()
            # Fire what is due now; loop because a fired timer can lead to another due one.
            for _ in range(100):
                with firing():
                    workflow.refresh_timers()
                # do_engine_steps() ends with its own refresh_timers(): a timer already past
                # becomes READY there without being run, so run on while engine work is READY.
                if not any(
                    t.state == TaskState.READY and not t.task_spec.manual
                    for t in self._iter_tasks(workflow)
                ):
                    break
                workflow.do_engine_steps()
        except ScriptError as exc:
            return str(exc)
        except RecursionError:
            return "the process is too deep to run (recursion limit)"
        except Exception as exc:
            return _describe_failure(exc)
        return None

    def _finish(
        self, definition: Definition, workflow: Any, error: str | None, *, previous: str
    ) -> Snapshot:
        if error is not None:
            workflow.data[_ERROR_KEY] = error
        try:
            state = _dump(workflow, definition)
        except Exception as exc:
            # Never lose the stored instance: keep the previous state, report the reason.
            return self._broken(previous, f"cannot save workflow state: {exc}")
        return self._snapshot(definition, workflow, state, error)

    @staticmethod
    def _broken(state: str, message: str) -> Snapshot:
        return Snapshot(
            state=state,
            status="error",
            error=message,
            tasks=(),
            next_timer_at=None,
            data=MappingProxyType({}),
            completed=(),
            active=(),
        )

    def _snapshot(
        self, definition: Definition, workflow: Any, state: str, error: str | None
    ) -> Snapshot:
        tasks = self._iter_tasks(workflow)
        finished: list[tuple[float, str]] = []
        active: list[str] = []
        humans: list[HumanTask] = []
        has_error_task = False
        for task in tasks:
            spec = task.task_spec
            bpmn_id = getattr(spec, "bpmn_id", None)
            task_state = task.state
            if task_state == TaskState.ERROR:
                has_error_task = True
            if bpmn_id is None:
                continue
            if task_state == TaskState.COMPLETED:
                finished.append((task.last_state_change, bpmn_id))
            elif task_state & _ACTIVE_STATES:
                active.append(bpmn_id)
                if task_state == TaskState.READY and spec.manual:
                    humans.append(self._human_task(definition, task))

        stored_error = workflow.data.get(_ERROR_KEY)
        if workflow.data.get(_CANCELLED_KEY):
            status = "cancelled"
        elif error or stored_error or has_error_task:
            status = "error"
            error = error or stored_error or "a task of this instance failed"
        elif workflow.completed or workflow.is_completed():
            status = "completed"
        elif humans:
            status = "running"
        else:
            status = "waiting"

        finished.sort(key=lambda item: item[0])
        completed: list[str] = []
        seen: set[str] = set()
        for _when, bpmn_id in finished:
            if bpmn_id not in seen:
                seen.add(bpmn_id)
                completed.append(bpmn_id)

        return Snapshot(
            state=state,
            status=status,
            error=error if status == "error" else None,
            tasks=tuple(humans),
            next_timer_at=None if status == "cancelled" else _next_timer(workflow),
            data=MappingProxyType(_visible_data(workflow)),
            completed=tuple(completed),
            active=tuple(dict.fromkeys(active)),
        )

    def _human_task(self, definition: Definition, task: Any) -> HumanTask:
        spec = task.task_spec
        bpmn_id = spec.bpmn_id
        meta = definition.user_tasks.get(bpmn_id) or _plain_task_spec(bpmn_id, spec.bpmn_name)
        data = task.data
        return HumanTask(
            id=str(task.id),
            bpmn_id=bpmn_id,
            name=meta.name,
            candidate_roles=meta.candidate_roles,
            assignee=self._assignee(meta, data),
            unit_id=_as_int(data.get(meta.unit_field)),
            due_at=self._due_at(meta, data),
            form=meta.form,
            data=MappingProxyType(dict(data)),
        )

    def _assignee(self, meta: UserTaskSpec, data: Mapping[str, Any]) -> str | None:
        if not meta.assignee:
            return None
        text, explicit = _unwrap(meta.assignee)
        if not explicit and not _is_data_expression(text, data):
            return text
        try:
            value = sandbox.evaluate(
                text,
                data,
                element=f"User task '{meta.bpmn_id}' assignee",
                time_limit=self._time_limit,
            )
        except ScriptError:
            return None  # an unset assignee variable leaves the task to its candidate roles
        return None if value is None or value == "" else str(value)

    def _due_at(self, meta: UserTaskSpec, data: Mapping[str, Any]) -> datetime | None:
        if not meta.due_date:
            return None
        text, explicit = _unwrap(meta.due_date)
        now = self._clock.now().astimezone(UTC)
        try:
            if not explicit and is_iso_literal(text):
                return _as_due(text, now)
            value = sandbox.evaluate(
                text,
                data,
                element=f"User task '{meta.bpmn_id}' due date",
                time_limit=self._time_limit,
            )
            return _as_due(value, now)
        except Exception:
            # A due date that cannot be computed yet (data missing) is simply not set.
            return None


@lru_cache(maxsize=1024)
def _plain_task_spec(bpmn_id: str, name: str | None) -> UserTaskSpec:
    """Metadata for manual/none tasks, which have no Camunda form or roles."""
    return UserTaskSpec(
        bpmn_id=bpmn_id,
        name=name or bpmn_id,
        candidate_roles=(),
        assignee=None,
        due_date=None,
        unit_field="unit_id",
        form=(),
        documentation=None,
    )


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _visible_data(workflow: Any) -> dict[str, Any]:
    data = {k: v for k, v in workflow.data.items() if not k.startswith("_")}
    data.pop("data_objects", None)
    last = workflow.last_task
    if last is not None:
        data.update(last.data)
    return data


def _next_timer(workflow: Any) -> datetime | None:
    earliest: datetime | None = None
    for event in workflow.waiting_events():
        if event.event_type not in _TIMER_EVENT_TYPES or not event.value:
            continue
        try:
            when = TimerEventDefinition.get_datetime(str(event.value)).astimezone(UTC)
        except Exception:  # noqa: S112 - an unreadable pending value is not a due time
            continue
        if earliest is None or when < earliest:
            earliest = when
    return earliest


def _describe_failure(exc: BaseException) -> str:
    task = getattr(exc, "task", None)
    spec = getattr(exc, "task_spec", None) or getattr(task, "task_spec", None)
    where = ""
    if spec is not None:
        where = f"{_element_label(task) if task is not None else repr(spec.name)}: "
    message = str(exc) or type(exc).__name__
    notes = getattr(exc, "__notes__", None)
    if notes:
        message += " (" + "; ".join(str(n) for n in notes) + ")"
    return f"{where}{message}"
