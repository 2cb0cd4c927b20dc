"""The data set and scan pages over HTTP: forms with CSRF, uploads (form and script routes),
progress polling, the report with its charts, reviews, cancel, languages."""

from __future__ import annotations

import hashlib
import re

import pytest
from factories import console_login
from isolation import DISCOVERY_CSV

from datafactor.discovery.api import store_of
from datafactor.discovery.jobs import run_pending
from datafactor.settings import Environment, Settings


@pytest.fixture
def settings(db_url, tmp_path):
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        upload_max_bytes=100_000,
        upload_chunk_max_bytes=4096,
    )


def create_dataset(client, csrf, name="网页数据集"):
    r = client.post(
        "/datasets",
        data={"csrf_token": csrf, "name": name, "domain": "transport", "update_frequency": "daily"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1]


def upload_form(client, csrf, dataset_id, data=DISCOVERY_CSV, name="people.csv"):
    return client.post(
        f"/datasets/{dataset_id}/upload",
        data={"csrf_token": csrf},
        files={"file": (name, data, "text/csv")},
        follow_redirects=False,
    )


def run_scans(client):
    app = client.app
    return run_pending(app.state.db, app.state.settings, store_of(app))


def test_pages_need_a_login(client):
    for path in ("/datasets", "/scans", "/datasets/x", "/scans/x"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")


def test_create_a_dataset_and_see_it_listed(client, enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    page = client.get("/datasets")
    assert 'data-testid="dataset-form"' in page.text
    assert 'data-testid="nav-datasets"' in page.text
    bad = client.post("/datasets", data={"csrf_token": csrf, "name": " "}, follow_redirects=False)
    assert bad.status_code == 422
    assert 'data-testid="error"' in bad.text
    assert 'aria-invalid="true"' in bad.text
    forged = client.post("/datasets", data={"csrf_token": "forged", "name": "x"})
    assert forged.status_code == 403
    dataset_id = create_dataset(client, csrf)
    listing = client.get("/datasets", headers={"HX-Request": "true"})
    assert "<html" not in listing.text  # the HTMX partial
    assert f"/datasets/{dataset_id}" in listing.text
    detail = client.get(f"/datasets/{dataset_id}")
    assert 'data-testid="upload-form"' in detail.text
    assert 'src="/static/upload.js"' in detail.text
    assert "data-msg-hashing" in detail.text


def test_upload_progress_report_and_review(client, enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id = create_dataset(client, csrf)
    r = upload_form(client, csrf, dataset_id)
    assert r.status_code == 303, r.text
    scan_url = r.headers["location"]
    assert scan_url.startswith("/scans/")
    page = client.get(scan_url)
    assert 'hx-trigger="every 1s"' in page.text
    assert 'data-status="queued"' in page.text
    assert 'data-testid="scan-cancel"' in page.text
    partial = client.get(f"{scan_url}/progress", headers={"HX-Request": "true"})
    assert "HX-Refresh" not in partial.headers
    assert "<html" not in partial.text

    assert run_scans(client) == 1
    partial = client.get(f"{scan_url}/progress", headers={"HX-Request": "true"})
    assert partial.headers["HX-Refresh"] == "true"
    page = client.get(scan_url)
    assert 'data-status="succeeded"' in page.text
    assert 'hx-trigger="every 1s"' not in page.text
    assert '<svg class="chart"' in page.text
    assert 'data-testid="chart-match-ratio"' in page.text
    assert 'data-testid="detection-身份证号-cn_resident_id"' in page.text
    assert 'data-testid="sensitive-flag"' in page.text
    assert 'data-testid="report-grade"' in page.text
    assert "GBT43697" in page.text  # rule ids next to the reasons

    scan_id = scan_url.rsplit("/", 1)[1]
    review = {
        "csrf_token": csrf,
        "scan_id": scan_id,
        "column": "身份证号",
        "entity_type": "cn_resident_id",
        "decision": "dismissed",
        "note": "",
    }
    refused = client.post(f"/datasets/{dataset_id}/reviews", data=review, follow_redirects=False)
    assert refused.status_code == 422
    assert 'data-testid="error"' in refused.text
    review["note"] = "演示数据"
    done = client.post(f"/datasets/{dataset_id}/reviews", data=review, follow_redirects=False)
    assert done.status_code == 303
    page = client.get(scan_url)
    assert 'data-testid="review-state"' in page.text
    assert "acme.admin" in page.text
    assert 'data-testid="sensitive-flag"' not in page.text
    assert 'data-testid="sensitive-count">0<' in page.text
    detail = client.get(f"/datasets/{dataset_id}")
    assert 'data-testid="reviews-table"' in detail.text
    assert "演示数据" in detail.text


def test_upload_refusals_on_the_page(client, enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id = create_dataset(client, csrf)
    big = upload_form(client, csrf, dataset_id, data=b"a\n" * 60_000)
    assert big.status_code == 413
    assert 'data-testid="error"' in big.text
    empty = upload_form(client, csrf, dataset_id, data=b"")
    assert empty.status_code == 422
    odd = upload_form(client, csrf, dataset_id, name="x.pdf")
    assert odd.status_code == 422
    db_form = client.post(
        f"/datasets/{dataset_id}/database",
        data={"csrf_token": csrf, "url": "mysql://u:t0ps3cret@127.0.0.1:1/x", "table": "t"},
    )
    assert db_form.status_code in (422, 502)
    assert "t0ps3cret" not in db_form.text
    # A body without a declared length would be spooled to disk whole before any check.
    chunked = client.post(
        f"/datasets/{dataset_id}/upload",
        content=(part for part in (b"--x\r\n", b"a" * 1000)),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert chunked.status_code == 411
    assert 'data-testid="error"' in chunked.text


def test_script_upload_routes(client, enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id = create_dataset(client, csrf)
    data = DISCOVERY_CSV
    body = {"filename": "people.csv", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    no_token = client.post(f"/datasets/{dataset_id}/uploads", json=body)
    assert no_token.status_code == 403
    headers = {"X-CSRF-Token": csrf}
    r = client.post(f"/datasets/{dataset_id}/uploads", json=body, headers=headers)
    assert r.status_code == 201, r.text
    upload_id, offset = r.json()["id"], r.json()["offset"]
    while offset < len(data):
        r = client.patch(
            f"/uploads/{upload_id}?offset={offset}",
            content=data[offset : offset + 4096],
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 200, r.text
        offset = r.json()["offset"]
    wrong = client.patch(f"/uploads/{upload_id}?offset=999999", content=b"x", headers=headers)
    assert wrong.status_code == 409
    assert wrong.json()["detail"]
    assert client.get(f"/uploads/{upload_id}").json()["offset"] == len(data)
    r = client.post(f"/uploads/{upload_id}/finish", headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["next"].startswith("/scans/")
    assert r.json()["version"] == 1
    bad = client.post(
        f"/datasets/{dataset_id}/uploads",
        json={**body, "size": 10**9},
        headers=headers,
    )
    assert bad.status_code == 413
    assert "100000" in bad.json()["detail"]


def test_cancel_force_cancel_and_full_scan_forms(client, enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id = create_dataset(client, csrf)
    scan_url = upload_form(client, csrf, dataset_id).headers["location"]
    r = client.post(f"{scan_url}/cancel", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert 'data-status="cancelled"' in client.get(scan_url).text
    again = client.post(f"{scan_url}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 409
    page = client.get(f"/datasets/{dataset_id}")
    version_id = re.search(r'action="/versions/([^/]+)/scan"', page.text).group(1)
    r = client.post(
        f"/versions/{version_id}/scan",
        data={"csrf_token": csrf, "mode": "full"},
        follow_redirects=False,
    )
    full_url = r.headers["location"]
    assert 'data-testid="force-cancel-form"' in client.get(full_url).text
    no_reason = client.post(f"{full_url}/force-cancel", data={"csrf_token": csrf, "reason": ""})
    assert no_reason.status_code == 422
    r = client.post(
        f"{full_url}/force-cancel",
        data={"csrf_token": csrf, "reason": "测试强制取消"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(full_url)
    assert 'data-testid="scan-error"' in page.text
    assert "测试强制取消" in page.text
    scans = client.get("/scans?status=cancelled")
    assert scans.text.count("badge scan-cancelled") == 2


def test_regulator_reads_without_forms(client, enterprise, regulator):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id = create_dataset(client, csrf)
    scan_url = upload_form(client, csrf, dataset_id).headers["location"]
    run_scans(client)
    client.cookies.clear()
    console_login(client, regulator, "/datasets")
    detail = client.get(f"/datasets/{dataset_id}")
    assert detail.status_code == 200
    assert 'data-testid="upload-form"' not in detail.text
    page = client.get(scan_url)
    assert page.status_code == 200
    assert 'data-testid="review-form"' not in page.text
    assert 'data-testid="scan-cancel"' not in page.text


def test_another_party_gets_not_found(client, enterprise, other_enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id = create_dataset(client, csrf)
    scan_url = upload_form(client, csrf, dataset_id).headers["location"]
    client.cookies.clear()
    csrf = console_login(client, other_enterprise, "/datasets")
    assert client.get(f"/datasets/{dataset_id}").status_code == 404
    assert client.get(scan_url).status_code == 404
    assert client.post(f"{scan_url}/cancel", data={"csrf_token": csrf}).status_code == 404
    assert upload_form(client, csrf, dataset_id).status_code == 404


def test_english_and_chinese_pages(client, enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id = create_dataset(client, csrf)
    scan_url = upload_form(client, csrf, dataset_id).headers["location"]
    run_scans(client)
    zh = client.get(scan_url)
    assert 'lang="zh-CN"' in zh.text
    assert "居民身份证号码" in zh.text
    client.cookies.set("df_lang", "en")
    page = client.get("/datasets")
    assert "Declare a data set" in page.text
    assert 'lang="en"' in page.text
    report = client.get(scan_url)
    assert "Resident ID number" in report.text
    assert "Why this grade" in report.text
    assert "general data" in report.text.lower()


# ---------------------------------------------------------------------------- de-identification


def scanned_version(client, csrf):
    dataset_id = create_dataset(client, csrf)
    assert upload_form(client, csrf, dataset_id).status_code == 303
    run_scans(client)
    page = client.get(f"/datasets/{dataset_id}")
    match = re.search(r'href="/versions/([0-9a-f-]{36})" data-testid="version-link-1"', page.text)
    assert match, "no link to version 1"
    return dataset_id, match.group(1)


def test_deidentify_from_the_version_page(client, enterprise):
    csrf = console_login(client, enterprise, "/datasets")
    dataset_id, version_id = scanned_version(client, csrf)
    assert 'data-testid="deidentify-1"' in client.get(f"/datasets/{dataset_id}").text
    version = client.get(f"/versions/{version_id}")
    assert version.status_code == 200
    assert 'data-testid="deidentify-link"' in version.text
    assert 'data-testid="lineage"' not in version.text
    form = client.get(f"/versions/{version_id}/deidentify")
    assert form.status_code == 200
    assert 'data-testid="deid-form"' in form.text and "身份证号" in form.text

    # The preview: an HTMX partial with what each column gets.
    base = {"csrf_token": csrf, "mode": "profile", "profile": "publish", "action": "preview"}
    preview = client.post(
        f"/versions/{version_id}/deidentify", data=base, headers={"HX-Request": "true"}
    )
    assert preview.status_code == 200 and "<html" not in preview.text
    assert 'data-testid="plan-身份证号" data-technique="generalise"' in preview.text
    # "Edit as a policy" fills the editor with the profile's policy.
    edit = client.post(f"/versions/{version_id}/deidentify", data={**base, "action": "edit"})
    assert 'value="policy" data-testid="deid-mode-policy" checked' in edit.text
    assert "&#34;generalise&#34;" in edit.text or '"generalise"' in edit.text

    # A bad policy is refused with the column named, in the page and in the HTMX preview.
    bad = {
        **base,
        "mode": "policy",
        "policy": '{"columns": {"身份证号": {"technique": "mask", "keep_first": 99}}}',
    }
    refused = client.post(f"/versions/{version_id}/deidentify", data={**bad, "action": "run"})
    assert refused.status_code == 422
    assert 'data-testid="error"' in refused.text and "身份证号" in refused.text
    assert "keep_first" in refused.text  # the editor keeps what was typed
    partial = client.post(
        f"/versions/{version_id}/deidentify", data=bad, headers={"HX-Request": "true"}
    )
    assert partial.status_code == 200 and 'data-testid="plan-error"' in partial.text
    broken = client.post(
        f"/versions/{version_id}/deidentify", data={**bad, "policy": "{not json", "action": "run"}
    )
    assert broken.status_code == 422
    assert client.get("/api/v1/deidentifications").status_code == 401  # (the API needs a token)

    # Run it into a new data set, follow the progress, open the new version.
    run = client.post(
        f"/versions/{version_id}/deidentify",
        data={**base, "action": "run", "target": "new", "new_dataset_name": "公开版"},
        follow_redirects=False,
    )
    assert run.status_code == 303, run.text
    job_url = run.headers["location"]
    page = client.get(job_url)
    assert 'data-status="queued"' in page.text and 'hx-trigger="every 1s"' in page.text
    assert 'data-testid="deid-cancel"' in page.text
    assert run_scans(client) == 2
    partial = client.get(f"{job_url}/progress", headers={"HX-Request": "true"})
    assert partial.headers["HX-Refresh"] == "true"
    page = client.get(job_url)
    assert 'data-status="succeeded"' in page.text
    assert 'data-testid="result-身份证号" data-technique="generalise"' in page.text
    new_id = re.search(
        r'href="/versions/([0-9a-f-]{36})" data-testid="result-version-link"', page.text
    )
    derived = client.get(f"/versions/{new_id.group(1)}")
    assert 'data-testid="derived-from"' in derived.text
    digest = re.search(r'data-testid="job-digest" title="([0-9a-f]{64})"', page.text).group(1)
    assert digest[:16] in derived.text
    assert 'data-testid="lineage-身份证号" data-technique="generalise"' in derived.text
    assert 'data-testid="lineage-城市" data-technique="keep"' in derived.text


def test_deidentify_pages_of_other_parties(client, enterprise, other_enterprise, regulator):
    csrf = console_login(client, enterprise, "/datasets")
    _dataset_id, version_id = scanned_version(client, csrf)
    client.cookies.clear()
    csrf = console_login(client, other_enterprise, "/datasets")
    assert client.get(f"/versions/{version_id}").status_code == 404
    assert client.get(f"/versions/{version_id}/deidentify").status_code == 404
    data = {"csrf_token": csrf, "mode": "profile", "profile": "publish", "action": "run"}
    assert client.post(f"/versions/{version_id}/deidentify", data=data).status_code == 404
    client.cookies.clear()
    console_login(client, regulator, "/datasets")
    page = client.get(f"/versions/{version_id}")
    assert page.status_code == 200 and 'data-testid="deidentify-link"' not in page.text
    assert client.get(f"/versions/{version_id}/deidentify").status_code == 403
