"""The annual report over 1,000,000 petitions on SQLite and PostgreSQL (issue 8; target < 2 s).

Seeds a fresh database per backend with `bench.seed_petitions` (4 years, 250,000 petitions a
year, with their cases, deadlines, supervisions and receptions), then times the whole annual
report — every registered KPI section plus the breakdowns, all SQL aggregation — for the
street (all rows), the district above it and one village.

    .venv/bin/python -m bench.annual [--quick] [--count N] [--pg URL] [--no-pg]

--quick seeds 100,000 petitions. PostgreSQL runs too whenever a server answers: in a fresh
database `fengqiao_bench_annual` (as the other benchmarks), or in the database --pg names.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, select, text

from bench.common import report
from bench.seed_petitions import seed_petitions
from engine.bootstrap import build_services
from engine.clock import SettableClock
from engine.config import Settings
from engine.persistence.migrate import upgrade
from engine.persistence.models import Unit
from engine.services import annual_report, demo
from engine.services.demo import ADMIN

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
YEAR = 2025
RUNS = 5
TARGET_S = 2.0


def _prepare(url: str, folder: Path, count: int) -> tuple[Any, dict[str, Any]]:
    if url.startswith("postgresql"):
        eng = create_engine(url)
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        eng.dispose()
    settings = Settings.from_env({}, instance_dir=str(folder), database_url=url)
    services = build_services(settings, SettableClock(NOW), deploy=False)
    upgrade(services.engine)
    services.definitions.deploy_folder(services, settings.workflows_dir)
    demo.seed(services, with_cases=False)
    seeded = seed_petitions(services, count, years=(2022, 2023, 2024, 2025))
    _settle(services.engine)
    return services, seeded


def _settle(eng: Any) -> None:
    """Bring the fresh bulk load to the state a running system keeps it in.

    PostgreSQL: VACUUM ANALYZE, as autovacuum does after the inserts (statistics, and the
    visibility map that index-only scans need). SQLite: ANALYZE, as the daily
    `optimize_sqlite` job does (SQLite never collects planner statistics by itself).
    """
    if eng.dialect.name == "postgresql":
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with eng.begin() as conn:
            conn.execute(text("ANALYZE"))
            conn.execute(text("PRAGMA optimize"))


def _time(services: Any, code: str) -> dict[str, Any]:
    with services.uow() as uow:
        unit_id = uow.session.scalar(select(Unit.id).where(Unit.code == code))
    samples = []
    received = None
    for _ in range(RUNS):
        start = time.perf_counter()
        with services.uow() as uow:
            period = annual_report.year_period(uow, ADMIN, YEAR, unit_id, date(2026, 3, 2))
            result = annual_report.build_annual_report(uow, period)
        samples.append(time.perf_counter() - start)
        received = annual_report.flat_figures(result)["received"]["value"]
    return {
        "median_s": round(statistics.median(samples), 3),
        "max_s": round(max(samples), 3),
        "received_in_year": received,
    }


def main(argv: list[str] | None = None) -> None:
    """Seed, time, print the table and write bench/results/annual.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 petitions")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--pg", default="", help="seed this database instead")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)
    count = args.count or (100_000 if args.quick else 1_000_000)
    backends: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        backends.append(("sqlite", f"sqlite:///{folder / 'annual.db'}"))
        if not args.no_pg:
            from bench.growth import pg_database

            pg_url = args.pg or pg_database("fengqiao_bench_annual")
            if pg_url:
                backends.append(("postgresql", pg_url))
        rows: list[dict[str, Any]] = []
        notes: list[str] = []
        for name, url in backends:
            services, seeded = _prepare(url, folder, count)
            print(name, seeded, flush=True)
            notes.append(
                f"{name}: seeded {seeded['petitions']:,} petitions in {seeded['seconds']} s"
            )
            for code in ("S01", "D01", "V01"):
                timing = _time(services, code)
                print(name, code, timing, flush=True)
                rows.append(
                    {
                        "backend": name,
                        "petitions": count,
                        "year": YEAR,
                        "unit": code,
                        **timing,
                        "target_met": "yes" if timing["median_s"] < TARGET_S else "NO",
                    }
                )
            services.engine.dispose()
        if not any(b == "postgresql" for b, _ in backends):
            notes.append("PostgreSQL skipped: no server answered (or --no-pg)")
        notes.append(
            f"annual report = every KPI section + breakdowns, {RUNS} runs each, median; "
            f"target < {TARGET_S} s"
        )
        report("annual" if not args.quick else "annual_quick", rows, notes)


if __name__ == "__main__":
    main(sys.argv[1:])
