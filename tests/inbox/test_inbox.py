"""The platform inbox on SQLite and PostgreSQL: a party's messages reach every member and no other
party, are shown in the reader's language, are sent once per dedupe key, and are marked read."""

from __future__ import annotations

import re

import pytest
from factories import PASSWORD, bearer, console_login, make_actor
from registry_support import principal

from datafactor import inbox
from datafactor.errors import NotFound
from datafactor.identity import create_user_as_operator

MESSAGE = "Right {right} ({kind_label}) is now {status_label}."


def send(db, party_ids, **kw):
    with db.write() as s:
        return inbox.notify(
            s,
            party_ids,
            kind=kw.pop("kind", "registry.rights"),
            message=kw.pop("message", MESSAGE),
            params=kw.pop(
                "params",
                {
                    "right": "R-1",
                    "kind_label": "Data resource holding right",
                    "status_label": "Revoked",
                },
            ),
            **kw,
        )


def test_every_member_sees_the_party_messages_and_no_other_party(db, enterprise, other_enterprise):
    with db.write() as s:
        colleague = create_user_as_operator(
            s,
            enterprise.party_id,
            username="acme.staff",
            display_name="Colleague",
            password=PASSWORD,
            roles=["staff"],
        )
        colleague_id = colleague.id
    assert send(db, [enterprise.party_id]) == 1
    admin, rival = principal(db, enterprise), principal(db, other_enterprise)
    from datafactor.identity.models import Party, User
    from datafactor.identity.services import principal_for

    with db.read() as s:
        staff = principal_for(
            s.get(User, colleague_id), s.get(Party, enterprise.party_id), via="session"
        )
        mine, total = inbox.list_messages(s, admin, limit=10, offset=0)
        assert total == 1
        assert [m.id for m in inbox.list_messages(s, staff, limit=10, offset=0)[0]] == [mine[0].id]
        assert inbox.list_messages(s, rival, limit=10, offset=0) == ([], 0)
        assert inbox.unread_count(s, staff) == 1
    # Another party cannot mark it read: its id is simply not found.
    with db.write() as s, pytest.raises(NotFound):
        inbox.mark_read(s, rival, mine[0].id)
    # A colleague marks it read: read for the whole party.
    with db.write() as s:
        inbox.mark_read(s, staff, mine[0].id)
    with db.read() as s:
        assert inbox.unread_count(s, admin) == 0


def test_dedupe_key_sends_once_per_party(db, enterprise, other_enterprise):
    parties = [enterprise.party_id, other_enterprise.party_id]
    assert send(db, parties, dedupe_key="reminder:GX-DR-2026-000001") == 2
    assert send(db, parties, dedupe_key="reminder:GX-DR-2026-000001") == 0
    # A party added later under the same key still gets it, once.
    third = make_actor(db)
    assert send(db, [*parties, third.party_id], dedupe_key="reminder:GX-DR-2026-000001") == 1
    # Without a key every call is a new message.
    assert send(db, [enterprise.party_id]) == 1
    with db.read() as s:
        assert inbox.list_messages(s, principal(db, enterprise), limit=10, offset=0)[1] == 2


def test_a_rolled_back_change_tells_nobody(db, enterprise):
    def failing_change() -> None:
        with db.write() as s:
            inbox.notify(s, [enterprise.party_id], kind="x", message=MESSAGE, params={})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    with db.read() as s:
        assert inbox.unread_count(s, principal(db, enterprise)) == 0


def test_api_unread_first_in_the_readers_language_and_tenant_isolation(
    client, db, enterprise, other_enterprise
):
    send(db, [enterprise.party_id], params={"right": "R-old", "kind_label": "", "status_label": ""})
    send(db, [enterprise.party_id])
    owner, rival = bearer(client, enterprise), bearer(client, other_enterprise)
    r = client.get("/api/v1/notifications", headers={**owner, "Accept-Language": "en"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2 and body["unread"] == 2
    first, second = body["items"]
    assert first["text"] == "Right R-1 (Data resource holding right) is now Revoked."
    # Mark the newest read: it moves below the unread one.
    r = client.post(f"/api/v1/notifications/{first['id']}/read", headers=owner)
    assert r.status_code == 200 and r.json()["read"] is True
    items = client.get("/api/v1/notifications", headers=owner).json()["items"]
    assert [i["id"] for i in items] == [second["id"], first["id"]]
    unread = client.get("/api/v1/notifications?unread=true", headers=owner).json()
    assert [i["id"] for i in unread["items"]] == [second["id"]] and unread["unread"] == 1
    # In Chinese the labels are translated too (the message itself is a test msgid).
    zh = client.get("/api/v1/notifications", headers={**owner, "Accept-Language": "zh-CN"})
    assert "数据资源持有权" in zh.json()["items"][1]["text"]
    # Another party sees none of it and cannot mark it.
    assert client.get("/api/v1/notifications", headers=rival).json()["total"] == 0
    r = client.post(f"/api/v1/notifications/{second['id']}/read", headers=rival)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_page_badge_and_mark_read(client, db, enterprise):
    send(db, [enterprise.party_id])
    send(db, [enterprise.party_id])
    csrf = console_login(client, enterprise, "/notifications", "en")
    page = client.get("/notifications")
    assert page.status_code == 200
    assert page.text.count('data-testid="inbox-item" data-read="no"') == 2
    assert "Right R-1 (Data resource holding right) is now Revoked." in page.text
    assert 'hx-get="/notifications/badge"' in page.text  # the nav loads the count
    badge = client.get("/notifications/badge")
    assert 'data-testid="inbox-unread"' in badge.text and ">2<" in badge.text
    ids = re.findall(r'action="/notifications/([^/"]+)/read"', page.text)
    r = client.post(
        f"/notifications/{ids[0]}/read", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    assert ">1<" in client.get("/notifications/badge").text
    # Without the form's CSRF token nothing changes.
    r = client.post("/notifications/read-all", data={}, follow_redirects=False)
    assert r.status_code in (400, 403)
    r = client.post("/notifications/read-all", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert 'data-testid="inbox-unread"' not in client.get("/notifications/badge").text
    assert client.get("/notifications").text.count('data-read="yes"') == 2
    # Logged out, the badge is empty and the page asks for a login.
    client.cookies.clear()
    assert client.get("/notifications/badge").text == ""
    assert client.get("/notifications", follow_redirects=False).status_code in (303, 401)


def test_params_must_be_text(db, enterprise):
    from datafactor.errors import InvalidInput

    with db.write() as s, pytest.raises(InvalidInput):
        inbox.notify(s, [enterprise.party_id], kind="x", message=MESSAGE, params={"n": 3})  # type: ignore[dict-item]
