"""Settlement benchmark: journal posting throughput (freeze + capture) and one batch settling
100,000 funded freezes.

For each database (a SQLite WAL file; a throwaway PostgreSQL with durable settings): migrate,
register ``BUYERS`` buyers and ``SELLERS`` sellers (verified parties) and fund each buyer through
the local bank backend; then, through the settlement service functions exactly as other domains
call them:

1. **Posting throughput.** ``--settlement-callers`` concurrent callers (threads sharing one
   connection pool) for ``--duration`` seconds, each repeatedly freezing 1,000 fen of its own
   buyer's funds for an order (``freeze``: available → frozen, a hold) and capturing it at once
   (``capture``: the seller 950, the exchange's fee 40, the treasury's share 10) — two journals,
   two transactions, each with its idempotency key. Every capture locks the exchange's fee and
   treasury accounts: those two rows are where concurrent settlements meet. Also one caller.
2. **One batch.** ``--settlement-batch`` (default 100,000) funded freezes are made beforehand —
   through ``freeze``, 1,000 per transaction, on a few threads; not part of the timed batch —
   then one ``settle_batch`` settles them all (one journal per instruction: seller, fee, treasury,
   the rest back; balances and holds written once each; one ledger entry with the batch's Merkle
   root) in one transaction: timed. Then the whole book is reconciled (timed; it must balance).

The contract side of issue 7's batch ("100,000 completed contracts") comes with the exchange;
the batch here is the settlement primitive those contracts will post to. The issue names no peer
tool for settlement, so there is no comparison column.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from run import REPO, Row, Section

NAME = "Settlement: journal posting throughput; 100,000 settlements in one batch"
PACKAGES = ["sqlalchemy", "psycopg"]

DEFAULT_BATCH = 100_000
DEFAULT_CALLERS = 16
BUYERS = 64
SELLERS = 16
FREEZE_FEN = 1_000
SPLIT = (950, 40, 10)  # seller, exchange fee, treasury
SETUP_THREADS = 4
SETUP_CHUNK = 1_000  # freezes per transaction while preparing the batch
ISSUE_TRADES_PER_S = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settlement-batch",
        type=int,
        default=int(os.environ.get("DATAFACTOR_BENCH_SETTLEMENT_BATCH", DEFAULT_BATCH)),
        help=f"settlement benchmark: funded freezes settled in one batch (default "
        f"{DEFAULT_BATCH:,}, or $DATAFACTOR_BENCH_SETTLEMENT_BATCH)",
    )
    parser.add_argument(
        "--settlement-callers",
        type=int,
        default=DEFAULT_CALLERS,
        help=f"settlement benchmark: concurrent callers posting (default {DEFAULT_CALLERS})",
    )
    parser.add_argument(
        "--settlement-databases",
        default="sqlite,postgresql",
        help="settlement benchmark: databases to run on (default sqlite,postgresql)",
    )


@dataclass
class Throughput:
    callers: int
    pairs: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    title: str
    concurrent: Throughput
    single: Throughput
    batch_size: int
    setup_seconds: float
    batch_seconds: float
    settled: int
    reconcile_seconds: float
    balanced: bool
    journals: int
    lines: int


def _parties(db, count: int, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    from datafactor.identity import PartyApplication, PartyKind, register_party
    from datafactor.identity.codes import make_uscc

    ids = []
    with db.write() as s:
        for n in range(count):
            party = register_party(
                s,
                None,
                PartyApplication(
                    kind=PartyKind.ENTERPRISE,
                    name=f"结算基准{prefix}{n}",
                    name_en=f"Settlement bench {prefix}{n}",
                    code=make_uscc("9", "1", "450100", f"{prefix}{n:07d}"[-8:]),
                ),
                today=date(2026, 11, 1),
            )
            ids.append(party.id)
    return ids


def _pair(db, buyer: str, seller: str, tag: str) -> None:  # type: ignore[no-untyped-def]
    from datafactor.settlement import LineKind, Payout, capture, freeze

    with db.write() as s:
        hold = freeze(s, buyer, FREEZE_FEN, f"order:{tag}", key=f"f-{tag}", actor="bench").hold_id
    assert hold is not None
    with db.write() as s:
        capture(
            s,
            hold,
            [
                Payout(LineKind.PAYOUT, SPLIT[0], seller),
                Payout(LineKind.FEE, SPLIT[1]),
                Payout(LineKind.TREASURY, SPLIT[2]),
            ],
            key=f"c-{tag}",
            actor="bench",
        )


def _throughput(db, buyers, sellers, callers: int, seconds: float, label: str) -> Throughput:  # type: ignore[no-untyped-def]
    stop = time.monotonic() + seconds
    counts = [0] * callers
    latencies: list[list[float]] = [[] for _ in range(callers)]
    barrier = threading.Barrier(callers)

    def caller(c: int) -> None:
        barrier.wait()
        n = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            _pair(db, buyers[c % len(buyers)], sellers[c % len(sellers)], f"{label}-{c}-{n}")
            latencies[c].append((time.perf_counter() - started) * 1000)
            n += 1
        counts[c] = n

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        list(pool.map(caller, range(callers)))
    elapsed = time.monotonic() - started
    return Throughput(callers, sum(counts), elapsed, [x for xs in latencies for x in xs])


def _measure(title: str, url: str, batch: int, callers: int, seconds: float) -> Result:
    from datafactor.db import Database
    from datafactor.migrations import upgrade
    from datafactor.settlement import (
        Instruction,
        LineKind,
        Payout,
        deposit_funds,
        freeze,
        settle_batch,
    )
    from datafactor.settlement.books import reconcile, snapshot

    Database(url).dispose()
    upgrade(url)
    db = Database(url, pool_size=max(callers, SETUP_THREADS) + 2)
    try:
        print(f"settlement: {title}: parties and funds", flush=True)
        buyers = _parties(db, BUYERS, "B")
        sellers = _parties(db, SELLERS, "P")
        for buyer in buyers:
            with db.write() as s:
                deposit_funds(s, buyer, 10**13, key=f"fund-{buyer}", actor="bench")
        print(f"settlement: {title}: {callers} callers for {seconds:.0f} s", flush=True)
        _throughput(db, buyers, sellers, callers, min(2.0, seconds), "warm")
        concurrent = _throughput(db, buyers, sellers, callers, seconds, "many")
        single = _throughput(db, buyers, sellers, 1, min(5.0, seconds), "one")

        print(f"settlement: {title}: {batch:,} funded freezes for the batch", flush=True)
        started = time.perf_counter()
        holds: list[str] = [""] * batch

        def prepare(group: int) -> None:
            # Each thread freezes for its own buyers only: a transaction that posts several
            # journals locks their accounts one journal at a time, so two such transactions
            # sharing accounts could wait on each other (PostgreSQL would abort one).
            mine = [i for i in range(batch) if (i % BUYERS) % SETUP_THREADS == group]
            for start in range(0, len(mine), SETUP_CHUNK):
                with db.write() as s:
                    for i in mine[start : start + SETUP_CHUNK]:
                        hold = freeze(
                            s,
                            buyers[i % BUYERS],
                            10_000,
                            f"contract:{i}",
                            key=f"b-{i}",
                            actor="bench",
                        ).hold_id
                        assert hold is not None
                        holds[i] = hold

        with ThreadPoolExecutor(max_workers=SETUP_THREADS) as pool:
            list(pool.map(prepare, range(SETUP_THREADS)))
        setup_seconds = time.perf_counter() - started
        instructions = [
            Instruction(
                hold,
                (
                    Payout(LineKind.PAYOUT, 9_000, sellers[i % SELLERS]),
                    Payout(LineKind.FEE, 700),
                    Payout(LineKind.TREASURY, 200),
                ),
                f"settle:contract:{i}",
            )
            for i, hold in enumerate(holds)
        ]
        print(f"settlement: {title}: one batch of {batch:,}", flush=True)
        started = time.perf_counter()
        with db.write() as s:
            result = settle_batch(s, instructions, key="bench-batch", actor="bench")
        batch_seconds = time.perf_counter() - started

        print(f"settlement: {title}: reconciling the book", flush=True)
        started = time.perf_counter()
        with snapshot(db) as s:
            report, _ = reconcile(s)
        reconcile_seconds = time.perf_counter() - started
        return Result(
            title,
            concurrent,
            single,
            batch,
            setup_seconds,
            batch_seconds,
            result.settled,
            reconcile_seconds,
            report.balanced,
            report.journals,
            report.lines,
        )
    finally:
        db.dispose()


def run_sqlite(workdir: Path, batch: int, callers: int, seconds: float) -> Result:
    path = workdir / "sqlite" / "datafactor.db"
    return _measure("SQLite", f"sqlite:///{path}", batch, callers, seconds)


def run_postgresql(workdir: Path, batch: int, callers: int, seconds: float) -> Result:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from pgserver import PgServer

    pg = PgServer(durable=True).start()
    try:
        pg.execute("CREATE DATABASE datafactor_settlement_bench")
        return _measure(
            "PostgreSQL", pg.url("datafactor_settlement_bench"), batch, callers, seconds
        )
    finally:
        pg.stop()


def rows_for(r: Result) -> list[Row]:
    t, c, one = r.title, r.concurrent, r.single
    return [
        Row(
            f"{t}: freeze + capture pairs/s, {c.callers} concurrent callers",
            f"{c.pairs_per_s:,.0f} pairs/s ({2 * c.pairs_per_s:,.0f} journals/s)",
            "",
            None,
            f"{c.pairs_per_s / ISSUE_TRADES_PER_S:.2f}",
        ),
        Row(
            f"{t}: latency of one pair (two transactions), p50 / p99",
            f"{c.pct(0.50):.1f} / {c.pct(0.99):.1f} ms",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: freeze + capture pairs/s, one caller",
            f"{one.pairs_per_s:,.0f} pairs/s (p50 {one.pct(0.50):.1f} ms)",
            "",
            None,
            f"{one.pairs_per_s / ISSUE_TRADES_PER_S:.2f}",
        ),
        Row(
            f"{t}: {r.batch_size:,} funded freezes settled in one batch",
            f"{r.settled:,} in {r.batch_seconds:,.1f} s "
            f"({r.settled / r.batch_seconds:,.0f} settlements/s)",
            f"{r.batch_size:,} settled",
            r.settled == r.batch_size,
            "",
        ),
        Row(
            f"{t}: preparing those freezes (1,000 per transaction, {SETUP_THREADS} threads; "
            "not part of the batch)",
            f"{r.setup_seconds:,.1f} s ({r.batch_size / r.setup_seconds:,.0f} freezes/s)",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: reconciliation of the whole book afterwards",
            f"{'balanced' if r.balanced else 'NOT balanced'}: {r.journals:,} journals, "
            f"{r.lines:,} lines in {r.reconcile_seconds:,.1f} s",
            "balanced",
            r.balanced,
            "",
        ),
    ]


def run(args: argparse.Namespace) -> Section:
    batch = int(getattr(args, "settlement_batch", DEFAULT_BATCH))
    callers = int(getattr(args, "settlement_callers", DEFAULT_CALLERS))
    if batch < 1 or callers < 1:
        raise ValueError("--settlement-batch and --settlement-callers must be at least 1")
    seconds = float(args.duration)
    databases = [
        d.strip()
        for d in getattr(args, "settlement_databases", "sqlite,postgresql").split(",")
        if d.strip()
    ]
    runners = {"sqlite": run_sqlite, "postgresql": run_postgresql}
    results: list[Result] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="df-bench-settlement-") as tmp:
        for key in databases:
            results.append(runners[key](Path(tmp), batch, callers, seconds))
            loads.append(os.getloadavg()[0])
    description = (
        f"Through the settlement service functions, one transaction per call: {callers} "
        f"concurrent callers (threads, one connection pool) for {seconds:.0f} s each freeze "
        f"{FREEZE_FEN:,} fen of their own buyer's funds for an order and capture it at once "
        f"(seller {SPLIT[0]}, exchange fee {SPLIT[1]}, treasury {SPLIT[2]} fen) — two balanced "
        "journals with their idempotency keys, balance rows locked in account order; then one "
        "caller. Then one `settle_batch` pays out "
        f"{results[0].batch_size if results else 0:,} funded freezes (seller, fee, treasury, the "
        "rest back to the buyer) in one transaction, and the whole book is reconciled. SQLite is "
        "a WAL file (synchronous=FULL) in a temporary folder; PostgreSQL a throwaway local "
        "server with durable settings (`tests/support/pgserver.py`). The ratio column is "
        f"pairs/s ÷ {ISSUE_TRADES_PER_S} (issue 7's bar for the whole order + escrow + contract "
        "write path on PostgreSQL, which comes with the exchange: shown for scale, not judged)."
    )
    notes = [
        "No peer tool: the issue names none for settlement, so there is no comparison column.",
        "Every capture credits the exchange's fee and treasury accounts, so concurrent "
        "settlements queue on those two balance rows (locked last, held until commit); on "
        "SQLite all writers queue on the database's write lock anyway. A pair is two commits "
        "(each durable: fsync on SQLite, WAL flush on PostgreSQL).",
        "The batch is one transaction: its instructions are checked, the holds and balance rows "
        "locked in id order, every journal planned in memory, then journals, lines, balances and "
        "holds written in bulk statements; a refusal anywhere refuses the whole batch. The "
        'contract side of issue 7\'s "100,000 completed contracts" comes with the exchange.',
    ]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = max(loads) > (cores or 1) + 0.5  # this benchmark keeps about one core busy itself
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
    if batch != DEFAULT_BATCH:
        notes.append(
            f"**Short run:** a batch of {batch:,}, not {DEFAULT_BATCH:,} (`--settlement-batch`)."
        )
    return Section(
        title=NAME,
        description=description,
        rows=[row for r in results for row in rows_for(r)],
        notes=notes,
        ratio_header="Ratio pairs/s ÷ 300",
    )
