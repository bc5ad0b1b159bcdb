"""Petition (信访件) tables: the petition row beside its case, petitioners, reviews,
supervisions and leader receptions (DOMAIN.md §1, §5)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.persistence.models.core import Base


class Reception(Base):
    """A leader reception day (领导接访) or a leader's field visit (下访)."""

    __tablename__ = "receptions"
    __table_args__ = (Index("ix_receptions_unit_held", "unit_id", "held_on"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    held_on: Mapped[date]
    leader_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The street (or other office) whose leader received or visited.
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    person_count: Mapped[int] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class ReceptionPetition(Base):
    """A petition raised at, or discussed during, a reception or field visit."""

    __tablename__ = "reception_petitions"
    reception_id: Mapped[int] = mapped_column(ForeignKey("receptions.id"), primary_key=True)
    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petitions.case_id"), primary_key=True, index=True
    )


class Petition(Base):
    """The domain row of a petition case; its id is the case id (one petition = one case)."""

    __tablename__ = "petitions"
    __table_args__ = (
        Index("ix_petitions_unit_received", "unit_id", "received_on"),
        Index("ix_petitions_village_received", "village_id", "received_on"),
        Index("ix_petitions_responsible_status", "responsible_unit_id", "status"),
        Index("ix_petitions_status_received", "status", "received_on"),
        Index("ix_petitions_evaluated_on", "evaluated_on"),
        # Covers the year's scans of the KPI and annual-report figures (issue 8).
        Index(
            "ix_petitions_figures",
            "received_on",
            "unit_id",
            "village_id",
            "responsible_unit_id",
            "channel",
            "category",
            "source",
            "repeat_of_id",
            "proxy_agent",
        ),
        # The KPI joins check each deadline's petition against the unit scope from this
        # index alone (index-only), never from the wide petition row.
        Index("ix_petitions_case_scope", "case_id", "unit_id", "village_id", "responsible_unit_id"),
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    # The office that registered it (the street); scope and KPIs start here.
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    channel: Mapped[str] = mapped_column(String(20))
    received_on: Mapped[date] = mapped_column(index=True)
    category: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))
    assigned_ref: Mapped[str | None] = mapped_column(String(100))
    assigned_due_on: Mapped[date | None]
    proxy_agent: Mapped[str | None] = mapped_column(String(100))
    reception_id: Mapped[int | None] = mapped_column(ForeignKey("receptions.id"))
    subject: Mapped[str] = mapped_column(String(300))
    request: Mapped[str] = mapped_column(Text)
    facts: Mapped[str | None] = mapped_column(Text)
    reasons: Mapped[str | None] = mapped_column(Text)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    headcount: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20))
    # A petition from the same person on the same matter while this one was open (or barred).
    repeat_of_id: Mapped[int | None] = mapped_column(ForeignKey("petitions.case_id"), index=True)
    # 信访工作条例 Art. 36: after re-review the same facts and reasons are not accepted again.
    not_to_be_accepted_again: Mapped[bool] = mapped_column(Boolean, default=False)
    # acceptance
    decision: Mapped[str | None] = mapped_column(String(20))
    decided_on: Mapped[date | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    forward_to: Mapped[str | None] = mapped_column(String(200))
    responsible_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    # handling
    handling_method: Mapped[str | None] = mapped_column(String(20))
    extension_days: Mapped[int | None] = mapped_column(Integer)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    extension_approved_on: Mapped[date | None]
    reply_returns: Mapped[int] = mapped_column(Integer, default=0)
    # reply
    outcome: Mapped[str | None] = mapped_column(String(20))
    reply_text: Mapped[str | None] = mapped_column(Text)
    legal_basis: Mapped[str | None] = mapped_column(Text)
    delivered_on: Mapped[date | None]
    delivery_method: Mapped[str | None] = mapped_column(String(20))
    # evaluation
    rating: Mapped[str | None] = mapped_column(String(30))
    evaluated_on: Mapped[date | None]
    closed_on: Mapped[date | None]
    created_at: Mapped[datetime]


class Petitioner(Base):
    """A petitioner (or a representative of a group visit); ID and phone encrypted at rest."""

    __tablename__ = "petitioners"
    id: Mapped[int] = mapped_column(primary_key=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petitions.case_id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(100), index=True)
    # AES-GCM ciphertext, keyed HMAC-SHA256 (exact lookup, repeat detection) and list mask.
    id_number_enc: Mapped[str | None] = mapped_column(String(200))
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(40))
    phone_enc: Mapped[str | None] = mapped_column(String(200))
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(300))
    is_representative: Mapped[bool] = mapped_column(Boolean, default=False)


class PetitionReview(Base):
    """A review (复查, Art. 35) or re-review (复核, Art. 36) of a petition's reply."""

    __tablename__ = "petition_reviews"
    __table_args__ = (UniqueConstraint("petition_id", "level"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petitions.case_id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    level: Mapped[str] = mapped_column(String(20))
    requested_on: Mapped[date]
    window_end: Mapped[date]
    decision_due_on: Mapped[date]
    review_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    outcome: Mapped[str | None] = mapped_column(String(20))
    decided_on: Mapped[date | None]
    delivered_on: Mapped[date | None]
    created_at: Mapped[datetime]


class PetitionSupervision(Base):
    """A supervision (督办) opened when a petition deadline was missed; one per miss."""

    __tablename__ = "petition_supervisions"
    __table_args__ = (
        UniqueConstraint("petition_id", "deadline_kind", "due_on"),
        Index("ix_petition_supervisions_opened", "opened_on", "petition_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petitions.case_id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    deadline_kind: Mapped[str] = mapped_column(String(40))
    due_on: Mapped[date]
    opened_on: Mapped[date]
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    method: Mapped[str | None] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(Text)
    instructed_on: Mapped[date | None]
    created_at: Mapped[datetime]
