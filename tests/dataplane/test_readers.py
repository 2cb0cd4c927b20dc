"""Readers: encodings, delimiters and hostile files (CSV), Excel safety, JSON Lines, Parquet, databases."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl.chart import BarChart, Reference
from sqlalchemy import create_engine, text

from datafactor.dataplane import (
    CountTimedOut,
    CsvTable,
    ExcelTable,
    JsonLinesTable,
    ParquetTable,
    SourceUnavailable,
    SqlColumn,
    SqlDatabase,
    SqlTable,
    UnreadableSource,
    detect_encoding,
    detect_format,
    excel_tables,
    open_table,
    redact_url,
    sql_tables,
)
from datafactor.errors import NotFound


def rows(table: Any, batch_size: int = 65_536) -> list[dict[str, Any]]:
    return [row for batch in table.batches(batch_size) for row in batch.to_pylist()]


def codes(table: Any) -> list[str]:
    return [w.code for w in table.warnings]


# ------------------------------------------------------------------------------------ encodings

PEOPLE = (
    "姓名,身份证号,手机\n张三,11010119900307001X,13800138000\n李四,440301198501011234,13912345678\n"
)


def test_gbk_csv_is_detected_and_decoded(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(PEOPLE.encode("gbk"))
    table = open_table(path)
    assert table.encoding == "gb18030"
    assert table.schema.names == ["姓名", "身份证号", "手机"]
    assert rows(table)[0] == {
        "姓名": "张三",
        "身份证号": "11010119900307001X",
        "手机": "13800138000",
    }
    assert table.warnings == []


def test_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(PEOPLE.encode("utf-8-sig"))
    table = open_table(path)
    assert table.encoding == "utf-8-sig"
    assert table.schema.names[0] == "姓名"  # no BOM glued to the first name
    assert [r["姓名"] for r in rows(table)] == ["张三", "李四"]


def test_plain_utf8_and_leading_zeros_kept(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("code,amount\n000123,1.50\n,2\n", encoding="utf-8")
    table = open_table(path)
    assert table.encoding == "utf-8"
    assert rows(table) == [{"code": "000123", "amount": "1.50"}, {"code": None, "amount": "2"}]


def test_utf16_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("a,b\n甲,乙\n".encode("utf-16"))
    table = open_table(path)
    assert table.encoding == "utf-16"
    assert rows(table) == [{"a": "甲", "b": "乙"}]


def test_detect_encoding_tolerates_a_character_cut_by_the_sample() -> None:
    sample = "身份证".encode()[:-1]
    assert detect_encoding(sample, complete=False) == "utf-8"
    assert detect_encoding(b"\xff\xff\xff", complete=True) is None


def test_unknown_encoding_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(b"a,b\n\xff\xfe\xfd,1\n")
    with pytest.raises(UnreadableSource, match="UTF-8") as caught:
        open_table(path)
    assert caught.value.code == "unknown-encoding"
    latin = open_table(path, encoding="latin-1")
    assert latin.encoding == "iso8859-1"
    assert rows(latin) == [{"a": "ÿþý", "b": "1"}]


def test_stray_bytes_after_the_sample_become_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    body = "名称,值\n" + "甲,1\n" * 20_000  # > 64 KiB of valid UTF-8 first
    path.write_bytes(body.encode() + "乙,2\n".encode("gbk"))
    table = open_table(path)
    assert table.encoding == "utf-8"
    assert len(rows(table)) == 20_001
    assert codes(table) == ["undecodable-bytes"]


# ----------------------------------------------------------------------------- CSV structure


@pytest.mark.parametrize(
    ("suffix", "delimiter"), [(".csv", ";"), (".csv", "\t"), (".tsv", "\t"), (".csv", "|")]
)
def test_delimiter_is_sniffed(tmp_path: Path, suffix: str, delimiter: str) -> None:
    path = tmp_path / f"d{suffix}"
    path.write_text(delimiter.join(["a", "b", "c"]) + "\n" + delimiter.join("123") + "\n")
    table = open_table(path)
    assert table.delimiter == delimiter
    assert rows(table) == [{"a": "1", "b": "2", "c": "3"}]


def test_quoted_fields_with_delimiters_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('name,address\n"Wang, Wu","南宁市\n青秀区"\n')
    assert rows(open_table(path)) == [{"name": "Wang, Wu", "address": "南宁市\n青秀区"}]


def test_ragged_rows_become_warnings(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    table = open_table(path)
    assert rows(table) == [{"a": "1", "b": "2", "c": "3"}, {"a": "10", "b": "11", "c": "12"}]
    assert codes(table) == ["ragged-row", "ragged-row"]
    assert [w.line for w in table.warnings] == [3, 4]
    assert (
        str(table.warnings[0]) == "Line 3 has 2 fields where the header has 3; the row was skipped."
    )
    assert "4,5" not in str(table.warnings[0])  # content is never quoted (may be personal data)
    # A second read starts a fresh warning list.
    rows(table)
    assert table.warning_count == 2


def test_blank_and_duplicate_headers_are_named(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id,,id\n1,2,3\n")
    table = open_table(path)
    assert table.schema.names == ["id", "column_2", "id_2"]
    assert codes(table) == ["blank-header", "duplicate-header"]


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("a,b\n")
    assert rows(open_table(tmp_path / "empty.csv")) == []
    header_only = open_table(tmp_path / "header.csv")
    assert header_only.schema.names == ["a", "b"]
    assert rows(header_only) == []


def test_batches_respect_batch_size(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("n\n" + "".join(f"{i}\n" for i in range(10)))
    table = open_table(path)
    assert [b.num_rows for b in table.batches(4)] == [4, 4, 2]
    assert table.reader(3).read_all().num_rows == 10


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"a,b\n1,\x00\x00\x002\n", "NUL bytes"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "PNG"),
        (b"PK\x03\x04" + b"\x14" * 100, "ZIP"),
        (bytes(range(1, 32)) * 50, "control characters"),
    ],
)
def test_binary_file_named_csv_is_refused(tmp_path: Path, content: bytes, kind: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(UnreadableSource, match=kind) as caught:
        open_table(path)
    assert caught.value.code == "binary-file"


class EndlessLine(io.RawIOBase):
    """A header, then a line of ``size`` bytes without a newline, produced on demand."""

    def __init__(self, size: int) -> None:
        self._head = b"a,b\n"
        self._left = size
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            n = min(len(buffer), self._left)
            buffer[:n] = b"x" * n
            self._left -= n
        self.served += n
        return n


def test_a_one_gigabyte_line_is_refused_without_reading_it(tmp_path: Path) -> None:
    streams: list[EndlessLine] = []

    def opener() -> io.BufferedReader:
        streams.append(EndlessLine(1 << 30))
        return io.BufferedReader(streams[-1])

    table = CsvTable(opener, name="huge.csv", max_line_length=100_000)
    with pytest.raises(UnreadableSource, match="longer than 100000") as caught:
        rows(table)
    assert caught.value.code == "line-too-long"
    assert max(s.served for s in streams) < 4 << 20


def test_a_long_line_in_a_local_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    with path.open("w") as out:
        out.write("a,b\n1,2\n")
        for _ in range(20):
            out.write("x" * (1 << 20))  # one 20 MiB line
    table = open_table(path, max_line_length=100_000)  # the sample holds no newline-free excess
    with pytest.raises(UnreadableSource) as caught:
        rows(table)
    assert caught.value.code == "line-too-long"


def test_long_line_in_the_sample_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("a\n" + "x" * 5000 + "\n")
    with pytest.raises(UnreadableSource) as caught:
        open_table(path, max_line_length=1000)
    assert caught.value.code == "line-too-long"


def test_a_record_that_does_not_fit_the_parser_block_is_refused(tmp_path: Path) -> None:
    # A quoted field spanning many short lines: each line is within the limit, the record is not.
    path = tmp_path / "multiline.csv"
    path.write_text('a,b\n1,"' + "line\n" * 3_000_000 + '"\n')
    with pytest.raises(UnreadableSource) as caught:
        rows(open_table(path, max_line_length=1000))
    assert caught.value.code == "line-too-long"


# ----------------------------------------------------------------------------------------- Excel


def make_workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, data in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in data:
            sheet.append(row)
    workbook.save(path)
    return path


def rewrite_zip(path: Path, change: dict[str, bytes | None]) -> None:
    """Replace (or with ``None`` remove) entries of a zip file; add new ones."""
    with zipfile.ZipFile(path) as archive:
        entries = {i.filename: archive.read(i) for i in archive.infolist()}
    for name, content in change.items():
        if content is None:
            entries.pop(name, None)
        else:
            entries[name] = content
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)


def test_xlsx_values_as_text(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "people.xlsx",
        {
            "名单": [
                ["姓名", "身份证号", "手机", "出生日期", "余额", None],
                ["张三", "11010119900307001X", 13800138000, dt.date(1990, 3, 7), 12.5],
                [None, None, None, None, None],
                ["李四", "440301198501011234", 13912345678.0, dt.datetime(1985, 1, 1, 8, 30), True],
            ]
        },
    )
    table = open_table(path)
    assert isinstance(table, ExcelTable)
    assert table.schema.names == ["姓名", "身份证号", "手机", "出生日期", "余额"]
    assert rows(table) == [
        {"姓名": "张三", "身份证号": "11010119900307001X", "手机": "13800138000",
         "出生日期": "1990-03-07T00:00:00", "余额": "12.5"},
        {"姓名": "李四", "身份证号": "440301198501011234", "手机": "13912345678",
         "出生日期": "1985-01-01T08:30:00", "余额": "true"},
    ]  # fmt: skip


def test_every_sheet_is_a_table(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "two.xlsx", {"一": [["a"], [1]], "二": [["b"], [2], [3]]})
    tables = excel_tables(path)
    assert [t.name for t in tables] == ["two.xlsx#一", "two.xlsx#二"]
    assert [len(rows(t)) for t in tables] == [1, 2]
    with pytest.raises(NotFound):
        ExcelTable(path, sheet="三")


def test_values_beyond_the_header_are_reported(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "r.xlsx", {"s": [["a", "b"], [1, 2, 3], [4, 5]]})
    table = open_table(path)
    assert rows(table) == [{"a": "1", "b": "2"}, {"a": "4", "b": "5"}]
    assert codes(table) == ["ragged-row"]
    assert table.warnings[0].line == 2


def test_formula_returns_the_cached_value_and_is_not_evaluated(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "f.xlsx", {"s": [["x", "double"], [1, "=A2*2"]]})
    with zipfile.ZipFile(path) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    # Excel stores the last computed value next to the formula; make it one that evaluation
    # could not produce (1*2 is 2), so the test tells the two apart.
    cached, n = re.subn(r"<f>A2\*2</f><v\s*/?>(</v>)?", "<f>A2*2</f><v>999</v>", sheet)
    assert n == 1
    rewrite_zip(path, {"xl/worksheets/sheet1.xml": cached.encode()})
    assert rows(open_table(path)) == [{"x": "1", "double": "999"}]


def test_formula_without_cached_value_reads_as_empty(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "f.xlsx", {"s": [["x", "double"], [1, "=A2*2"]]})
    assert rows(open_table(path)) == [{"x": "1", "double": None}]


def test_xlsm_is_refused(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "book.xlsm", {"s": [["a"], [1]]})
    with pytest.raises(UnreadableSource, match="macros") as caught:
        open_table(path)
    assert caught.value.code == "macro-workbook"
    with pytest.raises(UnreadableSource, match="macros"):
        open_table(path, format="xlsx")
    with pytest.raises(UnreadableSource, match="macros"):
        detect_format("book.XLSM")


def test_macro_inside_a_file_named_xlsx_is_refused(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "book.xlsx", {"s": [["a"], [1]]})
    rewrite_zip(path, {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0 fake vba"})
    with pytest.raises(UnreadableSource) as caught:
        open_table(path)
    assert caught.value.code == "macro-workbook"

    clean = make_workbook(tmp_path / "clean.xlsx", {"s": [["a"], [1]]})
    with zipfile.ZipFile(clean) as archive:
        types = archive.read("[Content_Types].xml")
    macro_types = types.replace(
        b"</Types>",
        b'<Override PartName="/xl/workbook.xml" ContentType="application/'
        b'vnd.ms-excel.sheet.macroEnabled.main+xml"/></Types>',
    )
    rewrite_zip(clean, {"[Content_Types].xml": macro_types})
    with pytest.raises(UnreadableSource) as caught:
        open_table(clean)
    assert caught.value.code == "macro-workbook"


def test_zip_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as entry:
            block = b"<row>" + b" " * (1 << 20)
            for _ in range(64):  # 64 MiB of XML whitespace, ~64 KiB compressed
                entry.write(block)
    assert path.stat().st_size < 1 << 20
    started = time.perf_counter()
    with pytest.raises(UnreadableSource, match="zip bomb") as caught:
        open_table(path)
    assert caught.value.code == "zip-bomb"
    assert time.perf_counter() - started < 0.5


def test_total_uncompressed_size_is_limited(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "ok.xlsx", {"s": [["a"], [1]]})
    with pytest.raises(UnreadableSource) as caught:
        ExcelTable(path, max_uncompressed=1000)
    assert caught.value.code == "zip-bomb"


def test_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(UnreadableSource) as caught:
        open_table(path)
    assert caught.value.code == "not-xlsx"


# ---------------------------------------------------------------------------------- JSON Lines


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps({"name": "张三", "age": 30, "tags": ["a"], "ok": True}, ensure_ascii=False),
        "",
        "{not json",
        "[1, 2]",
        "[" * 100_000 + "]" * 100_000,
        '{"n": ' + "9" * 5000 + "}",
        json.dumps({"name": "李四", "extra": 1}, ensure_ascii=False),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = open_table(path)
    assert table.schema.names == ["name", "age", "tags", "ok", "extra"]
    assert rows(table) == [
        {"name": "张三", "age": "30", "tags": '["a"]', "ok": "true", "extra": None},
        {"name": "李四", "age": None, "tags": None, "ok": None, "extra": "1"},
    ]
    assert codes(table) == ["invalid-json", "not-an-object", "invalid-json", "invalid-json"]
    assert [w.line for w in table.warnings] == [3, 4, 5, 6]


def test_json_lines_keys_after_the_sample_are_reported(tmp_path: Path, monkeypatch: Any) -> None:
    from datafactor.dataplane import readers

    monkeypatch.setattr(readers, "SCHEMA_SAMPLE_RECORDS", 2)
    path = tmp_path / "late.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b": 4}\n')
    table = JsonLinesTable(path)
    assert rows(table) == [{"a": "1"}, {"a": "2"}, {"a": "3"}]
    assert codes(table) == ["unknown-key"]


def test_json_lines_long_line_and_binary(tmp_path: Path) -> None:
    long = tmp_path / "long.jsonl"
    long.write_text('{"a": "' + "x" * 10_000 + '"}\n')
    with pytest.raises(UnreadableSource) as caught:
        JsonLinesTable(long, max_line_length=1000)
    assert len(rows(JsonLinesTable(long, max_line_length=10_011))) == 1
    assert caught.value.code == "line-too-long"
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b'{"a": 1}\n\x00\x00\x00')
    with pytest.raises(UnreadableSource) as caught:
        open_table(binary)
    assert caught.value.code == "binary-file"


# ------------------------------------------------------------------------------------- Parquet


def test_parquet_keeps_types_and_counts_rows_cheaply(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    data = pa.table({"id": pa.array(range(10), pa.int64()), "name": [f"n{i}" for i in range(10)]})
    pq.write_table(data, path, row_group_size=4)
    table = open_table(path)
    assert isinstance(table, ParquetTable)
    assert table.row_count == 10
    assert [(c.name, c.type) for c in table.columns] == [("id", pa.int64()), ("name", pa.string())]
    assert table.reader(3).read_all().equals(data)


def test_parquet_from_an_opener(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    table = open_table(lambda: path.open("rb"), format="parquet", name="upload.parquet")
    assert table.name == "upload.parquet"
    assert rows(table) == [{"x": 1}, {"x": 2}]


def test_invalid_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(UnreadableSource) as caught:
        open_table(path)
    assert caught.value.code == "not-parquet"


def test_unsupported_formats_are_refused_with_a_list_of_supported_ones() -> None:
    with pytest.raises(UnreadableSource, match="Parquet") as caught:
        detect_format("old.xls")
    assert caught.value.code == "unsupported-format"
    assert detect_format("a.NDJSON") == "jsonl"


# ---------------------------------------------------------------------------- live databases


@pytest.fixture
def people_url(db_url: str) -> str:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE dp_people (id INTEGER PRIMARY KEY, name VARCHAR(50), "
                "id_number VARCHAR(18), born DATE, balance NUMERIC(12, 2))"
            )
        )
        conn.execute(
            text("INSERT INTO dp_people VALUES (:id, :name, :idn, :born, :balance)"),
            [
                {"id": i, "name": f"人{i}", "idn": f"11010119900307{i:04d}",
                 "born": dt.date(1990, 3, 7), "balance": "12.50"}
                for i in range(1, 6)
            ],
        )  # fmt: skip
    engine.dispose()
    return db_url


def test_database_table_is_read_in_batches(people_url: str) -> None:
    table = SqlTable(people_url, "dp_people")
    assert table.schema.names == ["id", "name", "id_number", "born", "balance"]
    batches = list(table.batches(2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    first = pa.Table.from_batches(batches).to_pylist()[0]
    assert first["name"] == "人1"
    assert first["id_number"] == "110101199003070001"
    assert table.count_rows() == 5
    if people_url.startswith("postgresql"):
        assert table.schema.field("id").type == pa.int64()
        assert first["born"] == dt.date(1990, 3, 7)
        assert first["balance"] == "12.50"  # NUMERIC read as exact text
    else:
        # SQLite's declared types are hints: everything comes as text.
        assert first["born"] == "1990-03-07"
    assert "dp_people" in sql_tables(people_url)
    table.close()


def test_missing_database_table(people_url: str) -> None:
    with pytest.raises(NotFound):
        SqlTable(people_url, "no_such_table")


def test_unreachable_database_never_shows_the_password(caplog: pytest.LogCaptureFixture) -> None:
    url = "postgresql+psycopg://census:S3cret-pw@127.0.0.1:1/dept"
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceUnavailable) as caught:
        SqlTable(url, "people", connect_timeout=2)
    assert "S3cret-pw" not in str(caught.value)
    assert "census:***@127.0.0.1:1/dept" in str(caught.value)
    assert "S3cret-pw" not in caplog.text
    assert caught.value.status == 502


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://u:p%40ss@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        ("mysql+pymysql://root:toor@db/x?charset=utf8mb4", "mysql+pymysql://root:***@db/x?charset=utf8mb4"),
        ("postgresql://h/db?user=u&password=secret", "postgresql://h/db?password=***&user=u"),
        ("sqlite:///var/data.db", "sqlite:///var/data.db"),
        ("s3://AKIA:abc/def@bucket/prefix", "s3://AKIA:***@bucket/prefix"),
        ("not a url:secret@", "not a url:secret@"),
    ],
)  # fmt: skip
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


# ---------------------------------------------------------------------------- from the store


def test_tables_from_blobs_in_a_remote_store(tmp_path: Path) -> None:
    from datafactor.dataplane import BlobStore

    store = BlobStore.from_url(f"memory://df-{uuid.uuid4().hex}", work_dir=tmp_path / "work")
    csv_blob = store.put_bytes(PEOPLE.encode("gbk"), max_bytes=10_000)
    spool = tmp_path / "spool"
    spool.mkdir()
    table = open_table(
        lambda: store.open(csv_blob.digest), format="csv", name="people.csv", spool_dir=spool
    )
    assert table.encoding == "gb18030"
    assert [r["姓名"] for r in rows(table)] == ["张三", "李四"]
    assert list(spool.iterdir()) == []  # the transcoded copy is gone

    book = make_workbook(tmp_path / "b.xlsx", {"s": [["a"], [1]]})
    xlsx_blob = store.put_bytes(book.read_bytes(), max_bytes=100_000)
    assert rows(open_table(lambda: store.open(xlsx_blob.digest), format="xlsx")) == [{"a": "1"}]


def test_chart_sheets_are_not_tables(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append(["a"])
    workbook.active.append([1])
    chart = BarChart()
    chart.add_data(Reference(workbook.active, min_col=1, min_row=1, max_row=2))
    workbook.create_chartsheet("chart").add_chart(chart)
    path = tmp_path / "chart.xlsx"
    workbook.save(path)
    assert [t.sheet for t in excel_tables(path)] == ["Sheet"]


def test_damaged_workbook_parts_are_refused_not_crashed(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "d.xlsx", {"s": [["a"], [1]]})
    rewrite_zip(path, {"xl/workbook.xml": b"<workbook><sheets><sheet/></sheets></workbook>"})
    with pytest.raises(UnreadableSource) as caught:
        open_table(path)
    assert caught.value.code == "not-xlsx"


@pytest.mark.parametrize(
    ("url", "code", "named"),
    [
        # a hostile MySQL server could ask for any of our files with LOAD DATA LOCAL
        (
            "mysql+pymysql://u:s3cret@db.example/x?local_infile=1",
            "url-setting-refused",
            "local_infile",
        ),
        # no host: the server's own Unix socket, where local accounts need no password
        ("postgresql+psycopg://u:s3cret@/x", "url-without-host", "host"),
        (
            "postgresql+psycopg://u:s3cret@db.example/x?host=/var/run/postgresql",
            "url-setting-refused",
            "host",
        ),
        (
            "postgresql+psycopg://u:s3cret@db.example/x?passfile=/root/.pgpass",
            "url-setting-refused",
            "passfile",
        ),
        (
            "postgresql+psycopg://u:s3cret@db.example/x?service=local",
            "url-setting-refused",
            "service",
        ),
    ],
)
def test_database_urls_cannot_reach_our_own_files_or_sockets(
    url: str, code: str, named: str
) -> None:
    with pytest.raises(UnreadableSource) as refused:
        sql_tables(url, connect_timeout=1)  # refused before any connection is attempted
    assert refused.value.code == code
    assert named in str(refused.value)
    assert "s3cret" not in str(refused.value) and "s3cret" not in repr(refused.value.params)


# ------------------------------------------------------------------ a live database's catalogue


def test_sql_database_lists_schemas_tables_views_columns_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (name TEXT NOT NULL, mobile VARCHAR(11))"))
        conn.execute(text("INSERT INTO people VALUES ('张三', '13800138000'), ('李四', NULL)"))
        conn.execute(text("CREATE VIEW names AS SELECT name FROM people"))
        conn.execute(
            text(
                "CREATE VIEW endless AS WITH RECURSIVE n(i) AS "
                "(SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"
            )
        )
    engine.dispose()
    with SqlDatabase(f"sqlite:///{path}") as database:
        assert database.data_schemas() == ["main"]
        assert database.relations("main") == (["people"], ["endless", "names"])
        assert database.columns("main", "people") == [
            SqlColumn("name", "TEXT", False),
            SqlColumn("mobile", "VARCHAR(11)", True),
        ]
        assert database.count_rows("main", "people", timeout=5) == 2
        assert database.count_rows("main", "names") == 2
        # A count that would never end is stopped at its timeout, saying which table.
        with pytest.raises(CountTimedOut) as stopped:
            database.count_rows("main", "endless", timeout=0.1)
        assert stopped.value.params == {"table": "main.endless", "seconds": "0.1"}
        # The connection is usable again afterwards (the handler was removed).
        assert database.count_rows("main", "people") == 2
        with pytest.raises(NotFound):
            database.columns("main", "nowhere")
        assert database.reachable()
