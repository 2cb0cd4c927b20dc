"""The data set and discovery API: uploads (streamed and resumable), scans, reports, reviews,
problem+json refusals, paging and cross-party reads."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from factories import bearer, make_actor
from isolation import DISCOVERY_CSV

from datafactor.discovery.api import store_of
from datafactor.discovery.jobs import run_pending
from datafactor.identity import PartyKind
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


# ---------------------------------------------------------------------------- de-identification

NAMES = ["王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊", "黄艳", "赵军", "吴勇", "周杰"]
RESIDENTS = (
    "姓名,身份证号,手机号,城市\n"
    + "".join(
        f"{NAMES[i % 10]},{make_resident_id('450102', date(1960 + i % 40, 1 + i % 12, 1 + i % 28), i)},"
        f"138{i:08d},南宁\n"
        for i in range(50)
    )
).encode()


def scanned(client, headers, data=RESIDENTS):
    dataset = new_dataset(client, headers)
    r = upload(client, headers, dataset["id"], data=data)
    assert r.status_code == 201, r.text
    run_scans(client)
    return dataset, r.json()["version"]


def test_deidentification_profiles_trustees_and_plan(client, owner, enterprise):
    profiles = client.get("/api/v1/deidentification/profiles", headers=owner).json()
    assert [p["name"] for p in profiles] == ["publish", "share-with-trustee", "display"]
    assert [p["tokenises"] for p in profiles] == [False, True, False]
    trustees = client.get("/api/v1/deidentification/trustees", headers=owner).json()
    assert trustees[0] == {
        "party_id": enterprise.party_id,
        "name": trustees[0]["name"],
        "name_en": trustees[0]["name_en"],
        "own": True,
    }
    _dataset, version = scanned(client, owner)
    r = client.post(
        f"/api/v1/versions/{version['id']}/deidentification-plan",
        headers=owner,
        json={"profile": "display"},
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    columns = {c["name"]: c for c in plan["columns"]}
    assert columns["身份证号"]["technique"] == "mask"
    assert columns["身份证号"]["params"]["keep_first"] == 3  # the resident-ID preset
    assert columns["姓名"]["entity_type"] == "person_name"
    assert columns["城市"]["technique"] == "keep" and not columns["城市"]["exposed"]
    assert len(plan["policy_digest"]) == 64
    # A policy that keeps a column of personal information says so.
    r = client.post(
        f"/api/v1/versions/{version['id']}/deidentification-plan",
        headers=owner,
        json={"policy": {"unlisted": "keep", "columns": {"身份证号": "drop"}}},
    )
    exposed = {c["name"] for c in r.json()["columns"] if c["exposed"]}
    assert exposed == {"姓名", "手机号"}
    # A trustee named for a profile that tokenises nothing is not part of its policy.
    r = client.post(
        f"/api/v1/versions/{version['id']}/deidentification-plan",
        headers=owner,
        json={"profile": "publish", "trustee": enterprise.party_id},
    )
    assert "trustee" not in r.json()["policy"] and r.json()["trustees"] == []


def test_a_bad_policy_answers_a_problem_naming_the_column(client, owner):
    _dataset, version = scanned(client, owner)
    for policy, column in (
        ({"columns": {"身份证": "drop"}}, "身份证"),
        ({"columns": {"手机号": {"technique": "mask", "keep_last": -1}}}, "手机号"),
    ):
        for path in ("deidentification-plan", "deidentifications"):
            r = client.post(
                f"/api/v1/versions/{version['id']}/{path}", headers=owner, json={"policy": policy}
            )
            body = assert_problem(r, 422)
            assert column in body["detail"] and body["field"].startswith(f"columns.{column}")
    assert client.get("/api/v1/deidentifications", headers=owner).json()["total"] == 0
    versions = client.get(f"/api/v1/datasets/{version['dataset_id']}/versions", headers=owner)
    assert versions.json()["total"] == 1
    both = client.post(
        f"/api/v1/versions/{version['id']}/deidentifications",
        headers=owner,
        json={"profile": "publish", "policy": {"columns": {}}},
    )
    assert_problem(both, 422, "profile-or-policy")
    typo = client.post(
        f"/api/v1/versions/{version['id']}/deidentifications",
        headers=owner,
        json={"profile": "publish", "colour": "red"},
    )
    assert_problem(typo, 422)


def test_deidentify_then_read_the_lineage_and_the_new_scan(client, owner):
    dataset, version = scanned(client, owner)
    r = client.post(
        f"/api/v1/versions/{version['id']}/deidentifications",
        headers=owner,
        json={"profile": "publish", "format": "csv"},
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["status"], job["final"], job["percent"]) == ("queued", False, None)
    assert run_scans(client) == 2
    done = client.get(f"/api/v1/deidentifications/{job['id']}", headers=owner).json()
    assert (done["status"], done["percent"], done["rows_done"]) == ("succeeded", 100, 50)
    assert done["report"]["rows"] == 50
    new = client.get(f"/api/v1/versions/{done['result_version_id']}", headers=owner).json()
    assert new["number"] == 2 and new["format"] == "csv"
    assert new["derived_from_id"] == version["id"]
    assert new["derivation"]["policy_digest"] == done["policy_digest"]
    derivation = client.get(f"/api/v1/versions/{new['id']}/derivation", headers=owner).json()
    assert derivation["id"] == job["id"] and derivation["report"]["format"] == "csv"
    assert_problem(
        client.get(f"/api/v1/versions/{version['id']}/derivation", headers=owner),
        404,
        "not-derived",
    )
    report = client.get(f"/api/v1/scans/{done['scan_id']}/report", headers=owner).json()
    types = {c["name"]: c["types"] for c in report["report"]["columns"]}
    assert types == {"身份证号": [], "城市": []}
    listed = client.get(f"/api/v1/deidentifications?dataset_id={dataset['id']}", headers=owner)
    assert listed.json()["total"] == 1
    ended = client.post(f"/api/v1/deidentifications/{job['id']}/cancel", headers=owner)
    assert_problem(ended, 409, "deidentification-ended")


def test_only_the_trustee_detokenises(client, db, owner, enterprise, other_enterprise):
    _dataset, version = scanned(client, owner)
    r = client.post(
        f"/api/v1/versions/{version['id']}/deidentifications",
        headers=owner,
        json={"profile": "share-with-trustee", "trustee": enterprise.party_id},
    )
    assert r.status_code == 201, r.text
    run_scans(client)
    done = client.get(f"/api/v1/deidentifications/{r.json()['id']}", headers=owner).json()
    new_id = done["result_version_id"]
    techniques = {c["name"]: c["technique"] for c in done["report"]["columns"]}
    assert techniques["身份证号"] == techniques["姓名"] == "tokenise"
    assert techniques["手机号"] == "tokenise"
    # The tokens, as anyone holding the new file would see them.
    from datafactor.discovery.api import store_of

    store = store_of(client.app)
    import pyarrow.parquet as pq

    digest = client.get(f"/api/v1/versions/{new_id}", headers=owner).json()["sha256"]
    with store.open(digest) as blob:
        rows = pq.read_table(blob).to_pylist()
    tokens = [row["身份证号"] for row in rows[:3]] + [None]
    body = {"column": "身份证号", "tokens": tokens}
    r = client.post(f"/api/v1/versions/{new_id}/detokenise", headers=owner, json=body)
    assert r.status_code == 200, r.text
    originals = [line.split(",")[1] for line in RESIDENTS.decode().splitlines()[1:4]]
    assert r.json() == {"version_id": new_id, "column": "身份证号", "values": [*originals, None]}
    names = client.post(
        f"/api/v1/versions/{new_id}/detokenise",
        headers=owner,
        json={"column": "姓名", "tokens": [rows[0]["姓名"]]},
    )
    assert names.json()["values"] == [NAMES[0]]
    # Another party does not see the version; a supervisor sees it but holds no key.
    assert_problem(
        client.post(
            f"/api/v1/versions/{new_id}/detokenise",
            headers=bearer(client, other_enterprise),
            json=body,
        ),
        404,
    )
    supervisor = make_actor(db, PartyKind.REGULATOR, roles=("staff",))
    assert_problem(
        client.post(
            f"/api/v1/versions/{new_id}/detokenise", headers=bearer(client, supervisor), json=body
        ),
        403,
        "not-trustee",
    )
    too_many = {"column": "身份证号", "tokens": [tokens[0]] * 1001}
    assert_problem(
        client.post(f"/api/v1/versions/{new_id}/detokenise", headers=owner, json=too_many),
        422,
        "token-count",
    )
    altered = {"column": "身份证号", "tokens": ["tk1.00000000.AAAAAAAAAAAAAAAAAAAAAAAA"]}
    assert_problem(
        client.post(f"/api/v1/versions/{new_id}/detokenise", headers=owner, json=altered), 403
    )
    audit = client.get("/api/v1/audit/events?action=discovery:token:reverse", headers=owner).json()
    assert [e["summary"].split(" values")[0] for e in audit["items"]] == ["1", "3"]
