"""Per-user notification channel preferences (the outbox itself lives in core.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.persistence.models.core import Base


class NotificationPreference(Base):
    """Whether a user wants a channel besides the in-app inbox; no row means the default."""

    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("user_id", "channel"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | webhook | wecom | dingtalk
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]
