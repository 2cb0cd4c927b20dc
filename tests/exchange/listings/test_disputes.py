"""Trading stops while the registry has the listed right under dispute, and resumes when the
registry clears it — on both databases, through the registry's own use cases (so its revision
moves as in production), for the mall order's compiled path (``trade_listing``, with its cache
of the registry's checks) and the ORM path the agreements and auctions use (``tradable_listing``):

* an objection registration (异议登记) on the listed right, or on a right its title rests on,
  refuses with EXC-LST-DISPUTE naming it, until it is lifted — or lapses with no lawsuit;
* a pledge refuses with EXC-LST-CERT saying it is pledged, until the pledgee releases it.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import pytest
from factories import make_actor
from orders_support import NOW, Market, balances, make_market
from registry_support import OBJECTION_GROUNDS, drive_to_certified, object_to, principal

from datafactor import registry
from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.exchange import listings, orders
from datafactor.exchange.models import ExchangeContract, ExchangeOrder
from datafactor.registry import RegistrationType
from datafactor.registry import services as registry_services
from datafactor.settings import Settings

DAY = NOW.date()  # a Thursday
_keys = itertools.count()


@pytest.fixture
def market(db: Database, settings: Settings) -> Market:
    return make_market(db, settings)


@pytest.fixture
def issuer(settings: Settings) -> registry.Issuer:
    return registry.issuer_for(settings)


def order(market: Market, buyer, listing_id: str, *, now: datetime = NOW):  # type: ignore[no-untyped-def]
    orders.open_buyer_accounts(market.db, buyer)
    with market.db.write() as s:
        return orders.place_order(s, buyer, listing_id, 1, key=f"d-{next(_keys)}", now=now)


def refusal(call) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value


def orm_check(market: Market, buyer, listing_id: str, on: date = DAY) -> None:  # type: ignore[no-untyped-def]
    with market.db.write() as s:
        listings.tradable_listing(s, listing_id, buyer=buyer, on=on, lock=True)


def objection_on(market: Market, issuer, right_id: str, asset_id: str, *, on: date = DAY) -> str:  # type: ignore[no-untyped-def]
    """An objection registration by a rival on ``right_id``, certified on ``on``: its id."""
    registrar = principal(market.db, market.operator)
    return object_to(market.db, registrar, issuer, asset_id=asset_id, right_id=right_id, on=on)


def test_an_objection_registration_stops_orders_until_it_is_lifted(market, issuer, db):
    listing_id = market.listing(price_fen=1_000, quantity=10)
    _, buyer = market.buyer(100_000)
    order(market, buyer, listing_id)  # a pass is cached at this revision
    app_id = objection_on(market, issuer, market.product.right_id, market.product.asset_id)
    registrar = principal(db, market.operator)
    with db.write() as s:  # the suit keeps it in force past the lapse period
        registry_services.record_objection_lawsuit(
            s, registrar, app_id, reference="(2026)桂0103民初99号", today=DAY
        )

    refused = refusal(lambda: order(market, buyer, listing_id))
    assert (refused.status, refused.params["rule"]) == (409, "EXC-LST-DISPUTE")
    assert app_id in str(refused) and market.product.certificate in str(refused)
    refused = refusal(lambda: orm_check(market, buyer, listing_id))
    assert refused.params["rule"] == "EXC-LST-DISPUTE"
    later = NOW + timedelta(days=60)
    assert refusal(lambda: order(market, buyer, listing_id, now=later)).params["rule"] == (
        "EXC-LST-DISPUTE"
    )
    with db.read() as s:
        assert s.query(ExchangeOrder).count() == 1  # nothing of the refused orders remains
    assert balances(db, buyer.party_id) == (99_000, 1_000)

    with db.write() as s:
        registry_services.close_objection_registration(
            s, registrar, app_id, substantiated=False, reason="法院驳回异议人的诉讼请求", today=DAY
        )
    order(market, buyer, listing_id)  # trading resumes
    orm_check(market, buyer, listing_id)


def test_an_objection_lapses_with_no_lawsuit_and_trading_resumes(market, issuer):
    listing_id = market.listing(price_fen=1_000)
    _, buyer = market.buyer(100_000)
    objection_on(market, issuer, market.product.right_id, market.product.asset_id)
    assert refusal(lambda: order(market, buyer, listing_id)).params["rule"] == "EXC-LST-DISPUTE"
    lapsed = NOW + timedelta(days=16)  # registration_lapse_days (15) passed, no lawsuit
    order(market, buyer, listing_id, now=lapsed)
    orm_check(market, buyer, listing_id, on=lapsed.date())


def test_an_objection_on_a_right_the_title_rests_on_stops_trading(market, issuer):
    listing_id = market.listing(price_fen=1_000)
    _, buyer = market.buyer(100_000)
    order(market, buyer, listing_id)
    app_id = objection_on(
        market, issuer, market.product.resource_right_id, market.product.resource_id
    )
    refused = refusal(lambda: order(market, buyer, listing_id))
    assert refused.params["rule"] == "EXC-LST-DISPUTE" and app_id in str(refused)
    assert refusal(lambda: orm_check(market, buyer, listing_id)).params["rule"] == (
        "EXC-LST-DISPUTE"
    )


def test_a_pledged_right_is_not_traded_until_the_pledge_is_released(market, issuer, db):
    listing_id = market.listing(price_fen=1_000)
    _, buyer = market.buyer(100_000)
    order(market, buyer, listing_id)
    bank = principal(db, make_actor(db, name="北部湾银行"))
    registrar = principal(db, market.operator)
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=market.product.asset_id,
        right_id=market.product.right_id,
        counterparty_id=bank.party_id,
    )
    _, _, day = drive_to_certified(db, market.seller_principal, registrar, pledge, issuer, DAY)
    refused = refusal(lambda: order(market, buyer, listing_id))
    assert (refused.status, refused.params["rule"]) == (409, "EXC-LST-CERT")
    assert "pledged" in str(refused) and "releases the pledge" in str(refused)
    assert refusal(lambda: orm_check(market, buyer, listing_id)).params["rule"] == "EXC-LST-CERT"

    release = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE_RELEASE,
        asset_id=market.product.asset_id,
        right_id=market.product.right_id,
    )
    drive_to_certified(db, bank, registrar, release, issuer, day)
    order(market, buyer, listing_id, now=max(NOW, datetime.combine(day, NOW.timetz())))
    orm_check(market, buyer, listing_id, on=max(DAY, day))


def test_agreement_acceptances_and_bids_wait_for_the_dispute_to_close(db, settings, issuer):
    from auctions_support import trade_world

    from datafactor.exchange import auctions, negotiation

    world = trade_world(db, settings)
    listing_id = world.listing(price_fen=10_000)
    buyer, bidder = world.buyer(1_000_000), world.buyer(1_000_000)
    with db.write() as s:
        n = negotiation.open_negotiation(
            s, world.p(buyer), listing_id, negotiation.Terms(price_fen=8_000), now=NOW
        )
    with db.write() as s:
        negotiation.make_offer(
            s, world.p(world.seller), n.id, negotiation.Terms(price_fen=9_000), now=NOW
        )
    auction_id = world.auction(listing_id, start_fen=10_000, now=NOW, hours=2)
    negotiation.open_accounts(db, [buyer.party_id])
    auctions.open_accounts(db, [bidder.party_id])

    def accept():  # type: ignore[no-untyped-def]
        with db.write() as s:
            return negotiation.accept_offer(s, world.p(buyer), n.id, seq=2, now=NOW)

    def bid():  # type: ignore[no-untyped-def]
        with db.write() as s:
            return auctions.place_bid(
                s, world.p(bidder), auction_id, 10_000, key=f"b-{next(_keys)}", now=NOW
            )

    registrar = principal(db, world.operator)
    app_id = object_to(
        db,
        registrar,
        issuer,
        asset_id=world.product.asset_id,
        right_id=world.product.right_id,
        on=DAY,
    )
    for call in (accept, bid):
        refused = refusal(call)
        assert (refused.status, refused.params["rule"]) == (409, "EXC-LST-DISPUTE"), refused
    assert balances(db, buyer.party_id) == (1_000_000, 0)
    assert balances(db, bidder.party_id) == (1_000_000, 0)

    with db.write() as s:
        registry_services.close_objection_registration(
            s, registrar, app_id, substantiated=False, reason="异议不成立", today=DAY
        )
    assert accept().negotiation.state == "agreed"
    bid()
    assert balances(db, bidder.party_id)[1] > 0  # the deposit is frozen


def test_an_undecided_objection_to_an_application_on_the_product_stops_orders(market, issuer, db):
    """The seller applies to transfer the listed right; during the public notice a rival
    objects. Until the registrar decides the objection the title is in dispute (the registry
    would refuse any registration on the asset): no order; dismissed, orders resume."""
    from datafactor.registry import Action

    listing_id = market.listing(price_fen=1_000)
    _, buyer = market.buyer(100_000)
    order(market, buyer, listing_id)
    registrar = principal(db, market.operator)
    transfer = registry.ApplicationDraft(
        type=RegistrationType.TRANSFER,
        asset_id=market.product.asset_id,
        right_id=market.product.right_id,
        counterparty_id=make_actor(db).party_id,
    )
    with db.write() as s:
        app_id = registry_services.submit_application(
            s, market.seller_principal, transfer, issuer=issuer, today=DAY
        ).id
    with db.write() as s:
        state = registry_services.act(
            s, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer=issuer, today=DAY
        ).state
    assert state == "public_notice"
    order(market, buyer, listing_id)  # a notice alone is no dispute
    rival = principal(db, make_actor(db, name="南宁数据采集公司"))
    with db.write() as s:
        objection_id = registry_services.lodge(
            s,
            rival,
            app_id,
            registry_services.ObjectionDraft(**OBJECTION_GROUNDS),
            today=DAY,
        ).id
    refused = refusal(lambda: order(market, buyer, listing_id))
    assert refused.params["rule"] == "EXC-LST-DISPUTE" and objection_id in str(refused)
    assert refusal(lambda: orm_check(market, buyer, listing_id)).params["rule"] == (
        "EXC-LST-DISPUTE"
    )
    with db.write() as s:
        registry_services.decide(
            s, registrar, objection_id, substantiated=False, reason="异议理由不成立", today=DAY
        )
    order(market, buyer, listing_id)


def test_a_contract_is_not_signed_while_its_right_is_disputed(market, issuer, db, settings):
    """An order placed before the dispute waits: neither party can sign its contract while the
    objection is in force; once it is lifted both sign and the contract is active."""
    from datafactor.exchange import contracts
    from datafactor.exchange.keys import PartyKeys

    listing_id = market.listing(price_fen=1_000, quantity=10)
    _, buyer = market.buyer(100_000)
    placed = order(market, buyer, listing_id)
    contract_id = placed.order.contract_id
    app_id = objection_on(market, issuer, market.product.right_id, market.product.asset_id)
    registrar = principal(db, market.operator)
    with db.write() as s:
        registry_services.record_objection_lawsuit(
            s, registrar, app_id, reference="(2026)桂0103民初100号", today=DAY
        )
    keys = PartyKeys(settings.var_dir)

    def sign(who):  # type: ignore[no-untyped-def]
        with db.write() as s:
            return contracts.sign_contract(s, who, contract_id, keys=keys, confirm=True, now=NOW)

    for who in (buyer, market.seller_principal):
        refused = refusal(lambda who=who: sign(who))
        assert refused.params["rule"] == "EXC-LST-DISPUTE" and app_id in str(refused)
    with db.read() as s:
        assert s.get(ExchangeContract, contract_id).state == "accepted"
    with db.write() as s:
        registry_services.close_objection_registration(
            s, registrar, app_id, substantiated=False, reason="法院驳回异议人的诉讼请求", today=DAY
        )
    sign(buyer)
    assert sign(market.seller_principal).state == "active"
