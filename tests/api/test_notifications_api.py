"""The in-app inbox, preferences and the admins' outbox through the API, and the unread badge
in the pages (issue 6)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.persistence.models import NotificationPreference, OutboxMessage, User
from engine.services import notify
from engine.services.dispatch import dispatch_outbox
from tests.service.dispatch_support import free_port, set_contact, use_smtp


def notify_user(services: Services, username: str, n: int, template: str = "task_assigned") -> None:
    with services.uow() as uow:
        user = uow.session.scalars(select(User).where(User.username == username)).one()
        for i in range(n):
            notify.enqueue(
                uow,
                key=f"test:{username}:{template}:{i}",
                template=template,
                params={
                    "task_name": f"审核{i}",
                    "case_no": f"AJ-2026-{i:06d}",
                    "url": f"/tasks/{i}",
                },
                user=user,
                now=services.clock.now() + timedelta(seconds=i),
            )
        uow.commit()


def test_inbox_lists_my_notifications_in_my_language(
    client: Any, auth: Any, services: Services
) -> None:
    notify_user(services, "handler", 3)
    notify_user(services, "en_user", 1)
    resp = client.get("/api/v1/me/notifications", headers=auth("handler"))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["total"] == 3
    newest = body["items"][0]
    assert newest["subject"] == "【枫桥】您有一件待办：审核2（AJ-2026-000002）"
    assert all(i["unread"] for i in body["items"])
    assert body["items"][0]["link"] == "http://127.0.0.1:5000/tasks/2"
    en = client.get("/api/v1/me/notifications", headers=auth("en_user")).get_json()
    assert en["total"] == 1
    assert en["items"][0]["subject"] == "[Fengqiao] New task for you: 审核0 (AJ-2026-000000)"

    paged = client.get("/api/v1/me/notifications?per_page=2&page=2", headers=auth("handler"))
    assert paged.get_json()["total"] == 3 and len(paged.get_json()["items"]) == 1
    assert (
        client.get("/api/v1/me/notifications?per_page=500", headers=auth("handler")).status_code
        == 422
    )
    assert client.get("/api/v1/me/notifications").status_code == 401


def test_marking_read_changes_the_unread_count(client: Any, auth: Any, services: Services) -> None:
    notify_user(services, "handler", 3)
    notify_user(services, "leader", 1)
    headers = auth("handler")
    count = client.get("/api/v1/me/notifications/unread-count", headers=headers)
    assert count.status_code == 200 and count.get_json() == {"unread": 3}
    items = client.get("/api/v1/me/notifications", headers=headers).get_json()["items"]

    read = client.post(f"/api/v1/me/notifications/{items[0]['id']}/read", headers=headers)
    assert read.status_code == 200 and read.get_json()["unread"] is False
    assert client.get("/api/v1/me/notifications/unread-count", headers=headers).get_json() == {
        "unread": 2
    }
    unread = client.get("/api/v1/me/notifications?unread=true", headers=headers).get_json()
    assert unread["total"] == 2 and items[0]["id"] not in [i["id"] for i in unread["items"]]

    # Someone else's notification is not found, and stays unread.
    other = client.get("/api/v1/me/notifications", headers=auth("leader")).get_json()["items"][0]
    assert (
        client.post(f"/api/v1/me/notifications/{other['id']}/read", headers=headers).status_code
        == 404
    )
    assert client.post("/api/v1/me/notifications/999999/read", headers=headers).status_code == 404
    assert client.get(
        "/api/v1/me/notifications/unread-count", headers=auth("leader")
    ).get_json() == {"unread": 1}

    all_read = client.post("/api/v1/me/notifications/read-all", headers=headers)
    assert all_read.status_code == 200 and all_read.get_json()["updated"] == 2
    assert client.get("/api/v1/me/notifications/unread-count", headers=headers).get_json() == {
        "unread": 0
    }


def test_preferences_can_be_read_and_changed(client: Any, auth: Any, services: Services) -> None:
    headers = auth("handler")
    prefs = client.get("/api/v1/me/notification-preferences", headers=headers).get_json()
    assert prefs == {
        "inapp": True,
        "email": True,
        "sms": False,
        "webhook": False,
        "wecom": False,
        "dingtalk": False,
        "email_address": None,
        "phone": None,
    }
    # SMS needs a phone number on file; unknown fields are refused; nothing is written.
    bad = client.put("/api/v1/me/notification-preferences", json={"sms": True}, headers=headers)
    assert bad.status_code == 422 and "sms" in bad.get_json()["errors"]
    unknown = client.put("/api/v1/me/notification-preferences", json={"fax": True}, headers=headers)
    assert unknown.status_code == 422
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(NotificationPreference)) == 0

    set_contact(services, "handler", phone="13900139000")
    ok = client.put(
        "/api/v1/me/notification-preferences",
        json={"sms": True, "email": False, "wecom": True},
        headers=headers,
    )
    assert ok.status_code == 200
    assert ok.get_json()["sms"] is True and ok.get_json()["email"] is False
    again = client.get("/api/v1/me/notification-preferences", headers=headers).get_json()
    assert again["sms"] is True and again["wecom"] is True and again["phone"] == "13900139000"

    notify_user(services, "handler", 1)
    with services.uow() as uow:
        channels = sorted(
            uow.session.scalars(
                select(OutboxMessage.channel).where(OutboxMessage.template == "task_assigned")
            )
        )
    assert channels == ["inapp", "sms", "wecom"]


def test_admins_see_dead_letters_and_resend_them(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    set_contact(services, "handler", email="handler@example.cn")
    use_smtp(services, free_port())  # nobody listens: every try fails
    notify_user(services, "handler", 1)
    for _ in range(10):
        dispatch_outbox(services)
        clock.advance(timedelta(hours=2))

    assert (
        client.get("/api/v1/admin/outbox?status=dead", headers=auth("handler")).status_code == 403
    )
    dead = client.get("/api/v1/admin/outbox?status=dead", headers=auth("admin"))
    assert dead.status_code == 200
    [item] = dead.get_json()["items"]
    assert item["channel"] == "email" and item["attempts"] == 8
    assert "unreachable" in item["last_error"]
    assert client.get("/api/v1/admin/outbox?status=lost", headers=auth("admin")).status_code == 422

    resent = client.post(f"/api/v1/admin/outbox/{item['id']}/resend", headers=auth("admin"))
    assert resent.status_code == 200
    assert resent.get_json()["status"] == "pending" and resent.get_json()["attempts"] == 0
    again = client.post(f"/api/v1/admin/outbox/{item['id']}/resend", headers=auth("admin"))
    assert again.status_code == 409
    assert (
        client.post("/api/v1/admin/outbox/999999/resend", headers=auth("admin")).status_code == 404
    )
    assert (
        client.post(
            f"/api/v1/admin/outbox/{item['id']}/resend", headers=auth("handler")
        ).status_code
        == 403
    )

    from tests.service.dispatch_support import smtp_server

    with smtp_server() as (store, port):
        use_smtp(services, port)
        assert dispatch_outbox(services).sent == 1
        assert len(store.received) == 1
    assert (
        client.get("/api/v1/admin/outbox?status=dead", headers=auth("admin")).get_json()["total"]
        == 0
    )


def login(client: Any, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token
    resp = client.post(
        "/login", data={"username": username, "password": "demo1234", "csrf_token": token.group(1)}
    )
    assert resp.status_code == 302


def badge(html: str) -> str | None:
    match = re.search(r'id="unread-count"[^>]*>(\d+)<', html)
    return match.group(1) if match else None


def test_pages_show_the_unread_count(client: Any, services: Services) -> None:
    notify_user(services, "handler", 4)
    login(client, "handler")
    tasks_page = client.get("/tasks").get_data(as_text=True)
    assert badge(tasks_page) == "4"
    assert "消息通知" in tasks_page

    page = client.get("/notifications")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and badge(html) == "4"
    assert "【枫桥】您有一件待办：审核3（AJ-2026-000003）" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    ids = [int(i) for i in re.findall(r"/notifications/(\d+)/read", html)]
    assert len(ids) == 4

    opened = client.post(
        f"/notifications/{ids[0]}/read", data={"csrf_token": token.group(1), "open": "1"}
    )
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/tasks/3")
    assert badge(client.get("/tasks").get_data(as_text=True)) == "3"
    # A cookie-authenticated write without the CSRF token is refused.
    assert client.post("/notifications/read-all").status_code == 400
    done = client.post("/notifications/read-all", data={"csrf_token": token.group(1)})
    assert done.status_code == 302
    after = client.get("/notifications").get_data(as_text=True)
    assert badge(after) is None and "已将全部消息标为已读。" in after
    assert "0 条未读" in after


def test_pages_badge_is_per_user(client: Any, services: Services) -> None:
    notify_user(services, "handler", 2)
    login(client, "leader")
    html = client.get("/tasks").get_data(as_text=True)
    assert badge(html) is None and "消息通知" in html
