"""A NUL character (U+0000) anywhere in a request gets a clear 4xx, never a 500.

PostgreSQL's text types cannot hold a NUL (psycopg refuses to send one): before the edge check,
some 200 routes answered 500 on PostgreSQL to ``%00`` in a path or query parameter. The sweep
below calls every route of the application — API and console — with a NUL in each path parameter
and each query parameter, on both databases, logged in as a party that may see everything, and
wants the answer in the person's language (problem+json for the API, the error page with the
message for the console): 404 for the path (no page or object has such a name), 400 naming the
query parameter. Bodies are the domains' to read; a NUL that reaches PostgreSQL there is a 400
from the error handler, with nothing written — every API route with a JSON body is called with
a NUL in each of its text fields to check it.
"""

from __future__ import annotations

import re
from typing import Any

from factories import bearer, console_login, make_actor
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from datafactor.identity import PartyKind
from datafactor.web import problems
from datafactor.web.deps import _declared_query_names
from datafactor.web.i18n import translations

PARAM = re.compile(r"{(\w+)(?::\w+)?}")
# Routes that end the session the sweep's console requests ride on.
SESSION_ENDERS = ("/logout",)


def _english(message: str, **params: Any) -> str:
    return translations("en").gettext(message).format(**params)


def _assert_refused(
    r: Any, api: bool, message: str, what: str, status: int = 400, **params: Any
) -> None:
    """The answer naming the NUL: problem+json with its code (API), the error page (console)."""
    expected = _english(message, **params)
    assert r.status_code == status, f"{what}: {r.status_code} {r.text[:300]}"
    if api:
        assert r.headers["content-type"].startswith(problems.PROBLEM_JSON), what
        body = r.json()
        assert body["type"].endswith("/" + problems.NUL_CODE), what
        assert body["detail"] == expected, what
    else:
        assert r.headers["content-type"].startswith("text/html"), what
        assert 'data-testid="error-detail"' in r.text, what
        # The page escapes quotes (&#39;): compare the text before the first one.
        assert expected.split("'")[0] in r.text, what


def _routes(app: Any) -> list[tuple[str, str, list[str], list[str]]]:
    """Every (method, path, path parameters, query parameters) of the application."""
    found = []
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if not isinstance(original, APIRoute) or route.path.startswith(SESSION_ENDERS):
            continue
        queries = sorted(_declared_query_names(original.dependant))
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, route.path, PARAM.findall(route.path), queries))
    return found


def _url(path: str, nul_in: str | None) -> str:
    """``path`` with each parameter filled in: a NUL in ``nul_in``, a plain value elsewhere."""
    return PARAM.sub(lambda m: "x%00y" if m.group(1) == nul_in else "x1", path)


def test_every_route_refuses_a_nul_in_a_path_or_query_parameter(client, db, app) -> None:
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    api_headers = {**bearer(client, operator), "Idempotency-Key": "nul-sweep"}
    console_login(client, operator, "/", "en")
    routes = _routes(app)
    paths = {path for _, path, _, _ in routes}
    # The walk sees real routes, API and console, with and without parameters.
    assert {"/api/v1/parties/{party_id}", "/exchange/auctions/{auction_id}"} <= paths
    assert sum(bool(params) for _, _, params, _ in routes) > 200
    assert sum(bool(queries) for _, _, _, queries in routes) > 40
    swept = 0
    for method, path, params, queries in routes:
        api = path.startswith("/api/")
        headers = api_headers if api else {}
        for name in params:
            url = _url(path, name)
            r = client.request(method, url, headers=headers, follow_redirects=False)
            _assert_refused(r, api, problems.MSG_NUL_PATH, f"{method} {url}", status=404)
            swept += 1
        for name in queries:
            url = f"{_url(path, None)}?{name}=x%00y"
            r = client.request(method, url, headers=headers, follow_redirects=False)
            _assert_refused(r, api, problems.MSG_NUL_QUERY, f"{method} {url}", name=name)
            swept += 1
    assert swept > 300


def _example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A value of the OpenAPI ``schema`` with a NUL in every free text (first choices of enums
    and unions, one item per list)."""
    if "$ref" in schema:
        return _example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return _example(schema[key][0], components)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: _example(v, components) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example(schema.get("items", {}), components)]
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    return "样例\u0000文本"


def _audit_events(db: Any) -> int:
    from sqlalchemy import func, select

    from datafactor.audit import AuditEvent

    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_a_nul_in_any_json_body_is_never_a_server_error(client, db, app) -> None:
    """Every API route with a JSON body, called with a NUL in each text field of an otherwise
    well-formed body: never a 5xx; where the NUL reached PostgreSQL, the 400 saying so and no
    audit event (the use case and its event are one transaction)."""
    document = app.openapi()
    components = document["components"]["schemas"]
    refused_by_database = 0
    for kind in (PartyKind.ENTERPRISE, PartyKind.EXCHANGE_OPERATOR):
        actor = make_actor(db, kind)
        headers = {**bearer(client, actor), "Idempotency-Key": "nul-sweep", "Accept-Language": "en"}
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                content = operation.get("requestBody", {}).get("content", {})
                if "application/json" not in content:
                    continue
                body = _example(content["application/json"]["schema"], components)
                url = _url(path, None)
                events = _audit_events(db)
                r = client.request(method.upper(), url, headers=headers, json=body)
                what = f"{method.upper()} {url} as {kind}"
                assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
                if r.status_code == 400 and r.json()["type"].endswith("/" + problems.NUL_CODE):
                    _assert_refused(r, True, problems.MSG_NUL_BODY, what)
                    assert _audit_events(db) == events, what
                    refused_by_database += 1
    # On SQLite the NUL is stored or cleaned; on PostgreSQL some bodies reach a text column.
    assert refused_by_database > 0 or db.is_sqlite


def _datasets(client: TestClient, headers: dict[str, str]) -> list[str]:
    r = client.get("/api/v1/datasets", headers=headers)
    assert r.status_code == 200, r.text
    return [item["name"] for item in r.json()["items"]]


def test_a_nul_that_reaches_postgresql_is_a_400_and_nothing_is_written(client, db) -> None:
    """A data set named with a NUL, by the API and by the console's form: PostgreSQL refuses it
    (400 saying so, the data set and its audit event rolled back); SQLite keeps the name."""
    owner = make_actor(db, PartyKind.ENTERPRISE)
    headers = {**bearer(client, owner), "Accept-Language": "en"}
    events = _audit_events(db)
    r = client.post(
        "/api/v1/datasets",
        headers=headers,
        json={"name": "港口吞吐量\u0000", "domain": "public_administration"},
    )
    csrf = console_login(client, owner, "/", "en")
    form = client.post(
        "/datasets", data={"csrf_token": csrf, "name": "仓储\x00数据"}, follow_redirects=False
    )
    if db.is_sqlite:
        assert (r.status_code, form.status_code) == (201, 303), r.text
        assert sorted(_datasets(client, headers)) == ["仓储\x00数据", "港口吞吐量\x00"]
        return
    _assert_refused(r, True, problems.MSG_NUL_BODY, "JSON body")
    _assert_refused(form, False, problems.MSG_NUL_BODY, "form body")
    assert _datasets(client, headers) == []
    assert _audit_events(db) == events + 1  # the console's login, nothing else


def test_the_refusal_speaks_the_person_s_language(client, db) -> None:
    owner = make_actor(db, PartyKind.ENTERPRISE)
    headers = bearer(client, owner)
    for lang, accept in (("zh_CN", "zh-CN,zh;q=0.9"), ("en", "en-GB,en;q=0.8")):
        r = client.get("/api/v1/datasets?q=%00", headers={**headers, "Accept-Language": accept})
        assert r.status_code == 400
        expected = translations(lang).gettext(problems.MSG_NUL_QUERY).format(name="q")
        assert r.json()["detail"] == expected
        assert r.json()["field"] == "q"
    console_login(client, owner, "/")
    r = client.get("/exchange/auctions/x%00y")
    assert r.status_code == 404 and '<html lang="zh-CN"' in r.text
    assert translations("zh_CN").gettext(problems.MSG_NUL_PATH) in r.text
