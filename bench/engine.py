"""Engine ratio (issue 2, issue 10 §1): one task completion through the HTTP API on SQLite,
against the raw SpiffWorkflow cycle (deserialize + complete + serialize, in memory)."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState

from bench.common import report, summary, timed

CHAIN = Path(__file__).resolve().parent / "fixtures" / "bench_chain.bpmn"
STEPS = 4


def form(step: int) -> dict[str, str]:
    return {f"note{step}": "已核实，按程序办理", f"done_on{step}": "2026-03-02"}


def raw_cycle_ms(runs: int) -> dict[str, float]:
    """Median of deserialize + fill form + run + engine steps + serialize, over each step's state."""
    parser = CamundaParser()
    parser.add_bpmn_xml(etree.fromstring(CHAIN.read_bytes()), str(CHAIN))
    spec = parser.get_spec("bench_chain")
    subs = parser.get_subprocess_specs("bench_chain")
    ser = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    wf = BpmnWorkflow(spec, subs)
    wf.do_engine_steps()
    states = []
    for step in range(1, STEPS + 1):
        states.append(ser.serialize_json(wf))
        task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
        task.data.update(form(step))
        task.run()
        wf.do_engine_steps()
    samples: list[float] = []
    cpu: list[float] = []
    for step, state in enumerate(states, start=1):

        def cycle(state: str = state, step: int = step) -> None:
            w = ser.deserialize_json(state)
            t = w.get_tasks(state=TaskState.READY, manual=True)[0]
            t.data.update(form(step))
            t.run()
            w.do_engine_steps()
            ser.serialize_json(w)

        samples += timed(cycle, runs // STEPS)
        start_cpu = time.process_time()
        for _ in range(runs // STEPS):
            cycle()
        cpu.append((time.process_time() - start_cpu) * 1000 / (runs // STEPS))
    return {**summary(samples), "cpu_ms": round(statistics.median(cpu), 3)}


def full_stack_ms(
    cases: int, profiler: cProfile.Profile | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """POST /api/v1/tasks/{id}/complete through the WSGI app in process, on a SQLite file.

    With `profiler`, it runs only around the completions (not the seeding or the listing)."""
    from sqlalchemy import event, select

    from engine.bootstrap import build_services
    from engine.clock import SettableClock
    from engine.config import Settings
    from engine.persistence.migrate import upgrade
    from engine.persistence.models import Unit
    from engine.services import demo
    from engine.services.access import SYSTEM
    from engine.services.cases import start_case
    from web.app import create_app

    folder = Path(tempfile.mkdtemp(prefix="fq-bench-"))
    settings = Settings.from_env(
        {},
        instance_dir=str(folder),
        database_url=f"sqlite:///{folder / 'bench.db'}",
        log_level="WARNING",
    )
    clock = SettableClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    services = build_services(settings, clock, deploy=False)
    upgrade(services.engine)
    services.definitions.deploy_folder(services, settings.workflows_dir)
    demo.seed(services, with_cases=False)
    with services.uow() as uow:
        services.definitions.deploy(uow, CHAIN.read_bytes(), filename=CHAIN.name, at=clock.now())
        street = uow.session.scalar(select(Unit.id).where(Unit.code == "S01"))
        for i in range(cases):
            start_case(
                services,
                uow,
                SYSTEM,
                services.case_types.get("bench_chain"),
                unit_id=street,
                data={},
                title=f"bench {i}",
                now=clock.now(),
            )
        uow.commit()
    app = create_app(services=services)
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/token", json={"username": "handler", "password": "demo1234"}
    ).get_json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    statements = {"count": 0}

    @event.listens_for(services.engine, "before_cursor_execute")
    def _count(*_args: object) -> None:
        statements["count"] += 1

    samples: list[float] = []
    cpu: list[float] = []
    completions = 0
    for step in range(1, STEPS + 1):
        listing = client.get("/api/v1/tasks?per_page=200&page=1", headers=headers).get_json()
        ids = [t["id"] for t in listing["items"]]
        page = 2
        while len(ids) < listing["total"]:
            more = client.get(f"/api/v1/tasks?per_page=200&page={page}", headers=headers).get_json()
            ids += [t["id"] for t in more["items"]]
            page += 1
        before = statements["count"]
        for task_id in ids:
            if profiler is not None:
                profiler.enable()
            start, start_cpu = time.perf_counter(), time.process_time()
            resp = client.post(
                f"/api/v1/tasks/{task_id}/complete", json={"data": form(step)}, headers=headers
            )
            if profiler is not None:
                profiler.disable()
            samples.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
            if resp.status_code != 200:
                raise SystemExit(f"completion failed: {resp.status_code} {resp.get_json()}")
        completions += len(ids)
        statements["in_completions"] = statements.get("in_completions", 0) + (
            statements["count"] - before
        )
    floors = floor_ms(client, headers, services, runs=max(200, completions // 2))
    services.engine.dispose()
    return summary(samples[STEPS * 5 :]), {
        **floors,
        "completions": completions,
        # Mean over the four steps; the last one opens no next task (no task insert and no
        # notification), the others do.
        "sql_per_completion": round(statements["in_completions"] / max(completions, 1), 1),
        "cpu_median_ms": round(statistics.median(cpu[STEPS * 5 :]), 3),
    }


def floor_ms(client: Any, headers: dict[str, str], services: Any, runs: int) -> dict[str, Any]:
    """What any authenticated write through this stack costs before the completion's own work.

    - `request`: GET /api/v1/me through the same app and client: Flask and werkzeug, the
      bearer-token check with its user lookup, flask-smorest's response schema.
    - `commit`: one durable write of a case-sized row on the same SQLite file, straight on the
      driver (no SQLAlchemy): BEGIN IMMEDIATE, UPDATE of a row holding a workflow state of
      the bench's size (a scratch table: the value changes each time, else SQLite writes no
      page), COMMIT with the configured synchronous mode (the fsync).
    """
    from sqlalchemy import text

    def request() -> None:
        if client.get("/api/v1/me", headers=headers).status_code != 200:
            raise SystemExit("GET /api/v1/me failed")

    raw = services.engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        state = dbapi.execute("SELECT state FROM cases LIMIT 1").fetchone()[0]
        dbapi.execute("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
        dbapi.execute("INSERT INTO bench_floor VALUES (1, ?)", (state,))
        writes = iter(range(1_000_000_000))

        def commit() -> None:
            dbapi.execute("BEGIN IMMEDIATE")
            dbapi.execute(
                "UPDATE bench_floor SET state = ? WHERE id = 1", (f"{next(writes)}{state}",)
            )
            dbapi.execute("COMMIT")

        with services.engine.connect() as conn:
            sync = conn.execute(text("PRAGMA synchronous")).scalar()
        return {
            "request_ms": summary(timed(request, runs))["median_ms"],
            "commit_ms": summary(timed(commit, runs))["median_ms"],
            "state_bytes": len(state),
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, str(sync)),
        }
    finally:
        raw.close()


def _owner(filename: str, function: str) -> str:
    """Who a profiled function belongs to: a library, Fengqiao, the SQLite driver or Python."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    for ours in ("engine", "web", "notifications"):
        if f"/{ours}/" in filename and "/lib/python" not in filename:
            return "fengqiao"
    if filename == "~":
        if "sqlite3" in function:
            return "SQLite (driver and database, incl. the fsync)"
        return "Python built-ins"
    return "Python standard library"


def profile_shares(cases: int) -> list[dict[str, Any]]:
    """Where a full-stack completion's time goes, by owner (cProfile self time, so it
    over-weights code made of many small Python calls: read it as shares, not ms)."""
    profiler = cProfile.Profile()
    full_stack_ms(cases, profiler)
    shares: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, self_time, _ct, _callers) in stats.items():
        owner = _owner(filename, function)
        shares[owner] = shares.get(owner, 0.0) + self_time
    total = sum(shares.values()) or 1.0
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    return [{"owner": owner, "share_pct": round(t * 100 / total, 1)} for owner, t in ranked[:12]]


def statement_costs(pairs: int = 5000, rounds: int = 5) -> dict[str, float]:
    """µs per statement for an UPDATE + SELECT pair by primary key on an in-memory SQLite
    table: through SQLAlchemy Core with a cached statement, and straight on sqlite3 (what a
    hand-written hot path would pay). Medians of `rounds` rounds."""
    import sqlite3

    from sqlalchemy import Column, Integer, MetaData, Table, Text, bindparam, create_engine
    from sqlalchemy import select as sa_select
    from sqlalchemy import update as sa_update

    engine = create_engine("sqlite://")
    meta = MetaData()
    rows = Table(
        "t", meta, Column("id", Integer, primary_key=True), Column("s", Text), Column("v", Integer)
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(rows.insert(), [{"id": i, "s": "x", "v": 0} for i in range(100)])
    write = (
        sa_update(rows).where(rows.c.id == bindparam("i")).values(s=bindparam("sv"), v=rows.c.v + 1)
    )
    read = sa_select(rows.c.s, rows.c.v).where(rows.c.id == bindparam("i"))

    def core() -> float:
        with engine.begin() as conn:
            start = time.perf_counter()
            for k in range(pairs):
                conn.execute(write, {"i": k % 100, "sv": str(k)})
                conn.execute(read, {"i": k % 100}).all()
            return (time.perf_counter() - start) * 1e6 / (2 * pairs)

    driver = sqlite3.connect(":memory:")
    driver.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, v INTEGER)")
    driver.executemany("INSERT INTO t VALUES (?, 'x', 0)", [(i,) for i in range(100)])

    def bare() -> float:
        start = time.perf_counter()
        for k in range(pairs):
            driver.execute("UPDATE t SET s = ?, v = v + 1 WHERE id = ?", (str(k), k % 100))
            driver.execute("SELECT s, v FROM t WHERE id = ?", (k % 100,)).fetchall()
        return (time.perf_counter() - start) * 1e6 / (2 * pairs)

    return {
        "core_us": round(statistics.median(core() for _ in range(rounds)), 1),
        "driver_us": round(statistics.median(bare() for _ in range(rounds)), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Print the engine ratio table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the ratio, print where a completion's time goes, by library",
    )
    args = parser.parse_args(argv)
    cases = 50 if args.quick else 200
    if args.profile:
        shares = profile_shares(cases)
        costs = statement_costs()
        raw_ms = raw_cycle_ms(400)["median_ms"]
        report(
            "engine_profile",
            shares,
            [
                "cProfile self time of the completions, by owner",
                f"one statement by primary key (in-memory SQLite): SQLAlchemy Core, cached "
                f"{costs['core_us']} us; sqlite3 driver {costs['driver_us']} us; "
                f"raw SpiffWorkflow cycle {raw_ms} ms (a Core statement is "
                f"{costs['core_us'] / 10 / raw_ms:.1f}% of it)",
            ],
        )
        return {}
    raw = raw_cycle_ms(400 if args.quick else 2000)
    full, info = full_stack_ms(cases)
    ratio = full["median_ms"] / raw["median_ms"]
    cpu_ratio = info["cpu_median_ms"] / raw["cpu_ms"]
    floor = info["request_ms"] + info["commit_ms"] + raw["median_ms"]
    rows = [
        {"measure": "raw SpiffWorkflow cycle (in memory)", **raw},
        {"measure": "full stack: POST /tasks/{id}/complete (SQLite, WSGI in process)", **full},
    ]
    verdict = "met" if ratio <= 3 else "NOT met"
    report(
        "engine",
        rows,
        [
            f"ratio full/raw (medians): {ratio:.2f}  (target <= 3: {verdict})",
            f"completions: {info['completions']}, SQL statements per completion: {info['sql_per_completion']}",
            f"CPU time: full stack {info['cpu_median_ms']:.3f} ms (median) / raw "
            f"{raw['cpu_ms']:.3f} ms = {cpu_ratio:.2f} (less disturbed by other processes "
            "than wall time; the gap to wall time is mostly the fsync of the commit)",
            f"floor of the stack, measured apart: an authenticated GET /api/v1/me "
            f"{info['request_ms']:.3f} ms + a durable SQLite commit of one "
            f"{info['state_bytes']}-byte state (synchronous={info['synchronous']}, driver only) "
            f"{info['commit_ms']:.3f} ms + the raw cycle {raw['median_ms']:.3f} ms = "
            f"{floor:.3f} ms, {floor / raw['median_ms']:.2f}x the raw cycle before any of the "
            f"completion's own reads and writes; above the floor: {full['median_ms'] - floor:.3f} ms",
        ],
    )
    return {"ratio": ratio}


if __name__ == "__main__":
    main()
