"""`fengqiao report annual` and `fengqiao import petitions` (issue 8), added to web.cli's group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from engine.errors import FengqiaoError


def _fail(exc: FengqiaoError) -> click.ClickException:
    errors = getattr(exc, "errors", None)
    detail = f" {json.dumps(errors, ensure_ascii=False)}" if errors else ""
    return click.ClickException(f"{exc.message}{detail}")


@click.group("report")
def report() -> None:
    """Year-end figures."""


@report.command("annual")
@click.option("--year", type=int, required=True, help="The calendar year, e.g. 2025.")
@click.option("--unit", "unit_code", default=None, help="Unit code (default: the top unit).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--xlsx", "xlsx_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the figures as a printable workbook.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def report_annual(
    year: int, unit_code: str | None, lang: str, xlsx_file: str | None, as_json: bool
) -> None:
    """Every figure of the annual report for a unit and its sub-units."""
    from engine.services import annual_report
    from web.cli import ADMIN, _services

    services = _services()
    try:
        unit_id = annual_report.unit_id_by_code(services, unit_code) if unit_code else None
        data = annual_report.annual_report(services, ADMIN, year, unit_id, lang)
    except FengqiaoError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(_table(data, lang))
    if xlsx_file:
        content = annual_report.annual_report_xlsx(data, generated_at=services.clock.now())
        Path(xlsx_file).write_bytes(content)
        click.echo(f"written: {xlsx_file}")


def _table(data: dict[str, Any], lang: str) -> str:
    """The report as aligned text: label, value, numerator/denominator."""
    unit = data["unit"]
    lines = [f"{unit['name']} {data['year']}  ({data['from']} – {data['to']})"]
    for group in data["groups"]:
        lines.append("")
        lines.append(f"[{group['title']}]")
        for fig in group["figures"]:
            counts = ""
            if fig["denominator"] is not None:
                counts = f"  ({fig['numerator']}/{fig['denominator']})"
            lines.append(f"  {fig['label']}: {fig['display']}{counts}")
            for item in fig.get("items", []):
                lines.append(f"      {item['label']}: {item['value']}")
    if not data["complete"]:
        lines.append("")
        lines.append("(year to date)" if lang == "en" else "（年度尚未结束，截至今日）")
    return "\n".join(lines)


@click.group("import")
def import_group() -> None:
    """Import historical ledgers."""


@import_group.command("petitions")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and report; change nothing.")
@click.option("--all-or-nothing", is_flag=True, help="Commit nothing if any row fails.")
@click.option("--unit", "unit_code", default=None,
              help="Registering office for rows without a village (unit code).")  # fmt: skip
def import_petitions(file: str, dry_run: bool, all_or_nothing: bool, unit_code: str | None) -> None:
    """Import a petition ledger (.xlsx, the common layout; see the template)."""
    from engine.services import annual_report, petition_import
    from web.cli import ADMIN, _services

    services = _services()
    path = Path(file)
    data = path.read_bytes()
    try:
        unit_id = annual_report.unit_id_by_code(services, unit_code) if unit_code else None
        rows = len(petition_import.read_ledger(data).rows)
        with click.progressbar(length=rows, label="导入 importing", show_pos=True) as bar:
            result = petition_import.import_petitions(
                services,
                ADMIN,
                data,
                path.name,
                dry_run=dry_run,
                all_or_nothing=all_or_nothing,
                unit_id=unit_id,
                progress=bar.update,
            )
    except FengqiaoError as exc:
        raise _fail(exc) from exc
    click.echo(
        f"rows {len(result.rows)}: imported {result.count('imported')}, "
        f"would import {result.count('would_import')}, skipped {result.count('skipped')}, "
        f"failed {result.count('failed')}"
        + (" (dry run: nothing written)" if dry_run else "")
        + (" (all-or-nothing: nothing written)" if all_or_nothing and result.failed else "")
    )
    problems = [r for r in result.rows if r.status in ("failed", "skipped")]
    for r in problems:
        click.echo(f"  row {r.row} [{r.status}]: " + "; ".join(r.messages()))
    if problems:
        out = path.with_name(f"{path.stem}.import-report.xlsx")
        out.write_bytes(petition_import.report_xlsx(result, services.clock.now()))
        click.echo(f"report written: {out}")
    if result.failed:
        raise SystemExit(1)
