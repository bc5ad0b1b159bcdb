"""BPMN timers: fire those that are due, loading only the instances that are due.

A due timer is claimed (`FOR UPDATE SKIP LOCKED` on PostgreSQL), its instance advanced by the
runtime, and the result written back with the case's audit event, task rows and timer row,
a batch of cases per transaction.

A busy tick (hundreds of due timers) in a single-threaded process (`fengqiao tick`) runs the
SpiffWorkflow part of each case (load, run, save: CPU-bound, ~1.3 ms for a petition) in
worker processes forked for the tick, one per core, while this process claims, reads and
writes; a threaded scheduler never forks (see `_fork_is_safe`). The workers run ahead: while
a batch is written here, they already fire the next due instances as read then. The
runtime's result depends only on the definition, the stored state and the clock, so a result
is used only if the claimed case still has the definition and row version it was computed
from (every write of a case bumps its version); otherwise, for a definition the workers lack,
or if they are lost, the case is fired here as before. Everything that touches the database
stays in this process.
"""

from __future__ import annotations

import copyreg
import io
import multiprocessing
import os
import pickle
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor
from datetime import datetime
from types import MappingProxyType
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value

from engine.bootstrap import Services
from engine.errors import ConflictError
from engine.persistence.db import UnitOfWork, conflicts_as_409
from engine.persistence.models import Case, Task, Timer
from engine.services.access import SYSTEM
from engine.services.audit import record_case_event
from engine.services.case_types import HookContext
from engine.services.cases import LoadedRows, apply_snapshot
from engine.workflow import Definition, Snapshot, WorkflowRuntime

# Cases fired per transaction: one commit (one fsync on SQLite) per batch, not per case.
BATCH = 50
# From this many due timers on, their workflow runs go to forked worker processes.
PARALLEL_FROM = 200
# At most this many workers (and never more than the machine has cores).
MAX_WORKERS = 4
# Workers run at a lower CPU priority than the process that forked them.
WORKER_NICENESS = 5


def fire_due_timers(
    services: Services,
    now: datetime | None = None,
    *,
    limit: int = 10_000,
    batch: int = BATCH,
    parallel_from: int = PARALLEL_FROM,
) -> int:
    """Fire every timer due at `now`, a batch of cases per transaction; returns cases advanced.

    A batch is written with one flush. Should it lose a race (a case changed meanwhile, a
    unique key taken), it is rolled back and claimed again with a savepoint per case, so a
    lost race skips only that case. With `parallel_from` or more timers due, and several
    cores, the workflow runs happen in worker processes (see the module docstring)."""
    now = now or services.clock.now()
    fired = 0
    skipped: set[int] = set()
    careful = False
    pool: _Workers | None = None
    pool_checked = False
    try:
        while fired + len(skipped) < limit:
            with services.uow() as uow:
                timers = _claim(uow, now, skipped, min(batch, limit - fired - len(skipped)))
                if not timers:
                    return fired
                if not pool_checked and len(timers) == batch:
                    pool_checked = True
                    pool = _Workers.start(services, uow, now, parallel_from)
                if careful:
                    advanced = _fire_each(services, uow, timers, now, skipped)
                else:
                    again: set[int] = set()
                    try:
                        with conflicts_as_409():
                            advanced = _fire_all(services, uow, timers, now, again, pool)
                            uow.session.flush()
                    except ConflictError:
                        careful = True  # the batch rolls back; claim it again, case by case
                        continue
                    except _WorkersLost:
                        assert pool is not None
                        pool.close()
                        pool = None  # the batch rolls back; fire it again, in this process
                        continue
                    skipped |= again
                uow.commit()
                careful = False
                fired += advanced
        return fired
    finally:
        if pool is not None:
            pool.close()


def _claim(uow: UnitOfWork, now: datetime, skipped: set[int], count: int) -> list[Timer]:
    """The next `count` due timers, locked for this transaction on PostgreSQL."""
    stmt = select(Timer).where(Timer.fire_at <= now)
    if skipped:
        stmt = stmt.where(Timer.case_id.not_in(skipped))
    stmt = stmt.order_by(Timer.fire_at, Timer.case_id).limit(count)
    if uow.dialect == "postgresql":
        # Two schedulers never fire the same instance: each claims rows the other skips.
        stmt = stmt.with_for_update(skip_locked=True)
    return list(uow.session.scalars(stmt))


def _load(
    uow: UnitOfWork, timers: Sequence[Timer], *, detach: bool = False, pool: _Workers | None = None
) -> tuple[dict[int, Case], dict[int, list[Task]]]:
    """The claimed timers' cases and their open tasks.

    `detach`: the cases leave the session (see `_write_cases`). With `pool`, a case's stored
    state is read only if the workers are not already firing it as it is (same definition,
    same row version: every write of a case bumps its version); those reads go to the pool."""
    session = uow.session
    ids = [t.case_id for t in timers]
    stmt = select(Case).where(Case.id.in_(ids))
    if pool is not None:
        stmt = stmt.options(defer(Case.state))
    cases = {c.id: c for c in session.scalars(stmt)}
    if pool is not None:
        missing = [c.id for c in cases.values() if not pool.has(c)]
        if missing:
            for cid, state in session.execute(
                select(Case.id, Case.state).where(Case.id.in_(missing))
            ):
                set_committed_value(cases[cid], "state", state)
            pool.submit([_job(cases[cid]) for cid in missing])
    if detach:
        for case in cases.values():
            session.expunge(case)
    open_tasks: dict[int, list[Task]] = defaultdict(list)
    for task in session.scalars(select(Task).where(Task.case_id.in_(ids), Task.status == "open")):
        open_tasks[task.case_id].append(task)
    return cases, open_tasks


def _job(case: Case) -> tuple[int, int, int, str]:
    """What a worker needs to fire a case: (case id, definition id, row version, state)."""
    return case.id, case.definition_id, case.version, case.state


def _write_cases(uow: UnitOfWork, cases: Sequence[Case]) -> None:
    """Write detached cases' changes back: an executemany per set of changed columns, each
    row bumping its version only if unchanged since read, as the ORM does one row at a time.

    A row changed meanwhile raises ConflictError (the caller redoes the batch case by case)."""
    mapper = sa_inspect(Case)
    table = cast(Table, Case.__table__)
    version = table.c.version
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        state = sa_inspect(case)
        keys = tuple(sorted(state.committed_state))  # the attributes set since loaded
        params = {f"v_{k}": getattr(case, k) for k in keys}
        params.update(b_id=case.id, b_version=case.version)
        groups[keys].append(params)
    for keys, rows in groups.items():
        columns: dict[str, Any] = {
            mapper.attrs[k].columns[0].name: bindparam(f"v_{k}") for k in keys
        }
        columns["version"] = version + 1
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), version == bindparam("b_version"))
            .values(columns)
        )
        if uow.session.connection().execute(stmt, rows).rowcount != len(rows):
            raise ConflictError("a case changed meanwhile; reload and try again")


def _fire_all(
    services: Services,
    uow: UnitOfWork,
    timers: Sequence[Timer],
    now: datetime,
    again: set[int],
    pool: _Workers | None,
) -> int:
    """Fire a batch in the open transaction, no savepoints; `again` gets cases still due.

    The cases are detached and written back together by `_write_cases`; the other rows
    (audit events, tasks, timers, notifications) are flushed by the caller."""
    if pool is not None:
        pool.keep([t.case_id for t in timers])
    cases, open_tasks = _load(uow, timers, detach=True, pool=pool)
    ctx = HookContext(services, uow, SYSTEM, now)
    present = [(t, cases[t.case_id]) for t in timers if t.case_id in cases]
    for timer in timers:
        if timer.case_id not in cases:
            uow.session.delete(timer)
    if pool is not None:
        pool.submit(_peek(uow, now, [t.case_id for t in timers], len(timers)))
    for timer, case in present:
        snapshot = pool.take(case) if pool is not None else None
        if _fire(services, ctx, case, timer, open_tasks[case.id], snapshot):
            again.add(case.id)
    _write_cases(uow, [c for _t, c in present])
    return len(present)


def _peek(
    uow: UnitOfWork, now: datetime, claimed: Sequence[int], count: int
) -> list[tuple[int, int, int, str]]:
    """The workers' jobs (see `_job`) for the next due instances after `claimed`, read
    unlocked: what the next batch will most likely claim."""
    rows = uow.session.execute(
        select(Case.id, Case.definition_id, Case.version, Case.state)
        .select_from(Timer)
        .join(Case, Case.id == Timer.case_id)
        .where(Timer.fire_at <= now, Timer.case_id.not_in(claimed))
        .order_by(Timer.fire_at, Timer.case_id)
        .limit(count)
    ).all()
    return [(cid, did, version, state) for cid, did, version, state in rows]


def _fire_each(
    services: Services,
    uow: UnitOfWork,
    timers: Sequence[Timer],
    now: datetime,
    skipped: set[int],
) -> int:
    """Fire a batch with a savepoint per case; a case that loses a race is skipped."""
    session = uow.session
    cases, open_tasks = _load(uow, timers)
    ctx = HookContext(services, uow, SYSTEM, now)
    advanced = 0
    for timer in timers:
        case = cases.get(timer.case_id)
        if case is None:
            session.delete(timer)
            continue
        try:
            with conflicts_as_409(), session.begin_nested():
                due_again = _fire(services, ctx, case, timer, open_tasks[case.id], None)
            if due_again:
                skipped.add(case.id)
            advanced += 1
        except ConflictError:
            skipped.add(case.id)
    return advanced


def _fire(
    services: Services,
    ctx: HookContext,
    case: Case,
    timer: Timer,
    open_tasks: Sequence[Task],
    snapshot: Snapshot | None,
) -> bool:
    """Fire one case's due timers and write the result back; True if a timer is still due.

    `snapshot` is the runtime's result when a worker already computed it from `case.state`."""
    if snapshot is None:
        deployed = services.definitions.get(ctx.uow, case.definition_id)
        snapshot = services.runtime.fire_timers(deployed.definition, case.state)
    record_case_event(
        ctx.uow,
        case,
        "timer.fired",
        actor_id=None,
        at=ctx.now,
        detail={"fire_at": timer.fire_at.isoformat()},
    )
    apply_snapshot(
        ctx,
        case,
        services.case_types.get(case.case_type),
        snapshot,
        loaded=LoadedRows(open_tasks=open_tasks, timer=timer),
    )
    return snapshot.next_timer_at is not None and snapshot.next_timer_at <= ctx.now


# -- worker processes for a busy tick ---------------------------------------------------------

# Set in each forked worker by its initializer (inherited memory, nothing is pickled).
_WORKER: tuple[WorkflowRuntime, Mapping[int, Definition]] | None = None


class _WorkersLost(Exception):
    """The worker processes are gone; the batch is fired again without them."""


class _Workers:
    """Forked processes that run `runtime.fire_timers` on states sent to them.

    They are forked after every definition the due instances run on was parsed here, so they
    inherit the runtime (and its clock) and the parsed definitions; they never touch the
    database. A case whose definition they lack is fired here instead."""

    def __init__(self, executor: Executor, workers: int, known: set[int]) -> None:
        self._executor = executor
        self._workers = workers
        self._known = known  # the definitions the workers have
        # case id -> (definition id, row version, the future of its chunk, its place in it)
        self._jobs: dict[int, tuple[int, int, Future[list[bytes | None]], int]] = {}

    @classmethod
    def start(
        cls, services: Services, uow: UnitOfWork, now: datetime, parallel_from: int
    ) -> _Workers | None:
        """Workers for this tick, or None when too little is due or parallelism is unavailable."""
        workers = min(os.cpu_count() or 1, MAX_WORKERS)
        if workers < 2 or not _fork_is_safe():
            return None
        # One row per due timer, from the fire_at index (a GROUP BY makes SQLite scan cases).
        due = Counter(
            uow.session.scalars(
                select(Case.definition_id)
                .select_from(Timer)
                .join(Case, Case.id == Timer.case_id)
                .where(Timer.fire_at <= now)
            )
        )
        if due.total() < parallel_from:
            return None
        definitions = {
            definition_id: services.definitions.get(uow, definition_id).definition
            for definition_id in due
        }
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(services.runtime, definitions),
        )
        return cls(executor, workers, set(definitions))

    def keep(self, case_ids: Sequence[int]) -> None:
        """Drop the results of jobs for other cases (a batch claimed them: they were ahead)."""
        wanted = set(case_ids)
        self._jobs = {cid: job for cid, job in self._jobs.items() if cid in wanted}

    def has(self, case: Case) -> bool:
        """Whether the case is being fired as it is now (same definition and row version)."""
        job = self._jobs.get(case.id)
        return job is not None and job[:2] == (case.definition_id, case.version)

    def submit(self, jobs: Sequence[tuple[int, int, int, str]]) -> None:
        """Start firing jobs (see `_job`) not already under way, on definitions the workers
        have; a case fired here instead (its job not submitted) reads its state as usual."""
        new = [
            job
            for job in jobs
            if job[1] in self._known and self._jobs.get(job[0], (None, None))[:2] != job[1:3]
        ]
        size = max(1, -(-len(new) // (2 * self._workers)))
        for start in range(0, len(new), size):
            chunk = new[start : start + size]
            try:
                future = self._executor.submit(
                    _fire_chunk, [(did, st) for _c, did, _v, st in chunk]
                )
            except BrokenExecutor as exc:
                raise _WorkersLost from exc
            for place, (cid, did, version, _state) in enumerate(chunk):
                self._jobs[cid] = (did, version, future, place)

    def take(self, case: Case) -> Snapshot | None:
        """The runtime's `fire_timers` result for the case as it is now, or None (fire it here)."""
        job = self._jobs.pop(case.id, None)
        if job is None:
            return None
        definition_id, version, future, place = job
        if (definition_id, version) != (case.definition_id, case.version):
            return None  # computed from what the case held before it changed
        try:
            wire = future.result()[place]
        except BrokenExecutor as exc:  # a worker died (killed, out of memory)
            raise _WorkersLost from exc
        return None if wire is None else cast(Snapshot, pickle.loads(wire))  # noqa: S301

    def close(self) -> None:
        """Stop the workers (results not taken are dropped)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _fork_is_safe() -> bool:
    """Fork only a single-threaded process (`fengqiao tick`, a cron-style tick).

    A thread other than the forking one may hold a lock at the moment of the fork (logging,
    a connection pool, the definition cache), and the child would wait for it forever; so
    the threaded scheduler (`fengqiao scheduler`, `fengqiao serve`) fires in-process."""
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def _init_worker(runtime: WorkflowRuntime, definitions: Mapping[int, Definition]) -> None:
    global _WORKER  # one per worker process
    _WORKER = (runtime, definitions)
    # The scheduler process (and the database server) writing the batches is the critical
    # path; the workers, running ahead, take the CPU it leaves.
    os.nice(WORKER_NICENESS)


def _fire_chunk(jobs: list[tuple[int, str]]) -> list[bytes | None]:
    """In a worker: fire each (definition id, state); each Snapshot pickled, None if unknown."""
    assert _WORKER is not None
    runtime, definitions = _WORKER
    out: list[bytes | None] = []
    for definition_id, state in jobs:
        definition = definitions.get(definition_id)
        out.append(None if definition is None else _dumps(runtime.fire_timers(definition, state)))
    return out


def _read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """Unpickling: a read-only view again (the type itself cannot be named by pickle)."""
    return MappingProxyType(items)


def _reduce_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _read_only, (dict(proxy),)


def _dumps(snapshot: Snapshot) -> bytes:
    """Pickle a Snapshot, read-only mappings included (plain pickle refuses mappingproxy)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, MappingProxyType: _reduce_proxy}
    pickler.dump(snapshot)
    return buffer.getvalue()
