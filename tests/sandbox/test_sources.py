"""Sandbox sources: every kind of data-plane version becomes one Parquet file the worker reads —
in place when it already is Parquet in the local store, otherwise converted once (typed where the
reader gives text) and reused; projections hold exactly the granted columns. Both databases.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from registry_support import principal as holder
from sandbox_support import add_file

from datafactor import dataplane
from datafactor.dataplane import DatasetDraft
from datafactor.errors import InvalidInput, NotFound
from datafactor.sandbox.domain import Limits
from datafactor.sandbox.sources import materialise
from datafactor.sandbox.worker import TableSource, WorkerPool, run_staged

ROWS = [("0771001", "南宁", 12.5, 3), ("0771002", "南宁", 7.0, 1), ("0772001", "柳州", 3.25, 2)]
CSV = "户号,地区,用电量,人数\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in ROWS)


def xlsx_bytes() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["户号", "地区", "用电量", "人数"])
    for row in ROWS:
        sheet.append([row[0], row[1], str(row[2]), str(row[3])])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def parquet_bytes() -> bytes:
    out = io.BytesIO()
    pq.write_table(
        pa.table(
            {
                "户号": [r[0] for r in ROWS],
                "地区": [r[1] for r in ROWS],
                "用电量": [r[2] for r in ROWS],
                "人数": pa.array([r[3] for r in ROWS], pa.int64()),
            }
        ),
        out,
    )
    return out.getvalue()


FILES = {
    "utf8.csv": lambda: CSV.encode(),
    "gbk.csv": lambda: CSV.encode("gbk"),
    "rows.jsonl": lambda: "".join(
        f'{{"户号": "{a}", "地区": "{b}", "用电量": "{c}", "人数": "{d}"}}\n' for a, b, c, d in ROWS
    ).encode(),
    "book.xlsx": xlsx_bytes,
}


@pytest.mark.parametrize("filename", sorted(FILES))
def test_a_file_version_is_converted_once_typed_and_reused(db, settings, enterprise, filename):
    who = holder(db, enterprise)
    version_id = add_file(db, settings, who, FILES[filename](), filename)
    with db.read() as s:
        first = materialise(s, settings, version_id)
    assert first.path == settings.var_dir / "sandbox" / f"{version_id}.parquet"
    assert not first.in_place
    assert [(c.name, c.type) for c in first.columns] == [
        ("户号", "VARCHAR"),  # leading zeros: a code, not a number
        ("地区", "VARCHAR"),
        ("用电量", "DOUBLE"),
        ("人数", "BIGINT"),
    ]
    rows = pq.read_table(first.path).to_pylist()
    assert rows[0] == {"户号": "0771001", "地区": "南宁", "用电量": 12.5, "人数": 3}
    stamp = first.path.stat().st_mtime_ns
    with db.read() as s:
        again = materialise(s, settings, version_id)
    assert again == first and first.path.stat().st_mtime_ns == stamp
    assert not [p for p in first.path.parent.iterdir() if p.name.startswith(".")]


def test_a_parquet_version_in_the_local_store_is_used_in_place(db, settings, enterprise):
    who = holder(db, enterprise)
    version_id = add_file(db, settings, who, parquet_bytes(), "usage.parquet")
    with db.read() as s:
        found = materialise(s, settings, version_id)
    assert found.in_place
    assert str(found.path).startswith(str(settings.var_dir / "storage"))
    assert found.type_of("人数") == "BIGINT" and found.type_of("用电量") == "DOUBLE"


def test_a_projection_holds_exactly_the_granted_columns_and_the_worker_runs_on_it(
    db, settings, enterprise, tmp_path
):
    who = holder(db, enterprise)
    version_id = add_file(db, settings, who, parquet_bytes(), "usage.parquet")
    with db.read() as s:
        projected = materialise(s, settings, version_id, columns=["地区", "用电量"])
        with pytest.raises(InvalidInput):
            materialise(s, settings, version_id, columns=["地区", "姓名"])
        with pytest.raises(NotFound):
            materialise(s, settings, "no-such-version")
    assert projected.names == ("地区", "用电量") and not projected.in_place
    assert pq.read_schema(projected.path).names == ["地区", "用电量"]
    source = TableSource("usage", str(projected.path), projected.names)
    with WorkerPool(1, spill_directory=tmp_path) as pool:
        table = run_staged(
            'SELECT "地区", SUM("用电量") AS s FROM usage GROUP BY 1 ORDER BY 1',
            [source],
            limits=Limits(),
            pool=pool,
        )
    assert table.to_pylist() == [{"地区": "南宁", "s": 19.5}, {"地区": "柳州", "s": 3.25}]


def test_a_database_version_is_a_snapshot_until_refreshed(db, settings, enterprise, tmp_path: Path):
    path = tmp_path / "grid.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE usage (household TEXT, region TEXT, kwh REAL, people INTEGER)")
        conn.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)", ROWS)
    who = holder(db, enterprise)
    with db.write() as s:
        dataset = dataplane.create_dataset(s, who, DatasetDraft(name="电网"))
        version_id = dataplane.add_database_version(
            s,
            who,
            dataset.id,
            url=f"sqlite:///{path}",
            table="usage",
            schema=None,
            secret_key=settings.secret_key,
        ).id
    with db.read() as s:
        first = materialise(s, settings, version_id)
    assert first.type_of("people") == "BIGINT" and first.type_of("kwh") == "DOUBLE"
    assert first.type_of("household") == "VARCHAR"
    assert pq.read_metadata(first.path).num_rows == 3
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO usage VALUES ('0773001', '桂林', 1.0, 1)")
    with db.read() as s:
        assert pq.read_metadata(materialise(s, settings, version_id).path).num_rows == 3
        refreshed = materialise(s, settings, version_id, refresh=True)
    assert pq.read_metadata(refreshed.path).num_rows == 4
