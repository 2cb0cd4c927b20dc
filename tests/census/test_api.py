"""The census API: start (the database checked first), progress, the inventory (paged), the Excel
export, cancel / resume / force-cancel, the province roll-up, problem+json refusals."""

from __future__ import annotations

import io

import pytest
from census_support import ROWS, TABLES, VIEWS
from factories import bearer, make_actor
from openpyxl import load_workbook

from datafactor.census.jobs import run_pending
from datafactor.identity import PartyKind

PROBLEM = "application/problem+json"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ALL = len(TABLES) + len(VIEWS)


def assert_problem(r, status, code=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    if code:
        assert body["type"].endswith("/" + code), body
    return body


def run_all(client):
    app = client.app
    return run_pending(app.state.db, app.state.settings)


@pytest.fixture
def dept(client, department):
    return bearer(client, department)


def test_a_census_through_the_api(client, dept, department, bureau, department_url):
    r = client.post("/api/v1/census", headers=dept, json={"url": department_url, "sample_rows": 50})
    assert r.status_code == 201, r.text
    run = r.json()
    assert (run["status"], run["percent"], run["sample_rows"], run["final"]) == (
        "queued",
        None,
        50,
        False,
    )
    assert run["party_id"] == department.party_id
    assert run_all(client) == 1

    r = client.get(f"/api/v1/census/{run['id']}", headers=dept)
    body = r.json()
    assert (body["run"]["status"], body["run"]["percent"]) == ("succeeded", 100)
    assert body["run"]["tables_total"] == ALL and body["run"]["rows_counted"] == ROWS
    assert body["totals"]["tables"] == ALL and body["totals"]["sensitive_tables"] == 1

    page = client.get(f"/api/v1/census/{run['id']}/tables?limit=2&offset=2", headers=dept).json()
    assert (page["total"], len(page["items"])) == (ALL, 2)
    residents = page["items"][0]
    assert (residents["schema"], residents["table"], residents["row_count"]) == (
        "main",
        "residents",
        120,
    )
    assert residents["rows_scanned"] == 50  # the sample
    assert residents["pi_types"] == ["cn_resident_id", "cn_mobile"] and residents["sensitive"]
    assert [c["name"] for c in residents["columns"]][:3] == ["id", "name", "id_number"]
    done = client.get(f"/api/v1/census/{run['id']}/tables?status=done", headers=dept).json()
    assert done["total"] == ALL

    r = client.get(f"/api/v1/census/{run['id']}/export.xlsx", headers=dept)
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    assert r.headers["content-disposition"].startswith('attachment; filename="census-')
    book = load_workbook(io.BytesIO(r.content))
    rows = list(book["资产清单 Tables"].iter_rows(min_row=2, values_only=True))
    assert [row[3] for row in rows] == [*TABLES, *VIEWS]

    listed = client.get("/api/v1/census?status=succeeded", headers=dept).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == run["id"]
    assert client.get("/api/v1/census?status=queued", headers=dept).json()["total"] == 0

    province = client.get("/api/v1/census/rollup", headers=bearer(client, bureau)).json()
    assert province["province"]["tables"] == ALL and province["province"]["rows"] == ROWS
    assert province["departments"][0]["party_name"] == "南宁市民政局"
    r = client.get("/api/v1/census/rollup.xlsx", headers=bearer(client, bureau))
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    summary = list(load_workbook(io.BytesIO(r.content))["汇总 Summary"].iter_rows(values_only=True))
    assert summary[1][:4] == ("南宁市民政局", 1, ALL, ROWS)
    assert summary[-1][0] == "全省合计 Province total"


def test_refusals_are_problems_and_never_show_the_password(client, dept, department_url, settings):
    body = assert_problem(
        client.post(
            "/api/v1/census",
            headers=dept,
            json={"url": "postgresql+psycopg://dept:S3cret-pw@127.0.0.1:1/hr"},
        ),
        502,
        "source-unavailable",
    )
    assert "dept:***@127.0.0.1:1/hr" in body["detail"] and "S3cret" not in str(body)
    assert_problem(client.post("/api/v1/census", headers=dept, json={"url": "nonsense"}), 422)
    assert_problem(
        client.post("/api/v1/census", headers=dept, json={"url": department_url, "colour": "red"}),
        422,
    )
    assert_problem(
        client.post("/api/v1/census", headers=dept, json={"url": department_url, "sample_rows": 0}),
        422,
    )
    assert_problem(
        client.post("/api/v1/census", headers=dept, json={"url": department_url, "schema": "hr"}),
        422,
    )
    settings.source_allow_sqlite = False
    assert_problem(
        client.post("/api/v1/census", headers=dept, json={"url": department_url}),
        422,
        "sqlite-not-allowed",
    )
    assert_problem(client.get("/api/v1/census?stauts=x", headers=dept), 400)
    enterprise = bearer(client, make_actor(client.app.state.db, PartyKind.ENTERPRISE))
    assert_problem(client.get("/api/v1/census", headers=enterprise), 403)
    assert_problem(
        client.post("/api/v1/census", headers=enterprise, json={"url": department_url}), 403
    )


def test_cancel_resume_and_force_cancel(client, dept, bureau, department, department_url):
    run = client.post("/api/v1/census", headers=dept, json={"url": department_url}).json()
    assert_problem(client.post(f"/api/v1/census/{run['id']}/resume", headers=dept), 409)
    r = client.post(f"/api/v1/census/{run['id']}/cancel", headers=dept)
    assert r.json()["status"] == "cancelled" and r.json()["resumable"] is True
    assert_problem(
        client.post(f"/api/v1/census/{run['id']}/cancel", headers=dept), 409, "census-ended"
    )
    r = client.post(f"/api/v1/census/{run['id']}/resume", headers=dept, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    assert run_all(client) == 1
    assert (
        client.get(f"/api/v1/census/{run['id']}", headers=dept).json()["run"]["status"]
        == "succeeded"
    )

    # The bureau starts one for the department and its admin force-cancels it.
    bur = bearer(client, bureau)
    second = client.post(
        "/api/v1/census",
        headers=bur,
        json={"url": department_url, "party_id": department.party_id, "schema": "main"},
    ).json()
    assert second["party_id"] == department.party_id and second["schema"] == "main"
    assert_problem(
        client.post(f"/api/v1/census/{second['id']}/force-cancel", headers=bur, json={}), 422
    )
    r = client.post(
        f"/api/v1/census/{second['id']}/force-cancel", headers=bur, json={"reason": "重新安排"}
    )
    assert r.json()["status"] == "cancelled"
    assert "重新安排" in r.json()["error"]["message"]
    assert client.get("/api/v1/census", headers=dept).json()["total"] == 2
