"""The data-trust API (/api/v1/trusts) on both databases: a deed from draft to income, the
trustee's grant, what each party reads, and problem+json refusals naming the rule."""

from __future__ import annotations

from datetime import date

import pytest
import registry_support as rs
from factories import bearer
from grants_support import certify_licence
from trusts_support import IN_TERM, SCOPE, Trust, make_trust

from datafactor.db import Database
from datafactor.policy.templates import get_template
from datafactor.policy.trusts.api import trusts_today
from datafactor.policy.trusts.domain import policy_within
from datafactor.registry import services as registry
from datafactor.settings import Settings


@pytest.fixture
def trust(db: Database, settings: Settings, app) -> Trust:  # type: ignore[no-untyped-def]
    app.dependency_overrides[trusts_today] = lambda: IN_TERM
    yield make_trust(db, settings)
    app.dependency_overrides.pop(trusts_today, None)


def _body(trust: Trust, **kw) -> dict:  # type: ignore[no-untyped-def,type-arg]
    body = {
        "title": "居民用电数据信托",
        "purpose": "以居民用电数据支持普惠金融",
        "trustee_id": trust.trustee.party_id,
        "asset_ids": [trust.asset_id],
        "scope": SCOPE,
        "term_start": "2026-04-01",
        "term_end": "2029-03-31",
        "trustee_fee_bp": 500,
        "beneficiaries": [
            {"party_id": trust.settlor.party_id, "share_bp": 7000},
            {"party_id": trust.beneficiary.party_id, "share_bp": 3000},
        ],
    }
    body.update(kw)
    return body


def _problem(r, status: int, rule: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert rule in r.json()["detail"]


def test_a_deed_through_the_api(client, db: Database, settings: Settings, trust: Trust) -> None:  # type: ignore[no-untyped-def]
    settlor = bearer(client, trust.actors["settlor"])
    trustee = bearer(client, trust.actors["trustee"])
    beneficiary = bearer(client, trust.actors["beneficiary"])
    stranger = bearer(client, trust.actors["stranger"])
    regulator = bearer(client, trust.actors["regulator"])

    _problem(
        client.post(
            "/api/v1/trusts/deeds",
            headers=settlor,
            json=_body(
                trust, beneficiaries=[{"party_id": trust.settlor.party_id, "share_bp": 9999}]
            ),
        ),
        422,
        "TRUST-SHARES",
    )
    _problem(
        client.post(
            "/api/v1/trusts/deeds", headers=settlor, json=_body(trust, term_end="2026-03-01")
        ),
        422,
        "TRUST-TERM",
    )
    _problem(
        client.post(
            "/api/v1/trusts/deeds", headers=settlor, json=_body(trust, trustee_fee_bp=10_000)
        ),
        422,
        "TRUST-FEE",
    )
    assert (
        client.post(
            "/api/v1/trusts/deeds", headers=settlor, json=_body(trust, colour="blue")
        ).status_code
        == 422
    )  # unknown field

    r = client.post("/api/v1/trusts/deeds", headers=settlor, json=_body(trust))
    assert r.status_code == 201, r.text
    deed = r.json()
    url = f"/api/v1/trusts/deeds/{deed['id']}"
    assert deed["state"] == "draft"
    assert set(deed["allowed_actions"]) == {"edit", "sign", "withdraw"}
    _problem(client.post(f"{url}/sign", headers=trustee), 403, "TRUST-ACTOR")
    assert client.post(f"{url}/sign", headers=stranger).status_code == 404
    assert client.post(f"{url}/sign", headers=settlor).json()["state"] == "signed"
    answer = client.post(f"{url}/accept", headers=trustee).json()
    assert answer["state"] == "active"
    assert [h["action"] for h in answer["history"]] == ["draft", "sign", "accept", "activate"]

    _problem(
        client.post(
            f"{url}/income",
            headers=trustee,
            json={
                "amount_fen": 0,
                "received_on": IN_TERM.isoformat(),
                "source": "other",
                "description": "x",
            },
        ),
        422,
        "TRUST-INCOME",
    )
    r = client.post(
        f"{url}/income",
        headers=trustee,
        json={
            "amount_fen": 100_001,
            "received_on": IN_TERM.isoformat(),
            "source": "other",
            "description": "数据服务收入",
        },
    )
    assert r.status_code == 201, r.text
    assert sum(line["amount_fen"] for line in r.json()["lines"]) == 100_001

    # What each party reads.
    mine = client.get(url, headers=beneficiary).json()
    assert mine["viewer_roles"] == ["beneficiary"]
    assert [s["party_id"] for s in mine["versions"][0]["shares"]] == [trust.beneficiary.party_id]
    lines = client.get(f"{url}/distributions", headers=beneficiary).json()
    assert lines["income_fen"] == 100_001
    assert [(t["party_id"], t["pending_fen"]) for t in lines["totals"]] == [
        (trust.beneficiary.party_id, 28500)
    ]
    assert client.get(f"{url}/grants", headers=beneficiary).json() == []
    assert (
        client.get("/api/v1/trusts/benefits", headers=beneficiary).json()[0]["pending_fen"] == 28500
    )
    assert [
        line["amount_fen"]
        for line in client.get("/api/v1/trusts/distributions", headers=beneficiary).json()
    ] == [28500]
    everything = client.get(f"{url}/distributions", headers=regulator).json()
    assert sum(t["total_fen"] for t in everything["totals"]) == 100_001
    assert client.get(url, headers=stranger).status_code == 404
    assert client.get("/api/v1/trusts/deeds", headers=stranger).json()["total"] == 0
    assert (
        client.get("/api/v1/trusts/deeds?role=beneficiary", headers=beneficiary).json()["total"]
        == 1
    )

    # The trustee's grant under the deed.
    policy = policy_within(
        get_template("sandbox-aggregates").document(), SCOPE, purposes=["credit_finance"]
    )
    use = {
        "asset_id": trust.asset_id,
        "grantee_id": trust.stranger.party_id,
        "policy": policy,
        "term_start": IN_TERM.isoformat(),
        "term_end": "2027-06-30",
        "fee_fen": 500_000,
    }
    assert client.post(f"{url}/grants", headers=settlor, json=use).status_code == 403
    r = client.post(f"{url}/grants", headers=trustee, json=use)
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["state"] == "approved" and grant["number"]
    registrar = rs.principal(db, trust.actors["registrar"])
    certify_licence(
        db, registrar, trust.trustee, grant["id"], registry.issuer_for(settings), IN_TERM
    )
    listed = client.get(f"{url}/grants", headers=settlor).json()
    assert [(g["id"], g["state"]) for g in listed] == [(grant["id"], "active")]
    beyond = dict(use, term_end="2030-01-01")
    r = client.post(f"{url}/grants", headers=trustee, json=beyond)
    assert r.status_code in (409, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")

    # Misuse suspends the grant; a regulator's order ends the deed and its grants.
    r = client.post(
        f"{url}/misuse",
        headers=trustee,
        json={"grant_id": grant["id"], "description": "转售聚合结果"},
    )
    assert r.status_code == 201, r.text
    assert client.get(f"{url}/grants", headers=trustee).json()[0]["state"] == "suspended"
    _problem(
        client.post(f"{url}/termination", headers=regulator, json={"reason": "违规"}),
        422,
        "TRUST-REGULATOR-ORDER",
    )
    r = client.post(
        f"{url}/termination",
        headers=regulator,
        json={"reason": "数据滥用", "order_reference": "桂数监〔2026〕9号"},
    )
    assert r.status_code == 200 and r.json()["state"] == "terminated"
    assert client.get(f"{url}/grants", headers=trustee).json()[0]["state"] == "revoked"


def test_a_request_decided_by_the_trustee(client, trust: Trust, db: Database) -> None:  # type: ignore[no-untyped-def]
    from trusts_support import established

    deed_id = established(db, trust)
    url = f"/api/v1/trusts/deeds/{deed_id}"
    stranger = bearer(client, trust.actors["stranger"])
    trustee = bearer(client, trust.actors["trustee"])
    policy = policy_within(
        get_template("sandbox-aggregates").document(), SCOPE, purposes=["research"]
    )
    r = client.post(
        f"{url}/requests",
        headers=stranger,
        json={
            "asset_id": trust.asset_id,
            "policy": policy,
            "term_start": IN_TERM.isoformat(),
            "term_end": date(2027, 1, 31).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    grant_id = r.json()["id"]
    assert r.json()["state"] == "requested"
    assert (
        client.post(
            f"{url}/decisions", headers=stranger, json={"grant_id": grant_id, "approve": True}
        ).status_code
        == 404
    )
    r = client.post(
        f"{url}/decisions",
        headers=trustee,
        json={"grant_id": grant_id, "approve": False, "reason": "用途不明"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "refused"


def test_bad_numbers_and_hidden_deeds_are_problems(client, trust: Trust, db: Database) -> None:  # type: ignore[no-untyped-def]
    from trusts_support import drafted, established

    draft_id = drafted(db, trust, title="草拟中的信托")  # a draft holds no data
    deed_id = established(db, trust)
    url = f"/api/v1/trusts/deeds/{deed_id}"
    trustee = bearer(client, trust.actors["trustee"])
    stranger = bearer(client, trust.actors["stranger"])
    policy = policy_within(
        get_template("sandbox-aggregates").document(), SCOPE, purposes=["credit_finance"]
    )
    use = {
        "asset_id": trust.asset_id,
        "grantee_id": trust.stranger.party_id,
        "policy": policy,
        "term_start": IN_TERM.isoformat(),
        "term_end": "2027-06-30",
    }
    for fee in (2**63, 10**30):
        _problem(
            client.post(f"{url}/grants", headers=trustee, json={**use, "fee_fen": fee}),
            422,
            "GRT-FEE",
        )
    _problem(
        client.post(
            f"{url}/grants", headers=trustee, json={**use, "grantee_id": trust.trustee.party_id}
        ),
        422,
        "TRUST-SELF-DEALING",
    )
    # A request under a draft deed: not found, its number untold (as for no deed at all).
    ask = {k: v for k, v in use.items() if k != "grantee_id"}
    for target in (draft_id, "no-such-deed"):
        r = client.post(f"/api/v1/trusts/deeds/{target}/requests", headers=stranger, json=ask)
        assert r.status_code == 404, r.text
        assert "GX-XT-" not in r.json()["detail"]
    assert client.get(f"{url}/grants", headers=trustee).json() == []
