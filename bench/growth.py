"""Growth (issue 10 §3): per-operation cost at 1k, 100k and 1M cases in the database.

One database grows in steps (bench/seed.py clones the demo petitions into more and more
streets); at each size the same five operations run through the WSGI app in process, as a
clerk, a handler and a supervisor of the demo street: register a petition, complete a task
(the clerk's acceptance decision on it), the inbox (my roles' open tasks by due date), the
deadline board and the case page (GET /api/v1/petitions/{id}). Target: each at 1M within
1.5x of its cost at 1k. Runs on PostgreSQL (FENGQIAO_BENCH_PG_URL, default the local server)
and on SQLite (synchronous=FULL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

from bench.common import report
from bench.seed import count_cases, grow_to, load_templates, prepare

PG_ADMIN_URL = os.environ.get(
    "FENGQIAO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
OPERATIONS = ["register petition", "complete task", "inbox", "deadline board", "case page"]


def pg_database(name: str) -> str | None:
    """A fresh PostgreSQL database for a benchmark, or None if no server answers."""
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
    except Exception as exc:
        print(f"  PostgreSQL unavailable ({type(exc).__name__}); skipping it")
        return None
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def build(url: str, folder: Path) -> Any:
    """Services on `url` (schema, demo organisation and demo petitions)."""
    from engine.bootstrap import build_services
    from engine.config import Settings

    settings = Settings.from_env(
        {}, instance_dir=str(folder), database_url=url, log_level="WARNING"
    )
    services = build_services(settings, deploy=False)
    prepare(services)
    return services


def id_number(serial: int) -> str:
    """A valid resident ID number (GB 11643 check character), distinct per serial."""
    from engine.domain.text import id_check_character

    body = f"110101{1960 + serial % 40}0101{serial % 1000:03d}"
    return body + id_check_character(body)


class Client:
    """The app in process with the bearer tokens of three demo-street users."""

    def __init__(self, services: Any) -> None:
        from web.app import create_app

        self.services = services
        self.app = create_app(services=services)
        self.http = self.app.test_client()
        self.headers = {u: self._token(u) for u in ("clerk", "handler", "supervisor")}
        from engine.persistence.models import Unit

        with services.uow() as uow:
            self.v01 = uow.session.scalar(select(Unit.id).where(Unit.code == "V01"))
        self.serial = 0

    def _token(self, username: str) -> dict[str, str]:
        resp = self.http.post(
            "/api/v1/auth/token", json={"username": username, "password": "demo1234"}
        )
        return {"Authorization": f"Bearer {resp.get_json()['access_token']}"}

    def call(self, method: str, url: str, user: str, body: Any = None) -> Any:
        resp = self.http.open(url, method=method, json=body, headers=self.headers[user])
        if resp.status_code >= 300:
            raise SystemExit(f"{method} {url}: {resp.status_code} {resp.get_json()}")
        return resp.get_json()

    def register(self) -> int:
        self.serial += 1
        today = self.services.clock.now().date().isoformat()
        body = {
            "channel": "visit",
            "received_on": today,
            "category": "claim",
            "source": "direct",
            "subject": f"基准测试事项 {self.serial}",
            "request": "请求协调处理邻里排水纠纷，恢复原有排水沟",
            "village_id": self.v01,
            "petitioners": [
                {
                    "name": f"测试人{self.serial}",
                    "id_number": id_number(self.serial),
                    "phone": f"139{self.serial:08d}",
                    "address": "东风村3组",
                }
            ],
        }
        return int(self.call("POST", "/api/v1/petitions", "clerk", body)["id"])

    def acceptance_task(self, case_id: int) -> int:
        items = self.call("GET", f"/api/v1/tasks?case_id={case_id}", "clerk")["items"]
        return int(items[0]["id"])

    def accept(self, task_id: int) -> None:
        today = self.services.clock.now().date().isoformat()
        data = {"decision": "accept", "decided_on": today, "responsible_unit_id": self.v01}
        self.call("POST", f"/api/v1/tasks/{task_id}/complete", "clerk", {"data": data})


def one_round(client: Client, record: Callable[[str, Callable[[], Any]], Any]) -> None:
    """The five operations once, each timed by `record`."""
    case_id = record("register petition", client.register)
    task_id = client.acceptance_task(case_id)
    record("complete task", partial(client.accept, task_id))
    record("inbox", partial(client.call, "GET", "/api/v1/tasks?per_page=50", "handler"))
    record("deadline board", partial(client.call, "GET", "/api/v1/deadlines", "supervisor"))
    record("case page", partial(client.call, "GET", f"/api/v1/petitions/{case_id}", "handler"))


def measure(clients: dict[str, Client], runs: int) -> dict[str, dict[str, float]]:
    """Median ms of each operation per client over `runs` rounds, the clients interleaved.

    Wall time, and as '<op> cpu' this process's CPU time (the app, and SQLite itself). The
    reference database (the smallest size) is measured in the same rounds as the grown one,
    so both see the same load from whatever else runs on the machine."""
    wall: dict[str, dict[str, list[float]]] = {c: {op: [] for op in OPERATIONS} for c in clients}
    cpu: dict[str, dict[str, list[float]]] = {c: {op: [] for op in OPERATIONS} for c in clients}
    for i in range(runs + 3):
        for name, client in clients.items():

            def record(
                op: str, func: Callable[[], Any], name: str = name, warm: bool = i < 3
            ) -> Any:
                start, start_cpu = time.perf_counter(), time.process_time()
                out = func()
                if not warm:  # three warm-up rounds
                    wall[name][op].append((time.perf_counter() - start) * 1000)
                    cpu[name][op].append((time.process_time() - start_cpu) * 1000)
                return out

            one_round(client, record)
    result: dict[str, dict[str, float]] = {}
    for name in clients:
        out = {op: round(statistics.median(v), 2) for op, v in wall[name].items()}
        out.update({f"{op} cpu": round(statistics.median(v), 2) for op, v in cpu[name].items()})
        result[name] = out
    return result


def run_backend(
    name: str, urls: tuple[str, str], sizes: list[int], runs: int
) -> dict[int, dict[str, dict[str, float]]]:
    """Grow one database through `sizes`, measuring it at each beside a reference database
    that stays at the smallest size."""
    started = time.perf_counter()
    services = {}
    for role, url in zip(("ref", "grown"), urls, strict=True):
        services[role] = build(url, Path(tempfile.mkdtemp(prefix=f"fq-growth-{name}-{role}-")))
    templates = load_templates(services["grown"])
    print(f"  {name}: demo ({len(templates)} templates) in {time.perf_counter() - started:.0f} s")
    grow_to(services["ref"], sizes[0], templates)
    clients = {role: Client(svc) for role, svc in services.items()}
    out: dict[int, dict[str, dict[str, float]]] = {}
    for size in sizes:
        grow_to(services["grown"], size, templates)
        with services["grown"].engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        have = count_cases(services["grown"])
        out[size] = measure(clients, runs)
        print(f"  {name} @ {have:,} cases: {out[size]['grown']}", flush=True)
        print(f"  {name} reference @ {sizes[0]:,}: {out[size]['ref']}", flush=True)
    for svc in services.values():
        svc.engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the growth table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None, help="comma-separated case counts")
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args(argv)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([1_000, 5_000] if args.quick else [1_000, 100_000, 1_000_000])
    )
    runs = 10 if args.quick else 30
    results: dict[str, dict[int, dict[str, dict[str, float]]]] = {}
    for backend in args.backends.split(","):
        if backend == "postgresql":
            ref = pg_database("fengqiao_bench_growth_ref")
            grown = pg_database("fengqiao_bench_growth")
            if ref is None or grown is None:
                continue
            urls = (ref, grown)
        else:
            folder = tempfile.mkdtemp(prefix="fq-growth-db-")
            urls = (f"sqlite:///{folder}/ref.db", f"sqlite:///{folder}/growth.db")
        results[backend] = run_backend(backend, urls, sizes, runs)
    rows = []
    first, last = sizes[0], sizes[-1]
    for backend, by_size in results.items():
        for op in OPERATIONS:
            row: dict[str, Any] = {"backend": backend, "operation": op}
            for size in sizes:
                row[f"{size:,} cases (ms)"] = by_size[size]["grown"][op]
            reference = by_size[last]["ref"][op]
            row[f"{first:,} ref. beside {last:,} (ms)"] = reference
            ratio = by_size[last]["grown"][op] / max(reference, 1e-9)
            row[f"ratio {last:,}/{first:,}"] = round(ratio, 2)
            row["target <= 1.5"] = "met" if ratio <= 1.5 else "NOT met"
            cpu_ratio = by_size[last]["grown"][f"{op} cpu"] / max(
                by_size[last]["ref"][f"{op} cpu"], 1e-9
            )
            row["cpu ratio"] = round(cpu_ratio, 2)
            rows.append(row)
    notes = [
        f"medians of {runs} rounds per size; each size is one database grown by bench/seed.py "
        "(750 cases per street, 5% open, closed cases with compacted state), measured in the "
        f"same rounds as a reference database of {first:,} cases (the ratio compares the two "
        "at the largest size, so load from other processes falls on both alike)",
        "cpu ratio: the same comparison in this process's CPU time (the app and SQLite; "
        "PostgreSQL's own work is not in it)",
    ]
    report("growth", rows, notes)


if __name__ == "__main__":
    main()
