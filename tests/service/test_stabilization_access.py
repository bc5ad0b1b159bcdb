"""Who sees a key-person file (team, petition office, supervisors; everyone else 404),
audited reads of whole ID numbers, registration rules and candidate proposals."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from engine.persistence.models import AuditEvent, KeyPerson
from engine.services import stabilization
from engine.services.stabilization import KeyPersonFilter
from tests.service.petition_support import register as register_petition
from tests.service.test_stabilization_support import (
    actor,
    form_team,
    register,
    under_control,
    unit_id,
)


def sees(services: Services, username: str, kp_id: int) -> bool:
    who = actor(services, username)
    listed = stabilization.list_key_persons(services, who, KeyPersonFilter())
    try:
        stabilization.get_key_person(services, who, kp_id)
    except NotFoundError:
        assert all(item["id"] != kp_id for item in listed["items"])
        return False
    assert any(item["id"] == kp_id for item in listed["items"])
    return True


def test_a_handler_outside_the_team_gets_404(services: Services) -> None:
    kp = register(services)
    form_team(services, kp, members="reporter_v01")
    # Outside the team: a village handler, the street's own handler (the responsible unit is
    # the judicial office), a village leader, an admin without intake/supervisor roles.
    for username in ("handler_v01", "handler", "leader_v01", "reporter_v02", "admin"):
        assert not sees(services, username, kp["id"]), username
    # The team (lead leader, members, the responsible unit's handlers), the petition office
    # and supervisors, including the district's.
    for username in ("leader", "reporter_v01", "handler_sfs", "clerk", "supervisor", "district"):
        assert sees(services, username, kp["id"]), username


def test_before_the_team_is_formed_the_street_leader_sees_the_file(services: Services) -> None:
    kp = register(services)
    assert sees(services, "leader", kp["id"])
    assert not sees(services, "leader_v01", kp["id"])
    assert not sees(services, "handler_sfs", kp["id"])


def test_every_full_read_of_an_id_number_is_audited(services: Services) -> None:
    kp = under_control(services, "high")
    clerk = actor(services, "clerk")
    masked = stabilization.get_key_person(services, clerk, kp["id"])
    assert masked["id_number_masked"] != "11010519491231002X"
    assert "id_number" not in masked
    whole = stabilization.get_key_person(services, clerk, kp["id"], reveal=True)
    assert whole["id_number"] == "11010519491231002X"
    assert whole["phone"] == "13800138000"
    with services.uow() as uow:
        events = uow.session.execute(
            select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.detail).where(
                AuditEvent.action == "pii.revealed"
            )
        ).all()
        stored = uow.session.scalars(select(KeyPerson.id_number_enc)).one()
    assert [(a, who) for a, who, _d in events] == [("pii.revealed", clerk.user_id)]
    assert events[0][2]["fields"] == ["id_number", "phone"]
    assert stored is not None
    assert "11010519491231002X" not in stored


def test_registration_refuses_bad_input_with_field_messages_and_writes_nothing(
    services: Services,
) -> None:
    with pytest.raises(ValidationError) as info:
        register(
            services,
            id_number="110105194912310039",
            phone="12",
            source="rumour",
            village_id=unit_id(services, "S01-SFS"),
            core_demand="",
        )
    assert set(info.value.errors) == {"id_number", "phone", "source", "village_id", "core_demand"}
    with pytest.raises(PermissionDeniedError):
        register(services, who="handler")
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(KeyPerson)) == 0


def test_the_same_person_cannot_have_two_open_files(services: Services) -> None:
    register(services)
    with pytest.raises(ConflictError):
        register(services, name="张三（重复）")


def test_list_filters_by_risk_village_status_and_overdue_contact(
    services: Services, clock: SettableClock
) -> None:
    high = under_control(services, "high")
    low = under_control(
        services,
        "low",
        name="李四",
        id_number="110105194912310038",
        phone="13900139000",
        village_id=unit_id(services, "V02"),
    )
    clerk = actor(services, "clerk")

    def ids(**kw: object) -> list[int]:
        out = stabilization.list_key_persons(services, clerk, KeyPersonFilter(**kw))  # type: ignore[arg-type]
        return [i["id"] for i in out["items"]]

    assert ids(risk_level="high") == [high["id"]]
    assert ids(village_id=unit_id(services, "V02")) == [low["id"]]
    assert sorted(ids(status="under_control")) == sorted([high["id"], low["id"]])
    assert ids(status="signed_off") == []
    from tests.service.test_stabilization_support import tick

    tick(services, clock, date(2026, 3, 2))
    tick(services, clock, date(2026, 3, 9))  # the high-risk week passed without contact
    assert ids(overdue_contact=True) == [high["id"]]
    assert ids(overdue_contact=False) == [low["id"]]


def test_candidates_are_people_with_three_petitions_in_twelve_months(
    services: Services, clock: SettableClock
) -> None:
    for day, subject in (
        ("2026-01-05", "承包地边界"),
        ("2026-02-02", "耕地被占"),
        ("2026-03-02", "补偿款"),
    ):
        register_petition(services, received_on=day, subject=f"东风村{subject}纠纷")
    register_petition(
        services,
        subject="另一人的诉求",
        petitioners=[{"name": "孙六", "id_number": "330681198001011232"}],
    )
    clerk = actor(services, "clerk")
    found = stabilization.propose_candidates(services, clerk)
    assert [c["name"] for c in found["items"]] == ["王大伟"]
    candidate = found["items"][0]
    assert candidate["petitions_in_12_months"] == 3
    assert candidate["reasons"] == ["repeat_petitions"]
    assert len(candidate["petition_ids"]) == 3
    assert "110101199003071233" not in str(candidate)
    # Once registered with those petitions, the person is no longer a candidate.
    kp = register(
        services,
        name="王大伟",
        id_number="110101199003071233",
        petition_ids=candidate["petition_ids"],
    )
    assert [p["id"] for p in kp["petitions"]] == candidate["petition_ids"]
    assert stabilization.propose_candidates(services, clerk)["items"] == []
    with pytest.raises(PermissionDeniedError):
        stabilization.propose_candidates(services, actor(services, "handler_v01"))
