"""Admin page: import a historical petition ledger (upload → dry-run preview → commit), issue 8."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from engine.errors import ValidationError
from engine.services import orgs, petition_import
from engine.services.access import require_admin
from web.auth import current_actor, services
from web.pages import bp, register_nav, translate_errors

register_nav("pages.import_petitions", _l("Import ledgers"), ["admin"], 92)

_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def _folder() -> Path:
    folder = Path(services().settings.instance_dir) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@bp.route("/admin/imports/petitions", methods=["GET", "POST"])
@login_required
def import_petitions() -> Any:
    """Upload a ledger, preview the dry run row by row, then commit the same file."""
    actor = current_actor()
    require_admin(actor)
    svc = services()
    errors: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    token = ""
    file_name = ""
    action = request.form.get("action", "")
    all_or_nothing = bool(request.form.get("all_or_nothing"))
    unit_raw = request.form.get("unit_id", "")
    unit_id = int(unit_raw) if unit_raw.isdigit() else None
    if request.method == "POST":
        try:
            if action == "commit":
                token = request.form.get("token", "")
                file_name = request.form.get("file_name", "")[:200] or "ledger.xlsx"
                path = _folder() / f"{token}.xlsx"
                if not _TOKEN.match(token) or not path.exists():
                    raise ValidationError("expired", {"file": [_("Upload the file again.")]})
                data = path.read_bytes()
                report = petition_import.import_petitions(
                    svc, actor, data, file_name, all_or_nothing=all_or_nothing, unit_id=unit_id
                )
                path.unlink(missing_ok=True)
                token = ""
            else:
                upload = request.files.get("file")
                if upload is None or not upload.filename:
                    raise ValidationError("no file", {"file": [_("Choose the ledger file.")]})
                file_name = upload.filename
                data = upload.read()
                report = petition_import.import_petitions(
                    svc, actor, data, file_name, dry_run=True,
                    all_or_nothing=all_or_nothing, unit_id=unit_id,
                )  # fmt: skip
                token = secrets.token_hex(16)
                (_folder() / f"{token}.xlsx").write_bytes(data)
            result = report.as_dict()
        except ValidationError as exc:
            errors = translate_errors(exc.errors)
    with svc.uow() as uow:
        units = [orgs.unit_view(u) for u in orgs.list_units(uow, actor) if u.kind == "street"]
    return render_template(
        "imports/petitions.html",
        result=result,
        errors=errors,
        token=token,
        file_name=file_name,
        all_or_nothing=all_or_nothing,
        unit_id=unit_id,
        units=units,
        columns=petition_import.LEDGER_COLUMNS,
    ), (422 if errors else 200)
