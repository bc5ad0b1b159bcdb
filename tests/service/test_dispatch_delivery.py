"""The dispatcher delivers outbox rows over real SMTP and HTTP on 127.0.0.1 (issue 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from aiosmtpd.controller import Controller

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, SettableClock
from engine.services import notify
from engine.services.dispatch import dispatch_outbox
from notifications.channels import message_id_for, verify_signature
from notifications.policy import MAX_ATTEMPTS
from tests.service.dispatch_support import (
    WEBHOOK_SECRET,
    free_port,
    http_receiver,
    outbox,
    set_contact,
    smtp_server,
    use_sms,
    use_smtp,
    use_webhook,
    user,
)

START_NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
TASK_PARAMS = {
    "task_name": "受理审核",
    "case_no": "XF-2026-000007",
    "due_on": "2026-03-09",
    "url": "/tasks/7",
}


def notify_task(services: Services, username: str, key: str = "task:7:task_assigned") -> None:
    """What a task hook does: enqueue the in-app message, in the event's transaction."""
    recipient = user(services, username)
    with services.uow() as uow:
        notify.enqueue(
            uow,
            key=f"{key}:{recipient.id}",
            template="task_assigned",
            params=TASK_PARAMS,
            user=uow.session.get(type(recipient), recipient.id),
            now=services.clock.now(),
        )
        uow.commit()


def test_chinese_and_english_mails_arrive_over_real_smtp(services: Services) -> None:
    set_contact(services, "handler", email="handler@example.cn")
    set_contact(services, "en_user", email="en.user@example.cn")
    with smtp_server() as (store, port):
        use_smtp(services, port)
        notify_task(services, "handler")
        notify_task(services, "en_user")

        report = dispatch_outbox(services)

        assert report.sent == 2 and report.retried == report.dead == 0
        by_to = {str(m["To"]): m for m in store.received}
        zh = next(m for to, m in by_to.items() if "handler@example.cn" in to)
        en = next(m for to, m in by_to.items() if "en.user@example.cn" in to)
    assert zh["Subject"] == "【枫桥】您有一件待办：受理审核（XF-2026-000007）"
    zh_text = zh.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "已交由您办理" in zh_text and "http://127.0.0.1:5000/tasks/7" in zh_text
    assert en["Subject"] == "[Fengqiao] New task for you: 受理审核 (XF-2026-000007)"
    en_text = en.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "has been assigned to you" in en_text and "Please complete it by 2026-03-09" in en_text
    assert "枫桥平台" in str(zh["From"])
    # The Message-ID is derived from the idempotency key: a resend carries the same one.
    rows = {r.idempotency_key: r for r in outbox(services, "email")}
    handler_id = user(services, "handler").id
    key = f"task:7:task_assigned:{handler_id}#email"
    assert zh["Message-ID"] == message_id_for(key, "noreply@fengqiao.example.cn")
    assert rows[key].status == "sent" and rows[key].provider_id == zh["Message-ID"]
    # The in-app copies are in the inboxes, written in the same transaction.
    assert {r.status for r in outbox(services, "inapp")} == {"sent"}


def test_webhook_receiver_gets_a_signed_event(services: Services) -> None:
    handler = user(services, "handler")
    with services.uow() as uow:
        notify.set_preferences(
            uow, uow.session.get(type(handler), handler.id), {"webhook": True}, START_NOW
        )
        uow.commit()
    with http_receiver() as receiver:
        use_webhook(services, receiver.url("/fengqiao-events"))
        notify_task(services, "handler")
        report = dispatch_outbox(services)
        assert report.sent == 1
        [request] = receiver.requests
    assert request.path == "/fengqiao-events"
    assert verify_signature(WEBHOOK_SECRET, request.body, request.headers["X-Fengqiao-Signature"])
    assert not verify_signature(
        "wrong-secret", request.body, request.headers["X-Fengqiao-Signature"]
    )
    tampered = request.body.replace("受理审核".encode(), "改过的".encode())
    assert not verify_signature(WEBHOOK_SECRET, tampered, request.headers["X-Fengqiao-Signature"])
    event = json.loads(request.body)
    assert "受理审核".encode() in request.body  # UTF-8 text, not \u escapes
    key = f"task:7:task_assigned:{handler.id}#webhook"
    assert request.headers["X-Fengqiao-Idempotency-Key"] == key
    assert event["idempotency_key"] == key
    assert event["recipient"]["user_id"] == handler.id
    assert event["subject"] == "【枫桥】您有一件待办：受理审核（XF-2026-000007）"
    [row] = outbox(services, "webhook")
    assert row.status == "sent" and row.provider_id == "r1"


def test_smtp_down_retries_with_backoff_then_delivers_exactly_once(
    services: Services, clock: SettableClock
) -> None:
    set_contact(services, "handler", email="handler@example.cn")
    port = free_port()  # nothing listens here yet: the mail server is down
    use_smtp(services, port)
    notify_task(services, "handler")

    first = dispatch_outbox(services)
    assert first.sent == 0 and first.retried == 1
    [row] = outbox(services, "email")
    assert row.status == "pending" and row.attempts == 1
    assert "unreachable" in (row.last_error or "")
    wait = row.next_attempt_at - clock.now()
    assert timedelta(seconds=27) <= wait <= timedelta(seconds=33)  # 30 s ± 10 % jitter

    # Not due yet: a second run does not touch it.
    assert dispatch_outbox(services).retried == 0
    clock.advance(timedelta(seconds=34))
    assert dispatch_outbox(services).retried == 1
    [row] = outbox(services, "email")
    wait = row.next_attempt_at - clock.now()
    assert row.attempts == 2 and timedelta(seconds=54) <= wait <= timedelta(seconds=66)

    with smtp_server(port) as (store, _):
        clock.advance(timedelta(minutes=2))
        assert dispatch_outbox(services).sent == 1
        clock.advance(timedelta(hours=2))
        assert dispatch_outbox(services).sent == 0
        assert len(store.received) == 1
    [row] = outbox(services, "email")
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None


def test_smtp_down_for_good_is_dead_lettered_after_the_attempt_limit(
    services: Services, clock: SettableClock
) -> None:
    set_contact(services, "handler", email="handler@example.cn")
    use_smtp(services, free_port())
    notify_task(services, "handler")
    for _ in range(MAX_ATTEMPTS + 2):
        dispatch_outbox(services)
        clock.advance(timedelta(hours=1, minutes=10))  # beyond the largest backoff
    [row] = outbox(services, "email")
    assert row.status == "dead" and row.attempts == MAX_ATTEMPTS


class RefusesEveryone:
    """An SMTP server that answers 550 to every recipient."""

    async def handle_RCPT(self, *args: object) -> str:
        return "550 5.1.1 no such user"


def test_a_refused_recipient_is_dead_lettered_at_once(services: Services) -> None:
    set_contact(services, "handler", email="handler@example.cn")
    port = free_port()
    controller = Controller(RefusesEveryone(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        use_smtp(services, port)
        notify_task(services, "handler")
        report = dispatch_outbox(services)
    finally:
        controller.stop()
    assert report.dead == 1 and report.retried == 0
    [row] = outbox(services, "email")
    assert row.status == "dead" and row.attempts == 1 and "550" in (row.last_error or "")


def test_sms_in_quiet_hours_is_held_until_morning_not_dropped(
    services: Services, clock: SettableClock
) -> None:
    clock.set(datetime(2026, 3, 2, 23, 15, tzinfo=LOCAL_TZ))
    code = notify.new_query_code()
    with services.uow() as uow:
        notify.notify_petitioner_sms(
            uow,
            "138 0013 8000",
            "XF-2026-000031",
            code,
            "/evaluate/XF-2026-000031",
            clock.now(),
        )
        uow.commit()
    with http_receiver() as gateway:
        use_sms(services, gateway.url("/sms"))
        report = dispatch_outbox(services)
        assert report.deferred == 1 and report.sent == 0 and gateway.requests == []
        [row] = outbox(services, "sms")
        assert row.status == "pending" and row.attempts == 0
        assert row.next_attempt_at == datetime(2026, 3, 3, 7, 0, tzinfo=LOCAL_TZ)

        clock.set(datetime(2026, 3, 3, 6, 59, tzinfo=LOCAL_TZ))
        assert dispatch_outbox(services).sent == 0
        clock.set(datetime(2026, 3, 3, 7, 0, tzinfo=LOCAL_TZ))
        assert dispatch_outbox(services).sent == 1
        [request] = gateway.requests
    body = request.json()
    assert body["to"] == "13800138000"
    assert code in body["text"] and len(body["text"]) <= 70
    assert request.headers["Authorization"] == "Bearer key-1"
    assert (
        request.headers["X-Fengqiao-Idempotency-Key"] == "petitioner:reply_delivered:XF-2026-000031"
    )


def test_quiet_hours_follow_the_setting(services: Services, clock: SettableClock) -> None:
    from engine.services.access import SYSTEM
    from engine.services.settings import set_settings

    with services.uow() as uow:
        set_settings(uow, SYSTEM, {"sms_quiet_hours": "12:00-14:00"}, clock.now())
        uow.commit()
    clock.set(datetime(2026, 3, 2, 23, 30, tzinfo=LOCAL_TZ))  # not quiet under this setting
    with services.uow() as uow:
        notify.notify_petitioner_sms(
            uow, "13800138000", "XF-2026-000032", "ABCD2345", "/e", clock.now()
        )
        uow.commit()
    with http_receiver() as gateway:
        use_sms(services, gateway.url("/sms"))
        assert dispatch_outbox(services).sent == 1


def test_query_codes_are_unambiguous_and_random() -> None:
    codes = {notify.new_query_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 8 and code.isalnum() and code.upper() == code
        assert not set(code) & set("01OIL")


def test_fan_out_follows_preferences_and_never_duplicates(services: Services) -> None:
    set_contact(services, "handler", email="handler@example.cn", phone="13900139000")
    set_contact(services, "leader", email="leader@example.cn")
    from engine.persistence.models import User

    handler_id, leader_id = user(services, "handler").id, user(services, "leader").id
    with services.uow() as uow:
        h = uow.session.get(User, handler_id)
        ld = uow.session.get(User, leader_id)
        assert h is not None and ld is not None
        notify.set_preferences(uow, h, {"sms": True, "wecom": True}, START_NOW)
        notify.set_preferences(uow, ld, {"email": False, "wecom": True}, START_NOW)
        uow.commit()
    for _ in range(2):  # the event runs twice (e.g. a job re-run): nothing doubles
        for username in ("handler", "leader", "clerk"):
            notify_task(services, username, key="task:9:task_available")
    rows = outbox(services)
    by_channel: dict[str, list[str]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row.recipient.get("display_name", ""))
    h_name, l_name = user(services, "handler").display_name, user(services, "leader").display_name
    c_name = user(services, "clerk").display_name
    assert sorted(by_channel["inapp"]) == sorted([h_name, l_name, c_name])
    assert by_channel["email"] == [h_name]  # leader turned e-mail off; clerk has no address
    assert by_channel["sms"] == [h_name]
    assert len(by_channel["wecom"]) == 1  # the group chat hears of the event once
    assert {row.status for row in rows if row.channel != "inapp"} == {"pending"}

    # A channel this installation has not configured is skipped, not retried for ever.
    report = dispatch_outbox(services)
    assert report.skipped == 3
    assert {r.status for r in outbox(services) if r.channel != "inapp"} == {"skipped"}


def test_preferences_refuse_unknown_and_unreachable_channels(services: Services) -> None:
    import pytest

    from engine.errors import ValidationError
    from engine.persistence.models import User

    handler_id = user(services, "handler").id
    with services.uow() as uow:
        h = uow.session.get(User, handler_id)
        assert h is not None
        with pytest.raises(ValidationError) as exc:
            notify.set_preferences(uow, h, {"sms": True, "fax": True}, START_NOW)
        assert set(exc.value.errors) == {"sms", "fax"}
        assert notify.get_preferences(uow, h)["sms"] is False
