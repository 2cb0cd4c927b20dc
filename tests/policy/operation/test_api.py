"""Public data operation over the API (bearer tokens, problem+json): the body signs, the bureau
caps, the operator prices and grants, a user asks, the report comes as JSON and CSV and is filed;
refusals name their rule."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from factories import bearer
from operation_support import SELECTION, SIGNED, make_cast

from datafactor.policy.operation.api import operation_today


@pytest.fixture
def cast(db, settings):
    return make_cast(db, settings)


@pytest.fixture
def api(app, client, cast):
    app.dependency_overrides[operation_today] = lambda: SIGNED
    heads = {
        name: bearer(client, getattr(cast, name)) for name in ("body", "operator", "bureau", "user")
    }
    yield heads
    app.dependency_overrides.pop(operation_today, None)


def agreement_body(cast, **kw):
    return {
        "operator_id": cast.operator.party_id,
        "number": "NNSZF-SQYY-2026-001",
        "selection": {
            "procedure": SELECTION.procedure,
            "reference": SELECTION.reference,
            "decided_on": SELECTION.decided_on.isoformat(),
            "record": SELECTION.record,
        },
        "asset_ids": [cast.asset_id],
        **kw,
    }


def problem(r, status, rule):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert rule in r.json()["detail"], r.json()


def test_the_whole_flow_over_the_api(client, cast, api):
    r = client.post("/api/v1/operation/agreements", headers=api["body"], json=agreement_body(cast))
    assert r.status_code == 201, r.text
    agreement = r.json()
    assert agreement["state"] == "active" and agreement["term_end"] == "2031-03-31"
    assert agreement["channels"] == ["api", "sandbox"]
    assert agreement["data_sets"][0]["id"] == cast.asset_id

    r = client.post(
        "/api/v1/operation/caps",
        headers=api["bureau"],
        json={
            "unit": "api_call",
            "amount_fen": 50,
            "effective_from": SIGNED.isoformat(),
            "source_document": "桂发改价格〔2026〕12号",
        },
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/operation/rates",
        headers=api["bureau"],
        json={"rate_bp": 800, "effective_from": SIGNED.isoformat(), "source_document": "同上"},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/operation/fees",
        headers=api["operator"],
        json={
            "asset_id": cast.asset_id,
            "unit": "api_call",
            "amount_fen": 40,
            "effective_from": SIGNED.isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["cap_fen"] == 50 and r.json()["agreement_id"] == agreement["id"]

    # Published: every logged-in user reads caps, fees and the catalogue.
    assert client.get("/api/v1/operation/fees", headers=api["user"]).json()[0]["amount_fen"] == 40
    r = client.post(
        "/api/v1/operation/caps",
        headers=api["bureau"],
        json={
            "unit": "api_call",
            "amount_fen": 45,
            "effective_from": "2026-07-01",
            "source_document": "桂发改价格〔2026〕30号",
        },
    )
    assert r.status_code == 201, r.text
    caps = client.get("/api/v1/operation/caps", headers=api["user"]).json()
    assert [(c["amount_fen"], c["in_force"]) for c in caps] == [(45, False), (50, True)]
    (entry,) = client.get("/api/v1/operation/catalogue", headers=api["user"]).json()
    assert entry["agreement_id"] == agreement["id"]

    # The user asks; the operator approves; the answer carries the grant.
    use = {
        "agreement_id": agreement["id"],
        "asset_id": cast.asset_id,
        "use_class": "industry_development",
        "purpose": "product_development",
        "term_start": SIGNED.isoformat(),
        "term_end": "2026-12-31",
        "unit": "api_call",
        "quantity": 500,
    }
    r = client.post("/api/v1/operation/uses", headers=api["user"], json=use)
    assert r.status_code == 201, r.text
    asked = r.json()
    assert asked["outcome"] == "requested" and asked["grant"]["state"] == "requested"
    assert asked["fee_fen"] == 20_000 and asked["grant"]["fee_fen"] == 20_000
    r = client.post(
        f"/api/v1/operation/uses/{asked['id']}/decision",
        headers=api["operator"],
        json={"approve": True},
    )
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "approved" and r.json()["grant"]["state"] == "approved"
    assert (
        client.get(f"/api/v1/operation/uses/{asked['id']}", headers=api["user"]).json()[
            "grant_state"
        ]
        == "approved"
    )
    listed = client.get("/api/v1/operation/uses", headers=api["body"]).json()
    assert listed["total"] == 1

    # Costs and the report: JSON for the operator (the body reads it once filed), CSV download.
    r = client.post(
        "/api/v1/operation/costs",
        headers=api["operator"],
        json={"year": 2026, "category": "personnel", "amount_fen": 10_000},
    )
    assert r.status_code == 201, r.text
    r = client.get(f"/api/v1/operation/reports/{cast.operator.party_id}/2026", headers=api["body"])
    assert r.status_code == 404 and "2026" in r.json()["detail"]  # not filed yet
    r = client.get(
        f"/api/v1/operation/reports/{cast.operator.party_id}/2026", headers=api["operator"]
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["income_fen"] == 20_000 and report["revenue"]["allowed_fen"] == 10_800
    assert report["revenue"]["excess_fen"] == 9_200 and report["filed"] is None
    r = client.get(
        f"/api/v1/operation/reports/{cast.operator.party_id}/2026/report.csv", headers=api["bureau"]
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert ["revenue", "excess", "carried into the next period", "9200", "92.00"] in rows
    # Filing waits for the year's end.
    r = client.post("/api/v1/operation/reports", headers=api["operator"], json={"year": 2026})
    problem(r, 409, "OPS-ANNUAL-REPORT")


def test_refusals_name_their_rules(client, cast, api):
    no_selection = agreement_body(cast)
    del no_selection["selection"]
    problem(
        client.post("/api/v1/operation/agreements", headers=api["body"], json=no_selection),
        422,
        "OPS-SELECTION",
    )
    problem(
        client.post(
            "/api/v1/operation/agreements",
            headers=api["body"],
            json=agreement_body(cast, asset_ids=["00000000-0000-0000-0000-000000000000"]),
        ),
        422,
        "OPS-BODY-DATA",
    )
    r = client.post(
        "/api/v1/operation/agreements", headers=api["operator"], json=agreement_body(cast)
    )
    assert r.status_code == 403
    for amount in (12.5, -3, "50"):
        problem(
            client.post(
                "/api/v1/operation/caps",
                headers=api["bureau"],
                json={
                    "unit": "api_call",
                    "amount_fen": amount,
                    "effective_from": SIGNED.isoformat(),
                    "source_document": "x",
                },
            ),
            422,
            "OPS-MONEY",
        )
    r = client.post(
        "/api/v1/operation/caps",
        headers=api["bureau"],
        json={
            "unit": "api_call",
            "amount_fen": 50,
            "effective_from": SIGNED.isoformat(),
            "source_document": "x",
            "surprise": 1,
        },
    )
    assert r.status_code == 422  # unknown fields are refused
    problem(
        client.post(
            "/api/v1/operation/costs",
            headers=api["operator"],
            json={"year": 2026, "category": "bonuses", "amount_fen": 1},
        ),
        422,
        "OPS-ALLOWED-REVENUE",
    )
    agreement = client.post(
        "/api/v1/operation/agreements", headers=api["body"], json=agreement_body(cast)
    ).json()
    use = {
        "agreement_id": agreement["id"],
        "asset_id": cast.asset_id,
        "use_class": "public_welfare",
        "purpose": "public_welfare",
        "term_start": SIGNED.isoformat(),
        "term_end": "2026-12-31",
        "unit_fee_fen": 100,
        "grantee_id": cast.user.party_id,
    }
    problem(
        client.post("/api/v1/operation/uses", headers=api["operator"], json=use),
        422,
        "OPS-FREE-USE",
    )
    use.update(unit_fee_fen=None, channels=["api", "download"])
    problem(
        client.post("/api/v1/operation/uses", headers=api["operator"], json=use),
        422,
        "OPS-IN-DOMAIN",
    )
    use.update(
        channels=None,
        use_class="industry_development",
        purpose="product_development",
        unit="api_call",
        quantity=10,
    )
    problem(
        client.post("/api/v1/operation/uses", headers=api["operator"], json=use), 409, "OPS-FEE-CAP"
    )
    # Another party does not see the agreement.
    r = client.get(f"/api/v1/operation/agreements/{agreement['id']}", headers=api["user"])
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/operation/agreements/{agreement['id']}/suspend",
        headers=api["body"],
        json={"reason": "检查"},
    )
    assert r.status_code == 200 and r.json()["state"] == "suspended"
    use.update(use_class="public_governance", purpose="public_governance", unit=None)
    problem(
        client.post("/api/v1/operation/uses", headers=api["operator"], json=use),
        409,
        "OPS-AGREEMENT-LIVE",
    )
    r = client.get(f"/api/v1/operation/reports/{cast.operator.party_id}/2026", headers=api["user"])
    assert r.status_code == 404


def test_the_cli_prints_the_report(db, settings, cast, monkeypatch):
    import json

    from operation_support import price_list, sign
    from typer.testing import CliRunner

    from datafactor.cli import app as cli_app

    sign(db, cast)
    price_list(db, cast)
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    from datafactor.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        r = runner.invoke(
            cli_app,
            [
                "operation",
                "report",
                "--operator",
                cast.operator.party_id,
                "--year",
                "2026",
                "--json",
                "--today",
                "2026-06-01",
            ],
        )
        assert r.exit_code == 0, r.output
        report = json.loads(r.stdout)
        assert report["year"] == 2026 and report["agreements"][0]["number"] == "NNSZF-SQYY-2026-001"
        assert report["fees"][0]["fee_fen"] == 40
        r = runner.invoke(
            cli_app,
            [
                "operation",
                "report",
                "--operator",
                cast.operator.party_id,
                "--year",
                "2026",
                "--today",
                "2026-06-01",
            ],
        )
        assert r.exit_code == 0 and "annual report 2026" in r.stdout
        r = runner.invoke(
            cli_app, ["operation", "report", "--operator", "nobody", "--year", "2026"]
        )
        assert r.exit_code == 2
        r = runner.invoke(cli_app, ["operation", "sweep", "--today", "2031-04-01", "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout) == {"expired": ["NNSZF-SQYY-2026-001"]}
    finally:
        get_settings.cache_clear()


def test_days_are_whole_dates(client, cast, api):
    r = client.get(
        f"/api/v1/operation/reports/{cast.operator.party_id}/twenty", headers=api["operator"]
    )
    assert r.status_code == 422
    assert date.fromisoformat("2026-04-01") == SIGNED


def test_bad_input_is_refused_with_its_rule_never_crashes(client, cast, api):
    """Unbounded quantities, dates far outside the calendar and a use's own policy are refused
    with a reason, not answered with a server error."""
    r = client.post("/api/v1/operation/agreements", headers=api["body"], json=agreement_body(cast))
    assert r.status_code == 201, r.text
    agreement_id = r.json()["id"]
    for change in (
        {"term_start": "9999-06-01"},
        {"signed_on": "9999-06-01", "term_end": "9999-12-31"},
    ):
        problem(
            client.post(
                "/api/v1/operation/agreements",
                headers=api["body"],
                json=agreement_body(cast, number="NNSZF-SQYY-2026-002", **change),
            ),
            422,
            "OPS-DATES",
        )
    free = {
        "agreement_id": agreement_id,
        "asset_id": cast.asset_id,
        "use_class": "public_welfare",
        "purpose": "research",
        "term_start": SIGNED.isoformat(),
        "term_end": "2026-12-31",
    }
    for quantity in (10**20, -5, 0):
        problem(
            client.post(
                "/api/v1/operation/uses", headers=api["user"], json={**free, "quantity": quantity}
            ),
            422,
            "OPS-FREE-USE",
        )
    problem(
        client.post(
            "/api/v1/operation/uses",
            headers=api["user"],
            json={**free, "term_start": "0001-01-01", "term_end": "9999-12-31"},
        ),
        422,
        "OPS-DATES",
    )
    problem(
        client.post(
            "/api/v1/operation/caps",
            headers=api["bureau"],
            json={
                "unit": "api_call",
                "amount_fen": 10,
                "effective_from": "9999-12-31",
                "source_document": "x",
            },
        ),
        422,
        "OPS-DATES",
    )
    # A use's policy is written by the platform from the use: none is taken from the caller.
    policy = {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "x"}
    r = client.post("/api/v1/operation/uses", headers=api["user"], json={**free, "policy": policy})
    assert r.status_code == 422 and "policy" in r.text
    r = client.post("/api/v1/operation/uses", headers=api["user"], json=free)
    assert r.status_code == 201, r.text
    assert r.json()["quantity"] == 1 and r.json()["channels"] == ["api", "sandbox"]
    r = client.get("/api/v1/operation/uses?outcome=withdrawn", headers=api["operator"])
    assert r.status_code == 200 and r.json()["total"] == 0


def test_the_operator_terminates_an_agreement_it_refuses(client, cast, api):
    r = client.post("/api/v1/operation/agreements", headers=api["body"], json=agreement_body(cast))
    agreement_id = r.json()["id"]
    r = client.post(
        f"/api/v1/operation/agreements/{agreement_id}/suspend",
        headers=api["operator"],
        json={"reason": "x"},
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/operation/agreements/{agreement_id}/terminate",
        headers=api["operator"],
        json={"reason": "未参与遴选，不接受该协议"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "terminated"
