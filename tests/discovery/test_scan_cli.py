"""``datafactor scan``: the JSON a script reads, the table a person reads, and clear refusals."""

from __future__ import annotations

import csv
import json
import random
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from datafactor.cli import app
from datafactor.discovery.corpus import generate_value

REPORT_KEYS = {
    "columns",
    "grade",
    "grade_reasons",
    "quality",
    "distinct_individuals",
    "rows_scanned",
    "mode",
    "warnings",
    "rules",
}
COLUMN_KEYS = {"name", "types", "sensitive", "match_ratio", "confidence"}
PASSWORD = "S3cret-pw"


def people_rows(n: int, seed: int = 3) -> list[list[str]]:
    rng = random.Random(seed)
    ids: dict[str, None] = {}
    while len(ids) < n:
        ids[generate_value("cn_resident_id", rng)] = None
    return [
        [generate_value("person_name", rng), rid, generate_value("cn_mobile", rng)] for rid in ids
    ]


@pytest.fixture
def people_csv(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["姓名", "身份证号", "手机号"])
        writer.writerows(people_rows(200))
    return path


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["scan", *args], catch_exceptions=False)


def refused(result) -> str:  # type: ignore[no-untyped-def]
    """The one-line error of a refused scan (exit code 2, nothing on stdout, no traceback)."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_json_has_exactly_the_documented_shape(people_csv: Path) -> None:
    result = run(str(people_csv), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == REPORT_KEYS
    assert [set(c) for c in data["columns"]] == [COLUMN_KEYS] * 3
    columns = {c["name"]: (c["types"], c["sensitive"]) for c in data["columns"]}
    assert columns == {
        "姓名": (["person_name"], False),
        "身份证号": (["cn_resident_id"], True),
        "手机号": (["cn_mobile"], False),
    }
    assert data["grade"] == "general"
    assert data["distinct_individuals"] == 200
    assert (data["rows_scanned"], data["mode"]) == (200, "sample")
    assert "PIPL-28-sensitive-pi" in data["rules"]
    reasons = {r["rule"]: r for r in data["grade_reasons"]}
    assert reasons["PIPL-28-sensitive-pi"]["en"].startswith("Holds sensitive personal information")
    assert reasons["PIPL-28-sensitive-pi"]["zh"]


def test_sample_size_full_mode_and_domain_options(people_csv: Path) -> None:
    data = json.loads(run(str(people_csv), "--json", "--sample-rows", "50").stdout)
    assert (data["rows_scanned"], data["mode"], data["distinct_individuals"]) == (50, "sample", 50)
    assert [w["code"] for w in data["warnings"]] == ["sampled"]
    data = json.loads(run(str(people_csv), "--json", "--full", "--sample-rows", "50").stdout)
    assert (data["rows_scanned"], data["mode"]) == (200, "full")
    data = json.loads(run(str(people_csv), "--json", "--domain", "automotive").stdout)
    assert data["grade"] == "general"  # 200 people, not more than 100,000
    data = json.loads(
        run(
            str(people_csv), "--json", "--domain", "energy", "--category", "grid_dispatching"
        ).stdout
    )
    assert data["grade"] == "general"  # the grid entries also need a region


def test_without_json_a_readable_table(people_csv: Path) -> None:
    result = run(str(people_csv))
    assert result.exit_code == 0, result.output
    for text in ("身份证号", "cn_resident_id", "grade: general", "PIPL-28-sensitive-pi", "200"):
        assert text in result.stdout


def test_a_workbook_sheet_by_name(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "说明"
    workbook.active.append(["这是说明页"])
    sheet = workbook.create_sheet("名单")
    sheet.append(["姓名", "身份证号", "手机号"])
    for row in people_rows(30):
        sheet.append(row)
    workbook.save(path)
    data = json.loads(run(str(path), "--table", "名单", "--json").stdout)
    assert [c["types"] for c in data["columns"]] == [
        ["person_name"],
        ["cn_resident_id"],
        ["cn_mobile"],
    ]
    assert "名册" in refused(run(str(path), "--table", "名册", "--json"))


# --- databases -----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "dept.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE residents (name TEXT, id_number TEXT, mobile TEXT)")
        conn.executemany("INSERT INTO residents VALUES (?, ?, ?)", people_rows(120))
        conn.execute("CREATE TABLE budget (year INTEGER, amount REAL)")
        conn.executemany(
            "INSERT INTO budget VALUES (?, ?)", [(2020 + i, 1.5 * i) for i in range(5)]
        )
    conn.close()
    return f"sqlite:///{path}"


def test_every_table_of_a_database(sqlite_url: str) -> None:
    result = run(sqlite_url, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"tables"}
    tables = {t["table"]: t for t in data["tables"]}
    assert set(tables) == {"budget", "residents"}
    assert set(tables["residents"]) == REPORT_KEYS | {"table"}
    residents = tables["residents"]
    assert [c["types"] for c in residents["columns"]] == [
        ["person_name"],
        ["cn_resident_id"],
        ["cn_mobile"],
    ]
    assert residents["distinct_individuals"] == 120
    assert tables["budget"]["distinct_individuals"] is None
    assert [c["types"] for c in tables["budget"]["columns"]] == [[], []]


def test_one_table_of_a_database(sqlite_url: str) -> None:
    data = json.loads(run(sqlite_url, "--table", "residents", "--json").stdout)
    assert set(data) == REPORT_KEYS
    assert data["rows_scanned"] == 120
    result = run(sqlite_url, "--table", "residents")
    assert "id_number" in result.stdout and "cn_resident_id" in result.stdout
    assert "no_such" in refused(run(sqlite_url, "--table", "no_such", "--json"))


def test_a_missing_sqlite_file_is_refused_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    assert "none.db" in refused(run(f"sqlite:///{path}", "--json"))
    assert not path.exists()


def test_an_unreachable_database_never_shows_its_password() -> None:
    url = f"postgresql+psycopg://census:{PASSWORD}@127.0.0.1:1/dept"
    # A real process: what a person sees on the terminal, logging included.
    done = subprocess.run(
        [sys.executable, "-c", "from datafactor.cli import main; main()", "scan", url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert PASSWORD not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "census:***@127.0.0.1:1/dept" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_database_without_its_driver_is_a_clear_error() -> None:
    line = refused(run(f"mysql://root:{PASSWORD}@127.0.0.1:1/x", "--json"))
    assert PASSWORD not in line
    assert "MySQLdb" in line


# --- refusals ------------------------------------------------------------------------------------


def test_a_binary_file_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert "photo.csv" in refused(run(str(path), "--json"))


def test_a_workbook_with_macros_and_a_zip_bomb(tmp_path: Path) -> None:
    macro = tmp_path / "book.xlsm"
    openpyxl.Workbook().save(tmp_path / "plain.xlsx")
    macro.write_bytes((tmp_path / "plain.xlsx").read_bytes())
    refused(run(str(macro), "--json"))
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as entry:
            for _ in range(32):
                entry.write(b"<row>" + b" " * (1 << 20))
    refused(run(str(bomb), "--json"))


def test_paths_and_options_that_do_not_fit(tmp_path: Path, people_csv: Path) -> None:
    assert "nothing.csv" in refused(run(str(tmp_path / "nothing.csv")))
    refused(run(str(tmp_path)))
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    assert ".docx" in refused(run(str(tmp_path / "notes.docx")))
    refused(run(str(people_csv), "--table", "x"))
    assert "banking" in refused(run(str(people_csv), "--domain", "banking"))
    assert "heat_map" in refused(
        run(str(people_csv), "--domain", "energy", "--category", "heat_map")
    )
