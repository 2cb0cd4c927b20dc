"""``datafactor census``: a census in the foreground, the same run the console shows; JSON and
Excel output; one-line refusals with the password hidden; resuming after an interruption."""

from __future__ import annotations

import json

import pytest
from census_support import ROWS, TABLES, VIEWS
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from datafactor.audit import AuditEvent
from datafactor.census import jobs
from datafactor.census.models import CensusRun, CensusTable
from datafactor.cli import app as cli
from datafactor.discovery import scan_source
from datafactor.settings import get_settings

ALL = len(TABLES) + len(VIEWS)


@pytest.fixture
def run(db_url, monkeypatch, settings):
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    monkeypatch.setenv("DATAFACTOR_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("DATAFACTOR_SOURCE_ALLOW_SQLITE", "true")
    monkeypatch.setenv("DATAFACTOR_ENVIRONMENT", "test")
    monkeypatch.setenv("DATAFACTOR_CENSUS_SAMPLE_ROWS", "500")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None):
        return runner.invoke(cli, list(args), catch_exceptions=False, input=stdin)

    yield invoke
    get_settings.cache_clear()


def test_a_census_on_the_command_line(run, db, department, department_url, tmp_path):
    out = tmp_path / "普查.xlsx"
    result = run(
        "census", department_url, "--party", department.party_id, "--json", "--xlsx", str(out)
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"]["status"] == "succeeded"
    assert data["run"]["party_name"] == "南宁市民政局"
    assert data["run"]["sample_rows"] == 500
    assert (data["totals"]["tables"], data["totals"]["rows"]) == (ALL, ROWS)
    assert [t["table"] for t in data["tables"]] == [*TABLES, *VIEWS]
    book = load_workbook(out)
    assert book.sheetnames == ["汇总 Summary", "资产清单 Tables", "字段 Columns"]
    # The same run the console shows, audited as the command line.
    with db.read() as s:
        stored = s.scalars(select(CensusRun)).one()
        actors = {
            e.actor_username for e in s.scalars(select(AuditEvent)) if e.object_id == stored.id
        }
    assert stored.id == data["run"]["id"] and stored.requested_by_name == "cli"
    assert actors == {"cli", "census-runner"}
    assert stored.runner_id.startswith("cli:")

    table = run("census", department_url, "--party", department.party_id)
    assert table.exit_code == 0
    assert "residents" in table.stdout and "cn_resident_id, cn_mobile" in table.stdout
    assert f"{ALL} tables (0 unreadable)" in table.stdout

    again = run("census", department_url, "--party", department.party_id, "--xlsx", str(out))
    assert again.exit_code == 2 and str(out) in again.stderr


def test_the_url_can_come_from_standard_input(run, department, department_url):
    result = run(
        "census", "-", "--party", department.party_id, "--json", stdin=department_url + "\n"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["tables"] == ALL


def test_refusals_are_one_line_without_the_password(run, department, bureau, department_url):
    result = run(
        "census",
        "postgresql+psycopg://dept:S3cret-pw@127.0.0.1:1/hr",
        "--party",
        department.party_id,
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "dept:***@127.0.0.1:1/hr" in lines[0] and "S3cret" not in result.output
    assert "Traceback" not in result.output
    missing = run("census", department_url)
    assert missing.exit_code == 2 and "--party" in missing.stderr
    not_dept = run("census", department_url, "--party", bureau.party_id)
    assert not_dept.exit_code == 2
    unknown = run("census", department_url, "--party", "no-such-party")
    assert unknown.exit_code == 2


def test_an_interrupted_census_resumes(run, db, department, department_url, monkeypatch):
    calls: list[str] = []

    def interrupt_third(table, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(table.name)
        return scan_source(table, **kw)

    monkeypatch.setattr(jobs, "scan_source", interrupt_third)
    result = run("census", department_url, "--party", department.party_id, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    run_id = data["run"]["id"]
    assert (data["run"]["status"], data["run"]["tables_done"]) == ("cancelled", 2)
    assert f"datafactor census --resume {run_id}" in result.stderr

    monkeypatch.setattr(jobs, "scan_source", scan_source)
    resumed = run("census", "--resume", run_id, "--json")
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.stdout)
    assert data["run"]["status"] == "succeeded" and data["totals"]["rows"] == ROWS
    with db.read() as s:
        reads = s.scalars(select(CensusTable.reads).where(CensusTable.run_id == run_id)).all()
    assert reads == [1] * ALL
    finished = run("census", "--resume", run_id)
    assert finished.exit_code == 2 and "succeeded" in finished.stderr
