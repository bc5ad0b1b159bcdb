"""Scheduler (issue 10 §4): one tick over 1,000,000 open timers and deadlines.

The database holds ~1,000 real open petitions (clones of the demo's, with their workflow
state, tasks and deadlines) whose timers and deadlines are due at the tick, and fills up to
1M open cases with timers and pending deadlines that are not due (bulk SQL; their state is
never read). One tick (`fengqiao tick`: every job once) runs in a fresh process, which reports
its wall time and peak RSS, and the CPU and peak RSS of the worker processes it forks to run
the due instances' workflows (engine/services/timers.py). A second tick right after finds
nothing due. The seeded database is vacuumed and checkpointed first (a steady state: the
seed's own autovacuum and checkpoint would otherwise run during the tick), and the pair of
ticks runs on TICK_RUNS fresh copies of it: the median busy tick is the figure, the range
is printed beside it (this VM's speed drifts). Then a month's screening rounds are opened
for ~1,000 reporting units.
Targets: tick <= 2 s and <= 200 MB peak; nothing due <= 50 ms; screening month <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from bench.common import report
from bench.growth import PG_ADMIN_URL, build, pg_database
from bench.seed import add_streets, clone_cases, fix_sequences, load_templates

TICK_SCRIPT = r"""
import json, os, resource, sys, time
from datetime import datetime
from engine.bootstrap import build_services
from engine.clock import SettableClock
from engine.config import Settings
from engine.services import jobs

url, now_iso = sys.argv[1], sys.argv[2]
settings = Settings.from_env({}, database_url=url, log_level="WARNING", instance_dir=sys.argv[3])
clock = SettableClock(datetime.fromisoformat(now_iso))
services = build_services(settings, clock, deploy=False)
with services.uow() as uow:  # connect and warm the definition cache outside the timing
    pass
def peak_rss_kb():
    # VmHWM: this process's own peak. ru_maxrss survives exec on Linux, so in a process the
    # bench spawned it starts at the bench's (larger) peak.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

out = []
for _ in range(2):
    base_rss = peak_rss_kb()
    per_job = {}
    cpu = os.times()
    start = time.perf_counter()
    for job in jobs.JOBS:
        t = time.perf_counter()
        count = job.run(services, clock.now())
        per_job[job.name] = [count, round((time.perf_counter() - t) * 1000, 1)]
    elapsed = time.perf_counter() - start
    done = os.times()
    out.append({
        "ms": round(elapsed * 1000, 1),
        "jobs": per_job,
        "rss_before_mb": round(base_rss / 1024, 1),
        "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
        # Busy ticks fire timers in forked worker processes (engine/services/timers.py):
        # their CPU and the largest one's peak RSS, next to this process's own.
        "cpu_s": round(done.user + done.system - cpu.user - cpu.system, 2),
        "workers_cpu_s": round(
            done.children_user + done.children_system - cpu.children_user - cpu.children_system,
            2,
        ),
        "workers_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
    })
print("RESULT " + json.dumps(out))
"""


def fill(services: Any, count: int, fire_from: datetime, due_from: Any) -> None:
    """`count` open cases with a timer and a pending deadline, none due (bulk SQL)."""
    from engine.persistence.models import Case, Deadline, ProcessDefinition, Timer, Unit

    started = time.perf_counter()
    engine = services.engine
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        street = conn.scalar(select(Unit.id).where(Unit.code == "S01"))
        definition = conn.scalar(
            select(func.max(ProcessDefinition.id)).where(ProcessDefinition.process_id == "petition")
        )
        first = int(conn.scalar(select(func.coalesce(func.max(Case.id), 0))) or 0) + 1
        if pg:
            series = f"generate_series(0, {count - 1}) AS s(n)"
            prefix = ""
            fire = "(CAST(:fire AS timestamptz) + (n % 365) * interval '1 day' + (n % 1440) * interval '1 minute')"
            due = "(CAST(:due AS date) + (n % 300))"
            case_no = "'XF-FILL-' || lpad(CAST(n AS text), 8, '0')"
        else:
            series = "s"
            prefix = f"WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {count - 1}) "
            fire = "datetime(:fire, '+' || (n % 365) || ' days', '+' || (n % 1440) || ' minutes')"
            due = "date(:due, '+' || (n % 300) || ' days')"
            case_no = "'XF-FILL-' || printf('%08d', n)"
        params = {
            "fire": fire_from.isoformat() if pg else fire_from.replace(tzinfo=None).isoformat(" "),
            "due": due_from.isoformat(),
            "now": fire_from if pg else fire_from.replace(tzinfo=None),
        }
        conn.execute(
            text(
                "INSERT INTO cases (id, case_type, case_no, title, unit_id, status, definition_id, "
                "state, version, data, audit_seq, audit_hash, created_at, updated_at) "
                f"{prefix}SELECT {first} + n, 'petition', {case_no}, '待办基准', {street}, "
                f"'waiting', {definition}, '', 1, '{{}}', 0, '', :now, :now FROM {series}"
            ),
            params,
        )
        conn.execute(
            text(
                f"INSERT INTO timers (case_id, fire_at) {prefix}SELECT {first} + n, {fire} "
                f"FROM {series}"
            ),
            params,
        )
        false = "false" if pg else "0"
        conn.execute(
            text(
                "INSERT INTO deadlines (case_id, kind, due_on, state, source, "
                f"calendar_unverified, unit_id) {prefix}SELECT {first} + n, 'acceptance', {due}, "
                f"'pending', '信访工作条例 第二十四条', {false}, {street} FROM {series}"
            ),
            params,
        )
        fix_sequences(conn, [Case.__table__, Deadline.__table__, Timer.__table__])  # type: ignore[list-item]
        conn.execute(text("ANALYZE"))
    print(f"  {count:,} filler cases in {time.perf_counter() - started:.0f} s", flush=True)


TICK_RUNS = 3


def settle(services: Any) -> None:
    """Vacuum, analyze and checkpoint the seeded database, as a running system would be."""
    if services.engine.dialect.name == "postgresql":
        with services.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM (ANALYZE)"))
            conn.execute(text("CHECKPOINT"))
    # SQLite (analyzed by fill): closing the last connection checkpoints the WAL into the file.
    services.engine.dispose()


def copy_database(url: str, run: int) -> tuple[str, Any]:
    """A fresh copy of the seeded database for one tick run: (its URL, a function to drop it)."""
    from sqlalchemy import create_engine

    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        copy = f"{name}_run{run}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {copy} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {copy} TEMPLATE {name}"))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {copy} WITH (FORCE)"))
            admin.dispose()

        return url.rsplit("/", 1)[0] + f"/{copy}", drop
    source = Path(url.split("sqlite:///", 1)[1])
    target = source.with_name(f"{source.stem}_run{run}{source.suffix}")
    shutil.copyfile(source, target)

    def remove() -> None:
        for path in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            path.unlink(missing_ok=True)

    return f"sqlite:///{target}", remove


def tick(url: str, now: datetime, folder: Path) -> list[dict[str, Any]]:
    """Two ticks in a fresh process: (due work, then nothing due)."""
    proc = subprocess.run(
        [sys.executable, "-c", TICK_SCRIPT, url, now.isoformat(), str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])  # type: ignore[no-any-return]
    raise SystemExit(f"tick failed:\n{proc.stdout}\n{proc.stderr}")


def screening_month(services: Any, units: int, now: datetime) -> tuple[int, float]:
    """Open next month's screening rounds for >= `units` reporting units; (opened, seconds)."""
    from engine.persistence.models import Unit
    from engine.services.screening import month_key, open_rounds_for_month

    with services.engine.connect() as conn:
        have = int(
            conn.scalar(select(func.count()).where(Unit.reporting.is_(True), Unit.active.is_(True)))
            or 0
        )
        per_street = int(
            conn.scalar(
                select(func.count()).where(
                    Unit.reporting.is_(True),
                    Unit.path.startswith(
                        select(Unit.path).where(Unit.code == "S01").scalar_subquery()
                    ),
                )
            )
            or 1
        )
    if have < units:
        add_streets(services, -(-(units - have) // per_street))
    month = month_key((now + timedelta(days=40)).date())
    start = time.perf_counter()
    opened = open_rounds_for_month(services, month, now)
    return opened, time.perf_counter() - start


def run_backend(name: str, url: str, total: int, due: int) -> dict[str, Any]:
    """Seed one database and measure the ticks and the screening month."""
    from engine.persistence.models import Deadline, Timer
    from engine.services.settings import get_setting

    folder = Path(tempfile.mkdtemp(prefix=f"fq-sched-{name}-"))
    services = build(url, folder)
    templates = [t for t in load_templates(services) if t.open and t.rows.get("timers")]
    clone_cases(services, due, templates=templates, open_every=1)
    with services.uow() as uow:
        latest = uow.session.scalar(select(func.max(Timer.fire_at)))
        warning_days = int(get_setting(uow, "warning_days"))
    assert latest is not None
    now = latest + timedelta(minutes=1)
    today = now.date()
    fill(services, total - due, now + timedelta(days=1), today + timedelta(days=warning_days + 2))
    with services.engine.connect() as conn:
        timers_due = conn.scalar(select(func.count()).where(Timer.fire_at <= now))
        open_timers = conn.scalar(select(func.count()).select_from(Timer))
        deadlines_due = conn.scalar(
            select(func.count()).where(
                Deadline.state == "pending",
                Deadline.due_on <= today + timedelta(days=warning_days),
            )
        )
        open_deadlines = conn.scalar(select(func.count()).where(Deadline.state == "pending"))
    settle(services)
    runs = []
    for run in range(TICK_RUNS):
        copy, drop = copy_database(url, run)
        try:
            runs.append(tick(copy, now, folder))
        finally:
            drop()
    runs.sort(key=lambda pair: pair[0]["ms"])
    ticks = runs[len(runs) // 2]
    busy_ms = [pair[0]["ms"] for pair in runs]
    opened, seconds = screening_month(services, 1000, now)
    services.engine.dispose()
    return {
        "open_timers": open_timers,
        "open_deadlines": open_deadlines,
        "timers_due": timers_due,
        "deadlines_due": deadlines_due,
        "ticks": ticks,
        "busy_ms": busy_ms,
        "idle_ms": statistics.median(pair[1]["ms"] for pair in runs),
        "screening_units": opened,
        "screening_s": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the scheduler table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--total", type=int, default=None)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--pg-database", default="fengqiao_bench_scheduler", help="dropped and created anew"
    )
    args = parser.parse_args(argv)
    total = args.total or (20_000 if args.quick else 1_000_000)
    due = 1_000
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for backend in args.backends.split(","):
        if backend == "postgresql":
            url = pg_database(args.pg_database)
            if url is None:
                continue
        else:
            url = f"sqlite:///{tempfile.mkdtemp(prefix='fq-sched-db-')}/sched.db"
        r = run_backend(backend, url, total, due)
        busy, idle = r["ticks"]
        size = f"{r['open_timers']:,} timers, {r['open_deadlines']:,} pending deadlines"
        rows += [
            {
                "backend": backend,
                "measure": f"tick, {r['timers_due']} timers + {r['deadlines_due']} deadlines due "
                f"(median of {len(r['busy_ms'])})",
                "figure": f"{busy['ms'] / 1000:.2f} s",
                "target": "<= 2 s",
                "verdict": "met" if busy["ms"] <= 2000 else "NOT met",
            },
            {
                "backend": backend,
                "measure": "tick peak RSS (whole process)",
                "figure": f"{busy['peak_rss_mb']:.0f} MB",
                "target": "<= 200 MB",
                "verdict": "met" if busy["peak_rss_mb"] <= 200 else "NOT met",
            },
            {
                "backend": backend,
                "measure": "tick, nothing due",
                "figure": f"{r['idle_ms']:.0f} ms",
                "target": "<= 50 ms",
                "verdict": "met" if r["idle_ms"] <= 50 else "NOT met",
            },
            {
                "backend": backend,
                "measure": f"open a month's screening for {r['screening_units']:,} units",
                "figure": f"{r['screening_s']:.1f} s",
                "target": "<= 10 s",
                "verdict": "met" if r["screening_s"] <= 10 else "NOT met",
            },
        ]
        spread = ", ".join(f"{ms / 1000:.2f}" for ms in r["busy_ms"])
        notes.append(f"{backend}: busy tick on each fresh copy (s): {spread}")
        notes.append(f"{backend}: {size}; jobs of the median busy tick (count, ms): {busy['jobs']}")
        notes.append(f"{backend}: jobs of the idle tick (count, ms): {idle['jobs']}")
        notes.append(f"{backend}: RSS before the tick {busy['rss_before_mb']} MB")
        notes.append(
            f"{backend}: busy tick CPU {busy['cpu_s']} s in the scheduler process, "
            f"{busy['workers_cpu_s']} s in its timer workers (largest worker's peak RSS "
            f"{busy['workers_peak_rss_mb']} MB, mostly pages shared with the scheduler)"
        )
    report("scheduler", rows, notes)


if __name__ == "__main__":
    main()
