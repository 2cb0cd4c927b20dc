"""Scanning tables: real files in every format, sample and full mode, progress, cancellation, JSON."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datafactor.dataplane import Table, open_table
from datafactor.discovery import (
    Grade,
    GradingMetadata,
    ScanCancelled,
    ScanMode,
    ScanReport,
    scan_source,
)
from datafactor.discovery.corpus import generate_value
from datafactor.discovery.scan import as_text
from datafactor.errors import InvalidInput

ROWS = 300
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
EXPECTED = {
    "姓名": (("person_name",), False),
    "身份证号": (("cn_resident_id",), True),
    "手机号": (("cn_mobile",), False),
    "银行卡号": (("bank_card",), True),
    "状态": ((), False),
}


def unique_values(entity_type: str, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct valid values from the corpus generators."""
    values: dict[str, None] = {}
    while len(values) < n:
        values[generate_value(entity_type, rng)] = None
    return list(values)


def people(n: int = ROWS, seed: int = 7) -> dict[str, list[str]]:
    """A table of people: a name, an ID, a mobile and a bank card each, and a status column."""
    rng = random.Random(seed)
    return {
        "姓名": [generate_value("person_name", rng) for _ in range(n)],
        "身份证号": unique_values("cn_resident_id", n, rng),
        "手机号": unique_values("cn_mobile", n, rng),
        "银行卡号": unique_values("bank_card", n, rng),
        "状态": [rng.choice(["正常", "注销", "冻结"]) for _ in range(n)],
    }


def rows_of(columns: dict[str, list[str]]) -> list[list[str]]:
    return [list(row) for row in zip(*columns.values(), strict=True)]


def write_csv(path: Path, columns: dict[str, list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows_of(columns))
    return path


def write_xlsx(path: Path, columns: dict[str, list[str]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(columns))
    for row in rows_of(columns):
        sheet.append(row)
    workbook.save(path)
    return path


def write_jsonl(path: Path, columns: dict[str, list[str]]) -> Path:
    names = list(columns)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows_of(columns):
            handle.write(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) + "\n")
    return path


def bare_mobile(value: str) -> int:
    """A generated mobile number (``+86 138 ...`` or ``138...``) as the 11-digit integer."""
    return int("".join(ch for ch in value if ch.isdigit())[-11:])


def write_parquet(path: Path, columns: dict[str, list[str]]) -> Path:
    # Typed as a database export would be: the mobile number as an integer.
    data: dict[str, Any] = dict(columns)
    data["手机号"] = pa.array([bare_mobile(v) for v in columns["手机号"]], pa.int64())
    pq.write_table(pa.table(data), path, row_group_size=100)
    return path


WRITERS = {
    "csv": lambda d, c: write_csv(d / "people.csv", c),
    "gbk-csv": lambda d, c: write_csv(d / "people.csv", c, encoding="gbk"),
    "xlsx": lambda d, c: write_xlsx(d / "people.xlsx", c),
    "jsonl": lambda d, c: write_jsonl(d / "people.jsonl", c),
    "parquet": lambda d, c: write_parquet(d / "people.parquet", c),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_file_of_people_in_every_format(tmp_path: Path, kind: str) -> None:
    columns = people()
    table = open_table(WRITERS[kind](tmp_path, columns))
    report = scan_source(table)
    found = {c.name: (c.types, c.sensitive) for c in report.columns}
    assert found == EXPECTED
    assert report.distinct_individuals == ROWS
    assert report.rows_scanned == ROWS
    assert report.mode is ScanMode.SAMPLE
    assert report.grade is Grade.GENERAL
    assert "PIPL-28-sensitive-pi" in report.decision.rules
    assert "NDSR-28-pi-volume" in report.decision.rules
    assert not [w for w in report.warnings if w.code == "sampled"]
    id_column = next(c for c in report.columns if c.name == "身份证号")
    assert id_column.match_ratio == 1.0
    assert id_column.confidence > 0.9


def test_gbk_file_is_read_as_gbk(tmp_path: Path) -> None:
    columns = people(50)
    columns["地址"] = ["广西壮族自治区南宁市青秀区民族大道" + str(i) + "号" for i in range(50)]
    table = open_table(write_csv(tmp_path / "gbk.csv", columns, encoding="gbk"))
    report = scan_source(table)
    assert table.encoding is not None and table.encoding.lower() in {"gb18030", "gbk"}
    assert next(c for c in report.columns if c.name == "地址").types == ("address",)


def test_report_json_has_exactly_the_documented_keys_and_reads_back(tmp_path: Path) -> None:
    report = scan_source(open_table(write_csv(tmp_path / "p.csv", people())))
    data = json.loads(json.dumps(report.as_dict(), ensure_ascii=False))
    assert set(data) == REPORT_KEYS
    assert all(set(c) == COLUMN_KEYS for c in data["columns"])
    assert data["grade"] == "general"
    assert data["mode"] == "sample"
    assert data["distinct_individuals"] == ROWS
    assert data["rules"] == [r["rule"] for r in data["grade_reasons"]]
    # The quality profile of the same rows (discovery.quality) sits under "quality".
    assert 0 <= data["quality"]["score"] <= 100
    assert data["quality"]["rows"] == ROWS
    back = ScanReport.from_dict(data)
    assert back == report
    assert back.as_dict() == data


def test_read_warnings_are_carried_into_the_report(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ragged.csv", people(20))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("only,three,fields\n")
    report = scan_source(open_table(path))
    ragged = [w for w in report.as_dict()["warnings"] if w["code"] == "ragged-row"]
    assert len(ragged) == 1
    assert ragged[0]["line"] == 22
    assert ragged[0]["en"] and ragged[0]["zh"]
    assert report.rows_scanned == 20


def test_declared_metadata_grades_the_scan(tmp_path: Path) -> None:
    table = open_table(write_csv(tmp_path / "p.csv", people(50)))
    meta = GradingMetadata(domain="finance", individuals=1_000_000)
    report = scan_source(table, metadata=meta)
    assert report.grade is Grade.IMPORTANT
    assert "IMP-FIN-accounts-at-scale" in report.as_dict()["rules"]
    with pytest.raises(InvalidInput):
        scan_source(table, metadata=GradingMetadata(domain="banking"))


def _timeliness(report: Any) -> dict[str, Any]:
    (dimension,) = [d for d in report.as_dict()["quality"]["dimensions"] if d["id"] == "timeliness"]
    return dimension  # type: ignore[no-any-return]


def test_declared_update_frequency_is_judged_against_the_last_update(tmp_path: Path) -> None:
    table = open_table(write_csv(tmp_path / "p.csv", people(20)))
    now = dt.datetime.now(dt.UTC)
    fresh = scan_source(table, declared_frequency="daily", last_updated=now - dt.timedelta(hours=2))
    stale = scan_source(table, declared_frequency="daily", last_updated=now - dt.timedelta(days=10))
    assert _timeliness(fresh)["assessed"] and _timeliness(stale)["assessed"]
    assert _timeliness(stale)["score"] < _timeliness(fresh)["score"]
    # no period to judge against: not assessed, and the score renormalises over the rest
    for frequency in ("irregular", "once", None):
        report = scan_source(table, declared_frequency=frequency, last_updated=now)
        assert not _timeliness(report)["assessed"]


# --- sample and full mode ------------------------------------------------------------------------


def test_sample_reads_the_first_rows_and_says_so(tmp_path: Path) -> None:
    table = open_table(write_csv(tmp_path / "p.csv", people(1000)))
    sample = scan_source(table, sample_rows=250)
    assert (sample.mode, sample.rows_scanned, sample.distinct_individuals) == (
        ScanMode.SAMPLE,
        250,
        250,
    )
    sampled = [w for w in sample.warnings if w.code == "sampled"]
    assert len(sampled) == 1
    assert "250" in str(sampled[0]).replace(",", "")

    full = scan_source(table, full=True, sample_rows=250)
    assert (full.mode, full.rows_scanned, full.distinct_individuals) == (ScanMode.FULL, 1000, 1000)
    assert not [w for w in full.warnings if w.code == "sampled"]


@pytest.mark.parametrize("sample_rows", [1000, 5000])
def test_a_sample_as_large_as_the_table_reads_it_all(tmp_path: Path, sample_rows: int) -> None:
    table = open_table(write_csv(tmp_path / "p.csv", people(1000)))
    report = scan_source(table, sample_rows=sample_rows)
    assert report.rows_scanned == 1000
    assert not [w for w in report.warnings if w.code == "sampled"]


def test_a_sample_of_a_parquet_file_knows_the_row_count(tmp_path: Path) -> None:
    table = open_table(write_parquet(tmp_path / "p.parquet", people(1000)))
    seen: list[tuple[int, int | None]] = []
    report = scan_source(table, sample_rows=400, progress=lambda n, t: seen.append((n, t)))
    assert report.rows_scanned == 400
    assert seen[-1] == (400, 400)
    assert [w.code for w in report.warnings] == ["sampled"]


def test_a_sample_must_hold_a_row(tmp_path: Path) -> None:
    table = open_table(write_csv(tmp_path / "p.csv", people(5)))
    with pytest.raises(InvalidInput):
        scan_source(table, sample_rows=0)


# --- progress and cancellation -------------------------------------------------------------------


class ChunkedTable(Table):
    """A table that yields small batches, as a slow database would, and records being closed."""

    format = "test"

    def __init__(self, columns: dict[str, list[str]], chunk: int) -> None:
        super().__init__("chunked")
        self._columns = columns
        self._chunk = chunk
        self.batches_read = 0
        self.closed = 0

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(name, pa.string()) for name in self._columns])

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        n = len(next(iter(self._columns.values())))
        try:
            for start in range(0, n, self._chunk):
                self.batches_read += 1
                part = {k: v[start : start + self._chunk] for k, v in self._columns.items()}
                yield pa.RecordBatch.from_pydict(part, schema=self.schema)
        finally:
            self.closed += 1


def test_progress_grows_with_every_batch() -> None:
    table = ChunkedTable(people(1000), chunk=100)
    seen: list[tuple[int, int | None]] = []
    report = scan_source(table, full=True, progress=lambda n, t: seen.append((n, t)))
    counts = [n for n, _ in seen]
    assert counts == list(range(100, 1001, 100))
    assert all(a < b for a, b in itertools.pairwise(counts))
    assert {t for _, t in seen} == {None}  # the row count is unknown before reading
    assert report.rows_scanned == 1000

    seen.clear()
    scan_source(table, sample_rows=450, progress=lambda n, t: seen.append((n, t)))
    assert seen == [(100, 450), (200, 450), (300, 450), (400, 450), (450, 450)]


def test_a_sample_stops_reading_and_closes_the_source() -> None:
    table = ChunkedTable(people(1000), chunk=100)
    report = scan_source(table, sample_rows=300)
    assert report.rows_scanned == 300
    assert table.batches_read == 4  # three to scan, one to learn that there is more
    assert table.closed == 1
    assert [w.code for w in report.warnings] == ["sampled"]


def test_cancelling_stops_between_batches() -> None:
    table = ChunkedTable(people(1000), chunk=100)
    seen: list[int] = []
    with pytest.raises(ScanCancelled) as caught:
        scan_source(
            table,
            full=True,
            progress=lambda n, _: seen.append(n),
            should_cancel=lambda: len(seen) >= 3,
        )
    assert seen == [100, 200, 300]
    assert table.batches_read == 3
    assert table.closed == 1
    assert caught.value.code == "scan-cancelled"
    assert caught.value.params == {"table": "chunked", "rows": 300}
    assert "cancelled after 300 rows" in str(caught.value)


def test_a_scan_cancelled_before_it_starts_reads_nothing() -> None:
    table = ChunkedTable(people(10), chunk=5)
    with pytest.raises(ScanCancelled):
        scan_source(table, should_cancel=lambda: True)
    assert table.batches_read == 0


# --- cells as text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (pa.array([13800138000.0, None, 1.0]), ["13800138000", None, "1"]),
        (pa.array([2.5, 1.0]), ["2.5", "1"]),
        (pa.array([13800138000, None], pa.int64()), ["13800138000", None]),
        (pa.array([dt.date(1990, 5, 17)]), ["1990-05-17"]),
        (pa.array([decimal.Decimal("12.50")]), ["12.50"]),
        (pa.array([True, None]), ["true", None]),
        (pa.array([b"abc", b"\xff"]), ["abc", "\ufffd"]),
        (pa.array([[1, 2], None]), ["[1, 2]", None]),
        (pa.array(["a", "b", "a"]).dictionary_encode(), ["a", "b", "a"]),
        (pa.array([None, None], pa.null()), [None, None]),
    ],
)
def test_columns_of_any_type_become_text(array: pa.Array, expected: list[str | None]) -> None:
    assert as_text(array).to_pylist() == expected


def test_typed_parquet_columns_are_recognised(tmp_path: Path) -> None:
    columns = people(100)
    path = tmp_path / "typed.parquet"
    pq.write_table(
        pa.table(
            {
                "mobile": pa.array(
                    [float(bare_mobile(v)) for v in columns["手机号"]], pa.float64()
                ),
                "id": pa.array(columns["身份证号"]).dictionary_encode(),
            }
        ),
        path,
    )
    report = scan_source(open_table(path))
    assert [c.types for c in report.columns] == [("cn_mobile",), ("cn_resident_id",)]
