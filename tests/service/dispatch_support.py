"""Real receivers on 127.0.0.1 (an SMTP server, an HTTP server) and helpers for the dispatcher tests."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select

from engine.bootstrap import Services
from engine.persistence.models import OutboxMessage, Unit, User
from engine.services.access import SYSTEM, Actor, load_actor
from engine.services.users import update_user

SENDER = "枫桥平台 <noreply@fengqiao.example.cn>"
WEBHOOK_SECRET = "s3cret-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MailStore:
    """An aiosmtpd handler that keeps every accepted mail."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(message)
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.received]

    def deduplicated(self) -> dict[str, int]:
        """What a mail store that drops repeated Message-IDs shows: id -> transmissions."""
        return dict(Counter(self.message_ids()))


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[tuple[MailStore, int]]:
    store = MailStore()
    port = port or free_port()
    controller = Controller(store, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield store, port
    finally:
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class HttpReceiver:
    """A real HTTP server recording POSTs; answers 200 with a JSON id."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(r.headers.get("X-Fengqiao-Idempotency-Key", "") for r in self.requests)


@contextmanager
def http_receiver(delay: float = 0.0) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(delay=delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if receiver.delay:
                time.sleep(receiver.delay)
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                number = len(receiver.requests)
            reply = json.dumps({"id": f"r{number}", "errcode": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def use_smtp(services: Services, port: int) -> None:
    services.settings = replace(
        services.settings,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        mail_from=SENDER,
    )


def use_webhook(services: Services, url: str) -> None:
    services.settings = replace(services.settings, webhook_url=url, webhook_secret=WEBHOOK_SECRET)


def use_sms(services: Services, url: str) -> None:
    services.settings = replace(
        services.settings, sms_gateway_url=url, sms_api_key="key-1", sms_sender_id="枫桥"
    )


def user(services: Services, username: str) -> User:
    with services.uow() as uow:
        row = uow.session.scalars(select(User).where(User.username == username)).one()
        uow.session.expunge(row)
        return row


def actor(services: Services, username: str) -> Actor:
    with services.uow() as uow:
        return load_actor(uow.session, user(services, username).id)


def unit_id(services: Services, code: str) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(Unit.id).where(Unit.code == code)))


def set_contact(
    services: Services, username: str, *, email: str | None = None, phone: str | None = None
) -> None:
    """Give a demo user an e-mail address / phone number through the users service."""
    changes: dict[str, Any] = {}
    if email is not None:
        changes["email"] = email
    if phone is not None:
        changes["phone"] = phone
    with services.uow() as uow:
        update_user(uow, SYSTEM, user(services, username).id, changes, services.clock.now())
        uow.commit()


def outbox(services: Services, channel: str | None = None) -> list[OutboxMessage]:
    with services.uow() as uow:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if channel:
            stmt = stmt.where(OutboxMessage.channel == channel)
        rows = list(uow.session.scalars(stmt))
        for row in rows:
            uow.session.expunge(row)
        return rows
