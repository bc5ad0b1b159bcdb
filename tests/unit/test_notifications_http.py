"""Webhook, WeCom, DingTalk and SMS channels against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from notifications.channels import (
    DingTalkRobotChannel,
    EmailChannel,
    InAppChannel,
    SmsGatewayChannel,
    WebhookChannel,
    WeComRobotChannel,
    build_channels,
    verify_signature,
)
from notifications.message import Message, PermanentError, Recipient, Rendered, TransientError
from notifications.templates import render


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class FakeReceiver:
    """A real HTTP server that records POSTs and answers what the test asks it to."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    reply: bytes = b'{"errcode":0,"errmsg":"ok"}'
    reply_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, status: int, reply: Any = None, **headers: str) -> None:
        self.status = status
        if reply is not None:
            self.reply = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        self.reply_headers = headers


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    state = FakeReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            parts = urllib.parse.urlsplit(self.path)
            state.requests.append(
                Received(
                    path=parts.path,
                    query=urllib.parse.parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            if state.delay:
                time.sleep(state.delay)
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                for name, value in state.reply_headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(state.reply)))
                self.end_headers()
                self.wfile.write(state.reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout tests): nobody to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_message(channel: str, template: str = "warning_yellow", **overrides: Any) -> Message:
    params: dict[str, Any] = {
        "case_no": "XF2026-000123",
        "deadline_label": "办理答复",
        "due_on": "2026-10-08",
        "days_left": 3,
        "url": "/cases/7",
    }
    if template == "reply_delivered_sms":
        params = {
            "case_no": "XF2026-000123",
            "query_code": "7K3M9Q2D",
            "evaluation_url": "https://fq.gov.cn/e/7K3M9Q2D",
        }
    recipient = Recipient(
        user_id=overrides.pop("user_id", 7),
        display_name=overrides.pop("display_name", "陈主任"),
        language=overrides.pop("language", "zh-CN"),
        email=None,
        phone=overrides.pop("phone", None),
    )
    return Message(
        channel=channel,
        recipient=recipient,
        template=template,
        params=params,
        idempotency_key=overrides.pop("idempotency_key", f"{template}:7:2026-10-05"),
    )


def rendered_for(message: Message) -> Rendered:
    return render(
        message.template, message.params, message.recipient.language, "https://fq.example.cn"
    )


# ---------------------------------------------------------------------------- webhook

SECRET = "whsec-枫桥-test"
SENT_AT = datetime(2026, 10, 5, 1, 30, tzinfo=UTC)


def webhook(receiver: FakeReceiver, timeout: float = 5) -> WebhookChannel:
    return WebhookChannel(receiver.url(), SECRET, timeout, clock=lambda: SENT_AT)


def test_webhook_posts_a_signed_event_the_receiver_can_verify(receiver: FakeReceiver) -> None:
    receiver.answer(202, {"id": "evt-991"})
    message = make_message("webhook")

    provider_id = webhook(receiver).send(message, rendered_for(message))

    assert provider_id == "evt-991"
    [request] = receiver.requests
    assert verify_signature(SECRET, request.body, request.headers["x-fengqiao-signature"])
    assert request.headers["x-fengqiao-signature"].startswith("sha256=")
    assert request.headers["x-fengqiao-idempotency-key"] == "warning_yellow:7:2026-10-05"
    assert request.headers["x-fengqiao-timestamp"] == str(int(SENT_AT.timestamp()))
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    event = request.json()
    assert set(event) == {
        "idempotency_key",
        "template",
        "recipient",
        "subject",
        "body",
        "link",
        "params",
        "sent_at",
    }
    assert event["recipient"] == {"user_id": 7, "display_name": "陈主任"}
    assert event["template"] == "warning_yellow"
    assert event["subject"].startswith("【枫桥】黄牌预警")
    assert event["link"] == "https://fq.example.cn/cases/7"
    assert event["params"]["days_left"] == 3
    assert event["sent_at"] == "2026-10-05T01:30:00+00:00"
    # Chinese travels as UTF-8, not \\u escapes.
    assert "黄牌预警".encode() in request.body


def test_signature_of_a_tampered_body_or_other_secret_does_not_verify(
    receiver: FakeReceiver,
) -> None:
    message = make_message("webhook")
    webhook(receiver).send(message, rendered_for(message))
    [request] = receiver.requests
    header = request.headers["x-fengqiao-signature"]

    assert not verify_signature(SECRET, request.body.replace(b"3", b"4"), header)
    assert not verify_signature("another-secret", request.body, header)
    assert not verify_signature(SECRET, request.body, "")
    assert not verify_signature(SECRET, request.body, header.removeprefix("sha256="))
    assert not verify_signature(SECRET, request.body, "sha256=zz")


def test_independently_computed_signature_matches(receiver: FakeReceiver) -> None:
    message = make_message("webhook")
    webhook(receiver).send(message, rendered_for(message))
    [request] = receiver.requests

    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-fengqiao-signature"] == f"sha256={expected}"


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_and_throttling_are_transient(receiver: FakeReceiver, status: int) -> None:
    receiver.answer(status, b"busy")
    message = make_message("webhook")

    with pytest.raises(TransientError, match=str(status)):
        webhook(receiver).send(message, rendered_for(message))


def test_retry_after_is_passed_on(receiver: FakeReceiver) -> None:
    receiver.answer(429, b"slow down", Retry_After="120")
    message = make_message("webhook")

    with pytest.raises(TransientError) as caught:
        webhook(receiver).send(message, rendered_for(message))
    assert caught.value.retry_after == 120.0


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_client_errors_are_permanent(receiver: FakeReceiver, status: int) -> None:
    receiver.answer(status, {"error": "bad"})
    message = make_message("webhook")

    with pytest.raises(PermanentError, match=str(status)):
        webhook(receiver).send(message, rendered_for(message))


def test_a_redirect_is_not_followed_as_a_bodiless_get(receiver: FakeReceiver) -> None:
    receiver.answer(302, b"", Location="http://127.0.0.1:1/elsewhere")
    message = make_message("webhook")

    with pytest.raises(PermanentError, match="302"):
        webhook(receiver).send(message, rendered_for(message))
    assert len(receiver.requests) == 1


def test_receiver_down_is_transient(receiver: FakeReceiver) -> None:
    channel = WebhookChannel("http://127.0.0.1:1/hook", SECRET, timeout=2)
    message = make_message("webhook")

    with pytest.raises(TransientError):
        channel.send(message, rendered_for(message))


def test_slow_receiver_times_out_as_transient(receiver: FakeReceiver) -> None:
    receiver.delay = 1.0
    message = make_message("webhook")

    with pytest.raises(TransientError):
        webhook(receiver, timeout=0.2).send(message, rendered_for(message))


def test_non_http_url_is_permanent() -> None:
    channel = WebhookChannel("file:///etc/passwd", SECRET)
    message = make_message("webhook")

    with pytest.raises(PermanentError, match="http"):
        channel.send(message, rendered_for(message))


# ---------------------------------------------------------------------------- WeCom


def test_wecom_robot_gets_a_markdown_message(receiver: FakeReceiver) -> None:
    channel = WeComRobotChannel(receiver.url("/cgi-bin/webhook/send?key=abc-123"))
    message = make_message("wecom")

    assert channel.send(message, rendered_for(message)) is None

    [request] = receiver.requests
    assert request.path == "/cgi-bin/webhook/send"
    assert request.query == {"key": ["abc-123"]}
    payload = request.json()
    assert set(payload) == {"msgtype", "markdown"}
    assert payload["msgtype"] == "markdown"
    content = payload["markdown"]["content"]
    assert content.startswith("**【枫桥】黄牌预警：XF2026-000123")
    assert "距到期还有 3 天" in content
    assert content.endswith("[查看详情](https://fq.example.cn/cases/7)")


def test_wecom_rate_limit_is_transient(receiver: FakeReceiver) -> None:
    receiver.answer(200, {"errcode": 45009, "errmsg": "api freq out of limit"})
    channel = WeComRobotChannel(receiver.url("/send?key=k"))
    message = make_message("wecom")

    with pytest.raises(TransientError, match="45009"):
        channel.send(message, rendered_for(message))


def test_wecom_other_errcode_is_permanent(receiver: FakeReceiver) -> None:
    receiver.answer(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    channel = WeComRobotChannel(receiver.url("/send?key=k"))
    message = make_message("wecom")

    with pytest.raises(PermanentError, match="93000"):
        channel.send(message, rendered_for(message))


def test_wecom_content_is_kept_within_4096_bytes(receiver: FakeReceiver) -> None:
    channel = WeComRobotChannel(receiver.url("/send?key=k"))
    message = make_message("wecom")
    rendered = Rendered(subject="长", body="很长的内容。" * 1000, short="短", link=None)

    channel.send(message, rendered)

    content = receiver.requests[0].json()["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert content.endswith("…")


# ---------------------------------------------------------------------------- DingTalk

DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
DING_NOW = 1_791_000_000.123  # seconds


def test_dingtalk_robot_gets_signed_markdown(receiver: FakeReceiver) -> None:
    channel = DingTalkRobotChannel(
        receiver.url("/robot/send?access_token=tok123"), DING_SECRET, clock=lambda: DING_NOW
    )
    message = make_message("dingtalk", language="en")

    assert channel.send(message, rendered_for(message)) is None

    [request] = receiver.requests
    assert request.path == "/robot/send"
    assert request.query["access_token"] == ["tok123"]
    timestamp = request.query["timestamp"][0]
    assert timestamp == str(round(DING_NOW * 1000))
    # DingTalk's documented scheme, computed here independently of the channel.
    string_to_sign = f"{timestamp}\n{DING_SECRET}".encode()
    digest = hmac.new(DING_SECRET.encode(), string_to_sign, hashlib.sha256).digest()
    assert request.query["sign"] == [base64.b64encode(digest).decode()]
    payload = request.json()
    assert payload["msgtype"] == "markdown"
    assert set(payload["markdown"]) == {"title", "text"}
    assert payload["markdown"]["title"].startswith("[Fengqiao] Yellow card")
    assert "[Open](https://fq.example.cn/cases/7)" in payload["markdown"]["text"]


def test_dingtalk_sign_is_url_encoded_in_the_query(receiver: FakeReceiver) -> None:
    # A 32-byte digest in base64 always ends in '='; scan timestamps for a '+' or '/' too.
    for offset in range(50):
        channel = DingTalkRobotChannel(
            receiver.url("/robot/send?access_token=t"),
            DING_SECRET,
            clock=functools.partial(float, DING_NOW + offset),
        )
        url = channel.signed_url()
        raw_sign = url.rsplit("&sign=", 1)[1]
        assert all(c not in raw_sign for c in "+/=")
        decoded = urllib.parse.unquote_plus(raw_sign)
        if any(c in decoded for c in "+/"):
            break
    else:
        pytest.fail("no signature with characters that need encoding was produced")


def test_dingtalk_without_secret_posts_to_the_plain_url(receiver: FakeReceiver) -> None:
    channel = DingTalkRobotChannel(receiver.url("/robot/send?access_token=t"), None)
    message = make_message("dingtalk")

    channel.send(message, rendered_for(message))

    assert receiver.requests[0].query == {"access_token": ["t"]}


def test_dingtalk_rate_limit_is_transient_and_bad_sign_permanent(
    receiver: FakeReceiver,
) -> None:
    channel = DingTalkRobotChannel(receiver.url("/robot/send?access_token=t"), DING_SECRET)
    message = make_message("dingtalk")

    receiver.answer(200, {"errcode": 130101, "errmsg": "send too fast"})
    with pytest.raises(TransientError, match="130101"):
        channel.send(message, rendered_for(message))

    receiver.answer(200, {"errcode": 310000, "errmsg": "sign not match"})
    with pytest.raises(PermanentError, match="310000"):
        channel.send(message, rendered_for(message))


# ---------------------------------------------------------------------------- SMS


def test_sms_gateway_gets_the_short_text_with_bearer_auth(receiver: FakeReceiver) -> None:
    receiver.answer(200, {"id": 88123, "status": "queued"})
    channel = SmsGatewayChannel(receiver.url("/v1/sms"), "key-xyz", "FENGQIAO")
    message = make_message("sms", template="reply_delivered_sms", phone="138 0013 8000")

    gateway_id = channel.send(message, rendered_for(message))

    assert gateway_id == "88123"
    [request] = receiver.requests
    assert request.headers["authorization"] == "Bearer key-xyz"
    payload = request.json()
    assert payload == {
        "to": "13800138000",
        "text": rendered_for(message).short,
        "sender_id": "FENGQIAO",
        "idempotency_key": "reply_delivered_sms:7:2026-10-05",
    }
    assert len(payload["text"]) <= 70
    assert "7K3M9Q2D" in payload["text"]


def test_sms_gateway_without_an_id_returns_none(receiver: FakeReceiver) -> None:
    receiver.answer(204, b"")
    channel = SmsGatewayChannel(receiver.url("/v1/sms"), "key-xyz", "FENGQIAO")
    message = make_message("sms", phone="+8613800138000")

    assert channel.send(message, rendered_for(message)) is None


def test_sms_rejected_key_is_permanent_and_gateway_outage_transient(
    receiver: FakeReceiver,
) -> None:
    channel = SmsGatewayChannel(receiver.url("/v1/sms"), "bad-key", "FENGQIAO")
    message = make_message("sms", phone="13800138000")

    receiver.answer(401, {"error": "unauthorized"})
    with pytest.raises(PermanentError, match="401"):
        channel.send(message, rendered_for(message))

    receiver.answer(503, b"maintenance")
    with pytest.raises(TransientError, match="503"):
        channel.send(message, rendered_for(message))


@pytest.mark.parametrize("phone", [None, "", "call me", "12"])
def test_sms_to_a_recipient_without_a_phone_number_is_permanent(
    receiver: FakeReceiver, phone: str | None
) -> None:
    channel = SmsGatewayChannel(receiver.url("/v1/sms"), "key", "FENGQIAO")
    message = make_message("sms", phone=phone)

    with pytest.raises(PermanentError, match="phone"):
        channel.send(message, rendered_for(message))
    assert receiver.requests == []


# ---------------------------------------------------------------------------- in-app, wiring


def test_in_app_sends_nothing() -> None:
    message = make_message("inapp")

    assert InAppChannel().send(message, rendered_for(message)) is None


def test_without_settings_only_in_app_exists() -> None:
    channels = build_channels({})

    assert list(channels) == ["inapp"]


def test_every_configured_channel_is_built() -> None:
    channels = build_channels(
        {
            "smtp_host": "smtp.example.cn",
            "smtp_port": "",
            "smtp_security": "ssl",
            "smtp_username": "jiedao",
            "smtp_password": " pass with spaces ",
            "mail_from": "noreply@fq.example.cn",
            "webhook_url": "https://hooks.example.cn/fq",
            "webhook_secret": "s",
            "wecom_webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            "dingtalk_webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=t",
            "dingtalk_secret": "SECabc",
            "sms_gateway_url": "https://sms.example.cn/send",
            "sms_api_key": "key",
            "sms_sender_id": "FENGQIAO",
        }
    )

    assert set(channels) == {"inapp", "email", "webhook", "wecom", "dingtalk", "sms"}
    assert all(channel.name == name for name, channel in channels.items())
    email = channels["email"]
    assert isinstance(email, EmailChannel)
    assert (email.port, email.security, email.password) == (465, "ssl", " pass with spaces ")
    dingtalk = channels["dingtalk"]
    assert isinstance(dingtalk, DingTalkRobotChannel)
    assert dingtalk.secret == "SECabc"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"smtp_host": "smtp.example.cn"}, "mail_from"),
        ({"smtp_host": "h", "mail_from": "a@b.cn", "smtp_security": "tls"}, "smtp_security"),
        ({"webhook_url": "https://h.example.cn"}, "webhook_secret"),
        ({"sms_gateway_url": "https://s.example.cn"}, "sms_api_key"),
    ],
)
def test_half_configured_channel_is_an_error_at_start_up(
    config: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        build_channels(config)
