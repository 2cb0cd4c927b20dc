"""The demo province trades on the exchange (issue 7): its listings reviewed and published with
signed declarations and assessments, a review queue, settled mall trades, a closed and a live
auction, the bank's sandbox subscription, the Vietnamese company's cross-border agreement trade;
the books balance, the exchange's clock finds nothing due after a load, and a second load writes
nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datafactor import ledger, registry, settlement
from datafactor.audit import AuditEvent
from datafactor.db import CHINA, Database, utcnow
from datafactor.demo.exchange import (
    AUCTIONS,
    LISTINGS,
    LISTINGS_BY_KEY,
    LIVE_FLOOR,
    NEGOTIATIONS,
    PURCHASES,
    DemoListing,
)
from datafactor.demo.loader import demo_principals, load_demo
from datafactor.demo.pilots import ASSETS_BY_KEY, DATASETS_BY_KEY, REGISTRATIONS_BY_KEY
from datafactor.demo.province import PARTIES
from datafactor.demo.settlement import FUNDED_AT, FUNDING
from datafactor.exchange import auctions, jobs, listings, negotiation
from datafactor.exchange.keys import verify_record
from datafactor.exchange.models import (
    ExchangeAuction,
    ExchangeBid,
    ExchangeContract,
    ExchangeDelivery,
    ExchangeListing,
    ExchangeNegotiation,
    ExchangeOffer,
    ExchangeOrder,
    ExchangeSettlement,
)
from datafactor.permissions import Principal
from datafactor.settings import Settings
from datafactor.settlement import books
from datafactor.settlement.models import SettlementJournal

USERS = {u.username: p for p in PARTIES for u in p.users}


# ---------------------------------------------------------------------------- the data alone


def test_the_trades_name_demo_users_of_the_right_parties() -> None:
    for demo in LISTINGS:
        holder = DATASETS_BY_KEY[ASSETS_BY_KEY[demo.asset].dataset].party
        assert ASSETS_BY_KEY[demo.asset].kind == "product"
        assert USERS[demo.preparer].key == USERS[demo.signer].key == holder, demo.key
        assert (
            "admin" in next(u for u in USERS[demo.signer].users if u.username == demo.signer).roles
        )
    for purchase in PURCHASES:
        assert USERS[purchase.buyer].key == USERS[purchase.buyer_signer].key
        seller = LISTINGS_BY_KEY[purchase.listing].signer
        assert USERS[purchase.seller_signer].key == USERS[seller].key
    assert {USERS[b.bidder].key for a in AUCTIONS for b in a.bids} >= {"credit", "bank"}
    funded = {f.party_key for f in FUNDING}
    buyers = {USERS[p.buyer].key for p in PURCHASES} | {
        USERS[b.bidder].key for a in AUCTIONS for b in a.bids
    }
    buyers |= {USERS[n.offers[0].by].key for n in NEGOTIATIONS}
    assert buyers <= funded  # every demo buyer has money in its account
    assert USERS["lawfirm.staff"].service_role == "compliance_assessor"
    assert USERS["broker.staff"].service_role == "broker"
    assert USERS["vntrade.admin"].kind == "foreign_company"


def _filed_on(demo: DemoListing) -> datetime:
    """The day the product's registration was filed."""
    day = REGISTRATIONS_BY_KEY[demo.asset].submitted_on
    return datetime(day.year, day.month, day.day, tzinfo=CHINA)


def test_fixed_dates_follow_the_registry_and_come_before_the_live_trades() -> None:
    for demo in LISTINGS:
        moments = [demo.drafted, demo.submitted, demo.assessed, demo.approved]
        known = [m for m in moments if m is not None]
        assert known == sorted(known), demo.key
        # Listed after the registration (its certificate: checked when loaded).
        assert demo.drafted - _filed_on(demo) > timedelta(days=14), demo.key
        assert known[-1] < LIVE_FLOOR
    assert min(d.drafted for d in LISTINGS) >= FUNDED_AT
    for purchase in PURCHASES:
        moments = [purchase.ordered, purchase.buyer_signed, purchase.seller_signed]
        moments += [m for m in (purchase.delivered, purchase.accepted) if m is not None]
        if purchase.live:  # offsets before the load: the later the step, the smaller
            assert all(isinstance(m, timedelta) for m in moments)
            assert moments == sorted(moments, reverse=True)
        else:
            assert moments == sorted(moments) and moments[-1] < LIVE_FLOOR


# ------------------------------------------------------------------------------- the load


def _snapshot(db: Database) -> tuple[int, ...]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(AuditEvent)) or 0,
            ledger.tree_size(s),
            s.scalar(select(func.count()).select_from(SettlementJournal)) or 0,
            *(
                s.scalar(select(func.count()).select_from(model)) or 0
                for model in (
                    ExchangeListing,
                    ExchangeOrder,
                    ExchangeContract,
                    ExchangeBid,
                    ExchangeOffer,
                    ExchangeDelivery,
                    ExchangeSettlement,
                )
            ),
        )


def _listing(s: Session, title: str) -> ExchangeListing:
    found = s.scalars(select(ExchangeListing).where(ExchangeListing.title == title)).one()
    assert isinstance(found, ExchangeListing)
    return found


def _contract_of(s: Session, listing: ExchangeListing, buyer: str) -> list[ExchangeContract]:
    return list(
        s.scalars(
            select(ExchangeContract)
            .where(ExchangeContract.listing_id == listing.id, ExchangeContract.buyer_id == buyer)
            .order_by(ExchangeContract.number)
        )
    )


def _check_listings(s: Session, people: dict[str, Principal]) -> None:
    for demo in LISTINGS:
        row = _listing(s, demo.title)
        assert row.state == demo.target, demo.key
        assert row.seller_id == people[demo.signer].party_id
        certificate = registry.verify_certificate(s, row.certificate_number).certificate
        assert certificate.valid_from <= demo.drafted.astimezone(CHINA).date(), demo.key
        # The seller's administrator signed the declaration and commitment with the party key.
        declaration = row.declaration or {}
        assert declaration["signed_by"] == people[demo.signer].user_id
        assert row.declaration_signature is not None
        assert verify_record(declaration, row.declaration_signature, declaration["signer_key"])
        review = listings.latest_review(s, row.id)
        assert review is not None
        if demo.target == "submitted":
            assert review.signature is None  # awaiting the law firm
            continue
        # The law firm (compliance assessor) signed its checklist and opinion.
        assert review.assessor_party_id == people["lawfirm.staff"].party_id
        assert review.record is not None and review.signature and review.signing_key
        assert verify_record(review.record, review.signature, review.signing_key)
        if demo.target == "returned":
            assert review.record["outcome"] == "fail" and row.reason == demo.returned_note
        elif demo.target == "assessed":
            assert review.record["outcome"] == "pass" and review.decision is None
        else:
            assert review.decision == "approve" and row.published_at == demo.approved

    scores = _listing(s, LISTINGS_BY_KEY["credit-scores"].title)
    assert scores.channels == ["sandbox"] and scores.price_model == "subscription"
    assert (scores.placement, scores.zone) == ("zone", "finance") and scores.zone_approved_by
    index = _listing(s, LISTINGS_BY_KEY["economy-index"].title)
    assert index.total_quantity == 20 and index.remaining_quantity == 15  # several sold, more left
    outlook = _listing(s, LISTINGS_BY_KEY["asean-outlook"].title)
    assert outlook.cross_border and outlook.broker_id == people["broker.admin"].party_id


def _check_settled(s: Session, people: dict[str, Principal]) -> None:
    port = _listing(s, LISTINGS_BY_KEY["port-throughput"].title)
    (bought,) = _contract_of(s, port, people["logistics.admin"].party_id)
    assert (bought.kind, bought.state, bought.amount_fen) == ("mall", "completed", 1_200_000)
    assert bought.delivered_at is not None and bought.accepted_at is not None
    assert bought.buyer_signature and bought.seller_signature and bought.ledger_index is not None
    download = s.scalars(
        select(ExchangeDelivery).where(ExchangeDelivery.contract_id == bought.id)
    ).one()
    assert (download.channel, download.decision) == ("download", "allowed")
    assert download.fingerprint and download.rows > 0  # fingerprinted for the buyer
    settled = s.get(ExchangeSettlement, bought.id)
    assert settled is not None and bought.capture_journal_id == settled.journal_id
    parts = {p["kind"]: p for p in settled.split}
    assert parts["fee"]["amount_fen"] == 24_000  # the exchange's 2 % fee
    assert parts["payout"]["party_id"] == people["ocean.admin"].party_id
    assert sum(p["amount_fen"] for p in settled.split) == bought.amount_fen == settled.amount_fen
    assert settlement.hold_of(s, bought.hold_id)["remaining_fen"] == 0

    index = _listing(s, LISTINGS_BY_KEY["economy-index"].title)
    for username, quantity in (("credit.admin", 3), ("bank.admin", 2)):
        (contract,) = _contract_of(s, index, people[username].party_id)
        assert (contract.state, contract.quantity) == ("completed", quantity)
        assert contract.amount_fen == quantity * index.price_fen and contract.settled_at


def _check_auctions(s: Session, people: dict[str, Principal], now: datetime) -> None:
    cane = _listing(s, LISTINGS_BY_KEY["cane-forecast"].title)
    closed, live = s.scalars(
        select(ExchangeAuction)
        .where(ExchangeAuction.listing_id == cane.id)
        .order_by(ExchangeAuction.created_at)
    ).all()
    bids = list(
        s.scalars(
            select(ExchangeBid)
            .where(ExchangeBid.auction_id == closed.id)
            .order_by(ExchangeBid.created_at)
        )
    )
    assert closed.state == "closed" and len(bids) == 6
    assert len({b.bidder_id for b in bids}) == 3
    # The last bid came within the anti-sniping window: the deadline moved to 17:05.
    assert closed.ends_at == datetime(2026, 6, 12, 17, 5, tzinfo=CHINA).astimezone(UTC)
    winner = bids[-1]
    assert winner.status == "won" and winner.bidder_id == people["credit.admin"].party_id
    for bid in bids[:-1]:
        assert bid.status == "lost"
        assert settlement.hold_of(s, bid.deposit_hold_id)["remaining_fen"] == 0
    contract = s.get(ExchangeContract, closed.contract_id)
    assert contract is not None and contract.kind == "auction"
    assert (contract.state, contract.amount_fen) == ("completed", 2_800_000)
    # The live auction: bidding open, a deadline days after the load, two deposits frozen.
    assert live.state == "open" and live.ends_at > now + timedelta(days=3)
    assert live.bids == 2 and live.leading_fen == 2_100_000
    open_bids = s.scalars(select(ExchangeBid).where(ExchangeBid.auction_id == live.id))
    for bid in open_bids:
        assert settlement.hold_of(s, bid.deposit_hold_id)["remaining_fen"] == live.deposit_fen
    assert cane.remaining_quantity == 0  # both licences went to the auctions


def _check_live_contracts(s: Session, people: dict[str, Principal], now: datetime) -> None:
    scores = _listing(s, LISTINGS_BY_KEY["credit-scores"].title)
    (sandbox,) = _contract_of(s, scores, people["bank.admin"].party_id)
    assert (sandbox.kind, sandbox.state, sandbox.channels) == ("mall", "active", ["sandbox"])
    assert sandbox.amount_fen == 4 * 2_500_000 and sandbox.quantity == 4
    assert sandbox.buyer_signature and sandbox.seller_signature and sandbox.delivered_at is None
    assert sandbox.deadline_at is not None and sandbox.deadline_at > now + timedelta(days=20)
    assert (sandbox.term_end - sandbox.term_start).days in (364, 365)  # four quarters

    outlook = _listing(s, LISTINGS_BY_KEY["asean-outlook"].title)
    vn, broker = people["vntrade.admin"].party_id, people["broker.admin"].party_id
    agreed = s.scalars(
        select(ExchangeNegotiation).where(ExchangeNegotiation.listing_id == outlook.id)
    ).one()
    assert agreed.state == "agreed" and agreed.cross_border and agreed.broker_id == broker
    offers = list(
        s.scalars(
            select(ExchangeOffer)
            .where(ExchangeOffer.negotiation_id == agreed.id)
            .order_by(ExchangeOffer.seq)
        )
    )
    assert [o.from_party_id for o in offers] == [vn, broker, vn]  # the broker for the seller
    assert [o.price_fen for o in offers] == [4_000_000, 4_800_000, 4_500_000]
    contract = s.get(ExchangeContract, agreed.contract_id)
    assert contract is not None
    assert (contract.kind, contract.state, contract.buyer_id) == ("agreement", "accepted", vn)
    assert contract.cross_border  # for the cross-border assessment to come
    assert contract.buyer_signature and contract.broker_signature  # the broker co-signed
    assert contract.seller_signature is None  # the seller signs in the console
    assert contract.deadline_at is not None and contract.deadline_at > now
    assert settlement.hold_of(s, contract.hold_id)["remaining_fen"] == 4_500_000


def test_demo_province_trades(db: Database, settings: Settings) -> None:
    first = load_demo(db, settings=settings)
    assert first.exchange_steps > 0
    now = utcnow()
    people = demo_principals(db)
    with db.read() as s:
        _check_listings(s, people)
        _check_settled(s, people)
        _check_auctions(s, people, now)
        _check_live_contracts(s, people, now)
        # The buyers have money; the book balances.
        for funding in FUNDING:
            party = next(p for p in PARTIES if p.key == funding.party_key)
            owner = people[next(u.username for u in party.users if "admin" in u.roles)]
            rows = settlement.list_accounts(s, owner)
            assert {r.kind: r.balance_fen for r in rows}["available"] > 0, funding.party_key
    with books.snapshot(db) as s:  # the book in one consistent view, as the daily job reads it
        report, _ = settlement.reconcile(s)
    assert report.balanced and report.sum_fen == 0 and not report.problems

    # The exchange's clock, run when a server starts, finds nothing due.
    assert jobs.run_deadlines(db).as_dict()["changed"] == 0
    assert not negotiation.expire_due_negotiations(db).expired
    closed = auctions.close_due_auctions(db)
    assert not closed.sold and not closed.unsold

    before = _snapshot(db)
    second = load_demo(db, settings=settings)
    assert not second.changed and second.exchange_steps == 0
    assert _snapshot(db) == before
