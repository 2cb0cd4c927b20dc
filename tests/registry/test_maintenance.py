"""The registry's notifications, daily sweep and calendar administration on SQLite and PostgreSQL.

A holding right is registered on ``TODAY`` and licensed to another party until the end of 2026;
the tests then cancel the holding right (the licensee is told its licence is suspended), or run
the sweep across the licence's last month (one reminder, 30 days ahead) and past its end (the
licence expires and its certificate verifies as expired), or change the working-day calendar.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from factories import bearer, make_actor
from registry_support import LATER, SCOPE, TODAY, initial, new_asset, principal, scanned_version
from sqlalchemy import select
from typer.testing import CliRunner

from datafactor import context, inbox
from datafactor.audit import AuditEvent
from datafactor.identity import PartyKind
from datafactor.inbox.schemas import message_text
from datafactor.registry import Action, RegistrationType, maintenance
from datafactor.registry import services as registry
from datafactor.registry.models import RegistryCertificate, RegistryRight
from datafactor.settings import get_settings

LICENCE_END = date(2026, 12, 31)
LICENSED_ON = date(2026, 4, 27)  # the licence's notice (from LATER) has run its course


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


def submit(db, who, draft, issuer, today=TODAY) -> str:
    with db.write() as s:
        return registry.submit_application(s, who, draft, issuer=issuer, today=today).id


def act(db, who, application_id, action, issuer, today=TODAY, **kw) -> str:
    with db.write() as s:
        return registry.act(s, who, application_id, action, issuer=issuer, today=today, **kw).state


def holding_right(db, settings, issuer, holder, registrar) -> tuple[str, str]:
    """A certified holding right of ``holder``: (asset id, right id)."""
    asset_id = new_asset(db, holder, scanned_version(db, settings, holder))
    app_id = submit(db, holder, initial(db, asset_id), issuer)
    act(db, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer)
    assert act(db, registrar, app_id, Action.CLOSE_NOTICE, issuer, today=LATER) == "certified"
    with db.read() as s:
        return asset_id, s.scalars(select(RegistryRight.id)).one()


def licence(db, issuer, holder, registrar, asset_id, right_id, licensee_id) -> str:
    """A certified processing-use licence to ``licensee_id`` ending LICENCE_END: its right id."""
    draft = registry.ApplicationDraft(
        type=RegistrationType.LICENCE,
        asset_id=asset_id,
        right_id=right_id,
        counterparty_id=licensee_id,
        scope=SCOPE,
        term_start=LATER,
        term_end=LICENCE_END,
    )
    app_id = submit(db, holder, draft, issuer, today=LATER)
    act(db, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer, today=LATER)
    state = act(db, registrar, app_id, Action.CLOSE_NOTICE, issuer, today=LICENSED_ON)
    assert state == "certified"
    with db.read() as s:
        row = s.scalars(select(RegistryRight).where(RegistryRight.holder_id == licensee_id)).one()
        return row.id


def messages(db, who, locale: str = "en") -> list[tuple[str, str, dict[str, str]]]:
    """(kind, text in ``locale``, params) of every message of ``who``'s party, newest first."""
    token = context.locale.set(locale)
    try:
        with db.read() as s:
            rows, _ = inbox.list_messages(s, who, limit=200, offset=0)
            return [(m.kind, message_text(m), dict(m.params)) for m in rows]
    finally:
        context.locale.reset(token)


@pytest.fixture
def licensed(db, settings, issuer, enterprise, other_enterprise, operator) -> dict[str, Any]:
    holder, licensee, registrar = (
        principal(db, enterprise),
        principal(db, other_enterprise),
        principal(db, operator),
    )
    asset_id, right_id = holding_right(db, settings, issuer, holder, registrar)
    licence_id = licence(
        db, issuer, holder, registrar, asset_id, right_id, other_enterprise.party_id
    )
    return {
        "holder": holder,
        "licensee": licensee,
        "registrar": registrar,
        "asset_id": asset_id,
        "right_id": right_id,
        "licence_id": licence_id,
    }


def test_cancellation_suspends_the_licence_and_tells_the_licensee(db, issuer, licensed):
    holder, licensee = licensed["holder"], licensed["licensee"]
    # The licensee was told of its licence when it was registered.
    told = messages(db, licensee)
    assert [(k, p["right"]) for k, _, p in told] == [("registry.rights", licensed["licence_id"])]
    assert told[0][1].startswith("Licence registered: Data processing and use right")

    cancel = registry.ApplicationDraft(
        type=RegistrationType.CANCELLATION,
        asset_id=licensed["asset_id"],
        right_id=licensed["right_id"],
    )
    app_id = submit(db, holder, cancel, issuer, today=date(2026, 5, 4))
    state = act(db, licensed["registrar"], app_id, Action.APPROVE, issuer, today=date(2026, 5, 4))
    assert state == "certified"
    with db.read() as s:
        suspended = s.get(RegistryRight, licensed["licence_id"])
        assert suspended is not None and suspended.status == "suspended"
    kind, text, params = messages(db, licensee)[0]
    assert kind == "registry.rights"
    assert params["right"] == licensed["licence_id"] and params["cause"] == licensed["right_id"]
    assert f"is suspended because right {licensed['right_id']}" in text
    assert "is now Deregistered" in text
    # In Chinese by default: labels translated too.
    zh_text = messages(db, licensee, "zh_CN")[0][1]
    assert "数据加工使用权" in zh_text
    # The holder named nobody but the licensee: nothing new for the holder's own party.
    assert all(p.get("cause") is None for _, _, p in messages(db, holder))


def test_objection_decision_tells_objector_and_applicant(
    db, settings, issuer, enterprise, other_enterprise, operator
):
    who, rival, registrar = (
        principal(db, enterprise),
        principal(db, other_enterprise),
        principal(db, operator),
    )
    asset_id = new_asset(db, who, scanned_version(db, settings, who))
    app_id = submit(db, who, initial(db, asset_id), issuer)
    act(db, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer)
    with db.write() as s:
        objection_id = registry.lodge(
            s,
            rival,
            app_id,
            registry.ObjectionDraft(("title_dispute",), "该站点数据由我方采集", ("合同.pdf",)),
            today=date(2026, 3, 3),
        ).id
    with db.write() as s:
        registry.decide(
            s,
            registrar,
            objection_id,
            substantiated=False,
            reason="证据不足",
            today=date(2026, 3, 4),
        )
    for party in (who, rival):
        kind, text, params = messages(db, party)[0]
        assert kind == "registry.objection" and params["application"] == app_id
        assert "was dismissed. Reason: 证据不足" in text


def test_reminder_once_at_30_days_then_expiry(db, licensed):
    licensee = licensed["licensee"]
    with db.read() as s:
        number = s.scalars(
            select(RegistryCertificate.number).where(
                RegistryCertificate.right_id == licensed["licence_id"]
            )
        ).one()
    before = len(messages(db, licensee))

    # 31 days ahead: not yet.
    report = maintenance.run_sweep(db, today=date(2026, 11, 30))
    assert report.reminders == [] and len(messages(db, licensee)) == before
    # 30 days ahead: one reminder, naming the certificate (the right ends the same day, so the
    # certificate's reminder is the only one).
    report = maintenance.run_sweep(db, today=date(2026, 12, 1))
    assert [r["certificate"] for r in report.reminders] == [number]
    kind, text, params = messages(db, licensee)[0]
    assert kind == "registry.expiry" and params["number"] == number
    assert "valid until 2026-12-31" in text and "REG-EXPIRY-REMINDER" in text
    # Never twice: not the same day, not the next.
    assert not maintenance.run_sweep(db, today=date(2026, 12, 1)).changed
    assert not maintenance.run_sweep(db, today=date(2026, 12, 2)).changed
    assert len(messages(db, licensee)) == before + 1

    # Still in force on its last day; expired the day after, with its certificate.
    assert maintenance.run_sweep(db, today=LICENCE_END).expired == []
    report = maintenance.run_sweep(db, today=date(2027, 1, 1))
    assert report.expired == [licensed["licence_id"]]
    with db.read() as s:
        right = s.get(RegistryRight, licensed["licence_id"])
        assert right is not None and right.status == "expired"
        found = registry.verify_certificate(s, number, today=date(2027, 1, 1))
        assert found.status.value == "expired"
        swept = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "registry:right:expire",
                AuditEvent.object_id == licensed["licence_id"],
            )
        ).one()
        assert swept.actor_username == "registry-sweep"
    kind, text, params = messages(db, licensee)[0]
    assert kind == "registry.rights" and params["right"] == licensed["licence_id"]
    assert text.startswith("Term ended:") and "is now Expired" in text
    # Idempotent: a second sweep on the same day changes nothing.
    count = len(messages(db, licensee))
    assert maintenance.run_sweep(db, today=date(2027, 1, 1)).as_dict() == {
        "today": "2027-01-01",
        "expired": [],
        "reminders": [],
        "overdue": [],
        "withdrawn": [],
    }
    assert len(messages(db, licensee)) == count


def test_overdue_owners_told_once_and_returned_applications_withdrawn(
    db, settings, issuer, enterprise, operator
):
    who, registrar = principal(db, enterprise), principal(db, operator)
    waiting = submit(
        db, who, initial(db, new_asset(db, who, scanned_version(db, settings, who))), issuer
    )
    returned = submit(
        db, who, initial(db, new_asset(db, who, scanned_version(db, settings, who))), issuer
    )
    act(db, registrar, returned, Action.RETURN, issuer, reason="请补充数据样例")
    other_operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)

    report = maintenance.run_sweep(db, today=LATER)
    overdue = {o["application"]: o for o in report.overdue}
    assert overdue[waiting]["owner"] == "registrar" and overdue[waiting]["state"] == (
        "substantive_review"
    )
    assert overdue[returned]["owner"] == "applicant"
    assert report.withdrawn == [returned]
    # Every party of the registration authority is told of the registrar's late work.
    for party in (registrar, principal(db, other_operator)):
        texts = [t for k, t, p in messages(db, party) if k == "registry.overdue"]
        assert len(texts) == 1 and waiting in texts[0] and "Substantive review" in texts[0]
    applicant_texts = [t for k, t, _ in messages(db, who) if k == "registry.overdue"]
    assert len(applicant_texts) == 1 and returned in applicant_texts[0]
    with db.read() as s:
        assert registry.get_application(s, who, returned).state == "withdrawn"
        assert registry.get_application(s, who, waiting).state == "substantive_review"
    # The next day it is still overdue, but nobody is told again.
    report = maintenance.run_sweep(db, today=date(2026, 4, 21))
    assert not report.changed


def test_calendar_override_changes_due_dates_counted_afterwards(
    client, db, settings, issuer, enterprise, operator
):
    who, registrar = principal(db, enterprise), principal(db, operator)
    before = submit(
        db, who, initial(db, new_asset(db, who, scanned_version(db, settings, who))), issuer
    )
    act(db, registrar, before, Action.APPROVE_TO_NOTICE, issuer)
    with db.read() as s:
        assert registry.get_application(s, who, before).notice_ends == date(2026, 3, 5)

    # The administrator makes Tuesday 3 March a holiday (a typhoon closure).
    admin = bearer(client, operator)
    r = client.put(
        "/api/v1/registry/calendar/2026-03-03",
        headers=admin,
        json={"kind": "holiday", "note": "台风停工"},
    )
    assert r.status_code == 200, r.text
    change = r.json()
    assert change["day"] == {
        "day": "2026-03-03",
        "kind": "holiday",
        "source": "override",
        "note": "台风停工",
        "note_en": "",
    }
    # The notice already running keeps its dates, and is listed as such.
    assert [a["application"] for a in change["affected"]] == [before]
    with db.read() as s:
        assert registry.get_application(s, who, before).notice_ends == date(2026, 3, 5)

    # A notice counted after the change skips the new holiday: one day later.
    after = submit(
        db, who, initial(db, new_asset(db, who, scanned_version(db, settings, who))), issuer
    )
    act(db, registrar, after, Action.APPROVE_TO_NOTICE, issuer)
    with db.read() as s:
        assert registry.get_application(s, who, after).notice_ends == date(2026, 3, 6)
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "registry:calendar:set")
        ).one()
        assert event.object_id == "2026-03-03" and "台风停工" in event.reasons

    year = client.get("/api/v1/registry/calendar?year=2026", headers=admin).json()
    assert year["covered"] is True and year["working_days"] == 247  # 248 less the new holiday
    assert {"day": "2026-03-03", "kind": "holiday", "source": "override"}.items() <= (
        year["overrides"][0].items()
    )
    national_day = [d for d in year["days"] if d["day"] == "2026-10-01"]
    assert national_day[0]["source"] == "file" and national_day[0]["kind"] == "holiday"

    # Removing the override restores the State Council's arrangement (and is audited).
    r = client.delete("/api/v1/registry/calendar/2026-03-03", headers=admin)
    assert r.status_code == 200 and r.json()["removed"] == "2026-03-03"
    assert (
        client.get("/api/v1/registry/calendar?year=2026", headers=admin).json()["working_days"]
        == 248
    )
    r = client.delete("/api/v1/registry/calendar/2026-03-03", headers=admin)
    assert r.status_code == 404


def test_calendar_changes_are_for_the_administrator_only(client, db, enterprise, operator):
    staff = make_actor(db, PartyKind.EXCHANGE_OPERATOR, roles=("staff",))
    for actor in (enterprise, staff):
        r = client.put(
            "/api/v1/registry/calendar/2026-10-12",
            headers=bearer(client, actor),
            json={"kind": "holiday", "note": ""},
        )
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    # A registrar reads the calendar; an enterprise does not.
    assert client.get("/api/v1/registry/calendar", headers=bearer(client, staff)).status_code == 200
    r = client.get("/api/v1/registry/calendar", headers=bearer(client, enterprise))
    assert r.status_code == 403
    # Bad input is refused clearly.
    admin = bearer(client, operator)
    r = client.put("/api/v1/registry/calendar/2026-10-12", headers=admin, json={"kind": "party"})
    assert r.status_code == 422
    r = client.put(
        "/api/v1/registry/calendar/1999-10-12",
        headers={**admin, "Accept-Language": "en"},
        json={"kind": "holiday"},
    )
    assert r.status_code == 422 and "1999-10-12 is outside it" in r.json()["detail"]


def test_calendar_page_shows_the_month_and_changes_a_day(client, db, operator):
    import re

    from factories import PASSWORD

    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    client.post(
        "/login",
        data={"username": operator.username, "password": PASSWORD, "csrf_token": csrf, "next": "/"},
    )
    client.cookies.set("df_lang", "en")
    r = client.get("/registry/calendar?year=2026&month=10")
    assert r.status_code == 200
    assert 'data-day="2026-10-01" data-working="no" data-source="file"' in r.text
    assert 'data-day="2026-10-10" data-working="yes" data-source="file"' in r.text  # make-up day
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/registry/calendar",
        data={"csrf_token": csrf, "day": "2026-10-12", "kind": "holiday", "note": "台风"},
    )
    assert r.status_code == 200
    assert 'data-day="2026-10-12" data-working="no" data-source="override"' in r.text
    assert 'data-testid="calendar-change"' in r.text
    r = client.post(
        "/registry/calendar", data={"csrf_token": csrf, "day": "12/10", "kind": "holiday"}
    )
    assert r.status_code == 422 and "2026-10-01" in r.text


def test_cli_sweep_json(db, settings, monkeypatch, licensed):
    from datafactor.cli import app as cli

    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATAFACTOR_ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(cli, ["registry", "sweep", "--today", "2027-01-01", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["today"] == "2027-01-01" and report["expired"] == [licensed["licence_id"]]
        again = runner.invoke(cli, ["registry", "sweep", "--today", "2027-01-01", "--json"])
        assert json.loads(again.stdout)["expired"] == []
        bad = runner.invoke(cli, ["registry", "sweep", "--today", "tomorrow"])
        assert bad.exit_code == 2
    finally:
        get_settings.cache_clear()


def test_daily_sweep_sweeps_once_per_day(db, enterprise):
    clock = [date(2026, 4, 20)]
    sweep_if_due = maintenance.daily_sweep(db, today=lambda: clock[0])
    first = sweep_if_due()
    assert first is not None and first.today == date(2026, 4, 20)
    assert sweep_if_due() is None  # same day: not again
    clock[0] = date(2026, 4, 21)
    assert sweep_if_due() is not None  # after midnight in China: once more


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_two_administrators_saving_the_same_new_day_both_succeed(db, operator):
    """The second save of a day nobody had overridden waits for the first and then updates it
    (an upsert), instead of failing on the duplicate key."""
    import threading

    from datafactor.registry.models import RegistryCalendarDay

    admin = principal(db, operator)
    day = date(2026, 10, 12)
    first_saved, errors = threading.Event(), []

    def second() -> None:
        try:
            first_saved.wait(10)
            with db.write() as s:
                maintenance.set_calendar_day(s, admin, day, kind="workday", note="second")
        except Exception as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    with db.write() as s:
        maintenance.set_calendar_day(s, admin, day, kind="holiday", note="first")
        first_saved.set()
        # Hold the first transaction open while the second one inserts the same day.
        thread.join(0.5)
    thread.join(10)
    assert errors == []
    with db.read() as s:
        row = s.get(RegistryCalendarDay, day)
        assert (row.kind, row.note) == ("workday", "second")
