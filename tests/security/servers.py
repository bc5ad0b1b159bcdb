"""Real server processes for the crash and concurrency tests: free ports, start, kill -9, CLI.

Every process binds 127.0.0.1 on a free port, runs in its own process group, and is killed
(SIGKILL to the whole group) by `Fleet.stop_all` in the tests' teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.config import PROJECT_ROOT
from tests.conftest import TEST_BPMN

BIN = Path(sys.executable).parent
# `fengqiao` as this interpreter runs it (independent of the console script's install state).
FENGQIAO = [sys.executable, "-c", "from web.cli import main; main()"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_pg_database(base_url: str, suffix: str) -> str:
    """A new empty database next to the test database (dropped and re-created)."""
    url = make_url(base_url)
    name = f"{url.database}_{suffix}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url_text: str) -> None:
    """Drop a database made by fresh_pg_database."""
    url = make_url(url_text)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def instance_env(folder: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for `fengqiao` processes on this instance (workflows + simple_review)."""
    workflows = folder / "workflows"
    if not workflows.exists():
        shutil.copytree(PROJECT_ROOT / "workflows", workflows)
        shutil.copy(TEST_BPMN / "simple_review.bpmn", workflows / "simple_review.bpmn")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FENGQIAO_")}
    env.update(
        FENGQIAO_INSTANCE_DIR=str(folder),
        FENGQIAO_DATABASE_URL=database_url,
        FENGQIAO_SECRET_KEY="crash-test-secret",
        FENGQIAO_WORKFLOWS_DIR=str(workflows),
        FENGQIAO_LOG_LEVEL="WARNING",
        FENGQIAO_LOGIN_THROTTLE_MAX="100000",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run `fengqiao ARGS` to completion; its output (fails the test on a non-zero exit)."""
    done = subprocess.run(
        [*FENGQIAO, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"fengqiao {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Fleet:
    """The processes a test started; all of them are SIGKILLed by stop_all()."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a process in its own group, logging to the instance folder."""
        log = (self.folder / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def web(self, env: dict[str, str], port: int, *, gunicorn: bool, workers: int = 2) -> Any:
        """The web server: gunicorn (-w workers, no scheduler) or `fengqiao serve` (embedded)."""
        if gunicorn:
            argv = [
                str(BIN / "gunicorn"),
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "1",
                "web.app:create_app()",
            ]
        else:
            argv = [*FENGQIAO, "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = self.start(f"web-{port}", argv, env)
        wait_healthy(port, proc)
        return proc

    @staticmethod
    def kill9(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and its whole group (gunicorn's workers too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        """Kill every process this fleet started."""
        for proc in self.procs:
            if proc.poll() is None:
                self.kill9(proc)
        self.procs.clear()


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until /healthz answers 200 (fail early if the process died)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"server on port {port} not healthy after {timeout}s")


def call(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One JSON request; (status, body). Connection failures raise OSError."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def token(port: int, username: str, password: str = "demo1234") -> str:
    """A bearer token."""
    status, body = call(
        port, "POST", "/api/v1/auth/token", {"username": username, "password": password}
    )
    assert status == 200, body
    return str(body["access_token"])


class WebhookReceiver:
    """A local webhook endpoint counting deliveries per idempotency key."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                key = self.headers.get("X-Fengqiao-Idempotency-Key", "")
                with receiver.lock:
                    receiver.keys[key] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to point FENGQIAO_WEBHOOK_URL."""
        return f"http://127.0.0.1:{self.port}/hook"


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running WebhookReceiver, shut down afterwards."""
    receiver = WebhookReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
