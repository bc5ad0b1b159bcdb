"""Input limits: hostile or oversized BPMN uploads, and per-field length limits (422, no write)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.persistence.models import ProcessDefinition, Unit
from tests.conftest import TEST_BPMN


def upload(client: Any, headers: dict[str, str], name: str, content: bytes) -> Any:
    return client.post(
        "/api/v1/process-definitions",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
        headers=headers,
    )


def definitions(services: Services) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(func.count(ProcessDefinition.id))) or 0)


@pytest.mark.parametrize("fixture", ["xxe.bpmn", "billion_laughs.bpmn"])
def test_bpmn_with_doctype_or_entities_is_refused(
    client: Any, auth: Any, services: Services, fixture: str
) -> None:
    before = definitions(services)
    r = upload(client, auth("admin"), fixture, (TEST_BPMN / fixture).read_bytes())
    assert r.status_code == 422, r.get_json()
    assert "DOCTYPE" in str(r.get_json()) or "entit" in str(r.get_json()).lower()
    assert definitions(services) == before


def test_oversized_bpmn_upload_is_refused_with_413(
    client: Any, auth: Any, services: Services
) -> None:
    before = definitions(services)
    padding = b"<!-- " + b"x" * (services.settings.max_content_length + 1) + b" -->"
    body = (
        (TEST_BPMN / "simple_review.bpmn")
        .read_bytes()
        .replace(b"</bpmn:definitions>", padding + b"</bpmn:definitions>")
    )
    r = upload(client, auth("admin"), "big.bpmn", body)
    assert r.status_code == 413 and r.get_json()["code"] == 413
    assert definitions(services) == before


def test_only_admins_deploy_bpmn(client: Any, auth: Any) -> None:
    r = upload(
        client,
        auth("leader"),
        "simple_review.bpmn",
        (TEST_BPMN / "simple_review.bpmn").read_bytes(),
    )
    assert r.status_code == 403


def test_overlong_fields_are_422_with_the_field_named_and_nothing_written(
    client: Any, auth: Any, services: Services
) -> None:
    with services.uow() as uow:
        before = uow.session.scalar(select(func.count(Unit.id)))
        s01 = uow.session.scalar(select(Unit.id).where(Unit.code == "S01"))
    r = client.post(
        "/api/v1/units",
        json={"code": "V99", "name": "村" * 201, "kind": "village", "parent_id": s01},
        headers=auth("admin"),
    )
    assert r.status_code == 422 and "name" in r.get_json()["errors"]
    r = client.post(
        "/api/v1/cases",
        json={"case_type": "simple_review", "unit_id": s01, "title": "题" * 301},
        headers=auth("clerk"),
    )
    assert r.status_code == 422 and "title" in r.get_json()["errors"]
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count(Unit.id))) == before


def test_ids_beyond_any_column_are_404_and_huge_numbers_422(client: Any, auth: Any) -> None:
    assert client.get(f"/api/v1/cases/{2**31}", headers=auth("admin")).status_code == 404
    assert client.get(f"/api/v1/tasks/{2**70}", headers=auth("admin")).status_code == 404
    r = client.get("/api/v1/units", query_string={"parent_id": 2**70}, headers=auth("admin"))
    assert r.status_code in {200, 422}
    assert r.status_code != 500
