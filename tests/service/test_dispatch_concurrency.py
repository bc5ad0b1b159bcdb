"""Concurrent dispatchers and crashes mid-dispatch: nothing lost, nothing sent twice (issue 6).

The crash tests state the delivery contract precisely. A dispatcher that dies after claiming
but before sending loses nothing: its lease expires and another run sends the rows once. A
dispatcher that dies after the provider accepted a message but before recording it cannot
be exactly-once on the wire (no transaction spans our database and an SMTP server): the
message is sent again, with the same Message-ID, and the receiver keeps one copy.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from engine.bootstrap import Services, build_services
from engine.clock import SettableClock
from engine.persistence.models import OutboxMessage
from engine.services import notify
from engine.services.dispatch import (
    LEASE,
    DispatchReport,
    channel_config,
    claim_due_messages,
    deliver_claimed,
    dispatch_outbox,
)
from notifications.channels import build_channels
from notifications.message import Message, Rendered
from tests.service.dispatch_support import (
    http_receiver,
    outbox,
    smtp_server,
    use_smtp,
    use_webhook,
)


def enqueue_many(services: Services, count: int, channel: str) -> None:
    """`count` messages for one channel, as domain events would leave them in the outbox."""
    with services.uow() as uow:
        for i in range(count):
            notify.enqueue(
                uow,
                key=f"bulk:{i:04d}",
                template="task_available",
                params={"task_name": f"任务{i}", "case_no": f"XF-2026-{i:06d}", "url": f"/t/{i}"},
                channel=channel,
                recipient={
                    "display_name": f"接收人{i}",
                    "language": "zh-CN" if i % 2 else "en",
                    "email": f"user{i}@example.cn",
                },
                now=services.clock.now(),
            )
        uow.commit()


def another_process(services: Services, clock: SettableClock) -> Services:
    """A second dispatcher with its own engine and connection pool, on the same database."""
    return build_services(services.settings, clock, deploy=False)


def test_two_dispatchers_deliver_500_messages_exactly_once(
    services: Services, clock: SettableClock, backend: str
) -> None:
    with http_receiver(delay=0.002) as receiver:
        use_webhook(services, receiver.url())
        enqueue_many(services, 500, "webhook")
        workers = [another_process(services, clock), another_process(services, clock)]
        barrier = threading.Barrier(len(workers))
        reports: list[DispatchReport] = []
        failures: list[BaseException] = []

        def run(svc: Services) -> None:
            try:
                barrier.wait()
                reports.append(dispatch_outbox(svc))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(svc,)) for svc in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        for svc in workers:
            svc.engine.dispose()
        assert not failures, failures
        keys = receiver.keys()

    assert len(keys) == 500
    assert set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]
    assert sum(r.sent for r in reports) == 500
    assert all(r.lost_lease == 0 and r.retried == 0 for r in reports)
    if backend == "postgresql":
        # SKIP LOCKED lets both work side by side instead of one waiting for the other.
        assert all(r.sent > 0 for r in reports), [r.sent for r in reports]
    rows = outbox(services, "webhook")
    assert len(rows) == 500 and {r.status for r in rows} == {"sent"}
    assert {r.attempts for r in rows} == {1}


def test_restart_after_claiming_loses_nothing(services: Services, clock: SettableClock) -> None:
    with smtp_server() as (store, port):
        use_smtp(services, port)
        enqueue_many(services, 25, "email")

        crashed = another_process(services, clock)
        claimed, _ = claim_due_messages(crashed, clock.now(), "dispatch-crashed", limit=10)
        assert len(claimed) == 10
        crashed.engine.dispose()  # the process dies: its claims are committed, nothing was sent

        restarted = another_process(services, clock)
        assert dispatch_outbox(restarted).sent == 15  # the rest; the 10 are leased
        clock.advance(LEASE + timedelta(seconds=1))
        assert dispatch_outbox(restarted).sent == 10  # the lease ran out: sent now
        clock.advance(LEASE * 3)
        assert dispatch_outbox(restarted).sent == 0
        restarted.engine.dispose()
        delivered = store.deduplicated()

    assert len(delivered) == 25 and set(delivered.values()) == {1}  # exactly once on the wire
    assert {(r.status, r.attempts) for r in outbox(services, "email")} == {("sent", 1), ("sent", 2)}


class ProcessDied(BaseException):
    """Stands for the dispatcher process being killed (not an error the dispatcher handles)."""


class DiesAfterSending:
    """The real e-mail channel; the process dies right after the server accepts message n."""

    name = "email"

    def __init__(self, inner: Any, die_after: int) -> None:
        self.inner = inner
        self.die_after = die_after
        self.sent = 0

    def send(self, message: Message, rendered: Rendered) -> str | None:
        result: str | None = self.inner.send(message, rendered)
        self.sent += 1
        if self.sent == self.die_after:
            raise ProcessDied
        return result


def test_restart_between_smtp_accept_and_commit_is_deduplicated_by_message_id(
    services: Services, clock: SettableClock
) -> None:
    with smtp_server() as (store, port):
        use_smtp(services, port)
        enqueue_many(services, 5, "email")

        crashed = another_process(services, clock)
        channels = dict(build_channels(channel_config(crashed.settings)))
        channels["email"] = DiesAfterSending(channels["email"], die_after=3)
        with pytest.raises(ProcessDied):
            dispatch_outbox(crashed, channels=channels, batch_size=5)
        crashed.engine.dispose()
        assert len(store.received) == 3  # the third was accepted, then the process died
        states = Counter(r.status for r in outbox(services, "email"))
        assert states == {"sent": 2, "sending": 3}  # the 3rd unrecorded, the 4th and 5th untried

        restarted = another_process(services, clock)
        assert dispatch_outbox(restarted).sent == 0  # leases still held
        clock.advance(LEASE + timedelta(seconds=1))
        assert dispatch_outbox(restarted).sent == 3
        restarted.engine.dispose()
        transmissions = store.deduplicated()

    # At least once on the wire: the third message was transmitted twice ...
    assert sorted(transmissions.values()) == [1, 1, 1, 1, 2]
    # ... with the same Message-ID both times, so the mailbox holds each message once.
    assert len(transmissions) == 5
    rows = outbox(services, "email")
    assert {r.status for r in rows} == {"sent"}
    assert {r.provider_id for r in rows} == set(transmissions)
    twice = next(mid for mid, n in transmissions.items() if n == 2)
    assert next(r for r in rows if r.provider_id == twice).attempts == 2


def test_claims_of_two_dispatchers_are_disjoint_and_locked_rows_are_skipped(
    services: Services, clock: SettableClock, backend: str
) -> None:
    with http_receiver() as receiver:
        use_webhook(services, receiver.url())
        enqueue_many(services, 10, "webhook")
        first, _ = claim_due_messages(services, clock.now(), "dispatch-a", limit=4)
        second, _ = claim_due_messages(services, clock.now(), "dispatch-b", limit=100)
        assert len(first) == 4 and len(second) == 6
        assert {c.id for c in first}.isdisjoint(c.id for c in second)
        clock.advance(LEASE + timedelta(seconds=1))  # both "died"; their leases run out
        if backend == "postgresql":
            with services.engine.connect() as other:
                # Another dispatcher is in the middle of claiming the first three rows:
                # SKIP LOCKED passes them by instead of waiting for that transaction.
                other.execute(text("BEGIN"))
                locked = (
                    other.execute(
                        select(OutboxMessage.id)
                        .order_by(OutboxMessage.id)
                        .limit(3)
                        .with_for_update()
                    )
                    .scalars()
                    .all()
                )
                started = time.monotonic()
                report = dispatch_outbox(services)
                elapsed = time.monotonic() - started
                other.execute(text("ROLLBACK"))
            assert report.sent == 7 and elapsed < 10
            sent_ids = {r.id for r in outbox(services, "webhook") if r.status == "sent"}
            assert sent_ids.isdisjoint(locked)
            assert dispatch_outbox(services).sent == 3
        else:
            assert dispatch_outbox(services).sent == 10
        assert set(receiver.keys().values()) == {1} and len(receiver.keys()) == 10


def test_a_dispatcher_whose_lease_was_taken_over_cannot_record_an_outcome(
    services: Services, clock: SettableClock
) -> None:
    with http_receiver() as receiver:
        use_webhook(services, receiver.url())
        enqueue_many(services, 1, "webhook")
        [slow] = claim_due_messages(services, clock.now(), "dispatch-slow")[0]
        clock.advance(LEASE + timedelta(seconds=1))
        [fast] = claim_due_messages(services, clock.now(), "dispatch-fast")[0]
        assert fast.id == slow.id and fast.attempts == 2
        channels = build_channels(channel_config(services.settings))
        late = DispatchReport()
        deliver_claimed(services, slow, "dispatch-slow", channels, late)
        assert late.lost_lease == 1 and late.sent == 0
        [row] = outbox(services, "webhook")
        assert row.status == "sending" and row.claimed_by == "dispatch-fast"
        on_time = DispatchReport()
        deliver_claimed(services, fast, "dispatch-fast", channels, on_time)
        assert on_time.sent == 1
        # Both sent on the wire, with one idempotency key for the receiver to keep one of.
        assert receiver.keys() == Counter({"bulk:0000": 2})
    [row] = outbox(services, "webhook")
    assert row.status == "sent" and row.claimed_by is None
