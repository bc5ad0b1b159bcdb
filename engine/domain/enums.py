"""Enumerated values of the petition and dispute domain, with their zh/en labels (DOMAIN.md §1).

Each enum is a ``StrEnum`` whose values are the English glossary terms used in code, the
database and the API. Labels live in one table per enum (``_LABELS`` below), checked at
import time so a member without a label cannot ship.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, Self

Lang = Literal["zh", "en"]


class LabelledEnum(StrEnum):
    """A string enum whose members carry a Chinese and an English label."""

    def label(self, lang: str = "zh") -> str:
        """Return this member's label in ``lang`` ('zh' or 'en'; anything else falls back to zh)."""
        zh, en = _LABELS[type(self)][self.value]
        return en if lang == "en" else zh

    @classmethod
    def labels(cls, lang: str = "zh") -> dict[str, str]:
        """Return ``{value: label}`` for every member, in declaration order."""
        return {member.value: member.label(lang) for member in cls}

    @classmethod
    def parse(cls, value: str) -> Self:
        """Return the member for ``value``, raising ``ValueError`` naming the allowed values."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ValueError(f"{cls.__name__}: {value!r} is not one of {allowed}") from None


class Role(LabelledEnum):
    """A user's role in the system (DESIGN.md §6)."""

    admin = "admin"
    intake = "intake"
    handler = "handler"
    leader = "leader"
    supervisor = "supervisor"
    reporter = "reporter"


class UnitKind(LabelledEnum):
    """Kind of organisational unit: district, street, village, community or department."""

    district = "district"
    street = "street"
    village = "village"
    community = "community"
    department = "department"


class Channel(LabelledEnum):
    """How a petition arrived (渠道)."""

    visit = "visit"
    letter = "letter"
    online = "online"
    phone = "phone"
    fax = "fax"


class Category(LabelledEnum):
    """Petition category (信访工作条例 Art. 31: 建议意见 / 检举控告 / 申诉求决)."""

    suggestion = "suggestion"
    accusation = "accusation"
    claim = "claim"


class Source(LabelledEnum):
    """Where a petition came from: filed here, assigned from above (交办), or forwarded (转送)."""

    direct = "direct"
    assigned = "assigned"
    forwarded = "forwarded"


class AcceptanceDecision(LabelledEnum):
    """The acceptance decision (受理 / 不予受理 / 转送; 信访工作条例 Art. 23)."""

    accept = "accept"
    not_accept = "not_accept"
    forward = "forward"


class HandlingMethod(LabelledEnum):
    """How a petition is handled (办理)."""

    investigation = "investigation"
    mediation = "mediation"
    hearing = "hearing"


class ReplyOutcome(LabelledEnum):
    """Outcome of the written reply (处理意见书; 信访工作条例 Art. 32)."""

    support = "support"
    explain = "explain"
    not_support = "not_support"


class DeliveryMethod(LabelledEnum):
    """How a written reply was delivered (送达)."""

    in_person = "in_person"
    post = "post"
    online = "online"
    sms = "sms"


class Rating(LabelledEnum):
    """The petitioner's evaluation of the handling (评价)."""

    satisfied = "satisfied"
    basically_satisfied = "basically_satisfied"
    dissatisfied = "dissatisfied"


class ReviewLevel(LabelledEnum):
    """Appeal level: review (复查, Art. 35) then re-review (复核, Art. 36)."""

    review = "review"
    re_review = "re_review"


class ReviewOutcome(LabelledEnum):
    """Outcome of a review or re-review."""

    uphold = "uphold"
    change = "change"
    revoke = "revoke"


class SupervisionMethod(LabelledEnum):
    """Form of a supervision intervention (督办)."""

    phone = "phone"
    document = "document"
    interview = "interview"
    on_site = "on_site"
    joint = "joint"


class RiskLevel(LabelledEnum):
    """Risk grade of a key petitioner or a dispute hazard (高/中/低)."""

    high = "high"
    medium = "medium"
    low = "low"


class RiskSignal(LabelledEnum):
    """Trend signal recorded at a contact with a key petitioner."""

    none = "none"
    rising = "rising"
    urgent = "urgent"


class ContactMethod(LabelledEnum):
    """How a team contacted a key petitioner."""

    visit = "visit"
    phone = "phone"
    video = "video"


class KeyPersonSource(LabelledEnum):
    """Why a person became a key petitioner (重点信访人员)."""

    district_assigned = "district_assigned"
    repeat_petitions = "repeat_petitions"
    screening = "screening"


class ClosureEvidence(LabelledEnum):
    """Evidence offered when proposing to close a key petitioner's file (DOMAIN.md §5)."""

    reply_delivered = "reply_delivered"
    mediation_agreement = "mediation_agreement"
    commitment = "commitment"
    other = "other"


class DisputeType(LabelledEnum):
    """Type of a dispute hazard in the screening ledger (DOMAIN.md §5)."""

    family = "family"
    neighbour = "neighbour"
    land_homestead = "land_homestead"
    wages = "wages"
    demolition = "demolition"
    property_management = "property_management"
    contract_debt = "contract_debt"
    environment = "environment"
    tourism_consumer = "tourism_consumer"
    other = "other"


class ResolutionMethod(LabelledEnum):
    """Method chosen to resolve a dispute hazard (DOMAIN.md §5)."""

    people_mediation = "people_mediation"
    administrative_mediation = "administrative_mediation"
    litigation_guidance = "litigation_guidance"
    petition = "petition"


class Resolution(LabelledEnum):
    """How a dispute hazard was resolved (化解)."""

    agreement = "agreement"
    decision = "decision"
    commitment = "commitment"
    referred = "referred"


class DeadlineState(LabelledEnum):
    """Whether a deadline is still running, was met, or was missed."""

    pending = "pending"
    met = "met"
    missed = "missed"


class WarningLevel(LabelledEnum):
    """Red/yellow card (红黄牌): yellow = deadline approaching, red = overdue."""

    yellow = "yellow"
    red = "red"


class ReceptionKind(LabelledEnum):
    """Leader reception on set days (领导接访) or a leader's field visit (下访)."""

    reception = "reception"
    field_visit = "field_visit"


class RoundStatus(LabelledEnum):
    """Status of a unit's monthly screening round."""

    open = "open"
    submitted = "submitted"
    signed = "signed"
    overdue = "overdue"


# One table per enum: value -> (zh, en).
_TABLES: dict[type[LabelledEnum], dict[str, tuple[str, str]]] = {
    Role: {
        "admin": ("系统管理员", "Administrator"),
        "intake": ("登记员", "Intake clerk"),
        "handler": ("承办人", "Case handler"),
        "leader": ("领导", "Leader"),
        "supervisor": ("督办人员", "Supervisor"),
        "reporter": ("排查信息员", "Screening reporter"),
    },
    UnitKind: {
        "district": ("区", "District"),
        "street": ("街道", "Street"),
        "village": ("村", "Village"),
        "community": ("社区", "Community"),
        "department": ("部门（站所办）", "Department"),
    },
    Channel: {
        "visit": ("走访", "Visit"),
        "letter": ("来信", "Letter"),
        "online": ("网上", "Online"),
        "phone": ("电话", "Phone"),
        "fax": ("传真", "Fax"),
    },
    Category: {
        "suggestion": ("建议意见", "Suggestion"),
        "accusation": ("检举控告", "Accusation"),
        "claim": ("申诉求决", "Claim"),
    },
    Source: {
        "direct": ("直接受理", "Direct"),
        "assigned": ("上级交办", "Assigned from above"),
        "forwarded": ("转送", "Forwarded"),
    },
    AcceptanceDecision: {
        "accept": ("受理", "Accept"),
        "not_accept": ("不予受理", "Not accept"),
        "forward": ("转送", "Forward"),
    },
    HandlingMethod: {
        "investigation": ("调查核实", "Investigation"),
        "mediation": ("调解", "Mediation"),
        "hearing": ("听证", "Hearing"),
    },
    ReplyOutcome: {
        "support": ("支持", "Support"),
        "explain": ("解释说明", "Explain"),
        "not_support": ("不予支持", "Not support"),
    },
    DeliveryMethod: {
        "in_person": ("直接送达", "In person"),
        "post": ("邮寄送达", "Post"),
        "online": ("网上送达", "Online"),
        "sms": ("短信送达", "SMS"),
    },
    Rating: {
        "satisfied": ("满意", "Satisfied"),
        "basically_satisfied": ("基本满意", "Basically satisfied"),
        "dissatisfied": ("不满意", "Dissatisfied"),
    },
    ReviewLevel: {
        "review": ("复查", "Review"),
        "re_review": ("复核", "Re-review"),
    },
    ReviewOutcome: {
        "uphold": ("维持", "Uphold"),
        "change": ("变更", "Change"),
        "revoke": ("撤销", "Revoke"),
    },
    SupervisionMethod: {
        "phone": ("电话督办", "Phone"),
        "document": ("发函督办", "Document"),
        "interview": ("约谈督办", "Interview"),
        "on_site": ("实地督办", "On site"),
        "joint": ("联合督办", "Joint"),
    },
    RiskLevel: {
        "high": ("高", "High"),
        "medium": ("中", "Medium"),
        "low": ("低", "Low"),
    },
    RiskSignal: {
        "none": ("无异常", "None"),
        "rising": ("风险上升", "Rising"),
        "urgent": ("紧急", "Urgent"),
    },
    ContactMethod: {
        "visit": ("上门走访", "Visit"),
        "phone": ("电话", "Phone"),
        "video": ("视频", "Video"),
    },
    KeyPersonSource: {
        "district_assigned": ("区级交办", "Assigned by the district"),
        "repeat_petitions": ("重复信访", "Repeat petitions"),
        "screening": ("排查发现", "Found in screening"),
    },
    ClosureEvidence: {
        "reply_delivered": ("处理意见已送达（有回执）", "Reply delivered (with receipt)"),
        "mediation_agreement": ("调解协议", "Mediation agreement"),
        "commitment": ("息访承诺书", "Signed commitment"),
        "other": ("其他", "Other"),
    },
    DisputeType: {
        "family": ("婚姻家庭", "Family"),
        "neighbour": ("邻里纠纷", "Neighbour"),
        "land_homestead": ("土地宅基地", "Land / homestead"),
        "wages": ("劳资欠薪", "Wages"),
        "demolition": ("征地拆迁", "Demolition"),
        "property_management": ("物业管理", "Property management"),
        "contract_debt": ("合同债务", "Contract / debt"),
        "environment": ("环境污染", "Environment"),
        "tourism_consumer": ("旅游消费", "Tourism / consumer"),
        "other": ("其他", "Other"),
    },
    ResolutionMethod: {
        "people_mediation": ("人民调解", "People's mediation"),
        "administrative_mediation": ("行政调解", "Administrative mediation"),
        "litigation_guidance": ("诉讼引导", "Litigation guidance"),
        "petition": ("信访渠道", "Petition"),
    },
    Resolution: {
        "agreement": ("达成协议", "Agreement"),
        "decision": ("作出决定", "Decision"),
        "commitment": ("书面承诺", "Commitment"),
        "referred": ("移交办理", "Referred"),
    },
    DeadlineState: {
        "pending": ("未到期", "Pending"),
        "met": ("按期", "Met"),
        "missed": ("逾期", "Missed"),
    },
    WarningLevel: {
        "yellow": ("黄牌", "Yellow"),
        "red": ("红牌", "Red"),
    },
    ReceptionKind: {
        "reception": ("领导接访", "Leader reception"),
        "field_visit": ("领导下访", "Field visit"),
    },
    RoundStatus: {
        "open": ("进行中", "Open"),
        "submitted": ("已上报", "Submitted"),
        "signed": ("已签批", "Signed"),
        "overdue": ("逾期未报", "Overdue"),
    },
}


def _check_tables() -> dict[type[LabelledEnum], Mapping[str, tuple[str, str]]]:
    """Fail at import time if any enum and its label table disagree."""
    for enum_cls, table in _TABLES.items():
        values = {m.value for m in enum_cls}
        if values != set(table):
            raise RuntimeError(
                f"label table of {enum_cls.__name__} does not match its members: "
                f"missing {sorted(values - set(table))}, extra {sorted(set(table) - values)}"
            )
    return {cls: MappingProxyType(table) for cls, table in _TABLES.items()}


_LABELS = _check_tables()

ALL_ENUMS: tuple[type[LabelledEnum], ...] = tuple(_TABLES)
"""Every domain enum, e.g. for exporting label tables to the UI."""


def label(value: LabelledEnum, lang: str = "zh") -> str:
    """Return the label of any domain enum member in ``lang``."""
    return value.label(lang)
