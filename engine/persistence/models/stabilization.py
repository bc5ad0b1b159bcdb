"""Key-petitioner stabilization (一人一专班、一人一对策): the person's file, team, risk ledger,
contact cycles, sensitive-period daily reports and closure (销号) records (DOMAIN.md §5)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.persistence.models.core import Base


class KeyPerson(Base):
    """A key petitioner's file: who, why, the team and plan, and where the work stands."""

    __tablename__ = "key_persons"
    __table_args__ = (
        # The scheduler finds due contact cycles and reassessments without scanning every file.
        Index("ix_key_persons_contact_due", "status", "next_contact_on"),
        Index("ix_key_persons_reassess_due", "status", "next_reassess_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # The current stabilization case (a reopened file starts a new one, parent = previous).
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Personal data: encrypted (engine.services.pii), a keyed hash to find duplicates, a mask.
    id_number_enc: Mapped[str | None] = mapped_column(Text)
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(30))
    assigned_ref: Mapped[str | None] = mapped_column(String(100))
    core_demand: Mapped[str] = mapped_column(Text)
    # forming_team | assessing | under_control | closure_proposed | closure_approved | signed_off
    status: Mapped[str] = mapped_column(String(20), index=True)
    risk_level: Mapped[str | None] = mapped_column(String(10), index=True)
    cadence_days: Mapped[int | None] = mapped_column(Integer)
    lead_leader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    responsible_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    team_approved_on: Mapped[date | None]
    assessment: Mapped[str | None] = mapped_column(Text)
    measures: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)
    plan_due_on: Mapped[date | None]
    sensitive_plan: Mapped[str | None] = mapped_column(Text)
    escalations_province: Mapped[int] = mapped_column(Integer, default=0)
    escalations_capital: Mapped[int] = mapped_column(Integer, default=0)
    registered_on: Mapped[date]
    last_assessed_on: Mapped[date | None]
    last_contact_on: Mapped[date | None]
    last_risk_signal: Mapped[str | None] = mapped_column(String(10))
    contact_cycles: Mapped[int] = mapped_column(Integer, default=0)
    # The day the next contact cycle opens / the next monthly reassessment is due to open.
    next_contact_on: Mapped[date | None]
    next_reassess_on: Mapped[date | None]
    # Set when a contact cycle passed without contact; cleared by the next recorded contact.
    contact_overdue_since: Mapped[date | None] = mapped_column(index=True)
    signed_off_on: Mapped[date | None]
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KeyPersonMember(Base):
    """A member of the person's special team: a user, or a named outsider with their role."""

    __tablename__ = "key_person_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_person_id: Mapped[int] = mapped_column(ForeignKey("key_persons.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(60))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    added_on: Mapped[date]


class KeyPersonPetition(Base):
    """A petition linked to the person's file (the history the five-redo checklist re-examines)."""

    __tablename__ = "key_person_petitions"
    key_person_id: Mapped[int] = mapped_column(ForeignKey("key_persons.id"), primary_key=True)
    petition_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    linked_at: Mapped[datetime]


class KeyPersonRiskEntry(Base):
    """One dated entry of the risk ledger (管控风险研判台账): initial assessment or reassessment."""

    __tablename__ = "key_person_risk_entries"
    __table_args__ = (
        Index("ix_key_person_risk_entries_person_date", "key_person_id", "assessed_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key_person_id: Mapped[int] = mapped_column(ForeignKey("key_persons.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(20))  # assess | reassess
    assessed_on: Mapped[date]
    risk_level: Mapped[str] = mapped_column(String(10))
    previous_level: Mapped[str | None] = mapped_column(String(10))
    assessment: Mapped[str] = mapped_column(Text, default="")
    measures: Mapped[str] = mapped_column(Text, default="")
    checklists: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class KeyPersonContact(Base):
    """One contact cycle: opened by the scheduler at the risk level's cadence, then recorded."""

    __tablename__ = "key_person_contacts"
    __table_args__ = (
        UniqueConstraint("key_person_id", "opened_on"),
        Index("ix_key_person_contacts_open_due", "state", "due_on"),
        Index("ix_key_person_contacts_person_cycle", "key_person_id", "cycle_no"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key_person_id: Mapped[int] = mapped_column(ForeignKey("key_persons.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    cycle_no: Mapped[int] = mapped_column(Integer)
    opened_on: Mapped[date]
    due_on: Mapped[date]
    state: Mapped[str] = mapped_column(String(10), default="open")  # open | done | missed
    contacted_on: Mapped[date | None]
    method: Mapped[str | None] = mapped_column(String(10))
    situation: Mapped[str | None] = mapped_column(Text)
    risk_signal: Mapped[str | None] = mapped_column(String(10))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime | None]


class KeyPersonDailyReport(Base):
    """A sensitive-period daily report; an explicit 'all calm' zero report is required."""

    __tablename__ = "key_person_daily_reports"
    __table_args__ = (
        UniqueConstraint("key_person_id", "report_on"),
        Index("ix_key_person_daily_reports_open", "state", "report_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key_person_id: Mapped[int] = mapped_column(ForeignKey("key_persons.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    report_on: Mapped[date]
    period_name: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(10), default="open")  # open | done | missed
    all_calm: Mapped[bool | None] = mapped_column(Boolean)
    situation: Mapped[str | None] = mapped_column(Text)
    risk_signal: Mapped[str | None] = mapped_column(String(10))
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reported_at: Mapped[datetime | None]


class KeyPersonClosure(Base):
    """One closure proposal round: evidence, approval, check and sign-off (销号), or rejection."""

    __tablename__ = "key_person_closures"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_person_id: Mapped[int] = mapped_column(ForeignKey("key_persons.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    # proposed | approved | rejected | signed_off | reopened
    status: Mapped[str] = mapped_column(String(12))
    evidence_kind: Mapped[str] = mapped_column(String(30))
    evidence_ref: Mapped[str] = mapped_column(String(200))
    return_visit_on: Mapped[date]
    summary: Mapped[str] = mapped_column(Text, default="")
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime]
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_on: Mapped[date | None]
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_on: Mapped[date | None]
    rejected_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rejected_step: Mapped[str | None] = mapped_column(String(20))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    signed_off_on: Mapped[date | None] = mapped_column(index=True)
    reopened_on: Mapped[date | None]
    reopened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reopen_reason: Mapped[str | None] = mapped_column(Text)
