"""The demo seeder: a few key persons at different risk levels, mid-process."""

from __future__ import annotations

from sqlalchemy import select

from engine.bootstrap import Services
from engine.persistence.models import KeyPerson
from engine.services.stabilization_demo import seed_key_persons


def test_the_demo_seeder_creates_key_persons_mid_process(services: Services) -> None:
    assert seed_key_persons(services) == {"key_persons": 4}
    with services.uow() as uow:
        rows = uow.session.execute(
            select(KeyPerson.name, KeyPerson.status, KeyPerson.risk_level).order_by(KeyPerson.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("张某某", "under_control", "high"),
        ("李某某", "assessing", None),
        ("王某某", "forming_team", None),
        ("赵某某", "closure_proposed", "medium"),
    ]
    # Running it again adds nothing.
    assert seed_key_persons(services) == {"key_persons": 0}
