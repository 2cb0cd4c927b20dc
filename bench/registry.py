"""Registry benchmark: N registrations certified in one run, then certificate lookup under load.

For each database (SQLite WAL file; a throwaway PostgreSQL with durable settings): migrate, load
the demo province (``datafactor demo load``: parties, users and the registry pilots), then in this
process, through the registry's service functions exactly as the API calls them:

1. eight demo enterprises and data merchants each upload a generated CSV data set whose sample
   discovery scan runs (the registry needs a version's fingerprint and grade);
2. ``--registry-count`` assets are declared from those versions (``create_asset``);
3. each asset's initial registration is submitted (``submit_application``: acceptance and the
   formal review's automatic checks run at once → substantive review);
4. the registrar (``exchange.reviewer``) approves each to public notice (``act``);
5. after the three-working-day notice the registrar closes each notice (``act``): the rights
   operation, the certificate number from the row-locked counter, the Ed25519 signature, the
   ``registry.certificate.issued`` ledger append and the audit events — the certification path.

Every service call is its own transaction, as when a registrar clicks through the queue: the
registry has no bulk operation, so the benchmark batches nothing. Then ``datafactor serve
--workers 2`` serves the public verification API and ``wrk`` (one thread, 32 connections, Lua
script ``registry_verify.lua``) asks ``GET /api/v1/registry/verify/{number}`` for random existing
certificate numbers for ``--duration`` seconds. Target (issue 5): certificate lookup p99 ≤ 20 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import api as api_bench
from run import REPO, Row, Section

NAME = "Registry: registrations certified in one run; certificate lookup"
PACKAGES = ["cryptography", "sqlalchemy", "psycopg"]

DEFAULT_COUNT = 10_000
TARGET_LOOKUP_P99_MS = 20.0
WORKERS = api_bench.WORKERS
WRK_THREADS, WRK_CONNECTIONS = 1, 32
WARMUP_SECONDS = 3
COLD_SECONDS = 10
# Walks over every serial before the measured run. Each pass sends a certificate to one of the
# two workers (the kernel spreads the connections), so after n passes a worker has not yet
# computed about 2^-n of them, and a miss computes on that worker's event loop for ~4-5 ms,
# stalling its other connections: 3 passes left ~12 % cold (PostgreSQL p99 100 ms at 10,000
# certificates, p90 50 ms); 8 leave ~0.4 %.
WARM_PASSES = 8
WARM_LIMIT_SECONDS = 600
LUA = Path(__file__).resolve().parent / "registry_verify.lua"
APPLICANTS = (  # demo admins of enterprises and data merchants (`datafactor demo users`)
    "sugar.admin",
    "logistics.admin",
    "bank.admin",
    "credit.admin",
    "grid.admin",
    "pdo.admin",
    "asean.admin",
    "ocean.admin",
)
REGISTRAR = "exchange.reviewer"
SUBMITTED = date(2026, 3, 2)  # a Monday; the notice runs 3 working days (enterprise data)
APPROVED = date(2026, 3, 3)
CLOSED = date(2026, 3, 9)  # the first working day after the notice's last day (6 March)
SAMPLE_CHECKS = 200  # certificates re-verified (signature, chain of title, ledger entry)
PROFILE_TOP = 12
PROFILED = 300  # closes (and lookups) run under cProfile with --registry-profile
LOOKUPS_IN_PROCESS = 1000  # verify_certificate calls timed without HTTP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry-count",
        type=int,
        default=int(os.environ.get("DATAFACTOR_BENCH_REGISTRY_COUNT", DEFAULT_COUNT)),
        help=f"registry benchmark: registrations to certify per database (default {DEFAULT_COUNT}, "
        "or $DATAFACTOR_BENCH_REGISTRY_COUNT)",
    )
    parser.add_argument(
        "--registry-databases",
        default="sqlite,postgresql",
        help="registry benchmark: databases to run on (default sqlite,postgresql)",
    )
    parser.add_argument(
        "--registry-profile",
        action="store_true",
        help="registry benchmark: cProfile the certification phase and report its hot spots",
    )


# ------------------------------------------------------------------------- the certification


@dataclass
class Phase:
    name: str
    seconds: float
    count: int

    @property
    def ms_each(self) -> float:
        return self.seconds / self.count * 1000 if self.count else 0.0


@dataclass
class Certification:
    label: str
    count: int
    phases: list[Phase]
    certified: int
    certificates: int
    serials: int  # certificates of the year (the demo pilots' and the benchmark's)
    year: int
    sample_ok: int
    sample_size: int
    ledger_growth: int
    hot_spots: list[str] = field(default_factory=list)
    lookup_p50_ms: float = 0.0
    lookup_p99_ms: float = 0.0
    lookup_hot_spots: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)


def _csv(party: str, n: int) -> bytes:
    rng = random.Random(party)
    lines = ["日期,站点,指标值"]
    lines += [
        f"2025-{1 + i % 12:02d}-{1 + i % 28:02d},{party}-{i % 17},{rng.randint(1, 9999)}"
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def _timed(name: str, items: Iterable[Any], call: Callable[[Any], None], count: int) -> Phase:
    started = time.perf_counter()
    done = 0
    for item in items:
        call(item)
        done += 1
    return Phase(name, time.perf_counter() - started, done or count)


def certify(
    label: str, database_url: str, var_dir: Path, count: int, profile: bool
) -> Certification:
    """Declare, submit, approve and certify ``count`` registrations, one transaction per call."""
    from sqlalchemy import func, select

    from datafactor import dataplane, discovery, ledger
    from datafactor.db import Database
    from datafactor.demo.loader import demo_principals
    from datafactor.registry import services as registry
    from datafactor.registry.domain import Action, AssetKind, DataClass, RegistrationType
    from datafactor.registry.models import RegistryCertificate
    from datafactor.settings import Environment, Settings

    settings = Settings(
        environment=Environment.DEVELOPMENT, database_url=database_url, var_dir=var_dir
    )
    db = Database(database_url)
    try:
        people = demo_principals(db)
        registrar = people[REGISTRAR]
        applicants = [people[u] for u in APPLICANTS]
        store = dataplane.blob_store(settings)
        issuer = registry.issuer_for(settings)

        # 1. one scanned data set version per applicant (discovery's cost, not timed)
        versions: list[tuple[Any, str]] = []
        for who in applicants:
            content = _csv(who.username, 200)
            blob = store.put_stream(io.BytesIO(content), max_bytes=len(content) + 1)
            with db.write() as s:
                dataset = dataplane.create_dataset(
                    s, who, dataplane.DatasetDraft(name=f"基准数据 {who.username}", domain="energy")
                )
                version = dataplane.add_file_version(
                    s, who, dataset.id, blob=blob, filename="bench.csv"
                )
                discovery.request_scan(s, who, version.id, "sample")
                versions.append((who, str(version.id)))
        discovery.run_pending(db, settings, store)
        with db.read() as s:
            before_ledger = ledger.tree_size(s)

        # 2. assets
        assets: list[tuple[Any, str, str]] = []

        def declare(i: int) -> None:
            who, version_id = versions[i % len(versions)]
            with db.write() as s:
                asset = registry.create_asset(
                    s,
                    who,
                    registry.AssetDraft(
                        kind=AssetKind.RESOURCE,
                        name=f"基准登记资源 {i:05d}",
                        data_class=DataClass.ENTERPRISE,
                        description="基准测试登记的数据资源",
                        domain="energy",
                        source_statement="本单位自行采集",
                        collection_method="系统自动采集",
                        update_frequency="daily",
                        coverage="2025-01 至 2025-12",
                        region="450100",
                        volume="200 行",
                        field_schema=({"name": "日期"}, {"name": "站点"}, {"name": "指标值"}),
                        version_id=version_id,
                    ),
                )
                assets.append((who, str(asset.id), str(asset.fingerprint)))

        # 3. submissions (formal review runs inside)
        applications: list[str] = []
        scope = {
            "purposes": ["industry", "research"],
            "fields": None,
            "regions": ["450000"],
            "delivery_modes": ["api", "sandbox"],
        }

        def submit(item: tuple[Any, str, str]) -> None:
            who, asset_id, fingerprint = item
            draft = registry.ApplicationDraft(
                type=RegistrationType.INITIAL,
                asset_id=asset_id,
                scope=scope,
                term_start=SUBMITTED,
                fingerprint=fingerprint,
            )
            with db.write() as s:
                row = registry.submit_application(s, who, draft, issuer=issuer, today=SUBMITTED)
                if row.state != "substantive_review":
                    raise RuntimeError(f"submission ended in {row.state}: {row.decision}")
                applications.append(str(row.id))

        def act(action: Any, on: date) -> Callable[[str], None]:
            def step(application_id: str) -> None:
                with db.write() as s:
                    registry.act(s, registrar, application_id, action, issuer=issuer, today=on)

            return step

        phases = [_timed("declare asset", range(count), declare, count)]
        phases.append(_timed("submit + formal review", list(assets), submit, count))
        phases.append(
            _timed(
                "approve to public notice",
                list(applications),
                act(Action.APPROVE_TO_NOTICE, APPROVED),
                count,
            )
        )
        close = act(Action.CLOSE_NOTICE, CLOSED)
        phases.append(_timed("close notice + certify", list(applications), close, count))
        timed = list(applications)
        with db.read() as s:
            growth = ledger.tree_size(s) - before_ledger
        hot: list[str] = []
        if profile:
            # Extra registrations after the timed run, so the profiler slows none of its figures.
            extra = min(PROFILED, count)
            for i in range(count, count + extra):
                declare(i)
            for item in assets[count:]:
                submit(item)
            approve = act(Action.APPROVE_TO_NOTICE, APPROVED)
            for application_id in applications[count:]:
                approve(application_id)
            profiler = cProfile.Profile()
            profiler.enable()
            for application_id in applications[count:]:
                close(application_id)
            profiler.disable()
            hot = _hot_spots(profiler, "the certification path (close notice + certify)")

        with db.read() as s:
            certificates = list(
                s.scalars(
                    select(RegistryCertificate).where(RegistryCertificate.year == CLOSED.year)
                )
            )
            mine = {c.application_id for c in certificates} & set(timed)
            serials = (
                s.scalar(
                    select(func.max(RegistryCertificate.serial)).where(
                        RegistryCertificate.year == CLOSED.year
                    )
                )
                or 0
            )
            sample = random.Random(7).sample(certificates, min(SAMPLE_CHECKS, len(certificates)))
            ok = 0
            for c in sample:
                found = registry.verify_certificate(s, c.number)
                entry = json.loads(ledger.get_entry(s, c.ledger_index).entry)
                ok += bool(
                    found.signature_valid
                    and found.chain_problem is None
                    and entry["kind"] == "registry.certificate.issued"
                    and entry["payload"]["number"] == c.number
                )
        # The lookup path without HTTP: the service alone, one read transaction per call.
        numbers = [c.number for c in certificates]
        pick = random.Random(11)
        took: list[float] = []
        for _ in range(LOOKUPS_IN_PROCESS):
            number = pick.choice(numbers)
            started = time.perf_counter()
            with db.read() as s:
                registry.verify_certificate(s, number).as_dict()
            took.append((time.perf_counter() - started) * 1000)
        took.sort()
        lookup_hot: list[str] = []
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(PROFILED):
                with db.read() as s:
                    registry.verify_certificate(s, pick.choice(numbers)).as_dict()
            profiler.disable()
            lookup_hot = _hot_spots(profiler, "verify_certificate (the lookup service)")
        return Certification(
            label=label,
            count=count,
            phases=phases,
            certified=len(mine),
            certificates=len(certificates),
            serials=int(serials),
            year=CLOSED.year,
            sample_ok=ok,
            sample_size=len(sample),
            ledger_growth=growth,
            hot_spots=hot,
            lookup_p50_ms=took[len(took) // 2],
            lookup_p99_ms=took[min(len(took) - 1, int(len(took) * 0.99))],
            lookup_hot_spots=lookup_hot,
        )
    finally:
        db.dispose()


def _hot_spots(profiler: cProfile.Profile, what: str) -> list[str]:
    """The functions where ``what`` spends its time (printed: own time, then cumulative)."""
    out = io.StringIO()
    out.write(f"   profile of {what}:\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)
    stats.sort_stats("cumulative").print_stats("datafactor", PROFILE_TOP * 2)
    print(out.getvalue(), flush=True)
    lines: list[str] = []
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    for (path, line, name), values in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][3],
        reverse=True,
    ):
        if "datafactor" not in path or name.startswith("<"):
            continue
        short = path.split("src/")[-1]
        lines.append(f"`{short}:{line} {name}` {values[3] / total * 100:.0f} % cumulative")
        if len(lines) >= PROFILE_TOP:
            break
    return lines


# ------------------------------------------------------------------------------ the lookups


@dataclass
class Lookup:
    result: api_bench.WrkResult
    cpu: api_bench.CpuShare
    sample_status: int
    sample: dict[str, Any]
    single: api_bench.WrkResult  # one connection: the latency of a lookup without queueing
    cold: api_bench.WrkResult  # one connection, empty cache: the latency of a computed lookup
    cold_rate: float  # its lookups/s: 1 / mean latency (wrk's rate counts the whole -d)
    warm_walk_seconds: float  # how long the walk over every certificate took


def _wrk(
    url: str,
    seconds: float,
    serials: int,
    year: int,
    connections: int = WRK_CONNECTIONS,
    walk: bool = False,
    walked: int = 0,
    stop_after: int = 0,
) -> api_bench.WrkResult:
    cmd = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    env = {
        **os.environ,
        "REGISTRY_COUNT": str(serials),
        "REGISTRY_YEAR": str(year),
        "REGISTRY_WALK": "1" if walk else "0",
        "REGISTRY_WALK_FROM": str(walked),
        "REGISTRY_STOP_AFTER": str(stop_after),
    }
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=False, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return api_bench.parse_wrk(done.stdout)


def lookups(
    label: str,
    env: dict[str, str],
    workdir: Path,
    seconds: float,
    serials: int,
    year: int,
    database_cpu: Callable[[], float] | None,
) -> Lookup:
    port = api_bench.free_port()
    root = f"http://127.0.0.1:{port}"
    cmd = [
        api_bench._bin("datafactor"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
    ]
    with api_bench.server(cmd, env, f"{root}/readyz", workdir, f"registry-{label}") as pgid:
        number = f"GX-DR-{year}-{random.Random(1).randint(1, serials):06d}"
        status, body = api_bench.http("GET", f"{root}/api/v1/registry/verify/{number}")
        if status != 200 or not body.get("signature_valid"):
            raise RuntimeError(f"verify {number} answered {status}: {body}")
        # Cold: one connection walking the serials in order, each certificate at most once
        # (stopped after the last, or after COLD_SECONDS): with the verification cache empty,
        # every lookup is computed afresh — the latency of a lookup that is not cached. (Random
        # numbers for a fixed time mostly hit the cache on a small --registry-count.)
        cold = _wrk(root, COLD_SECONDS, serials, year, connections=1, walk=True, stop_after=serials)
        # wrk divides by the whole -d even when the script stopped it early; on one connection
        # the rate is one over the mean latency.
        mean = re.search(r"^\s+Latency\s+(\S+)", cold.raw, re.M)
        cold_ms = api_bench._ms(mean.group(1)) if mean else 0.0
        cold_rate = 1000 / cold_ms if cold_ms else cold.rps
        # Warm: walk every serial WARM_PASSES times (each worker process has its own cache and
        # a request lands on either), until each has computed each certificate's verification.
        started, walked = time.monotonic(), 0
        while walked < WARM_PASSES * serials:
            if time.monotonic() - started > WARM_LIMIT_SECONDS:
                raise RuntimeError(f"warming walked {walked:,} of {WARM_PASSES * serials:,}")
            walked += _wrk(root, WARMUP_SECONDS, serials, year, walk=True, walked=walked).requests
        warm_walk_seconds = time.monotonic() - started
        servers = api_bench.group_pids(pgid)
        before = (
            api_bench.process_cpu(servers),
            database_cpu() if database_cpu else 0.0,
            resource.getrusage(resource.RUSAGE_CHILDREN),
            api_bench.machine_busy(),
            time.monotonic(),
        )
        result = _wrk(root, seconds, serials, year)
        after = (
            api_bench.process_cpu(servers),
            database_cpu() if database_cpu else 0.0,
            resource.getrusage(resource.RUSAGE_CHILDREN),
            api_bench.machine_busy(),
            time.monotonic(),
        )
        wall = after[4] - before[4]
        ru0, ru1 = before[2], after[2]
        wrk_cpu = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime) / wall
        server_cpu = (after[0] - before[0]) / wall
        database = max(0.0, after[1] - before[1]) / wall
        busy = (after[3] - before[3]) / wall
        cpu = api_bench.CpuShare(
            server_cpu,
            database,
            wrk_cpu,
            max(0.0, busy - server_cpu - database - wrk_cpu),
            os.cpu_count() or 1,
        )
        # For reference, no queueing: one connection, one lookup at a time.
        single = _wrk(root, max(3.0, seconds / 3), serials, year, connections=1)
        sample_status, sample = api_bench.http("GET", f"{root}/api/v1/registry/verify/{number}")
    return Lookup(result, cpu, sample_status, sample, single, cold, cold_rate, warm_walk_seconds)


# ------------------------------------------------------------------------------------ the runs


@dataclass
class Run:
    title: str
    certification: Certification
    lookup: Lookup


def _measure(
    key: str,
    title: str,
    database_url: str,
    workdir: Path,
    count: int,
    seconds: float,
    profile: bool,
    database_cpu: Callable[[], float] | None,
) -> Run:
    var_dir = workdir / f"var-{key}"
    env = api_bench.base_env(database_url)
    env["DATAFACTOR_VAR_DIR"] = str(var_dir)
    api_bench.cli(["db", "upgrade"], env, workdir)
    api_bench.cli(["demo", "load"], env, workdir)
    print(f"   {key}: certifying {count:,} registrations", flush=True)
    done = certify(key, database_url, var_dir, count, profile)
    for phase in done.phases:
        print(
            f"   {key}: {phase.name}: {phase.seconds:.1f} s, {phase.ms_each:.2f} ms each",
            flush=True,
        )
    lookup = lookups(key, env, workdir, seconds, done.serials, done.year, database_cpu)
    r = lookup.result
    print(
        f"   {key}: lookup {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms; "
        f"CPU {lookup.cpu.describe()}",
        flush=True,
    )
    return Run(title, done, lookup)


def run_sqlite(workdir: Path, count: int, seconds: float, profile: bool) -> Run:
    path = workdir / "sqlite" / "datafactor.db"
    return _measure("sqlite", "SQLite", f"sqlite:///{path}", workdir, count, seconds, profile, None)


def run_postgresql(workdir: Path, count: int, seconds: float, profile: bool) -> Run:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from pgserver import PgServer

    pg = PgServer(durable=True).start()
    try:
        pg.execute("CREATE DATABASE datafactor_registry_bench")
        postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
        return _measure(
            "postgresql",
            "PostgreSQL",
            pg.url("datafactor_registry_bench"),
            workdir,
            count,
            seconds,
            profile,
            lambda: api_bench.tree_cpu(postmaster),
        )
    finally:
        pg.stop()


def rows_for(run: Run) -> list[Row]:
    c, lk = run.certification, run.lookup
    r = lk.result
    t = run.title
    certified_ok = c.certified == c.count
    rows = [
        Row(
            f"{t}: registrations certified in one run",
            f"{c.certified:,} of {c.count:,} in {c.seconds:,.1f} s",
            f"{c.count:,}",
            certified_ok,
            "",
        ),
        Row(
            f"{t}: cost per registration (declare → certificate)",
            f"{c.seconds / c.count * 1000:.2f} ms ({c.count / c.seconds:,.0f} registrations/s)",
            "",
            None,
            "",
        ),
    ]
    rows += [
        Row(f"{t}: {p.name}", f"{p.ms_each:.2f} ms each ({p.seconds:,.1f} s)", "", None, "")
        for p in c.phases
    ]
    rows += [
        Row(
            f"{t}: certificates re-verified (signature, chain of title, ledger entry)",
            f"{c.sample_ok} of {c.sample_size}",
            f"{c.sample_size}",
            c.sample_ok == c.sample_size,
            "",
        ),
        Row(f"{t}: ledger entries appended", f"{c.ledger_growth:,}", "", None, ""),
        Row(
            f"{t}: lookup latency p99, warm, {WRK_CONNECTIONS} connections "
            "(GET /api/v1/registry/verify/{number})",
            f"{r.p99_ms:.2f} ms",
            f"≤ {TARGET_LOOKUP_P99_MS:.0f} ms",
            r.p99_ms <= TARGET_LOOKUP_P99_MS,
            f"{r.p99_ms / TARGET_LOOKUP_P99_MS:.2f}",
        ),
        Row(
            f"{t}: lookup latency p50 / p90",
            f"{r.p50_ms:.2f} / {r.p90_ms:.2f} ms",
            "",
            None,
            "",
        ),
        Row(f"{t}: lookups/s", f"{r.rps:,.0f}", "", None, ""),
        Row(
            f"{t}: cold cache, one connection (each verification computed): p50 / p99, lookups/s",
            f"{lk.cold.p50_ms:.2f} / {lk.cold.p99_ms:.2f} ms, {lk.cold_rate:,.0f}/s",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: warming: every certificate looked up {WARM_PASSES}× (32 connections)",
            f"{lk.warm_walk_seconds:,.1f} s",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: for reference, warm, one connection (no queueing): p50 / p99, lookups/s",
            f"{lk.single.p50_ms:.2f} / {lk.single.p99_ms:.2f} ms, {lk.single.rps:,.0f}/s",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: server CPU per lookup",
            f"{lk.cpu.server / r.rps * 1000:.2f} ms" if r.rps else "-",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: verify_certificate in-process, no HTTP (p50 / p99 of "
            f"{LOOKUPS_IN_PROCESS:,}, one at a time)",
            f"{c.lookup_p50_ms:.2f} / {c.lookup_p99_ms:.2f} ms",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: lookup non-2xx responses + socket errors",
            f"{r.non_2xx} + {r.socket_errors} of {r.requests:,}",
            "0",
            r.non_2xx + r.socket_errors == 0,
            "",
        ),
        Row(
            f"{t}: sample lookup after the load",
            f"{lk.sample_status}, {lk.sample.get('status')}, signature "
            f"{'valid' if lk.sample.get('signature_valid') else 'INVALID'}",
            "200, signature valid",
            lk.sample_status == 200 and bool(lk.sample.get("signature_valid")),
            "",
        ),
        Row(f"{t}: CPU during the lookups", lk.cpu.describe(), "", None, ""),
    ]
    return rows


def run(args: argparse.Namespace) -> Section:
    count = int(getattr(args, "registry_count", DEFAULT_COUNT))
    if count < 1:
        raise ValueError("--registry-count must be at least 1")
    seconds = float(args.duration)
    profile = bool(getattr(args, "registry_profile", False))
    databases = [
        d.strip()
        for d in getattr(args, "registry_databases", "sqlite,postgresql").split(",")
        if d.strip()
    ]
    runners = {"sqlite": run_sqlite, "postgresql": run_postgresql}
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="df-bench-registry-") as tmp:
        for key in databases:
            runs.append(runners[key](Path(tmp), count, seconds, profile))
    rows = [row for r in runs for row in rows_for(r)]
    description = (
        f"{count:,} initial registrations of enterprise data resources, each taken through the "
        "registry's service functions one transaction per call — declare the asset, submit "
        "(acceptance and the automatic formal review), the registrar's approval to public "
        "notice, and after the three-working-day notice the registrar's close, which applies "
        "the rights operation, numbers the certificate from the row-locked counter, signs it "
        "(Ed25519) and appends it to the ledger with its audit events. Nothing is batched: the "
        "registry has no bulk operation, so none is invented here. Eight demo enterprises and "
        "data merchants apply, each registering assets declared from one scanned version of its "
        "own (the discovery scan is not timed). Then `datafactor serve --workers "
        f"{WORKERS}` answers the public `GET /api/v1/registry/verify/{{number}}` for random "
        f"existing certificate numbers (`bench/registry_verify.lua`) under `wrk -t{WRK_THREADS} "
        f"-c{WRK_CONNECTIONS} -d{seconds:.0f}s --latency`: first, on one connection with the "
        "verification cache empty (cold), the certificates in order, each at most once, for at "
        f"most {COLD_SECONDS} s; then every certificate is looked up {WARM_PASSES}× in order "
        "(warming both workers' caches), then the measured run. "
        "SQLite is a WAL file in a temporary folder; PostgreSQL a throwaway local server with "
        "durable settings (`tests/support/pgserver.py`). The ratio column is p99 ÷ target."
    )
    notes = [
        "A lookup takes the registry revision counter and answers from the worker's "
        "verification cache when that certificate was verified at the same revision and day; "
        "otherwise it recomputes the status from the right, re-checks the Ed25519 signature over "
        "the canonical payload and re-derives the chain of title (the cold row). Any write a "
        "verification depends on bumps the counter in its own transaction. On SQLite the "
        "counter is read per lookup (one indexed row, a local read), so a cached answer is never "
        "older than the last committed change; on PostgreSQL each worker keeps the counter in "
        "memory from the commits' notifications (`LISTEN`/`pg_notify`, `Database.counter`), "
        "without a round trip per lookup, so a change shows once its notification has arrived "
        "(after the commit, within the delivery time). A cached answer is sent by a plain ASGI "
        "middleware before FastAPI's routing and dependency resolution "
        "(`registry.api.VerificationShortcut`), with the same key, bytes and headers as the "
        "route's. A worker that misses in memory first reads what another worker computed for "
        "the same key (`registry.verifications`, one indexed read) — before, each worker "
        "computed every certificate itself, and a worker still computing during the measured "
        "run held every request it had waiting.",
        "wrk's percentiles are closed-loop (measured from wrk's send time on open connections). "
        f"The target is judged at {WRK_CONNECTIONS} connections, the load of the API benchmark, "
        "with the cache warm; the cold row is the latency of a lookup computed afresh, one at "
        "a time (at 32 connections a cold cache queues behind the computations).",
    ]
    for r in runs:
        if r.certification.hot_spots:
            notes.append(
                f"{r.title}: hot spots of the certification path (cProfile of {PROFILED} extra "
                "closes after the timed run): " + "; ".join(r.certification.hot_spots)
            )
        if r.certification.lookup_hot_spots:
            notes.append(
                f"{r.title}: hot spots of verify_certificate (cProfile of {PROFILED} calls): "
                + "; ".join(r.certification.lookup_hot_spots)
            )
        if r.lookup.cpu.other > api_bench.OTHER_LOAD_WARNING:
            notes.append(
                f"**Caution:** other processes used {r.lookup.cpu.other:.2f} cores during the "
                f"{r.title} lookups; those latencies are worse than on an idle machine."
            )
    if count != DEFAULT_COUNT:
        notes.append(
            f"**Short run:** {count:,} registrations, not the {DEFAULT_COUNT:,} of the target "
            "(`--registry-count`)."
        )
    return Section(
        title=NAME,
        description=description,
        rows=rows,
        notes=notes,
        ratio_header="Ratio p99 ÷ target",
    )
