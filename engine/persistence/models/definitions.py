"""Case types deployed as data (issue 11): versioned like process definitions, by sha256."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.persistence.models.core import Base


class CaseTypeDefinition(Base):
    """One deployed version of a case type's data: process, intake form, deadlines, KPIs."""

    __tablename__ = "case_type_definitions"
    __table_args__ = (UniqueConstraint("name", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    process_id: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(10))
    label_zh: Mapped[str] = mapped_column(String(100))
    label_en: Mapped[str] = mapped_column(String(100))
    # The file as uploaded (YAML text), and the validated, normalized form the hooks read.
    source: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    filename: Mapped[str] = mapped_column(String(255))
    deployed_at: Mapped[datetime]
    deployed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
