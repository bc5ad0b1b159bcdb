"""KPI figures for a period and unit: one code path for dashboard, API and annual report.

Each capability registers a section that computes its figures with SQL aggregation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from engine.domain.kpi import KPI_DEFINITIONS, KpiDefinition, Ratio
from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import Unit
from engine.services.access import Actor


@dataclass(frozen=True)
class Period:
    """A closed range of business dates and the unit (with its sub-units) it covers."""

    date_from: date
    date_to: date
    unit_id: int
    unit_path: str


Figure = Ratio | int | None
Section = Callable[[UnitOfWork, Period], dict[str, Figure]]
SECTIONS: list[tuple[str, Section]] = []
# Definitions of sections' figures beyond DOMAIN.md §3 (KPI_DEFINITIONS wins on a clash).
SECTION_DEFINITIONS: dict[str, KpiDefinition] = {}
# Labels of figures known only at run time (data-declared KPIs): key -> {"zh", "en"},
# optionally "definition_zh"/"definition_en".
Labels = Mapping[str, Mapping[str, str]]
LabelSource = Callable[[UnitOfWork], Labels]
LABEL_SOURCES: list[LabelSource] = []


def register_section(name: str, section: Section) -> None:
    """Add a capability's KPI section (petitions, screening, key persons)."""
    if all(n != name for n, _ in SECTIONS):
        SECTIONS.append((name, section))


def register_definitions(definitions: Mapping[str, KpiDefinition]) -> None:
    """Add the labels and definitions of a section's figures that KPI_DEFINITIONS lacks."""
    for key, definition in definitions.items():
        SECTION_DEFINITIONS.setdefault(key, definition)


def register_labels(source: LabelSource) -> None:
    """Add a source of labels for figures without a KPI_DEFINITIONS entry."""
    if source not in LABEL_SOURCES:
        LABEL_SOURCES.append(source)


def figure_labels(uow: UnitOfWork) -> dict[str, Mapping[str, str]]:
    """The labels every registered source gives, for figure_view."""
    return {key: label for source in LABEL_SOURCES for key, label in source(uow).items()}


def resolve_period(
    uow: UnitOfWork, actor: Actor, date_from: date, date_to: date, unit_id: int | None
) -> Period:
    """Check the range and that the unit lies in the caller's scope (404 otherwise)."""
    if date_to < date_from:
        raise ValidationError("invalid period", {"to": ["Must not be before 'from'."]})
    if unit_id is None:
        paths = actor.paths()
        if paths is None:
            unit = uow.session.scalars(
                select(Unit).where(Unit.parent_id.is_(None)).order_by(Unit.id)
            ).first()
        else:
            unit = uow.session.scalars(
                select(Unit).where(Unit.path.in_(paths)).order_by(Unit.path)
            ).first()
    else:
        unit = uow.session.get(Unit, unit_id)
    if unit is None or not actor.covers(unit.path):
        raise NotFoundError("unit not found")
    return Period(date_from, date_to, unit.id, unit.path)


def figure_view(
    key: str, figure: Figure, lang: str = "zh", labels: Labels | None = None
) -> dict[str, Any]:
    """A figure with its numerator, denominator and one-line definition."""
    definition = KPI_DEFINITIONS.get(key) or SECTION_DEFINITIONS.get(key)
    declared = (labels or {}).get(key)
    view: dict[str, Any] = {"key": key}
    if definition is not None:
        view.update(
            label=definition.label_en if lang == "en" else definition.label_zh,
            definition_zh=definition.definition_zh,
            definition_en=definition.definition_en,
        )
    elif declared is not None:
        view["label"] = declared.get("en" if lang == "en" else "zh") or key
        view.update({k: declared[k] for k in ("definition_zh", "definition_en") if declared.get(k)})
    if isinstance(figure, Ratio):
        view.update(figure.as_dict())
        view["display"] = figure.percent()
    else:
        view.update(
            numerator=None,
            denominator=None,
            value=figure,
            display="—" if figure is None else str(figure),
        )
    return view


def kpi_report(uow: UnitOfWork, period: Period, lang: str = "zh") -> dict[str, Any]:
    """Every registered section's figures for the period."""
    kpis: dict[str, Any] = {}
    labels = figure_labels(uow)
    for _name, section in SECTIONS:
        for key, figure in section(uow, period).items():
            kpis[key] = figure_view(key, figure, lang, labels)
    return {
        "from": period.date_from,
        "to": period.date_to,
        "unit_id": period.unit_id,
        "kpis": kpis,
    }
