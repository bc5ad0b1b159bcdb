"""Failed sign-in attempts per client address (login throttling across web workers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.persistence.models.core import Base


class LoginFailure(Base):
    """One failed sign-in from one address; rows older than the throttle window are pruned."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_address_at", "address", "attempted_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime]
