"""Census use cases on SQLite and PostgreSQL: starting, running, resuming after an interruption,
failures, permissions and visibility, the current inventory and the province's roll-up."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from census_support import LICENCES, RESIDENTS, ROWS, TABLES, VIEWS
from factories import PASSWORD, Actor, make_actor
from sqlalchemy import select

from datafactor.audit import AuditEvent, verify_chain
from datafactor.census import jobs, services, source
from datafactor.census.domain import CensusStatus, StopReason, TableStatus
from datafactor.census.models import CensusRun, CensusTable
from datafactor.dataplane import SourceUnavailable
from datafactor.db import utcnow
from datafactor.discovery import scan_source
from datafactor.errors import Conflict, Forbidden, InvalidInput, NotFound
from datafactor.identity import PartyKind, create_user_as_operator
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for

ALL = len(TABLES) + len(VIEWS)
PG_URL = "postgresql+psycopg://dept:S3cret-pw@127.0.0.1:1/hr"  # nothing listens on port 1


def principal(db, actor):
    with db.read() as s:
        return principal_for(
            s.get(User, actor.user_id), s.get(Party, actor.party_id), via="session"
        )


def start(db, settings, who, url, **kw):
    with db.write() as s:
        return services.start_census(
            s,
            who,
            services.CensusRequest(url=url, **kw),
            secret_key=settings.secret_key,
            allow_sqlite=True,
            default_sample_rows=settings.census_sample_rows,
        ).id


def get(db, run_id):
    with db.read() as s:
        return s.get(CensusRun, run_id)


def entries(db, run_id):
    with db.read() as s:
        return list(
            s.scalars(
                select(CensusTable)
                .where(CensusTable.run_id == run_id)
                .order_by(CensusTable.position)
            )
        )


def events(db, action):
    with db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


class CountingScan:
    """Stands in for ``scan_source`` in the runner: counts the tables scanned to the end, and
    can kill the process (an exception nothing catches) before the Nth scan starts."""

    def __init__(self, kill_before: int | None = None) -> None:
        self.kill_before = kill_before
        self.started = 0
        self.finished: list[str] = []

    def __call__(self, table, **kw):
        self.started += 1
        if self.kill_before is not None and self.started == self.kill_before:
            raise Killed
        report = scan_source(table, **kw)
        self.finished.append(table.name)
        return report


class Killed(BaseException):
    """The process died (nothing in the runner catches a BaseException that is not an Exception)."""


# ------------------------------------------------------------------------------------- happy path


def test_a_department_censuses_its_database(db, settings, department, department_url):
    who = principal(db, department)
    run_id = start(db, settings, who, department_url)
    run = get(db, run_id)
    assert (run.status, run.party_id, run.started_by_party_id) == (
        "queued",
        department.party_id,
        department.party_id,
    )
    assert run.sample_rows == settings.census_sample_rows
    assert jobs.run_pending(db, settings) == 1

    run = get(db, run_id)
    assert run.status == CensusStatus.SUCCEEDED
    assert (run.tables_total, run.tables_done, run.tables_failed, run.schemas_total) == (
        ALL,
        ALL,
        0,
        1,
    )
    assert run.rows_counted == ROWS
    rows = {e.table_name: e for e in entries(db, run_id)}
    assert list(rows) == [*TABLES, *VIEWS]  # tables by name, then views
    residents = rows["residents"]
    assert residents.status == TableStatus.DONE
    assert (residents.row_count, residents.column_count) == (RESIDENTS, 5)
    assert residents.pi_types == ["cn_resident_id", "cn_mobile"]
    assert residents.has_pi and residents.sensitive
    assert residents.grade == "general" and residents.quality_score is not None
    assert residents.rows_scanned == RESIDENTS and residents.individuals == RESIDENTS
    columns = {c["name"]: c for c in residents.columns}
    assert columns["id_number"] == {
        "name": "id_number",
        "type": "TEXT",
        "nullable": True,
        "entity_types": ["cn_resident_id"],
        "sensitive": True,
    }
    assert columns["name"]["nullable"] is False
    # An organisation's credit code is found but is not personal information.
    licences = rows["licences"]
    assert licences.pi_types == [] and not licences.has_pi
    assert {c["name"]: c["entity_types"] for c in licences.columns}["uscc"] == ["cn_uscc"]
    assert rows["empty_log"].row_count == 0 and rows["empty_log"].status == TableStatus.DONE
    assert rows["v_resident_city"].kind == "view" and rows["v_resident_city"].row_count == 2
    assert rows["事项 办理"].row_count == 7
    assert all(e.reads == 1 and e.current for e in rows.values())

    with db.read() as s:
        totals = services.run_totals(s, who, run_id)
        assert verify_chain(s).ok
    assert (totals.tables, totals.tables_read, totals.pi_tables, totals.sensitive_tables) == (
        ALL,
        ALL,
        1,
        1,
    )
    assert totals.rows == run.rows_counted
    assert totals.columns == 5 + 3 + 2 + 2 + 2
    assert totals.grades == {"general": ALL, "important": 0, "core": 0}
    for action in ("request", "start", "inventory", "succeed"):
        assert len(events(db, f"census:run:{action}")) == 1, action
    assert "5 tables and views in 1 schemas" in events(db, "census:run:inventory")[0].summary


def test_the_url_is_sealed_and_never_shown(db, settings, department):
    who = principal(db, department)
    run_id = start(db, settings, who, PG_URL, schema="public")
    run = get(db, run_id)
    assert run.source_url == "postgresql+psycopg://dept:***@127.0.0.1:1/hr"
    assert run.source_key == "postgresql://127.0.0.1:1/hr"
    assert "S3cret" not in run.source_url_sealed
    assert source.unseal(settings.secret_key, run.source_url_sealed) == PG_URL
    with pytest.raises(InvalidInput) as caught:
        source.unseal("another-secret-key-another-secret-key", run.source_url_sealed)
    assert caught.value.code == "source-sealed"
    with db.read() as s:
        assert all("S3cret" not in e.summary for e in s.scalars(select(AuditEvent)))


def test_an_unreachable_database_is_refused_with_its_password_hidden(settings):
    with pytest.raises(SourceUnavailable) as caught:
        services.check_source(PG_URL, allow_sqlite=False, connect_timeout=2)
    message = str(caught.value)
    assert "postgresql+psycopg://dept:***@127.0.0.1:1/hr" in message
    assert "S3cret" not in message and "S3cret" not in repr(caught.value.params)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("not a url", "bad-database-url"),
        ("oracle://u:p@h/db", "unsupported-database"),
        ("sqlite:////no/such/file.db", "no-such-file"),
        ("sqlite://", "no-such-file"),
    ],
)
def test_bad_urls_are_refused_before_connecting(url, code):
    with pytest.raises(InvalidInput) as caught:
        source.check_url(url, allow_sqlite=True)
    assert caught.value.code == code
    assert caught.value.field == "url"


def test_sqlite_sources_need_the_operators_consent(department_url):
    with pytest.raises(InvalidInput) as caught:
        source.check_url(department_url, allow_sqlite=False)
    assert caught.value.code == "sqlite-not-allowed"


def test_a_missing_schema_is_refused(department_url):
    with pytest.raises(InvalidInput) as caught:
        services.check_source(department_url, allow_sqlite=True, schema="hr")
    assert caught.value.field == "schema"


# ---------------------------------------------------------------------------------------- resume


def test_a_killed_run_resumes_without_reading_a_table_twice(
    db, settings, department, department_url, monkeypatch
):
    who = principal(db, department)
    run_id = start(db, settings, who, department_url)
    first = CountingScan(kill_before=3)
    monkeypatch.setattr(jobs, "scan_source", first)
    with pytest.raises(Killed):
        jobs.CensusRunner(db, settings, runner_id="runner-a").run_pending()
    assert first.finished == ["empty_log", "licences"]
    run = get(db, run_id)
    assert (run.status, run.runner_id, run.tables_done) == ("running", "runner-a", 2)
    assert run.rows_counted == LICENCES

    # Its heartbeat goes stale: the sweep puts it back in the queue, and another runner resumes.
    limits = jobs.timeouts(settings)
    with db.write() as s:
        assert services.sweep(s, limits, now=utcnow() + limits.heartbeat_stale * 2) == 1
    assert get(db, run_id).status == "queued"
    second = CountingScan()
    monkeypatch.setattr(jobs, "scan_source", second)
    assert jobs.CensusRunner(db, settings, runner_id="runner-b").run_pending() == 1
    assert second.finished == ["residents", "事项 办理", "v_resident_city"]
    assert sorted(first.finished + second.finished) == sorted([*TABLES, *VIEWS])

    run = get(db, run_id)
    assert (run.status, run.attempts, run.tables_done, run.tables_failed) == (
        "succeeded",
        2,
        ALL,
        0,
    )
    assert run.rows_counted == ROWS
    assert [e.reads for e in entries(db, run_id)] == [1] * ALL
    with db.read() as s:
        totals = services.run_totals(s, who, run_id)
    assert (totals.tables, totals.rows, totals.pi_tables) == (ALL, run.rows_counted, 1)
    assert len(events(db, "census:run:requeue")) == 1
    assert len(events(db, "census:run:inventory")) == 1  # listed once, not again on resume


def test_a_cancelled_run_resumes_where_it_stopped(
    db, settings, department, department_url, monkeypatch
):
    settings.scan_heartbeat_seconds = 0.05
    who = principal(db, department)
    run_id = start(db, settings, who, department_url)
    seen: list[str] = []

    def cancel_at_residents(table, **kw):
        if table.name == "residents":
            with db.write() as s:
                services.cancel_run(s, who, run_id)
            # Wait for the heartbeat to learn of it: the scan then stops before reading a row.
            for _ in range(200):
                if kw["should_cancel"]():
                    break
                import time

                time.sleep(0.01)
        report = scan_source(table, **kw)
        seen.append(table.name)
        return report

    monkeypatch.setattr(jobs, "scan_source", cancel_at_residents)
    jobs.run_pending(db, settings)
    run = get(db, run_id)
    assert run.status == CensusStatus.CANCELLED
    assert seen == ["empty_log", "licences"]
    assert run.tables_done == 2
    assert len(events(db, "census:run:cancel-request")) == 1
    assert len(events(db, "census:run:cancelled")) == 1

    with db.write() as s:
        services.resume_run(s, who, run_id, secret_key=settings.secret_key, allow_sqlite=True)
    assert get(db, run_id).status == "queued"
    seen.clear()
    monkeypatch.setattr(jobs, "scan_source", CountingScan())
    jobs.run_pending(db, settings)
    run = get(db, run_id)
    assert run.status == "succeeded"
    assert [e.reads for e in entries(db, run_id)] == [1] * ALL
    assert len(events(db, "census:run:resume")) == 1

    with db.write() as s, pytest.raises(Conflict) as caught:
        services.resume_run(s, who, run_id, secret_key=settings.secret_key, allow_sqlite=True)
    assert caught.value.code == "census-not-resumable"


def test_a_lost_database_fails_the_run_which_resumes_with_new_credentials(
    db, settings, department, tmp_path
):
    path = tmp_path / "dept.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE a (x TEXT)")
        conn.execute("CREATE TABLE b (y TEXT)")
    who = principal(db, department)
    run_id = start(db, settings, who, PG_URL)
    jobs.run_pending(db, settings)
    run = get(db, run_id)
    assert (run.status, run.error_code) == ("failed", "source-unavailable")
    assert "dept:***@127.0.0.1:1/hr" in run.error_params["url"]
    assert "S3cret" not in str(run.error_params)
    assert len(events(db, "census:run:fail")) == 1

    # A URL of another database is refused; the same database with new credentials is taken.
    with db.write() as s, pytest.raises(InvalidInput) as caught:
        services.resume_run(
            s,
            who,
            run_id,
            secret_key=settings.secret_key,
            allow_sqlite=True,
            url=f"sqlite:///{path}",
        )
    assert caught.value.field == "url"
    with db.write() as s:
        run = services.resume_run(
            s,
            who,
            run_id,
            secret_key=settings.secret_key,
            allow_sqlite=True,
            url="postgresql+psycopg://dept:N3w-pw@127.0.0.1:1/hr",
        )
        assert run.source_url == "postgresql+psycopg://dept:***@127.0.0.1:1/hr"
        assert "N3w-pw" in source.unseal(settings.secret_key, run.source_url_sealed)


def test_a_table_that_cannot_be_read_is_recorded_and_the_census_goes_on(
    db, settings, department, tmp_path
):
    path = tmp_path / "dept.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (name TEXT, mobile TEXT)")
        conn.execute("INSERT INTO people VALUES ('张三', '13800138000')")
        conn.execute("CREATE TABLE gone (x TEXT)")
        conn.execute("CREATE VIEW broken AS SELECT x FROM gone")
        conn.execute("DROP TABLE gone")
    who = principal(db, department)
    run_id = start(db, settings, who, f"sqlite:///{path}")
    jobs.run_pending(db, settings)
    run = get(db, run_id)
    assert (run.status, run.tables_total, run.tables_done, run.tables_failed) == (
        "succeeded",
        2,
        1,
        1,
    )
    broken = {e.table_name: e for e in entries(db, run_id)}["broken"]
    assert broken.status == TableStatus.FAILED
    assert broken.error_code == "source-unavailable"
    assert "gone" in broken.error_params["reason"]
    with db.read() as s:
        totals = services.run_totals(s, who, run_id)
    assert (totals.tables, totals.tables_read, totals.tables_failed) == (2, 1, 1)


ENDLESS_VIEW = (
    "CREATE VIEW endless AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT i FROM n"
)


def test_a_count_that_runs_past_its_timeout_is_recorded_and_the_census_goes_on(
    db, settings, department, tmp_path
):
    """A table whose COUNT(*) never ends (here a view without end) does not hang the census: the
    count is stopped at DATAFACTOR_CENSUS_COUNT_TIMEOUT_SECONDS and the table says so."""
    path = tmp_path / "dept.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (name TEXT, mobile TEXT)")
        conn.execute("INSERT INTO people VALUES ('张三', '13800138000')")
        conn.execute(ENDLESS_VIEW)
    quick = settings.model_copy(update={"census_count_timeout_seconds": 0.2})
    who = principal(db, department)
    run_id = start(db, quick, who, f"sqlite:///{path}")
    jobs.run_pending(db, quick)
    run = get(db, run_id)
    assert (run.status, run.tables_done, run.tables_failed) == ("succeeded", 1, 1)
    endless = {e.table_name: e for e in entries(db, run_id)}["endless"]
    assert (endless.status, endless.error_code, endless.row_count) == (
        TableStatus.FAILED,
        "count-timeout",
        None,
    )
    assert endless.error_params == {"table": "main.endless", "seconds": "0.2"}
    assert [c["name"] for c in endless.columns] == ["i"]  # what was learnt before is kept


@pytest.mark.postgresql
def test_a_locked_postgresql_table_is_recorded_as_count_timed_out(
    db, settings, department, pg_server
):
    import os

    from sqlalchemy import create_engine, text

    name = f"dept_{os.getpid()}_{next(_pg_names)}"
    pg_server.execute(f"CREATE DATABASE {name}")
    url = pg_server.url(name)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (name TEXT, mobile TEXT)"))
        conn.execute(text("CREATE TABLE ledger (amount INTEGER)"))
        conn.execute(text("INSERT INTO people VALUES ('张三', '13800138000')"))
    quick = settings.model_copy(update={"census_count_timeout_seconds": 0.5})
    who = principal(db, department)
    run_id = start(db, quick, who, url)
    holder = engine.connect()
    try:  # another session holds the table: a COUNT(*) would wait for it for ever
        holder.execute(text("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE"))
        jobs.run_pending(db, quick)
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    run = get(db, run_id)
    assert (run.status, run.tables_done, run.tables_failed) == ("succeeded", 1, 1)
    ledger = {e.table_name: e for e in entries(db, run_id)}["ledger"]
    assert (ledger.status, ledger.error_code) == (TableStatus.FAILED, "count-timeout")


def test_stopped_runs(db, settings, department, department_url):
    """What each of the runner's stop reasons does to the run."""
    who = principal(db, department)
    outcomes = {}
    for why in (StopReason.SHUTDOWN, StopReason.TIMEOUT, StopReason.INTERRUPT, StopReason.LOST):
        run_id = start(db, settings, who, department_url)
        with db.write() as s:
            claimed = services.claim_next(s, "runner-x")
            assert claimed is not None and claimed.run_id == run_id
            if why is StopReason.LOST:
                services.force_cancel_run(s, who, run_id, "stuck")
            else:
                assert services.stopped_run(s, run_id, "runner-x", why=why)
        outcomes[why] = get(db, run_id)
        if outcomes[why].status == "queued":  # out of the way of the next claim
            with db.write() as s:
                services.cancel_run(s, who, run_id)
    assert outcomes[StopReason.SHUTDOWN].status == "queued"
    assert outcomes[StopReason.TIMEOUT].status == "failed"
    assert outcomes[StopReason.TIMEOUT].error_code == "timeout"
    assert outcomes[StopReason.INTERRUPT].status == "cancelled"
    assert outcomes[StopReason.INTERRUPT].error_code == "interrupted"
    lost = outcomes[StopReason.LOST]
    assert lost.status == "cancelled" and lost.error_code == "force-cancelled"
    with db.write() as s:  # the runner that lost it writes nothing
        assert not services.stopped_run(s, lost.id, "runner-x", why=StopReason.CANCEL)
        assert not services.finish_run(s, lost.id, "runner-x")
        beat = services.heartbeat(
            s,
            lost.id,
            "runner-x",
            current_table=None,
            current_rows=0,
            limits=jobs.timeouts(settings),
        )
    assert beat.stop and beat.why is StopReason.LOST


def test_the_sweep_expires_a_queued_run_nobody_took(db, settings, department, department_url):
    who = principal(db, department)
    run_id = start(db, settings, who, department_url)
    limits = jobs.timeouts(settings)
    with db.write() as s:
        assert services.sweep(s, limits, now=utcnow() + timedelta(minutes=5)) == 0
        assert services.sweep(s, limits, now=utcnow() + limits.queue_timeout * 2) == 1
    run = get(db, run_id)
    assert (run.status, run.error_code) == ("failed", "expire")
    with db.write() as s:
        services.resume_run(s, who, run_id, secret_key=settings.secret_key, allow_sqlite=True)
    assert get(db, run_id).status == "queued"


# ------------------------------------------------------------------------- who may do what, sees what


def test_only_departments_are_censused_and_by_whom(
    db, settings, department, other_department, bureau, department_url
):
    dept, other, bur = (principal(db, a) for a in (department, other_department, bureau))
    enterprise = principal(db, make_actor(db, PartyKind.ENTERPRISE))
    regulator = principal(db, make_actor(db, PartyKind.REGULATOR))
    with pytest.raises(Forbidden):
        start(db, settings, dept, department_url, party_id=other_department.party_id)
    with pytest.raises(Forbidden):
        start(db, settings, enterprise, department_url)
    with pytest.raises(Forbidden):
        start(db, settings, regulator, department_url, party_id=department.party_id)
    with pytest.raises(InvalidInput) as caught:
        start(db, settings, bur, department_url, party_id=enterprise.party_id)
    assert caught.value.field == "party_id"
    with pytest.raises(InvalidInput):  # the bureau itself is not a department
        start(db, settings, bur, department_url)
    pending = make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT, verified=False)
    with pytest.raises(InvalidInput):
        start(db, settings, bur, department_url, party_id=pending.party_id)
    with pytest.raises(InvalidInput):
        start(db, settings, dept, department_url, domain="no-such-domain")

    # The bureau starts one for a department: attributed to the department, started by it.
    run_id = start(db, settings, bur, department_url, party_id=department.party_id)
    run = get(db, run_id)
    assert (run.party_id, run.started_by_party_id, run.party_name) == (
        department.party_id,
        bureau.party_id,
        "南宁市民政局",
    )
    assert "on the department's behalf" in events(db, "census:run:request")[0].summary

    with db.read() as s:
        assert services.get_run(s, dept, run_id).id == run_id
        assert services.get_run(s, bur, run_id).id == run_id
        assert services.get_run(s, regulator, run_id).id == run_id
        for outsider in (other, enterprise):
            with pytest.raises(NotFound):
                services.get_run(s, outsider, run_id)
        assert services.list_runs(s, other, services.RunQuery(), limit=10, offset=0)[1] == 0
        assert services.list_runs(s, bur, services.RunQuery(), limit=10, offset=0)[1] == 1
        with pytest.raises(Forbidden):
            services.list_runs(s, enterprise, services.RunQuery(), limit=10, offset=0)
    with db.write() as s, pytest.raises(Forbidden):
        services.cancel_run(s, regulator, run_id)
    with db.write() as s, pytest.raises(Forbidden):
        services.force_cancel_run(s, regulator, run_id, "no")
    with db.write() as s:  # the department may cancel what the bureau started for it
        assert services.cancel_run(s, dept, run_id).status == "cancelled"
    with db.write() as s, pytest.raises(Conflict):
        services.cancel_run(s, dept, run_id)


def staff_of(db, actor, username="dept.staff"):
    with db.write() as s:
        user = create_user_as_operator(
            s,
            actor.party_id,
            username=username,
            display_name="",
            password=PASSWORD,
            roles=["staff"],
        )
        return Actor(actor.party_id, user.id, username, PASSWORD, actor.kind)


def test_force_cancel_by_the_department_admin_or_the_bureau_admin(
    db, settings, department, bureau, department_url
):
    dept, bur = principal(db, department), principal(db, bureau)
    staff = principal(db, staff_of(db, department))
    run_a = start(db, settings, dept, department_url)
    run_b = start(db, settings, dept, department_url)
    run_c = start(db, settings, staff, department_url)  # staff start censuses too
    with db.write() as s, pytest.raises(InvalidInput):
        services.force_cancel_run(s, dept, run_a, "  ")
    with db.write() as s, pytest.raises(Forbidden):
        services.force_cancel_run(s, staff, run_c, "staff may only cancel")
    with db.write() as s:
        services.force_cancel_run(s, dept, run_a, "连接卡住")
        services.force_cancel_run(s, bur, run_b, "普查调度")
        services.cancel_run(s, staff, run_c)
    assert get(db, run_a).status == get(db, run_b).status == get(db, run_c).status == "cancelled"
    forced = events(db, "census:run:force-cancel")
    assert [e.reasons for e in forced] == [["连接卡住"], ["普查调度"]]
    assert forced[1].actor_username == "bureau.admin"


# ----------------------------------------------------------------------- inventory and roll-up


def test_the_latest_census_of_a_database_is_the_current_inventory(
    db, settings, department, other_department, bureau, department_url, tmp_path
):
    dept, other, bur = (principal(db, a) for a in (department, other_department, bureau))
    regulator = principal(db, make_actor(db, PartyKind.REGULATOR, roles=("auditor",)))
    first = start(db, settings, dept, department_url)
    jobs.run_pending(db, settings)
    # The department adds a table; a second census of the same database replaces the first.
    path = department_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE 社保 (姓名 TEXT, 身份证号 TEXT)")
    second = start(db, settings, dept, department_url)
    # Another department, another database.
    other_db = tmp_path / "other.db"
    with sqlite3.connect(other_db) as conn:
        conn.execute("CREATE TABLE roads (name TEXT, km REAL)")
        conn.executemany("INSERT INTO roads VALUES (?, ?)", [("G72", 1.5), ("G75", 2.0)])
    third = start(db, settings, other, f"sqlite:///{other_db}")
    # A failed run changes nothing in the inventory.
    start(db, settings, dept, PG_URL)
    jobs.run_pending(db, settings)

    assert not any(e.current for e in entries(db, first))
    assert all(e.current for e in entries(db, second))
    with db.read() as s:
        province = services.rollup(s, bur)
        assert services.rollup(s, regulator) == province
        own = services.rollup(s, dept)
    names = [d.party_name for d in province.departments]
    assert names == ["南宁市民政局", "柳州市交通运输局"]
    nanning, liuzhou = province.departments
    assert (nanning.totals.tables, nanning.databases) == (ALL + 1, 1)
    assert nanning.totals.rows == ROWS
    assert (liuzhou.totals.tables, liuzhou.totals.rows) == (1, 2)
    assert province.province.tables == ALL + 2
    assert province.province.rows == nanning.totals.rows + 2
    assert province.province.pi_tables == nanning.totals.pi_tables
    assert [d.party_id for d in own.departments] == [department.party_id]
    assert own.province.tables == ALL + 1

    # A census of one schema replaces only that schema's entries.
    fourth = start(db, settings, dept, department_url, schema="main")
    jobs.run_pending(db, settings)
    assert not any(e.current for e in entries(db, second))
    with db.read() as s:
        assert services.rollup(s, bur).province.tables == ALL + 2
        current = services.current_inventory(s, bur)
    assert {e.run_id for e in current} == {third, fourth}


def test_the_excel_workbook_reads_back(db, settings, department, tmp_path):
    import io

    from openpyxl import load_workbook

    path = tmp_path / "dept.db"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "=1+1" (姓名 TEXT, 手机 TEXT)')
        conn.execute("INSERT INTO \"=1+1\" VALUES ('张三', '13800138000')")
        conn.execute("CREATE TABLE gone (x TEXT)")
        conn.execute("CREATE VIEW broken AS SELECT x FROM gone")
        conn.execute("DROP TABLE gone")
    who = principal(db, department)
    run_id = start(db, settings, who, f"sqlite:///{path}")
    jobs.run_pending(db, settings)
    with db.read() as s:
        filename, data = services.run_workbook(s, who, run_id)
    assert filename.startswith("census-") and filename.endswith(".xlsx")
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["汇总 Summary", "资产清单 Tables", "字段 Columns"]
    summary = dict(book["汇总 Summary"].iter_rows(min_row=2, values_only=True))
    assert summary["部门 Department"] == "南宁市民政局"
    assert summary["状态 Status"] == "已完成 Finished"
    assert summary["表和视图 Tables and views"] == 2
    assert summary["无法读取 Could not be read"] == 1
    assert summary["含个人信息的表 Tables with personal information"] == 1
    tables = list(book["资产清单 Tables"].iter_rows(values_only=True))
    assert tables[0][:6] == (
        "部门 Department",
        "数据库 Database",
        "模式 Schema",
        "表名 Table",
        "类型 Kind",
        "行数 Rows",
    )
    by_name = {row[3]: row for row in tables[1:]}
    injected = by_name["=1+1"]
    assert injected[5] == 1 and injected[7] == "cn_mobile" and injected[8] == "否 no"
    cell = next(c for c in book["资产清单 Tables"]["D"] if c.value == "=1+1")
    assert cell.data_type == "s"  # a name, not a formula
    broken = by_name["broken"]
    assert broken[4] == "视图 view" and broken[12] == "无法读取 Could not be read"
    assert "gone" in broken[13]
    columns = list(book["字段 Columns"].iter_rows(values_only=True))
    assert columns[0][3] == "字段 Column"
    assert (
        "南宁市民政局",
        "main",
        "=1+1",
        "手机",
        "TEXT",
        "是 yes",
        "cn_mobile",
        "否 no",
    ) in columns


@pytest.mark.postgresql
def test_a_census_of_a_postgresql_database_with_two_schemas(db, settings, department, pg_server):
    """The department's database on PostgreSQL: every schema but the catalogue's, or just one."""
    import os

    from census_support import build_department
    from sqlalchemy import create_engine, text

    name = f"dept_{os.getpid()}_{next(_pg_names)}"
    pg_server.execute(f"CREATE DATABASE {name}")
    url = build_department(pg_server.url(name))
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text('CREATE SCHEMA "人事"'))
        conn.execute(text('CREATE TABLE "人事".staff (姓名 TEXT, 手机 TEXT)'))
        conn.execute(text("INSERT INTO \"人事\".staff VALUES ('李四', '13912345678')"))
    engine.dispose()
    who = principal(db, department)
    services.check_source(url, allow_sqlite=False)
    everything = start(db, settings, who, url)
    jobs.run_pending(db, settings)
    listed = [(e.schema_name, e.table_name) for e in entries(db, everything)]
    assert listed == [*[("public", t) for t in [*TABLES, *VIEWS]], ("人事", "staff")]
    assert get(db, everything).schemas_total == 2
    assert get(db, everything).rows_counted == ROWS + 1
    staff = entries(db, everything)[-1]
    assert staff.pi_types == ["cn_mobile"]

    only_hr = start(db, settings, who, url, schema="人事")
    jobs.run_pending(db, settings)
    assert [(e.schema_name, e.table_name) for e in entries(db, only_hr)] == [("人事", "staff")]
    # The schema's census replaced that schema's entries only.
    with db.read() as s:
        current = services.current_inventory(s, who)
    assert {(e.run_id, e.schema_name) for e in current} == {
        (everything, "public"),
        (only_hr, "人事"),
    }


_pg_names = iter(range(10**6))
