"""Exchange settlement benchmark: 100,000 completed contracts settled in one batch.

For each database (a SQLite WAL file; a throwaway PostgreSQL with durable settings): migrate,
register ``BUYERS`` buyers, ``SELLERS`` sellers, a broker and a revenue-sharing partner (verified
parties), fund each buyer through the local bank backend, and insert one published listing per
seller (half of them public data, so their split pays the treasury; each with a revenue-sharing
agreement: the partner's circulation-stage dividend of 5 % and an application-stage commission
of 1 yuan). Then, not timed:

* ``--exchange-settle-contracts`` (default 100,000) escrow holds frozen through
  ``settlement.freeze`` — 1,000 per transaction on a few threads, as the settlement benchmark
  prepares its batch (the money must really be in escrow for the books to reconcile);
* the completed contracts written straight into ``exchange_contract`` in bulk (every fourth
  with the broker on it), each on its hold — as orders, signatures and acceptance would leave
  them.

Timed: one ``exchange.settle.settle_due`` — every contract's split computed (fee, broker
commission, treasury share, revenue shares, the seller), ONE ``settlement.settle_batch`` of all
the captures (one journal each, balances and holds written in bulk, one ledger entry), the
settlement rows, their parts, the contracts' history and settled marks written in bulk, one
ledger entry and one audit event for the run — in one transaction. Then the same run again (a
replay: nothing paid twice), and the whole book reconciled (it must balance) with the exchange's
figures checked against the ledger's (fee income, treasury, what the sellers received).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from run import REPO, Row, Section

NAME = "Exchange: 100,000 completed contracts settled in one batch"
PACKAGES = ["sqlalchemy", "psycopg"]

DEFAULT_CONTRACTS = 100_000
BUYERS = 64
SELLERS = 16
PRICE_FEN = 10_000
SETUP_THREADS = 4
SETUP_CHUNK = 1_000
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exchange-settle-contracts",
        type=int,
        default=int(os.environ.get("DATAFACTOR_BENCH_EXCHANGE_SETTLE", DEFAULT_CONTRACTS)),
        help=f"exchange-settle benchmark: completed contracts settled in one batch (default "
        f"{DEFAULT_CONTRACTS:,}, or $DATAFACTOR_BENCH_EXCHANGE_SETTLE)",
    )
    parser.add_argument(
        "--exchange-settle-databases",
        default="sqlite,postgresql",
        help="exchange-settle benchmark: databases to run on (default sqlite,postgresql)",
    )


@dataclass
class Result:
    title: str
    contracts: int
    hold_seconds: float
    insert_seconds: float
    run_seconds: float
    settled: int
    paid_fen: int
    replay_seconds: float
    replayed: bool
    reconcile_seconds: float
    balanced: bool
    journals: int
    lines: int
    figures_match: bool
    figures_note: str


def _parties(db: Any, count: int, prefix: str, kind: str = "enterprise") -> list[str]:
    from datafactor.identity import PartyApplication, PartyKind, ServiceRole, register_party
    from datafactor.identity.codes import make_uscc

    ids = []
    with db.write() as s:
        for n in range(count):
            party = register_party(
                s,
                None,
                PartyApplication(
                    kind=PartyKind(kind),
                    name=f"交易结算基准{prefix}{n}",
                    name_en=f"Exchange settlement bench {prefix}{n}",
                    code=make_uscc("9", "1", "450100", f"{prefix}{n:07d}"[-8:]),
                    service_role=ServiceRole.BROKER if kind == "service_firm" else None,
                ),
                today=date(2026, 5, 1),
            )
            ids.append(party.id)
    return ids


def _listings(db: Any, sellers: list[str], partner: str) -> list[str]:
    from datafactor.db import new_id
    from datafactor.exchange.models import ExchangeListing

    ids = []
    with db.write() as s:
        for n, seller in enumerate(sellers):
            row = ExchangeListing(
                id=new_id(),
                number=f"GX-DL-2026-{700000 + n:06d}",
                state="published",
                asset_id=new_id(),
                right_id=new_id(),
                certificate_number=f"GX-BENCH-{n:06d}",
                seller_id=seller,
                kind="product",
                title=f"基准数据产品{n}",
                data_class="public" if n % 2 else "enterprise",
                price_model="one_off",
                price_fen=PRICE_FEN,
                channels=["download"],
                contract_policy={},
                access={"audience": "verified"},
                revenue_sharing=[
                    {"party_id": partner, "stage": "circulation", "mode": "dividend", "bp": 500},
                    {"party_id": partner, "stage": "application", "mode": "commission", "fen": 100},
                ],
                published_at=NOW,
            )
            s.add(row)
            ids.append(row.id)
    return ids


def _measure(title: str, url: str, contracts: int) -> Result:
    from sqlalchemy import func, insert, select

    from datafactor.db import Database, new_id
    from datafactor.exchange import settle
    from datafactor.exchange.models import (
        ExchangeContract,
        ExchangeSettlement,
        ExchangeSettlementPart,
    )
    from datafactor.migrations import upgrade
    from datafactor.settlement import deposit_funds, freeze, services
    from datafactor.settlement.books import reconcile, snapshot

    Database(url).dispose()
    upgrade(url)
    db = Database(url, pool_size=SETUP_THREADS + 2)
    try:
        print(f"exchange-settle: {title}: parties, funds, listings", flush=True)
        buyers = _parties(db, BUYERS, "XB")
        sellers = _parties(db, SELLERS, "XE")
        broker = _parties(db, 1, "XK", "service_firm")[0]
        partner = _parties(db, 1, "XP")[0]
        for buyer in buyers:
            with db.write() as s:
                deposit_funds(s, buyer, 10**13, key=f"fund-{buyer}", actor="bench")
        listings = _listings(db, sellers, partner)
        with db.read() as s:
            from datafactor.exchange.models import ExchangeListing

            by_id = {x.id: x.asset_id for x in s.scalars(select(ExchangeListing))}
        assets = [by_id[x] for x in listings]

        print(f"exchange-settle: {title}: {contracts:,} escrow holds", flush=True)
        ids = [new_id() for _ in range(contracts)]
        holds: list[str] = [""] * contracts
        started = time.perf_counter()

        def prepare(group: int) -> None:
            # Each thread freezes for its own buyers only (see bench/settlement.py).
            mine = [i for i in range(contracts) if (i % BUYERS) % SETUP_THREADS == group]
            for start in range(0, len(mine), SETUP_CHUNK):
                with db.write() as s:
                    for i in mine[start : start + SETUP_CHUNK]:
                        hold = freeze(
                            s,
                            buyers[i % BUYERS],
                            PRICE_FEN,
                            f"contract:{ids[i]}",
                            key=f"order:{ids[i]}:freeze",
                            actor="bench",
                        ).hold_id
                        assert hold is not None
                        holds[i] = hold

        with ThreadPoolExecutor(max_workers=SETUP_THREADS) as pool:
            list(pool.map(prepare, range(SETUP_THREADS)))
        hold_seconds = time.perf_counter() - started

        print(f"exchange-settle: {title}: {contracts:,} completed contracts", flush=True)
        started = time.perf_counter()
        rows = [
            {
                "id": ids[i],
                "number": f"GX-DC-2026-B{i:07d}",
                "state": "completed",
                "kind": "mall",
                "listing_id": listings[i % SELLERS],
                "asset_id": assets[i % SELLERS],
                "seller_id": sellers[i % SELLERS],
                "buyer_id": buyers[i % BUYERS],
                "broker_id": broker if i % 4 == 0 else None,
                "quantity": 1,
                "price_fen": PRICE_FEN,
                "amount_fen": PRICE_FEN,
                "channels": ["download"],
                "policy": {},
                "term_start": date(2026, 5, 1),
                "term_end": date(2027, 4, 30),
                "document": {},
                "document_hash": "0" * 64,
                "hold_id": holds[i],
                "accepted_at": NOW,
                "reason": "",
                "rules": [],
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(contracts)
        ]
        with db.write() as s:
            for start in range(0, contracts, 10_000):
                s.execute(insert(ExchangeContract), rows[start : start + 10_000])
        insert_seconds = time.perf_counter() - started
        del rows

        print(f"exchange-settle: {title}: one settlement run of {contracts:,}", flush=True)
        started = time.perf_counter()
        with db.write() as s:
            result = settle.settle_due(s, None, key="bench-run", actor="bench", now=NOW)
        run_seconds = time.perf_counter() - started
        print(f"exchange-settle: {title}: the same run again", flush=True)
        started = time.perf_counter()
        with db.write() as s:
            replay = settle.settle_due(s, None, key="bench-run", actor="bench", now=NOW)
        replay_seconds = time.perf_counter() - started

        print(f"exchange-settle: {title}: reconciling the book", flush=True)
        started = time.perf_counter()
        with snapshot(db) as s:
            report, _ = reconcile(s)
        reconcile_seconds = time.perf_counter() - started
        with db.read() as s:
            parts = {
                kind: int(total)
                for kind, total in s.execute(
                    select(
                        ExchangeSettlementPart.kind, func.sum(ExchangeSettlementPart.amount_fen)
                    ).group_by(ExchangeSettlementPart.kind)
                )
            }
            settled_rows = s.scalar(select(func.count()).select_from(ExchangeSettlement))
            totals = services.system_totals(s)
        # The exchange's record and the money ledger must tell the same story.
        ledger = {
            "fee": totals.get("fee_income", 0),
            "treasury": totals.get("treasury", 0),
            "frozen": totals.get("frozen", 0),
        }
        match = (
            parts.get("fee", 0) == ledger["fee"]
            and parts.get("treasury", 0) == ledger["treasury"]
            and ledger["frozen"] == 0
            and settled_rows == contracts
            and sum(parts.values()) == result.paid_fen == contracts * PRICE_FEN
        )
        note = json.dumps({"parts": parts, "ledger": ledger, "settlements": settled_rows})
        return Result(
            title,
            contracts,
            hold_seconds,
            insert_seconds,
            run_seconds,
            result.settled,
            result.paid_fen,
            replay_seconds,
            replay.replayed and replay.settled == result.settled,
            reconcile_seconds,
            report.balanced,
            report.journals,
            report.lines,
            match,
            note,
        )
    finally:
        db.dispose()


def run_sqlite(workdir: Path, contracts: int) -> Result:
    path = workdir / "sqlite" / "datafactor.db"
    return _measure("SQLite", f"sqlite:///{path}", contracts)


def run_postgresql(workdir: Path, contracts: int) -> Result:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from pgserver import PgServer

    pg = PgServer(durable=True).start()
    try:
        pg.execute("CREATE DATABASE datafactor_exchange_settle_bench")
        return _measure("PostgreSQL", pg.url("datafactor_exchange_settle_bench"), contracts)
    finally:
        pg.stop()


def rows_for(r: Result) -> list[Row]:
    t = r.title
    return [
        Row(
            f"{t}: {r.contracts:,} completed contracts settled in one batch (split, capture, "
            "records)",
            f"{r.settled:,} in {r.run_seconds:,.1f} s ({r.settled / r.run_seconds:,.0f} "
            "contracts/s)",
            f"{r.contracts:,} settled",
            r.settled == r.contracts,
            "",
        ),
        Row(
            f"{t}: the same run again (idempotency key: nothing paid twice)",
            f"{'replayed' if r.replayed else 'NOT replayed'} in {r.replay_seconds:,.2f} s",
            "replayed",
            r.replayed,
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
        Row(
            f"{t}: the exchange's split records agree with the ledger (fee income, treasury, "
            "escrow emptied, every contract paid in full)",
            "agree" if r.figures_match else "DISAGREE",
            "agree",
            r.figures_match,
            "",
        ),
        Row(
            f"{t}: preparing the escrow holds (settlement.freeze, {SETUP_CHUNK:,} per "
            f"transaction, {SETUP_THREADS} threads; not timed in the run)",
            f"{r.hold_seconds:,.1f} s ({r.contracts / r.hold_seconds:,.0f} freezes/s)",
            "",
            None,
            "",
        ),
        Row(
            f"{t}: writing the completed contracts in bulk (not timed in the run)",
            f"{r.insert_seconds:,.1f} s",
            "",
            None,
            "",
        ),
    ]


def run(args: argparse.Namespace) -> Section:
    contracts = int(getattr(args, "exchange_settle_contracts", DEFAULT_CONTRACTS))
    if contracts < 1:
        raise ValueError("--exchange-settle-contracts must be at least 1")
    databases = [
        d.strip()
        for d in getattr(args, "exchange_settle_databases", "sqlite,postgresql").split(",")
        if d.strip()
    ]
    runners = {"sqlite": run_sqlite, "postgresql": run_postgresql}
    results: list[Result] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="df-bench-exchange-settle-") as tmp:
        for key in databases:
            results.append(runners[key](Path(tmp), contracts))
            loads.append(os.getloadavg()[0])
    description = (
        f"`exchange.settle.settle_due` settles {contracts:,} completed contracts of "
        f"{PRICE_FEN / 100:,.2f} yuan each in one transaction: every contract's split computed "
        "from its listing's revenue-sharing agreement and the rules file (exchange fee 2 %, the "
        "broker's 1 % on every fourth contract, public data's 10 % treasury share on half of "
        "them, an application-stage commission of 1 yuan and a circulation-stage dividend of "
        "5 %, the rest to the seller), one `settlement.settle_batch` of all the captures (each "
        "keyed `contract:{id}:settle`, as a single settlement would be), the settlement rows, "
        "their parts, the contracts' history and settled marks written in bulk, one ledger "
        "entry for the run. The holds are frozen beforehand through `settlement.freeze` and the "
        "contracts written straight into the table (not timed). SQLite is a WAL file "
        "(synchronous=FULL); PostgreSQL a throwaway local server with durable settings "
        "(`tests/support/pgserver.py`). Issue 7 asks for the batch to be timed; it sets no "
        "target, so the table has no ratio."
    )
    notes = [
        "No peer tool: the issue names none for settling exchange contracts.",
        "The run is one transaction: a refusal of any capture refuses the whole batch and "
        "nothing is written; a contract whose split cannot be paid (its agreement asks for more "
        "than there is) is left out and reported instead.",
    ]
    notes += [f"{r.title} figures: `{r.figures_note}`" for r in results]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = max(loads) > (cores or 1) + 0.5
    notes.append(
        ("**Caution: the machine was shared.** " if busy else "")
        + "1-minute load average at the start and after each database: "
        + " → ".join(f"{x:.1f}" for x in loads)
        + f" on {cores} cores."
    )
    if contracts != DEFAULT_CONTRACTS:
        notes.append(
            f"**Short run:** {contracts:,} contracts, not {DEFAULT_CONTRACTS:,} "
            "(`--exchange-settle-contracts`)."
        )
    return Section(
        title=NAME,
        description=description,
        rows=[row for r in results for row in rows_for(r)],
        notes=notes,
        ratio_header="Ratio",
    )
