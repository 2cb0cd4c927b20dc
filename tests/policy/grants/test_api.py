"""Authorisations over HTTP and the CLI: request, decide, licence certified, uses counted;
problem+json refusals naming the rule; the CLI's list, show and monitor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from factories import bearer, make_actor
from grants_support import START, certify_licence, policy, registered_asset
from registry_support import TODAY, principal
from typer.testing import CliRunner

from datafactor.cli import app as cli
from datafactor.identity import PartyKind
from datafactor.policy.grants.api import grants_now, grants_today
from datafactor.registry import services as registry
from datafactor.settings import Settings, get_settings

runner = CliRunner()


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


@pytest.fixture
def clock(app):  # type: ignore[no-untyped-def]
    now = {"today": TODAY}
    app.dependency_overrides[grants_today] = lambda: now["today"]
    app.dependency_overrides[grants_now] = lambda: datetime.fromisoformat(
        now["today"].isoformat() + "T12:00:00+08:00"
    )
    yield now
    app.dependency_overrides.pop(grants_today, None)
    app.dependency_overrides.pop(grants_now, None)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATAFACTOR_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@pytest.fixture
def world(db, settings, issuer, enterprise, other_enterprise, operator):
    holder, registrar = principal(db, enterprise), principal(db, operator)
    asset_id, right_id, day = registered_asset(db, settings, holder, registrar, issuer)
    return {
        "asset": asset_id,
        "right": right_id,
        "day": day,
        "registrar": registrar,
        "holder": holder,
    }


def body(asset_id: str, **kw):
    values = {
        "asset_id": asset_id,
        "policy": policy(max_uses=1),
        "term_start": START.isoformat(),
        "term_end": "2027-03-01",
        "purpose_note": "产品开发",
    }
    values.update(kw)
    return values


def test_grant_over_http_and_cli(
    client, clock, env, db, issuer, world, enterprise, other_enterprise, regulator
):
    holder, grantee = bearer(client, enterprise), bearer(client, other_enterprise)
    clock["today"] = world["day"]
    r = client.post("/api/v1/grants", headers=grantee, json=body(world["asset"]))
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["state"] == "requested" and grant["number"].startswith("GX-SQ-2026-")
    assert grant["max_uses"] == 1 and grant["remaining"] == 1
    assert [e["action"] for e in grant["history"]] == ["request"]
    gid = grant["id"]
    # The grantee cannot decide its own request; a stranger cannot even see it.
    r = client.post(f"/api/v1/grants/{gid}/decision", headers=grantee, json={"approve": True})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem")
    stranger = bearer(client, make_actor(db, PartyKind.ENTERPRISE))
    assert client.get(f"/api/v1/grants/{gid}", headers=stranger).status_code == 404
    # The regulator sees every grant.
    seen = client.get("/api/v1/grants", headers=bearer(client, regulator)).json()
    assert seen["total"] == 1
    r = client.post(f"/api/v1/grants/{gid}/decision", headers=holder, json={"approve": True})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved" and r.json()["licence_application_id"]
    day = certify_licence(db, world["registrar"], world["holder"], gid, issuer, world["day"])
    clock["today"] = day
    got = client.get(f"/api/v1/grants/{gid}", headers=grantee).json()
    assert got["state"] == "active" and got["licence_certificate"].startswith("GX-DR-")
    use = {
        "request": {"action": "read", "purpose": "industry", "channel": "api", "spatial": "CN-GX"}
    }
    r = client.post(f"/api/v1/grants/{gid}/uses", headers=grantee, json={**use, "dry_run": True})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "decision": "permit",
        "reasons": r.json()["reasons"],
        "duties": [],
        "rules": r.json()["rules"],
        "uses": 0,
        "remaining": 1,
    }
    r = client.post(f"/api/v1/grants/{gid}/uses", headers=grantee, json=use)
    assert r.json()["decision"] == "permit" and r.json()["uses"] == 1
    r = client.post(f"/api/v1/grants/{gid}/uses", headers=grantee, json=use)
    assert r.status_code == 200 and r.json()["decision"] == "deny"
    assert r.json()["remaining"] == 0 and "GRT-USE" in r.json()["rules"]
    # Bad input: an unknown request key is a 422 naming it; the holder does not use.
    r = client.post(
        f"/api/v1/grants/{gid}/uses",
        headers=grantee,
        json={"request": {"action": "read", "colour": "red"}},
    )
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    assert client.post(f"/api/v1/grants/{gid}/uses", headers=holder, json=use).status_code == 403

    result = runner.invoke(cli, ["grants", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert [g["state"] for g in json.loads(result.stdout)] == ["expired"]
    result = runner.invoke(cli, ["grants", "show", grant["number"], "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert [e["action"] for e in shown["history"]] == ["request", "approve", "activate", "expire"]
    result = runner.invoke(cli, ["grants", "show", "GX-SQ-2026-999999"])
    assert result.exit_code == 2
    result = runner.invoke(cli, ["grants", "monitor", "--today", "2027-03-02", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["expired"] == []


def test_refusals_are_problems_naming_the_rule(client, clock, db, world, other_enterprise):
    grantee = bearer(client, other_enterprise)
    clock["today"] = world["day"]
    # A policy reaching beyond the holder's regions (450000): refused, naming the dimension.
    r = client.post(
        "/api/v1/grants", headers=grantee, json=body(world["asset"], policy=policy(regions=("CN",)))
    )
    assert r.status_code == 422
    problem = r.json()
    assert "GRT-SCOPE-WITHIN" in problem["detail"] and "CN" in problem["detail"]
    assert problem["field"] == "policy.regions"
    # A malformed policy: the parser's own rule.
    r = client.post(
        "/api/v1/grants",
        headers=grantee,
        json=body(world["asset"], policy={"@type": "Set", "permission": [{"action": "fly"}]}),
    )
    assert r.status_code == 422 and "POL-" in r.json()["detail"]
    # Unknown fields and query parameters are refused.
    r = client.post("/api/v1/grants", headers=grantee, json={**body(world["asset"]), "x": 1})
    assert r.status_code == 422
    assert client.get("/api/v1/grants?colour=red", headers=grantee).status_code == 400
    assert client.get("/api/v1/grants?role=boss", headers=grantee).status_code == 422
