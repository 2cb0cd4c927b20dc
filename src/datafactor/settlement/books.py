"""Reconciliation (对账): proving from the stored lines that the books balance, and anchoring
each closed day's journals in the transparency ledger.

``reconcile`` reads the whole book in one consistent snapshot (``REPEATABLE READ`` on
PostgreSQL; a SQLite read transaction is a snapshot already) and checks, naming the account,
journal or day and the difference for every problem:

* all balances sum to 0 (the sign convention of ``domain``);
* every balance equals the sum of its account's lines, its line count their last sequence
  number, and the balance after its last line; each account's lines run 1, 2, 3 … and each one's
  balance after is the previous one's plus its amount;
* every journal has at least two lines and they sum to 0;
* no credit-normal account is below 0 and the custody bank account not above 0;
* each party's frozen funds equal what is still frozen on its open escrow holds;
* the custody bank account equals the local bank's transfers in less transfers out, and every
  deposit and withdrawal has its bank transfer;
* every journal's stored digest re-derives from its content, and every anchored day's Merkle
  root re-derives from its journals' digests (a journal inserted into, removed from or altered in
  a closed day shows here even if the database triggers were bypassed).

``run_reconciliation`` then records the verdict (``settlement_reconciliation``), anchors each day
that has been over for the grace period and is not anchored yet (``settlement.day.closed``: the
day, its journal count and root), and appends the verdict itself to the ledger
(``settlement.books.reconciled``), all in one transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import and_, func, insert, literal, select
from sqlalchemy.orm import Session

from datafactor import audit, ledger
from datafactor.db import CHINA, Database, new_id, utcnow
from datafactor.errors import N_, Forbidden
from datafactor.permissions import Permission, Principal
from datafactor.settlement.domain import (
    CHART,
    SYSTEM_ACCOUNT_IDS,
    AccountKind,
    JournalKind,
    Problem,
    ReconciliationReport,
    Side,
    digest_bytes,
    journal_digest_payload,
)
from datafactor.settlement.models import (
    SettlementAccount,
    SettlementBalance,
    SettlementBankTransfer,
    SettlementDayAnchor,
    SettlementHold,
    SettlementJournal,
    SettlementLine,
    SettlementReconciliation,
)
from datafactor.settlement.rulebook import load_settlement_rules

P = Permission
STREAM: Final = 5000
MSG_NOT_ALLOWED: Final = N_("Your role does not include this ({permission}).")


@contextmanager
def snapshot(db: Database) -> Iterator[Session]:
    """A read-only session that sees one consistent state of the whole book."""
    if db.is_sqlite:
        with db.read() as session:
            yield session
        return
    engine = db.engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(engine) as session, session.begin():
        yield session


def _day_of(moment: datetime) -> date:
    return moment.astimezone(CHINA).date()


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=CHINA).astimezone(UTC)


@dataclass
class _DayRoots:
    """Journal digests per China date, in (posted_at, id) order, folded into Merkle roots."""

    digests: dict[date, list[bytes]]

    def root(self, day: date) -> str:
        return ledger.root_from_leaf_hashes(self.digests[day]).hex()


def _journal_pass(session: Session, rule: str, problems: list[Problem]) -> tuple[int, _DayRoots]:
    """Stream every journal with its lines: re-derive each digest, collect each day's digests."""
    stmt = (
        select(
            SettlementJournal.id,
            SettlementJournal.kind,
            SettlementJournal.reference,
            SettlementJournal.posted_at,
            SettlementJournal.scope,
            SettlementJournal.idempotency_key,
            SettlementJournal.digest,
            SettlementLine.account_id,
            SettlementLine.amount_fen,
            SettlementLine.kind,
            SettlementLine.seq,
            SettlementLine.balance_after_fen,
        )
        .outerjoin(SettlementLine, SettlementLine.journal_id == SettlementJournal.id)
        .order_by(SettlementJournal.posted_at, SettlementJournal.id)
        .execution_options(yield_per=STREAM)
    )
    days: dict[date, list[bytes]] = {}
    count = 0
    rows = session.execute(stmt)
    for journal_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        group_rows = list(group)
        first = group_rows[0]
        count += 1
        lines = [(r[7], r[8], r[9], r[10], r[11]) for r in group_rows if r[7] is not None]
        payload = journal_digest_payload(
            journal_id=journal_id,
            kind=first[1],
            reference=first[2],
            posted_at=first[3],
            scope=first[4],
            key=first[5],
            lines=lines,
        )
        digest = ledger.leaf_hash(digest_bytes(payload))
        if digest.hex() != first[6]:
            problems.append(
                Problem(
                    "journal-digest",
                    rule,
                    journal=journal_id,
                    expected=first[6],
                    actual=digest.hex(),
                    detail="the journal's content does not match its digest",
                )
            )
        days.setdefault(_day_of(first[3]), []).append(bytes.fromhex(first[6]))
    return count, _DayRoots(days)


def reconcile(
    session: Session, *, now: datetime | None = None
) -> tuple[ReconciliationReport, list[tuple[date, int, str]]]:
    """Check the whole book (see the module docstring); also return the closed days not yet
    anchored, with their journal count and Merkle root. Reads only."""
    r = load_settlement_rules()
    rule = r.rule_id("reconcile")
    now = now or utcnow()
    problems: list[Problem] = []

    balances = {
        account_id: (balance, lines, kind, party_id)
        for account_id, balance, lines, kind, party_id in session.execute(
            select(
                SettlementBalance.account_id,
                SettlementBalance.balance_fen,
                SettlementBalance.lines,
                SettlementAccount.kind,
                SettlementAccount.party_id,
            ).join(SettlementAccount, SettlementAccount.id == SettlementBalance.account_id)
        )
    }
    accounts = int(session.scalar(select(func.count()).select_from(SettlementAccount)) or 0)
    total = sum(b for b, _, _, _ in balances.values())
    if total != 0:
        problems.append(Problem("books-sum", rule, expected=0, actual=total, difference=total))
    if accounts != len(balances):
        problems.append(
            Problem(
                "account-without-balance",
                rule,
                expected=accounts,
                actual=len(balances),
                difference=len(balances) - accounts,
            )
        )

    # Each balance against its lines.
    sums = {
        account_id: (int(amount), int(count), int(last))
        for account_id, amount, count, last in session.execute(
            select(
                SettlementLine.account_id,
                func.sum(SettlementLine.amount_fen),
                func.count(),
                func.max(SettlementLine.seq),
            ).group_by(SettlementLine.account_id)
        )
    }
    lines_total = sum(c for _, c, _ in sums.values())
    last_after = {
        account_id: int(after)
        for account_id, after in session.execute(
            select(SettlementLine.account_id, SettlementLine.balance_after_fen).join(
                SettlementBalance,
                and_(
                    SettlementBalance.account_id == SettlementLine.account_id,
                    SettlementBalance.lines == SettlementLine.seq,
                ),
            )
        )
    }
    for account_id in sorted(set(balances) | set(sums)):
        balance, count, kind, _ = balances.get(account_id, (0, 0, None, None))
        line_sum, line_count, last_seq = sums.get(account_id, (0, 0, 0))
        if balance != line_sum:
            problems.append(
                Problem(
                    "account-balance",
                    rule,
                    account=account_id,
                    expected=line_sum,
                    actual=balance,
                    difference=balance - line_sum,
                    detail="the balance is not the sum of the account's lines",
                )
            )
        if count != line_count or (line_count and last_seq != line_count):
            problems.append(
                Problem(
                    "account-lines",
                    rule,
                    account=account_id,
                    expected=line_count,
                    actual=count,
                    difference=count - line_count,
                    detail="the line count does not match the lines stored",
                )
            )
        if line_count and last_after.get(account_id) != balance:
            after = last_after.get(account_id)
            problems.append(
                Problem(
                    "account-last-line",
                    rule,
                    account=account_id,
                    expected=after,
                    actual=balance,
                    difference=None if after is None else balance - after,
                    detail="the balance differs from the balance after the last line",
                )
            )
        if kind is not None:
            side = CHART[AccountKind(kind)].side
            if (side is Side.CREDIT and balance < 0) or (side is Side.DEBIT and balance > 0):
                problems.append(
                    Problem(
                        "account-sign",
                        r.rule_id("funds"),
                        account=account_id,
                        expected=0,
                        actual=balance,
                        difference=balance,
                        detail=f"a {side.value}-normal account on the wrong side of 0",
                    )
                )

    # Each account's lines in sequence, each balance after following from the one before.
    ordered = select(
        SettlementLine.account_id.label("account_id"),
        SettlementLine.seq.label("seq"),
        SettlementLine.amount_fen.label("amount"),
        SettlementLine.balance_after_fen.label("after"),
        func.coalesce(
            func.lag(SettlementLine.balance_after_fen).over(
                partition_by=SettlementLine.account_id, order_by=SettlementLine.seq
            ),
            literal(0),
        ).label("before"),
        func.row_number()
        .over(partition_by=SettlementLine.account_id, order_by=SettlementLine.seq)
        .label("position"),
    ).subquery()
    for account_id, seq, amount, after, before, position in session.execute(
        select(ordered)
        .where(
            (ordered.c.after != ordered.c.before + ordered.c.amount)
            | (ordered.c.seq != ordered.c.position)
        )
        .limit(100)
    ):
        problems.append(
            Problem(
                "line-sequence",
                rule,
                account=account_id,
                expected=int(before) + int(amount),
                actual=int(after),
                difference=int(after) - int(before) - int(amount),
                detail=f"line {seq} (position {position}) does not follow from the one before",
            )
        )

    # Each journal balances and has at least two lines.
    per_journal = (
        select(
            SettlementJournal.id.label("journal_id"),
            func.coalesce(func.sum(SettlementLine.amount_fen), literal(0)).label("total"),
            func.count(SettlementLine.id).label("lines"),
        )
        .outerjoin(SettlementLine, SettlementLine.journal_id == SettlementJournal.id)
        .group_by(SettlementJournal.id)
        .subquery()
    )
    for journal_id, journal_total, count in session.execute(
        select(per_journal).where((per_journal.c.total != 0) | (per_journal.c.lines < 2)).limit(100)
    ):
        problems.append(
            Problem(
                "journal-balance",
                r.rule_id("double_entry"),
                journal=journal_id,
                expected=0,
                actual=int(journal_total),
                difference=int(journal_total),
                detail=f"{count} line(s)",
            )
        )

    # Frozen funds against open escrow holds.
    held = {
        party_id: int(amount)
        for party_id, amount in session.execute(
            select(
                SettlementHold.party_id,
                func.sum(
                    SettlementHold.amount_fen
                    - SettlementHold.released_fen
                    - SettlementHold.captured_fen
                ),
            ).group_by(SettlementHold.party_id)
        )
    }
    for account_id, (balance, _, kind, party_id) in sorted(balances.items()):
        frozen = held.get(party_id or "", 0)
        if kind == AccountKind.FROZEN and frozen != balance:
            problems.append(
                Problem(
                    "escrow",
                    r.rule_id("escrow"),
                    account=account_id,
                    expected=frozen,
                    actual=balance,
                    difference=balance - frozen,
                    detail="frozen funds differ from what the party's holds keep frozen",
                )
            )
    bad_holds = session.scalar(
        select(func.count())
        .select_from(SettlementHold)
        .where(
            (SettlementHold.released_fen < 0)
            | (SettlementHold.captured_fen < 0)
            | (
                SettlementHold.released_fen + SettlementHold.captured_fen
                > SettlementHold.amount_fen
            )
        )
    )
    if bad_holds:
        problems.append(
            Problem(
                "escrow-hold",
                r.rule_id("escrow"),
                actual=int(bad_holds),
                detail="holds released or paid out more than was frozen",
            )
        )

    # The custody bank account against the bank's transfers.
    bank_id = SYSTEM_ACCOUNT_IDS[AccountKind.BANK]
    transfers = {
        direction: int(amount)
        for direction, amount in session.execute(
            select(
                SettlementBankTransfer.direction, func.sum(SettlementBankTransfer.amount_fen)
            ).group_by(SettlementBankTransfer.direction)
        )
    }
    held_at_bank = transfers.get("in", 0) - transfers.get("out", 0)
    bank_balance = balances.get(bank_id, (0, 0, None, None))[0]
    if -bank_balance != held_at_bank:
        problems.append(
            Problem(
                "bank",
                r.rule_id("gateway"),
                account=bank_id,
                expected=-held_at_bank,
                actual=bank_balance,
                difference=bank_balance + held_at_bank,
                detail="the custody account differs from the bank's transfers",
            )
        )
    gateway_journals = int(
        session.scalar(
            select(func.count())
            .select_from(SettlementJournal)
            .where(
                SettlementJournal.kind.in_(
                    [JournalKind.DEPOSIT.value, JournalKind.WITHDRAWAL.value]
                )
            )
        )
        or 0
    )
    matched = int(
        session.scalar(
            select(func.count())
            .select_from(SettlementBankTransfer)
            .join(SettlementJournal, SettlementJournal.id == SettlementBankTransfer.journal_id)
        )
        or 0
    )
    transfer_count = int(
        session.scalar(select(func.count()).select_from(SettlementBankTransfer)) or 0
    )
    if not gateway_journals == matched == transfer_count:
        problems.append(
            Problem(
                "bank-transfers",
                r.rule_id("gateway"),
                expected=gateway_journals,
                actual=matched,
                difference=matched - gateway_journals,
                detail=f"{transfer_count} bank transfer(s), {matched} with their journal, "
                f"{gateway_journals} deposit and withdrawal journal(s)",
            )
        )

    # Digests, and the Merkle roots of the anchored days.
    journals, roots = _journal_pass(session, r.rule_id("anchor"), problems)
    anchored = {
        day: (count, root)
        for day, count, root in session.execute(
            select(SettlementDayAnchor.day, SettlementDayAnchor.journals, SettlementDayAnchor.root)
        )
    }
    for day, (count, root) in sorted(anchored.items()):
        digests = roots.digests.get(day, [])
        actual = ledger.root_from_leaf_hashes(digests).hex()
        if count != len(digests) or root != actual:
            problems.append(
                Problem(
                    "day-anchor",
                    r.rule_id("anchor"),
                    day=day.isoformat(),
                    expected=root,
                    actual=actual,
                    difference=len(digests) - count,
                    detail=f"{count} journal(s) anchored, {len(digests)} stored",
                )
            )
    grace = timedelta(minutes=r.anchor_grace_minutes)
    to_anchor = [
        (day, len(digests), roots.root(day))
        for day, digests in sorted(roots.digests.items())
        if day not in anchored and _day_end(day) + grace <= now
    ]
    report = ReconciliationReport(
        balanced=not problems,
        sum_fen=total,
        journals=journals,
        accounts=accounts,
        lines=lines_total,
        problems=tuple(problems),
        anchored_days=tuple(to_anchor),
    )
    return report, to_anchor


def _require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise Forbidden(MSG_NOT_ALLOWED, permission=permission.value)


def run_reconciliation(
    db: Database,
    principal: Principal | None,
    *,
    actor_name: str = "system",
    now: datetime | None = None,
) -> tuple[SettlementReconciliation, ReconciliationReport]:
    """Reconcile the whole book now; record and anchor the result (see the module docstring).
    ``principal`` None is the operator (the command line) or the daily job."""
    if principal is not None:
        _require(principal, P.SETTLEMENT_BOOKS_RECONCILE)
    now = now or utcnow()
    with snapshot(db) as session:
        report, to_anchor = reconcile(session, now=now)
    with db.write() as session:
        anchored = 0
        for day, count, root in to_anchor:
            if session.get(SettlementDayAnchor, day) is not None:
                continue  # another process anchored it meanwhile
            index = ledger.append_event(
                session,
                "settlement.day.closed",
                {"day": day.isoformat(), "journals": count, "root": root},
            )
            session.execute(
                insert(SettlementDayAnchor).values(
                    day=day, journals=count, root=root, ledger_index=index, anchored_at=now
                )
            )
            anchored += 1
        index = ledger.append_event(
            session,
            "settlement.books.reconciled",
            {
                "balanced": report.balanced,
                "sum_fen": str(report.sum_fen),
                "journals": report.journals,
                "accounts": report.accounts,
                "lines": report.lines,
                "problems": len(report.problems),
                "at": now.isoformat(),
            },
        )
        row = SettlementReconciliation(
            id=new_id(),
            run_at=now,
            actor_user_id=principal.user_id if principal else None,
            actor_name=(principal.username if principal else actor_name)[:64],
            balanced=report.balanced,
            sum_fen=str(report.sum_fen),
            journals=report.journals,
            accounts=report.accounts,
            lines=report.lines,
            problems=[p.as_dict() for p in report.problems[:200]],
            days_anchored=anchored,
            ledger_index=index,
        )
        session.add(row)
        audit.record(
            session,
            actor=principal,
            actor_name=actor_name,
            action="settlement:books:reconcile",
            object_type="settlement_reconciliation",
            object_id=row.id,
            summary=(
                f"books {'balanced' if report.balanced else 'NOT balanced'}: "
                f"{report.journals} journal(s), {report.accounts} account(s), "
                f"{len(report.problems)} problem(s), {anchored} day(s) anchored"
            ),
            party_id=principal.party_id if principal else None,
            reasons=[load_settlement_rules().rule_id("reconcile")],
        )
        session.flush()
    return row, report


def list_reconciliations(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[SettlementReconciliation], int]:
    """The reconciliation history, newest first (the exchange's staff and regulators)."""
    _require(principal, P.SETTLEMENT_ACCOUNT_READ_ALL)
    rows = list(
        session.scalars(
            select(SettlementReconciliation)
            .order_by(SettlementReconciliation.run_at.desc(), SettlementReconciliation.id)
            .limit(limit)
            .offset(offset)
        )
    )
    total = session.scalar(select(func.count()).select_from(SettlementReconciliation))
    return rows, int(total or 0)


def last_reconciliation(session: Session) -> SettlementReconciliation | None:
    return session.scalars(
        select(SettlementReconciliation).order_by(SettlementReconciliation.run_at.desc()).limit(1)
    ).first()


def anchors(session: Session, principal: Principal, *, limit: int = 30) -> list[Any]:
    """The most recent anchored days (day, journals, root, ledger index)."""
    _require(principal, P.SETTLEMENT_ACCOUNT_READ_ALL)
    return list(
        session.scalars(
            select(SettlementDayAnchor).order_by(SettlementDayAnchor.day.desc()).limit(limit)
        )
    )
