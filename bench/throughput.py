"""Served throughput (issue 10 §2, §6): a real gunicorn server, a separate load generator.

gunicorn serves the app with 1, 2 and 4 sync workers, on PostgreSQL and on SQLite
(synchronous=FULL). A separate process runs several concurrent clients, each over its own
HTTP connection (gunicorn's sync workers close it after every response; the client
reconnects). Each registers a petition as the clerk and walks it through its tasks (the
clerk's acceptance, the handler's handling, the reply drafted, approved by the leader and
delivered): one registration and five task completions per petition. It prints completions
per second and p50/p95/p99 latency of the completions, and the peak RSS of every worker.
Targets (PostgreSQL, this 2-core machine): >= 250 completions/s at p95 < 50 ms; RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import report

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Http:
    """One client's HTTP connection (reopened by http.client when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, url: str, body: Any = None, token: str = "") -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, url, body=payload, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("decide_acceptance", "clerk", {"decision": "accept"}),
    ("handle", "handler", {"findings": "现场核实，双方边界有争议", "method": "mediation"}),
    (
        "draft_reply",
        "handler",
        {"outcome": "support", "reply_text": "支持信访人请求", "legal_basis": "农村土地承包法"},
    ),
    ("approve_reply", "leader", {"approve": True}),
    ("deliver_reply", "handler", {"delivery_method": "in_person"}),
]


def load(port: int, clients: int, seconds: float, village: int) -> dict[str, Any]:
    """The load generator: `clients` threads for `seconds`; latencies per kind of request."""
    boot = Http(port)
    tokens = {}
    for user in ("clerk", "handler", "leader"):
        status, body = boot.call(
            "POST", "/api/v1/auth/token", {"username": user, "password": "demo1234"}
        )
        assert status == 200, body
        tokens[user] = body["access_token"]
    today = date.today().isoformat()
    lock = threading.Lock()
    completions: list[float] = []
    registrations: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    serial = iter(range(10**9))

    def client() -> None:
        conn = Http(port)
        while time.perf_counter() < stop:
            with lock:
                n = next(serial)
            body = {
                "channel": "visit",
                "received_on": today,
                "category": "claim",
                "source": "direct",
                "subject": f"吞吐量基准 {n}",
                "request": "请求协调处理邻里排水纠纷，恢复原有排水沟",
                "village_id": village,
                "petitioners": [{"name": f"测试人{n}", "address": "东风村3组"}],
            }
            start = time.perf_counter()
            status, view = conn.call("POST", "/api/v1/petitions", body, tokens["clerk"])
            took = (time.perf_counter() - start) * 1000
            if status != 201:
                with lock:
                    errors[f"register {status}"] = errors.get(f"register {status}", 0) + 1
                continue
            with lock:
                registrations.append(took)
            open_tasks = view["open_tasks"]
            for bpmn_id, user, data in STEPS:
                task = next((t for t in open_tasks if t["bpmn_id"] == bpmn_id), None)
                if task is None:
                    with lock:
                        errors[f"no {bpmn_id}"] = errors.get(f"no {bpmn_id}", 0) + 1
                    break
                form = dict(data)
                if bpmn_id == "decide_acceptance":
                    form.update(decided_on=today, responsible_unit_id=village)
                if bpmn_id == "deliver_reply":
                    form["delivered_on"] = today
                start = time.perf_counter()
                status, out = conn.call(
                    "POST", f"/api/v1/tasks/{task['id']}/complete", {"data": form}, tokens[user]
                )
                took = (time.perf_counter() - start) * 1000
                if status != 200:
                    with lock:
                        key = f"{bpmn_id} {status}"
                        errors[key] = errors.get(key, 0) + 1
                    break
                with lock:
                    completions.append(took)
                open_tasks = out["next_tasks"]

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "seconds": round(elapsed, 1),
        "completions": len(completions),
        "completions_per_s": round(len(completions) / elapsed, 1),
        "registrations_per_s": round(len(registrations) / elapsed, 1),
        "requests_per_s": round((len(completions) + len(registrations)) / elapsed, 1),
        "p50_ms": round(statistics.median(completions), 1) if completions else None,
        "p95_ms": round(percentile(completions, 0.95), 1) if completions else None,
        "p99_ms": round(percentile(completions, 0.99), 1) if completions else None,
        "register_p95_ms": round(percentile(registrations, 0.95), 1) if registrations else None,
        "errors": errors,
    }


def worker_rss(master: int) -> list[float]:
    """Peak RSS (VmHWM, MB) of each gunicorn worker of a master process."""
    out = []
    children = Path(f"/proc/{master}/task/{master}/children")
    for pid in children.read_text().split() if children.exists() else []:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out.append(round(int(line.split()[1]) / 1024, 1))
    return out


def serve(env: dict[str, str], workers: int, port: int) -> subprocess.Popen[bytes]:
    """Start gunicorn and wait until /healthz answers."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--backlog",
            "256",
            "--log-level",
            "warning",
            "web.wsgi:app",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            status, _ = Http(port).call("GET", "/healthz")
            if status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def run_backend(
    name: str, url: str, workers_list: list[int], clients: int, seconds: float
) -> list[dict[str, Any]]:
    """Prepare one database, then serve it with each worker count and load it."""
    from sqlalchemy import select

    from bench.growth import build
    from engine.persistence.models import Unit

    folder = Path(tempfile.mkdtemp(prefix=f"fq-tp-{name}-"))
    services = build(url, folder)
    with services.uow() as uow:
        village = int(uow.session.scalar(select(Unit.id).where(Unit.code == "V01")) or 0)
    services.engine.dispose()
    env = dict(os.environ)
    env.update(
        FENGQIAO_DATABASE_URL=url,
        FENGQIAO_INSTANCE_DIR=str(folder),
        FENGQIAO_SECRET_KEY="bench-throughput-secret-key-0123456789",
        FENGQIAO_LOG_LEVEL="WARNING",
    )
    rows = []
    for workers in workers_list:
        port = free_port()
        proc = serve(env, workers, port)
        try:
            result = load_in_process(port, clients, seconds, village)
            rss = worker_rss(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        rows.append(
            {
                "backend": name,
                "workers": workers,
                "clients": clients,
                **{k: v for k, v in result.items() if k != "errors"},
                "max_worker_rss_mb": max(rss) if rss else None,
                "errors": result["errors"] or "",
            }
        )
        print(f"  {name}, {workers} workers: {rows[-1]}", flush=True)
    return rows


def load_in_process(port: int, clients: int, seconds: float, village: int) -> dict[str, Any]:
    """Run the load generator as a separate process and read its JSON."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.throughput",
            "--load",
            str(port),
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
            "--village",
            str(village),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    """Print the throughput table (or, with --load PORT, be the load generator)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--load", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--village", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args(argv)
    seconds = args.seconds or (4.0 if args.quick else 30.0)
    if args.load is not None:
        print(json.dumps(load(args.load, args.clients, seconds, args.village)))
        return
    from bench.growth import pg_database

    workers_list = [int(w) for w in args.workers.split(",")]
    rows: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        if backend == "postgresql":
            url = pg_database("fengqiao_bench_throughput")
            if url is None:
                continue
        else:
            url = f"sqlite:///{tempfile.mkdtemp(prefix='fq-tp-db-')}/throughput.db"
        rows += run_backend(backend, url, workers_list, args.clients, seconds)
    best = max(
        (r for r in rows if r["backend"] == "postgresql"),
        default=None,
        key=lambda r: r["completions_per_s"],
    )
    notes = []
    if best is not None:
        met = best["completions_per_s"] >= 250 and best["p95_ms"] < 50
        notes.append(
            f"PostgreSQL best: {best['completions_per_s']} completions/s at p95 {best['p95_ms']} ms "
            f"with {best['workers']} workers (target >= 250/s at p95 < 50 ms: "
            f"{'met' if met else 'NOT met'})"
        )
    rss = [r["max_worker_rss_mb"] for r in rows if r["max_worker_rss_mb"]]
    if rss:
        notes.append(
            f"peak worker RSS: {max(rss)} MB (target <= 300 MB: "
            f"{'met' if max(rss) <= 300 else 'NOT met'})"
        )
    notes.append(
        "load: each client registers a petition and completes its 5 tasks (acceptance, handling, "
        "draft, approval, delivery); gunicorn sync workers (a connection per request); the load "
        "generator shares the machine's 2 cores with the server and the database"
    )
    report("throughput", rows, notes)


if __name__ == "__main__":
    main()
