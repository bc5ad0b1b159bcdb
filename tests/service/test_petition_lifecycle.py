"""The petition process rules: extensions, business dates, evaluation, review, re-review,
repeats and personal data (信访工作条例 Art. 18, 23, 34–36; issue 3)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from engine.persistence.models import (
    AuditEvent,
    Case,
    Counter,
    DeadlineWarning,
    Petition,
    Petitioner,
)
from engine.services import petitions
from engine.services.jobs import run_all
from tests.service.petition_support import (
    ID_WANG,
    PHONE_WANG,
    accept,
    actor,
    at,
    complete,
    deadlines,
    handle,
    register,
    reply,
)


def view(services: Services, case_id: int, username: str = "clerk") -> dict[str, Any]:
    return petitions.get_petition(services, actor(services, username), case_id)


def replied(services: Services, clock: SettableClock, delivered: date) -> int:
    """A petition received 2026-03-02, accepted the same day, replied on `delivered`."""
    at(clock, date(2026, 3, 2))
    case_id = register(services)["id"]
    accept(services, case_id, "2026-03-02")
    at(clock, delivered)
    handle(services, case_id)
    reply(services, case_id, delivered.isoformat())
    return case_id


def test_registration_numbers_the_case_and_opens_acceptance(
    services: Services, clock: SettableClock
) -> None:
    first = register(services)
    second = register(services, subject="红旗村道路破损", request="请求维修村道")
    assert first["case_no"] == "XF-2026-000001"
    assert second["case_no"] == "XF-2026-000002"
    assert first["status"] == "registered"
    assert [t["bpmn_id"] for t in first["open_tasks"]] == ["decide_acceptance"]
    assert first["open_tasks"][0]["role"] == "intake"
    assert {d["kind"] for d in first["deadlines"]} == {"acceptance_notice", "remit_objection"}
    assert all(d["state"] == "pending" and d["met_on"] is None for d in first["deadlines"])


def test_group_visit_with_more_than_five_representatives_is_refused_and_nothing_written(
    services: Services,
) -> None:
    people = [{"name": f"代表{i}"} for i in range(6)]
    with pytest.raises(ValidationError) as err:
        register(services, petitioners=people, headcount=40)
    assert "petitioners" in err.value.errors
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Petition)) == 0
        assert uow.session.scalar(select(func.count()).select_from(Counter)) == 0

    ok = register(services, petitioners=people[:5], headcount=40)
    assert ok["headcount"] == 40
    assert all(p["is_representative"] for p in ok["petitioners"])


def test_invalid_id_number_and_future_receipt_get_field_messages(services: Services) -> None:
    with pytest.raises(ValidationError) as err:
        register(
            services,
            received_on="2026-03-09",
            petitioners=[{"name": "王大伟", "id_number": "110101199003071234"}],
        )
    assert set(err.value.errors) == {"received_on", "petitioners"}
    assert list(err.value.errors["petitioners"]) == ["0"]
    assert list(err.value.errors["petitioners"]["0"]) == ["id_number"]


def test_business_dates_may_not_be_in_the_future_or_before_the_previous_step(
    services: Services, clock: SettableClock
) -> None:
    at(clock, date(2026, 3, 10))
    case_id = register(services, received_on="2026-03-05")["id"]
    for decided_on in ("2026-03-11", "2026-03-04"):
        with pytest.raises(ValidationError) as err:
            complete(
                services,
                "clerk",
                case_id,
                "decide_acceptance",
                {"decision": "not_accept", "decided_on": decided_on, "reason": "已诉讼"},
            )
        assert list(err.value.errors) == ["decided_on"]
    # Left empty, the decision date is today.
    complete(
        services,
        "clerk",
        case_id,
        "decide_acceptance",
        {"decision": "not_accept", "reason": "已诉讼"},
    )
    after = view(services, case_id)
    assert after["decided_on"] == date(2026, 3, 10)
    assert after["status"] == "not_accepted"
    assert after["case_status"] == "completed"
    # The remit-objection window no longer applies once the organ decided on the merits.
    assert set(deadlines(after)) == {"acceptance_notice"}
    assert deadlines(after)["acceptance_notice"]["met_on"] == date(2026, 3, 10)


def test_accepting_needs_a_responsible_unit_under_the_office(
    services: Services, clock: SettableClock
) -> None:
    case_id = register(services)["id"]
    with pytest.raises(ValidationError) as err:
        complete(services, "clerk", case_id, "decide_acceptance", {"decision": "accept"})
    assert list(err.value.errors) == ["responsible_unit_id"]
    with pytest.raises(ValidationError) as err:
        complete(
            services, "clerk", case_id, "decide_acceptance", {"decision": "forward", "reason": "x"}
        )
    assert list(err.value.errors) == ["forward_to"]


def test_approved_extension_moves_the_reply_deadline_once(
    services: Services, clock: SettableClock
) -> None:
    case_id = register(services)["id"]
    accept(services, case_id, "2026-03-02")
    # 03-02 + 60 = 05-01, Labour Day: the reply is due 05-06.
    assert deadlines(view(services, case_id))["reply"]["due_on"] == date(2026, 5, 6)
    at(clock, date(2026, 4, 20))
    handle(services, case_id, request_extension=True, extension_days=30, extension_reason="需鉴定")
    complete(services, "leader", case_id, "approve_extension", {"approve": True})
    after = view(services, case_id)
    # 05-06 + 30 = 06-05 (a Friday).
    assert deadlines(after)["reply"]["due_on"] == date(2026, 6, 5)
    assert after["extension_approved_on"] == date(2026, 4, 20)
    assert [t["bpmn_id"] for t in after["open_tasks"]] == ["handle"]
    assert after["open_tasks"][0]["due_at"].date() == date(2026, 6, 5)
    assert "petition.extension_approved" in [e["action"] for e in after["timeline"]]


def test_second_extension_is_refused(services: Services, clock: SettableClock) -> None:
    case_id = register(services)["id"]
    accept(services, case_id, "2026-03-02")
    handle(services, case_id, request_extension=True, extension_days=10, extension_reason="复杂")
    complete(services, "leader", case_id, "approve_extension", {"approve": True})
    with pytest.raises(ValidationError) as err:
        handle(services, case_id, request_extension=True, extension_days=5, extension_reason="再延")
    assert list(err.value.errors) == ["request_extension"]
    assert "第三十四条" in err.value.errors["request_extension"][0]
    assert [t["bpmn_id"] for t in view(services, case_id)["open_tasks"]] == ["handle"]


def test_extension_longer_than_30_days_is_refused(services: Services, clock: SettableClock) -> None:
    case_id = register(services)["id"]
    accept(services, case_id, "2026-03-02")
    with pytest.raises(ValidationError) as err:
        handle(services, case_id, request_extension=True, extension_days=31, extension_reason="久")
    assert list(err.value.errors) == ["extension_days"]
    with pytest.raises(ValidationError) as err:
        handle(services, case_id, request_extension=True)
    assert set(err.value.errors) == {"extension_days", "extension_reason"}
    assert deadlines(view(services, case_id))["reply"]["due_on"] == date(2026, 5, 6)


def test_refused_extension_leaves_the_deadline_and_allows_a_new_request(
    services: Services, clock: SettableClock
) -> None:
    case_id = register(services)["id"]
    accept(services, case_id, "2026-03-02")
    handle(services, case_id, request_extension=True, extension_days=10, extension_reason="复杂")
    complete(services, "leader", case_id, "approve_extension", {"approve": False})
    assert deadlines(view(services, case_id))["reply"]["due_on"] == date(2026, 5, 6)
    handle(services, case_id, request_extension=True, extension_days=10, extension_reason="补充")
    complete(services, "leader", case_id, "approve_extension", {"approve": True})
    assert deadlines(view(services, case_id))["reply"]["due_on"] == date(2026, 5, 16 + 2)


def test_returned_reply_goes_back_to_drafting_and_delivery_on_time_meets_the_deadline(
    services: Services, clock: SettableClock
) -> None:
    case_id = register(services)["id"]
    accept(services, case_id, "2026-03-02")
    at(clock, date(2026, 3, 20))
    handle(services, case_id)
    complete(
        services, "handler", case_id, "draft_reply", {"outcome": "explain", "reply_text": "初稿"}
    )
    complete(
        services, "leader", case_id, "approve_reply", {"approve": False, "comment": "补充依据"}
    )
    assert [t["bpmn_id"] for t in view(services, case_id)["open_tasks"]] == ["draft_reply"]
    reply(services, case_id, "2026-03-19")
    after = view(services, case_id)
    assert after["reply_returns"] == 1
    assert after["status"] == "replied"
    assert deadlines(after)["reply"]["state"] == "met"
    assert deadlines(after)["reply"]["met_on"] == date(2026, 3, 19)
    # 03-19 + 15 = 04-03 (Friday); review window 03-19 + 30 = 04-18 (Saturday) -> 04-20.
    assert deadlines(after)["evaluation_window"]["due_on"] == date(2026, 4, 3)
    assert deadlines(after)["review_request_window"]["due_on"] == date(2026, 4, 20)
    assert [t["bpmn_id"] for t in after["open_tasks"]] == ["record_evaluation"]


def test_evaluation_recorded_in_the_window_closes_the_petition(
    services: Services, clock: SettableClock
) -> None:
    case_id = replied(services, clock, date(2026, 3, 19))
    at(clock, date(2026, 3, 25))
    complete(services, "clerk", case_id, "record_evaluation", {"rating": "satisfied"})
    after = view(services, case_id)
    assert (after["status"], after["rating"], after["evaluated_on"]) == (
        "evaluated",
        "satisfied",
        date(2026, 3, 25),
    )
    assert after["case_status"] == "completed"
    assert deadlines(after)["evaluation_window"]["state"] == "met"


def test_evaluation_window_passing_closes_the_case_as_not_evaluated(
    services: Services, clock: SettableClock
) -> None:
    case_id = replied(services, clock, date(2026, 3, 19))  # window ends 04-03
    at(
        clock,
        date(
            2026,
            4,
            3,
        ),
        20,
    )
    run_all(services, clock.now())
    assert view(services, case_id)["status"] == "replied"

    at(clock, date(2026, 4, 4), 0)
    run_all(services, clock.now())
    after = view(services, case_id)
    assert after["status"] == "not_evaluated"
    assert after["case_status"] == "completed"
    assert after["open_tasks"] == []
    assert after["closed_on"] == date(2026, 4, 3)
    assert deadlines(after)["evaluation_window"]["state"] == "missed"
    assert "petition.not_evaluated" in [e["action"] for e in after["timeline"]]
    with services.uow() as uow:
        reds = uow.session.scalar(
            select(func.count()).select_from(DeadlineWarning).where(DeadlineWarning.level == "red")
        )
    assert reds == 0  # a lapsed window is not an office's missed deadline: no red, no 督办
    assert after["supervisions"] == []


def test_delivery_entered_after_the_window_closes_the_case_at_once(
    services: Services, clock: SettableClock
) -> None:
    at(clock, date(2026, 3, 2))
    case_id = register(services)["id"]
    accept(services, case_id, "2026-03-02")
    at(clock, date(2026, 4, 20))
    handle(services, case_id)
    reply(services, case_id, "2026-03-19")  # paper delivered weeks before it was entered
    after = view(services, case_id)
    assert after["status"] == "not_evaluated"
    assert after["case_status"] == "completed"
    assert deadlines(after)["evaluation_window"]["due_on"] == date(2026, 4, 3)


def test_late_review_request_is_refused_naming_the_windows_end(
    services: Services, clock: SettableClock
) -> None:
    case_id = replied(services, clock, date(2026, 3, 19))  # review window ends 04-20
    at(clock, date(2026, 4, 30))
    clerk = actor(services, "clerk")
    with pytest.raises(ValidationError) as err:
        petitions.request_review(
            services, clerk, case_id, {"level": "review", "requested_on": date(2026, 4, 21)}
        )
    assert "2026-04-20" in err.value.errors["requested_on"][0]
    assert err.value.errors["window_end"] == ["2026-04-20"]
    with pytest.raises(ConflictError):
        petitions.request_review(
            services, clerk, case_id, {"level": "re_review", "requested_on": date(2026, 4, 20)}
        )
    ok = petitions.request_review(
        services, clerk, case_id, {"level": "review", "requested_on": date(2026, 4, 20)}
    )
    assert ok["window_end"] == date(2026, 4, 20)
    with pytest.raises(ConflictError):
        petitions.request_review(services, clerk, case_id, {"level": "review"})


def test_review_then_re_review_terminates_the_petition(
    services: Services, clock: SettableClock
) -> None:
    case_id = replied(services, clock, date(2026, 3, 19))
    clerk = actor(services, "clerk")
    at(clock, date(2026, 3, 24))
    complete(services, "clerk", case_id, "record_evaluation", {"rating": "dissatisfied"})
    review = petitions.request_review(
        services, clerk, case_id, {"level": "review", "requested_on": date(2026, 3, 24)}
    )
    # The review goes to the leader of the unit above the responsible village: the street.
    assert review["decision_due_on"] == date(2026, 4, 23)
    current = view(services, case_id)
    assert current["status"] == "under_review"
    assert deadlines(current)["review_request_window"]["state"] == "met"
    assert deadlines(current)["review_decision"]["due_on"] == date(2026, 4, 23)
    with pytest.raises(NotFoundError):  # a village leader cannot even see it
        complete(services, "leader_v01", review["case_id"], "decide_review", {"outcome": "uphold"})

    at(clock, date(2026, 4, 10))
    with pytest.raises(ValidationError) as err:
        complete(
            services,
            "leader",
            review["case_id"],
            "decide_review",
            {"outcome": "uphold", "decided_on": "2026-04-08", "delivered_on": "2026-04-07"},
        )
    assert list(err.value.errors) == ["delivered_on"]
    complete(
        services,
        "leader",
        review["case_id"],
        "decide_review",
        {"outcome": "uphold", "decided_on": "2026-04-08", "delivered_on": "2026-04-09"},
    )
    current = view(services, case_id)
    assert current["status"] == "reviewed"
    assert deadlines(current)["review_decision"]["state"] == "met"
    # 04-09 + 30 = Saturday 05-09, an adjusted working day after Labour Day: it does not roll.
    assert deadlines(current)["re_review_request_window"]["due_on"] == date(2026, 5, 9)

    at(clock, date(2026, 4, 15))
    re_review = petitions.request_review(services, clerk, case_id, {"level": "re_review"})
    assert re_review["requested_on"] == date(2026, 4, 15)
    # The re-review goes one level higher again: the district's leader decides it.
    with pytest.raises(NotFoundError):
        complete(services, "leader", re_review["case_id"], "decide_review", {"outcome": "uphold"})
    at(clock, date(2026, 5, 6))
    complete(
        services,
        "district",
        re_review["case_id"],
        "decide_review",
        {"outcome": "uphold", "decided_on": "2026-05-06", "delivered_on": "2026-05-06"},
    )
    final = view(services, case_id)
    assert final["status"] == "terminated"
    assert final["case_status"] == "terminated"
    assert final["not_to_be_accepted_again"] is True
    assert deadlines(final)["re_review_decision"]["state"] == "met"
    actions = [e["action"] for e in final["timeline"]]
    assert actions[-1] == "petition.terminated"
    assert {
        "petition.review_requested",
        "petition.review_decided",
        "petition.re_review_requested",
    } <= set(actions)
    with pytest.raises(ConflictError):
        petitions.request_review(services, clerk, case_id, {"level": "re_review"})

    # The same facts brought again are linked to the terminated petition (Art. 36).
    again = register(services, received_on="2026-05-06")
    assert again["repeat_of_id"] == case_id


def test_repeat_from_the_same_person_on_the_same_matter_is_flagged_and_linked(
    services: Services, clock: SettableClock
) -> None:
    first = register(services)
    # Same ID number, reworded matter, while the first is open.
    same = register(
        services,
        subject="土地承包经营权纠纷（东风村）",
        request="请求确认承包地边界，制止邻户占用耕地",
        petitioners=[{"name": "王大伟", "id_number": ID_WANG.lower()[:-1] + ID_WANG[-1]}],
    )
    assert same["repeat_of_id"] == first["id"]
    # Same name and phone (written differently), no ID number.
    by_phone = register(services, petitioners=[{"name": "王大伟", "phone": "+86 138-0013-8000"}])
    assert by_phone["repeat_of_id"] == first["id"]
    # Same person, different matter: not a repeat.
    other = register(services, subject="低保资格认定", request="家庭困难申请低保，请求重新审核")
    assert other["repeat_of_id"] is None
    # Another person with the same matter: not a repeat.
    stranger = register(services, petitioners=[{"name": "李四", "phone": "13900139000"}])
    assert stranger["repeat_of_id"] is None
    timeline = view(services, same["id"])["timeline"]
    assert timeline[1]["detail"]["repeat_of"] == first["id"]


def test_a_closed_petition_is_not_a_repeat_target(services: Services, clock: SettableClock) -> None:
    first = register(services)
    complete(
        services,
        "clerk",
        first["id"],
        "decide_acceptance",
        {"decision": "not_accept", "reason": "已经诉讼"},
    )
    again = register(services)
    assert again["repeat_of_id"] is None


def test_id_and_phone_are_encrypted_masked_and_every_whole_read_audited(
    services: Services, clock: SettableClock
) -> None:
    created = register(services)
    assert created["petitioners"][0]["id_number"] == "1101**********1233"
    assert created["petitioners"][0]["phone"] == "138****8000"
    with services.uow() as uow:
        row = uow.session.scalars(select(Petitioner)).one()
        assert ID_WANG not in (row.id_number_enc or "")
        assert PHONE_WANG not in (row.phone_enc or "")
        assert row.id_number_hash and len(row.id_number_hash) == 64
    listed = petitions.list_petitions(
        services, actor(services, "handler"), petitions.PetitionFilter()
    )
    assert listed["items"][0]["petitioners"][0]["id_number"] == "1101**********1233"

    with pytest.raises(PermissionDeniedError):
        petitions.get_petition(services, actor(services, "handler"), created["id"], reveal=True)
    clerk = actor(services, "clerk")
    whole = petitions.get_petition(services, clerk, created["id"], reveal=True)
    assert whole["petitioners"][0]["id_number"] == ID_WANG
    assert whole["petitioners"][0]["phone"] == PHONE_WANG
    with services.uow() as uow:
        reads = uow.session.scalars(
            select(AuditEvent).where(
                AuditEvent.case_id == created["id"], AuditEvent.action == "pii.revealed"
            )
        ).all()
        assert len(reads) == 1
        assert reads[0].actor_id == clerk.user_id
        case_row = uow.session.get(Case, created["id"])
        assert case_row is not None and ID_WANG not in str(case_row.data)


def test_out_of_scope_users_do_not_see_the_petition(
    services: Services, clock: SettableClock
) -> None:
    created = register(services, village_id=None)
    with pytest.raises(NotFoundError):
        petitions.get_petition(services, actor(services, "reporter_v01"), created["id"])
    assert (
        petitions.list_petitions(
            services, actor(services, "handler_v01"), petitions.PetitionFilter()
        )["total"]
        == 0
    )
    case_id = created["id"]
    accept(services, case_id, "2026-03-02", unit="V01")
    # The village's handler sees the petition once it is responsible for it.
    assert (
        petitions.list_petitions(
            services, actor(services, "handler_v01"), petitions.PetitionFilter()
        )["total"]
        == 1
    )
    with pytest.raises(PermissionDeniedError):
        register(services, username="handler")
