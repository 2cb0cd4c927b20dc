"""The sandbox API's shapes (issue 8, item 6) on SQLite and PostgreSQL: grants, run, preview,
the record (paged and one), profiles; problem+json and 404 for a stranger."""

from __future__ import annotations

from factories import bearer, make_actor
from sandbox_support import offer_world

from datafactor.identity import PartyKind

SQL = "SELECT county, COUNT(*) AS n FROM households GROUP BY county"


def test_sandbox_api_shapes(
    client, db, settings, tmp_path, enterprise, other_enterprise, operator
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, k=5)
    grantee, holder = bearer(client, other_enterprise), bearer(client, enterprise)

    grants = client.get("/api/v1/sandbox/grants", headers=grantee).json()
    assert [g["id"] for g in grants] == [w.grant_id]
    table = grants[0]["tables"][0]
    assert table["name"] == "households" and grants[0]["k"] == 5
    assert grants[0]["budget_left"] is None  # no ε in the policy: k only
    assert {c["name"]: (c["type"], c["role"]) for c in table["columns"]}["kwh"][1] == "measure"

    preview = client.post(
        "/api/v1/sandbox/queries/preview",
        json={"grant_id": w.grant_id, "sql": SQL},
        headers=grantee,
    ).json()
    assert preview["decision"] == "allowed" and preview["columns"] == ["county", "n"]

    run = client.post(
        "/api/v1/sandbox/queries", json={"grant_id": w.grant_id, "sql": SQL}, headers=grantee
    )
    assert run.status_code == 200
    body = run.json()
    assert {"decision", "reasons", "columns", "rows", "epsilon_spent", "id", "k"} <= set(body)
    assert body["decision"] == "allowed" and len(body["rows"]) == 3
    refused = client.post(
        "/api/v1/sandbox/queries",
        json={"grant_id": w.grant_id, "sql": "SELECT name FROM households"},
        headers=grantee,
    ).json()
    assert refused["decision"] == "refused" and refused["reasons"][0]["rule"].startswith("SBX-")

    page = client.get("/api/v1/sandbox/queries", headers=holder).json()
    assert page["total"] == 2 and page["items"][1]["rows"] == body["rows"]
    one = client.get(f"/api/v1/sandbox/queries/{body['id']}", headers=holder).json()
    assert one["result_hash"] == body["result_hash"]
    profile = client.get(f"/api/v1/sandbox/profiles/{w.asset_id}", headers=holder).json()
    assert profile["table"] == "households"

    stranger = bearer(client, make_actor(db, PartyKind.ENTERPRISE))
    missing = client.get(f"/api/v1/sandbox/queries/{body['id']}", headers=stranger)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    unknown = client.post(
        "/api/v1/sandbox/queries", json={"grant_id": w.grant_id, "sql": SQL}, headers=stranger
    )
    assert unknown.status_code == 404
    put = client.put(
        f"/api/v1/sandbox/profiles/{w.asset_id}",
        json={"table": "t", "columns": [{"name": "account", "role": "privacy_unit"}]},
        headers=grantee,
    )
    assert put.status_code == 403
