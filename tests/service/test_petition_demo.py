"""`fengqiao demo` seeds living petitions in every state across the villages (issue 3)."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.persistence.models import Deadline, DeadlineWarning, Petition, PetitionSupervision
from engine.services.petitions_demo import seed_petitions


def test_demo_seeds_petitions_in_many_states_across_villages(services: Services) -> None:
    summary = seed_petitions(services)

    assert summary["petitions"] >= 48
    states = summary["petition_states"]
    for status in (
        "registered",
        "not_accepted",
        "forwarded",
        "handling",
        "replied",
        "evaluated",
        "not_evaluated",
        "under_review",
        "reviewed",
        "terminated",
    ):
        assert states.get(status, 0) > 0, (status, states)
    with services.uow() as uow:
        villages = uow.session.scalar(select(func.count(func.distinct(Petition.village_id))))
        repeats = uow.session.scalar(
            select(func.count()).select_from(Petition).where(Petition.repeat_of_id.is_not(None))
        )
        levels = dict(
            uow.session.execute(
                select(DeadlineWarning.level, func.count()).group_by(DeadlineWarning.level)
            ).all()
        )
        supervisions = uow.session.scalar(select(func.count()).select_from(PetitionSupervision))
        pending = uow.session.scalar(
            select(func.count()).select_from(Deadline).where(Deadline.state == "pending")
        )
    assert villages == 24
    assert repeats and repeats >= 1
    assert levels.get("yellow", 0) > 0  # some due soon
    assert levels.get("red", 0) > 0  # some overdue
    assert supervisions == levels["red"]  # every red (office deadline) opened 督办
    assert pending and pending > 0
    # A second run over a seeded database adds nothing.
    assert seed_petitions(services) == {"petitions": "already seeded"}
