"""The census pages over HTTP: the start form with CSRF, the run page polling its progress and
inventory, cancel and resume, the downloads, the roll-up page with its chart, the navigation."""

from __future__ import annotations

import io

from census_support import TABLES, VIEWS
from factories import console_login, make_actor
from openpyxl import load_workbook

from datafactor.census.jobs import run_pending
from datafactor.identity import PartyKind

ALL = len(TABLES) + len(VIEWS)
PG_URL = "postgresql+psycopg://dept:S3cret-pw@127.0.0.1:1/hr"


def run_all(client):
    app = client.app
    return run_pending(app.state.db, app.state.settings)


def start(client, csrf, url, **fields):
    return client.post(
        "/census", data={"csrf_token": csrf, "url": url, **fields}, follow_redirects=False
    )


def test_a_department_starts_watches_and_downloads_its_census(client, department, department_url):
    csrf = console_login(client, department, "/census")
    page = client.get("/census")
    assert 'data-testid="census-form"' in page.text
    assert 'data-testid="nav-census"' in page.text
    assert 'name="party_id"' not in page.text  # a department censuses its own database

    r = start(client, csrf, department_url, sample_rows="1,000")
    assert r.status_code == 303, r.text
    run_url = r.headers["location"]
    run_id = run_url.rsplit("/", 1)[1]
    queued = client.get(run_url)
    assert f'hx-get="/census/{run_id}/progress"' in queued.text
    assert f'hx-get="/census/{run_id}/inventory?page=1"' in queued.text
    assert 'data-status="queued"' in queued.text

    assert run_all(client) == 1
    partial = client.get(f"{run_url}/progress", headers={"HX-Request": "true"})
    assert partial.headers.get("HX-Refresh") == "true"
    assert 'data-status="succeeded"' in partial.text
    done = client.get(run_url)
    assert 'value="100"' in done.text and 'hx-get="/census/' not in done.text
    assert 'data-testid="inventory-main.residents"' in done.text
    assert 'data-testid="table-sensitive"' in done.text
    assert "cn_resident_id, cn_mobile" in done.text
    assert 'data-testid="total-tables">5<' in done.text
    inventory = client.get(f"{run_url}/inventory")
    assert inventory.text.count('data-status="done"') == ALL

    r = client.get(f"{run_url}/export.xlsx")
    assert r.status_code == 200
    book = load_workbook(io.BytesIO(r.content))
    assert len(list(book["资产清单 Tables"].iter_rows(min_row=2))) == ALL

    listing = client.get("/census?status=succeeded")
    assert run_url in listing.text
    own = client.get("/census/rollup")
    assert 'data-testid="rollup-title"' in own.text
    assert 'data-testid="chart-rollup"' in own.text


def test_a_refused_form_never_echoes_the_url(client, department, department_url):
    csrf = console_login(client, department, "/census")
    r = start(client, csrf, PG_URL, schema="hr", sample_rows="10")
    assert r.status_code == 502
    assert 'data-testid="error"' in r.text
    assert "dept:***@127.0.0.1:1/hr" in r.text
    assert "S3cret" not in r.text
    assert 'value="hr"' in r.text  # the other fields are kept
    r = start(client, csrf, department_url, sample_rows="many")
    assert r.status_code == 422
    assert 'aria-invalid="true"' in r.text
    r = client.post("/census", data={"csrf_token": "forged", "url": department_url})
    assert r.status_code == 403


def test_cancel_and_resume_from_the_page(client, department, department_url):
    csrf = console_login(client, department, "/census")
    run_url = start(client, csrf, department_url).headers["location"]
    r = client.post(f"{run_url}/cancel", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(run_url)
    assert 'data-testid="census-resume"' in page.text
    again = client.post(f"{run_url}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 409 and 'data-testid="error"' in again.text
    r = client.post(f"{run_url}/resume", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert run_all(client) == 1
    assert 'data-status="succeeded"' in client.get(run_url).text


def test_the_bureau_censuses_a_department_and_sees_the_province(
    client, bureau, department, other_department, department_url, tmp_path
):
    csrf = console_login(client, bureau, "/census")
    page = client.get("/census")
    assert 'name="party_id"' in page.text and "南宁市民政局" in page.text
    r = start(client, csrf, department_url, party_id=department.party_id)
    assert r.status_code == 303, r.text
    r = start(client, csrf, department_url)  # no department chosen
    assert r.status_code == 422
    assert run_all(client) == 1
    rollup = client.get("/census/rollup")
    assert 'data-testid="chart-rollup"' in rollup.text
    assert 'data-label="南宁市民政局"' in rollup.text
    assert 'data-part="sensitive" data-count="1"' in rollup.text
    assert f'data-testid="rollup-{department.party_id}"' in rollup.text
    assert 'data-testid="province-tables">5<' in rollup.text
    r = client.get("/census/rollup.xlsx")
    assert r.status_code == 200
    mine = client.get(f"/census?party_id={department.party_id}")
    assert mine.text.count('class="badge census-') == 1
    assert (
        client.get(f"/census?party_id={other_department.party_id}").text.count(
            'class="badge census-'
        )
        == 0
    )


def test_outsiders_see_no_census(client, department, department_url):
    enterprise = make_actor(client.app.state.db, PartyKind.ENTERPRISE)
    csrf = console_login(client, department, "/census")
    run_url = start(client, csrf, department_url).headers["location"]
    client.post("/logout", data={"csrf_token": csrf})
    console_login(client, enterprise, "/")
    assert 'data-testid="nav-census"' not in client.get("/").text
    assert client.get(run_url).status_code == 404
    assert client.get("/census").status_code == 403
