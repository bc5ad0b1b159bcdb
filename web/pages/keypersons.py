"""重点信访人员 管控风险研判台账: the key-person ledger, for the team, the petition office and
supervisors only (the service's visibility filter decides; DESIGN.md §6)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from engine.domain.enums import RiskLevel
from engine.errors import PermissionDeniedError
from engine.services import orgs
from engine.services import stabilization as key_person_service
from web.auth import current_actor, services
from web.pages import bp, has_role, page_lang, register_nav

LEDGER_ROLES = ("intake", "supervisor", "leader", "handler")
register_nav(
    "pages.key_person_ledger",
    _l("Key persons"),
    LEDGER_ROLES,
    70,
    match="pages.key_person",
)


STATUS_EN = {
    "forming_team": "Forming the team",
    "assessing": "Assessing",
    "under_control": "Under control",
    "closure_proposed": "Closure proposed",
    "closure_approved": "Awaiting the petition office's check",
    "signed_off": "Signed off",
}


def status_labels() -> dict[str, str]:
    """The file statuses in the page language (the service carries the Chinese labels)."""
    if page_lang() == "en":
        return {k: STATUS_EN.get(k, k) for k in key_person_service.STATUS_LABELS}
    return dict(key_person_service.STATUS_LABELS)


@bp.route("/key-persons")
@login_required
def key_person_ledger() -> Any:
    """The ledger: one row per visible file, filters, print and XLSX (same service as the API)."""
    svc = services()
    actor = current_actor()
    if not has_role(actor, *LEDGER_ROLES):
        raise PermissionDeniedError("the key-person ledger is for the team, office and supervisors")
    args: dict[str, Any] = {}
    if request.args.get("risk_level") in RiskLevel.__members__:
        args["risk_level"] = request.args["risk_level"]
    if request.args.get("status") in key_person_service.STATUSES:
        args["status"] = request.args["status"]
    if request.args.get("village_id", "").isdigit():
        args["village_id"] = int(request.args["village_id"])
    if request.args.get("overdue_contact") == "1":
        args["overdue_contact"] = True
    result = key_person_service.list_key_persons(
        svc, actor, key_person_service.KeyPersonFilter(per_page=200, **args)
    )
    with svc.uow() as uow:
        villages = [
            orgs.unit_view(u)
            for u in orgs.list_units(uow, actor)
            if u.kind in {"village", "community"}
        ]
    return render_template(
        "keypersons/ledger.html",
        result=result,
        args=args,
        villages=villages,
        risks=RiskLevel.labels(page_lang()),
        statuses=status_labels(),
        export_url=url_for("key_person_exports.export_ledger", **args),
        printed_at=svc.clock.now(),
    )
