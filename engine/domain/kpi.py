"""KPI arithmetic and definitions supervisors are judged on (DOMAIN.md §3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from engine.domain.enums import Rating

NO_VALUE = "—"
"""Shown for a ratio with nothing to measure (denominator 0): never pretend 100%."""


@dataclass(frozen=True)
class Ratio:
    """A rate kept as its two counts, so sub-units add up and 0/0 stays 'no value'."""

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        """Refuse negative counts and a numerator above a non-zero denominator."""
        if self.numerator < 0 or self.denominator < 0:
            raise ValueError(f"counts must not be negative: {self.numerator}/{self.denominator}")
        if self.denominator and self.numerator > self.denominator:
            raise ValueError(f"numerator exceeds denominator: {self.numerator}/{self.denominator}")

    @property
    def value(self) -> float | None:
        """Return numerator / denominator, or None when the denominator is 0."""
        if self.denominator == 0:
            return None
        return self.numerator / self.denominator

    def percent(self, digits: int = 1) -> str:
        """Return the value as a percentage string such as '97.5%', or '—' when undefined."""
        value = self.value
        if value is None:
            return NO_VALUE
        return f"{value * 100:.{digits}f}%"

    def as_dict(self) -> dict[str, int | float | None]:
        """Return ``{numerator, denominator, value}`` for JSON."""
        return {"numerator": self.numerator, "denominator": self.denominator, "value": self.value}

    def __add__(self, other: Ratio) -> Ratio:
        """Combine two units' counts (the rate of the whole, not the mean of rates)."""
        return Ratio(self.numerator + other.numerator, self.denominator + other.denominator)


class KpiDefinition(NamedTuple):
    """Label and one-line definition of a KPI, in Chinese and English."""

    label_zh: str
    label_en: str
    definition_zh: str
    definition_en: str


KPI_DEFINITIONS: Mapping[str, KpiDefinition] = MappingProxyType(
    {
        "received": KpiDefinition(
            "信访件数",
            "Petitions received",
            "期间内登记的信访件数（按收到日期）。",
            "Petitions registered with a received date in the period.",
        ),
        "accepted_on_time_rate": KpiDefinition(
            "及时受理率",
            "On-time acceptance rate",
            "15日内发出受理告知的件数 / 期间内到期的受理告知件数。",
            "Acceptance notices sent within 15 days / acceptance notices due in the period.",
        ),
        "replied_on_time_rate": KpiDefinition(
            "按期答复率",
            "On-time reply rate",
            "按期（含批准延期）送达答复的件数 / 期间内到期的答复件数。",
            "Replies delivered by the due date (incl. approved extension) / replies due.",
        ),
        "evaluation_rate": KpiDefinition(
            "参评率",
            "Evaluation rate",
            "信访人作出评价的件数 / 应参评件数。",
            "Cases evaluated by the petitioner / cases eligible for evaluation.",
        ),
        "satisfaction_rate": KpiDefinition(
            "满意率",
            "Satisfaction rate",
            "满意件数（按设置含基本满意）/ 已评价件数。",
            "Satisfied (incl. basically satisfied if so configured) / evaluated.",
        ),
        "repeat_petitions": KpiDefinition(
            "重复信访",
            "Repeat petitions",
            "同一信访人就同一事项在期间内再次信访的件数。",
            "Petitions by the same petitioner on the same matter again within the period.",
        ),
        "supervised": KpiDefinition(
            "督办件数",
            "Supervised cases",
            "期间内被督办的件数。",
            "Cases that received a supervision intervention in the period.",
        ),
        "overdue_open": KpiDefinition(
            "超期未办结",
            "Overdue and open",
            "截至期末已超过期限仍未办结的件数。",
            "Cases past their due date and still open at the end of the period.",
        ),
        "screening_report_timeliness": KpiDefinition(
            "排查按时上报率",
            "Screening report timeliness",
            "按期上报（含零报告）的单位数 / 应上报单位数。",
            "Units that reported (incl. zero reports) by the due day / units due.",
        ),
        "zero_reports": KpiDefinition(
            "零报告",
            "Zero reports",
            "期间内到期的排查轮次中，报送零报告（明确报告未发现矛盾纠纷，含待签批）的轮次数。",
            "Rounds due in the period reported (submitted or signed) as zero reports.",
        ),
        "hazards_found": KpiDefinition(
            "排查发现隐患",
            "Hazards found",
            "期间内排查发现（按发现日期）并登记入台账的矛盾纠纷隐患数。",
            "Dispute hazards found (by found date) and entered in the ledger in the period.",
        ),
        "hazard_signoff_rate": KpiDefinition(
            "隐患化解销号率",
            "Hazard sign-off rate",
            "已销号的隐患数 / 排查发现的隐患数。",
            "Hazards signed off / hazards found.",
        ),
        "hazards_overdue": KpiDefinition(
            "超期隐患",
            "Overdue hazards",
            "超过化解时限仍未销号的隐患数。",
            "Hazards past their time limit and not signed off.",
        ),
        "leader_ownership_resolution_rate": KpiDefinition(
            "包案化解率",
            "Leader ownership resolution rate",
            "已化解的包案件数 / 领导包案件数。",
            "Key-person cases resolved / key-person cases owned by a leader.",
        ),
        "key_persons_registered": KpiDefinition(
            "新登记重点信访人员",
            "Key persons registered",
            "期间内登记的重点信访人员人数。",
            "Key petitioners whose file was registered in the period.",
        ),
        "key_persons_under_control_high": KpiDefinition(
            "在控重点人员（高风险）",
            "Under control: high risk",
            "期末仍在管控（未销号）且最近研判为高风险的人数。",
            "Files open at the period's end whose latest assessment is high risk.",
        ),
        "key_persons_under_control_medium": KpiDefinition(
            "在控重点人员（中风险）",
            "Under control: medium risk",
            "期末仍在管控（未销号）且最近研判为中风险的人数。",
            "Files open at the period's end whose latest assessment is medium risk.",
        ),
        "key_persons_under_control_low": KpiDefinition(
            "在控重点人员（低风险）",
            "Under control: low risk",
            "期末仍在管控（未销号）且最近研判为低风险的人数。",
            "Files open at the period's end whose latest assessment is low risk.",
        ),
        "key_persons_signed_off": KpiDefinition(
            "重点人员销号",
            "Key persons signed off",
            "期间内经审批销号的重点信访人员人数。",
            "Key-person files signed off (销号) in the period.",
        ),
    }
)


def satisfied_count(ratings: Mapping[Rating, int], basic_counts_as_satisfied: bool) -> int:
    """Count satisfied ratings; 基本满意 counts only if so configured (DOMAIN.md §3)."""
    count = ratings.get(Rating.satisfied, 0)
    if basic_counts_as_satisfied:
        count += ratings.get(Rating.basically_satisfied, 0)
    return count


def satisfaction_ratio(ratings: Mapping[Rating, int], basic_counts_as_satisfied: bool) -> Ratio:
    """Return the satisfaction rate: satisfied / evaluated (DOMAIN.md §3)."""
    evaluated = sum(ratings.values())
    return Ratio(satisfied_count(ratings, basic_counts_as_satisfied), evaluated)
