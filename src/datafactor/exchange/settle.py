"""Settlement of contracts (结算): escrow released or paid out by the split, once per contract.

The money itself moves only through ``datafactor.settlement`` (its idempotency keys are derived
from the contract, so a retry replays); this module decides *what* moves and keeps the
exchange's record of it. The interface the contracts use (the layer above this module):

    release_contract(session, contract, *, actor, now, memo="") -> None
        the contract ended before completion (terminated, expired, a dispute decided for the
        buyer): everything still frozen on its hold goes back to the buyer (idempotent: keyed by
        the contract, ``contract:{id}:release``); nothing when there is no hold (a free listing)
        or nothing is left on it.
    settle_contract(session, contract, *, actor, now, pay_fen=None) -> ExchangeSettlement
        the contract is completed (accepted, deemed accepted, a dispute decided): ``pay_fen`` of
        the hold (None: what the contract earned — the whole amount, or for a metered contract
        the API calls allowed × the price, at most the amount) is paid out by the split (exchange
        fee, broker commission, public data's treasury share, revenue shares along the lineage,
        the rest to the seller: ``sharing.split``) and the rest of the hold released to the
        buyer, in one capture journal keyed ``contract:{id}:settle``; records ExchangeSettlement
        and its parts, sets the contract's ``capture_journal_id`` and ``settled_at``, appends the
        settlement to the contract's history and to the ledger (the split's SHA-256, not its
        payees), audits it under each party and tells each payee what it received. A contract
        already settled answers its settlement again (a contract is never settled twice).
    refund_settled(session, contract, *, actor, now, amount_fen=None, memo="") -> Posted
        a dispute decided for the buyer after settlement: the payees give back ``amount_fen``
        (all they received when None) in proportion to what each received.

``settle_due`` settles every completed, unsettled contract in ONE ``settlement.settle_batch``
whose instructions carry the very keys and memo a single settlement would use, so a contract
settled singly and in a batch pays once. Lock order: the contract rows (by id), then
settlement's own order (holds, then balances), then the audit chain's head last.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from datafactor import audit, inbox, ledger, registry, settlement
from datafactor.errors import N_
from datafactor.exchange.domain import ContractState, PriceModel
from datafactor.exchange.errors import (
    ExchangeError,
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.models import (
    ExchangeContract,
    ExchangeContractEvent,
    ExchangeDelivery,
    ExchangeListing,
    ExchangeSettlement,
    ExchangeSettlementPart,
)
from datafactor.exchange.rulebook import exchange_rules
from datafactor.exchange.sharing import BP, Holder, Part, Split, Terms, split, terms_from_rules
from datafactor.permissions import Permission, Principal
from datafactor.rulefiles import RuleSet
from datafactor.settlement import Instruction, LineKind, Payout

CHUNK: Final = 1000
# States in which a contract may be settled: completed, or being completed in the caller's
# transaction (the contracts move it to completed and settle in one unit of work).
SETTLEABLE: Final = frozenset(
    {ContractState.ACTIVE, ContractState.DISPUTED, ContractState.COMPLETED}
)

EVENT_LABELS: Final = {
    "exchange:contract:settle": N_("Settle a contract"),
    "exchange:contract:release": N_("Release a contract's escrow"),
    "exchange:contract:refund": N_("Refund a settled contract"),
    "exchange:settlement:run": N_("Settle completed contracts"),
}
audit.register_action_labels(EVENT_LABELS)

MSG_STATE: Final = N_(
    "Contract {contract} is {state}: only a completed contract (accepted, deemed accepted or a "
    "dispute decided) is settled (rule {rule})."
)
MSG_PAY: Final = N_(
    "Contract {contract} can pay out between 0 and {most} yuan of its escrow; {asked} yuan was "
    "asked (rule {rule})."
)
MSG_NOT_SETTLED: Final = N_(
    "Contract {contract} has not been settled, so there is nothing to refund; release its escrow "
    "instead (rule {rule})."
)
MSG_RUN_KEY: Final = N_(
    "The idempotency key must be 1 to 100 printable ASCII characters without spaces (a UUID is "
    "best); send the same key when you retry the run (rule {rule})."
)
MSG_PAID: Final = N_("Contract {contract} was settled: {amount} yuan was paid to you ({kinds}).")
MSG_RELEASED: Final = N_(
    "Contract {contract}: {amount} yuan of your escrow was released back to your available funds."
)
MSG_REFUNDED: Final = N_(
    "Contract {contract}: {amount} yuan you received at its settlement was refunded to the buyer."
)
MSG_RUN_PAID: Final = N_(
    "{count} contract(s) were settled in settlement run {run}: {amount} yuan was paid to you."
)


def rules() -> RuleSet:
    return exchange_rules()


def settle_key(contract_id: str) -> str:
    """The settlement's idempotency key: the same for a single settlement and a batch."""
    return f"contract:{contract_id}:settle"


def release_key(contract_id: str) -> str:
    return f"contract:{contract_id}:release"


def _who(actor: Principal | str | None) -> tuple[Principal | None, str]:
    if isinstance(actor, Principal):
        return actor, actor.username
    return None, (actor or "system")[:64]


def _yuan(fen: int) -> str:
    return settlement.yuan_text(fen)


# ------------------------------------------------------------------------------- the facts


def lineage_holders(session: Session, asset_id: str, on: datetime) -> tuple[Holder, ...]:
    """The product's rights lineage as the split needs it (registry's surface)."""
    from datafactor.db import CHINA

    day = on.astimezone(CHINA).date()
    return tuple(
        Holder(r.holder_id, r.right_kind, r.data_class, r.in_force)
        for r in registry.rights_lineage(session, asset_id, day)
    )


def allowed_calls(session: Session, contract_ids: Sequence[str]) -> dict[str, int]:
    """Allowed API pulls per contract, as the delivery records them (one row per pull)."""
    out: dict[str, int] = {}
    for start in range(0, len(contract_ids), CHUNK):
        chunk = contract_ids[start : start + CHUNK]
        for contract_id, count in session.execute(
            select(ExchangeDelivery.contract_id, func.count())
            .where(
                ExchangeDelivery.contract_id.in_(chunk),
                ExchangeDelivery.channel == "api",
                ExchangeDelivery.decision == "allowed",
            )
            .group_by(ExchangeDelivery.contract_id)
        ):
            out[contract_id] = int(count)
    return out


def earned(contract: ExchangeContract, listing: ExchangeListing, calls: int) -> int:
    """What a completed contract earned: its amount, or for a metered contract the allowed
    calls × the price per call, never more than the amount frozen (EXC-SETTLE-METERED)."""
    if listing.price_model == PriceModel.METERED:
        return min(calls * contract.price_fen, contract.amount_fen)
    return contract.amount_fen


def contract_split(
    session: Session,
    contract: ExchangeContract,
    listing: ExchangeListing,
    amount_fen: int,
    now: datetime,
    *,
    holders: tuple[Holder, ...] | None = None,
    terms: Terms | None = None,
) -> Split:
    """The split of ``amount_fen`` paid under ``contract`` (see ``sharing.split``)."""
    if holders is None:
        holders = lineage_holders(session, contract.asset_id, now)
    return split(
        amount_fen,
        seller_id=contract.seller_id,
        agreement=listing.revenue_sharing or (),
        holders=holders,
        terms=terms or terms_from_rules(rules()),
        broker_id=contract.broker_id,
        data_class=listing.data_class,
    )


def _split_digest(parts: Iterable[Any]) -> str:
    """SHA-256 of the split as compact JSON with sorted keys (what the ledger entry proves
    without naming the payees: a party shown the split can recompute it)."""
    material = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


# ------------------------------------------------------------------------------- releasing


def release_contract(
    session: Session,
    contract: ExchangeContract,
    *,
    actor: Principal | str | None,
    now: datetime,
    memo: str = "",
) -> None:
    """Give back everything still frozen on the contract's hold (EXC-SETTLE-RELEASE)."""
    if not contract.hold_id:
        return
    hold = settlement.hold_of(session, contract.hold_id)
    if hold["remaining_fen"] <= 0:
        return
    posted = settlement.release(
        session,
        contract.hold_id,
        None,
        key=release_key(contract.id),
        actor=actor,
        memo=(memo or contract.number)[:200],
        now=now,
    )
    if posted.replayed:
        return
    amount = hold["remaining_fen"]
    principal, name = _who(actor)
    audit.record(
        session,
        actor=principal,
        actor_name=name,
        action="exchange:contract:release",
        object_type="exchange_contract",
        object_id=contract.id,
        summary=f"Contract {contract.number}: {_yuan(amount)} yuan released to the buyer",
        party_id=contract.buyer_id,
        reasons=[rules().rule_id("settle_release")],
    )
    inbox.notify(
        session,
        [contract.buyer_id],
        kind="exchange.escrow.released",
        message=MSG_RELEASED,
        params={"contract": contract.number, "amount": _yuan(amount)},
        link=f"/exchange/contracts/{contract.id}",
    )


# -------------------------------------------------------------------------------- settling


def _lock(session: Session, contract: ExchangeContract) -> ExchangeContract:
    locked = session.execute(
        select(ExchangeContract).where(ExchangeContract.id == contract.id).with_for_update()
    ).scalar_one()
    return locked


def _part_rows(contract_id: str, parts: Iterable[Part], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "contract_id": contract_id,
            "party_id": p.party_id,
            "kind": p.kind.value,
            "stage": p.stage,
            "amount_fen": p.amount_fen,
            "rule": p.rule,
            "settled_at": at,
        }
        for p in parts
    ]


def settle_contract(
    session: Session,
    contract: ExchangeContract,
    *,
    actor: Principal | str | None,
    now: datetime,
    pay_fen: int | None = None,
) -> ExchangeSettlement:
    """Pay a completed contract out by its split (see the module's docstring)."""
    r = rules()
    contract = _lock(session, contract)
    done = session.get(ExchangeSettlement, contract.id)
    if done is not None:
        return done
    if contract.state not in SETTLEABLE:
        raise ExchangeStateConflict(
            MSG_STATE,
            rule=r.rule_id("settle_once"),
            contract=contract.number,
            state=contract.state,
        )
    listing = session.get(ExchangeListing, contract.listing_id)
    assert listing is not None
    remaining = 0
    if contract.hold_id:
        remaining = int(settlement.hold_of(session, contract.hold_id)["remaining_fen"])
    if pay_fen is None:
        calls = allowed_calls(session, [contract.id]).get(contract.id, 0)
        pay = min(earned(contract, listing, calls), remaining)
    else:
        pay = pay_fen
    if not isinstance(pay, int) or isinstance(pay, bool) or not 0 <= pay <= remaining:
        raise ExchangeInvalid(
            MSG_PAY,
            rule=r.rule_id("settle_once"),
            field="pay_fen",
            contract=contract.number,
            most=_yuan(remaining),
            asked=str(pay),
        )
    applied = [r.rule_id("settle_once")]
    if listing.price_model == PriceModel.METERED:
        applied.append(r.rule_id("settle_metered"))
    journal_id: str | None = None
    parts: tuple[Part, ...] = ()
    if pay > 0:
        found = contract_split(session, contract, listing, pay, now)
        parts = found.parts
        applied += found.rules
        assert contract.hold_id is not None
        posted = settlement.capture(
            session,
            contract.hold_id,
            found.payouts(),
            key=settle_key(contract.id),
            actor=actor,
            release_remainder=True,
            memo=contract.number,
            now=now,
        )
        journal_id = posted.journal.id
    elif contract.hold_id and remaining > 0:
        # Nothing earned (a metered contract never called): the whole hold goes back, under the
        # settlement's own key, so settling again replays it.
        posted = settlement.release(
            session,
            contract.hold_id,
            None,
            key=settle_key(contract.id),
            actor=actor,
            memo=contract.number,
            now=now,
        )
        journal_id = posted.journal.id
        applied.append(r.rule_id("settle_release"))
    released = remaining - pay
    split_rows = [p.as_dict() for p in parts]
    rule_ids = list(dict.fromkeys(applied))
    ledger_index = ledger.append_event(
        session,
        "exchange.contract.settled",
        {
            "contract": contract.number,
            "contract_id": contract.id,
            "journal": journal_id or "",
            "amount_fen": str(pay),
            "released_fen": str(released),
            "split_sha256": _split_digest(split_rows),
            "rules": rule_ids,
        },
    )
    row = ExchangeSettlement(
        contract_id=contract.id,
        journal_id=journal_id,
        batch_id=None,
        split=split_rows,
        rules=rule_ids,
        amount_fen=pay,
        released_fen=released,
        ledger_index=ledger_index,
        run_key=None,
        settled_at=now,
    )
    session.add(row)
    session.flush()
    if parts:
        session.execute(insert(ExchangeSettlementPart), _part_rows(contract.id, parts, now))
    contract.capture_journal_id = journal_id
    contract.settled_at = now
    contract.updated_at = now
    principal, name = _who(actor)
    session.add(
        ExchangeContractEvent(
            contract_id=contract.id,
            action="settle",
            source=contract.state,
            target=contract.state,
            actor_user_id=principal.user_id if principal else None,
            actor_party_id=principal.party_id if principal else None,
            actor_name=name,
            reason=f"{_yuan(pay)} paid, {_yuan(released)} released",
            reason_params={"paid_fen": pay, "released_fen": released},
            rules=rule_ids,
            ledger_index=ledger_index,
            at=now,
        )
    )
    session.flush()
    parties = [contract.seller_id, contract.buyer_id]
    if contract.broker_id:
        parties.append(contract.broker_id)
    for party_id in dict.fromkeys(parties):
        audit.record(
            session,
            actor=principal,
            actor_name=name,
            action="exchange:contract:settle",
            object_type="exchange_contract",
            object_id=contract.id,
            summary=f"Contract {contract.number} settled: {_yuan(pay)} yuan paid out, "
            f"{_yuan(released)} yuan released to the buyer",
            party_id=party_id,
            reasons=rule_ids,
        )
    _notify_payees(session, contract, parts, released)
    return row


def _notify_payees(
    session: Session, contract: ExchangeContract, parts: Sequence[Part], released: int
) -> None:
    received: dict[str, list[Part]] = defaultdict(list)
    for p in parts:
        if p.party_id:
            received[p.party_id].append(p)
    link = f"/exchange/settlements/{contract.id}"
    for party_id, mine in sorted(received.items()):
        inbox.notify(
            session,
            [party_id],
            kind="exchange.contract.settled",
            message=MSG_PAID,
            params={
                "contract": contract.number,
                "amount": _yuan(sum(p.amount_fen for p in mine)),
                "kinds": ", ".join(dict.fromkeys(p.kind.value for p in mine)),
            },
            link=link,
        )
    if released > 0:
        inbox.notify(
            session,
            [contract.buyer_id],
            kind="exchange.escrow.released",
            message=MSG_RELEASED,
            params={"contract": contract.number, "amount": _yuan(released)},
            link=link,
        )


# -------------------------------------------------------------------------------- refunding


def refund_settled(
    session: Session,
    contract: ExchangeContract,
    *,
    actor: Principal | str | None,
    now: datetime,
    amount_fen: int | None = None,
    memo: str = "",
) -> settlement.Posted:
    """The payees of a settled contract give back ``amount_fen`` (all they received when None)
    in proportion to what each received, to the buyer's available funds (settlement.refund,
    keyed ``contract:{id}:refund``: one refund per contract). The parts are recorded negative,
    so every figure summed from them nets the refund out."""
    r = rules()
    contract = _lock(session, contract)
    row = session.get(ExchangeSettlement, contract.id)
    if row is None or not row.journal_id or row.amount_fen <= 0:
        raise ExchangeStateConflict(
            MSG_NOT_SETTLED, rule=r.rule_id("settle_release"), contract=contract.number
        )
    parts = [p for p in row.split if int(p["amount_fen"]) > 0]
    paid = sum(int(p["amount_fen"]) for p in parts)
    amount = paid if amount_fen is None else amount_fen
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= paid:
        raise ExchangeInvalid(
            MSG_PAY,
            rule=r.rule_id("settle_release"),
            field="amount_fen",
            contract=contract.number,
            most=_yuan(paid),
            asked=str(amount),
        )
    shares = _proportional(amount, [int(p["amount_fen"]) for p in parts])
    refunds = [
        Payout(LineKind(p["kind"]), share, p.get("party_id"))
        for p, share in zip(parts, shares, strict=True)
        if share > 0
    ]
    posted = settlement.refund(
        session,
        row.journal_id,
        refunds,
        key=f"contract:{contract.id}:refund",
        actor=actor,
        memo=(memo or contract.number)[:200],
        now=now,
    )
    if posted.replayed:
        return posted
    session.execute(
        insert(ExchangeSettlementPart),
        [
            {
                "contract_id": contract.id,
                "party_id": p.get("party_id"),
                "kind": p["kind"],
                "stage": p.get("stage"),
                "amount_fen": -share,
                "rule": r.rule_id("settle_release"),
                "settled_at": now,
            }
            for p, share in zip(parts, shares, strict=True)
            if share > 0
        ],
    )
    principal, name = _who(actor)
    for party_id in dict.fromkeys([contract.seller_id, contract.buyer_id]):
        audit.record(
            session,
            actor=principal,
            actor_name=name,
            action="exchange:contract:refund",
            object_type="exchange_contract",
            object_id=contract.id,
            summary=f"Contract {contract.number}: {_yuan(amount)} yuan refunded to the buyer",
            party_id=party_id,
            reasons=[r.rule_id("settle_release")],
        )
    payees = sorted({str(p["party_id"]) for p in parts if p.get("party_id")})
    for party_id in payees:
        mine = sum(s for p, s in zip(parts, shares, strict=True) if p.get("party_id") == party_id)
        if mine:
            inbox.notify(
                session,
                [party_id],
                kind="exchange.contract.refunded",
                message=MSG_REFUNDED,
                params={"contract": contract.number, "amount": _yuan(mine)},
                link=f"/exchange/settlements/{contract.id}",
            )
    return posted


def _proportional(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` shared in proportion to ``weights`` (largest remainder; ties to the earlier)."""
    whole = sum(weights)
    floors = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return floors


# ----------------------------------------------------------------------- settling in bulk


@dataclass(frozen=True)
class Refused:
    """A due contract the run could not settle, with the rule and the reason."""

    contract_id: str
    number: str
    rule: str
    message: str


@dataclass(frozen=True)
class DueResult:
    """What a settlement run did: the contracts settled (in one batch per ``batch_size``), the
    total paid out of escrow and released back, the settlement batches, the ledger entry, the
    contracts refused (their split cannot be paid) and whether this was a replay of a run."""

    run_key: str
    settled: int
    paid_fen: int
    released_fen: int
    batch_ids: tuple[str, ...]
    ledger_index: int | None
    contract_ids: tuple[str, ...]
    refused: tuple[Refused, ...] = field(default=())
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_key": self.run_key,
            "settled": self.settled,
            "paid_fen": self.paid_fen,
            "released_fen": self.released_fen,
            "batch_ids": list(self.batch_ids),
            "ledger_index": self.ledger_index,
            "replayed": self.replayed,
            "refused": [
                {
                    "contract_id": x.contract_id,
                    "number": x.number,
                    "rule": x.rule,
                    "message": x.message,
                }
                for x in self.refused
            ],
        }


def check_run_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= 100
        or any(not 0x21 <= ord(ch) <= 0x7E for ch in key)
    ):
        raise ExchangeInvalid(MSG_RUN_KEY, rule=rules().rule_id("settle_run"), field="key")
    return key


def _due(session: Session, contract_ids: Sequence[str] | None) -> list[ExchangeContract]:
    base = (
        select(ExchangeContract)
        .where(
            ExchangeContract.state == ContractState.COMPLETED,
            ExchangeContract.settled_at.is_(None),
        )
        .order_by(ExchangeContract.id)
        .with_for_update()
    )
    if contract_ids is None:
        return list(session.scalars(base))
    wanted = sorted(set(contract_ids))
    found: list[ExchangeContract] = []
    for start in range(0, len(wanted), CHUNK):
        found += session.scalars(base.where(ExchangeContract.id.in_(wanted[start : start + CHUNK])))
    return found


def _replay(session: Session, run_key: str) -> DueResult | None:
    rows = session.execute(
        select(
            ExchangeSettlement.contract_id,
            ExchangeSettlement.amount_fen,
            ExchangeSettlement.released_fen,
            ExchangeSettlement.batch_id,
            ExchangeSettlement.ledger_index,
        )
        .where(ExchangeSettlement.run_key == run_key)
        .order_by(ExchangeSettlement.contract_id)
    ).all()
    if not rows:
        return None
    return DueResult(
        run_key,
        len(rows),
        sum(int(r.amount_fen) for r in rows),
        sum(int(r.released_fen) for r in rows),
        tuple(dict.fromkeys(r.batch_id for r in rows if r.batch_id)),
        next((r.ledger_index for r in rows if r.ledger_index is not None), None),
        tuple(r.contract_id for r in rows),
        replayed=True,
    )


def settle_due(
    session: Session,
    contract_ids: Sequence[str] | None,
    *,
    key: str,
    actor: Principal | str | None,
    now: datetime,
) -> DueResult:
    """Settle every completed, unsettled contract (or those of ``contract_ids``) in one
    settlement batch (EXC-SETTLE-RUN). Idempotent on ``key``: a run that settled contracts
    answers the same result again. A contract whose split cannot be paid (its agreement asks
    for more than there is) is left unsettled and reported; the others settle."""
    r = rules()
    run_key = check_run_key(key)
    if (previous := _replay(session, run_key)) is not None:
        return previous
    contracts = _due(session, contract_ids)
    already = set()
    ids = [c.id for c in contracts]
    for start in range(0, len(ids), CHUNK):
        already |= set(
            session.scalars(
                select(ExchangeSettlement.contract_id).where(
                    ExchangeSettlement.contract_id.in_(ids[start : start + CHUNK])
                )
            )
        )
    contracts = [c for c in contracts if c.id not in already]
    listings = {
        x.id: x
        for start in range(0, len(contracts), CHUNK)
        for x in session.scalars(
            select(ExchangeListing).where(
                ExchangeListing.id.in_({c.listing_id for c in contracts[start : start + CHUNK]})
            )
        )
    }
    metered = {c.id for c in contracts if listings[c.listing_id].price_model == PriceModel.METERED}
    calls = allowed_calls(session, sorted(metered))
    remaining = {
        hold_id: int(h["remaining_fen"])
        for hold_id, h in settlement.holds_of(
            session, [c.hold_id for c in contracts if c.hold_id]
        ).items()
    }
    holders: dict[str, tuple[Holder, ...]] = {}
    terms = terms_from_rules(r)
    # Contracts of one listing at one amount split alike: each split is computed once.
    splits: dict[tuple[str, str, str | None, int], Split | ExchangeError] = {}
    batch: list[tuple[ExchangeContract, Split]] = []
    singles: list[ExchangeContract] = []
    refused: list[Refused] = []
    for c in contracts:
        listing = listings[c.listing_id]
        pay = min(earned(c, listing, calls.get(c.id, 0)), remaining.get(c.hold_id or "", 0))
        if not c.hold_id or pay <= 0:
            singles.append(c)  # nothing to capture: a release, or no money at all
            continue
        if c.asset_id not in holders:
            holders[c.asset_id] = lineage_holders(session, c.asset_id, now)
        memo = (c.listing_id, c.seller_id, c.broker_id, pay)
        if memo not in splits:
            try:
                splits[memo] = contract_split(
                    session, c, listing, pay, now, holders=holders[c.asset_id], terms=terms
                )
            except ExchangeError as exc:
                splits[memo] = exc
        found = splits[memo]
        if isinstance(found, ExchangeError):
            refused.append(Refused(c.id, c.number, found.rule, str(found)))
            continue
        batch.append((c, found))

    size = int(r.data["settlement"]["batch_size"])
    batch_ids: list[str] = []
    journals: dict[str, tuple[str, str]] = {}
    for n, start in enumerate(range(0, len(batch), size)):
        chunk = batch[start : start + size]
        result = settlement.settle_batch(
            session,
            [
                Instruction(
                    c.hold_id or "",
                    found.payouts(),
                    settle_key(c.id),
                    release_remainder=True,
                    memo=c.number,
                )
                for c, found in chunk
            ],
            key=f"exchange:settle-due:{run_key}:{n}",
            actor=actor,
            now=now,
        )
        batch_ids.append(result.batch_id)
        for (c, _), journal_id in zip(chunk, result.journal_ids, strict=True):
            journals[c.id] = (journal_id, result.batch_id)

    paid = sum(found.amount_fen for _, found in batch)
    settled_ids = [c.id for c, _ in batch]
    principal, name = _who(actor)
    ledger_index: int | None = None
    if batch:
        ledger_index = ledger.append_event(
            session,
            "exchange.settlements.run",
            {
                "run": hashlib.sha256(run_key.encode()).hexdigest(),
                "contracts": len(batch),
                "paid_fen": str(paid),
                "batches": batch_ids,
                "split_sha256": _split_digest(
                    [[c.id, [p.as_dict() for p in found.parts]] for c, found in batch]
                ),
            },
        )
    released_total = 0
    settlement_rows: list[dict[str, Any]] = []
    part_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    contract_rows: list[dict[str, Any]] = []
    for c, found in batch:
        journal_id, batch_id = journals[c.id]
        released = remaining[c.hold_id or ""] - found.amount_fen
        released_total += released
        rule_ids = list(
            dict.fromkeys(
                [r.rule_id("settle_once"), r.rule_id("settle_run")]
                + ([r.rule_id("settle_metered")] if c.id in metered else [])
                + list(found.rules)
            )
        )
        split_rows = [p.as_dict() for p in found.parts]
        settlement_rows.append(
            {
                "contract_id": c.id,
                "journal_id": journal_id,
                "batch_id": batch_id,
                "split": split_rows,
                "rules": rule_ids,
                "amount_fen": found.amount_fen,
                "released_fen": released,
                "ledger_index": ledger_index,
                "run_key": run_key,
                "settled_at": now,
            }
        )
        part_rows += _part_rows(c.id, found.parts, now)
        event_rows.append(
            {
                "contract_id": c.id,
                "action": "settle",
                "source": c.state,
                "target": c.state,
                "actor_user_id": principal.user_id if principal else None,
                "actor_party_id": principal.party_id if principal else None,
                "actor_name": name,
                "reason": f"{_yuan(found.amount_fen)} paid, {_yuan(released)} released",
                "reason_params": {"paid_fen": found.amount_fen, "released_fen": released},
                "rules": rule_ids,
                "ledger_index": ledger_index,
                "at": now,
            }
        )
        contract_rows.append({"c_id": c.id, "c_journal": journal_id, "c_at": now})
    # Core statements on the session's connection: the ORM's bulk path would fetch each new
    # row's generated id back, one statement per row on SQLite.
    connection = session.connection()
    for model, rows in (
        (ExchangeSettlement, settlement_rows),
        (ExchangeSettlementPart, part_rows),
        (ExchangeContractEvent, event_rows),
    ):
        table = cast(Table, model.__table__)
        for start in range(0, len(rows), CHUNK * 10):
            connection.execute(insert(table), rows[start : start + CHUNK * 10])
    if contract_rows:
        table = cast(Table, ExchangeContract.__table__)
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("c_id"))
            .values(
                capture_journal_id=bindparam("c_journal"),
                settled_at=bindparam("c_at"),
                updated_at=bindparam("c_at"),
            ),
            contract_rows,
        )
        session.expire_all()
    for c in singles:
        row = settle_contract(session, c, actor=actor, now=now)
        row.run_key = run_key
        settled_ids.append(c.id)
        paid += row.amount_fen
        released_total += row.released_fen
    if batch:
        audit.record(
            session,
            actor=principal,
            actor_name=name,
            action="exchange:settlement:run",
            object_type="exchange_settlement_run",
            object_id=batch_ids[0] if batch_ids else run_key[:36],
            summary=f"{len(batch)} contract(s) settled in one batch, {_yuan(paid)} yuan paid, "
            f"{len(refused)} refused",
            party_id=None,
            reasons=[r.rule_id("settle_run"), r.rule_id("settle_once")],
        )
        received: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for _, found in batch:
            for p in found.parts:
                if p.party_id:
                    received[p.party_id][0] += p.amount_fen
            for pid in {p.party_id for p in found.parts if p.party_id}:
                received[pid][1] += 1
        for party_id, (amount, count) in sorted(received.items()):
            inbox.notify(
                session,
                [party_id],
                kind="exchange.contract.settled",
                message=MSG_RUN_PAID,
                params={"count": str(count), "run": run_key[:40], "amount": _yuan(amount)},
                link="/exchange/dashboard",
            )
    session.flush()
    return DueResult(
        run_key,
        len(settled_ids),
        paid,
        released_total,
        tuple(batch_ids),
        ledger_index,
        tuple(settled_ids),
        tuple(refused),
    )


# -------------------------------------------------------------------------------- reading

P = Permission
MSG_NO_SETTLEMENT: Final = N_("No such contract, or not one you may see (rule {rule}).")
MSG_NOT_ALLOWED: Final = N_("Your role does not include this ({permission}).")
MSG_ROLE: Final = N_(
    "A dashboard is shown for a seller, a broker or the exchange operator; {role!r} is not one "
    "your party may see (rule {rule})."
)


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(x) for x in permissions):
        raise ExchangeForbidden(
            MSG_NOT_ALLOWED, rule=rules().rule_id("settle_visible"), permission=permissions[0].value
        )


def may_see(principal: Principal, contract: ExchangeContract) -> bool:
    """A contract's settlement: its seller, buyer and broker, the operator and regulators
    (EXC-SETTLE-VISIBLE)."""
    if principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        return True
    return principal.can(P.EXCHANGE_CONTRACT_READ) and principal.party_id in (
        contract.seller_id,
        contract.buyer_id,
        contract.broker_id,
    )


@dataclass(frozen=True)
class SettlementView:
    """A contract's settlement as its parties see it: settled (the recorded split, the journal,
    the ledger entry) or not yet (what it would pay now: ``preview``, or why it cannot)."""

    contract: ExchangeContract
    listing: ExchangeListing
    settled: bool
    amount_fen: int
    released_fen: int
    parts: tuple[dict[str, Any], ...]
    rules: tuple[str, ...]
    journal_id: str | None = None
    batch_id: str | None = None
    ledger_index: int | None = None
    settled_at: datetime | None = None
    frozen_fen: int = 0
    problem: str = ""
    problem_rule: str = ""


def get_settlement(
    session: Session, principal: Principal, contract_id: str, *, now: datetime
) -> SettlementView:
    """The split of one contract (settled, or a preview of what it would pay now)."""
    _require(principal, P.EXCHANGE_CONTRACT_READ, P.EXCHANGE_CONTRACT_READ_ALL)
    contract = session.get(ExchangeContract, contract_id)
    if contract is None or not may_see(principal, contract):
        raise ExchangeNotFound(MSG_NO_SETTLEMENT, rule=rules().rule_id("settle_visible"))
    listing = session.get(ExchangeListing, contract.listing_id)
    assert listing is not None
    row = session.get(ExchangeSettlement, contract.id)
    if row is not None:
        return SettlementView(
            contract,
            listing,
            True,
            row.amount_fen,
            row.released_fen,
            tuple(row.split),
            tuple(row.rules),
            row.journal_id,
            row.batch_id,
            row.ledger_index,
            row.settled_at,
        )
    frozen = 0
    if contract.hold_id:
        frozen = int(settlement.hold_of(session, contract.hold_id)["remaining_fen"])
    calls = allowed_calls(session, [contract.id]).get(contract.id, 0)
    pay = min(earned(contract, listing, calls), frozen)
    try:
        found = contract_split(session, contract, listing, pay, now)
    except ExchangeError as exc:
        return SettlementView(
            contract,
            listing,
            False,
            pay,
            frozen - pay,
            (),
            (),
            frozen_fen=frozen,
            problem=str(exc),
            problem_rule=exc.rule,
        )
    return SettlementView(
        contract,
        listing,
        False,
        pay,
        frozen - pay,
        tuple(p.as_dict() for p in found.parts),
        found.rules,
        frozen_fen=frozen,
    )


def list_settlements(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[tuple[ExchangeContract, ExchangeSettlement]], int]:
    """Settlements of the contracts the caller's party is on (all for the operator and
    regulators), newest first."""
    _require(principal, P.EXCHANGE_CONTRACT_READ, P.EXCHANGE_CONTRACT_READ_ALL)
    stmt = select(ExchangeContract, ExchangeSettlement).join(
        ExchangeSettlement, ExchangeSettlement.contract_id == ExchangeContract.id
    )
    if not principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        me = principal.party_id
        stmt = stmt.where(
            (ExchangeContract.seller_id == me)
            | (ExchangeContract.buyer_id == me)
            | (ExchangeContract.broker_id == me)
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(
        stmt.order_by(ExchangeSettlement.settled_at.desc(), ExchangeSettlement.contract_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [(c, s) for c, s in rows], int(total)


def dashboard_roles(principal: Principal) -> tuple[str, ...]:
    """The dashboards a principal may see: the operator's (read-all), a broker's (a service
    firm brokering trades), a seller's (any trading party)."""
    roles: list[str] = []
    if principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        roles.append("operator")
    if principal.can(P.EXCHANGE_TRADE_BROKER) and principal.can(P.EXCHANGE_CONTRACT_READ):
        roles.append("broker")
    if principal.can(P.EXCHANGE_CONTRACT_READ) and principal.party_kind != "exchange_operator":
        roles.append("seller")
    return tuple(roles)


def _parts_by(session: Session, *where: Any, group: Any = None) -> list[tuple[Any, int, int]]:
    """(group, amount, count of contracts) over settlement parts (refunds net out)."""
    key = group if group is not None else ExchangeSettlementPart.kind
    rows = session.execute(
        select(
            key,
            func.coalesce(func.sum(ExchangeSettlementPart.amount_fen), 0),
            func.count(func.distinct(ExchangeSettlementPart.contract_id)),
        )
        .where(*where)
        .group_by(key)
    ).all()
    return [(k, int(a), int(n)) for k, a, n in rows]


def _escrow(session: Session, contracts: Iterable[ExchangeContract]) -> int:
    holds = [c.hold_id for c in contracts if c.hold_id]
    return sum(int(h["remaining_fen"]) for h in settlement.holds_of(session, holds).values())


def dashboard(
    session: Session, principal: Principal, role: str | None, *, now: datetime
) -> dict[str, Any]:
    """The figures of a seller's, a broker's or the operator's dashboard, from the exchange's
    tables and the escrow holds (settlement's surface). ``role`` None: the first the principal
    may see."""
    r = rules()
    roles = dashboard_roles(principal)
    if not roles:
        _require(principal, P.EXCHANGE_CONTRACT_READ, P.EXCHANGE_CONTRACT_READ_ALL)
    role = role or roles[0]
    if role not in roles:
        raise ExchangeForbidden(MSG_ROLE, rule=r.rule_id("settle_visible"), role=role)
    out: dict[str, Any] = {"role": role, "roles": list(roles), "party_id": principal.party_id}
    if role == "seller":
        out.update(_seller(session, principal.party_id))
    elif role == "broker":
        out.update(_broker(session, principal.party_id))
    else:
        out.update(_operator(session, now, int(r.data["settlement"]["dashboard_days"])))
    return out


def _by_state(session: Session, *where: Any) -> dict[str, int]:
    return {
        str(state): int(n)
        for state, n in session.execute(
            select(ExchangeContract.state, func.count())
            .where(*where)
            .group_by(ExchangeContract.state)
        )
    }


def _open(session: Session, *where: Any) -> list[ExchangeContract]:
    """Contracts whose escrow may still be frozen: not settled yet, with a hold (a terminated
    one's hold is normally released; if not, what is left still shows)."""
    return list(
        session.scalars(
            select(ExchangeContract).where(
                *where,
                ExchangeContract.settled_at.is_(None),
                ExchangeContract.hold_id.is_not(None),
            )
        )
    )


def _recent(session: Session, *where: Any, limit: int = 10) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ExchangeContract, ExchangeSettlement)
        .join(ExchangeSettlement, ExchangeSettlement.contract_id == ExchangeContract.id)
        .where(*where)
        .order_by(ExchangeSettlement.settled_at.desc(), ExchangeSettlement.contract_id)
        .limit(limit)
    ).all()
    return [
        {
            "contract_id": c.id,
            "number": c.number,
            "amount_fen": s.amount_fen,
            "released_fen": s.released_fen,
            "settled_at": s.settled_at,
            "split": list(s.split),
        }
        for c, s in rows
    ]


_C = ExchangeContract
_S = ExchangeSettlement
_PART = ExchangeSettlementPart


def _seller(session: Session, me: str) -> dict[str, Any]:
    listings = list(
        session.scalars(
            select(ExchangeListing)
            .where(ExchangeListing.seller_id == me)
            .order_by(ExchangeListing.created_at.desc(), ExchangeListing.id)
        )
    )
    sales = {
        lid: (int(n), int(q or 0), int(a or 0))
        for lid, n, q, a in session.execute(
            select(_C.listing_id, func.count(), func.sum(_C.quantity), func.sum(_C.amount_fen))
            .where(_C.seller_id == me, _C.state != ContractState.TERMINATED)
            .group_by(_C.listing_id)
        )
    }
    settled = {
        lid: int(a or 0)
        for lid, a in session.execute(
            select(_C.listing_id, func.sum(_PART.amount_fen))
            .join(_C, _C.id == _PART.contract_id)
            .where(_PART.party_id == me, _PART.kind == LineKind.PAYOUT.value, _C.seller_id == me)
            .group_by(_C.listing_id)
        )
    }
    mine = {k: (a, n) for k, a, n in _parts_by(session, _PART.party_id == me)}
    shares = [
        {"stage": stage, "amount_fen": a, "contracts": n}
        for stage, a, n in _parts_by(
            session, _PART.party_id == me, _PART.kind == LineKind.SHARE.value, group=_PART.stage
        )
    ]
    fees = sum(
        a
        for _, a, _ in _parts_by(
            session,
            _PART.kind == LineKind.FEE.value,
            _PART.contract_id.in_(select(_C.id).where(_C.seller_id == me)),
        )
    )
    return {
        "listings": [
            {
                "listing_id": x.id,
                "number": x.number,
                "title": x.title,
                "state": x.state,
                "price_model": x.price_model,
                "price_fen": x.price_fen,
                "remaining_quantity": x.remaining_quantity,
                "contracts": sales.get(x.id, (0, 0, 0))[0],
                "quantity": sales.get(x.id, (0, 0, 0))[1],
                "amount_fen": sales.get(x.id, (0, 0, 0))[2],
                "settled_fen": settled.get(x.id, 0),
            }
            for x in listings
        ],
        "contracts_by_state": _by_state(session, _C.seller_id == me),
        "escrow_frozen_fen": _escrow(session, _open(session, _C.seller_id == me)),
        "settled_income_fen": mine.get(LineKind.PAYOUT.value, (0, 0))[0],
        "shares_received_fen": mine.get(LineKind.SHARE.value, (0, 0))[0],
        "shares_received": sorted(shares, key=lambda x: STAGE_ORDER.get(x["stage"], 9)),
        "commissions_received_fen": mine.get(LineKind.COMMISSION.value, (0, 0))[0],
        "fees_paid_fen": fees,
        "recent": _recent(session, _C.seller_id == me),
    }


STAGE_ORDER: Final = {"collection": 0, "processing": 1, "circulation": 2, "application": 3}


def _broker(session: Session, me: str) -> dict[str, Any]:
    trades = session.execute(
        select(_C.kind, func.count(), func.coalesce(func.sum(_C.amount_fen), 0))
        .where(_C.broker_id == me, _C.state != ContractState.TERMINATED)
        .group_by(_C.kind)
    ).all()
    commissions = sum(
        a
        for _, a, _ in _parts_by(
            session, _PART.party_id == me, _PART.kind == LineKind.COMMISSION.value
        )
    )
    recent_commissions = [
        {
            "contract_id": c.id,
            "number": c.number,
            "amount_fen": int(p.amount_fen),
            "settled_at": p.settled_at,
        }
        for p, c in session.execute(
            select(ExchangeSettlementPart, _C)
            .join(_C, _C.id == ExchangeSettlementPart.contract_id)
            .where(_PART.party_id == me, _PART.kind == LineKind.COMMISSION.value)
            .order_by(_PART.settled_at.desc(), _PART.id.desc())
            .limit(10)
        )
    ]
    return {
        "co_signed": {str(k): {"contracts": int(n), "amount_fen": int(a)} for k, n, a in trades},
        "co_signed_contracts": sum(int(n) for _, n, _ in trades),
        "co_signed_amount_fen": sum(int(a) for _, _, a in trades),
        "contracts_by_state": _by_state(session, _C.broker_id == me),
        "escrow_frozen_fen": _escrow(session, _open(session, _C.broker_id == me)),
        "commissions_fen": commissions,
        "recent_commissions": recent_commissions,
        "recent": _recent(session, _C.broker_id == me),
    }


def _operator(session: Session, now: datetime, days: int) -> dict[str, Any]:
    from datafactor.db import CHINA

    totals = {k: a for k, a, _ in _parts_by(session)}
    today = now.astimezone(CHINA).date()
    start = datetime.combine(today, datetime.min.time(), CHINA) - timedelta(days=days - 1)
    per_day: dict[str, dict[str, int]] = {
        (today - timedelta(days=n)).isoformat(): {
            "contracts": 0,
            "amount_fen": 0,
            "fee_fen": 0,
            "treasury_fen": 0,
        }
        for n in range(days - 1, -1, -1)
    }
    for at, amount in session.execute(
        select(_S.settled_at, _S.amount_fen).where(_S.settled_at >= start)
    ):
        day = at.astimezone(CHINA).date().isoformat()
        if day in per_day:
            per_day[day]["contracts"] += 1
            per_day[day]["amount_fen"] += int(amount)
    for at, kind, amount in session.execute(
        select(
            ExchangeSettlementPart.settled_at,
            ExchangeSettlementPart.kind,
            ExchangeSettlementPart.amount_fen,
        ).where(
            ExchangeSettlementPart.settled_at >= start,
            ExchangeSettlementPart.kind.in_([LineKind.FEE.value, LineKind.TREASURY.value]),
        )
    ):
        day = at.astimezone(CHINA).date().isoformat()
        if day in per_day:
            per_day[day][f"{kind}_fen"] += int(amount)
    due = session.scalar(
        select(func.count()).where(_C.state == ContractState.COMPLETED, _C.settled_at.is_(None))
    )
    settled = session.execute(select(func.count(), func.coalesce(func.sum(_S.amount_fen), 0))).one()
    return {
        "fee_income_fen": totals.get(LineKind.FEE.value, 0),
        "treasury_revenue_fen": totals.get(LineKind.TREASURY.value, 0),
        "broker_commissions_fen": totals.get(LineKind.COMMISSION.value, 0),
        "shares_fen": totals.get(LineKind.SHARE.value, 0),
        "seller_payouts_fen": totals.get(LineKind.PAYOUT.value, 0),
        "settled_contracts": int(settled[0]),
        "settled_amount_fen": int(settled[1]),
        "due_contracts": int(due or 0),
        "contracts_by_state": _by_state(session),
        "escrow_frozen_fen": _escrow(session, _open(session)),
        "volume_per_day": [{"day": d, **v} for d, v in per_day.items()],
        "recent": _recent(session),
    }


__all__ = [
    "BP",
    "DueResult",
    "Refused",
    "SettlementView",
    "allowed_calls",
    "contract_split",
    "dashboard",
    "dashboard_roles",
    "earned",
    "get_settlement",
    "list_settlements",
    "may_see",
    "refund_settled",
    "release_contract",
    "settle_contract",
    "settle_due",
    "settle_key",
]
