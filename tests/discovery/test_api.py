"""The data set and discovery API: uploads (streamed and resumable), scans, reports, reviews,
problem+json refusals, paging and cross-party reads."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from factories import bearer
from isolation import DISCOVERY_CSV

from datafactor.discovery.api import store_of
from datafactor.discovery.jobs import run_pending
from datafactor.identity.codes import make_resident_id
from datafactor.settings import Environment, Settings

PROBLEM = "application/problem+json"
RAW = "application/octet-stream"


@pytest.fixture
def settings(db_url, tmp_path):
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        upload_max_bytes=200_000,
        upload_chunk_max_bytes=4096,
        source_allow_sqlite=True,
    )


@pytest.fixture
def owner(client, enterprise):
    return bearer(client, enterprise)


def run_scans(client):
    app = client.app
    return run_pending(app.state.db, app.state.settings, store_of(app))


def new_dataset(client, headers, **over):
    body = {"name": "居民信息", "domain": "public_administration", **over}
    r = client.post("/api/v1/datasets", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def upload(client, headers, dataset_id, data=DISCOVERY_CSV, filename="people.csv"):
    return client.post(
        f"/api/v1/datasets/{dataset_id}/versions?filename={filename}",
        headers={**headers, "Content-Type": RAW},
        content=data,
    )


def assert_problem(r, status, code=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status
    if code:
        assert body["type"].endswith("/" + code), body
    return body


def test_datasets_are_created_listed_and_paged(client, owner):
    for n in range(3):
        new_dataset(client, owner, name=f"数据集{n}")
    r = client.get("/api/v1/datasets?limit=2", headers=owner)
    assert r.status_code == 200
    page = r.json()
    assert (len(page["items"]), page["total"], page["limit"]) == (2, 3, 2)
    assert client.get("/api/v1/datasets?q=数据集1", headers=owner).json()["total"] == 1
    assert_problem(
        client.get("/api/v1/datasets?nmae=x", headers=owner), 400, "unknown-query-parameter"
    )
    bad = client.post("/api/v1/datasets", headers=owner, json={"name": "x", "domain": "astrology"})
    assert_problem(bad, 422)
    extra = client.post("/api/v1/datasets", headers=owner, json={"name": "x", "colour": "red"})
    assert_problem(extra, 422)
    dataset = new_dataset(client, owner)
    r = client.patch(
        f"/api/v1/datasets/{dataset['id']}", headers=owner, json={"update_frequency": "daily"}
    )
    assert r.json()["update_frequency"] == "daily"


def test_upload_scan_report_and_review(client, owner):
    dataset = new_dataset(client, owner, identifying_column="身份证号")
    r = upload(client, owner, dataset["id"])
    assert r.status_code == 201, r.text
    created = r.json()
    version, scan = created["version"], created["scan"]
    assert version["number"] == 1
    assert version["sha256"] == hashlib.sha256(DISCOVERY_CSV).hexdigest()
    assert version["size_bytes"] == len(DISCOVERY_CSV)
    assert (scan["status"], scan["mode"], scan["final"]) == ("queued", "sample", False)
    early = client.get(f"/api/v1/scans/{scan['id']}/report", headers=owner)
    assert_problem(early, 409, "no-report")

    assert run_scans(client) == 1
    done = client.get(f"/api/v1/scans/{scan['id']}", headers=owner).json()
    assert (done["status"], done["percent"], done["rows_done"]) == ("succeeded", 100, 40)
    assert done["grade"] == "general"
    report = client.get(f"/api/v1/scans/{scan['id']}/report", headers=owner).json()
    columns = {c["name"]: c for c in report["report"]["columns"]}
    assert columns["身份证号"]["types"] == ["cn_resident_id"]
    assert columns["身份证号"]["sensitive"] is True
    assert report["report"]["distinct_individuals"] == 40
    assert report["sensitive_columns"] == 1
    assert report["distinct_individuals"] == 40
    assert report["grade_after_review"] is None

    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/reviews",
        headers=owner,
        json={
            "column": "身份证号",
            "entity_type": "cn_resident_id",
            "decision": "dismissed",
            "scan_id": scan["id"],
        },
    )
    body = assert_problem(r, 422)
    assert body["field"] == "note"
    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/reviews",
        headers=owner,
        json={
            "column": "身份证号",
            "entity_type": "cn_resident_id",
            "decision": "dismissed",
            "note": "合成测试数据",
            "scan_id": scan["id"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["decided_by"] == "acme.admin"
    report = client.get(f"/api/v1/scans/{scan['id']}/report", headers=owner).json()
    resident = next(c for c in report["columns_reviewed"] if c["name"] == "身份证号")
    assert resident["sensitive_as_scanned"] and not resident["sensitive"]
    assert resident["detections"][0]["review"]["decision"] == "dismissed"
    assert report["sensitive_columns"] == 0
    assert report["distinct_individuals"] is None  # its only identifying column was dismissed
    assert report["grade_after_review"] == "general"
    reviews = client.get(f"/api/v1/datasets/{dataset['id']}/reviews", headers=owner).json()
    assert reviews["total"] == 1

    r = client.post(f"/api/v1/versions/{version['id']}/scans", headers=owner, json={"mode": "full"})
    assert r.status_code == 201
    again = client.post(
        f"/api/v1/versions/{version['id']}/scans", headers=owner, json={"mode": "full"}
    )
    assert_problem(again, 409, "scan-active")
    listed = client.get(f"/api/v1/scans?version_id={version['id']}&status=queued", headers=owner)
    assert listed.json()["total"] == 1


@pytest.mark.parametrize(
    ("data", "filename", "status", "code"),
    [
        (b"", "empty.csv", 422, "empty-file"),
        (b"a,b\n1,2\n", "table.docx", 422, "unsupported-format"),
        (b"a,b\n1,2\n", "book.xlsm", 422, "macro-workbook"),
        (b"\x00\x01\x02binary" * 100, "binary.csv", 422, None),
        (b"x" * 200_001, "big.csv", 413, "too-large"),
    ],
)
def test_bad_uploads_are_refused_with_problem_json(client, owner, data, filename, status, code):
    dataset = new_dataset(client, owner)
    body = assert_problem(upload(client, owner, dataset["id"], data, filename), status, code)
    assert body["detail"]
    versions = client.get(f"/api/v1/datasets/{dataset['id']}/versions", headers=owner).json()
    assert versions["total"] == 0


def test_upload_needs_a_file_name_and_a_raw_body(client, owner):
    dataset = new_dataset(client, owner)
    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/versions",
        headers={**owner, "Content-Type": RAW},
        content=b"a\n1\n",
    )
    assert_problem(r, 422)
    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/versions?filename=a.csv",
        headers=owner,
        files={"file": ("a.csv", b"a\n1\n")},
    )
    assert_problem(r, 422, "multipart-not-accepted")


def test_messages_follow_the_language(client, owner):
    dataset = new_dataset(client, owner)
    zh = upload(client, {**owner, "Accept-Language": "zh-CN"}, dataset["id"], b"", "a.csv")
    en = upload(client, {**owner, "Accept-Language": "en"}, dataset["id"], b"", "a.csv")
    assert "empty" in en.json()["detail"]
    assert zh.json()["detail"] != en.json()["detail"]


def test_resumable_upload(client, owner):
    dataset = new_dataset(client, owner)
    data = DISCOVERY_CSV + b"# resumable\n" * 300
    digest = hashlib.sha256(data).hexdigest()
    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/uploads",
        headers=owner,
        json={"filename": "people.csv", "size": len(data), "sha256": digest},
    )
    assert r.status_code == 201, r.text
    up = r.json()
    assert (up["offset"], up["status"]) == (0, "open")
    url = f"/api/v1/uploads/{up['id']}"
    raw = {**owner, "Content-Type": RAW}
    assert_problem(client.patch(url, headers=raw, content=data[:10]), 400, "offset-required")
    assert_problem(client.patch(f"{url}?offset=0", headers=raw, content=data[:5000]), 413)
    offset = 0
    while offset < len(data) // 2:
        r = client.patch(
            f"{url}?offset={offset}", headers=raw, content=data[offset : offset + 4000]
        )
        assert r.status_code == 200, r.text
        offset = r.json()["offset"]
    # A chunk from the wrong place: 409, saying where to resume.
    wrong = assert_problem(
        client.patch(
            f"{url}?offset={offset + 100}", headers=raw, content=data[offset + 100 :][:100]
        ),
        409,
        "upload-conflict",
    )
    assert str(offset) in wrong["detail"]
    assert client.get(url, headers=owner).json()["offset"] == offset
    # Finishing early: 409, incomplete.
    assert_problem(client.post(f"{url}/finish", headers=owner), 409)
    while offset < len(data):
        r = client.patch(
            f"{url}?offset={offset}", headers=raw, content=data[offset : offset + 4000]
        )
        offset = r.json()["offset"]
    r = client.post(f"{url}/finish", headers=owner)
    assert r.status_code == 201, r.text
    version_id = r.json()["version"]["id"]
    assert r.json()["scan"]["status"] == "queued"
    again = client.post(f"{url}/finish", headers=owner)
    assert again.status_code == 201
    assert (again.json()["version"]["id"], again.json()["scan"]) == (version_id, None)
    assert client.get(url, headers=owner).json()["status"] == "finished"
    # The same bytes once more: already stored, nothing to send.
    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/uploads",
        headers=owner,
        json={"filename": "copy.csv", "size": len(data), "sha256": digest},
    )
    assert r.json()["offset"] == len(data)
    assert client.post(f"/api/v1/uploads/{r.json()['id']}/finish", headers=owner).status_code == 201


def test_resumable_upload_refusals(client, owner):
    dataset = new_dataset(client, owner)
    start = f"/api/v1/datasets/{dataset['id']}/uploads"
    too_big = client.post(
        start, headers=owner, json={"filename": "a.csv", "size": 200_001, "sha256": "a" * 64}
    )
    assert_problem(too_big, 413, "too-large")
    assert_problem(
        client.post(
            start, headers=owner, json={"filename": "a.csv", "size": 0, "sha256": "a" * 64}
        ),
        422,
        "empty-file",
    )
    assert_problem(
        client.post(start, headers=owner, json={"filename": "a.csv", "size": 5, "sha256": "xyz"}),
        422,
        "bad-digest",
    )
    r = client.post(start, headers=owner, json={"filename": "a.csv", "size": 4, "sha256": "c" * 64})
    up = r.json()
    raw = {**owner, "Content-Type": RAW}
    client.patch(f"/api/v1/uploads/{up['id']}?offset=0", headers=raw, content=b"a\n1\n")
    mismatch = client.post(f"/api/v1/uploads/{up['id']}/finish", headers=owner)
    assert_problem(mismatch, 422, "upload-checksum-mismatch")
    r = client.post(start, headers=owner, json={"filename": "b.csv", "size": 4, "sha256": "d" * 64})
    gone = client.delete(f"/api/v1/uploads/{r.json()['id']}", headers=owner)
    assert gone.json()["status"] == "aborted"
    assert_problem(
        client.patch(f"/api/v1/uploads/{r.json()['id']}?offset=0", headers=raw, content=b"a"),
        409,
        "upload-aborted",
    )


def test_database_version_shows_no_password(client, owner, tmp_path):
    import sqlite3

    source = tmp_path / "dept.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE people (name TEXT, resident_id TEXT)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?)",
            [(f"人{i}", make_resident_id("450103", date(1975, 3, 3), i)) for i in range(25)],
        )
    dataset = new_dataset(client, owner)
    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/versions/database",
        headers=owner,
        json={"url": f"sqlite:///{source}", "table": "people"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"]["source_kind"] == "database"
    run_scans(client)
    scan = client.get(f"/api/v1/scans/{r.json()['scan']['id']}/report", headers=owner).json()
    assert {c["name"]: c["types"] for c in scan["report"]["columns"]}["resident_id"] == [
        "cn_resident_id"
    ]
    # Unreachable server with a password in the URL: 502, and the password is nowhere.
    r = client.post(
        f"/api/v1/datasets/{dataset['id']}/versions/database",
        headers=owner,
        json={"url": "postgresql+psycopg://u:s3cr3tpw@127.0.0.1:1/db", "table": "t"},
    )
    body = assert_problem(r, 502, "source-unavailable")
    assert "s3cr3tpw" not in r.text
    assert "***" in body["detail"]


def test_cancel_and_force_cancel(client, owner, db, operator):
    dataset = new_dataset(client, owner)
    scan = upload(client, owner, dataset["id"]).json()["scan"]
    r = client.post(f"/api/v1/scans/{scan['id']}/cancel", headers=owner)
    assert r.json()["status"] == "cancelled"
    assert_problem(
        client.post(f"/api/v1/scans/{scan['id']}/cancel", headers=owner), 409, "scan-ended"
    )
    version_id = scan["version_id"]
    full = client.post(f"/api/v1/versions/{version_id}/scans", headers=owner, json={"mode": "full"})
    op = bearer(client, operator)
    no_reason = client.post(
        f"/api/v1/scans/{full.json()['id']}/force-cancel", headers=op, json={"reason": ""}
    )
    assert_problem(no_reason, 422)
    r = client.post(
        f"/api/v1/scans/{full.json()['id']}/force-cancel", headers=op, json={"reason": "运维"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert "运维" in r.json()["error"]["message"]


def test_regulator_reads_across_parties_but_changes_nothing(client, owner, regulator):
    dataset = new_dataset(client, owner)
    scan = upload(client, owner, dataset["id"]).json()["scan"]
    run_scans(client)
    reg = bearer(client, regulator)
    assert client.get("/api/v1/datasets", headers=reg).json()["total"] == 1
    assert client.get(f"/api/v1/datasets/{dataset['id']}", headers=reg).status_code == 200
    assert client.get(f"/api/v1/scans/{scan['id']}/report", headers=reg).status_code == 200
    assert_problem(client.post("/api/v1/datasets", headers=reg, json={"name": "x"}), 403)
    assert_problem(
        client.patch(f"/api/v1/datasets/{dataset['id']}", headers=reg, json={"name": "x"}), 403
    )
    assert_problem(upload(client, reg, dataset["id"]), 403)
    assert_problem(
        client.post(
            f"/api/v1/datasets/{dataset['id']}/reviews",
            headers=reg,
            json={"column": "身份证号", "entity_type": "cn_resident_id", "decision": "confirmed"},
        ),
        403,
    )
