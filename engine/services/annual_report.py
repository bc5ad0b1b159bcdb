"""The year-end figures of the street's rule-of-law report (DOMAIN.md §4, issue 8).

Every figure comes from the KPI sections registered with `engine.services.reports` — the
same functions the dashboard calls for a month or any period — so the dashboard and the
annual report can never disagree. This module adds one section of its own (receptions,
petitions assigned from above or filed through proxies, mediation agreements) and the
breakdowns by channel, category and hazard type. All of it is SQL aggregation: no row is
loaded into Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any

from sqlalchemy import and_, case, func, or_, select

from engine.bootstrap import Services
from engine.clock import local_today
from engine.domain.enums import Category, Channel, DisputeType, ReceptionKind, Source
from engine.domain.kpi import KPI_DEFINITIONS, NO_VALUE, KpiDefinition, Ratio
from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import Hazard, MediationAgreement, Petition, Reception, Unit
from engine.services import reports
from engine.services.access import Actor
from engine.services.reports import Figure, Period, register_definitions, register_section

MIN_YEAR = 2000
MAX_YEAR = 2100

# Definitions of the figures the capabilities' sections add beyond DOMAIN.md §3's KPIs.
FIGURE_DEFINITIONS: Mapping[str, KpiDefinition] = MappingProxyType(
    {
        "leader_receptions": KpiDefinition(
            "领导接访（件次）",
            "Leader receptions (occasions)",
            "年度内领导接待来访群众的次数（每次接访记一件次）。",
            "Occasions on which a leader received petitioners in the period.",
        ),
        "reception_persons": KpiDefinition(
            "接访人次",
            "Persons received",
            "领导接访中接待的群众人次之和。",
            "Sum of the persons received at leader receptions in the period.",
        ),
        "field_visits": KpiDefinition(
            "领导下访（次）",
            "Leader field visits",
            "年度内领导下访的次数。",
            "Field visits made by leaders in the period.",
        ),
        "field_visit_persons": KpiDefinition(
            "走访人次",
            "Field-visit person-times",
            "领导下访中走访的群众人次之和。",
            "Sum of the persons visited on leaders' field visits in the period.",
        ),
        "assigned_from_above": KpiDefinition(
            "上级交办件数",
            "Assigned from above",
            "期间内收到的信访件中，上级交办的件数。",
            "Petitions received in the period that were assigned down from above.",
        ),
        "via_proxy": KpiDefinition(
            "信访代理件数",
            "Filed through proxies",
            "期间内收到的信访件中，由信访代理人代为提出的件数。",
            "Petitions received in the period filed by a petition proxy (信访代理).",
        ),
        "by_channel": KpiDefinition(
            "按信访形式",
            "By channel",
            "期间内收到的信访件按来信、走访、网上、电话、传真分类的件数。",
            "Petitions received in the period, counted by the channel they arrived by.",
        ),
        "by_category": KpiDefinition(
            "按信访类别",
            "By category",
            "期间内收到的信访件按建议意见、检举控告、申诉求决分类的件数。",
            "Petitions received in the period, counted by category.",
        ),
        "screening_rounds_due": KpiDefinition(
            "应报排查轮次",
            "Screening rounds due",
            "报送截止日在期间内的单位月度排查轮次数。",
            "Monthly screening rounds (one per unit and month) due in the period.",
        ),
        "screening_reported_on_time": KpiDefinition(
            "按时上报轮次",
            "Reported on time",
            "截止日前上报并经单位负责人签批（含零报告）的轮次数。",
            "Rounds reported and signed by the unit head (incl. zero reports) by the due day.",
        ),
        "hazards_by_type": KpiDefinition(
            "隐患按纠纷类型",
            "Hazards by type",
            "期间内发现的隐患按纠纷类型分类的件数。",
            "Hazards found in the period, counted by dispute type.",
        ),
        "hazards_signed_off": KpiDefinition(
            "隐患已销号",
            "Hazards signed off",
            "期间内发现的隐患中，截至期末已销号的件数。",
            "Hazards found in the period and signed off by its end.",
        ),
        "mediation_agreements": KpiDefinition(
            "调解协议",
            "Mediation agreements",
            "期间内签订的人民调解协议书份数。",
            "People's mediation agreements (调解协议书) signed in the period.",
        ),
    }
)


def definition_of(key: str) -> KpiDefinition | None:
    """The label and one-line definition of a figure (DOMAIN.md §3 first, then the sections')."""
    return (
        KPI_DEFINITIONS.get(key)
        or reports.SECTION_DEFINITIONS.get(key)
        or FIGURE_DEFINITIONS.get(key)
    )


# -- the section this capability adds to the KPI report ---------------------------------------


def _units(period: Period) -> Any:
    return select(Unit.id).where(Unit.path.startswith(period.unit_path))


def petition_scope(period: Period) -> Any:
    """Petitions registered at, about or handled by the unit's subtree (as the petition KPIs)."""
    units = _units(period)
    return or_(
        Petition.unit_id.in_(units),
        Petition.village_id.in_(units),
        Petition.responsible_unit_id.in_(units),
    )


def activity_figures(uow: UnitOfWork, period: Period) -> dict[str, Figure]:
    """Receptions and field visits, assigned and proxy petitions, mediation agreements."""
    session = uow.session
    start, end = period.date_from, period.date_to
    reception = Reception.kind == ReceptionKind.reception.value
    visit = Reception.kind == ReceptionKind.field_visit.value
    receptions, reception_persons, visits, visit_persons = session.execute(
        select(
            func.count(case((reception, 1))),
            func.coalesce(func.sum(case((reception, Reception.person_count), else_=0)), 0),
            func.count(case((visit, 1))),
            func.coalesce(func.sum(case((visit, Reception.person_count), else_=0)), 0),
        ).where(Reception.unit_id.in_(_units(period)), Reception.held_on.between(start, end))
    ).one()
    assigned, proxied = session.execute(
        select(
            func.count(case((Petition.source == Source.assigned.value, 1))),
            func.count(
                case((and_(Petition.proxy_agent.is_not(None), Petition.proxy_agent != ""), 1))
            ),
        ).where(petition_scope(period), Petition.received_on.between(start, end))
    ).one()
    agreements = session.scalar(
        select(func.count())
        .select_from(MediationAgreement)
        .join(Hazard, Hazard.id == MediationAgreement.hazard_id)
        .where(Hazard.unit_id.in_(_units(period)), MediationAgreement.signed_on.between(start, end))
    )
    return {
        "leader_receptions": int(receptions),
        "reception_persons": int(reception_persons),
        "field_visits": int(visits),
        "field_visit_persons": int(visit_persons),
        "assigned_from_above": int(assigned),
        "via_proxy": int(proxied),
        "mediation_agreements": int(agreements or 0),
    }


register_section("annual_activity", activity_figures)
register_definitions(FIGURE_DEFINITIONS)


def breakdowns(uow: UnitOfWork, period: Period) -> dict[str, dict[str, int]]:
    """Petitions by channel and category, hazards by dispute type: GROUP BY counts."""
    session = uow.session
    received = and_(petition_scope(period), Petition.received_on.between(*_span(period)))
    by_channel = dict.fromkeys((c.value for c in Channel), 0)
    by_category = dict.fromkeys((c.value for c in Category), 0)
    # One pass over the year's petitions; the (at most 15) groups are added up here.
    for channel, category, count in session.execute(
        select(Petition.channel, Petition.category, func.count())
        .where(received)
        .group_by(Petition.channel, Petition.category)
    ):
        by_channel[str(channel)] = by_channel.get(str(channel), 0) + int(count)
        by_category[str(category)] = by_category.get(str(category), 0) + int(count)
    by_type = dict.fromkeys((t.value for t in DisputeType), 0)
    for value, count in session.execute(
        select(Hazard.dispute_type, func.count())
        .where(Hazard.unit_id.in_(_units(period)), Hazard.found_on.between(*_span(period)))
        .group_by(Hazard.dispute_type)
    ):
        by_type[str(value)] = int(count)
    return {"by_channel": by_channel, "by_category": by_category, "hazards_by_type": by_type}


def _span(period: Period) -> tuple[date, date]:
    return period.date_from, period.date_to


# -- the report ---------------------------------------------------------------------------------

# (group key, zh, en, figure keys in the order the report states them)
GROUPS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "receptions",
        "领导接访与下访",
        "Leader receptions and field visits",
        ("leader_receptions", "reception_persons", "field_visits", "field_visit_persons"),
    ),
    (
        "petitions",
        "信访事项",
        "Petitions",
        ("received", "assigned_from_above", "via_proxy", "by_channel", "by_category"),
    ),
    (
        "handling",
        "办理质效",
        "Handling",
        (
            "accepted_on_time_rate",
            "replied_on_time_rate",
            "evaluation_rate",
            "satisfaction_rate",
            "repeat_petitions",
            "supervised",
            "overdue_open",
        ),
    ),
    (
        "key_persons",
        "重点信访人员",
        "Key petitioners",
        (
            "key_persons_registered",
            "key_persons_under_control_high",
            "key_persons_under_control_medium",
            "key_persons_under_control_low",
            "key_persons_signed_off",
            "leader_ownership_resolution_rate",
        ),
    ),
    (
        "screening",
        "矛盾纠纷排查化解",
        "Dispute screening",
        (
            "screening_rounds_due",
            "screening_reported_on_time",
            "screening_report_timeliness",
            "zero_reports",
            "hazards_found",
            "hazards_by_type",
            "hazards_signed_off",
            "hazard_signoff_rate",
            "hazards_overdue",
            "mediation_agreements",
        ),
    ),
)

BREAKDOWN_LABELS: Mapping[str, type[Channel] | type[Category] | type[DisputeType]] = (
    MappingProxyType(
        {"by_channel": Channel, "by_category": Category, "hazards_by_type": DisputeType}
    )
)


@dataclass(frozen=True)
class AnnualPeriod:
    """The year asked for and the dates its figures cover (up to today in the current year)."""

    year: int
    period: Period
    complete: bool


def year_period(
    uow: UnitOfWork, actor: Actor, year: int, unit_id: int | None, today: date
) -> AnnualPeriod:
    """1 January to 31 December (or today) for the unit in the caller's scope (404 otherwise)."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationError(
            "invalid year", {"year": [f"Give a year between {MIN_YEAR} and {MAX_YEAR}."]}
        )
    first = date(year, 1, 1)
    if first > today:
        raise ValidationError("invalid year", {"year": ["The year has not begun yet."]})
    last = min(date(year, 12, 31), today)
    period = reports.resolve_period(uow, actor, first, last, unit_id)
    return AnnualPeriod(year, period, complete=last == date(year, 12, 31))


def _declared(key: str, labels: Mapping[str, Mapping[str, str]]) -> KpiDefinition | None:
    """A KPI declared by a deployed case type (issue 11): its labels, a generic definition."""
    label = labels.get(key)
    if label is None:
        return None
    return KpiDefinition(
        label["zh"],
        label["en"],
        label.get("definition_zh") or f"按已部署案件类型声明的口径统计的“{label['zh']}”。",
        label.get("definition_en") or f"'{label['en']}' as declared by its deployed case type.",
    )


def _figure(
    key: str, figure: Figure, lang: str, declared: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    definition = definition_of(key) or _declared(key, declared or {})
    view: dict[str, Any] = {"key": key, "kind": "count", "items": []}
    if definition is not None:
        view.update(
            label=definition.label_en if lang == "en" else definition.label_zh,
            label_zh=definition.label_zh,
            label_en=definition.label_en,
            definition_zh=definition.definition_zh,
            definition_en=definition.definition_en,
        )
    else:
        view.update(label=key, label_zh=key, label_en=key, definition_zh="", definition_en="")
    if isinstance(figure, Ratio):
        view.update(kind="rate", **figure.as_dict())
        view["display"] = figure.percent()
    else:
        view.update(
            numerator=None,
            denominator=None,
            value=figure,
            display=NO_VALUE if figure is None else str(figure),
        )
    return view


def _breakdown(key: str, counts: Mapping[str, int], lang: str) -> dict[str, Any]:
    view = _figure(key, sum(counts.values()), lang)
    labels = BREAKDOWN_LABELS[key]
    view["kind"] = "breakdown"
    known = labels.labels("zh")
    view["items"] = [
        {
            "key": value,
            "label": labels(value).label(lang) if value in known else value,
            "label_zh": labels(value).label("zh") if value in known else value,
            "label_en": labels(value).label("en") if value in known else value,
            "value": count,
        }
        for value, count in counts.items()
    ]
    return view


def collect_figures(uow: UnitOfWork, period: Period) -> dict[str, Figure]:
    """Every registered section's figures for the period, plus the derived screening counts."""
    figures: dict[str, Figure] = {}
    for _name, section in reports.SECTIONS:
        figures.update(section(uow, period))
    timeliness = figures.get("screening_report_timeliness")
    if isinstance(timeliness, Ratio):
        figures["screening_rounds_due"] = timeliness.denominator
        figures["screening_reported_on_time"] = timeliness.numerator
    signoff = figures.get("hazard_signoff_rate")
    if isinstance(signoff, Ratio):
        figures["hazards_signed_off"] = signoff.numerator
    return figures


def build_annual_report(uow: UnitOfWork, annual: AnnualPeriod, lang: str = "zh") -> dict[str, Any]:
    """The report: groups of figures, each with value, numerator, denominator and definitions."""
    period = annual.period
    figures = collect_figures(uow, period)
    splits = breakdowns(uow, period)
    unit = uow.session.get(Unit, period.unit_id)
    if unit is None:
        raise NotFoundError("unit not found")
    groups: list[dict[str, Any]] = []
    placed: set[str] = set()
    for key, zh, en, keys in GROUPS:
        items: list[dict[str, Any]] = []
        for figure_key in keys:
            if figure_key in splits:
                items.append(_breakdown(figure_key, splits[figure_key], lang))
            elif figure_key in figures:
                items.append(_figure(figure_key, figures[figure_key], lang))
            placed.add(figure_key)
        groups.append(
            {"key": key, "title": en if lang == "en" else zh, "title_zh": zh, "title_en": en,
             "figures": items}
        )  # fmt: skip
    declared = reports.figure_labels(uow)
    others = [_figure(k, v, lang, declared) for k, v in figures.items() if k not in placed]
    if others:
        groups.append(
            {"key": "other", "title": "Other figures" if lang == "en" else "其他指标",
             "title_zh": "其他指标", "title_en": "Other figures", "figures": others}
        )  # fmt: skip
    return {
        "year": annual.year,
        "from": period.date_from,
        "to": period.date_to,
        "complete": annual.complete,
        "unit": {"id": unit.id, "code": unit.code, "name": unit.name, "kind": unit.kind},
        "groups": groups,
    }


def annual_report(
    services: Services, actor: Actor, year: int, unit_id: int | None = None, lang: str = "zh"
) -> dict[str, Any]:
    """GET /reports/annual: every year-end figure for the unit and its sub-units."""
    today = local_today(services.clock)
    with services.uow() as uow:
        annual = year_period(uow, actor, year, unit_id, today)
        return build_annual_report(uow, annual, lang)


def flat_figures(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's figures by key (tests, the CLI and the workbook read them this way)."""
    return {f["key"]: f for g in report["groups"] for f in g["figures"]}


def unit_id_by_code(services: Services, code: str) -> int:
    """The id of a unit by its code (the CLI's --unit)."""
    with services.uow() as uow:
        found = uow.session.scalar(select(Unit.id).where(Unit.code == code))
    if found is None:
        raise NotFoundError(f"no unit with code {code}")
    return int(found)


# -- the report as a workbook -----------------------------------------------------------------


def annual_report_xlsx(report: Mapping[str, Any], *, generated_at: Any) -> bytes:
    """The annual figures as one printable sheet (A4 landscape, Chinese headers)."""
    from engine.services.excel import Column, write_ledger

    columns = (
        Column("序号", 6),
        Column("指标", 24),
        Column("数值", 10),
        Column("分子", 8),
        Column("分母", 8),
        Column("口径说明", 44),
        Column("Definition", 44),
    )
    rows: list[list[Any]] = []
    n = 0
    for group in report["groups"]:
        rows.append(["", f"【{group['title_zh']}】", "", "", "", "", group["title_en"]])
        for fig in group["figures"]:
            n += 1
            rows.append(
                [
                    n,
                    fig["label_zh"],
                    fig["display"],
                    fig["numerator"],
                    fig["denominator"],
                    fig["definition_zh"],
                    fig["definition_en"],
                ]
            )
            for item in fig.get("items", []):
                rows.append(
                    ["", f"　其中：{item['label_zh']}", item["value"], None, None, "",
                     item["label_en"]]
                )  # fmt: skip
    unit = report["unit"]
    span = f"{report['from']} 至 {report['to']}"
    return write_ledger(
        f"{report['year']}年度",
        f"{unit['name']} {report['year']}年度信访和矛盾纠纷工作数据",
        columns,
        rows,
        generated_at=generated_at,
        stamp_extra=f"统计期间：{span}" + ("" if report["complete"] else "（年度未结束）"),
    )
