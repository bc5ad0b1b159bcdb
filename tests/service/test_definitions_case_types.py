"""Case types as data, through the services: the format's checks, storage that survives a
restart, the data-driven hooks and the KPI section (issue 11)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from engine.bootstrap import Services, build_services
from engine.config import PROJECT_ROOT
from engine.errors import ValidationError
from engine.persistence.models import Case, CaseTypeDefinition, Unit
from engine.services.access import load_actor
from engine.services.case_type_data import (
    DataCaseHooks,
    load_case_type_file,
    parse_case_type,
)
from engine.services.cases import open_case
from engine.services.definitions import deploy_case_type_file, deploy_upload
from engine.services.reports import Period, kpi_report
from engine.services.tasks import complete_task

WORKFLOWS = PROJECT_ROOT / "workflows"
DATA_TYPES = ("ogi_request", "rectification", "council_proposal")


def actor(services: Services, username: str) -> Any:
    from engine.persistence.models import User

    with services.uow() as uow:
        user_id = uow.session.scalar(select(User.id).where(User.username == username))
        return load_actor(uow.session, int(user_id))


def s01(services: Services) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(Unit.id).where(Unit.code == "S01")))


def raw(name: str) -> dict[str, Any]:
    data = (WORKFLOWS / f"{name}.casetype.yaml").read_bytes()
    return load_case_type_file(data, filename=f"{name}.casetype.yaml")


@pytest.mark.parametrize("name", DATA_TYPES)
def test_shipped_case_type_files_are_valid_and_deployed_from_the_workflows_folder(
    name: str, services: Services
) -> None:
    spec = parse_case_type(raw(name), filename=name)
    assert spec.name == name and spec.process_id == name
    assert spec.deadlines and spec.kpis and spec.intake_form
    assert all(d.source for d in spec.deadlines)  # every deadline cites its source
    case_type = services.case_types.get(name)
    assert isinstance(case_type.hooks, DataCaseHooks)
    assert case_type.prefix == spec.prefix


def test_yaml_aliases_are_refused_so_an_alias_bomb_is_never_expanded() -> None:
    bomb = b'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n'
    with pytest.raises(ValidationError) as exc:
        load_case_type_file(bomb, filename="bomb.casetype.yaml")
    assert "aliases are not allowed" in str(exc.value.errors["bomb.casetype.yaml"][0])


def test_every_problem_of_a_case_type_file_is_named_by_its_path() -> None:
    broken = raw("ogi_request")
    broken["prefix"] = "gk"
    broken["deadlines"][0]["events"][0]["action"] = "teleport"
    broken["deadlines"][1]["rule"] = "no_such_rule"
    broken["kpis"][1]["deadline"] = "nothing"
    broken["redirects"][0]["when"] = "__import__('os')"
    broken["surprise"] = 1
    with pytest.raises(ValidationError) as exc:
        parse_case_type(broken, filename="ogi.yaml")
    errors = exc.value.errors
    for path in (
        "ogi.yaml:prefix",
        "ogi.yaml:deadlines[0].events[0].action",
        "ogi.yaml:deadlines[1].rule",
        "ogi.yaml:kpis[1].deadline",
        "ogi.yaml:redirects[0].when",
        "ogi.yaml:surprise",
    ):
        assert path in errors, (path, errors)
        messages = errors[path]
        assert isinstance(messages, list) and len(messages) == 2  # English and Chinese


def test_a_deadline_without_a_source_is_refused() -> None:
    data = raw("council_proposal")
    data["deadlines"] = [
        {"kind": "k", "length": 5, "counted_from": "received_on", "label": {"zh": "x", "en": "x"}}
    ]
    with pytest.raises(ValidationError) as exc:
        parse_case_type(data, filename="c.yaml")
    assert "c.yaml:deadlines[0].source" in exc.value.errors


def test_a_data_type_cannot_replace_a_case_type_defined_in_code(services: Services) -> None:
    coded = next(iter(services.case_types.all()), None)
    assert coded is not None, "some case type is registered in code"
    data = raw("council_proposal")
    data["name"] = coded.name
    text = yaml.safe_dump(data, allow_unicode=True).encode()
    with pytest.raises(ValidationError) as exc:
        deploy_case_type_file(services, text, filename="clash.casetype.yaml")
    assert "clash.casetype.yaml" in exc.value.errors


def test_deployed_case_types_survive_a_restart_and_reach_other_processes(
    services: Services,
) -> None:
    data = raw("council_proposal")
    data["name"] = "council_proposal_v"
    data["prefix"] = "YV"
    text = yaml.safe_dump(data, allow_unicode=True).encode()
    admin = actor(services, "admin")
    result = deploy_upload(services, admin, "council_proposal_v.casetype.yaml", text)
    assert result["case_types"][0]["version"] == 1
    again = deploy_upload(services, admin, "council_proposal_v.casetype.yaml", text)
    assert again["case_types"][0]["version"] == 1  # same content: no new version

    # Another process (a fresh set of services over the same database) sees it at once.
    other = build_services(services.settings, services.clock, deploy=False)
    try:
        case_type = other.case_types.get("council_proposal_v")
        assert case_type.prefix == "YV" and isinstance(case_type.hooks, DataCaseHooks)
        view = open_case(
            other,
            actor(other, "clerk"),
            case_type="council_proposal_v",
            unit_id=s01(other),
            data={
                "representative_name": "郑代表",
                "received_on": "2026-03-02",
                "proposal_title": "路灯",
                "proposal_content": "增设路灯",
            },
        )
        assert view["case_no"].startswith("YV-2026-")
    finally:
        other.engine.dispose()
    with services.uow() as uow:
        rows = uow.session.scalars(
            select(CaseTypeDefinition).where(CaseTypeDefinition.name == "council_proposal_v")
        ).all()
        assert [r.version for r in rows] == [1]


def test_deadline_length_can_come_from_a_setting_keyed_by_a_case_field(
    services: Services,
) -> None:
    """Key-person contact cadence or hazard time limits by risk level fit the format."""
    data = raw("council_proposal")
    data["name"] = "hazard_like"
    data["prefix"] = "YH"
    data["intake_form"].append(
        {
            "id": "risk_level",
            "label": "风险等级",
            "type": "enum",
            "required": True,
            "values": {"high": "高", "medium": "中", "low": "低"},
        }
    )
    data["deadlines"] = [
        {
            "kind": "hazard_limit",
            "label": {"zh": "化解时限", "en": "Time limit"},
            "counted_from": "received_on",
            "length": 30,
            "setting": "hazard_time_limit_days",
            "setting_key_field": "risk_level",
            "source": "setting (DOMAIN.md §6)",
            "tasks": ["study_proposal"],
            "events": [{"event": "started", "action": "start"}],
        }
    ]
    data["kpis"] = []
    text = yaml.safe_dump(data, allow_unicode=True).encode()
    deploy_case_type_file(services, text, filename="hazard_like.casetype.yaml")
    view = open_case(
        services,
        actor(services, "clerk"),
        case_type="hazard_like",
        unit_id=s01(services),
        data={
            "representative_name": "x",
            "received_on": "2026-03-02",
            "proposal_title": "t",
            "proposal_content": "c",
            "risk_level": "high",
        },
    )
    # DOMAIN.md §6 default: a high-risk hazard gets 7 days (2 March + 7 = 9 March, a Monday).
    assert view["deadlines"][0]["due_on"] == date(2026, 3, 9)
    assert view["open_tasks"][0]["due_at"].date() == date(2026, 3, 9)


def test_the_kpi_section_counts_only_cases_in_the_unit_and_period(services: Services) -> None:
    clerk = actor(services, "clerk")
    for received in ("2026-03-01", "2026-03-02"):
        open_case(
            services,
            clerk,
            case_type="council_proposal",
            unit_id=s01(services),
            data={
                "representative_name": "x",
                "received_on": received,
                "proposal_title": "t",
                "proposal_content": "c",
            },
        )
    with services.uow() as uow:
        unit = uow.session.scalars(select(Unit).where(Unit.code == "S01")).one()
        other = uow.session.scalars(select(Unit).where(Unit.code == "V02")).one()
        march_2 = kpi_report(uow, Period(date(2026, 3, 2), date(2026, 3, 31), unit.id, unit.path))[
            "kpis"
        ]
        elsewhere = kpi_report(
            uow, Period(date(2026, 3, 1), date(2026, 3, 31), other.id, other.path)
        )["kpis"]
    assert march_2["council_proposals"]["value"] == 1
    assert march_2["council_adoption_rate"]["display"] == "—"  # nothing completed: no value
    assert elsewhere["council_proposals"]["value"] == 0


def test_a_redirect_to_a_case_type_that_is_not_deployed_closes_without_a_child(
    services: Services,
) -> None:
    data = raw("ogi_request")
    data["name"] = "ogi_no_target"
    data["prefix"] = "GN"
    data["redirects"][0]["open_case"]["case_type"] = "nowhere_type"
    deploy_case_type_file(
        services,
        yaml.safe_dump(data, allow_unicode=True).encode(),
        filename="ogi_no_target.casetype.yaml",
    )
    view = open_case(
        services,
        actor(services, "clerk"),
        case_type="ogi_no_target",
        unit_id=s01(services),
        data={
            "applicant_name": "x",
            "received_on": "2026-03-02",
            "receipt_channel": "online",
            "request_content": "y",
        },
    )
    result = complete_task(
        services,
        actor(services, "clerk"),
        view["open_tasks"][0]["id"],
        {"review_decision": "redirect_petition", "reviewed_on": "2026-03-02"},
    )
    assert result["case"]["status"] == "completed"
    with services.uow() as uow:
        assert uow.session.scalar(select(Case.id).where(Case.parent_case_id == view["id"])) is None
