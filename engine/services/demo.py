"""`fengqiao demo`: the demo organisation, its users, and living cases for a newcomer to explore."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.bootstrap import Services
from engine.services.access import SYSTEM, Grant
from engine.services.orgs import DEMO_ORG, load_org, read_org_file
from engine.services.petitions_demo import seed_petitions
from engine.services.screening_demo import seed_screening
from engine.services.stabilization_demo import seed_key_persons

ADMIN = SYSTEM.__class__(
    user_id=0,
    username="demo",
    display_name="演示数据",
    language="zh-CN",
    grants=(Grant("admin", None, None),),
)

LOGINS_HELP = """Demo logins (password demo1234 for every one):
  admin        系统管理员 (admin)
  clerk        信访办登记员 (intake @ 示范街道)
  handler      街道办理人 (handler @ 示范街道)
  leader       分管领导 (leader @ 示范街道)
  supervisor   督查 (supervisor @ 示范街道)
  reporter_v01 东风村网格员 (reporter @ 东风村)
  leader_v01   东风村书记 (leader @ 东风村)
  en_user      English-speaking handler/clerk"""

# Capabilities add their demo cases here (petitions, key persons, screening).
CASE_SEEDERS: list[Callable[[Services], dict[str, Any]]] = [
    seed_petitions,
    seed_key_persons,
    seed_screening,
]


def seed(services: Services, *, with_cases: bool = True) -> dict[str, Any]:
    """Load the demo organisation and users; then, unless told not to, the demo cases."""
    with services.uow() as uow:
        summary: dict[str, Any] = dict(
            load_org(uow, ADMIN, read_org_file(DEMO_ORG), services.clock.now())
        )
        uow.commit()
    if with_cases:
        for seeder in CASE_SEEDERS:
            summary.update(seeder(services))
    return summary
