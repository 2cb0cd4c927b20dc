"""Separation of duties in listing review (EXC-LST-SEPARATION), on both databases: the
exchange's reviewer never approves, returns, refuses or resumes a listing its own party sells,
brokers (or brokers for the seller of) or is paid from — another reviewer does; suspending stays
open to every reviewer. A compliance assessor whose firm brokers for the seller does not assess
its listings. The review queue and page do not offer the decisions it may not take."""

from __future__ import annotations

import pytest
from exchange_support import certified_product
from factories import make_actor
from listing_support import OPINION, all_pass, draft, drive
from registry_support import principal

from datafactor.db import today_cn, utcnow
from datafactor.exchange import ExchangeForbidden, listings
from datafactor.exchange.models import ExchangeListing
from datafactor.identity import PartyKind, ServiceRole


def decide(world, actor, listing_id: str, action: str, reason: str = "审核意见：材料不全"):  # type: ignore[no-untyped-def]
    with world.db.write() as s:
        return listings.decide_listing(
            s,
            world.p(actor),
            listing_id,
            action,
            reason="" if action == "approve" else reason,
            on=today_cn(),
            now=utcnow(),
        ).state


def state(world, listing_id: str) -> str:  # type: ignore[no-untyped-def]
    with world.db.read() as s:
        row = s.get(ExchangeListing, listing_id)
        assert row is not None
        return row.state


def test_the_exchange_does_not_decide_a_listing_its_own_party_sells(world, settings, issuer, db):
    # The exchange operator's own data product, listed by the operator's party.
    own = certified_product(
        db,
        settings,
        world.p(world.operator),
        principal(db, make_actor(db, PartyKind.EXCHANGE_OPERATOR)),
        issuer,
    )
    with db.write() as s:
        listing_id = listings.create_listing(
            s, world.p(world.operator), draft(own), on=today_cn(), now=utcnow()
        ).id
    with db.write() as s:
        listings.submit_listing(
            s,
            world.p(world.operator),
            listing_id,
            keys=world.keys,
            confirm=True,
            on=today_cn(),
            now=utcnow(),
        )
    with db.write() as s:
        listings.assess_listing(
            s,
            world.p(world.assessor),
            listing_id,
            items=all_pass(),
            opinion=OPINION,
            confirm=True,
            keys=world.keys,
            now=utcnow(),
        )
    for action in ("approve", "return", "refuse"):
        with pytest.raises(ExchangeForbidden) as caught:
            decide(world, world.operator, listing_id, action)
        assert caught.value.rule == "EXC-LST-SEPARATION" and action in str(caught.value)
    assert state(world, listing_id) == "assessed"
    with db.read() as s:  # not in its queue either
        queue = listings.review_queue(s, world.p(world.operator))
    assert listing_id not in {r.id for r in queue["decide"]}

    # Another exchange reviewer (of a party with no interest in it) decides.
    other = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    with db.read() as s:
        assert listing_id in {r.id for r in listings.review_queue(s, world.p(other))["decide"]}
    assert decide(world, other, listing_id, "approve") == "published"
    # Stopping the trade stays open to every reviewer; putting it back on sale does not.
    assert decide(world, world.operator, listing_id, "suspend", "权属争议，暂停交易") == "suspended"
    with pytest.raises(ExchangeForbidden) as caught:
        decide(world, world.operator, listing_id, "resume", "争议已解决")
    assert caught.value.rule == "EXC-LST-SEPARATION"
    assert decide(world, other, listing_id, "resume", "争议已解决") == "published"


def test_a_listing_that_pays_the_reviewers_party_is_decided_by_another(world, create, db):
    shares = (
        {
            "party_id": world.operator.party_id,
            "stage": "circulation",
            "mode": "dividend",
            "bp": 500,
        },
    )
    listing_id = create(revenue_sharing=shares)
    drive(world, listing_id, until="assessed")
    with pytest.raises(ExchangeForbidden) as caught:
        decide(world, world.operator, listing_id, "approve")
    assert caught.value.rule == "EXC-LST-SEPARATION"
    other = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    assert decide(world, other, listing_id, "approve") == "published"


def test_an_assessor_firm_that_brokers_for_the_seller_does_not_assess_it(world, create, db):
    # A firm that is both: compliance assessor on one side of the house, and named broker on
    # another listing of the same seller.
    firm = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.COMPLIANCE_ASSESSOR)
    with db.write() as s:
        row = s.get(ExchangeListing, create(title="另一挂牌"))
        assert row is not None
        row.broker_id = firm.party_id
    listing_id = create()
    drive(world, listing_id, until="submitted")
    with pytest.raises(ExchangeForbidden) as caught, db.write() as s:
        listings.assess_listing(
            s,
            world.p(firm),
            listing_id,
            items=all_pass(),
            opinion=OPINION,
            confirm=True,
            keys=world.keys,
            now=utcnow(),
        )
    assert caught.value.rule == "EXC-LST-ASSESSMENT"
    with db.read() as s:
        assert listing_id not in {
            r.id for r in listings.review_queue(s, world.p(firm)).get("assess", [])
        }


def test_the_review_page_offers_only_the_decisions_the_reviewer_may_take(
    client, world, settings, issuer, db
):
    from factories import PASSWORD

    shares = (
        {
            "party_id": world.operator.party_id,
            "stage": "circulation",
            "mode": "dividend",
            "bp": 500,
        },
    )
    with db.write() as s:
        listing_id = listings.create_listing(
            s,
            world.p(world.seller),
            draft(world.product, revenue_sharing=shares),
            on=today_cn(),
            now=utcnow(),
        ).id
    drive_other = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    drive(world, listing_id, until="assessed")
    import re

    client.cookies.set("df_lang", "en")
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/login",
        data={"username": world.operator.username, "password": PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    html = client.get(f"/exchange/review/{listing_id}").text
    assert 'data-testid="review-conflict"' in html and "EXC-LST-SEPARATION" in html
    assert 'data-testid="decision-form"' not in html  # assessed: approve, return, refuse only
    assert drive_other.party_id != world.operator.party_id
