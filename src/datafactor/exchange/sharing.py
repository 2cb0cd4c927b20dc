"""Revenue sharing (收益分配): how the amount a contract paid is split among its payees.

Pure: no web, no ORM (import-linter). ``split`` takes the amount in whole fen, the listing's
revenue-sharing agreement (``ExchangeListing.revenue_sharing``), the product's rights lineage as
the registry reports it (``registry.rights_lineage``), the seller, the broker on the contract and
the listing's class of data, with the rates of ``rules/exchange.yaml`` (``Terms``), and returns
the parts, each carrying the rule it follows and, for a revenue share, its stage:

1. **Of the amount paid**: the exchange's fee (``EXC-SETTLE-FEE``; rate, then clamped to the
   minimum and maximum), the broker's commission when a broker is on the contract
   (``EXC-SETTLE-BROKER``), and public data's share for the treasury as non-tax revenue when the
   listing is public data or its lineage reaches public data (``EXC-SETTLE-TREASURY``; 桂政办发
   〔2023〕51号 附件 8.2). What is left is the *rest*.
2. **Commissions** (fixed fen) of the agreement, along the chain collection → processing →
   circulation → application, from the rest (``EXC-SETTLE-SHARING``).
3. **Dividends** (basis points) of what remains after them — the *net* — per party along the
   chain; the seller gets the net's remaining share (``EXC-SETTLE-SELLER``).

Rounding (``EXC-SETTLE-EXACT``): each proportional step is an apportionment of a whole number of
fen by weights in basis points — every part gets its exact share rounded down and the fen left
over go one each to the largest remainders (Hamilton's method). Ties go to the larger exact share,
then by kind, party id and stage, so the result never depends on the order the agreement lists
its entries. The parts add up exactly to the amount, none is negative (zero parts are left out:
nothing is paid), and each proportional part is within one fen of its exact share. An agreement
that asks for more than there is — commissions beyond the rest, dividends above 10,000 bp — is
refused, never scaled down: the parties agreed to a split that cannot be paid and must correct it.
A collection- or processing-stage party must hold a qualifying right in the lineage
(``EXC-SETTLE-LINEAGE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from datafactor.errors import N_
from datafactor.exchange.errors import ExchangeInvalid
from datafactor.rulefiles import RuleSet
from datafactor.settlement.domain import LineKind, Payout

BP: Final = 10_000  # basis points in a whole
STAGES: Final = ("collection", "processing", "circulation", "application")
MODES: Final = ("dividend", "commission")
# The order parts are listed in (and the last tie-break of the rounding).
_KIND_ORDER: Final = {
    LineKind.FEE: 0,
    LineKind.COMMISSION: 1,
    LineKind.TREASURY: 2,
    LineKind.SHARE: 3,
    LineKind.PAYOUT: 4,
}

MSG_RATES: Final = N_(
    "The exchange's rates add up to {total} basis points of the amount paid (fee {fee}, broker "
    "{broker}, treasury {treasury}); they may add up to at most 10,000. Ask the exchange to "
    "correct its rules file (rule {rule})."
)
MSG_ENTRY: Final = N_(
    "Revenue-sharing entry {index} is not valid: {problem}. Each entry names a party_id, a stage "
    "(collection, processing, circulation or application), a mode and its figure — dividend: "
    "bp, a whole number from 1 to 10,000; commission: fen, a whole number of at least 1 "
    "(rule {rule})."
)
MSG_LINEAGE: Final = N_(
    "Revenue-sharing entry {index} gives a {stage}-stage share to party {party}, which holds no "
    "{rights} right in force on this product's lineage. Name the holder of such a right, or "
    "another stage (rule {rule})."
)
MSG_COMMISSIONS: Final = N_(
    "The revenue-sharing commissions add up to {asked} yuan, but only {left} yuan is left of "
    "the {amount} yuan paid after the exchange's fee, the broker's commission and the treasury's "
    "share. Lower the commissions in the listing's agreement (rule {rule})."
)
MSG_DIVIDENDS: Final = N_(
    "The revenue-sharing dividends add up to {total} basis points; they may add up to at most "
    "10,000 (100 %). Lower them in the listing's agreement (rule {rule})."
)
MSG_AMOUNT: Final = N_(
    "The amount to split must be a whole number of fen, 0 or more: {value} is not (rule {rule})."
)


@dataclass(frozen=True, slots=True)
class Terms:
    """The rates a split applies, and the rule ids each part carries."""

    fee_bp: int
    fee_min_fen: int
    fee_max_fen: int | None
    broker_bp: int
    treasury_bp: int
    stage_rights: Mapping[str, frozenset[str]]
    rule_fee: str = "EXC-SETTLE-FEE"
    rule_broker: str = "EXC-SETTLE-BROKER"
    rule_treasury: str = "EXC-SETTLE-TREASURY"
    rule_sharing: str = "EXC-SETTLE-SHARING"
    rule_lineage: str = "EXC-SETTLE-LINEAGE"
    rule_exact: str = "EXC-SETTLE-EXACT"
    rule_seller: str = "EXC-SETTLE-SELLER"


def terms_from_rules(rules: RuleSet) -> Terms:
    """The split's rates and rule ids from the exchange's rules file (``settlement:``)."""
    values = rules.data["settlement"]
    fee = values["fee"]
    return Terms(
        fee_bp=int(fee["rate_bp"]),
        fee_min_fen=int(fee.get("min_fen") or 0),
        fee_max_fen=None if fee.get("max_fen") is None else int(fee["max_fen"]),
        broker_bp=int(values["broker_commission"]["rate_bp"]),
        treasury_bp=int(values["treasury"]["rate_bp"]),
        stage_rights={
            str(k): frozenset(str(x) for x in v)
            for k, v in (values.get("stage_rights") or {}).items()
        },
        rule_fee=rules.rule_id("settle_fee"),
        rule_broker=rules.rule_id("settle_broker"),
        rule_treasury=rules.rule_id("settle_treasury"),
        rule_sharing=rules.rule_id("settle_sharing"),
        rule_lineage=rules.rule_id("settle_lineage"),
        rule_exact=rules.rule_id("settle_exact"),
        rule_seller=rules.rule_id("settle_seller"),
    )


@dataclass(frozen=True, slots=True)
class Holder:
    """A right in the product's lineage, as the split needs it (from ``registry.LineageRight``)."""

    party_id: str
    right_kind: str
    data_class: str
    in_force: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a listing's revenue-sharing agreement, checked."""

    party_id: str
    stage: str
    mode: str
    bp: int = 0
    fen: int = 0


@dataclass(frozen=True, slots=True)
class Part:
    """One payee of a split: the settlement payment kind, amount, party (None for the exchange's
    fee and the treasury), the chain stage of a revenue share, and the rule it follows."""

    kind: LineKind
    amount_fen: int
    party_id: str | None
    rule: str
    stage: str | None = None
    mode: str | None = None

    def payout(self) -> Payout:
        return Payout(self.kind, self.amount_fen, self.party_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "party_id": self.party_id,
            "amount_fen": self.amount_fen,
            "stage": self.stage,
            "mode": self.mode,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class Split:
    """The parts of one amount (in payment order) and the rule ids the split applied."""

    amount_fen: int
    parts: tuple[Part, ...]
    rules: tuple[str, ...]

    def payouts(self) -> tuple[Payout, ...]:
        return tuple(p.payout() for p in self.parts)

    def total(self, kind: LineKind) -> int:
        return sum(p.amount_fen for p in self.parts if p.kind is kind)


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_agreement(
    agreement: Iterable[Mapping[str, Any]],
    holders: Iterable[Holder],
    terms: Terms,
) -> tuple[Entry, ...]:
    """The agreement's entries, checked (shape; dividends ≤ 10,000 bp; a collection- or
    processing-stage party holds a qualifying right in force in the lineage)."""
    held: dict[str, set[str]] = {}
    for h in holders:
        if h.in_force:
            held.setdefault(h.party_id, set()).add(h.right_kind)
    entries: list[Entry] = []
    for index, raw in enumerate(agreement):
        problem = _entry_problem(raw)
        if problem:
            raise ExchangeInvalid(
                MSG_ENTRY,
                rule=terms.rule_sharing,
                field=f"revenue_sharing[{index}]",
                index=index,
                problem=problem,
            )
        mode = str(raw["mode"])
        entry = Entry(
            party_id=str(raw["party_id"]),
            stage=str(raw["stage"]),
            mode=mode,
            bp=int(raw["bp"]) if mode == "dividend" else 0,
            fen=int(raw["fen"]) if mode == "commission" else 0,
        )
        needed = terms.stage_rights.get(entry.stage)
        if needed and not (held.get(entry.party_id, set()) & needed):
            raise ExchangeInvalid(
                MSG_LINEAGE,
                rule=terms.rule_lineage,
                field=f"revenue_sharing[{index}].party_id",
                index=index,
                stage=entry.stage,
                party=entry.party_id,
                rights="/".join(sorted(needed)),
            )
        entries.append(entry)
    total_bp = sum(e.bp for e in entries)
    if total_bp > BP:
        raise ExchangeInvalid(
            MSG_DIVIDENDS, rule=terms.rule_sharing, field="revenue_sharing", total=total_bp
        )
    return tuple(entries)


def _entry_problem(raw: object) -> str | None:
    if not isinstance(raw, Mapping):
        return "not an object"
    party = raw.get("party_id")
    if not isinstance(party, str) or not party.strip():
        return "no party_id"
    if raw.get("stage") not in STAGES:
        return f"unknown stage {raw.get('stage')!r}"
    mode = raw.get("mode")
    if mode == "dividend":
        bp = raw.get("bp")
        if not isinstance(bp, int) or isinstance(bp, bool) or not 1 <= bp <= BP:
            return f"dividend bp {bp!r}"
    elif mode == "commission":
        fen = raw.get("fen")
        if not isinstance(fen, int) or isinstance(fen, bool) or fen < 1:
            return f"commission fen {fen!r}"
    else:
        return f"unknown mode {mode!r}"
    return None


def apportion(total: int, weights: Sequence[tuple[int, Any]]) -> list[int]:
    """``total`` fen shared by ``weights`` (basis points summing to 10,000, each with a sort key
    for ties): each gets its exact share rounded down, and the fen left over go one each to the
    largest remainders; ties to the larger exact share (the larger weight), then by the key."""
    assert total >= 0
    assert sum(w for w, _ in weights) == BP
    floors = [total * w // BP for w, _ in weights]
    left = total - sum(floors)
    order = sorted(
        range(len(weights)),
        key=lambda i: (-(total * weights[i][0] % BP), -weights[i][0], weights[i][1]),
    )
    for i in order[:left]:
        floors[i] += 1
    return floors


def _chain_key(entry: Entry) -> tuple[int, str]:
    return (STAGES.index(entry.stage), entry.party_id)


def split(
    amount_fen: int,
    *,
    seller_id: str,
    agreement: Iterable[Mapping[str, Any]],
    holders: Iterable[Holder],
    terms: Terms,
    broker_id: str | None = None,
    data_class: str = "",
) -> Split:
    """Split ``amount_fen`` (see the module's docstring). Public data's treasury share applies
    when ``data_class`` is ``public`` or a lineage holder's data is public."""
    if not _is_whole(amount_fen) or amount_fen < 0:
        raise ExchangeInvalid(MSG_AMOUNT, rule=terms.rule_exact, value=str(amount_fen))
    holders = tuple(holders)
    entries = check_agreement(agreement, holders, terms)
    public = data_class == "public" or any(h.data_class == "public" for h in holders)
    fee_bp = terms.fee_bp
    broker_bp = terms.broker_bp if broker_id else 0
    treasury_bp = terms.treasury_bp if public else 0
    top = fee_bp + broker_bp + treasury_bp
    if top > BP or min(fee_bp, broker_bp, treasury_bp) < 0:
        raise ExchangeInvalid(
            MSG_RATES,
            rule=terms.rule_exact,
            total=top,
            fee=fee_bp,
            broker=broker_bp,
            treasury=treasury_bp,
        )
    applied: list[str] = [terms.rule_fee, terms.rule_exact, terms.rule_seller]
    fee, broker, treasury, rest = apportion(
        amount_fen,
        [
            (fee_bp, (0, "fee")),
            (broker_bp, (1, "broker")),
            (treasury_bp, (2, "treasury")),
            (BP - top, (3, "rest")),
        ],
    )
    # The fee's minimum and maximum, within what the fee and the rest hold together.
    pool = fee + rest
    clamped = max(fee, terms.fee_min_fen)
    if terms.fee_max_fen is not None:
        clamped = min(clamped, terms.fee_max_fen)
    fee, rest = min(clamped, pool), pool - min(clamped, pool)

    parts: list[Part] = []
    if fee:
        parts.append(Part(LineKind.FEE, fee, None, terms.rule_fee))
    if broker_id:
        applied.append(terms.rule_broker)
        if broker:
            parts.append(Part(LineKind.COMMISSION, broker, broker_id, terms.rule_broker))
    if public:
        applied.append(terms.rule_treasury)
        if treasury:
            parts.append(Part(LineKind.TREASURY, treasury, None, terms.rule_treasury))

    commissions = sorted((e for e in entries if e.mode == "commission"), key=_chain_key)
    dividends = sorted((e for e in entries if e.mode == "dividend"), key=_chain_key)
    if entries:
        applied.append(terms.rule_sharing)
    if any(terms.stage_rights.get(e.stage) for e in entries):
        applied.append(terms.rule_lineage)
    asked = sum(e.fen for e in commissions)
    if asked > rest:
        raise ExchangeInvalid(
            MSG_COMMISSIONS,
            rule=terms.rule_sharing,
            field="revenue_sharing",
            asked=_yuan(asked),
            left=_yuan(rest),
            amount=_yuan(amount_fen),
        )
    for e in commissions:
        parts.append(Part(LineKind.SHARE, e.fen, e.party_id, terms.rule_sharing, e.stage, e.mode))
    net = rest - asked
    weights = [(e.bp, (STAGES.index(e.stage), e.party_id)) for e in dividends]
    seller_bp = BP - sum(e.bp for e in dividends)
    weights.append((seller_bp, (len(STAGES), seller_id)))
    *shares, seller = apportion(net, weights)
    for e, amount in zip(dividends, shares, strict=True):
        if amount:
            parts.append(
                Part(LineKind.SHARE, amount, e.party_id, terms.rule_sharing, e.stage, e.mode)
            )
    if seller:
        parts.append(Part(LineKind.PAYOUT, seller, seller_id, terms.rule_seller))
    parts = [p for p in parts if p.amount_fen > 0]
    assert sum(p.amount_fen for p in parts) == amount_fen
    return Split(amount_fen, tuple(parts), tuple(dict.fromkeys(applied)))


def _yuan(fen: int) -> str:
    whole, cents = divmod(fen, 100)
    return f"{whole:,}.{cents:02d}"
