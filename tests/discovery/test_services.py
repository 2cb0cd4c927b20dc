"""Data sets, versions, uploads, scan jobs and reviews as use cases, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
from datetime import date, timedelta

import pytest
import yaml
from factories import make_actor
from sqlalchemy import func, select, text

from datafactor import dataplane
from datafactor.audit import AuditEvent, verify_chain
from datafactor.dataplane import BlobNotFound, BlobTooLarge, DatasetDraft, UploadConflict
from datafactor.dataplane.models import DatasetVersion
from datafactor.db import utcnow
from datafactor.discovery import jobs, services
from datafactor.discovery.models import ScanJob
from datafactor.discovery.workflow import ScanStatus
from datafactor.errors import Conflict, Forbidden, InvalidInput, NotFound
from datafactor.identity import PartyKind
from datafactor.identity.codes import make_resident_id
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for
from datafactor.settings import Environment, Settings

PEOPLE = (
    "姓名,身份证号,手机号,城市\n"
    + "".join(
        f"用户{i},{make_resident_id('450102', date(1980, 1 + i % 12, 1 + i % 28), i)},"
        f"1380013{i:04d},南宁\n"
        for i in range(60)
    )
).encode()


@pytest.fixture
def settings(db_url, tmp_path):
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        upload_max_bytes=1_000_000,
        source_allow_sqlite=True,
    )


@pytest.fixture
def store(settings):
    return dataplane.blob_store(settings)


def principal(db, actor):
    with db.read() as s:
        user = s.get(User, actor.user_id)
        party = s.get(Party, actor.party_id)
        return principal_for(user, party, via="session")


def new_dataset(db, who, name="人口信息", **kw):
    with db.write() as s:
        return dataplane.create_dataset(s, who, DatasetDraft(name=name, **kw)).id


def add_csv(db, store, who, dataset_id, data=PEOPLE, filename="people.csv"):
    blob = store.put_stream(io.BytesIO(data), max_bytes=10**7)
    dataplane.check_readable(store, blob, filename)
    with db.write() as s:
        version, job = services.add_file_version(s, who, dataset_id, blob=blob, filename=filename)
        return version.id, job.id


def events(db, action):
    with db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# ------------------------------------------------------------------------------------ data sets


def test_domains_are_those_of_the_grading_rules():
    rules = yaml.safe_load(
        (__import__("pathlib").Path(services.__file__).parent / "rules" / "grading.yaml").read_text(
            encoding="utf-8"
        )
    )
    assert set(dataplane.DataDomain) == set(rules["domains"])


def test_create_dataset_checks_and_audits(db, enterprise):
    who = principal(db, enterprise)
    with pytest.raises(InvalidInput) as bad, db.write() as s:
        dataplane.create_dataset(s, who, DatasetDraft(name="  "))
    assert bad.value.field == "name"
    with pytest.raises(InvalidInput), db.write() as s:
        dataplane.create_dataset(s, who, DatasetDraft(name="x", domain="astrology"))
    dataset_id = new_dataset(db, who, domain="transport", identifying_column=" 身份证号 ")
    with db.read() as s:
        dataset = dataplane.get_dataset(s, who, dataset_id)
        assert dataset.identifying_column == "身份证号"
        assert dataset.party_id == enterprise.party_id
    assert [e.object_id for e in events(db, "dataplane:dataset:create")] == [dataset_id]


def test_other_parties_cannot_see_regulators_read_but_do_not_write(
    db, store, enterprise, other_enterprise, regulator
):
    owner = principal(db, enterprise)
    dataset_id = new_dataset(db, owner)
    version_id, job_id = add_csv(db, store, owner, dataset_id)
    rival, reg = principal(db, other_enterprise), principal(db, regulator)
    with db.read() as s:
        with pytest.raises(NotFound):
            dataplane.get_dataset(s, rival, dataset_id)
        with pytest.raises(NotFound):
            dataplane.get_version(s, rival, version_id)
        with pytest.raises(NotFound):
            services.get_scan(s, rival, job_id)
        assert (
            dataplane.list_datasets(s, rival, dataplane.DatasetQuery(), limit=10, offset=0)[1] == 0
        )
        assert dataplane.get_dataset(s, reg, dataset_id).id == dataset_id
        assert services.get_scan(s, reg, job_id).id == job_id
        _rows, total = dataplane.list_datasets(s, reg, dataplane.DatasetQuery(), limit=10, offset=0)
        assert total == 1
    with pytest.raises(Forbidden), db.write() as s:
        dataplane.update_dataset(s, reg, dataset_id, {"name": "改名"})
    with pytest.raises(Forbidden), db.write() as s:
        services.request_scan(s, reg, version_id, "full")


def test_update_dataset(db, enterprise):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    with pytest.raises(InvalidInput), db.write() as s:
        dataplane.update_dataset(s, who, dataset_id, {"name": "人口信息"})  # nothing changes
    with db.write() as s:
        dataset = dataplane.update_dataset(
            s, who, dataset_id, {"update_frequency": "monthly", "identifying_column": None}
        )
        assert dataset.update_frequency == "monthly"
    assert "update_frequency" in events(db, "dataplane:dataset:update")[0].summary


# ------------------------------------------------------------------------------------- versions


def test_versions_are_numbered_audited_and_queue_a_sample_scan(db, store, enterprise):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    _first, job1 = add_csv(db, store, who, dataset_id)
    _second, _job2 = add_csv(db, store, who, dataset_id, data=PEOPLE + b"x,y,z,w\n")
    with db.read() as s:
        rows, total = dataplane.list_versions(s, who, dataset_id, limit=10, offset=0)
        assert [v.number for v in rows] == [2, 1]
        assert total == 2
        assert rows[1].blob_sha256 == hashlib.sha256(PEOPLE).hexdigest()
        job = services.get_scan(s, who, job1)
        assert (job.status, job.mode, job.version_number) == ("queued", "sample", 1)
    assert len(events(db, "dataplane:version:create")) == 2
    assert len(events(db, "discovery:scan:request")) == 2
    with db.read() as s:
        assert verify_chain(s).ok


@pytest.mark.parametrize(
    ("data", "filename", "code"),
    [
        (b"", "empty.csv", "empty-file"),
        (b"a,b\n1,2\n", "notes.docx", "unsupported-format"),
        (b"a,b\n1,2\n", "macro.xlsm", "macro-workbook"),
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "image.csv", None),
    ],
)
def test_bad_files_are_refused_with_a_reason(db, store, enterprise, data, filename, code):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    blob = store.put_stream(io.BytesIO(data), max_bytes=10**6)

    def add() -> None:
        dataplane.check_readable(store, blob, filename)
        with db.write() as s:
            services.add_file_version(s, who, dataset_id, blob=blob, filename=filename)

    with pytest.raises(InvalidInput) as refused:
        add()
    if code:
        assert refused.value.code == code
    with db.read() as s:
        assert dataplane.list_versions(s, who, dataset_id, limit=5, offset=0)[1] == 0


def test_too_large_upload_keeps_nothing(store):
    with pytest.raises(BlobTooLarge):
        store.put_stream(io.BytesIO(b"x" * 2000), max_bytes=1000)


def test_database_version_is_scanned_and_its_url_sealed(db, enterprise, settings, tmp_path):
    import sqlite3

    source = tmp_path / "dept.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE residents (name TEXT, id_number TEXT)")
        conn.executemany(
            "INSERT INTO residents VALUES (?, ?)",
            [(f"居民{i}", make_resident_id("450102", date(1990, 5, 6), i)) for i in range(30)],
        )
    url = f"sqlite:///{source}"
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    table, schema = dataplane.check_database_source(url, "residents", None, allow_files=True)
    with pytest.raises(InvalidInput) as refused:
        dataplane.check_database_source(url, "residents", None, allow_files=False)
    assert refused.value.code == "sqlite-not-allowed"
    with pytest.raises(InvalidInput) as unknown:
        dataplane.check_database_source("oracle://u:p@h/db", "t", None, allow_files=True)
    assert unknown.value.code == "unsupported-database"
    with pytest.raises(InvalidInput) as garbage:
        dataplane.check_database_source("not a url", "t", None, allow_files=True)
    assert garbage.value.code == "bad-database-url"
    with pytest.raises(NotFound):
        dataplane.check_database_source(url, "missing", None, allow_files=True)
    with db.write() as s:
        _version, job = services.add_database_version(
            s, who, dataset_id, url=url, table=table, schema=schema, secret_key=settings.secret_key
        )
        job_id = job.id
    jobs.run_pending(db, settings)
    with db.read() as s:
        job = services.get_scan(s, who, job_id, with_report=True)
        assert job.status == "succeeded", job.error_message
        columns = {c["name"]: c for c in job.report["columns"]}
        assert columns["id_number"]["types"] == ["cn_resident_id"]

    # A URL with a password: sealed in the database, shown redacted, never in the audit trail.
    secret_url = "postgresql+psycopg://dept:hunter2secret@db.example.gov.cn/census"
    with db.write() as s:
        version, _job = services.add_database_version(
            s,
            who,
            dataset_id,
            url=secret_url,
            table="people",
            schema="public",
            secret_key=settings.secret_key,
        )
        version_id = version.id
    with db.read() as s:
        row = s.get(DatasetVersion, version_id)
        assert row.source_url_display == "postgresql+psycopg://dept:***@db.example.gov.cn/census"
        assert "hunter2secret" not in (row.source_url_sealed or "")
        assert row.source_url_sealed.startswith("v1:")
        assert "hunter2secret" not in dataplane.VersionPublic.of(row).model_dump_json()
        opened = dataplane.version_source(s, version_id, secret_key=settings.secret_key)
        assert opened.url == secret_url
        with pytest.raises(InvalidInput) as rotated:
            dataplane.version_source(s, version_id, secret_key="another-secret-key-" * 3)
        assert rotated.value.code == "source-sealed"
        dump = " ".join(str(v) for v in s.execute(text("SELECT * FROM audit_event")).all())
        assert "hunter2secret" not in dump


# -------------------------------------------------------------------------------------- uploads


def test_resumable_upload_in_chunks(db, store, enterprise, settings):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    digest = hashlib.sha256(PEOPLE).hexdigest()
    with db.write() as s:
        upload = dataplane.start_upload(
            s,
            who,
            store,
            dataset_id,
            filename="people.csv",
            size=len(PEOPLE),
            sha256=digest,
            max_bytes=settings.upload_max_bytes,
        )
        upload_id = upload.id
    assert dataplane.upload_offset(store, upload) == 0
    half = len(PEOPLE) // 2
    assert dataplane.append_chunk(store, upload, 0, PEOPLE[:half]) == half
    assert dataplane.append_chunk(store, upload, 0, PEOPLE[:half]) == half  # a retried chunk
    with pytest.raises(UploadConflict) as gap:
        dataplane.append_chunk(store, upload, half + 10, PEOPLE[half + 10 :])
    assert "resume from byte" in str(gap.value)
    with pytest.raises(Conflict):
        dataplane.seal_upload(store, upload)  # incomplete
    assert dataplane.append_chunk(store, upload, half, PEOPLE[half:]) == len(PEOPLE)
    blob = dataplane.seal_upload(store, upload)
    with db.write() as s:
        version, job = services.complete_upload(s, who, upload_id, blob)
        first = version.id
        assert job is not None
    # Finishing again (a lost answer, a retry) returns the same version and queues nothing.
    blob = dataplane.seal_upload(store, upload)
    with db.write() as s:
        version, job = services.complete_upload(s, who, upload_id, blob)
        assert (version.id, job) == (first, None)
    # The same bytes again: nothing to send, the upload starts complete.
    with db.write() as s:
        again = dataplane.start_upload(
            s,
            who,
            store,
            dataset_id,
            filename="copy.csv",
            size=len(PEOPLE),
            sha256=digest,
            max_bytes=settings.upload_max_bytes,
        )
    assert dataplane.upload_offset(store, again) == len(PEOPLE)


def test_a_declared_digest_does_not_hand_over_another_partys_file(
    db, store, enterprise, other_enterprise, settings
):
    """Digests are visible to cross-party readers: knowing one must not yield the file."""
    owner = principal(db, enterprise)
    stored = new_dataset(db, owner)
    digest = hashlib.sha256(PEOPLE).hexdigest()
    with db.write() as s:
        dataplane.add_file_version(
            s,
            owner,
            stored,
            blob=store.put_bytes(PEOPLE, max_bytes=settings.upload_max_bytes),
            filename="people.csv",
        )
    rival = principal(db, other_enterprise)
    own_dataset = new_dataset(db, rival, name="别人的")
    with db.write() as s:
        upload = dataplane.start_upload(
            s,
            rival,
            store,
            own_dataset,
            filename="people.csv",
            size=len(PEOPLE),
            sha256=digest,
            max_bytes=settings.upload_max_bytes,
        )
    assert dataplane.upload_offset(store, upload) == 0  # the bytes must be sent
    with pytest.raises(Conflict):
        dataplane.seal_upload(store, upload)  # nothing received: nothing to seal
    with db.read() as s:
        rival_versions = s.scalars(
            select(DatasetVersion).where(DatasetVersion.dataset_id == own_dataset)
        ).all()
    assert rival_versions == []
    # A wrong size is not an oracle either: the same answer as for any unknown file.
    with db.write() as s:
        odd = dataplane.start_upload(
            s,
            rival,
            store,
            own_dataset,
            filename="people.csv",
            size=len(PEOPLE) + 1,
            sha256=digest,
            max_bytes=settings.upload_max_bytes,
        )
    assert dataplane.upload_offset(store, odd) == 0


def test_upload_declarations_are_checked(db, store, enterprise, other_enterprise, settings):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)

    def start(**kw):
        args = {"filename": "a.csv", "size": 10, "sha256": "a" * 64, "max_bytes": 100}
        args.update(kw)
        with db.write() as s:
            return dataplane.start_upload(s, who, store, dataset_id, **args)

    with pytest.raises(BlobTooLarge):
        start(size=101)
    with pytest.raises(InvalidInput) as empty:
        start(size=0)
    assert empty.value.code == "empty-file"
    with pytest.raises(InvalidInput):
        start(sha256="not-a-digest")
    with pytest.raises(InvalidInput):
        start(filename="a.exe")
    upload = start()
    rival = principal(db, other_enterprise)
    with pytest.raises(BlobNotFound), db.read() as s:
        dataplane.get_upload(s, rival, upload.id)
    with db.write() as s:
        dataplane.abort_upload(s, who, store, upload.id)
    with db.read() as s:
        upload = dataplane.get_upload(s, who, upload.id)
    with pytest.raises(Conflict) as aborted:
        dataplane.append_chunk(store, upload, 0, b"0123456789")
    assert aborted.value.code == "upload-aborted"


def test_checksum_mismatch_discards_the_upload(db, store, enterprise):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    with db.write() as s:
        upload = dataplane.start_upload(
            s, who, store, dataset_id, filename="a.csv", size=8, sha256="b" * 64, max_bytes=100
        )
    dataplane.append_chunk(store, upload, 0, b"a,b\n1,2\n")
    with pytest.raises(InvalidInput) as mismatch:
        dataplane.seal_upload(store, upload)
    assert mismatch.value.code == "upload-checksum-mismatch"


# ---------------------------------------------------------------------------------------- scans


def test_scan_runs_and_reports_the_resident_id_column(db, store, enterprise, settings):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who, domain="public_administration")
    _version_id, job_id = add_csv(db, store, who, dataset_id)
    assert jobs.run_pending(db, settings, store) == 1
    with db.read() as s:
        job = services.get_scan(s, who, job_id, with_report=True)
        assert job.status == ScanStatus.SUCCEEDED
        assert job.rows_done == job.rows_total == 60
        assert job.grade == "general"
        columns = {c["name"]: c for c in job.report["columns"]}
        assert columns["身份证号"]["types"] == ["cn_resident_id"]
        assert columns["身份证号"]["sensitive"] is True
        assert columns["身份证号"]["distinct_values"] == 60
        assert job.report["metadata"]["grading"]["domain"] == "public_administration"
    actions = [e.action for e in events(db, "discovery:scan:start")] + [
        e.action for e in events(db, "discovery:scan:succeed")
    ]
    assert actions == ["discovery:scan:start", "discovery:scan:succeed"]


def test_request_cancel_and_force_cancel(db, store, enterprise, operator, other_enterprise):
    regulator_admin = make_actor(db, PartyKind.REGULATOR, roles=("admin",))
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    version_id, sample_job = add_csv(db, store, who, dataset_id)
    with db.write() as s:
        full = services.request_scan(s, who, version_id, "full").id
    with pytest.raises(Conflict) as twice, db.write() as s:
        services.request_scan(s, who, version_id, "full")
    assert twice.value.code == "scan-active"
    with pytest.raises(InvalidInput), db.write() as s:
        services.request_scan(s, who, version_id, "everything")
    with db.write() as s:
        assert services.cancel_scan(s, who, sample_job).status == ScanStatus.CANCELLED
    with pytest.raises(Conflict), db.write() as s:
        services.cancel_scan(s, who, sample_job)
    # Force-cancel: a reason is required; another party's admin does not even see the job; the
    # exchange operator's admin (a platform administrator) may.
    with pytest.raises(InvalidInput), db.write() as s:
        services.force_cancel_scan(s, principal(db, operator), full, "")
    with pytest.raises(NotFound), db.write() as s:
        services.force_cancel_scan(s, principal(db, other_enterprise), full, "查看")
    with pytest.raises(Forbidden), db.write() as s:  # regulators read across parties, no more
        services.force_cancel_scan(s, principal(db, regulator_admin), full, "查看")
    with db.write() as s:
        job = services.force_cancel_scan(s, principal(db, operator), full, "运行器故障")
        assert job.status == ScanStatus.CANCELLED
        assert job.error_code == "force-cancelled"
    forced = events(db, "discovery:scan:force-cancel")
    assert forced[0].reasons == ["运行器故障"]
    assert forced[0].actor_username == "exchange.admin"


# -------------------------------------------------------------------------------------- reviews


def test_reviews_apply_to_later_versions_and_change_the_reviewed_view(
    db, store, enterprise, other_enterprise, settings
):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    _v1, job1 = add_csv(db, store, who, dataset_id)
    jobs.run_pending(db, settings, store)
    with pytest.raises(InvalidInput) as no_note, db.write() as s:
        services.review_detection(
            s,
            who,
            dataset_id,
            column="身份证号",
            entity_type="cn_resident_id",
            decision="dismissed",
            scan_job_id=job1,
        )
    assert no_note.value.field == "note"
    with pytest.raises(InvalidInput), db.write() as s:
        services.review_detection(
            s,
            who,
            dataset_id,
            column="城市",
            entity_type="cn_resident_id",
            decision="confirmed",
            scan_job_id=job1,
        )
    with pytest.raises(NotFound), db.write() as s:
        services.review_detection(
            s,
            principal(db, other_enterprise),
            dataset_id,
            column="身份证号",
            entity_type="cn_resident_id",
            decision="confirmed",
        )
    with db.write() as s:
        services.review_detection(
            s,
            who,
            dataset_id,
            column="手机号",
            entity_type="cn_mobile",
            decision="confirmed",
            scan_job_id=job1,
        )
        services.review_detection(
            s,
            who,
            dataset_id,
            column="身份证号",
            entity_type="cn_resident_id",
            decision="dismissed",
            note="测试数据，非真实身份证号",
            scan_job_id=job1,
        )
    # A later version: its report shows the decisions made on version 1.
    _v2, job2 = add_csv(db, store, who, dataset_id, data=PEOPLE + "补充,,,\n".encode())
    jobs.run_pending(db, settings, store)
    with db.read() as s:
        reviewed = services.reviewed_report(s, who, job2)
    columns = {c.name: c for c in reviewed.view.columns}
    resident = columns["身份证号"]
    assert resident.sensitive_as_scanned and not resident.sensitive
    assert resident.detections[0].dismissed
    assert resident.detections[0].review.decided_by == enterprise.username
    assert resident.detections[0].review.version_number == 1
    assert columns["手机号"].detections[0].confirmed
    assert reviewed.view.sensitive_columns == []
    # The grade is recomputed without the dismissed detection: no sensitive-PI reason any more.
    assert reviewed.grade_after_review is not None
    assert not reviewed.grade_after_review.sensitive
    volume = [r for r in reviewed.grade_after_review.reasons if r.rule == "NDSR-28-pi-volume"]
    assert volume[0].params["individuals"] == 60  # the mobile column still identifies people
    assert reviewed.grade_as_scanned.sensitive
    assert len(events(db, "discovery:detection:dismiss")) == 1
    assert events(db, "discovery:detection:dismiss")[0].reasons == ["测试数据，非真实身份证号"]
    # Changing one's mind replaces the decision (the audit trail keeps both).
    with db.write() as s:
        services.review_detection(
            s,
            who,
            dataset_id,
            column="身份证号",
            entity_type="cn_resident_id",
            decision="confirmed",
        )
    with db.read() as s:
        decided = {
            (r.column, r.entity_type): r.decision for r in services.list_reviews(s, who, dataset_id)
        }
    assert decided[("身份证号", "cn_resident_id")] == "confirmed"
    assert len(events(db, "discovery:detection:confirm")) == 2


def test_runner_stores_scans_of_a_dismissed_column_with_the_decision_in_its_metadata(
    db, store, enterprise, settings
):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    add_csv(db, store, who, dataset_id)
    with db.write() as s:
        services.review_detection(
            s,
            who,
            dataset_id,
            column="手机号",
            entity_type="cn_mobile",
            decision="dismissed",
            note="订单号",
        )
    with db.write() as s:
        claimed = services.claim_next(s, "test-runner")
    assert claimed.metadata["dismissed"] == [["手机号", "cn_mobile"]]
    assert claimed.metadata["domain"] == "other"


def test_sweep_rules_on_the_database(db, store, enterprise, settings):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    _v, job_id = add_csv(db, store, who, dataset_id)
    limits = jobs.timeouts(settings)
    later = utcnow() + limits.queue_timeout + timedelta(seconds=1)
    with db.write() as s:
        assert services.sweep(s, limits, now=later) == 1
    with db.read() as s:
        job = s.get(ScanJob, job_id)
        assert (job.status, job.error_code) == ("failed", "expire")


def test_unfinished_uploads_expire(db, store, enterprise):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    with db.write() as s:
        upload = dataplane.start_upload(
            s, who, store, dataset_id, filename="a.csv", size=8, sha256="e" * 64, max_bytes=100
        )
    dataplane.append_chunk(store, upload, 0, b"a,b\n")
    with db.write() as s:
        assert dataplane.expire_uploads(s, store, older_than=timedelta(hours=1)) == 0
    with db.write() as s:
        assert dataplane.expire_uploads(s, store, older_than=timedelta(seconds=-1)) == 1
    with db.read() as s:
        assert dataplane.get_upload(s, who, upload.id).aborted_at is not None
    with pytest.raises(BlobNotFound):
        store.get_upload(upload.id)
    assert events(db, "dataplane:upload:abort")[0].actor_username == "upload-sweep"


# ---------------------------------------------------------------------------- de-identification

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛")
RESIDENTS = (
    "姓名,身份证号,手机号,城市,年龄\n"
    + "".join(
        f"{SURNAMES[i % 20]}{GIVEN[i * 7 % 15]},"
        f"{make_resident_id('450102', date(1970 + i % 30, 1 + i % 12, 1 + i % 28), i)},"
        f"139{i:08d},南宁,{20 + i % 50}\n"
        for i in range(80)
    )
).encode()


def make_custodian(db, *, verified=True):
    """A data custodian (a service firm whose role is custody) with one admin."""
    from factories import PASSWORD, Actor, new_code

    from datafactor.identity import PartyApplication, ServiceRole, create_user_as_operator
    from datafactor.identity import register_party as register

    with db.write() as s:
        party = register(
            s,
            None,
            PartyApplication(
                kind=PartyKind.SERVICE_FIRM,
                name="广西数据托管中心",
                name_en="Guangxi Data Custody",
                code=new_code(PartyKind.SERVICE_FIRM),
                service_role=ServiceRole.CUSTODIAN,
            ),
            today=date(2026, 11, 1),
            verified=verified,
        )
        user = create_user_as_operator(
            s,
            party.id,
            username=f"custody.{party.id[:6]}",
            display_name="托管",
            password=PASSWORD,
            roles=["staff"],
        )
        return Actor(party.id, user.id, user.username, PASSWORD, "service_firm")


def scanned_version(db, store, settings, who, data=RESIDENTS):
    dataset_id = new_dataset(db, who)
    version_id, _job = add_csv(db, store, who, dataset_id, data=data)
    jobs.run_pending(db, settings, store)
    return dataset_id, version_id


def deidentify(db, store, settings, who, version_id, **request):
    from datafactor.discovery.api import start_deidentification

    return start_deidentification(
        db, who, store, settings, version_id, services.DeidentificationRequest(**request)
    )


def rows_of(store, version):
    table = dataplane.open_table(
        lambda: store.open(version.blob_sha256), format=version.format, name=version.filename
    )
    return [row for batch in table.batches(10_000) for row in batch.to_pylist()]


def test_publish_profile_makes_a_version_without_raw_resident_ids(db, store, settings, enterprise):
    from datafactor import ledger
    from datafactor.discovery.models import DeidentificationJob

    who = principal(db, enterprise)
    dataset_id, version_id = scanned_version(db, store, settings, who)
    job = deidentify(db, store, settings, who, version_id, profile="publish")
    assert (job.status, job.profile) == ("queued", "publish")
    assert jobs.run_pending(db, settings, store) == 2  # the de-identification, then its scan
    with db.read() as s:
        done = services.get_deidentification(s, who, job.id, with_report=True)
        assert done.status == ScanStatus.SUCCEEDED
        version = s.get(DatasetVersion, done.result_version_id)
        assert (version.dataset_id, version.number, version.format) == (dataset_id, 2, "parquet")
        assert version.blob_sha256 == done.result_sha256
        # Lineage: the source version, the policy's digest, never a salt.
        assert version.derived_from_id == version_id
        assert version.derivation == {
            "kind": "deidentification",
            "job_id": job.id,
            "source_dataset_id": dataset_id,
            "source_number": 1,
            "policy_name": "publish",
            "policy_digest": done.policy_digest,
        }
        assert "salt" not in str(done.policy) and "salt" not in str(done.report)
        techniques = {c["name"]: c["technique"] for c in done.report["columns"]}
        assert techniques == {
            "姓名": "drop",
            "身份证号": "generalise",
            "手机号": "drop",
            "城市": "keep",
            "年龄": "keep",
        }
        assert done.report["rows"] == 80
        assert services.derivation_of(s, who, version.id).id == job.id
        # The scan queued on the new version finds no resident ID, mobile or name any more.
        scan = s.get(ScanJob, done.scan_job_id)
        assert (scan.version_id, scan.status, scan.mode) == (version.id, "succeeded", "sample")
        found = {c["name"]: c["types"] for c in scan.report["columns"]}
        assert found == {"身份证号": [], "城市": [], "年龄": []}
        assert scan.requested_by_name == enterprise.username
        # The derivation is in the public ledger: ids and digests only.
        entry = ledger.get_entry(s, ledger.tree_size(s) - 1).event()
        assert entry["kind"] == "discovery.version.deidentified"
        payload = entry["payload"]
        assert payload["policy_digest"] == done.policy_digest
        assert payload["sha256"] == version.blob_sha256
        assert payload["source_version_id"] == version_id
        assert payload["techniques"] == {"drop": 2, "generalise": 1, "keep": 2}
        assert "南宁" not in json_dumps(entry) and "450102" not in json_dumps(entry)
        assert s.scalar(select(func.count()).select_from(DeidentificationJob)) == 1
    values = rows_of(store, version)
    assert {r["身份证号"] for r in values} <= {f"45****{y}" for y in range(1970, 2000)}
    assert all(set(r) == {"身份证号", "城市", "年龄"} for r in values)
    for action in ("request", "start", "succeed"):
        assert len(events(db, f"discovery:deidentification:{action}")) == 1
    created = events(db, "dataplane:version:create")[-1]
    assert created.actor_username == "scan-runner" and "derived from version" in created.summary
    with db.read() as s:
        assert verify_chain(s).ok


def json_dumps(value):
    import json

    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize(
    ("policy", "column", "code"),
    [
        ({"columns": {"身份证": "drop"}}, "身份证", "unknown-column"),
        ({"columns": {"手机号": {"technique": "mask", "keep_first": 99}}}, "手机号", "bad-policy"),
        ({"columns": {"年龄": {"technique": "blur"}}}, "年龄", "bad-policy"),
        ({"columns": {"城市": {"technique": "hash", "salt": "x"}}}, "城市", "bad-policy"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_column_and_nothing_changes(
    db, store, settings, enterprise, policy, column, code
):
    from datafactor.discovery.models import DeidentificationJob

    who = principal(db, enterprise)
    _dataset_id, version_id = scanned_version(db, store, settings, who)
    with db.read() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(InvalidInput) as refused:
        deidentify(db, store, settings, who, version_id, policy=policy)
    assert column in str(refused.value)
    assert refused.value.code == code
    assert refused.value.field.startswith(f"columns.{column}")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(DeidentificationJob)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before
        assert s.scalar(select(func.count()).select_from(DatasetVersion)) == 1


def test_requests_that_cannot_run_are_refused(db, store, settings, enterprise, other_enterprise):
    who = principal(db, enterprise)
    dataset_id = new_dataset(db, who)
    version_id, _job = add_csv(db, store, who, dataset_id, data=RESIDENTS)
    # Not scanned yet: a profile has nothing to go on, a policy naming columns does.
    with pytest.raises(Conflict) as unscanned:
        deidentify(db, store, settings, who, version_id, profile="publish")
    assert unscanned.value.code == "needs-scan"
    assert deidentify(db, store, settings, who, version_id, policy={"columns": {"城市": "keep"}})
    jobs.run_pending(db, settings, store)
    with pytest.raises(InvalidInput) as neither:
        deidentify(db, store, settings, who, version_id)
    assert neither.value.code == "profile-or-policy"
    with pytest.raises(InvalidInput) as no_trustee:
        deidentify(db, store, settings, who, version_id, profile="share-with-trustee")
    assert no_trustee.value.code == "needs-trustee"
    with pytest.raises(NotFound):
        deidentify(db, store, settings, who, version_id, profile="everything")
    # Another enterprise may not hold the key, nor may a party that does not exist.
    for stranger in (other_enterprise.party_id, "no-such-party"):
        with pytest.raises(InvalidInput) as bad:
            deidentify(
                db, store, settings, who, version_id, profile="share-with-trustee", trustee=stranger
            )
        assert bad.value.code == "bad-trustee"
    # Only the holder de-identifies; others do not even see the version.
    with pytest.raises(NotFound):
        deidentify(
            db, store, settings, principal(db, other_enterprise), version_id, profile="publish"
        )
    # The same request twice while the first is queued.
    deidentify(db, store, settings, who, version_id, profile="display")
    with pytest.raises(Conflict) as twice:
        deidentify(db, store, settings, who, version_id, profile="display")
    assert twice.value.code == "deidentification-active"


def test_tokenise_for_a_custodian_then_only_the_custodian_reverses(
    db, store, settings, enterprise, other_enterprise
):
    from datafactor.discovery import trustee_keys
    from datafactor.discovery.models import Detokenisation

    custodian = make_custodian(db)
    unverified = make_custodian(db, verified=False)
    who = principal(db, enterprise)
    _dataset_id, version_id = scanned_version(db, store, settings, who)
    with pytest.raises(InvalidInput) as pending:
        deidentify(
            db,
            store,
            settings,
            who,
            version_id,
            profile="share-with-trustee",
            trustee=unverified.party_id,
        )
    assert pending.value.code == "bad-trustee"
    job = deidentify(
        db,
        store,
        settings,
        who,
        version_id,
        profile="share-with-trustee",
        trustee=custodian.party_id,
        new_dataset_name="人口信息（假名化）",
    )
    assert job.trustee == custodian.party_id
    jobs.run_pending(db, settings, store)
    with db.read() as s:
        done = services.get_deidentification(s, who, job.id, with_report=True)
        new_version = s.get(DatasetVersion, done.result_version_id)
        target = dataplane.get_dataset(s, who, done.target_dataset_id)
    assert target.name == "人口信息（假名化）" and new_version.number == 1
    rows = rows_of(store, new_version)
    tokens = [r["身份证号"] for r in rows[:5]]
    assert all(t.startswith("tk1.") for t in tokens)
    originals = [line.split(",")[1] for line in RESIDENTS.decode().splitlines()[1:6]]
    keys = trustee_keys(settings)

    def reverse(actor, column="身份证号", values=tokens, **limits):
        with db.write() as s:
            return services.detokenise_values(
                s,
                principal(db, actor),
                keys,
                new_version.id,
                column=column,
                tokens=values,
                max_per_call=limits.get("max_per_call", 1000),
                max_per_hour=limits.get("max_per_hour", 20_000),
            )

    assert reverse(custodian) == originals
    # The holder sees the version but is not the trustee; other parties do not see it at all.
    with pytest.raises(Forbidden) as holder:
        reverse(enterprise)
    assert holder.value.code == "not-trustee"
    with pytest.raises(Forbidden) as supervisor:  # reads across parties, holds no key
        reverse(make_actor(db, PartyKind.REGULATOR, roles=("staff",)))
    assert supervisor.value.code == "not-trustee"
    with pytest.raises(NotFound):
        reverse(other_enterprise)
    with pytest.raises(InvalidInput) as column:
        reverse(custodian, column="城市")
    assert column.value.code == "not-tokenised"
    with pytest.raises(InvalidInput) as many:
        reverse(custodian, values=tokens * 3, max_per_call=10)
    assert many.value.code == "token-count"
    with pytest.raises(InvalidInput) as altered:
        reverse(custodian, values=[tokens[0][:-2] + "AA"])
    assert altered.value.code == "bad-token"
    with pytest.raises(services.TooManyTokens):
        reverse(custodian, max_per_hour=8)  # 5 already reversed this hour
    # Every reversal is audited for the trustee and for the holder: count, never values.
    reversed_events = events(db, "discovery:token:reverse")
    assert {e.party_id for e in reversed_events} == {custodian.party_id, enterprise.party_id}
    assert all("5 values of column 身份证号" in e.summary for e in reversed_events)
    assert not any(originals[0] in e.summary or tokens[0] in e.summary for e in reversed_events)
    with db.read() as s:
        assert [r.count for r in s.scalars(select(Detokenisation))] == [5]


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_concurrent_reversals_of_one_trustee_pass_the_hourly_limit_exactly(
    db, store, settings, enterprise
):
    """Two reversals of the same trustee at the same moment: only as many values as the hourly
    limit allows are reversed (the second waits for the first and then counts it)."""
    import contextlib
    import threading

    from datafactor.discovery import TrusteeKeys, trustee_keys

    custodian = make_custodian(db)
    who = principal(db, enterprise)
    _dataset_id, version_id = scanned_version(db, store, settings, who)
    job = deidentify(
        db,
        store,
        settings,
        who,
        version_id,
        profile="share-with-trustee",
        trustee=custodian.party_id,
    )
    jobs.run_pending(db, settings, store)
    with db.read() as s:
        new_version = s.get(
            DatasetVersion, services.get_deidentification(s, who, job.id).result_version_id
        )
    tokens = [r["身份证号"] for r in rows_of(store, new_version)[:5]]
    # Both requests meet here after counting and before storing their reversal: without a lock
    # on the party both would have counted nothing. With it, the second never gets this far
    # while the first holds the lock, and the first goes on once nobody else arrives.
    met = threading.Barrier(2)

    class MeetingKeys(TrusteeKeys):
        def has(self, party_id, key_id):
            with contextlib.suppress(threading.BrokenBarrierError):
                met.wait(timeout=3)
            return super().has(party_id, key_id)

    keys = MeetingKeys(trustee_keys(settings).directory)
    actor = principal(db, custodian)
    with db.write() as s:  # the party reversed before, more than an hour ago
        services.detokenise_values(
            s,
            actor,
            trustee_keys(settings),
            new_version.id,
            column="身份证号",
            tokens=tokens,
            max_per_call=1000,
            max_per_hour=len(tokens),
            now=utcnow() - timedelta(hours=2),
        )
    outcomes: list[object] = []

    def reverse():
        try:
            with db.write() as s:
                outcomes.append(
                    services.detokenise_values(
                        s,
                        actor,
                        keys,
                        new_version.id,
                        column="身份证号",
                        tokens=tokens,
                        max_per_call=1000,
                        max_per_hour=len(tokens),
                    )
                )
        except services.TooManyTokens as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=reverse) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["TooManyTokens", "list"]
    with db.read() as s:
        from datafactor.discovery.models import Detokenisation, DetokenisationQuota

        assert [r.count for r in s.scalars(select(Detokenisation))] == [len(tokens)] * 2
        assert s.get(DetokenisationQuota, custodian.party_id).reversed_total == len(tokens) * 2


def test_cancel_and_sweep_of_deidentifications(db, store, settings, enterprise, operator):
    from datafactor.discovery.models import DeidentificationJob

    who = principal(db, enterprise)
    _dataset_id, version_id = scanned_version(db, store, settings, who)
    first = deidentify(db, store, settings, who, version_id, profile="publish")
    with db.write() as s:
        assert services.cancel_deidentification(s, who, first.id).status == "cancelled"
    with pytest.raises(Conflict), db.write() as s:
        services.cancel_deidentification(s, who, first.id)
    second = deidentify(db, store, settings, who, version_id, profile="display")
    with db.write() as s:
        claimed = services.claim_next_deidentification(s, "stalled-runner")
    assert claimed.job_id == second.id and claimed.policy["name"] == "display"
    limits = jobs.timeouts(settings)
    later = utcnow() + limits.heartbeat_stale + timedelta(seconds=1)
    with db.write() as s:
        assert services.sweep(s, limits, now=later, kind=services.DEIDENTIFICATIONS) == 1
    with db.read() as s:
        assert s.get(DeidentificationJob, second.id).status == "queued"
    with db.write() as s:
        forced = services.force_cancel_deidentification(
            s, principal(db, operator), second.id, "运行器故障"
        )
        assert forced.status == "cancelled"
    assert events(db, "discovery:deidentification:force-cancel")[0].reasons == ["运行器故障"]
    assert jobs.run_pending(db, settings, store) == 0


def test_a_requeued_deidentification_waits_its_queue_timeout_from_the_requeue(
    db, store, settings, enterprise
):
    from datafactor.discovery.models import DeidentificationJob

    who = principal(db, enterprise)
    _dataset_id, version_id = scanned_version(db, store, settings, who)
    job = deidentify(db, store, settings, who, version_id, profile="publish")
    limits = jobs.timeouts(settings)
    with db.write() as s:
        row = s.get(DeidentificationJob, job.id)
        row.requested_at = row.queued_at = utcnow() - limits.queue_timeout * 2
    with db.write() as s:
        services.claim_next_deidentification(s, "stalled-runner")
    back_at = utcnow() + limits.heartbeat_stale + timedelta(seconds=1)
    kind = services.DEIDENTIFICATIONS
    with db.write() as s:
        assert services.sweep(s, limits, now=back_at, kind=kind) == 1
    with db.write() as s:
        assert services.sweep(s, limits, now=back_at + timedelta(minutes=1), kind=kind) == 0
    with db.read() as s:
        assert s.get(DeidentificationJob, job.id).status == "queued"
    # Another runner takes it and finishes it.
    assert jobs.run_pending(db, settings, store) >= 1
    with db.read() as s:
        assert s.get(DeidentificationJob, job.id).status == "succeeded"


def test_a_deidentification_that_cannot_store_its_output_fails_saying_why(
    db, store, settings, enterprise
):
    who = principal(db, enterprise)
    _dataset_id, version_id = scanned_version(db, store, settings, who)
    job = deidentify(db, store, settings, who, version_id, profile="display", format="csv")
    tight = settings.model_copy(update={"upload_max_bytes": 200})
    assert jobs.run_pending(db, tight, store) == 1
    with db.read() as s:
        failed = services.get_deidentification(s, who, job.id)
        assert failed.status == ScanStatus.FAILED
        assert failed.error_code == "too-large"
        assert failed.result_version_id is None
        assert s.scalar(select(func.count()).select_from(DatasetVersion)) == 1
    assert len(events(db, "discovery:deidentification:fail")) == 1
