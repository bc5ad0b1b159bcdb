"""Monthly dispute screening (矛盾纠纷排查): rounds, the hazard ledger (台账), notes, agreements.

A round is unique per (unit, month): that constraint, not process memory, is what keeps two
schedulers, a restart or a second tick from ever opening a second round (DESIGN.md §4).
A hazard is one ledger entry; carry-over into later months is computed from its dates, never
stored as a copy (DOMAIN.md §5).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.persistence.models.core import Base


class ScreeningRound(Base):
    """One reporting unit's screening for one month (process `screening_round`)."""

    __tablename__ = "screening_rounds"
    __table_args__ = (
        UniqueConstraint("unit_id", "month"),
        Index("ix_screening_rounds_month_status", "month", "status"),
        Index("ix_screening_rounds_due", "status", "due_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    month: Mapped[str] = mapped_column(String(7))  # "YYYY-MM"
    due_on: Mapped[date]
    # Stored: open | submitted | signed. "overdue" is shown for an unsigned round past due_on.
    status: Mapped[str] = mapped_column(String(12), default="open")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), unique=True)
    zero_report: Mapped[bool | None] = mapped_column(Boolean)
    reported_on: Mapped[date | None]
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signed_on: Mapped[date | None]
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime]
    reminded_at: Mapped[datetime | None]
    overdue_warned_at: Mapped[datetime | None]


class Hazard(Base):
    """A dispute hazard: one ledger entry (DOMAIN.md §5), closed only by sign-off (销号)."""

    __tablename__ = "hazards"
    __table_args__ = (
        Index("ix_hazards_unit_month", "unit_id", "month"),
        Index("ix_hazards_status_limit", "status", "time_limit_on"),
        Index("ix_hazards_found_on", "found_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    ledger_no: Mapped[str] = mapped_column(String(40), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), unique=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("screening_rounds.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))  # the reporting village/unit
    month: Mapped[str] = mapped_column(String(7))  # month of the ledger it was found in
    found_on: Mapped[date]
    source: Mapped[str] = mapped_column(String(100), default="月度排查")
    dispute_type: Mapped[str] = mapped_column(String(30))
    parties: Mapped[str] = mapped_column(Text)
    involved_count: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    risk_level: Mapped[str] = mapped_column(String(10))
    criminal_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    measures: Mapped[str] = mapped_column(Text, default="")
    method: Mapped[str] = mapped_column(String(30))
    responsible_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    responsible_person: Mapped[str] = mapped_column(String(100))
    owning_leader: Mapped[str] = mapped_column(String(100), default="")
    time_limit_on: Mapped[date]
    progress: Mapped[str] = mapped_column(Text, default="")
    # open | pending_confirmation | pending_approval | signed_off
    status: Mapped[str] = mapped_column(String(24), default="open")
    resolution: Mapped[str | None] = mapped_column(String(20))
    evidence_refs: Mapped[str | None] = mapped_column(Text)
    resolved_on: Mapped[date | None]
    closure_requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_on: Mapped[date | None]
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signed_off_on: Mapped[date | None]
    signed_off_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    escalated_to: Mapped[str | None] = mapped_column(String(20))  # petition | key_person
    escalated_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class HazardNote(Base):
    """A progress note on a hazard while it is being resolved (化解进展)."""

    __tablename__ = "hazard_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id"), index=True)
    noted_on: Mapped[date]
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class MediationAgreement(Base):
    """A people's mediation agreement (调解协议书) that settled a hazard."""

    __tablename__ = "mediation_agreements"
    __table_args__ = (UniqueConstraint("hazard_id", "agreement_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id"), index=True)
    agreement_no: Mapped[str] = mapped_column(String(60))
    signed_on: Mapped[date]
    parties: Mapped[str] = mapped_column(Text)
    # 人民调解法 Art. 33: parties may apply for judicial confirmation within 30 days.
    judicial_confirmation_due: Mapped[date]
    judicial_confirmation_on: Mapped[date | None]
    reminded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
