"""E-mail delivery against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifications.channels import EmailChannel, message_id_for
from notifications.message import Message, PermanentError, Recipient, TransientError
from notifications.templates import render


class RecordingHandler:
    """Accepts mail, except for addresses that say they should be refused."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.cn>: 用户不存在 / no such user"
        if address.startswith("mailbox-full@"):
            return "452 4.2.2 Mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def parsed(self, index: int = -1) -> EmailMessage:
        raw = self.received[index].original_content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def make_message(
    language: str, email_address: str = "chen@example.cn", template: str = "task_assigned"
) -> Message:
    return Message(
        channel="email",
        recipient=Recipient(
            user_id=7,
            display_name="陈主任" if language == "zh-CN" else "Director Chen",
            language=language,
            email=email_address,
            phone=None,
        ),
        template=template,
        params={
            "task_name": "调查核实" if language == "zh-CN" else "Investigate",
            "case_no": "XF2026-000123",
            "due_on": "2026-10-08",
            "url": "/tasks/42",
        },
        idempotency_key=f"task_assigned:42:7:{language}",
    )


def send(channel: EmailChannel, message: Message) -> str | None:
    rendered = render(message.template, message.params, message.recipient.language, BASE_URL)
    return channel.send(message, rendered)


BASE_URL = "https://fq.example.cn"
SENDER = "枫桥平台 <noreply@fq.example.cn>"


def test_chinese_mail_arrives_with_decoded_subject_and_body(
    smtp_server: tuple[RecordingHandler, int],
) -> None:
    handler, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, security="none", sender=SENDER)
    message = make_message("zh-CN")

    message_id = send(channel, message)

    received = handler.parsed()
    assert received["Subject"] == "【枫桥】您有一件待办：调查核实（XF2026-000123）"
    assert received["To"].addresses[0].display_name == "陈主任"
    assert received["To"].addresses[0].addr_spec == "chen@example.cn"
    assert received["X-Fengqiao-Idempotency-Key"] == "task_assigned:42:7:zh-CN"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Message-ID"] == message_id
    assert received.get_content_type() == "multipart/alternative"
    plain = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    text = plain.get_content()
    assert "案件 XF2026-000123 的「调查核实」已交由您办理。请于 2026-10-08 前处理。" in text
    assert "https://fq.example.cn/tasks/42" in text
    assert "请勿直接回复" in text
    assert '<a href="https://fq.example.cn/tasks/42">查看详情</a>' in html.get_content()
    # Non-ASCII headers go over the wire encoded (RFC 2047), never as raw UTF-8.
    raw_headers = handler.received[-1].original_content.split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii()
    assert b"=?utf-8?" in raw_headers.lower()


def test_english_mail_arrives_in_english(smtp_server: tuple[RecordingHandler, int]) -> None:
    handler, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, security="none", sender=SENDER)

    send(channel, make_message("en"))

    received = handler.parsed()
    assert received["Subject"] == "[Fengqiao] New task for you: Investigate (XF2026-000123)"
    plain = received.get_body(preferencelist=("plain",))
    assert plain is not None
    text = plain.get_content()
    assert 'The task "Investigate" on case XF2026-000123 has been assigned to you.' in text
    assert "Please do not reply." in text


def test_a_resend_carries_the_same_message_id(smtp_server: tuple[RecordingHandler, int]) -> None:
    handler, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, security="none", sender=SENDER)
    message = make_message("zh-CN")

    first = send(channel, message)
    second = send(channel, message)

    assert first == second == message_id_for(message.idempotency_key, "noreply@fq.example.cn")
    assert handler.parsed(0)["Message-ID"] == handler.parsed(1)["Message-ID"]
    other = send(channel, make_message("en"))
    assert other != first


def test_smtp_server_down_is_transient() -> None:
    channel = EmailChannel("127.0.0.1", free_port(), security="none", sender=SENDER, timeout=2)

    with pytest.raises(TransientError, match="unreachable"):
        send(channel, make_message("zh-CN"))


def test_recipient_refused_with_550_is_permanent(
    smtp_server: tuple[RecordingHandler, int],
) -> None:
    handler, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, security="none", sender=SENDER)

    with pytest.raises(PermanentError, match="550"):
        send(channel, make_message("zh-CN", email_address="nobody@example.cn"))
    assert handler.received == []


def test_recipient_deferred_with_4xx_is_transient(
    smtp_server: tuple[RecordingHandler, int],
) -> None:
    _, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, security="none", sender=SENDER)

    with pytest.raises(TransientError, match="452"):
        send(channel, make_message("zh-CN", email_address="mailbox-full@example.cn"))


@pytest.mark.parametrize("address", [None, "", "not-an-address", "a@b.cn\r\nBcc: x@y.cn"])
def test_recipient_without_a_usable_address_is_permanent(address: str | None) -> None:
    channel = EmailChannel("127.0.0.1", 25, security="none", sender=SENDER)
    message = make_message("zh-CN")
    message = Message(
        channel=message.channel,
        recipient=Recipient(7, "陈主任", "zh-CN", address, None),
        template=message.template,
        params=message.params,
        idempotency_key=message.idempotency_key,
    )

    with pytest.raises(PermanentError, match="e-mail address"):
        send(channel, message)


def test_unknown_security_mode_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="security"):
        EmailChannel("127.0.0.1", 25, security="tls13", sender=SENDER)


# ---------------------------------------------------------------- STARTTLS and AUTH


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def check_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"jiedao"
        and auth_data.password == b"s3cret"
    )
    # handled=False: let aiosmtpd answer 535 itself on failure.
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def starttls_server(
    self_signed: tuple[Path, Path],
) -> Iterator[tuple[RecordingHandler, int, ssl.SSLContext]]:
    cert_file, key_file = self_signed
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=str(cert_file))
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=check_login,
        auth_required=True,
    )
    controller.start()
    try:
        yield handler, port, client_context
    finally:
        controller.stop()


def test_starttls_with_login_delivers(
    starttls_server: tuple[RecordingHandler, int, ssl.SSLContext],
) -> None:
    handler, port, client_context = starttls_server
    channel = EmailChannel(
        "127.0.0.1",
        port,
        security="starttls",
        username="jiedao",
        password="s3cret",
        sender=SENDER,
        ssl_context=client_context,
    )

    send(channel, make_message("zh-CN"))

    assert handler.parsed()["Subject"] == "【枫桥】您有一件待办：调查核实（XF2026-000123）"


def test_wrong_smtp_password_is_transient_for_the_operator_to_fix(
    starttls_server: tuple[RecordingHandler, int, ssl.SSLContext],
) -> None:
    handler, port, client_context = starttls_server
    channel = EmailChannel(
        "127.0.0.1",
        port,
        security="starttls",
        username="jiedao",
        password="wrong",
        sender=SENDER,
        ssl_context=client_context,
    )

    with pytest.raises(TransientError, match="authentication"):
        send(channel, make_message("zh-CN"))
    assert handler.received == []


def test_untrusted_certificate_is_transient(
    starttls_server: tuple[RecordingHandler, int, ssl.SSLContext],
) -> None:
    _, port, _ = starttls_server
    # The system trust store does not know the test's self-signed certificate.
    channel = EmailChannel("127.0.0.1", port, security="starttls", sender=SENDER, timeout=5)

    with pytest.raises(TransientError):
        send(channel, make_message("zh-CN"))
