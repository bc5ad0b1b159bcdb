"""End-to-end fixtures: the real app served over HTTP on 127.0.0.1 from a seeded SQLite file,
driven by Debian's headless Chromium through Playwright (never `playwright install`).

Every page a journey opens is watched: a JavaScript error, a console error, a failed request
or an unexpected HTTP status ≥ 400 fails the test. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from engine.bootstrap import Services, build_services
from engine.clock import SettableClock
from engine.config import Settings
from engine.persistence.migrate import upgrade

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# Monday 2026-03-02 09:00 in Shanghai, like the other test layers.
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
PASSWORD = "demo1234"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveApp:
    """The served app: its base URL, its services (shared with the server) and its clock."""

    def __init__(self, base_url: str, services: Services, clock: SettableClock) -> None:
        self.base_url = base_url
        self.services = services
        self.clock = clock

    def url(self, path: str) -> str:
        """An absolute URL of a path on the server."""
        return self.base_url + path


@pytest.fixture(scope="session")
def e2e_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the demo organisation and the BPMN of workflows/ deployed."""
    from engine.services import demo

    folder = tmp_path_factory.mktemp("e2e-template")
    settings = Settings.from_env(
        {}, instance_dir=str(folder), database_url=f"sqlite:///{folder / 'e2e.db'}"
    )
    services = build_services(settings, SettableClock(START), deploy=False)
    upgrade(services.engine)
    services.definitions.deploy_folder(services, settings.workflows_dir)
    demo.seed(services, with_cases=False)
    services.engine.dispose()
    return folder / "e2e.db"


@pytest.fixture
def live_app(tmp_path: Path, e2e_template: Path) -> Iterator[LiveApp]:
    """The app served by a real WSGI server in a thread, on its own copy of the seeded file."""
    from web.app import create_app

    shutil.copy(e2e_template, tmp_path / "e2e.db")
    settings = Settings.from_env(
        {},
        instance_dir=str(tmp_path),
        database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        secret_key="e2e-secret",
    )
    clock = SettableClock(START)
    services = build_services(settings, clock, deploy=False)
    app = create_app(services=services)
    port = _free_port()
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveApp(f"http://127.0.0.1:{port}", services, clock)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        services.engine.dispose()


class Watch:
    """Collects what went wrong on the pages of one browser context."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.expected_status: list[tuple[re.Pattern[str], int]] = []

    def expect_status(self, url_pattern: str, status: int) -> None:
        """Allow one kind of ≥400 response (e.g. a 422 on purpose)."""
        self.expected_status.append((re.compile(url_pattern), status))

    def attach(self, page: Any) -> None:
        """Listen to a page's errors, console errors, failed requests and bad responses."""
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console {msg.type}: {msg.text} @ {page.url}")
                if msg.type == "error" and not self._expected_console(msg.text)
                else None
            ),
        )
        page.on(
            "requestfailed",
            lambda req: self.problems.append(f"requestfailed: {req.url} {req.failure}"),
        )
        page.on("response", self._response)

    def _expected_console(self, text: str) -> bool:
        # Chromium logs the expected statuses again as console errors.
        return any(f"status of {status}" in text for _pattern, status in self.expected_status)

    def _response(self, resp: Any) -> None:
        if resp.status < 400:
            return
        if any(p.search(resp.url) and resp.status == s for p, s in self.expected_status):
            return
        self.problems.append(f"HTTP {resp.status}: {resp.request.method} {resp.url}")

    def check(self) -> None:
        """Fail with every problem seen."""
        assert not self.problems, "problems on the pages:\n" + "\n".join(self.problems)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("e2e tests need Debian's chromium (make chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Session:
    """A logged-in browser context for one user, with its pages watched."""

    def __init__(self, browser: Any, live: LiveApp, watch: Watch, viewport: dict[str, int]):
        self.live = live
        self.watch = watch
        self.context = browser.new_context(viewport=viewport, locale="zh-CN")
        self.context.set_default_timeout(15000)
        self.page = self.context.new_page()
        watch.attach(self.page)

    def goto(self, path: str) -> Any:
        """Open a page of the app and wait until it has loaded."""
        self.page.goto(self.live.url(path), wait_until="networkidle")
        return self.page

    def login(self, username: str) -> Session:
        """Log in through the login page."""
        page = self.goto("/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        assert "/login" not in page.url, f"login of {username} failed"
        return self

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        """Save a screenshot under tests/artifacts/."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        """Close the context."""
        self.context.close()


@pytest.fixture
def open_session(browser: Any, live_app: LiveApp) -> Iterator[Any]:
    """open_session(username, viewport=DESKTOP) → a logged-in Session; all are checked at the end."""
    sessions: list[Session] = []
    watch = Watch()

    def make(username: str | None, viewport: dict[str, int] | None = None) -> Session:
        session = Session(browser, live_app, watch, viewport or DESKTOP)
        sessions.append(session)
        return session.login(username) if username else session

    make.watch = watch  # type: ignore[attr-defined]
    yield make
    for session in sessions:
        session.close()
    watch.check()
