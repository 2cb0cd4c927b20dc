"""Quality benchmark: the GB/T 36344 quality profile over 10 M rows × 30 columns, against ydata-profiling.

1. Generate ``--quality-rows`` rows (default 10 M) × 30 columns of mixed order/customer data as
   Parquet in a temporary folder, in row groups of 1 M rows, with numpy and pyarrow only
   (identifiers that need a check character come from vocabularies built once with the corpus
   generators, ``datafactor.discovery.corpus``, then drawn by numpy index). The data has nulls,
   blanks, placeholder tokens ("NULL", "无"), invalid values (bad check digits, 10-digit phones,
   e-mails without "@"), birth dates contradicting the resident ID, end dates before start
   dates, and duplicated rows. Seed fixed: the file is the same on every run.
2. Time our profile over it: ``ParquetTable.batches()`` → ``QualityProfiler.update`` →
   ``result()``, wall clock and CPU, rows/s; target (issue 4): ≤ 60 s for 10 M × 30 on the
   2-core machine.
3. ``ydata-profiling`` in minimal mode, in its own virtual environment (``.venv-peers/ydata``,
   created here when missing, never the project's venv), in a subprocess with
   ``YDATA_PROFILING_NO_ANALYTICS=1``, on the first ``--quality-ydata-rows`` rows (default 1 M:
   it holds the whole frame in pandas), and our profiler on the same slice: the ratio of their
   times. If installing or running ydata fails, the section says so and why.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from run import Row, Section

from datafactor.dataplane import ParquetTable
from datafactor.discovery.corpus import generate_value
from datafactor.discovery.quality import profile_batches

NAME = "Discovery: quality profile (GB/T 36344), 10 M rows × 30 columns, vs ydata-profiling"
PACKAGES = ["datasketches", "duckdb", "pyarrow", "numpy"]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PEER_VENV = REPO / ".venv-peers" / "ydata"
YDATA_REQUIREMENT = "ydata-profiling==4.18.*"
TARGET_SECONDS = 60.0
TARGET_ROWS = 10_000_000
ROW_GROUP = 1_000_000
SEED = 2026


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quality-rows",
        type=int,
        default=TARGET_ROWS,
        help="quality benchmark: rows of the generated table (default 10,000,000)",
    )
    parser.add_argument(
        "--quality-ydata-rows",
        type=int,
        default=1_000_000,
        help="quality benchmark: rows of the slice ydata-profiling profiles (default 1,000,000)",
    )


# ------------------------------------------------------------------------------------ the data

_CITIES = ["南宁市", "柳州市", "桂林市", "梧州市", "北海市", "防城港市", "钦州市", "贵港市",
           "玉林市", "百色市", "贺州市", "河池市", "来宾市", "崇左市"]  # fmt: skip
_STATUS = ["已支付", "待发货", "已发货", "已完成", "已取消", "退款中"]
_CHANNELS = ["app", "web", "小程序", "线下门店", "电话"]
_WORDS = ["请尽快发货", "周末送货", "发票抬头见备注", "联系不上请放门卫", "客户要求改地址",
          "Please deliver after 6pm", "VIP客户", "易碎品轻放", "已电话确认", "补发第二件"]  # fmt: skip
_PRODUCTS = ["六堡茶", "螺蛳粉", "桂林米粉", "芒果干", "罗汉果", "荔枝", "沃柑", "百香果",
             "砂糖橘", "坭兴陶茶具", "壮锦围巾", "绣球", "桂花糕", "米酒"]  # fmt: skip


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _vocabularies(rng: random.Random) -> dict[str, pa.Array]:
    """Values that need check characters or shapes: built once in Python, drawn by index."""
    return {
        "rid": _strings([generate_value("cn_resident_id", rng) for _ in range(100_000)]),
        "name": _strings([generate_value("person_name", rng) for _ in range(20_000)]),
        "email": _strings([generate_value("email", rng) for _ in range(50_000)]),
        "address": _strings([generate_value("address", rng) for _ in range(50_000)]),
        "card": _strings([generate_value("bank_card", rng) for _ in range(50_000)]),
        "uscc": _strings([generate_value("cn_uscc", rng) for _ in range(20_000)]),
        "vin": _strings([generate_value("vin", rng) for _ in range(50_000)]),
        "plate": _strings([generate_value("license_plate", rng) for _ in range(50_000)]),
        "product": _strings([f"{p}{g}" for p in _PRODUCTS for g in ("", "礼盒", "500g", "家庭装")]),
    }


def _digits(gen: np.random.Generator, n: int, width: int, first: str = "") -> pa.Array:
    """``n`` strings of ``first`` followed by random digits, ``width`` characters in all."""
    body = gen.integers(0, 10, size=(n, width - len(first)), dtype=np.uint8) + ord("0")
    if first:
        head = np.frombuffer(first.encode(), dtype=np.uint8)
        body = np.hstack([np.broadcast_to(head, (n, len(first))), body])
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(body))]
    )


def _date_text(days: np.ndarray) -> pa.Array:
    """``YYYY-MM-DD`` text of datetime64 values, built as bytes (``strftime`` is ~1 µs a value)."""
    day = days.astype("datetime64[D]")
    year = day.astype("datetime64[Y]").astype(np.int64) + 1970
    month = day.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (day - day.astype("datetime64[M]")).astype(np.int64) + 1
    n = len(day)
    out = np.empty((n, 10), dtype=np.uint8)
    for col, (value, digits) in enumerate(((year, 4), (month, 2), (dom, 2))):
        start = (0, 5, 8)[col]
        for k in range(digits):
            out[:, start + k] = (value // 10 ** (digits - 1 - k)) % 10 + 48
    out[:, 4] = out[:, 7] = ord("-")
    offsets = np.arange(0, (n + 1) * 10, 10, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def _with_nulls(gen: np.random.Generator, arr: pa.Array, share: float) -> pa.Array:
    mask = pa.array(gen.random(len(arr)) < share)
    return pc.if_else(mask, pa.scalar(None, arr.type), arr)


def _replace(gen: np.random.Generator, arr: pa.Array, share: float, values: pa.Array) -> pa.Array:
    """Put values drawn from ``values`` in a ``share`` of the cells."""
    mask = pa.array(gen.random(len(arr)) < share)
    other = values.take(pa.array(gen.integers(0, len(values), len(arr))))
    return pc.if_else(mask, other, arr)


def _chunk(gen: np.random.Generator, vocab: dict[str, pa.Array], start: int, n: int) -> pa.Table:
    draw = {k: v.take(pa.array(gen.integers(0, len(v), n))) for k, v in vocab.items()}
    rid = draw["rid"]
    rid18 = pc.equal(pc.utf8_length(rid), 18)
    # Birth date as written by a clerk: from the ID, 0.2 % contradicting it.
    birth = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(rid, 6, 10),
        pc.utf8_slice_codeunits(rid, 10, 12),
        pc.utf8_slice_codeunits(rid, 12, 14),
        "-",
    )
    birth = pc.if_else(rid18, birth, pa.scalar(None, pa.string()))
    birth = _replace(gen, birth, 0.002, _strings(["1990-01-01", "1985-06-15", "2000-12-31"]))
    sex_digit = pc.cast(pc.if_else(rid18, pc.utf8_slice_codeunits(rid, 16, 17), "0"), pa.int8())
    sex = pc.if_else(pc.equal(pc.bit_wise_and(sex_digit, 1), 1), "男", "女")
    sex = pc.if_else(rid18, sex, pa.scalar(None, pa.string()))
    # 0.5 % of IDs with a wrong check character.
    broken = pc.binary_join_element_wise(pc.utf8_slice_codeunits(rid, 0, 17), "0", "")
    rid = pc.if_else(pa.array(gen.random(n) < 0.005), broken, rid)
    mobile = _digits(gen, n, 11, "13")
    mobile = _replace(gen, mobile, 0.01, _digits(gen, 1000, 10, "13"))
    landline = pc.binary_join_element_wise("0771-", _digits(gen, n, 7, "5"), "")
    email = _replace(gen, draw["email"], 0.005, _strings(["no-at-sign.example.com", "n/a"]))
    ip = pc.binary_join_element_wise(
        *[pc.cast(pa.array(gen.integers(1, 255, n)), pa.string()) for _ in range(4)], "."
    )
    amount = _with_nulls(gen, pa.array(np.round(gen.lognormal(4, 1, n), 2)), 0.01)
    price = pc.binary_join_element_wise(
        pc.cast(pa.array(gen.integers(1, 2000, n)), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(gen.integers(0, 100, n)), pa.string()), 2, "0"),
        ".",
    )
    base = np.datetime64("2024-01-01T00:00:00", "s")
    ordered = base + gen.integers(0, 365 * 86400, n).astype("timedelta64[s]")
    order_date = _date_text(ordered)
    starts = np.datetime64("2024-01-01", "D") + gen.integers(0, 365, n).astype("timedelta64[D]")
    ends = starts + gen.integers(0, 400, n).astype("timedelta64[D]")
    flip = gen.random(n) < 0.002
    ends = np.where(flip, starts - np.timedelta64(5, "D"), ends)
    city = _replace(
        gen, pa.array(np.array(_CITIES)[gen.integers(0, len(_CITIES), n)]), 0.01,
        _strings(["NULL", "无", "", " "]),
    )  # fmt: skip
    status = pa.array(np.array(_STATUS)[gen.integers(0, len(_STATUS), n)])
    channel = _with_nulls(
        gen, pa.array(np.array(_CHANNELS)[gen.integers(0, len(_CHANNELS), n)]), 0.02
    )
    words = np.array(_WORDS)[gen.integers(0, len(_WORDS), n)]
    remark = pc.binary_join_element_wise(
        pa.array(words), pc.cast(pa.array(gen.integers(0, 10_000, n)), pa.string()), "，单号"
    )
    remark = pc.if_else(pa.array(gen.random(n) < 0.3), "", remark)
    sku = pc.binary_join_element_wise("SKU-", _digits(gen, n, 6), "")
    columns = {
        "记录号": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "身份证号": rid,
        "姓名": draw["name"],
        "性别": sex,
        "出生日期": birth,
        "手机号": mobile,
        "固定电话": _with_nulls(gen, landline, 0.3),
        "邮箱": email,
        "地址": draw["address"],
        "银行卡号": _with_nulls(gen, draw["card"], 0.05),
        "统一社会信用代码": draw["uscc"],
        "车架号": draw["vin"],
        "车牌号": draw["plate"],
        "ip": ip,
        "订单号": _digits(gen, n, 18, "20"),
        "金额": amount,
        "数量": pa.array(gen.integers(1, 20, n).astype(np.int32)),
        "单价": price,
        "下单时间": pa.array(ordered),
        "下单日期": order_date,
        "城市": city,
        "状态": status,
        "渠道": channel,
        "备注": remark,
        "商品名称": draw["product"],
        "商品编码": sku,
        "开始日期": pa.array(starts),
        "结束日期": pa.array(ends),
        "纬度": pa.array(np.round(gen.uniform(21.0, 26.5, n), 6)),
        "是否会员": pa.array(gen.random(n) < 0.4),
    }
    table = pa.table(columns)
    # 0.5 % of rows are sent twice (a double submission): the last rows of the chunk repeat
    # earlier ones, so the chunk keeps its size without copying every column.
    repeats = n // 200
    if not repeats:
        return table
    again = table.take(pa.array(gen.integers(0, n - repeats, repeats)))
    return pa.concat_tables([table.slice(0, n - repeats), again]).combine_chunks()


def generate(path: Path, rows: int) -> float:
    """Write the benchmark table; seconds taken."""
    started = time.perf_counter()
    rng = random.Random(SEED)
    gen = np.random.default_rng(SEED)
    vocab = _vocabularies(rng)
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, ROW_GROUP):
            chunk = _chunk(gen, vocab, start, min(ROW_GROUP, rows - start))
            if writer is None:
                writer = pq.ParquetWriter(path, chunk.schema, compression="snappy")
            writer.write_table(chunk, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    return time.perf_counter() - started


# --------------------------------------------------------------------------------- our profile


def profile(path: Path, rows: int | None = None) -> tuple[float, float, dict[str, object]]:
    """Profile the first ``rows`` rows (all by default): (wall s, CPU s, result as a dict)."""
    gc.collect()
    table = ParquetTable(path)

    def batches() -> Iterator[pa.RecordBatch]:
        seen = 0
        for batch in table.batches():
            if rows is not None and seen + batch.num_rows > rows:
                batch = batch.slice(0, rows - seen)
            yield batch
            seen += batch.num_rows
            if rows is not None and seen >= rows:
                return

    wall, cpu = time.perf_counter(), time.process_time()
    profiler = profile_batches(table.schema, batches())
    result = profiler.result(warnings=table.warning_count).as_dict()
    return time.perf_counter() - wall, time.process_time() - cpu, result


PROFILE_SCRIPT = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1])
sys.modules.setdefault("run", __import__("run"))
import quality
from pathlib import Path
rows = int(sys.argv[3]) if len(sys.argv) > 3 else None
wall, cpu, result = quality.profile(Path(sys.argv[2]), rows)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": wall, "cpu": cpu, "peak_rss_mb": peak, "result": result}))
"""


def profile_apart(
    path: Path, rows: int | None = None
) -> tuple[float, float, float, dict[str, Any]]:
    """``profile`` in a fresh process, so that its peak memory is its own: (wall, CPU, MB, result)."""
    args = [sys.executable, "-c", PROFILE_SCRIPT, str(BENCH_DIR), str(path)]
    done = subprocess.run(
        [*args, str(rows)] if rows is not None else args,
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return data["wall"], data["cpu"], data["peak_rss_mb"], data["result"]


# ----------------------------------------------------------------------------------- ydata peer

YDATA_SCRIPT = r"""
import json, os, sys, time, resource
os.environ["YDATA_PROFILING_NO_ANALYTICS"] = "1"
import pyarrow.parquet as pq
config = json.loads(sys.stdin.read())
started = time.perf_counter()
pf = pq.ParquetFile(config["parquet"])
frames, seen = [], 0
for batch in pf.iter_batches(batch_size=65536):
    frames.append(batch)
    seen += batch.num_rows
    if seen >= config["rows"]:
        break
import pyarrow as pa
frame = pa.Table.from_batches(frames).slice(0, config["rows"]).to_pandas()
loaded = time.perf_counter()
from ydata_profiling import ProfileReport
report = ProfileReport(frame, minimal=True, progress_bar=False)
description = report.get_description()
done = time.perf_counter()
table = description.table
print(json.dumps({
    "load": loaded - started, "describe": done - loaded, "total": done - started,
    "rows": int(table["n"]), "columns": int(table["n_var"]),
    "duplicates": table.get("n_duplicates"),
    "missing_cells": int(table["n_cells_missing"]),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}, default=str))
"""


def _ensure_ydata() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
            check=True,
            timeout=900,
        )
    probe = subprocess.run(
        [str(python), "-c", "import ydata_profiling, pyarrow"], check=False, capture_output=True
    )
    if probe.returncode != 0:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", YDATA_REQUIREMENT, "pyarrow"],
            check=False,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pip install {YDATA_REQUIREMENT} failed:\n{done.stderr[-1500:]}")
    return python


def _ydata_version(python: Path) -> str:
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('ydata-profiling'), m.version('pandas'))",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "YDATA_PROFILING_NO_ANALYTICS": "1"},
    )
    parts = done.stdout.split()
    return f"ydata-profiling {parts[0]}, pandas {parts[1]}" if len(parts) == 2 else "unknown"


def _run_ydata(python: Path, parquet: Path, rows: int) -> dict[str, object]:
    env = {**os.environ, "YDATA_PROFILING_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [str(python), "-c", YDATA_SCRIPT],
        input=json.dumps({"parquet": str(parquet), "rows": rows}),
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ydata-profiling run failed:\n{done.stderr[-2000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------------------- run


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def run(args: argparse.Namespace) -> Section:
    rows = int(getattr(args, "quality_rows", TARGET_ROWS))
    ydata_rows = min(rows, int(getattr(args, "quality_ydata_rows", 1_000_000)))
    out: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        path = Path(tmp) / "orders.parquet"
        made = generate(path, rows)
        columns = len(pq.read_schema(path))
        size = path.stat().st_size
        notes.append(
            f"Generated {rows:,} rows × {columns} columns ({size / 1e6:.0f} MB Parquet, snappy) in "
            f"{made:.1f} s."
        )
        load_before = _load()
        wall, cpu, peak, result = profile_apart(path)
        load_after = _load()
        full_scale = rows >= TARGET_ROWS
        out.append(
            Row(
                f"Our profile, {rows:,} × {columns} (read Parquet + profile + result), seconds",
                f"{wall:.1f}",
                f"≤ {TARGET_SECONDS:.0f}" if full_scale else "(reduced scale: no target)",
                (wall <= TARGET_SECONDS) if full_scale else None,
            )
        )
        out.append(Row("Same, rows/s", f"{rows / wall:,.0f}"))
        out.append(Row("Same, CPU seconds (both cores)", f"{cpu:.1f}"))
        out.append(Row("Same, peak RSS of the profiling process, MB", f"{peak:,.0f}"))
        notes.append(
            f"Load average (1/5/15 min) before our run: {load_before}; after: {load_after} "
            f"({os.cpu_count()} cores; other work on the machine inflates wall time)."
        )
        indicators = {
            i["id"]: i
            for d in result["dimensions"]
            for i in d["indicators"]  # type: ignore[index,union-attr]
        }
        dup = indicators["distinct_rows"]["details"]  # type: ignore[index]
        notes.append(
            f"Our result: score {result['score']}, rating {result['rating']} "
            f"({result['rating_label']}); not assessed: {', '.join(result['not_assessed'])}; "  # type: ignore[arg-type]
            f"estimated duplicate rows {dup['estimated_duplicate_rows']:,} "  # type: ignore[index]
            f"(generated ≈ 0.5 %); cross-field: "
            + "; ".join(
                f"{r['rule']} {r['failed']:,}/{r['checked']:,}"
                for r in indicators["cross_field_rules"]["details"].get("rules", [])  # type: ignore[index,union-attr]
            )
        )

        small_wall, _, small_peak, _ = profile_apart(path, ydata_rows)
        out.append(Row(f"Our profile, first {ydata_rows:,} rows, seconds", f"{small_wall:.2f}"))
        out.append(Row("Same, peak RSS, MB", f"{small_peak:,.0f}"))
        try:
            python = _ensure_ydata()
            version = _ydata_version(python)
            peer = _run_ydata(python, path, ydata_rows)
            peer_total = float(peer["total"])  # type: ignore[arg-type]
            peer_describe = float(peer["describe"])  # type: ignore[arg-type]
            out.append(
                Row(
                    f"ydata-profiling minimal, same {ydata_rows:,} rows (load + describe), seconds",
                    f"{peer_total:.2f}",
                )
            )
            out.append(Row("ydata-profiling describe only, seconds", f"{peer_describe:.2f}"))
            ratio = peer_total / small_wall
            out.append(
                Row(
                    "ydata-profiling time / ours, same slice",
                    f"{ratio:.1f}×",
                    ratio=f"{ratio:.1f}×",
                )
            )
            out.append(Row("ydata-profiling peak RSS, MB", f"{float(peer['peak_rss_mb']):,.0f}"))  # type: ignore[arg-type]
            notes.append(
                f"Peer: {version} in `{PEER_VENV.relative_to(REPO)}` (never the project venv), "
                "in a subprocess with `YDATA_PROFILING_NO_ANALYTICS=1`; "
                "`ProfileReport(frame, minimal=True).get_description()` on a pandas frame of the "
                "same Parquet rows (reading them into pandas is counted, as reading is in ours). "
                + (
                    f"It found {peer['duplicates']} duplicate rows and "
                    if peer["duplicates"] is not None
                    else "It reported no duplicate count (not computed in minimal mode) and "
                )
                + f"{peer['missing_cells']:,} missing cells (nulls only: it does not count "
                "blanks or placeholders). "
                "Minimal mode computes per-column statistics (types, missing, distinct, "
                "quantiles) but no correlations, interactions or duplicates; it has no quality "
                "score."
            )
        except Exception as error:  # the peer's failure must not hide our figures
            out.append(Row("ydata-profiling ran", "no", "yes", False))
            notes.append(f"ydata-profiling failed: `{str(error).strip()[-1500:]}`")
    notes.insert(
        0,
        "One process reads the Parquet file batch by batch (`ParquetTable`, 65,536 rows, read "
        "ahead on a thread by `profile_batches`) and feeds `QualityProfiler`; per batch one "
        "DuckDB query hashes the text cells, numpy hashes the others and folds row hashes, "
        "numpy and pyarrow do the rest (see "
        "`datafactor.discovery.quality`). Columns: record number, "
        "resident ID, name, sex, birth date, mobile, landline, e-mail, address, bank card, USCC, "
        "VIN, plate, IP, order number, amount, quantity, price as text, order time, order date as "
        "text, city, status, channel, remark, product, SKU, start and end dates, latitude, "
        "member flag.",
    )
    return Section(
        title=NAME,
        description=(
            "Profiles a generated 10 M × 30 Parquet table on the six GB/T 36344 dimensions "
            "(score and five-level rating) and runs ydata-profiling (minimal mode) on a slice. "
            "Target from issue 4: ≤ 60 s on the 2-core machine; ydata side by side as a ratio."
        ),
        rows=out,
        notes=notes,
        ratio_header="Ratio vs ydata",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    section = run(parser.parse_args())
    for row in section.rows:
        print(f"{row.figure}: {row.value} {row.target} {row.ok}")
    for note in section.notes:
        print(note)
