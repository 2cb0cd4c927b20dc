"""Exchange trades benchmark: the mall order's whole write path — order + escrow + contract — in
trades per second, on PostgreSQL and SQLite (issue 7: ≥ 300 trades/s on PostgreSQL).

For each database (a SQLite WAL file; a throwaway PostgreSQL with durable settings): migrate,
then, not timed, build a market through the real registry — ``SELLERS`` sellers, each with a
certified data product (resource → product → product-operation right and certificate), and
``LISTINGS_PER_SELLER`` published listings of it (half with a large limited licence count, half
unlimited) — and register ``BUYERS`` verified buyers, each funded through the local bank backend.

Timed: ``--trades-workers`` processes × ``--trades-threads`` threads (forked after the set-up,
each process with its own connection pool, as server workers would be) place orders for
``--duration`` seconds through ``exchange.orders.place_order`` exactly as the API does (one
``db.write()`` transaction per trade: the idempotency key looked up, the listing loaded and row
locked and checked against the registry — certificate active, right held, not core data — the
licence taken, the amount frozen in escrow by ``settlement.freeze``, the contract drawn up by
``contracts.open_contract`` with its document and number, the order numbered and written, both
parties' audit events, the seller's and the contract's inbox messages, then commit). Each thread
buys for its own buyers (a buyer's balance rows are locked per trade) from random listings.
Then one caller alone. Afterwards the whole book is reconciled (it must balance) and every order
is checked to have its contract and exactly one freeze.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import REPO, Row, Section

NAME = "Exchange: mall trades (order + escrow + contract) per second"
PACKAGES = ["sqlalchemy", "psycopg"]

TARGET = 300  # trades/s on PostgreSQL (issue 7)
SELLERS = 4
LISTINGS_PER_SELLER = 4
BUYERS = 96
PRICE_FEN = 10_000
DEFAULT_THREADS = 8
DEFAULT_WORKERS = {"sqlite": 1, "postgresql": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trades-threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"trades benchmark: threads per worker process (default {DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--trades-workers",
        default="",
        help="trades benchmark: worker processes, one number or per database "
        "(e.g. sqlite=1,postgresql=2, the default)",
    )
    parser.add_argument(
        "--trades-databases",
        default="sqlite,postgresql",
        help="trades benchmark: databases to run on (default sqlite,postgresql)",
    )


@dataclass
class Load:
    workers: int
    threads: int
    trades: int
    refused: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    caller_cpu: float = 0.0  # CPU seconds of the callers' processes over the timed window
    server_cpu: float | None = None  # of the PostgreSQL server's processes (None: SQLite)

    @property
    def per_s(self) -> float:
        return self.trades / self.seconds if self.seconds else 0.0

    def cpu_ms(self) -> str:
        """CPU per trade: the callers' (Python) + the database server's."""
        if not self.trades:
            return "—"
        caller = self.caller_cpu / self.trades * 1000
        if self.server_cpu is None:
            return f"{caller:.2f} ms (in-process SQLite)"
        server = self.server_cpu / self.trades * 1000
        return f"{caller + server:.2f} ms = {caller:.2f} callers + {server:.2f} server"

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    title: str
    setup_seconds: float
    concurrent: Load
    single: Load
    balanced: bool
    journals: int
    orders: int
    consistent: bool
    note: str
    statements: int = 0  # in one trade's transaction
    serialized: int = 0  # of them, from the listing's row lock to the commit


def _settings(url: str, var_dir: Path) -> Any:
    from datafactor.settings import Environment, Settings

    return Settings(
        environment=Environment.TEST,
        database_url=url,
        var_dir=var_dir,
        secret_key="bench-secret-key-bench-secret-key-0123456789",  # noqa: S106 - a throwaway run
    )


def _market(db: Any, settings: Any) -> list[str]:
    """Sellers with certified products and their published listings (through the registry and
    the tests' world builders); the listing ids."""
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from exchange_support import published_listing, seller_world

    from datafactor import registry
    from datafactor.exchange import listings
    from datafactor.exchange.models import ExchangeListing

    issuer = registry.issuer_for(settings)
    ids: list[str] = []
    for _ in range(SELLERS):
        world = seller_world(db, settings, issuer)
        for n in range(LISTINGS_PER_SELLER):
            listing_id = published_listing(
                db,
                world["product"],
                world["seller"],
                price_fen=PRICE_FEN,
                quantity=1_000_000 if n % 2 == 0 else None,
            )
            with db.write() as s:
                row = s.get(ExchangeListing, listing_id)
                row.contract_policy = listings.default_policy(
                    asset_id=row.asset_id,
                    seller_id=row.seller_id,
                    channels=row.channels,
                    scope=None,
                )
            ids.append(listing_id)
    return ids


def _buyers(db: Any) -> list[Any]:
    """Verified buyers, funded, as the principals their API tokens would give."""
    from datetime import date

    from datafactor.identity import PartyApplication, PartyKind, register_party
    from datafactor.identity.codes import make_uscc
    from datafactor.permissions import Principal, Role, effective_permissions
    from datafactor.settlement import deposit_funds

    out = []
    with db.write() as s:
        for n in range(BUYERS):
            party = register_party(
                s,
                None,
                PartyApplication(
                    kind=PartyKind.ENTERPRISE,
                    name=f"交易基准买方{n}",
                    name_en=f"Trades bench buyer {n}",
                    code=make_uscc("9", "1", "450100", f"TB{n:06d}"),
                ),
                today=date(2026, 3, 1),
            )
            out.append(
                Principal(
                    user_id="",
                    username=f"bench-buyer-{n}",
                    party_id=party.id,
                    party_kind="enterprise",
                    roles=frozenset({Role.STAFF}),
                    permissions=effective_permissions("enterprise", True, {Role.STAFF}),
                    via="token",
                )
            )
    for principal in out:
        with db.write() as s:
            deposit_funds(
                s, principal.party_id, 10**13, key=f"fund-{principal.party_id}", actor="bench"
            )
    return out


def _trade(db: Any, principal: Any, listing_id: str, key: str) -> bool:
    from datafactor.db import utcnow
    from datafactor.errors import DomainError
    from datafactor.exchange import orders

    try:
        orders.open_buyer_accounts(db, principal)
        with db.write() as s:
            orders.place_order(s, principal, listing_id, 1, key=key, now=utcnow())
        return True
    except DomainError:
        return False


def _worker(
    url: str,
    worker: int,
    threads: int,
    buyers: list[Any],
    listing_ids: list[str],
    start_at: float,
    stop_at: float,
    out: Any,
) -> None:
    """One process: ``threads`` threads trading from ``start_at`` to ``stop_at`` (monotonic
    clock, shared by the processes of one machine); puts (trades, refused, latencies)."""
    import threading

    from datafactor.db import Database

    db = Database(url, pool_size=threads + 2)
    results: list[tuple[int, int, list[float]]] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        rng = random.Random(worker * 1000 + t)
        mine = buyers[t::threads] or buyers
        tag = f"w{worker}t{t}-{os.getpid()}"
        for n in range(3):  # warm the pool and the statement caches
            _trade(db, mine[n % len(mine)], rng.choice(listing_ids), f"{tag}-warm-{n}")
        while time.monotonic() < start_at:
            time.sleep(0.001)
        done = refused = 0
        latencies: list[float] = []
        n = 0
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            ok = _trade(db, mine[n % len(mine)], rng.choice(listing_ids), f"{tag}-{n}")
            latencies.append((time.perf_counter() - began) * 1000)
            done += ok
            refused += not ok
            n += 1
        with lock:
            results.append((done, refused, latencies))

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    while time.monotonic() < start_at:
        time.sleep(0.001)
    cpu = time.process_time()
    for thread in pool:
        thread.join()
    cpu = time.process_time() - cpu
    db.dispose()
    out.put(
        (
            sum(r[0] for r in results),
            sum(r[1] for r in results),
            [x for r in results for x in r[2]],
            cpu,
        )
    )


def _server_cpu(postmaster: int | None) -> float | None:
    """CPU seconds so far of the PostgreSQL server whose postmaster is ``postmaster`` and of its
    children (backends, WAL writer, checkpointer …), from /proc; None without one."""
    if postmaster is None:
        return None
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(entry) == postmaster:  # with its ended children's (cutime + cstime)
            ticks += sum(int(x) for x in fields[11:15])
        elif int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _load(
    db: Any,
    buyers: list[Any],
    listing_ids: list[str],
    workers: int,
    threads: int,
    seconds: float,
    postmaster: int | None = None,
) -> Load:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    db.dispose()  # no pooled connection may cross the fork
    start_at = time.monotonic() + 3.0 + workers * threads * 0.05
    stop_at = start_at + seconds
    share = [buyers[w::workers] for w in range(workers)]
    procs = [
        context.Process(
            target=_worker,
            args=(db.url, w, threads, share[w], listing_ids, start_at, stop_at, queue),
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    while time.monotonic() < start_at:
        time.sleep(0.001)
    server = _server_cpu(postmaster)
    got = [queue.get(timeout=seconds + 600) for _ in procs]
    after = _server_cpu(postmaster)
    for p in procs:
        p.join(timeout=60)
    return Load(
        workers,
        threads,
        sum(g[0] for g in got),
        sum(g[1] for g in got),
        seconds,
        [x for g in got for x in g[2]],
        sum(g[3] for g in got),
        None if server is None or after is None else after - server,
    )


def _statements(db: Any, buyer: Any, listing_id: str) -> tuple[int, int]:
    """The statements of one trade's transaction, and how many of them run while it holds the
    listing's row lock (from that lock to the commit: another buyer of the same listing waits for
    them; on SQLite all of them, one writer at a time) — in the steady state a server process is in: after one trade of the buyer on the
    listing (its accounts seen open, the registry's checks cached at the current revision)."""
    from sqlalchemy import event

    _trade(db, buyer, listing_id, "statements-warm")
    seen: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", log)
    try:
        _trade(db, buyer, listing_id, "statements")
    finally:
        event.remove(db.engine, "before_cursor_execute", log)
    body = [x for x in seen if not x.lstrip().upper().startswith(("BEGIN", "SAVEPOINT"))]
    # SQLite has no row locks: its writers run one at a time, every statement of the trade.
    first = next(
        (i for i, x in enumerate(body) if "exchange_listing" in x and "FOR UPDATE" in x), 0
    )
    return len(body) + 1, len(body) - first + 1  # + COMMIT


def _check(db: Any) -> tuple[bool, int, int, bool, str]:
    """The books reconciled, and every order with its contract and one freeze."""
    from collections import Counter

    from sqlalchemy import select

    from datafactor.exchange.models import ExchangeContract, ExchangeOrder
    from datafactor.settlement.books import reconcile, snapshot
    from datafactor.settlement.models import SettlementJournal

    with snapshot(db) as s:
        report, _ = reconcile(s)
    with db.read() as s:
        orders = {o.id: o for o in s.scalars(select(ExchangeOrder))}
        contracts = {c.order_id: c for c in s.scalars(select(ExchangeContract))}
        freezes = Counter(
            k
            for k in s.scalars(
                select(SettlementJournal.idempotency_key).where(SettlementJournal.kind == "freeze")
            )
            if k.startswith("order:")
        )
    missing = [o for o in orders if o not in contracts or freezes[f"order:{o}:freeze"] != 1]
    consistent = not missing and len(contracts) == len(orders) == sum(freezes.values())
    note = "" if consistent else f"{len(missing)} orders without their contract or freeze"
    return report.balanced, report.journals, len(orders), consistent, note


def _measure(
    title: str,
    url: str,
    var_dir: Path,
    workers: int,
    threads: int,
    seconds: float,
    postmaster: int | None = None,
) -> Result:
    from datafactor.db import Database
    from datafactor.migrations import upgrade

    Database(url).dispose()
    upgrade(url)
    db = Database(url, pool_size=4)
    try:
        print(f"trades: {title}: sellers, certified products, listings, buyers", flush=True)
        started = time.perf_counter()
        listing_ids = _market(db, _settings(url, var_dir))
        buyers = _buyers(db)
        setup = time.perf_counter() - started
        print(f"trades: {title}: {workers} x {threads} callers for {seconds:.0f} s", flush=True)
        concurrent = _load(db, buyers, listing_ids, workers, threads, seconds, postmaster)
        print(f"trades: {title}: one caller", flush=True)
        single = _load(db, buyers[:1], listing_ids, 1, 1, min(5.0, seconds), postmaster)
        statements, serialized = _statements(db, buyers[0], listing_ids[0])
        balanced, journals, orders, consistent, note = _check(db)
        return Result(
            title,
            setup,
            concurrent,
            single,
            balanced,
            journals,
            orders,
            consistent,
            note,
            statements,
            serialized,
        )
    finally:
        db.dispose()


def run_sqlite(workdir: Path, workers: int, threads: int, seconds: float) -> Result:
    path = workdir / "sqlite" / "datafactor.db"
    return _measure(
        "SQLite", f"sqlite:///{path}", workdir / "sqlite-var", workers, threads, seconds
    )


def run_postgresql(workdir: Path, workers: int, threads: int, seconds: float) -> Result:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from pgserver import PgServer

    pg = PgServer(durable=True).start()
    try:
        pg.execute("CREATE DATABASE datafactor_trades_bench")
        return _measure(
            "PostgreSQL",
            pg.url("datafactor_trades_bench"),
            workdir / "pg-var",
            workers,
            threads,
            seconds,
            int((pg.datadir / "postmaster.pid").read_text().split()[0]),
        )
    finally:
        pg.stop()


def _workers(spec: str, database: str) -> int:
    if not spec:
        return DEFAULT_WORKERS[database]
    if spec.isdigit():
        return int(spec)
    chosen = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    return int(chosen.get(database, DEFAULT_WORKERS[database]))


def rows_for(r: Result) -> list[Row]:
    c, one = r.concurrent, r.single
    judged = r.title == "PostgreSQL"
    return [
        Row(
            f"{r.title}: trades/s, {c.workers} process(es) × {c.threads} threads",
            f"{c.per_s:,.0f} trades/s ({c.trades:,} in {c.seconds:.0f} s"
            + (f", {c.refused} refused" if c.refused else "")
            + ")",
            f"≥ {TARGET} trades/s" if judged else "",
            (c.per_s >= TARGET) if judged else None,
            f"{c.per_s / TARGET:.2f}",
        ),
        Row(
            f"{r.title}: latency of one trade, p50 / p99",
            f"{c.pct(0.5):.1f} / {c.pct(0.99):.1f} ms",
        ),
        Row(f"{r.title}: CPU per trade, these callers", c.cpu_ms()),
        Row(
            f"{r.title}: statements of one trade's transaction (of them, from the listing's "
            "row lock to the commit)",
            f"{r.statements} ({r.serialized})",
        ),
        Row(
            f"{r.title}: trades/s, one caller",
            f"{one.per_s:,.0f} trades/s (p50 {one.pct(0.5):.1f} ms; CPU per trade {one.cpu_ms()})",
            "",
            None,
            f"{one.per_s / TARGET:.2f}",
        ),
        Row(
            f"{r.title}: afterwards: books reconciled; every order with its contract and one freeze",
            f"{'balanced' if r.balanced else 'NOT balanced'} ({r.journals:,} journals); "
            f"{r.orders:,} orders {'consistent' if r.consistent else r.note}",
            "balanced, consistent",
            r.balanced and r.consistent,
        ),
    ]


def run(args: argparse.Namespace) -> Section:
    threads = int(getattr(args, "trades_threads", DEFAULT_THREADS))
    spec = str(getattr(args, "trades_workers", "") or "")
    seconds = float(args.duration)
    databases = [
        d.strip()
        for d in str(getattr(args, "trades_databases", "sqlite,postgresql")).split(",")
        if d.strip()
    ]
    runners = {"sqlite": run_sqlite, "postgresql": run_postgresql}
    results: list[Result] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="df-bench-trades-") as tmp:
        for key in databases:
            results.append(runners[key](Path(tmp), _workers(spec, key), threads, seconds))
            loads.append(os.getloadavg()[0])
    description = (
        "Through the use case the API calls (`exchange.orders.place_order`), one transaction "
        "per trade: the listing row-locked and checked against the registry, the licence "
        "taken, the price frozen in escrow (`settlement.freeze`), the contract drawn up "
        "(`contracts.open_contract`: document, hash, number, history), the order numbered, "
        "audit events and inbox messages, commit. Worker processes (forked after the set-up, "
        "each with its own connection pool, like server workers) × threads buy for "
        f"{seconds:.0f} s from {SELLERS * LISTINGS_PER_SELLER} listings of {SELLERS} sellers "
        f"(half with a limited licence count), {BUYERS} buyers; then one caller alone. SQLite "
        "is a WAL file (synchronous=FULL); PostgreSQL a throwaway local server with durable "
        "settings (`tests/support/pgserver.py`). Not through HTTP: the API adds its request "
        "handling (see the `api` section for that cost). The ratio column is trades/s ÷ "
        f"{TARGET} (issue 7's bar, judged on PostgreSQL)."
    )
    notes = [
        "Every trade writes the listing (licences, when limited), the buyer's two balance rows, a "
        "freeze journal with its lines and hold, the contract and its first history row, the "
        "order, the contract's and the order's numbers, three audit events (the contract's for "
        "buyer and seller, the order's for the buyer) and three inbox messages; it reads the "
        "buyer's and the seller's party rows, the listing and its latest review, and the "
        "registry's revision (the right, certificate and asset only when the registry changed). "
        "Rows a trade locks until it commits: the listing (buyers of one listing take turns: the "
        "figure in brackets counts the statements from its lock to the commit), the buyer's "
        "balances, and on PostgreSQL the head of one of the audit trail's eight chains, picked "
        "at random per transaction (`datafactor.audit`). No row is locked by every trade: on "
        "PostgreSQL the contract and order numbers come from sequences (`exchange.serials`), "
        "where a year counter row used to make every trade wait for the one before it through "
        "that one's commit, and so did the audit trail's single head (233 trades/s at best); "
        "SQLite runs one writer at a time anyway and keeps the gapless counters and one chain.",
        "The write path runs on Core statements compiled once per database and executed on the "
        "cursor of the session's connection (`datafactor.fastsql`), not the ORM's unit of work. "
        "On PostgreSQL a trade is 8 statements and the commit (9 on a listing with a limited "
        "licence count: its update): the listing's row lock; then, in "
        "a fresh snapshot once the lock is held, the registry's revision, the order the "
        "buyer's idempotency key may already have placed, the latest review and both parties' "
        "cards (one statement); the buyer's balance rows locked; the escrow's journal, its "
        "lines, the two balances and the hold (one statement of data-modifying CTEs, writing "
        "nothing if the journal's key was taken, `settlement.services._posting`); the contract's "
        "and the order's numbers (both sequences in one statement, `serials.take_many`); the "
        "contract, its history row, the order and the messages (one statement); the audit "
        "chain's head locked; the audit events and the new head (one statement). The registry's "
        "checks (right held and in force, certificate active, no title dispute, not core data) "
        "are cached per process under the registry's revision counter, which every registry "
        "write bumps. psycopg's raw cursor runs them (`$n` parameters: nothing parsed per call). "
        "History of the CPU per trade, one caller (Python + PostgreSQL server): the ORM path "
        "11.2–14.3 + 2.8–3.9 ms (31 statements); compiled statements 2.7–3.1 + 1.8–2.0 ms (15); "
        "these 8 statements about 8% less again, measured alternately against the 15 on the "
        "same machine. SQLite: 9.3–10.5 ms of Python (29 statements) → 2.4–3.1 ms (18) → the "
        "statements above, minus the ones only PostgreSQL needs. Trades/s of the 15-statement "
        "tree and of this one run alternately on the idle machine (2026-11-26, PostgreSQL): "
        "246, 260 → 300, 351 — the same code's figure moves by 10–15% between runs here, so "
        "compare runs side by side.",
        "SQLite runs one process: its writers queue on the database's write lock (in-process "
        "on a lock, across processes on the busy timeout, which sleeps).",
    ]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = max(loads) > (cores or 1) + 0.5
    notes.append(
        ("**Caution: the machine was shared.** " if busy else "")
        + "1-minute load average at the start and after each database: "
        + " → ".join(f"{x:.1f}" for x in loads)
        + f" on {cores} cores"
        + (
            " — other processes were competing for the CPU, so these figures are lower and "
            "the tails longer than on an idle machine."
            if busy
            else "."
        )
    )
    return Section(
        title=NAME,
        description=description,
        rows=[row for r in results for row in rows_for(r)],
        notes=notes,
        ratio_header=f"Ratio trades/s ÷ {TARGET}",
    )
