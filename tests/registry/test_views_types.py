"""The console for the registry's contesting and joint registration types, over HTTP on both
databases: an objection registration (异议登记) through the wizard against another party's
certificate (and refused against one's own right), a revocation on a court order by a party that
is not a registrar, the pledgee's consent to a holder's pledge release from the application page,
the objector's lawsuit and the registrar's closure of an objection registration, the certificate
and verification pages showing a right under objection — and other parties refused all of it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from factories import console_login, make_actor
from registry_support import TODAY, drive_to_certified, initial, new_asset, principal
from registry_support import scanned_version as scanned
from sqlalchemy import select

from datafactor.registry import RegistrationType, load_registry_rules, views
from datafactor.registry import services as registry
from datafactor.registry.api import registry_today
from datafactor.registry.models import RegistryApplication, RegistryCertificate, RegistryRight
from datafactor.web.i18n import translations


def zh(msgid: str) -> str:
    """The Chinese of a msgid (its English until the catalogue carries it)."""
    return str(translations("zh_CN").gettext(msgid))


def wizard(client, csrf, step, go="next", **fields):  # type: ignore[no-untyped-def]
    return client.post(
        "/registry/apply",
        data={"csrf_token": csrf, "step": step, "go": go, **fields},
        follow_redirects=False,
    )


GROUNDS = {
    "grounds": ["title_dispute"],
    "statement": "该站点数据由我方采集，有采集合同为证",
    "evidence": "采集合同-2024-17.pdf\r\n\r\n现场照片.zip",
}


@pytest.fixture
def issuer(settings):  # type: ignore[no-untyped-def]
    return registry.issuer_for(settings)


@pytest.fixture
def world(app, db, settings, issuer, enterprise, operator):  # type: ignore[no-untyped-def]
    """The grid (``enterprise``) holds a certified holding right on its power data; the
    console's clock is the day it was certified (``world["day"]``, movable)."""
    owner, registrar = principal(db, enterprise), principal(db, operator)
    asset_id = new_asset(db, owner, scanned(db, settings, owner))
    _, holding, day = drive_to_certified(db, owner, registrar, initial(db, asset_id), issuer, TODAY)
    with db.read() as s:
        number = s.scalars(
            select(RegistryCertificate.number).where(RegistryCertificate.right_id == holding)
        ).one()
    state = {
        "owner": owner,
        "registrar": registrar,
        "asset": asset_id,
        "holding": holding,
        "number": number,
        "day": day,
    }
    app.dependency_overrides[registry_today] = lambda: state["day"]
    yield state
    app.dependency_overrides.pop(registry_today, None)


def objections_by(db, party_id) -> list[RegistryApplication]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(
            s.scalars(
                select(RegistryApplication).where(
                    RegistryApplication.type == RegistrationType.OBJECTION.value,
                    RegistryApplication.applicant_id == party_id,
                )
            )
        )


def record_of(db, application_id) -> dict:  # type: ignore[no-untyped-def, type-arg]
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None
        return dict(row.facts.get("record") or {})


def checklist() -> list[str]:
    return list(load_registry_rules().substantive_checklist)


def test_an_objection_registration_through_the_wizard(
    client, db, world, other_enterprise, operator
):
    csrf = console_login(client, other_enterprise, "/registry/apply")
    start = client.get("/registry/apply")
    assert 'data-testid="type-objection"' in start.text
    assert 'data-testid="type-revocation"' in start.text  # on an order, for anyone

    r = wizard(client, csrf, "type", type="objection")
    assert 'data-step="object"' in r.text and 'data-testid="wizard-certificate"' in r.text
    assert 'data-testid="wizard-right"' not in r.text  # nothing of one's own to choose from
    # An unknown certificate: refused on its step, naming the rule.
    r = wizard(client, csrf, "object", type="objection", certificate="GX-DR-2026-999999")
    assert r.status_code == 404 and 'data-step="object"' in r.text
    assert "REG-" in r.text
    r = wizard(client, csrf, "object", type="objection", certificate=world["number"])
    assert 'data-step="grounds"' in r.text, r.text
    assert 'data-testid="ground-title_dispute"' in r.text
    # No grounds: refused with the objection rule; the statement typed is kept.
    fields = {"type": "objection", "certificate": world["number"], **GROUNDS}
    r = wizard(client, csrf, "grounds", **{**fields, "grounds": []})
    assert r.status_code == 422 and "REG-OBJECTION-GROUNDS" in r.text
    assert 'data-step="grounds"' in r.text and GROUNDS["statement"] in r.text
    r = wizard(client, csrf, "grounds", **fields)
    assert 'data-step="review"' in r.text, r.text
    assert 'data-testid="review-grounds"' in r.text
    assert world["number"] in r.text
    assert "现场照片.zip" in r.text
    assert "南宁供电量数据" not in r.text  # the holder's asset is not named to a stranger
    # The evidence travelled between the steps as hidden fields, one a line.
    assert r.text.count('name="evidence"') == 3  # two lines and the blank between them

    r = wizard(client, csrf, "review", go="submit", **fields)
    assert r.status_code == 303, r.text
    application_id = r.headers["location"].rsplit("/", 1)[1]
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and row.state == "substantive_review", row.decision
        assert row.right_id == world["holding"]
        assert row.facts["evidence"] == ["采集合同-2024-17.pdf", "现场照片.zip"]
        assert row.facts["grounds"] == ["title_dispute"]
    page = client.get(f"/registry/applications/{application_id}")
    assert f'href="/verify/{world["number"]}"' in page.text
    assert 'data-testid="application-grounds"' in page.text

    # The registrar approves it: the right is under objection, on both certificate pages.
    csrf = console_login(client, operator, "/registry/apply")
    r = client.post(
        f"/registry/applications/{application_id}/act",
        data={"csrf_token": csrf, "action": "approve", "checklist": checklist()},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert record_of(db, application_id)["right_id"] == world["holding"]
    page = client.get(f"/registry/certificates/{world['number']}")
    assert 'data-testid="under-objection"' in page.text
    assert 'data-testid="objection-record-in_force"' in page.text
    client.cookies.clear()
    public = client.get(f"/verify/{world['number']}")
    assert public.status_code == 200
    assert 'data-testid="under-objection"' in public.text
    assert zh("Under objection (异议中)") in public.text
    assert 'data-testid="object-to-right"' not in public.text  # not logged in


def test_an_objection_against_ones_own_right_is_refused(client, db, world, enterprise):
    csrf = console_login(client, enterprise, "/registry/apply")
    r = wizard(client, csrf, "object", type="objection", certificate=world["number"])
    assert r.status_code == 422 and 'data-step="object"' in r.text
    assert 'data-testid="error-rule">REG-HOLDER<' in r.text
    assert zh(views.MSG_OBJECTOR_IS_HOLDER) in r.text
    # Straight to the submission: refused the same way, and nothing is written.
    fields = {"type": "objection", "certificate": world["number"], **GROUNDS}
    r = wizard(client, csrf, "review", go="submit", **fields)
    assert r.status_code == 422 and "REG-HOLDER" in r.text
    assert objections_by(db, world["owner"].party_id) == []
    # A tampered right_id does not replace the certificate's right.
    assert "right_id" not in views.STEP_FIELDS["grounds"]


def test_an_objection_to_a_right_that_has_ended_is_refused(
    client, db, issuer, world, other_enterprise
):
    registrar = world["registrar"]
    revocation = registry.ApplicationDraft(
        type=RegistrationType.REVOCATION, asset_id=world["asset"], right_id=world["holding"]
    )
    drive_to_certified(db, registrar, registrar, revocation, issuer, world["day"])
    csrf = console_login(client, other_enterprise, "/registry/apply")
    r = wizard(client, csrf, "object", type="objection", certificate=world["number"])
    assert r.status_code == 409 and "REG-OBJECTION-REGISTRATION" in r.text
    assert objections_by(db, principal(db, other_enterprise).party_id) == []


def test_a_revocation_on_an_order_by_a_party_that_is_not_a_registrar(
    client, db, world, other_enterprise, operator
):
    csrf = console_login(client, other_enterprise, "/registry/apply")
    r = wizard(client, csrf, "object", type="revocation", certificate=world["number"])
    assert 'data-step="order"' in r.text, r.text
    fields = {"type": "revocation", "certificate": world["number"]}
    r = wizard(client, csrf, "order", **fields)
    assert r.status_code == 422 and 'data-step="order"' in r.text
    assert 'aria-invalid="true"' in r.text
    fields |= {"order_reference": "(2026)桂0103民初1234号", "evidence": "判决书.pdf"}
    r = wizard(client, csrf, "order", **fields)
    assert 'data-step="review"' in r.text and 'data-testid="review-order"' in r.text
    r = wizard(client, csrf, "review", go="submit", **fields)
    assert r.status_code == 303, r.text
    application_id = r.headers["location"].rsplit("/", 1)[1]
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and row.state == "substantive_review", row.decision
        assert row.facts["order_reference"] == "(2026)桂0103民初1234号"
        assert row.facts["evidence"] == ["判决书.pdf"]
    page = client.get(f"/registry/applications/{application_id}")
    assert 'data-testid="application-order"' in page.text

    # A registrar keeps its own path: any right, chosen from the list, no order needed.
    console_login(client, operator, "/registry/apply")
    r = client.get("/registry/apply?type=revocation")
    assert (
        'data-testid="wizard-right"' in r.text and 'data-testid="wizard-certificate"' not in r.text
    )
    assert f'value="{world["holding"]}"' in r.text


def pledged_release(db, issuer, world):  # type: ignore[no-untyped-def]
    """The holder pledged its right to a bank and applied to release it: (bank, application)."""
    bank = make_actor(db, name="北部湾银行")
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=world["asset"],
        right_id=world["holding"],
        counterparty_id=bank.party_id,
    )
    _, _, day = drive_to_certified(
        db, world["owner"], world["registrar"], pledge, issuer, world["day"]
    )
    world["day"] = day
    release = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE_RELEASE, asset_id=world["asset"], right_id=world["holding"]
    )
    with db.write() as s:
        row = registry.submit_application(s, world["owner"], release, issuer=issuer, today=day)
        assert row.state == "formal_review", row.decision
        return bank, row.id


def test_the_pledgee_consents_from_the_application_page(
    client, db, issuer, world, enterprise, other_enterprise
):
    bank, application_id = pledged_release(db, issuer, world)
    url = f"/registry/applications/{application_id}"

    # The holder sees that the release waits for the pledgee, and cannot consent itself.
    csrf = console_login(client, enterprise, "/registry/apply")
    page = client.get(url)
    assert 'data-testid="consent-waiting"' in page.text
    assert 'data-testid="consent-panel"' not in page.text
    assert "REG-PLEDGE-LOCK" in page.text

    # Another party: the application does not exist for it, nor can it consent.
    csrf = console_login(client, other_enterprise, "/registry/apply")
    assert client.get(url).status_code == 404
    r = client.post(f"{url}/consent", data={"csrf_token": csrf, "confirm": "1"})
    assert r.status_code == 404
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and "pledgee_consent" not in row.facts

    csrf = console_login(client, bank, "/registry/apply")
    page = client.get(url)
    assert 'data-testid="consent-panel"' in page.text
    # Not confirmed: the page comes back with the message, nothing is written.
    r = client.post(f"{url}/consent", data={"csrf_token": csrf})
    assert r.status_code == 422 and zh(views.MSG_CONFIRM_CONSENT) in r.text
    forged = client.post(f"{url}/consent", data={"csrf_token": "forged", "confirm": "1"})
    assert forged.status_code == 403
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and "pledgee_consent" not in row.facts
    r = client.post(
        f"{url}/consent", data={"csrf_token": csrf, "confirm": "1"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and row.state == "substantive_review", row.decision
        assert row.facts["pledgee_consent"]["party_id"] == bank.party_id
    page = client.get(url)
    assert 'data-testid="pledgee-consented"' in page.text
    assert 'data-testid="consent-panel"' not in page.text
    with db.read() as s:
        right = s.get(RegistryRight, world["holding"])
        assert right is not None and right.status == "pledged"  # released only when approved


def certified_objection(db, issuer, world):  # type: ignore[no-untyped-def]
    claimant = make_actor(db, name="南宁数据采集公司")
    draft = registry.ApplicationDraft(
        type=RegistrationType.OBJECTION,
        asset_id=world["asset"],
        right_id=world["holding"],
        grounds=("title_dispute",),
        statement=GROUNDS["statement"],
        evidence=("采集合同-2024-17.pdf",),
    )
    app_id, _, day = drive_to_certified(
        db, principal(db, claimant), world["registrar"], draft, issuer, world["day"]
    )
    world["day"] = day
    return claimant, app_id


def test_lawsuit_and_closure_from_the_application_page(
    client, db, issuer, world, enterprise, other_enterprise, operator
):
    claimant, application_id = certified_objection(db, issuer, world)
    url = f"/registry/applications/{application_id}"

    csrf = console_login(client, claimant, "/registry/apply")
    page = client.get(url)
    assert 'data-testid="objection-record"' in page.text
    assert 'data-status="in_force"' in page.text
    lapses = date.fromisoformat(record_of(db, application_id)["lapses_on"])
    assert 'data-testid="record-lapses"' in page.text and lapses.isoformat() in page.text
    assert 'data-testid="lawsuit-form"' in page.text
    assert 'data-testid="closure-form"' not in page.text  # the registrar's
    r = client.post(f"{url}/lawsuit", data={"csrf_token": csrf, "reference": "  "})
    assert r.status_code == 422 and "REG-OBJECTION-REGISTRATION" in r.text
    assert record_of(db, application_id)["lawsuit"] is None
    # The objector cannot close its own objection registration.
    r = client.post(
        f"{url}/closure", data={"csrf_token": csrf, "substantiated": "no", "reason": "撤诉"}
    )
    assert r.status_code == 403
    assert record_of(db, application_id)["closed"] is None
    r = client.post(
        f"{url}/lawsuit",
        data={"csrf_token": csrf, "reference": "(2026)桂0103民初88号"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert record_of(db, application_id)["lawsuit"] == "(2026)桂0103民初88号"
    page = client.get(url)
    assert 'data-testid="record-lawsuit"' in page.text
    assert 'data-testid="record-lapses"' not in page.text  # a recorded suit keeps it in force

    # The holder and a stranger: the application is not theirs to see or act on.
    for other in (enterprise, other_enterprise):
        csrf = console_login(client, other, "/registry/apply")
        assert client.get(url).status_code == 404
        r = client.post(f"{url}/lawsuit", data={"csrf_token": csrf, "reference": "伪造案号"})
        assert r.status_code == 404
        r = client.post(
            f"{url}/closure", data={"csrf_token": csrf, "substantiated": "no", "reason": "x"}
        )
        assert r.status_code in (403, 404)
    assert record_of(db, application_id)["lawsuit"] == "(2026)桂0103民初88号"

    # Long after the lapse date, the registrar closes it as not substantiated: lifted.
    world["day"] = lapses + timedelta(days=30)
    csrf = console_login(client, operator, "/registry/apply")
    page = client.get(url)
    assert 'data-testid="closure-form"' in page.text
    r = client.post(f"{url}/closure", data={"csrf_token": csrf, "reason": "法院驳回"})
    assert r.status_code == 422 and zh(views.MSG_CLOSURE_CHOICE) in r.text
    r = client.post(f"{url}/closure", data={"csrf_token": csrf, "substantiated": "no"})
    assert r.status_code == 422 and 'data-testid="error"' in r.text  # a reason is required
    assert record_of(db, application_id)["closed"] is None
    r = client.post(
        f"{url}/closure",
        data={"csrf_token": csrf, "substantiated": "no", "reason": "法院驳回异议人的诉讼请求"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert record_of(db, application_id)["closed"] == "lifted"
    page = client.get(url)
    assert 'data-status="lifted"' in page.text
    assert zh("Objection lifted") in page.text
    assert (
        'data-testid="closure-form"' not in page.text
        and 'data-testid="lawsuit-form"' not in page.text
    )
    public = client.get(f"/verify/{world['number']}")
    assert 'data-testid="under-objection"' not in public.text
    assert 'data-testid="objection-record-lifted"' in public.text
