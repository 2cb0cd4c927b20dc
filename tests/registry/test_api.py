"""The registry over HTTP and the CLI: a registration with an objection dismissed, problem+json
refusals naming the rule, public verification without login, the CLI's list and receipt."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from factories import Actor, bearer
from registry_support import (
    LATER,
    SCOPE,
    TODAY,
    drive_to_certified,
    fingerprint,
    initial,
    new_asset,
    principal,
    scanned_version,
)
from sqlalchemy import select
from typer.testing import CliRunner

from datafactor.audit import AuditEvent
from datafactor.cli import app as cli
from datafactor.db import Database
from datafactor.registry import services as registry
from datafactor.registry.api import registry_today
from datafactor.registry.models import RegistryCertificate
from datafactor.registry.verifications import RegistryVerification
from datafactor.settings import Settings, get_settings

CHECKLIST = ["identity", "source", "description", "scope", "no_dispute"]

runner = CliRunner()


@pytest.fixture
def clock(app):  # type: ignore[no-untyped-def]
    now = {"today": TODAY}
    app.dependency_overrides[registry_today] = lambda: now["today"]
    yield now
    app.dependency_overrides.pop(registry_today, None)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATAFACTOR_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@dataclass(frozen=True)
class Certified:
    """An asset of ``enterprise`` registered (initial registration) through to its certificate."""

    asset_id: str
    holding: str  # the holding right the registration created
    day: date  # the day it was certified
    number: str  # the certificate's number


@pytest.fixture
def certified(db: Database, settings: Settings, enterprise: Actor, operator: Actor) -> Certified:
    owner, registrar = principal(db, enterprise), principal(db, operator)
    asset_id = new_asset(db, owner, scanned_version(db, settings, owner))
    issuer = registry.issuer_for(settings)
    _, holding, day = drive_to_certified(db, owner, registrar, initial(db, asset_id), issuer, TODAY)
    assert holding is not None
    with db.read() as s:
        number = s.scalars(
            select(RegistryCertificate.number).where(RegistryCertificate.right_id == holding)
        ).one()
    return Certified(asset_id, holding, day, number)


def test_registration_over_http_and_cli(
    client, clock, env, db, settings, enterprise, other_enterprise, operator, tmp_path
):
    owner, rival, registrar = (
        bearer(client, enterprise),
        bearer(client, other_enterprise),
        bearer(client, operator),
    )
    version_id = scanned_version(db, settings, principal(db, enterprise))
    r = client.post(
        "/api/v1/registry/assets",
        headers=owner,
        json={
            "kind": "resource",
            "name": "南宁供电量数据",
            "description": "各站点每日供电量",
            "domain": "energy",
            "source_statement": "本单位计量系统自行采集",
            "collection_method": "计量系统自动采集",
            "update_frequency": "daily",
            "coverage": "2025",
            "region": "450100",
            "volume": "40 行",
            "field_schema": [{"name": "日期"}],
            "version_id": version_id,
        },
    )
    assert r.status_code == 201, r.text
    asset_id = r.json()["id"]
    assert r.json()["grade"] == "general"
    body = {
        "type": "initial",
        "asset_id": asset_id,
        "scope": SCOPE,
        "term_start": TODAY.isoformat(),
        "fingerprint": "sha256:" + fingerprint(db, asset_id).upper(),
    }
    r = client.post("/api/v1/registry/applications", headers=owner, json=body)
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    assert r.json()["state"] == "substantive_review"
    # An applicant cannot act as the registrar; an enterprise cannot see the queue.
    r = client.post(
        f"/api/v1/registry/applications/{app_id}/actions",
        headers=owner,
        json={"action": "approve_to_notice"},
    )
    assert r.status_code == 403
    # The registrar approves only with every item of the substantive-review checklist confirmed.
    r = client.post(
        f"/api/v1/registry/applications/{app_id}/actions",
        headers=registrar,
        json={"action": "approve_to_notice", "checklist": ["identity", "source"]},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "REG-SUBSTANTIVE-CHECKLIST" in r.json()["detail"]
    r = client.post(
        f"/api/v1/registry/applications/{app_id}/actions",
        headers=registrar,
        json={"action": "approve_to_notice", "checklist": [*CHECKLIST, "vibes"]},
    )
    assert r.status_code == 422 and "vibes" in r.json()["detail"]
    r = client.post(
        f"/api/v1/registry/applications/{app_id}/actions",
        headers=registrar,
        json={"action": "approve_to_notice", "checklist": CHECKLIST},
    )
    assert r.status_code == 200 and r.json()["state"] == "public_notice"
    with db.read() as s:
        approval = s.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.object_id == app_id,
                AuditEvent.action == "registry:application:transition",
            )
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).one()
        assert any("checklist: identity, source" in r for r in approval.reasons)
    notices = client.get("/api/v1/registry/notices", headers=rival).json()
    assert [n["id"] for n in notices["items"]] == [app_id]

    # An objection with no grounds: problem+json naming the rule.
    r = client.post(
        f"/api/v1/registry/applications/{app_id}/objections",
        headers=rival,
        json={"grounds": [], "statement": "这是我们的数据", "evidence": ["合同"]},
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "REG-OBJECTION-GROUNDS" in r.text
    r = client.post(
        f"/api/v1/registry/applications/{app_id}/objections",
        headers=rival,
        json={"grounds": ["title_dispute"], "statement": "这些站点的数据归我方", "evidence": ["a"]},
    )
    assert r.status_code == 201, r.text
    objection_id = r.json()["id"]
    r = client.post(
        f"/api/v1/registry/objections/{objection_id}/decision",
        headers=registrar,
        json={"substantiated": False, "reason": "异议人未能证明其采集了这些数据"},
    )
    assert r.status_code == 200 and r.json()["outcome"] == "dismissed"
    clock["today"] = LATER
    r = client.post(
        f"/api/v1/registry/applications/{app_id}/actions",
        headers=registrar,
        json={"action": "close_notice"},
    )
    assert r.status_code == 200 and r.json()["state"] == "certified", r.text
    assert [e["action"] for e in r.json()["events"]][-3:] == [
        "lodge_objection",
        "dismiss_objections",
        "close_notice",
    ]

    # Public verification, without login; an unknown number is a 404 naming the rule.
    anonymous = client.get("/api/v1/registry/verify/GX-DR-2026-000001")
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.json()["status"] == "active" and anonymous.json()["signature_valid"]
    missing = client.get("/api/v1/registry/verify/GX-DR-2026-000777")
    assert missing.status_code == 404 and "REG-CERT-NUMBER" in missing.text

    # The CLI lists the certificate and writes a receipt verify-receipt accepts; a tampered one
    # is rejected.
    result = runner.invoke(cli, ["registry", "certificates", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed[0]["number"] == "GX-DR-2026-000001"
    assert listed[0]["right_kind"] == "holding" and listed[0]["holder_id"] == enterprise.party_id
    path = tmp_path / "receipt.json"
    result = runner.invoke(cli, ["registry", "receipt", "GX-DR-2026-000001", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["verify-receipt", str(path)]).exit_code == 0
    doc = json.loads(path.read_text())
    doc["tree_size"] += 1
    path.write_text(json.dumps(doc))
    assert runner.invoke(cli, ["verify-receipt", str(path)]).exit_code == 1
    result = runner.invoke(cli, ["registry", "receipt", "GX-DR-2026-000404"])
    assert result.exit_code == 2


def test_public_verification_follows_every_change_of_the_right(
    client, clock, db, settings, enterprise, other_enterprise, operator, certified
):
    """The verification API reuses what it computed while the registry revision is unchanged;
    a pledge (a write to the right) bumps the revision, and the next lookup shows it."""
    from datafactor.registry import RegistrationType
    from datafactor.registry.models import RegistryRevision

    owner, bank, registrar = (
        principal(db, enterprise),
        principal(db, other_enterprise),
        principal(db, operator),
    )
    issuer = registry.issuer_for(settings)
    with db.read() as s:
        revision = s.get(RegistryRevision, 1).value
    clock["today"] = day = certified.day
    url = f"/api/v1/registry/verify/{certified.number}"
    first, again = client.get(url), client.get(url)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["status"] == "active"
    page = f"/verify/{certified.number}"  # the page the QR code opens, cached the same way
    assert 'data-status="active"' in client.get(page).text
    assert 'data-status="active"' in client.get(page).text

    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=certified.asset_id,
        right_id=certified.holding,
        counterparty_id=bank.party_id,
    )
    _, _, pledged_on = drive_to_certified(db, owner, registrar, pledge, issuer, day)
    with db.read() as s:
        assert s.get(RegistryRevision, 1).value > revision
    # On PostgreSQL the server learns the new revision from the commit's notification, which
    # may arrive just after the commit returned: the next lookups show the pledge once it has.
    after = client.get(url).json()
    deadline = time.monotonic() + 10
    while after["status"] != "pledged" and time.monotonic() < deadline:
        time.sleep(0.01)
        after = client.get(url).json()
    assert after["right_status"] == "pledged" and after["status"] == "pledged"
    assert 'data-status="pledged"' in client.get(page).text
    clock["today"] = pledged_on  # another day is another key, computed afresh
    assert client.get(url).json()["status"] == "pledged"


def test_a_repeated_lookup_answers_exactly_as_the_first(client, clock, certified):
    """A lookup answered from the cache (before routing) carries the same body and headers as
    the one that computed it: the caller's request id, the security headers; a query parameter,
    another method or an unknown number are refused as the route refuses them."""
    clock["today"] = certified.day
    url = f"/api/v1/registry/verify/{certified.number}"

    def lookup(rid: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        r = client.get(url, headers={"X-Request-ID": rid, "Accept-Language": "en"})
        return r.status_code, r.content, r.headers.raw

    first, again = lookup("first-lookup"), lookup("again")
    assert first[0] == again[0] == 200 and first[1] == again[1]
    assert [h for h in first[2] if h[0] != b"x-request-id"] == [
        h for h in again[2] if h[0] != b"x-request-id"
    ]
    assert (b"x-request-id", b"again") in again[2]
    assert (b"x-frame-options", b"DENY") in again[2]
    assert (b"content-type", b"application/json") in again[2]

    typo = client.get(url, params={"nuber": certified.number})
    assert typo.status_code == 400 and typo.json()["type"].endswith("/unknown-query-parameter")
    assert typo.headers["content-type"] == "application/problem+json"
    assert client.post(url).status_code == 405
    unknown = client.get("/api/v1/registry/verify/GX-DR-2026-000777")
    assert unknown.status_code == 404 and "REG-CERT-NUMBER" in unknown.text


def test_only_writes_a_verification_reads_bump_the_registry_revision(db, enterprise):
    from datafactor.identity.models import Party
    from datafactor.registry.models import RegistryAsset, RegistryRevision

    def revision() -> int:
        with db.read() as s:
            return s.get(RegistryRevision, 1).value

    start = revision()
    with db.write() as s:
        party = s.get(Party, enterprise.party_id)
        party.name = party.name + "（更名）"  # not read by a verification
    assert revision() == start
    with db.write() as s:
        s.add(
            RegistryAsset(
                party_id=enterprise.party_id, kind="resource", data_class="enterprise", name="资产"
            )
        )
    assert revision() == start + 1


def test_another_worker_answers_a_verification_without_computing_it(
    client, clock, db, settings, certified, monkeypatch
):
    """Two server workers on one database (two apps, each with its own memory of answers): the
    verification one computed is answered by the other from the shared store
    (``registry.verifications``), byte for byte and without computing it."""
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from datafactor.app import create_app

    number, day = certified.number, certified.day
    clock["today"] = day
    url = f"/api/v1/registry/verify/{number}"
    first = client.get(url)
    assert first.status_code == 200 and first.json()["status"] == "active"
    # SQLite's sharing is best effort: skipped while a writer (the ledger integrator signing a
    # checkpoint, say) holds the database. Ask on later days until one answer was shared.
    for _ in range(20):
        with db.read() as session:
            shared = session.scalar(
                select(RegistryVerification.number).where(
                    RegistryVerification.number == number,
                    RegistryVerification.day == clock["today"].isoformat(),
                )
            )
        if shared is not None:
            break
        assert db.is_sqlite, "PostgreSQL always shares the verification it computed"
        clock["today"] += timedelta(days=1)
        first = client.get(url)
    else:
        pytest.fail("no verification was shared in 20 tries")

    other_db = Database(db.url)
    other = create_app(settings, other_db)
    other.dependency_overrides[registry_today] = lambda: clock["today"]
    computed: list[str] = []
    real = registry.verify_certificate

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        computed.append(str(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "verify_certificate", counted)
    try:
        with TestClient(other) as second:
            again = second.get(url)
            assert again.status_code == 200 and again.content == first.content
            assert computed == []
            # Another day is another key: computed by the worker asked first, shared on.
            clock["today"] += timedelta(days=1)
            computed.clear()
            later = second.get(url)
            assert later.status_code == 200 and client.get(url).content == later.content
            # SQLite's sharing is best effort: skipped while a writer (here the new worker's
            # start-up sweep, perhaps) holds the database.
            assert computed == [number] or (db.is_sqlite and computed == [number, number])
    finally:
        other_db.dispose()
