"""Each petition KPI on a hand-built set of petitions with known numerators and denominators
(DOMAIN.md §3, issue 3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.domain.kpi import Ratio
from engine.services import petitions
from engine.services.access import SYSTEM
from engine.services.jobs import run_all
from engine.services.reports import Period, resolve_period
from engine.services.settings import set_settings
from tests.service.petition_support import (
    accept,
    actor,
    at,
    complete,
    handle,
    register,
    reply,
    unit_id,
)


def figures(services: Services, start: date, end: date, code: str = "S01") -> dict[str, object]:
    with services.uow() as uow:
        period: Period = resolve_period(
            uow, actor(services, "admin"), start, end, unit_id(services, code)
        )
        return dict(petitions.petition_figures(uow, period))


def build_march(services: Services, clock: SettableClock) -> dict[str, int]:
    """Seven petitions received in March 2026, each step on its business date.

    P1 accepted in time, replied in time, satisfied.
    P2 accepted late (due 03-17, decided 03-25), replied late, basically satisfied.
    P3 not accepted in time.
    P4 accepted and replied in time; the evaluation window lapses.
    P5 never decided: acceptance overdue from 03-26, supervised at the 03-26 tick.
    P6 the same person and matter as P1 while P1 is open (a repeat); reply never delivered.
    P7 at another village (V02), handled there, replied in time, dissatisfied.
    """
    ids: dict[str, int] = {}
    other = {"subject": "红旗村道路破损", "request": "村道多处破损，请求维修"}
    steps: list[tuple[date, Callable[[], None]]] = [
        (date(2026, 3, 2), lambda: ids.update(P1=register(services, received_on="2026-03-02")["id"])),
        (date(2026, 3, 2), lambda: ids.update(P2=register(services, received_on="2026-03-02", petitioners=[{"name": "李四"}])["id"])),
        (date(2026, 3, 3), lambda: ids.update(P3=register(services, received_on="2026-03-03", petitioners=[{"name": "张三"}], **other)["id"])),
        (date(2026, 3, 3), lambda: ids.update(P4=register(services, received_on="2026-03-03", petitioners=[{"name": "赵六"}], **other)["id"])),
        (date(2026, 3, 4), lambda: complete(services, "clerk", ids["P3"], "decide_acceptance", {"decision": "not_accept", "reason": "已经诉讼"})),
        (date(2026, 3, 4), lambda: accept(services, ids["P4"], "2026-03-04")),
        (date(2026, 3, 5), lambda: accept(services, ids["P1"], "2026-03-05")),
        (date(2026, 3, 10), lambda: ids.update(P5=register(services, received_on="2026-03-10", petitioners=[{"name": "钱七"}], **other)["id"])),
        (date(2026, 3, 15), lambda: ids.update(P6=register(services, received_on="2026-03-15")["id"])),
        (date(2026, 3, 16), lambda: accept(services, ids["P6"], "2026-03-16")),
        (date(2026, 3, 20), lambda: ids.update(P7=register(services, received_on="2026-03-20", village_id=unit_id(services, "V02"), petitioners=[{"name": "孙八"}], **other)["id"])),
        (date(2026, 3, 21), lambda: accept(services, ids["P7"], "2026-03-21", unit="V02")),
        (date(2026, 3, 25), lambda: accept(services, ids["P2"], "2026-03-25")),
        (date(2026, 3, 26), lambda: run_all(services, clock.now())),
        (date(2026, 4, 1), lambda: (handle(services, ids["P4"]), reply(services, ids["P4"], "2026-04-01"))),
        (date(2026, 4, 10), lambda: (handle(services, ids["P1"]), reply(services, ids["P1"], "2026-04-10"))),
        (date(2026, 4, 12), lambda: complete(services, "clerk", ids["P1"], "record_evaluation", {"rating": "satisfied"})),
        (date(2026, 4, 20), lambda: (handle(services, ids["P7"]), reply(services, ids["P7"], "2026-04-20"))),
        (date(2026, 4, 21), lambda: complete(services, "clerk", ids["P7"], "record_evaluation", {"rating": "dissatisfied"})),
        (date(2026, 5, 30), lambda: (handle(services, ids["P2"]), reply(services, ids["P2"], "2026-05-30"))),
        (date(2026, 6, 1), lambda: complete(services, "clerk", ids["P2"], "record_evaluation", {"rating": "basically_satisfied"})),
        (date(2026, 7, 1), lambda: run_all(services, clock.now())),
    ]  # fmt: skip
    for day, act in steps:
        at(clock, day)
        act()
    return ids


def test_each_petition_kpi_on_a_hand_built_quarter(
    services: Services, clock: SettableClock
) -> None:
    ids = build_march(services, clock)
    clerk = actor(services, "clerk")
    status = {
        name: petitions.get_petition(services, clerk, case_id)["status"]
        for name, case_id in ids.items()
    }
    assert status == {
        "P1": "evaluated",
        "P2": "evaluated",
        "P3": "not_accepted",
        "P4": "not_evaluated",
        "P5": "registered",
        "P6": "handling",
        "P7": "evaluated",
    }
    assert petitions.get_petition(services, clerk, ids["P6"])["repeat_of_id"] == ids["P1"]

    kpi = figures(services, date(2026, 3, 1), date(2026, 6, 30))
    assert kpi["received"] == 7
    # Acceptance notices due in the period, settled: on time P1 P3 P4 P6 P7; late P2; missed P5.
    assert kpi["accepted_on_time_rate"] == Ratio(5, 7)
    # Replies due in the period: on time P1 P4 P7; late P2 (05-30 > 05-25); P6 missed (red 07-01
    # is after the period, but its due date 05-15 is inside it and it was settled as missed).
    assert kpi["replied_on_time_rate"] == Ratio(3, 5)
    # Evaluation windows closed in the period: P1 P2 P7 evaluated, P4 lapsed.
    assert kpi["evaluation_rate"] == Ratio(3, 4)
    # Evaluated in the period: satisfied P1, basically satisfied P2 (counts), dissatisfied P7.
    assert kpi["satisfaction_rate"] == Ratio(2, 3)
    assert kpi["repeat_petitions"] == 1
    # 督办 opened in the period: P5 (03-26). P6's was opened 07-01, after the period.
    assert kpi["supervised"] == 1
    # Past due and open on 06-30: P5 (acceptance) and P6 (reply).
    assert kpi["overdue_open"] == 2

    with services.uow() as uow:
        set_settings(uow, SYSTEM, {"basic_satisfied_counts": False}, clock.now())
        uow.commit()
    assert figures(services, date(2026, 3, 1), date(2026, 6, 30))["satisfaction_rate"] == Ratio(
        1, 3
    )

    # July: P6's supervision; nothing received; P6 still overdue at the end of July.
    july = figures(services, date(2026, 7, 1), date(2026, 7, 31))
    assert (july["received"], july["supervised"], july["overdue_open"]) == (0, 1, 2)
    # March only: P7's acceptance notice (03-20 + 15 = Saturday 04-04, Qingming 04-06) falls due
    # in April; at the end of March only P5 was overdue.
    march = figures(services, date(2026, 3, 1), date(2026, 3, 31))
    assert march["accepted_on_time_rate"] == Ratio(4, 6)
    assert march["replied_on_time_rate"] == Ratio(0, 0)
    assert march["overdue_open"] == 1

    # A village sees only its own petitions: V02 holds P7 only.
    v02 = figures(services, date(2026, 3, 1), date(2026, 6, 30), "V02")
    assert v02["received"] == 1
    assert v02["replied_on_time_rate"] == Ratio(1, 1)
    assert v02["satisfaction_rate"] == Ratio(0, 1)


def test_empty_period_gives_no_value_not_100_percent(services: Services) -> None:
    kpi = figures(services, date(2025, 1, 1), date(2025, 1, 31))
    assert kpi["received"] == 0
    for key in ("accepted_on_time_rate", "replied_on_time_rate", "evaluation_rate"):
        ratio = kpi[key]
        assert isinstance(ratio, Ratio) and ratio.value is None
