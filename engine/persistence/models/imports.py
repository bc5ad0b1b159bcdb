"""Imports of historical ledgers (台账导入): which source row became which petition (issue 8).

The natural key makes a re-import of the same file (or of an overlapping ledger) a no-op:
its unique index, not process memory, is what keeps a row from being imported twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.persistence.models.core import Base


class PetitionImport(Base):
    """One imported ledger row and the petition it created."""

    __tablename__ = "petition_imports"
    id: Mapped[int] = mapped_column(primary_key=True)
    # sha256 of received date | petitioner (keyed ID hash, else name) | normalized subject.
    natural_key: Mapped[str] = mapped_column(String(64), unique=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petitions.case_id"), unique=True)
    source_file: Mapped[str] = mapped_column(String(255))
    source_row: Mapped[int] = mapped_column(Integer)
    source_ref: Mapped[str | None] = mapped_column(String(100))
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    imported_at: Mapped[datetime]
