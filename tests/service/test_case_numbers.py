"""Case numbers under concurrent registrations: one upsert per number, never shared, no gaps.

Eight clerks register at once (threads on the same pool, as gunicorn workers share the
database); every petition gets its own number and together they run without a gap.
"""

from __future__ import annotations

import threading

from sqlalchemy import select

from engine.bootstrap import Services
from engine.persistence.models import Case, Counter
from engine.services.cases import take_numbers
from tests.service.petition_support import register


def test_concurrent_registrations_take_distinct_consecutive_numbers(services: Services) -> None:
    barrier = threading.Barrier(8)
    numbers: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def clerk(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(3):
                view = register(services, subject=f"并发登记 {n}-{i}")
                with lock:
                    numbers.append(view["case_no"])
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=clerk, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert len(numbers) == 24 and len(set(numbers)) == 24
    serials = sorted(int(no.rsplit("-", 1)[1]) for no in numbers)
    assert serials == list(range(serials[0], serials[0] + 24))
    with services.uow() as uow:
        stored = set(uow.session.scalars(select(Case.case_no).where(Case.case_no.in_(numbers))))
        counter = uow.session.get(Counter, numbers[0].rsplit("-", 1)[0])
        assert counter is not None and counter.value == serials[-1]
    assert stored == set(numbers)


def test_a_block_of_numbers_and_a_new_counter(services: Services) -> None:
    with services.uow() as uow:
        assert take_numbers(uow, "ZZ-2031", 5) == 5  # created at the block's end
        assert take_numbers(uow, "ZZ-2031", 1) == 6
        uow.commit()
    with services.uow() as uow:
        assert take_numbers(uow, "ZZ-2031", 3) == 9
        # Rolled back with its transaction: the next one takes the same block again.
    with services.uow() as uow:
        assert take_numbers(uow, "ZZ-2031", 3) == 9
