"""Sandbox benchmark: an aggregate query over 10 M rows through the sandbox vs plain DuckDB, and
SmartNoise SQL on the same query and data as a peer.

1. Generate once (seeded, cached in ``bench/out/sandbox/``) ``--sandbox-rows`` rows (default
   10 M) of household electricity readings as Parquet, with numpy and pyarrow only:
   ``household_id`` (the privacy unit, 户号; ~500 k households × 20 monthly readings),
   ``district`` (县级行政区划代码, 120 values, group key), ``month`` (``YYYY-MM``, group key),
   ``kwh`` (measure, bounds 0–2000; a few meter corrections below and bulk readings above) and
   ``bill_fen`` (measure, the bill in fen, bounds 0–200,000).
2. The query ``QUERY`` (count, average and sum by district), timed after a warm-up as the best
   and the median of ``--sandbox-repeats`` runs, side by side in one run:
   (a) plain DuckDB on the Parquet file, in this process, with the same thread count as the
       sandbox worker's limits (rules/sandbox.yaml ``worker.threads``);
   (b) through the sandbox: ``checker.check_query`` → ``worker.run_staged`` (the worker pool
       warmed by the warm-up run) → ``dp.release``, once with differential privacy (ε the rules'
       ``budget.default_epsilon_per_query``, k the rules' ``output.default_k``) and once with k
       only. The ratio (b)/(a) is the figure; target (issue 8): ≤ 1.5×;
   (c) SmartNoise SQL (PyPI ``smartnoise-sql``) in its own virtual environment
       (``.venv-peers/smartnoise``, created here when missing, never the project's venv: it pins
       opendp < 0.15 and pandas < 3), in a subprocess, through its Postgres-dialect SQL reader on
       a DuckDB connection over the same Parquet file (its fastest honest reader: the
       ``PandasReader`` copies the frame into SQLite first), with the same ε, the same
       contribution bound and the same threads; reported as a ratio to (a).
   Diagnostics in the same rounds: the staged SQL alone on the plain connection (the cost of
   the bounding stages without the worker) and ``SELECT 1`` through ``run_staged`` (the worker's
   fixed cost per query); then DuckDB's own profiler, one run each, for where the time goes.
3. The answers' closeness: the released values vs the exact values per district, split into the
   contribution bounding alone (the worker's staged values before noise) and the noise alone.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from run import Row, Section

NAME = "Sandbox: aggregate query over 10 M rows vs plain DuckDB, and SmartNoise SQL"
PACKAGES = ["duckdb", "sqlglot", "opendp", "pyarrow", "numpy"]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CACHE = BENCH_DIR / "out" / "sandbox"
PEER_VENV = REPO / ".venv-peers" / "smartnoise"
SMARTNOISE_REQUIREMENTS = ["smartnoise-sql==1.0.*", "duckdb", "pyarrow"]
TARGET_ROWS = 10_000_000
TARGET_RATIO = 1.5
READINGS_PER_HOUSEHOLD = 20
DISTRICTS = 120
ROW_GROUP = 1_000_000
SEED = 2026
FALLBACK_MEMORY_MB = 4096  # SmartNoise's DuckDB memory limit if the worker's is too small for it
TABLE = "readings"
KWH_BOUNDS = (0.0, 2000.0)
BILL_BOUNDS = (0.0, 200_000.0)
QUERY = (
    "SELECT district, COUNT(*) AS readings, AVG(kwh) AS avg_kwh, SUM(bill_fen) AS total_bill "
    "FROM readings GROUP BY district"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox-rows",
        type=int,
        default=TARGET_ROWS,
        help="sandbox benchmark: rows of the generated readings (default 10,000,000)",
    )
    parser.add_argument(
        "--sandbox-repeats",
        type=int,
        default=7,
        help="sandbox benchmark: timed runs of each contender after a warm-up (default 7)",
    )


# ------------------------------------------------------------------------------------ the data

# Guangxi's 14 prefecture-level cities (4501 南宁 … 4514 崇左); county codes 02.. under each.
_CITY_CODES = [f"45{c:02d}" for c in range(1, 15)]


def district_codes() -> list[str]:
    """120 county-level codes, spread over the 14 cities (8 or 9 each)."""
    codes: list[str] = []
    for i in range(DISTRICTS):
        city = _CITY_CODES[i % len(_CITY_CODES)]
        codes.append(f"{city}{i // len(_CITY_CODES) + 2:02d}")
    return sorted(codes)


def _months(count: int) -> list[str]:
    """``count`` consecutive months ending 2025-12, as ``YYYY-MM``."""
    out = []
    year, month = 2025, 12
    for _ in range(count):
        out.append(f"{year}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def generate(path: Path, rows: int) -> float:
    """Write the readings table (seeded: the same file on every run); seconds taken.

    Households: ``rows // 20``, each in one district (districts drawn with Zipf-like weights, so
    group sizes differ), with a consumption level (lognormal, median ~200 kWh a month). The file
    is a meter-reading export: month by month, every household once a month. kWh = level ×
    season × noise, rounded to 0.1; 0.05 % of readings are meter corrections (negative) and
    0.05 % bulk readings above the 2,000 kWh bound (clamping matters). The bill follows the
    residential tiered tariff (阶梯电价: 0.5283 yuan up to 230 kWh, +0.05 to 400, +0.30 above).
    """
    started = time.perf_counter()
    gen = np.random.default_rng(SEED)
    households = max(1, rows // READINGS_PER_HOUSEHOLD)
    weights = 1.0 / np.arange(1, DISTRICTS + 1) ** 0.6
    weights /= weights.sum()
    codes = np.array(district_codes())
    home = gen.choice(DISTRICTS, size=households, p=gen.permutation(weights))
    level = gen.lognormal(np.log(200.0), 0.6, households)
    months = _months(-(-rows // households))
    season = 1.0 + 0.35 * np.cos(np.arange(len(months)) / 12.0 * 2 * np.pi)  # winter/summer peak
    district_dict = pa.array(codes.tolist(), pa.string())
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            index = np.arange(start, start + n, dtype=np.int64)
            hh = index % households
            month = index // households
            kwh = level[hh] * season[month] * gen.lognormal(0.0, 0.25, n)
            odd = gen.random(n)
            kwh = np.where(odd < 0.0005, -gen.uniform(0, 300, n), kwh)
            kwh = np.where(odd > 0.9995, gen.uniform(2000, 8000, n), kwh)
            kwh = np.round(kwh, 1)
            used = np.clip(kwh, 0, None)
            yuan = (
                0.5283 * used
                + 0.05 * np.clip(used - 230, 0, None)
                + 0.30 * np.clip(used - 400, 0, None)
            )
            bill = np.round(yuan * 100).astype(np.int64)
            table = pa.table(
                {
                    "household_id": pa.array(1_000_000_000 + hh * 7 + 3),  # 户号, not dense
                    "district": pa.DictionaryArray.from_arrays(
                        pa.array(home[hh].astype(np.int32)), district_dict
                    ).cast(pa.string()),
                    "month": pa.array(np.array(months)[month].tolist(), pa.string()),
                    "kwh": pa.array(kwh),
                    "bill_fen": pa.array(bill),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    return time.perf_counter() - started


def dataset(rows: int) -> tuple[Path, float | None]:
    """The cached readings file for ``rows`` (generated when missing): (path, seconds or None)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"readings-{rows}-seed{SEED}.parquet"
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path, None
    partial = path.with_suffix(".partial")
    seconds = generate(partial, rows)
    partial.replace(path)
    return path, seconds


def ranked_dataset(path: Path) -> tuple[Path, frozenset[str], float | None]:
    """The readings as the sandbox holds them once a profile is declared (``sources.rank_file``:
    each row's number within its household added, the household-level columns found), cached:
    (path, household-level columns, seconds it took or None when cached)."""
    from datafactor.sandbox.sources import rank_file

    target = path.with_name(path.stem + "-ranked.parquet")
    sidecar = target.with_suffix(".json")
    if target.exists() and sidecar.exists() and target.stat().st_mtime >= path.stat().st_mtime:
        return target, frozenset(json.loads(sidecar.read_text())["unit_level"]), None
    started = time.perf_counter()
    level = rank_file(path, "household_id", target)
    sidecar.write_text(json.dumps({"unit_level": level}))
    return target, frozenset(level), time.perf_counter() - started


# ---------------------------------------------------------------------------------- plain DuckDB


def worker_limits() -> Any:
    """The sandbox worker's limits as the rules set them (``worker`` and ``output`` sections)."""
    from datafactor.sandbox.worker import default_limits

    return default_limits()


def plain_connection(path: Path, threads: int, memory_mb: int) -> Any:
    """A plain in-process DuckDB connection with ``readings`` a view over the Parquet file."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET memory_limit = '{memory_mb}MB'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM read_parquet('{path}')")  # noqa: S608 - our file
    return con


def exact_answer(con: Any) -> dict[str, tuple[float, float, float]]:
    """The exact answer by district: (readings, avg_kwh, total_bill)."""
    return {str(r[0]): (float(r[1]), float(r[2]), float(r[3])) for r in con.sql(QUERY).fetchall()}


# --------------------------------------------------------------------------------- the sandbox


def catalog(unit_level: frozenset[str] = frozenset()) -> dict[str, Any]:
    from datafactor.sandbox.domain import ColumnRole, ColumnSpec, TableSpec

    spec = TableSpec(
        TABLE,
        (
            ColumnSpec("household_id", "BIGINT", ColumnRole.PRIVACY_UNIT),
            ColumnSpec("district", "VARCHAR", ColumnRole.GROUP_KEY),
            ColumnSpec("month", "VARCHAR", ColumnRole.GROUP_KEY),
            ColumnSpec("kwh", "DOUBLE", ColumnRole.MEASURE, *KWH_BOUNDS),
            ColumnSpec("bill_fen", "BIGINT", ColumnRole.MEASURE, *BILL_BOUNDS),
        ),
        unit_level=unit_level,
    )
    return {TABLE: spec}


class SandboxPath:
    """checker → worker → release, each stage timed (the grant's services add database work
    around this — decision, budget, records — which this benchmark leaves out: it measures the
    computation the issue's target is about)."""

    def __init__(self, path: Path, *, dp: bool, unit_level: frozenset[str]) -> None:
        from datafactor.sandbox import checker, worker
        from datafactor.sandbox import dp as dp_mod
        from datafactor.sandbox.domain import RANK_COLUMN
        from datafactor.sandbox.rulebook import section

        self.checker, self.dp_mod, self.worker = checker, dp_mod, worker
        self.dp = dp
        self.catalog = catalog(unit_level)
        self.limits = worker_limits()
        self.k = int(section("output")["default_k"])
        self.epsilon = float(section("budget")["default_epsilon_per_query"]) if dp else None
        spec = self.catalog[TABLE]
        columns = (*(c.name for c in spec.columns), RANK_COLUMN)
        self.sources = [worker.TableSource(TABLE, str(path), columns)]
        self.plan: Any = None
        self.staged: pa.Table | None = None
        self.released: Any = None

    def __call__(self) -> dict[str, float]:
        t0 = time.perf_counter()
        plan = self.checker.check_query(QUERY, self.catalog, dp=self.dp)
        t1 = time.perf_counter()
        # As the services run it: groups under k dropped inside the worker.
        sql = self.checker.with_min_units(plan.staged_sql, self.k)
        staged = self.worker.run_staged(sql, self.sources, limits=self.limits)
        t2 = time.perf_counter()
        released = self.dp_mod.release(plan, staged, k=self.k, epsilon=self.epsilon)
        t3 = time.perf_counter()
        self.plan, self.staged, self.released = plan, staged, released
        return {"check": t1 - t0, "run": t2 - t1, "release": t3 - t2, "total": t3 - t0}


def staged_answer(staged: pa.Table) -> dict[str, tuple[float, float, float]]:
    """The worker's staged result as the answer it would give without noise (bounded values)."""
    data = staged.to_pydict()
    out: dict[str, tuple[float, float, float]] = {}
    for i, district in enumerate(data["district"]):
        count = float(data["avg_kwh__count"][i] or 0)
        out[str(district)] = (
            float(data["readings__count"][i] or 0),
            float(data["avg_kwh__sum"][i] or 0) / count if count else 0.0,
            float(data["total_bill__sum"][i] or 0),
        )
    return out


def released_answer(released: Any) -> dict[str, tuple[float, float, float]]:
    cols = list(released.columns)
    at = {name: cols.index(name) for name in ("district", "readings", "avg_kwh", "total_bill")}
    return {
        str(row[at["district"]]): (
            float(row[at["readings"]]),
            float(row[at["avg_kwh"]]),
            float(row[at["total_bill"]]),
        )
        for row in released.rows
    }


# ------------------------------------------------------------------------------ SmartNoise peer

# Run in the peer's venv. SmartNoise SQL has no DuckDB reader; its Postgres reader takes any
# DB-API connection, and DuckDB speaks the Postgres dialect SmartNoise writes with two
# exceptions the adapter below bridges: DuckDB refuses a volatile ``ORDER BY RANDOM()`` inside
# a window (SmartNoise's per-unit reservoir sample), so the random key is computed one level
# down (same meaning, same cost), and DuckDB's ``rollback()`` raises outside a transaction.
SMARTNOISE_SCRIPT = r"""
import importlib.metadata as md, json, re, resource, statistics, sys, time
import duckdb, snsql
from snsql import Privacy

config = json.loads(sys.stdin.read())
SAMPLE = re.compile(r"ORDER BY RANDOM \( \) \) AS row_num FROM \((.*)\) AS clamped \)", re.S)
rewrites = []


class Cursor:
    def __init__(self, cur):
        self.cur, self.description = cur, None

    def execute(self, sql):
        sql, n = SAMPLE.subn(
            r"ORDER BY __random ) AS row_num FROM ( SELECT *, RANDOM ( ) AS __random "
            r"FROM (\1) AS clamped ) AS randomised )",
            sql,
        )
        rewrites.append((n, sql))
        self.cur.execute(sql)
        self.description = self.cur.description

    def __iter__(self):
        return iter(self.cur.fetchall())


class Connection:
    def __init__(self, con):
        self.con = con

    def cursor(self):
        return Cursor(self.con.cursor())

    def commit(self):
        pass

    def rollback(self):
        pass


con = duckdb.connect()
con.execute(f"SET threads = {config['threads']}")
con.execute(f"SET memory_limit = '{config['memory_mb']}MB'")
con.execute("SET enable_progress_bar = false")  # it writes to stdout, where the result goes
con.execute("CREATE SCHEMA public")
con.execute(f"CREATE VIEW public.readings AS SELECT * FROM read_parquet('{config['parquet']}')")
table = {
    "row_privacy": False,
    "censor_dims": True,
    "household_id": {"name": "household_id", "type": "int", "private_id": True},
    "district": {"name": "district", "type": "string"},
    "month": {"name": "month", "type": "string"},
    "kwh": {"name": "kwh", "type": "float", "lower": config["kwh"][0],
            "upper": config["kwh"][1], "nullable": False},
    "bill_fen": {"name": "bill_fen", "type": "int", "lower": config["bill"][0],
                 "upper": config["bill"][1], "nullable": False},
}
query = config["query"].replace("FROM readings", "FROM public.readings")


def make_reader(privacy, max_ids):
    meta = {"Database": {"public": {"readings": {**table, "max_ids": max_ids}}}}
    return snsql.from_connection(Connection(con), privacy=privacy, metadata=meta,
                                 engine="postgres")


# SmartNoise gives each mechanism the Privacy's epsilon; scale it so the whole query costs the
# sandbox's per-query epsilon (basic composition, as get_privacy_cost reports it).
unit_cost = float(make_reader(Privacy(epsilon=1.0, delta=config["delta"]), 1)
                  .get_privacy_cost(query)[0])
privacy = Privacy(epsilon=config["epsilon"] / unit_cost, delta=config["delta"])
# SmartNoise refuses a bound whose noise scale passes 10^7 ("Noise scale is too large"): take the
# largest bound it accepts, at most the sandbox's.
max_ids, refused = config["max_ids"], None
while True:
    try:
        reader = make_reader(privacy, max_ids)
        cost = [float(x) for x in reader.get_privacy_cost(query)]
        break
    except ValueError as error:
        if max_ids == 1 or "too large" not in str(error):
            raise
        refused = refused or str(error).splitlines()[0]
        max_ids -= 1
memory_note = None
try:
    result = reader.execute(query)  # warm-up
except duckdb.OutOfMemoryException as error:
    # Under the sandbox's memory limit its window over every row runs out: give it the
    # fallback limit (and say so) rather than no figure at all.
    memory_note = str(error).splitlines()[0]
    con.execute(f"SET memory_limit = '{config['fallback_memory_mb']}MB'")
    result = reader.execute(query)
inner = rewrites[-1][1]
plain = config["query"].replace("FROM readings", "FROM public.readings")
con.execute(plain).fetchall()
con.execute(inner).fetchall()
times, sql_times, plain_times = [], [], []
for _ in range(config["repeats"]):  # interleaved, as in the main process
    started = time.perf_counter()
    con.execute(plain).fetchall()
    plain_times.append(time.perf_counter() - started)
    started = time.perf_counter()
    result = reader.execute(query)
    times.append(time.perf_counter() - started)
    started = time.perf_counter()
    con.execute(inner).fetchall()
    sql_times.append(time.perf_counter() - started)
header, rows = result[0], result[1:]
print(json.dumps({
    "version": f"smartnoise-sql {md.version('smartnoise-sql')}, opendp {md.version('opendp')}, "
               f"duckdb {md.version('duckdb')}, pandas {md.version('pandas')}",
    "times": times, "sql_times": sql_times, "plain_times": plain_times, "cost": cost, "rewritten": rewrites[-1][0],
    "inner_sql": inner, "mechanism_epsilon": privacy.epsilon, "max_ids": max_ids,
    "refused": refused, "memory_note": memory_note,
    "columns": list(header), "rows": [[str(r[0]), *map(float, r[1:])] for r in rows],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def _ensure_smartnoise() -> Path:
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
        [str(python), "-c", "import snsql, duckdb, pyarrow"], check=False, capture_output=True
    )
    if probe.returncode != 0:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *SMARTNOISE_REQUIREMENTS],
            check=False,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pip install smartnoise-sql failed:\n{done.stderr[-1500:]}")
    return python


def run_smartnoise(path: Path, *, threads: int, memory_mb: int, epsilon: float, max_ids: int,
                   repeats: int) -> dict[str, Any]:  # fmt: skip
    python = _ensure_smartnoise()
    config = {
        "parquet": str(path),
        "threads": threads,
        "memory_mb": memory_mb,
        "epsilon": epsilon,
        "delta": 1e-6,
        "max_ids": max_ids,
        "kwh": KWH_BOUNDS,
        "bill": BILL_BOUNDS,
        "query": QUERY,
        "repeats": repeats,
        "fallback_memory_mb": FALLBACK_MEMORY_MB,
    }
    done = subprocess.run(
        [str(python), "-c", SMARTNOISE_SCRIPT],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"SmartNoise SQL run failed:\n{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"SmartNoise SQL gave no result:\n{done.stdout[-1000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ----------------------------------------------------------------------------------------- run


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _closeness(
    got: dict[str, tuple[float, float, float]], exact: dict[str, tuple[float, float, float]]
) -> str:
    """Median and largest relative difference per output column over the groups shown."""
    shown = [d for d in got if d in exact]
    if not shown:
        return "no group shown"
    parts = []
    for i, name in enumerate(("readings", "avg_kwh", "total_bill")):
        errors = [abs(got[d][i] - exact[d][i]) / abs(exact[d][i]) for d in shown if exact[d][i]]
        parts.append(f"{name} median {statistics.median(errors):.2%}, max {max(errors):.2%}")
    return f"{len(shown)}/{len(exact)} groups shown; " + "; ".join(parts)


def operator_profile(con: Any, sql: str) -> str:
    """DuckDB's own per-operator timings for one run of ``sql`` (summed over threads): where the
    time of a query goes, operator by operator, largest first."""
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        out = Path(tmp) / "profile.json"
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{out}'")
        try:
            con.sql(sql).fetchall()
        finally:
            con.execute("PRAGMA disable_profiling")
        data = json.loads(out.read_text())
    found: list[tuple[float, str]] = []

    def walk(node: dict[str, Any]) -> None:
        timing = float(node.get("timing") or 0.0)
        rows = node.get("intermediate_rows")
        if timing >= 0.002:
            found.append((timing, f"{node.get('name', '?')} → {rows:,} rows"))
        for child in node.get("children", []):
            walk(child)

    for node in data.get("operator", []):
        walk(node)
    query = data.get("query", {})
    parts = ", ".join(f"{label} {t * 1e3:,.0f} ms" for t, label in sorted(found, reverse=True))
    return (
        f"{float(query.get('total_time', 0)) * 1e3:,.0f} ms wall, "
        f"{float(query.get('cpu_time', 0)) * 1e3:,.0f} ms CPU: {parts}"
    )


def _fetch(con: Any, sql: str) -> Any:
    return con.sql(sql).fetchall()


def _stats(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def run(args: argparse.Namespace) -> Section:
    rows = int(getattr(args, "sandbox_rows", TARGET_ROWS))
    repeats = max(1, int(getattr(args, "sandbox_repeats", 7)))
    full_scale = rows >= TARGET_ROWS
    out: list[Row] = []
    notes: list[str] = []
    raw, made = dataset(rows)
    size = raw.stat().st_size
    # Everything reads the file the sandbox holds: the readings with each row's number within
    # its household (one more column, which the plain query and the peer do not read).
    path, unit_level, ranking = ranked_dataset(raw)
    notes.append(
        f"Data: {rows:,} readings of {rows // READINGS_PER_HOUSEHOLD:,} households in "
        f"{DISTRICTS} districts ({size / 1e6:.0f} MB Parquet, snappy, row groups of "
        f"{ROW_GROUP:,}; "
        + (f"generated in {made:.1f} s" if made is not None else "cached from an earlier run")
        + f", `{raw.relative_to(REPO)}`). Query: `{QUERY}`."
    )
    notes.append(
        "Once per data version, when its profile is declared, the sandbox numbers each row "
        "within its household, writes the rows in the order of that number (so a bound on it "
        "skips whole row groups) and finds the household-level columns (`sources.rank_file`: "
        + (f"{ranking:.1f} s here" if ranking is not None else "cached from an earlier run")
        + f"; household-level: {', '.join(sorted(unit_level)) or 'none'}). A query that groups "
        "and filters on household-level columns only (as this one, by district) runs in one "
        "aggregation (the checker's single-pass plan); any other goes through the per-household "
        "stage."
    )
    limits = worker_limits()
    con = plain_connection(path, limits.threads, limits.memory_mb)
    exact = exact_answer(con)  # also the plain contender's warm-up

    contenders: dict[str, Callable[[], Any]] = {"plain": lambda: con.sql(QUERY).fetchall()}
    sandboxes: dict[str, SandboxPath] = {}
    breakdown: dict[str, list[dict[str, float]]] = {}
    for name, dp in (("dp", True), ("k", False)):
        try:
            sandbox = SandboxPath(path, dp=dp, unit_level=unit_level)
            sandbox()  # warm-up: starts the worker pool, loads the libraries
        except Exception as error:  # the harness reports what it can
            out.append(Row(f"Sandbox path ({'DP' if dp else 'k only'}) ran", "no", "yes", False))
            notes.append(f"Sandbox path ({name}) failed: `{type(error).__name__}: {error}`"[:1500])
            continue
        sandboxes[name] = sandbox
        breakdown[name] = []
        contenders[name] = sandbox
    plan = next((s.plan for s in sandboxes.values() if s.plan is not None), None)
    for name, sandbox in sandboxes.items():
        # Diagnostics: the staged SQL alone on the plain connection (the cost of the bounding
        # stages without the worker), and a trivial query through the worker (its fixed cost).
        staged_sql = sandbox.plan.staged_sql
        con.sql(staged_sql).fetchall()
        contenders[f"staged-{name}"] = functools.partial(_fetch, con, staged_sql)
    if sandboxes:
        any_sandbox = next(iter(sandboxes.values()))

        def trivial() -> Any:
            return any_sandbox.worker.run_staged(
                "SELECT 1 AS one", any_sandbox.sources, limits=any_sandbox.limits
            )

        trivial()
        contenders["trivial"] = trivial

    gc.collect()
    load_before = _load()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):  # interleaved: a change of load hits every contender alike
        for name, fn in contenders.items():
            started = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - started)
            if name in breakdown:
                breakdown[name].append(result)
    load_after = _load()

    plain_best, plain_median = _stats(times["plain"])
    out.append(
        Row(
            f"Plain DuckDB, {limits.threads} threads: best / median of {repeats}, ms",
            f"{plain_best * 1e3:,.0f} / {plain_median * 1e3:,.0f}",
        )
    )
    labels = {"dp": f"with DP (ε {sandboxes['dp'].epsilon:g}, k {sandboxes['dp'].k})"
              if "dp" in sandboxes else "with DP", "k": "k only, no noise"}  # fmt: skip
    for name in ("dp", "k"):
        if name not in sandboxes:
            continue
        best, median = _stats(times[name])
        ratio = median / plain_median
        out.append(
            Row(
                f"Sandbox {labels[name]}: best / median, ms",
                f"{best * 1e3:,.0f} / {median * 1e3:,.0f}",
            )
        )
        out.append(
            Row(
                f"Sandbox {labels[name]} / plain DuckDB (medians)",
                f"{ratio:.2f}×",
                f"≤ {TARGET_RATIO}×" if full_scale else "(reduced scale: no target)",
                (ratio <= TARGET_RATIO) if full_scale else None,
                f"{ratio:.2f}×",
            )
        )
        stages = {
            stage: statistics.median(b[stage] for b in breakdown[name])
            for stage in ("check", "run", "release")
        }
        out.append(
            Row(
                f"Sandbox {labels[name]}: check / worker run / release (medians), ms",
                " / ".join(f"{stages[s] * 1e3:,.1f}" for s in ("check", "run", "release")),
            )
        )
    for name in ("dp", "k"):
        if f"staged-{name}" not in times:
            continue
        best, median = _stats(times[f"staged-{name}"])
        out.append(
            Row(
                f"Diagnostic: staged SQL ({labels[name]}) alone on the plain connection: "
                "best / median, ms",
                f"{best * 1e3:,.0f} / {median * 1e3:,.0f}",
                ratio=f"{median / plain_median:.2f}×",
            )
        )
    if "trivial" in times:
        best, median = _stats(times["trivial"])
        out.append(
            Row(
                "Diagnostic: `SELECT 1` through `run_staged` (the worker's fixed cost per query): "
                "best / median, ms",
                f"{best * 1e3:,.1f} / {median * 1e3:,.1f}",
            )
        )
    notes.append(
        "Plain DuckDB reads the same file as the sandbox — its ranked copy, ordered by the "
        "number — so both gain alike from that order; the figures compare the work per query."
    )
    notes.append(
        f"Load average (1/5/15 min) before the timed runs: {load_before}; after: {load_after} "
        f"({os.cpu_count()} cores, shared; other work inflates wall time)."
    )
    notes.append(
        f"Timing: one warm-up each, then {repeats} rounds, each round running every contender once "
        "in turn (so load changes hit all alike); wall clock with `perf_counter`. Plain DuckDB: "
        f"an in-process connection, `threads` {limits.threads} and `memory_limit` "
        f"{limits.memory_mb} MB (the worker's limits from rules/sandbox.yaml), the query over a "
        "view on the Parquet file, rows fetched to Python. Sandbox: `checker.check_query` → "
        "`worker.run_staged` → `dp.release`, as a grant's query runs minus the database work of "
        "the services layer (policy decision, budget, records)."
    )
    for name, sandbox in sandboxes.items():
        if sandbox.released is not None:
            got = released_answer(sandbox.released)
            notes.append(
                f"Closeness, sandbox {labels[name]} vs the exact answer: {_closeness(got, exact)}."
            )
    if "dp" in sandboxes and sandboxes["dp"].staged is not None:
        bounded = staged_answer(sandboxes["dp"].staged)
        notes.append(
            "The same split in two: the bounded values before noise (the worker's staged result "
            f"with DP) vs the exact answer — the contribution bounding alone: "
            f"{_closeness(bounded, exact)}; the released values vs those bounded values — the "
            f"noise alone: {_closeness(released_answer(sandboxes['dp'].released), bounded)}."
        )
    profiles = [f"plain: {operator_profile(con, QUERY)}"]
    for name, sandbox in sandboxes.items():
        profiles.append(f"staged, {labels[name]}: {operator_profile(con, sandbox.plan.staged_sql)}")
    notes.append(
        "Where the time goes — DuckDB's profiler, one run each on the plain connection "
        f"(operator time summed over threads; the HASH_GROUP_BY from {rows:,} rows to one row "
        "per group and household is the per-unit stage; with DP the second one over its rows is "
        "the bound on groups per household, the window DuckDB turned into an aggregate; "
        "PROJECTION over every row is the clamping): " + "; ".join(profiles) + "."
    )
    if plan is not None:
        notes.append(
            f"Contribution bound: {plan.max_rows_per_unit} row(s) per household per group, "
            f"{plan.max_groups_per_unit} group(s) per household. Staged SQL: `{plan.staged_sql}`."
        )

    # The peer.
    from datafactor.sandbox.rulebook import section

    bound = (
        plan.max_rows_per_unit * plan.max_groups_per_unit
        if plan is not None
        else int(section("checker")["max_rows_per_unit"])
        * int(section("checker")["max_groups_per_unit"])
    )
    epsilon = float(section("budget")["default_epsilon_per_query"])
    load_peer = _load()
    try:
        # The peer reads the holder's export as it came (it needs no row numbers, and the
        # ranked copy's order by number would scatter each household's rows for its window).
        peer = run_smartnoise(
            raw,
            threads=limits.threads,
            memory_mb=limits.memory_mb,
            epsilon=epsilon,
            max_ids=bound,
            repeats=repeats,
        )
        best, median = _stats(peer["times"])
        _, peer_plain = _stats(peer["plain_times"])
        ratio = median / peer_plain
        out.append(
            Row(
                f"SmartNoise SQL (ε {epsilon:g} in all): best / median, ms",
                f"{best * 1e3:,.0f} / {median * 1e3:,.0f}",
            )
        )
        out.append(
            Row(
                "Plain DuckDB in the peer's process, in the same rounds: median, ms",
                f"{peer_plain * 1e3:,.0f}",
            )
        )
        out.append(
            Row(
                "SmartNoise SQL / plain DuckDB (medians, same rounds)",
                f"{ratio:.2f}×",
                ratio=f"{ratio:.2f}×",
            )
        )
        if "dp" in sandboxes:
            mine = statistics.median(times["dp"]) / plain_median
            out.append(
                Row(
                    "SmartNoise SQL's ratio / the sandbox's with DP (each against its own plain)",
                    f"{ratio / mine:.2f}×",
                )
            )
        sql_best, sql_median = _stats(peer["sql_times"])
        out.append(
            Row(
                "SmartNoise's rewritten SQL alone on its DuckDB connection: best / median, ms",
                f"{sql_best * 1e3:,.0f} / {sql_median * 1e3:,.0f}",
            )
        )
        got = {r[0]: (r[1], r[2], r[3]) for r in peer["rows"]}
        notes.append(
            f"Peer: {peer['version']} in `{PEER_VENV.relative_to(REPO)}` (never the project venv), "
            "on the holder's export as it came (`"
            f"{raw.name}`: it needs no row numbers, and the ranked copy's order would scatter "
            "each household's rows for its per-household window), "
            "in a subprocess (load average when it started: "
            f"{load_peer}); `snsql.from_connection(..., engine='postgres')` on a DuckDB connection "
            f"with the same threads and memory limit, `max_ids` {peer['max_ids']} "
            + (
                f"(the sandbox's bound is {bound} rows per household, L·G; SmartNoise refuses "
                f"that: “{peer['refused']}”, so it runs with the largest bound it accepts — its "
                "work does not depend on the bound, its noise does)"
                if peer["refused"]
                else "(the sandbox's contribution bound, L·G)"
            )
            + (
                f"; it ran out of memory under the worker's {limits.memory_mb} MB limit "
                f"(“{peer['memory_note']}”), so its timed runs had {FALLBACK_MEMORY_MB} MB"
                if peer["memory_note"]
                else ""
            )
            + ", the same clamping bounds, `censor_dims` on with δ 1e-6 (its "
            f"counterpart of k), ε {peer['mechanism_epsilon']:.4g} per mechanism so that "
            f"`get_privacy_cost` is ε {peer['cost'][0]:g} for the query (δ {peer['cost'][1]:.2g}). "
            "Its `PandasReader` would first copy the frame into SQLite, so the SQL reader on "
            "DuckDB is its fastest honest path; a thin DB-API adapter moves its window's "
            "`ORDER BY RANDOM()` (which DuckDB refuses as volatile) one sub-query down and "
            "ignores `rollback()` outside a transaction. Warm-up once, then the same number of "
            "rounds, each running plain DuckDB, SmartNoise and its rewritten SQL in turn (its "
            "ratio is against the plain runs of its own rounds, as the load may differ from the "
            f"main process's); peak RSS {peer['peak_rss_mb']:,.0f} MB. Closeness vs the exact answer: "
            f"{_closeness(got, exact)}. Rewritten SQL: `{peer['inner_sql']}`."
        )
    except Exception as error:  # the peer's failure must not hide our figures
        out.append(Row("SmartNoise SQL ran", "no", "yes", False))
        notes.append(f"SmartNoise SQL failed: `{str(error).strip()[-1500:]}`")

    return Section(
        title=NAME,
        description=(
            f"`{QUERY}` over {rows:,} household electricity readings (Parquet), plain DuckDB "
            "and through the sandbox (checker → worker → release) side by side, with and without "
            "differential privacy; SmartNoise SQL on the same data and query as a peer. Target "
            f"from issue 8: the sandbox ≤ {TARGET_RATIO}× plain DuckDB."
        ),
        rows=out,
        notes=notes,
        ratio_header="Ratio vs plain DuckDB",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    section = run(parser.parse_args())
    for row in section.rows:
        print(f"{row.figure}: {row.value} {row.target} {row.ok} {row.ratio}")
    for note in section.notes:
        print("-", note)
