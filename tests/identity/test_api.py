"""The identity REST API: tokens, parties, users, problem+json answers, paging, bad input."""

from __future__ import annotations

from factories import PASSWORD, bearer, make_actor

from datafactor.identity import PartyKind
from datafactor.identity.codes import make_uscc

PROBLEM = "application/problem+json"


def application(**over):
    body = {
        "kind": "enterprise",
        "name": "广西新数科技有限公司",
        "name_en": "Xinshu Tech",
        "code": make_uscc("9", "1", "450100", "XA000001"),
        "admin_username": "xinshu.admin",
        "admin_password": PASSWORD,
    }
    body.update(over)
    return body


def test_token_login_and_me(client, enterprise):
    headers = bearer(client, enterprise)
    me = client.get("/api/v1/me", headers=headers).json()
    assert me["party_id"] == enterprise.party_id
    assert "identity:user:manage" in me["permissions"]


def test_wrong_password_is_401_problem_json(client, enterprise):
    r = client.post("/api/v1/auth/token", json={"username": enterprise.username, "password": "x"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["status"] == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_lockout_through_the_api(client, enterprise):
    codes = [
        client.post(
            "/api/v1/auth/token", json={"username": enterprise.username, "password": "bad-pass"}
        ).status_code
        for _ in range(5)
    ]
    assert codes == [401, 401, 401, 401, 423]
    r = client.post(
        "/api/v1/auth/token", json={"username": enterprise.username, "password": PASSWORD}
    )
    assert r.status_code == 423
    assert "15" in r.json()["detail"]


def test_apply_then_read_own_pending_party(client):
    r = client.post("/api/v1/parties", json=application())
    assert r.status_code == 201, r.text
    party = r.json()
    assert party["status"] == "pending"
    token = client.post(
        "/api/v1/auth/token", json={"username": "xinshu.admin", "password": PASSWORD}
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get(f"/api/v1/parties/{party['id']}", headers=headers).status_code == 200
    # A pending party cannot manage users yet.
    r = client.get("/api/v1/users", headers=headers)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith(PROBLEM)


def test_bad_check_digit_names_the_character_in_the_callers_language(client):
    code = make_uscc("9", "1", "450100", "XA000001")
    wrong = code[:17] + ("1" if code[17] != "1" else "2")
    r = client.post(
        "/api/v1/parties", json=application(code=wrong), headers={"Accept-Language": "en"}
    )
    assert r.status_code == 422
    body = r.json()
    assert body["field"] == "code"
    assert "Character 18" in body["detail"] and f"'{code[17]}'" in body["detail"]
    r = client.post(
        "/api/v1/parties", json=application(code=wrong), headers={"Accept-Language": "zh-CN"}
    )
    assert "18" in r.json()["detail"]
    assert "Character" not in r.json()["detail"]  # answered in Chinese


def test_duplicate_code_is_409(client):
    assert client.post("/api/v1/parties", json=application()).status_code == 201
    r = client.post("/api/v1/parties", json=application(admin_username="other.admin"))
    assert r.status_code == 409
    assert r.json()["field"] == "code"


def test_malformed_json_and_unknown_fields(client):
    r = client.post(
        "/api/v1/parties", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith(PROBLEM)
    r = client.post("/api/v1/parties", json=application(surprise=1))
    assert r.status_code == 422
    assert any(e["loc"][-1] == "surprise" for e in r.json()["errors"])
    r = client.post("/api/v1/parties", json=application(name="x" * 600))
    assert r.status_code == 422


def test_unknown_query_parameter_is_refused(client, regulator):
    headers = bearer(client, regulator)
    r = client.get("/api/v1/parties?stauts=pending", headers=headers)
    assert r.status_code == 400
    assert "stauts" in r.json()["detail"]
    assert client.get("/api/v1/parties?status=pending", headers=headers).status_code == 200


def test_paging_shape(client, db, regulator):
    for _ in range(3):
        make_actor(db, PartyKind.ENTERPRISE)
    headers = bearer(client, regulator)
    page = client.get("/api/v1/parties?limit=2&offset=1", headers=headers).json()
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (4, 2, 2, 1)
    assert client.get("/api/v1/parties?limit=0", headers=headers).status_code == 422
    assert client.get("/api/v1/parties?limit=201", headers=headers).status_code == 422


def test_operator_reviews_over_the_api(client, operator):
    party = client.post("/api/v1/parties", json=application()).json()
    headers = bearer(client, operator)
    pending = client.get("/api/v1/parties?status=pending", headers=headers).json()
    assert [p["id"] for p in pending["items"]] == [party["id"]]
    r = client.post(
        f"/api/v1/parties/{party['id']}/review", json={"approve": False}, headers=headers
    )
    assert r.status_code == 422
    r = client.post(
        f"/api/v1/parties/{party['id']}/review",
        json={"approve": True, "reason": ""},
        headers=headers,
    )
    assert r.json()["status"] == "verified"


def test_users_and_tokens_lifecycle(client, enterprise):
    headers = bearer(client, enterprise)
    r = client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "username": "acme.clerk",
            "display_name": "李四",
            "password": PASSWORD,
            "roles": ["staff"],
        },
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = client.patch(f"/api/v1/users/{user_id}", headers=headers, json={"roles": ["wizard"]})
    assert r.status_code == 422
    r = client.patch(f"/api/v1/users/{user_id}", headers=headers, json={"is_active": False})
    assert r.json()["is_active"] is False
    users = client.get("/api/v1/users", headers=headers).json()
    assert users["total"] == 2

    r = client.post(
        "/api/v1/tokens",
        headers=headers,
        json={"name": "etl", "scopes": ["identity:party:read"], "expires_in_days": 7},
    )
    assert r.status_code == 201
    issued = r.json()
    scoped = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get(f"/api/v1/parties/{enterprise.party_id}", headers=scoped).status_code == 200
    assert client.get("/api/v1/users", headers=scoped).status_code == 403  # outside its scope
    listed = client.get("/api/v1/tokens", headers=headers).json()["items"]
    assert all("token" not in t for t in listed)
    assert client.delete(f"/api/v1/tokens/{issued['id']}", headers=headers).status_code == 200
    r = client.get(f"/api/v1/parties/{enterprise.party_id}", headers=scoped)
    assert r.status_code == 401
    assert r.json()["type"].endswith("/token-revoked")


def test_missing_or_garbage_token(client, enterprise):
    url = f"/api/v1/parties/{enterprise.party_id}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer dft_nope"}).status_code == 401
    assert client.get(url, headers={"Authorization": "Basic abc"}).status_code == 401


def test_individuals_resident_id_is_masked_for_others(client, db, regulator):
    person = make_actor(db, PartyKind.INDIVIDUAL)
    own = client.get(f"/api/v1/parties/{person.party_id}", headers=bearer(client, person)).json()
    seen = client.get(
        f"/api/v1/parties/{person.party_id}", headers=bearer(client, regulator)
    ).json()
    assert "*" not in own["code"]
    assert "*" in seen["code"] and seen["code"][:6] == own["code"][:6]


def test_health_openapi_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["database"] == "ok"
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/parties/{party_id}" in spec["paths"]
    assert client.get("/docs").status_code == 200
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
