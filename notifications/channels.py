"""Delivery channels: e-mail, signed webhook, WeCom and DingTalk group robots, SMS gateway.

Every channel turns a failure into `TransientError` (retry with backoff) or
`PermanentError` (dead-letter). The rule of thumb: trouble reaching or authenticating with
the other side is transient (it can be fixed without touching the message); the other side
rejecting *this* message (bad address, 4xx, a robot's non-rate-limit errcode) is permanent.

HTTP goes through `http.client`, not urllib: urllib follows a 301/302 on a POST as a GET
without the body, which would "deliver" nothing and report success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import http.client
import json
import re
import smtplib
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, Final, Literal, Protocol, runtime_checkable

from notifications.message import Message, PermanentError, Rendered, TransientError

USER_AGENT: Final = "Fengqiao-Notifications/1.0"
_MAX_RESPONSE_BYTES: Final = 64 * 1024
_LABELS: Final[Mapping[str, Mapping[str, str]]] = {
    "zh-CN": {
        "open": "查看详情",
        "footer": "本邮件由枫桥信访和矛盾纠纷工作平台自动发送，请勿直接回复。",
    },
    "en": {
        "open": "Open",
        "footer": "This message was sent automatically by Fengqiao. Please do not reply.",
    },
}


@runtime_checkable
class Channel(Protocol):
    """Something that delivers a rendered message; returns the provider's message id if any."""

    name: str

    def send(self, message: Message, rendered: Rendered) -> str | None:
        """Deliver, or raise TransientError / PermanentError."""
        ...


# ---------------------------------------------------------------------------- in-app


class InAppChannel:
    """The in-app inbox is the outbox row itself, listed by the app: nothing to send."""

    name: str = "inapp"

    def send(self, message: Message, rendered: Rendered) -> str | None:
        """Do nothing: the row the dispatcher marks as sent is what the inbox shows."""
        return None


# ---------------------------------------------------------------------------- e-mail

SmtpSecurity = Literal["none", "starttls", "ssl"]
_SMTP_SECURITY: Final = ("none", "starttls", "ssl")
_DEFAULT_SMTP_PORT: Final[Mapping[str, int]] = {"none": 25, "starttls": 587, "ssl": 465}
_EMAIL_RE: Final = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def message_id_for(idempotency_key: str, sender: str) -> str:
    """Message-ID derived from the idempotency key, so a resend carries the same id."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    domain = sender.rpartition("@")[2].strip(" >") or "fengqiao.invalid"
    return f"<{digest}.fengqiao@{domain}>"


class EmailChannel:
    """SMTP delivery: multipart/alternative text + HTML, UTF-8 headers, stable Message-ID."""

    name: str = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: SmtpSecurity | str = "starttls",
        username: str | None = None,
        password: str | None = None,
        sender: str,
        timeout: float = 10,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in _SMTP_SECURITY:
            raise ValueError(f"smtp security must be one of {_SMTP_SECURITY}, not {security!r}")
        if not _EMAIL_RE.match(_addr_spec(sender)):
            raise ValueError(f"mail sender {sender!r} is not an e-mail address")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.sender = sender
        self.timeout = timeout
        # Tests pass a context trusting their self-signed certificate.
        self.ssl_context = ssl_context

    def build(self, message: Message, rendered: Rendered) -> EmailMessage:
        """Compose the MIME message (exposed so the dispatcher's tests can look at it)."""
        recipient = message.recipient
        address = (recipient.email or "").strip()
        if not address or not _EMAIL_RE.match(address):
            raise PermanentError(f"recipient has no valid e-mail address: {address!r}")
        labels = _labels(recipient.language)

        mail = EmailMessage()
        mail["Subject"] = _header_text(rendered.subject)
        mail["From"] = self.sender
        mail["To"] = formataddr((_header_text(recipient.display_name), address), "utf-8")
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id_for(message.idempotency_key, _addr_spec(self.sender))
        mail["X-Fengqiao-Idempotency-Key"] = _header_text(message.idempotency_key)
        mail["X-Fengqiao-Template"] = _header_text(message.template)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please

        text = rendered.body
        if rendered.link and rendered.link not in text:
            text = f"{text}\n\n{labels['open']}: {rendered.link}"
        mail.set_content(f"{text}\n\n-- \n{labels['footer']}\n", charset="utf-8")
        mail.add_alternative(
            _html_part(rendered, recipient.language), subtype="html", charset="utf-8"
        )
        return mail

    def send(self, message: Message, rendered: Rendered) -> str | None:
        """Send over SMTP; the returned id is the Message-ID header."""
        mail = self.build(message, rendered)
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b""))
            raise _smtp_error(code, reply, "recipient refused") from exc
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as exc:
            # The server turned us away, not this message.
            raise TransientError(f"SMTP server refused the session: {exc.smtp_code}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong password is the operator's to fix, not the message's fault: retry.
            raise TransientError(f"SMTP authentication failed: {exc.smtp_code}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc.smtp_code, exc.smtp_error, "SMTP error") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise TransientError(f"SMTP server lacks a needed extension: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            # Connection refused, timeouts, TLS failures, dropped connections.
            raise TransientError(f"SMTP {self.host}:{self.port} unreachable: {exc!r}") from exc
        if refused:
            code, reply = next(iter(refused.values()))
            raise _smtp_error(code, reply, "recipient refused")
        return str(mail["Message-ID"])

    def _connect(self) -> smtplib.SMTP:
        context = self.ssl_context or ssl.create_default_context()
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp


def _smtp_error(code: int, reply: bytes | str, what: str) -> TransientError | PermanentError:
    """SMTP 4xx is a temporary refusal; 5xx (and anything odd) is final."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    detail = f"{what}: {code} {text}".strip()
    if 400 <= code < 500:
        return TransientError(detail)
    return PermanentError(detail)


def _addr_spec(address: str) -> str:
    match = re.search(r"<([^<>]+)>\s*$", address)
    return (match.group(1) if match else address).strip()


def _header_text(text: str) -> str:
    """Keep header values on one line: a CR/LF in user text must not start a new header."""
    return " ".join(text.split())


def _labels(language: str) -> Mapping[str, str]:
    return _LABELS.get(language, _LABELS["zh-CN"])


def _html_part(rendered: Rendered, language: str) -> str:
    labels = _labels(language)
    paragraphs = "".join(
        "<p>" + html.escape(block).replace("\n", "<br>\n") + "</p>\n"
        for block in rendered.body.split("\n\n")
        if block.strip()
    )
    button = ""
    if rendered.link:
        href = html.escape(rendered.link, quote=True)
        button = f'<p><a href="{href}">{html.escape(labels["open"])}</a></p>\n'
    lang = "en" if language == "en" else "zh-CN"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape(rendered.subject)}</title></head>\n"
        '<body style="font-family: sans-serif; line-height: 1.6">\n'
        f"{paragraphs}{button}"
        f'<p style="color: #888; font-size: smaller">{html.escape(labels["footer"])}</p>\n'
        "</body></html>\n"
    )


# ---------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpReply:
    """What came back from a 2xx POST."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


def post_json(url: str, payload: bytes, headers: Mapping[str, str], timeout: float) -> HttpReply:
    """POST a JSON body; return the 2xx reply or raise TransientError / PermanentError."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"not an http(s) URL: {_redact(url)}")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    all_headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    try:
        connection.request("POST", path, body=payload, headers=all_headers)
        response = connection.getresponse()
        body = response.read(_MAX_RESPONSE_BYTES)
        status = response.status
        retry_after = response.getheader("Retry-After")
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"POST {_redact(url)} failed: {exc!r}") from exc
    finally:
        connection.close()

    if 200 <= status < 300:
        return HttpReply(status, body)
    detail = f"POST {_redact(url)} answered {status}: {body[:200].decode('utf-8', 'replace')}"
    if status in (408, 429) or status >= 500:
        raise TransientError(detail, retry_after=_retry_after_seconds(retry_after))
    # 3xx is not followed (see the module docstring): the URL is wrong, like any other 4xx.
    raise PermanentError(detail)


def _retry_after_seconds(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _redact(url: str) -> str:
    """Drop the query string: robots carry their access token and signature in it."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _dumps(payload: Any) -> bytes:
    return json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), default=_json_default
    ).encode("utf-8")


# ---------------------------------------------------------------------------- webhook

SIGNATURE_HEADER: Final = "X-Fengqiao-Signature"
TIMESTAMP_HEADER: Final = "X-Fengqiao-Timestamp"
IDEMPOTENCY_HEADER: Final = "X-Fengqiao-Idempotency-Key"


def sign_body(secret: str, body: bytes) -> str:
    """The X-Fengqiao-Signature value: 'sha256=' + hex HMAC-SHA256 of the raw body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """Check an X-Fengqiao-Signature header against the raw body (constant-time compare)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = sign_body(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8"))


class WebhookChannel:
    """POST a signed JSON event to a receiver of the street's choosing."""

    name: str = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float = 5,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret to sign its requests")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.clock = clock

    def payload(self, message: Message, rendered: Rendered) -> dict[str, Any]:
        """The JSON document sent (sent_at is inside the signed body, for replay checks)."""
        return {
            "idempotency_key": message.idempotency_key,
            "template": message.template,
            "recipient": {
                "user_id": message.recipient.user_id,
                "display_name": message.recipient.display_name,
            },
            "subject": rendered.subject,
            "body": rendered.body,
            "link": rendered.link,
            "params": dict(message.params),
            "sent_at": self.clock().astimezone(UTC).isoformat(timespec="seconds"),
        }

    def send(self, message: Message, rendered: Rendered) -> str | None:
        """POST the signed event; returns the receiver's JSON 'id' if it gives one."""
        now = self.clock()
        body = _dumps(self.payload(message, rendered))
        headers = {
            SIGNATURE_HEADER: sign_body(self.secret, body),
            TIMESTAMP_HEADER: str(int(now.timestamp())),
            IDEMPOTENCY_HEADER: _header_text(message.idempotency_key),
        }
        reply = post_json(self.url, body, headers, self.timeout)
        return _reply_id(reply)


def _reply_id(reply: HttpReply) -> str | None:
    data = reply.json()
    if isinstance(data, Mapping) and data.get("id") not in (None, ""):
        return str(data["id"])
    return None


# ---------------------------------------------------------------------------- group robots

# WeCom group robot: https://developer.work.weixin.qq.com/document/path/91770
# markdown content is limited to 4096 bytes (UTF-8); errcode 45009 = call frequency
# exceeded (20 messages a minute per robot); -1 = system busy.
WECOM_MARKDOWN_MAX_BYTES: Final = 4096
WECOM_TRANSIENT_ERRCODES: Final = frozenset({-1, 45009})

# DingTalk custom robot: https://open.dingtalk.com/document/robots/custom-robot-access
# 130101 = sending too fast (20 a minute), 410100 = throttled, -1 = system busy.
DINGTALK_TRANSIENT_ERRCODES: Final = frozenset({-1, 130101, 410100})


def _robot_markdown(rendered: Rendered, language: str, *, paragraph_breaks: bool) -> str:
    """Subject in bold, the body, then a link; DingTalk needs blank lines to break lines."""
    body = rendered.body.strip()
    if paragraph_breaks:
        body = "\n\n".join(line for line in body.splitlines() if line.strip())
    text = f"**{rendered.subject}**\n\n{body}"
    if rendered.link:
        text += f"\n\n[{_labels(language)['open']}]({rendered.link})"
    return text


def _truncate_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - len("…".encode())].decode("utf-8", "ignore") + "…"


def _check_errcode(reply: HttpReply, robot: str, transient: frozenset[int]) -> None:
    """Robots answer HTTP 200 and put the outcome in errcode/errmsg."""
    data = reply.json()
    if not isinstance(data, Mapping) or "errcode" not in data:
        raise TransientError(f"{robot} answered without an errcode: {reply.body[:200]!r}")
    try:
        errcode = int(data["errcode"])
    except (TypeError, ValueError) as exc:
        raise TransientError(f"{robot} answered a strange errcode: {data!r}") from exc
    if errcode == 0:
        return
    detail = f"{robot} errcode {errcode}: {data.get('errmsg', '')}"
    if errcode in transient:
        raise TransientError(detail, retry_after=60.0)
    raise PermanentError(detail)


class WeComRobotChannel:
    """WeCom (企业微信) group robot, markdown message."""

    name: str = "wecom"

    def __init__(self, webhook_url: str, timeout: float = 5) -> None:
        self.webhook_url = webhook_url
        self.timeout = timeout

    def payload(self, message: Message, rendered: Rendered) -> dict[str, Any]:
        """The robot's JSON: {"msgtype": "markdown", "markdown": {"content": ...}}."""
        content = _robot_markdown(rendered, message.recipient.language, paragraph_breaks=False)
        return {
            "msgtype": "markdown",
            "markdown": {"content": _truncate_utf8(content, WECOM_MARKDOWN_MAX_BYTES)},
        }

    def send(self, message: Message, rendered: Rendered) -> str | None:
        """Post to the group; errcode 45009 (rate limit) is transient, others permanent."""
        reply = post_json(
            self.webhook_url, _dumps(self.payload(message, rendered)), {}, self.timeout
        )
        _check_errcode(reply, "WeCom robot", WECOM_TRANSIENT_ERRCODES)
        return None


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(key=secret, msg=f'{timestamp}\\n{secret}')).

    The caller URL-encodes it and appends ``&timestamp=<ms>&sign=<sign>`` to the webhook
    URL; DingTalk rejects a timestamp more than an hour away from its clock.
    """
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingTalkRobotChannel:
    """DingTalk (钉钉) custom group robot, markdown message, optionally signed (加签)."""

    name: str = "dingtalk"

    def __init__(
        self,
        webhook_url: str,
        secret: str | None,
        timeout: float = 5,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.webhook_url = webhook_url
        self.secret = secret or None
        self.timeout = timeout
        self.clock = clock

    def signed_url(self) -> str:
        """The webhook URL with &timestamp=&sign= appended when a secret is configured."""
        if not self.secret:
            return self.webhook_url
        timestamp_ms = round(self.clock() * 1000)
        sign = urllib.parse.quote_plus(dingtalk_sign(self.secret, timestamp_ms))
        joiner = "&" if "?" in self.webhook_url else "?"
        return f"{self.webhook_url}{joiner}timestamp={timestamp_ms}&sign={sign}"

    def payload(self, message: Message, rendered: Rendered) -> dict[str, Any]:
        """The robot's JSON: {"msgtype": "markdown", "markdown": {"title", "text"}}."""
        text = _robot_markdown(rendered, message.recipient.language, paragraph_breaks=True)
        return {"msgtype": "markdown", "markdown": {"title": rendered.subject, "text": text}}

    def send(self, message: Message, rendered: Rendered) -> str | None:
        """Post to the group; rate-limit errcodes are transient, others permanent."""
        body = _dumps(self.payload(message, rendered))
        reply = post_json(self.signed_url(), body, {}, self.timeout)
        _check_errcode(reply, "DingTalk robot", DINGTALK_TRANSIENT_ERRCODES)
        return None


# ---------------------------------------------------------------------------- SMS

_PHONE_RE: Final = re.compile(r"^\+?[0-9]{5,20}$")


class SmsGatewayChannel:
    """A generic HTTP SMS gateway: POST {to, text, sender_id, idempotency_key}, Bearer auth."""

    name: str = "sms"

    def __init__(self, url: str, api_key: str, sender_id: str, timeout: float = 5) -> None:
        self.url = url
        self.api_key = api_key
        self.sender_id = sender_id
        self.timeout = timeout

    def payload(self, message: Message, rendered: Rendered) -> dict[str, Any]:
        """The gateway's JSON; the text is the rendered short form (one segment)."""
        phone = re.sub(r"[\s\-()]", "", message.recipient.phone or "")
        if not _PHONE_RE.match(phone):
            raise PermanentError(f"recipient has no valid phone number: {phone!r}")
        return {
            "to": phone,
            "text": rendered.short,
            "sender_id": self.sender_id,
            "idempotency_key": message.idempotency_key,
        }

    def send(self, message: Message, rendered: Rendered) -> str | None:
        """Post to the gateway; returns its message id from the JSON 'id' if present."""
        body = _dumps(self.payload(message, rendered))
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            IDEMPOTENCY_HEADER: _header_text(message.idempotency_key),
        }
        return _reply_id(post_json(self.url, body, headers, self.timeout))


# ---------------------------------------------------------------------------- wiring


def build_channels(config: Mapping[str, str]) -> dict[str, Channel]:
    """Build the configured channels from flat settings; unconfigured ones are absent.

    In-app is always present. A channel half configured (a URL without its secret or key)
    is a ValueError, so a typo shows at start-up rather than as silently missing mail.
    """

    def get(key: str) -> str | None:
        value = config.get(key)
        return value.strip() if value and value.strip() else None

    channels: dict[str, Channel] = {"inapp": InAppChannel()}

    if host := get("smtp_host"):
        security = (get("smtp_security") or "starttls").lower()
        if security not in _SMTP_SECURITY:
            raise ValueError(f"smtp_security must be one of {_SMTP_SECURITY}, not {security!r}")
        sender = get("mail_from")
        if not sender:
            raise ValueError("smtp_host is set but mail_from is not")
        port_text = get("smtp_port")
        port = int(port_text) if port_text else _DEFAULT_SMTP_PORT[security]
        channels["email"] = EmailChannel(
            host,
            port,
            security=security,
            username=get("smtp_username"),
            password=config.get("smtp_password") or None,
            sender=sender,
        )

    if url := get("webhook_url"):
        secret = get("webhook_secret")
        if not secret:
            raise ValueError("webhook_url is set but webhook_secret is not")
        channels["webhook"] = WebhookChannel(url, secret)

    if url := get("wecom_webhook_url"):
        channels["wecom"] = WeComRobotChannel(url)

    if url := get("dingtalk_webhook_url"):
        channels["dingtalk"] = DingTalkRobotChannel(url, get("dingtalk_secret"))

    if url := get("sms_gateway_url"):
        api_key = get("sms_api_key")
        if not api_key:
            raise ValueError("sms_gateway_url is set but sms_api_key is not")
        channels["sms"] = SmsGatewayChannel(url, api_key, get("sms_sender_id") or "")

    return channels
