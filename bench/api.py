"""API benchmark: authenticated ``GET /api/v1/parties/{id}`` under load, on SQLite and PostgreSQL.

For each database: migrate, load the demo province, start ``datafactor serve --workers 2`` on a free
loopback port, log in as an enterprise admin, then let ``wrk`` (a second process, one thread, 32
connections) fetch the admin's own party with the bearer token for ``--duration`` seconds. The
ceiling is a bare Starlette hello-world (``hello_app.py``) behind ``uvicorn --workers 2`` with the
same server options and the same wrk parameters. Target (platform foundation issue): at least
2,000 requests/s with p99 under 50 ms, on both databases, with no error responses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from run import Row, Section

NAME = "API: authenticated GET /api/v1/parties/{id}"
PACKAGES = ["uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg"]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
USERNAME = "sugar.admin"  # an enterprise admin of the demo province (`datafactor demo users`)
PASSWORD = "DataFactor-2026"  # the demo default (`datafactor demo load --password`)
WORKERS = 2
WRK_THREADS, WRK_CONNECTIONS = 1, 32
WARMUP_SECONDS = 3
TARGET_RPS, TARGET_P99_MS = 2000.0, 50.0
OTHER_LOAD_WARNING = 0.1  # cores used by unrelated processes during a run that void its figures
# The server options `datafactor serve` passes to uvicorn (datafactor.cli.serve), so the ceiling
# runs on the same HTTP parser, event loop and logging settings.
CEILING_UVICORN_OPTIONS = [
    "--no-access-log",
    "--no-proxy-headers",
    "--http",
    "httptools",
    "--loop",
    "uvloop",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-databases",
        default="sqlite,postgresql",
        help="api benchmark: databases to run on (default sqlite,postgresql)",
    )


# ----------------------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    raw: str


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if not match:
        raise ValueError(f"unreadable wrk latency {value!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(out: str) -> WrkResult:
    """Read wrk's summary; ``--latency`` adds the 50/75/90/99 % distribution."""
    percentiles = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M)}
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (done and rps and {50, 90, 99} <= percentiles.keys()):
        raise RuntimeError(f"unreadable wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1000,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        raw=out,
    )


def wrk(url: str, seconds: float, token: str | None, workdir: Path) -> WrkResult:
    cmd = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    if token is not None:
        script = workdir / "auth.lua"
        script.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        cmd += ["-s", str(script)]
    done = subprocess.run(
        [*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# ---------------------------------------------------------------------------------- CPU usage

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields from 3 (state) on; comm may hold spaces


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    total = 0.0
    for pid in pids:
        fields = _proc_stat(pid)
        if fields:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (a server and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def tree_cpu(pid: int) -> float:
    """CPU seconds so far of a process, its live children and its reaped children.

    For the PostgreSQL postmaster: backends that end during a run (connections closed by the
    pool) are counted through the postmaster's reaped-children time, so the difference of two
    calls is the database's CPU in between.
    """
    fields = _proc_stat(pid)
    if not fields:
        return 0.0
    total = sum(int(v) for v in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = _proc_stat(int(entry.name))
            if child and int(child[1]) == pid:
                total += (int(child[11]) + int(child[12])) / _TICK
    return total


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


@dataclass
class CpuShare:
    """Average cores used during a measured run, by whom (1.0 = one core fully busy)."""

    server: float
    database: float
    wrk: float
    other: float
    cores: int

    def describe(self) -> str:
        parts = [f"server {self.server:.2f}"]
        if self.database:
            parts.append(f"database {self.database:.2f}")
        parts += [f"wrk {self.wrk:.2f}", f"other processes {self.other:.2f}"]
        return ", ".join(parts) + f" (cores busy, of {self.cores})"


def measured_wrk(
    url: str,
    seconds: float,
    token: str | None,
    workdir: Path,
    server_pgid: int,
    database_cpu: Callable[[], float] | None,
) -> tuple[WrkResult, CpuShare]:
    """Run wrk and account where the machine's CPU went meanwhile."""
    servers = group_pids(server_pgid)
    before = (
        process_cpu(servers),
        database_cpu() if database_cpu else 0.0,
        resource.getrusage(resource.RUSAGE_CHILDREN),
        machine_busy(),
        time.monotonic(),
    )
    result = wrk(url, seconds, token, workdir)
    after = (
        process_cpu(servers),
        database_cpu() if database_cpu else 0.0,
        resource.getrusage(resource.RUSAGE_CHILDREN),
        machine_busy(),
        time.monotonic(),
    )
    wall = after[4] - before[4]
    server = (after[0] - before[0]) / wall
    database = max(0.0, after[1] - before[1]) / wall
    ru0, ru1 = before[2], after[2]
    wrk_cpu = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime) / wall
    busy = (after[3] - before[3]) / wall
    other = max(0.0, busy - server - database - wrk_cpu)
    return result, CpuShare(server, database, wrk_cpu, other, os.cpu_count() or 1)


# -------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def http(
    method: str, url: str, *, body: dict[str, str] | None = None, token: str | None = None
) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def server(
    cmd: list[str], env: dict[str, str], ready_url: str, workdir: Path, name: str
) -> Iterator[int]:
    """Run a server in its own process group (yielded); always stop the whole group afterwards."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_ready(ready_url, proc, log)
        yield proc.pid
    finally:
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        # Workers left behind by a dead supervisor share its process group.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def cli(args: list[str], env: dict[str, str], workdir: Path) -> str:
    done = subprocess.run(
        [_bin("datafactor"), *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"datafactor {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def base_env(database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFACTOR_")}
    env["DATAFACTOR_ENVIRONMENT"] = "development"
    if database_url:
        env["DATAFACTOR_DATABASE_URL"] = database_url
    return env


# ------------------------------------------------------------------------------------ the runs


@dataclass
class Run:
    label: str
    result: WrkResult
    sample_status: int
    cpu: CpuShare


def measure_datafactor(
    label: str,
    database_url: str,
    seconds: float,
    workdir: Path,
    database_cpu: Callable[[], float] | None = None,
) -> Run:
    env = base_env(database_url)
    cli(["db", "upgrade"], env, workdir)
    cli(["demo", "load"], env, workdir)
    users = json.loads(cli(["demo", "users", "--json"], env, workdir))
    if not any(u["username"] == USERNAME and "admin" in u["roles"] for u in users):
        raise RuntimeError(f"{USERNAME} is not a demo admin any more; update bench/api.py")
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    cmd = [
        _bin("datafactor"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
    ]
    with server(cmd, env, f"{root}/readyz", workdir, f"datafactor-{label}") as pgid:
        status, body = http(
            "POST", f"{root}/api/v1/auth/token", body={"username": USERNAME, "password": PASSWORD}
        )
        if status != 200:
            raise RuntimeError(f"login as {USERNAME} failed ({status}): {body}")
        token = str(body["access_token"])
        status, me = http("GET", f"{root}/api/v1/me", token=token)
        if status != 200:
            raise RuntimeError(f"/api/v1/me failed ({status}): {me}")
        url = f"{root}/api/v1/parties/{me['party_id']}"
        sample_status, party = http("GET", url, token=token)
        if sample_status != 200 or party.get("id") != me["party_id"]:
            raise RuntimeError(f"GET {url} answered {sample_status}: {party}")
        wrk(url, WARMUP_SECONDS, token, workdir)
        result, cpu = measured_wrk(url, seconds, token, workdir, pgid, database_cpu)
        sample_status, _ = http("GET", url, token=token)  # still served correctly after the load
    return Run(label, result, sample_status, cpu)


def measure_ceiling(seconds: float, workdir: Path) -> Run:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [
        _bin("uvicorn"),
        "hello_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        *CEILING_UVICORN_OPTIONS,
    ]
    with server(cmd, base_env(), url, workdir, "ceiling") as pgid:
        sample_status, _ = _get_text(url)
        wrk(url, WARMUP_SECONDS, None, workdir)
        result, cpu = measured_wrk(url, seconds, None, workdir, pgid, None)
    return Run("ceiling", result, sample_status, cpu)


def _get_text(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return response.status, response.read().decode()


def run_sqlite(seconds: float, workdir: Path) -> Run:
    path = workdir / "sqlite" / "datafactor.db"
    return measure_datafactor("sqlite", f"sqlite:///{path}", seconds, workdir)


def run_postgresql(seconds: float, workdir: Path) -> Run:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from pgserver import PgServer

    pg = PgServer(durable=True).start()
    try:
        pg.execute("CREATE DATABASE datafactor_bench")
        postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
        return measure_datafactor(
            "postgresql", pg.url("datafactor_bench"), seconds, workdir, lambda: tree_cpu(postmaster)
        )
    finally:
        pg.stop()


def _fmt_ms(value: float) -> str:
    return f"{value:.2f} ms"


def rows_for(db_name: str, run: Run, ceiling: Run) -> list[Row]:
    r, c = run.result, ceiling.result
    errors = r.non_2xx + r.socket_errors
    return [
        Row(
            f"{db_name}: requests/s",
            f"{r.rps:,.0f}",
            f"≥ {TARGET_RPS:,.0f}",
            r.rps >= TARGET_RPS,
            f"{r.rps / c.rps:.2f}",
        ),
        Row(f"{db_name}: latency p50", _fmt_ms(r.p50_ms), "", None, f"{r.p50_ms / c.p50_ms:.1f}×"),
        Row(f"{db_name}: latency p90", _fmt_ms(r.p90_ms), "", None, f"{r.p90_ms / c.p90_ms:.1f}×"),
        Row(
            f"{db_name}: latency p99",
            _fmt_ms(r.p99_ms),
            f"< {TARGET_P99_MS:.0f} ms",
            r.p99_ms < TARGET_P99_MS,
            f"{r.p99_ms / c.p99_ms:.1f}×",
        ),
        Row(
            f"{db_name}: non-2xx responses + socket errors",
            f"{r.non_2xx} + {r.socket_errors} of {r.requests:,}",
            "0",
            errors == 0,
            "",
        ),
        Row(
            f"{db_name}: sample response status (after load)",
            str(run.sample_status),
            "200",
            run.sample_status == 200,
            "",
        ),
        Row(
            f"{db_name}: server CPU per request",
            f"{run.cpu.server / r.rps * 1000:.2f} ms",
            "",
            None,
            f"{(run.cpu.server / r.rps) / (ceiling.cpu.server / c.rps):.0f}×",
        ),
        Row(f"{db_name}: CPU during the run", run.cpu.describe(), "", None, ""),
    ]


def run(args: argparse.Namespace) -> Section:
    seconds = float(args.duration)
    databases = [
        d.strip()
        for d in getattr(args, "api_databases", "sqlite,postgresql").split(",")
        if d.strip()
    ]
    runners = {"sqlite": ("SQLite", run_sqlite), "postgresql": ("PostgreSQL", run_postgresql)}
    with tempfile.TemporaryDirectory(prefix="df-bench-api-") as tmp:
        workdir = Path(tmp)
        ceiling = measure_ceiling(seconds, workdir)
        print(
            f"   ceiling: {ceiling.result.rps:,.0f} req/s, p99 {ceiling.result.p99_ms:.2f} ms; "
            f"CPU {ceiling.cpu.describe()}",
            flush=True,
        )
        runs: list[tuple[str, Run]] = []
        for key in databases:
            title, runner = runners[key]
            result = runner(seconds, workdir)
            print(
                f"   {key}: {result.result.rps:,.0f} req/s, p99 {result.result.p99_ms:.2f} ms; "
                f"CPU {result.cpu.describe()}; "
                f"server CPU/request {result.cpu.server / result.result.rps * 1000:.2f} ms",
                flush=True,
            )
            runs.append((title, result))
    c = ceiling.result
    rows = [
        Row("ceiling (Starlette hello-world): requests/s", f"{c.rps:,.0f}", "", None, "1.00"),
        Row(
            "ceiling: latency p50 / p90 / p99",
            f"{c.p50_ms:.2f} / {c.p90_ms:.2f} / {c.p99_ms:.2f} ms",
            "",
            None,
            "",
        ),
        Row(
            "ceiling: server CPU per request",
            f"{ceiling.cpu.server / c.rps * 1000:.3f} ms",
            "",
            None,
            "",
        ),
        Row("ceiling: CPU during the run", ceiling.cpu.describe(), "", None, ""),
    ]
    for title, result in runs:
        rows += rows_for(title, result, ceiling)
    description = (
        f"Authenticated `GET /api/v1/parties/{{id}}` (bearer token of `{USERNAME}`, its own party) "
        f"served by `datafactor serve --workers {WORKERS}`, loaded from a second process on "
        f"loopback with `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds:.0f}s --latency` after "
        f"a {WARMUP_SECONDS} s warm-up. The ceiling is a bare Starlette hello-world "
        f"(`bench/hello_app.py`) behind `uvicorn --workers {WORKERS}` with the same server options "
        "and the same wrk parameters; the ratio column is DataFactor ÷ ceiling (for requests/s, "
        "the fraction of the ceiling reached; for latencies, how many times slower). SQLite is a "
        "WAL file in a temporary folder; PostgreSQL a throwaway local server "
        "(`tests/support/pgserver.py`, durable settings). The load generator shares the machine's "
        "cores with the server."
    )
    notes = [
        "Every request resolves the token against the database (hash lookup, revocation, expiry, "
        "user active, party status) — nothing about the token is cached between requests (only "
        "the permissions a set of scopes, roles, party kind and status gives, a pure function "
        "of them).",
        "wrk's percentiles are measured from wrk's own send time on open connections "
        "(closed-loop load), so they do not include queueing that an open-loop client would see.",
        '"Server CPU per request" is the CPU time of the server\'s processes divided by the '
        "requests served: unlike requests/s it hardly depends on what else the machine runs.",
    ]
    busy = [
        (label, r.cpu.other)
        for label, r in [("ceiling", ceiling), *runs]
        if r.cpu.other > OTHER_LOAD_WARNING
    ]
    if busy:
        notes.append(
            "**Caution:** other processes used CPU during "
            + ", ".join(f"the {label} run ({other:.2f} cores)" for label, other in busy)
            + "; those requests/s and latencies are lower than on an otherwise idle machine."
        )
    return Section(
        title=NAME,
        description=description,
        rows=rows,
        notes=notes,
        ratio_header="Ratio DataFactor ÷ ceiling",
    )
