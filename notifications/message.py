"""Value objects handed from the outbox dispatcher to the channels, and delivery errors.

The dispatcher (engine/services) turns an outbox row into a `Message`, renders it with
`notifications.templates.render` and gives both to a `Channel`. A channel either returns
(delivered) or raises one of the errors below, which tell the dispatcher what to do next:
`TransientError` -> retry later with backoff; `PermanentError` -> dead-letter at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

CHANNEL_NAMES: Final = frozenset({"inapp", "email", "webhook", "wecom", "dingtalk", "sms"})
LANGUAGES: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"


@dataclass(frozen=True)
class Recipient:
    """Who a message is for: a user of the system, or a petitioner reached by phone only."""

    user_id: int | None
    display_name: str
    language: str  # 'zh-CN' | 'en'; anything else renders in zh-CN
    email: str | None
    phone: str | None


@dataclass(frozen=True)
class Message:
    """One outbox row as the channels see it: where, to whom, which template, with what."""

    channel: str  # one of CHANNEL_NAMES
    recipient: Recipient
    template: str
    params: Mapping[str, Any]
    idempotency_key: str


@dataclass(frozen=True)
class Rendered:
    """A template rendered in the recipient's language."""

    subject: str
    body: str  # plain text
    short: str  # at most 70 characters: one SMS segment of Chinese text
    link: str | None


class DeliveryError(Exception):
    """A message could not be delivered; the subclass says whether to retry."""


class TransientError(DeliveryError):
    """Try again later with backoff: connection refused, timeout, HTTP 5xx/408/429, SMTP 4xx."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Seconds the other side asked us to wait (HTTP Retry-After), if it said so.
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Dead-letter at once: bad address, HTTP 4xx other than 408/429, unknown template."""
