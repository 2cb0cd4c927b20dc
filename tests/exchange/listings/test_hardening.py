"""Holes a user or an attacker would hit in the listings, each pinned by a test (both databases):
who sees how a listing was reviewed and on what terms, conflicts of interest in the assessment,
what a supervisor may buy, locks that read the row, what the declaration signs, bad input that
must not reach the database, the mall's paging links, and one query for a page's seller names."""

from __future__ import annotations

import re
import threading
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from exchange_support import published_listing
from factories import bearer, console_login, csrf_of, make_actor
from listing_support import OPINION, all_pass, drive
from registry_support import principal
from sqlalchemy import event, select, text, update

from datafactor.db import today_cn, utcnow
from datafactor.errors import DomainError
from datafactor.exchange import (
    ExchangeForbidden,
    ExchangeNotFound,
    ExchangeStateConflict,
    listings,
)
from datafactor.exchange.keys import verify_record
from datafactor.exchange.models import ExchangeListing
from datafactor.identity import PartyKind, ServiceRole
from datafactor.registry.models import RegistryRight


def share_to(party_id: str, bp: int = 1500) -> dict[str, object]:
    return {"party_id": party_id, "stage": "processing", "mode": "dividend", "bp": bp}


# --- who sees the review and the terms ---------------------------------------------------------


def test_only_the_firm_that_assessed_a_listing_sees_its_review_and_sharing(
    client, world, publish, db
):
    listing_id = publish(
        revenue_sharing=(share_to(world.broker.party_id),),
        audience="parties",
        audience_parties=(world.buyer.party_id,),
    )
    rival = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.COMPLIANCE_ASSESSOR)
    # The listing itself is visible to an assessor firm only as the market shows it: a listing
    # for named parties it is not among does not exist for it, a listing it may see comes
    # without the seller's business (named audience, revenue shares, review, history).
    h = bearer(client, rival)
    assert client.get(f"/api/v1/listings/{listing_id}", headers=h).status_code == 404
    with world.db.write() as s:
        s.execute(
            update(ExchangeListing)
            .where(ExchangeListing.id == listing_id)
            .values(access={"audience": "verified"})
        )
    detail = client.get(f"/api/v1/listings/{listing_id}", headers=h)
    assert detail.status_code == 200
    assert detail.json()["revenue_sharing"] == []
    assert client.get(f"/api/v1/listings/{listing_id}/reviews", headers=h).json() == []
    assert client.get(f"/api/v1/listings/{listing_id}/events", headers=h).json() == []
    console_login(client, rival, "/exchange", "en")
    page = client.get(f"/exchange/listings/{listing_id}")
    assert page.status_code == 200 and 'data-testid="listing-sharing"' not in page.text
    assert client.get(f"/exchange/review/{listing_id}").status_code == 404

    # The firm that signed the assessment keeps seeing what it assessed.
    h = bearer(client, world.assessor)
    reviews = client.get(f"/api/v1/listings/{listing_id}/reviews", headers=h).json()
    assert reviews and reviews[0]["opinion"] == OPINION
    detail = client.get(f"/api/v1/listings/{listing_id}", headers=h).json()
    assert detail["revenue_sharing"] == [share_to(world.broker.party_id)]


def test_the_edit_form_of_a_listing_is_its_preparers_only(client, world, publish, db):
    listing_id = publish(revenue_sharing=(share_to(world.broker.party_id),))
    stranger = make_actor(db)
    console_login(client, stranger, "/exchange", "en")
    page = client.get(f"/exchange/sell/{listing_id}/edit")
    assert page.status_code == 403
    assert world.broker.party_id not in page.text
    r = client.post(
        f"/exchange/sell/{listing_id}/edit",
        data={"csrf_token": csrf_of(client.get("/exchange/sell").text), "title": "x"},
    )
    assert r.status_code == 403 and world.broker.party_id not in r.text


def test_an_assessor_paid_from_a_listing_cannot_assess_it(client, world, create):
    listing_id = create(revenue_sharing=(share_to(world.assessor.party_id),))
    drive(world, listing_id, until="submitted")
    assessor = world.p(world.assessor)
    with world.db.read() as s:
        assert listing_id not in [r.id for r in listings.review_queue(s, assessor)["assess"]]
    with world.db.write() as s, pytest.raises(ExchangeForbidden) as caught:
        listings.assess_listing(
            s,
            assessor,
            listing_id,
            items=all_pass(),
            opinion=OPINION,
            confirm=True,
            keys=world.keys,
            now=utcnow(),
        )
    assert caught.value.rule == "EXC-LST-ASSESSMENT"
    console_login(client, world.assessor, "/exchange", "en")
    assert client.get(f"/exchange/review/{listing_id}").status_code == 404


# --- buying ------------------------------------------------------------------------------------


def test_a_supervisor_buys_only_what_is_offered_to_it(world, publish):
    listing_id = publish(audience="parties", audience_parties=(world.buyer.party_id,))
    operator = world.p(world.operator)
    with world.db.read() as s:
        assert listings.get_listing(s, operator, listing_id).id == listing_id  # it sees it
        with pytest.raises(ExchangeNotFound):
            listings.tradable_listing(s, listing_id, buyer=operator, on=today_cn())
        assert listings.tradable_listing(s, listing_id, buyer=world.p(world.buyer), on=today_cn())


def test_a_locked_listing_is_read_from_the_row_not_the_sessions_copy(world, publish):
    listing_id = publish(quantity=2)
    buyer = world.p(world.buyer)
    with world.db.write() as s:
        seen = listings.tradable_listing(s, listing_id, buyer=buyer, on=today_cn())  # unlocked
        assert seen.remaining_quantity == 2
        # Another buyer took the last licences meanwhile (as a committed transaction would).
        s.execute(
            text("UPDATE exchange_listing SET remaining_quantity = 0 WHERE id = :id"),
            {"id": listing_id},
        )
        row = listings.tradable_listing(s, listing_id, buyer=buyer, on=today_cn(), lock=True)
        assert row.remaining_quantity == 0
        with pytest.raises(ExchangeStateConflict):
            listings.take_quantity(s, row, 1)


def test_concurrent_buyers_take_exactly_the_licences_there_are(world, publish):
    listing_id = publish(quantity=3)
    buyer = world.p(world.buyer)
    start = threading.Barrier(8)
    taken: list[int] = []
    refused: list[str] = []

    def buy() -> None:
        start.wait()
        try:
            with world.db.write() as s:
                row = listings.tradable_listing(
                    s, listing_id, buyer=buyer, on=today_cn(), lock=True
                )
                listings.take_quantity(s, row, 1)
            taken.append(1)
        except DomainError as exc:
            refused.append(exc.rule)

    threads = [threading.Thread(target=buy) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 3 and refused == ["EXC-LST-QUANTITY"] * 5
    with world.db.read() as s:
        assert listings.get_listing(s, buyer, listing_id).remaining_quantity == 0


def test_concurrent_decisions_on_one_listing_have_one_winner(world, create):
    listing_id = create()
    drive(world, listing_id, until="assessed")
    operator = world.p(world.operator)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(action: str) -> None:
        start.wait()
        try:
            with world.db.write() as s:
                listings.decide_listing(
                    s, operator, listing_id, action, reason="复核结论", on=today_cn(), now=utcnow()
                )
            outcomes.append(action)
        except ExchangeStateConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=decide, args=(a,)) for a in ("approve", "refuse")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["approve", "conflict"], ["conflict", "refuse"])
    with world.db.read() as s:
        events = listings.listing_events(s, operator, listing_id)
    assert [e.action for e in events][-1] in ("approve", "refuse")
    assert sum(e.action in ("approve", "refuse") for e in events) == 1


def test_a_right_pledged_after_submission_is_neither_approved_nor_traded(world, create, publish):
    listing_id = create()
    drive(world, listing_id, until="assessed")
    traded = publish(title="港口吞吐量月报")
    with world.db.write() as s:
        s.execute(
            update(RegistryRight)
            .where(RegistryRight.id == world.product.right_id)
            .values(status="pledged", pledgee_id=world.buyer.party_id, pledge_since=today_cn())
        )
    with world.db.write() as s, pytest.raises(listings.ListingChecksFailed) as caught:
        listings.decide_listing(
            s, world.p(world.operator), listing_id, "approve", on=today_cn(), now=utcnow()
        )
    assert caught.value.rule == "EXC-LST-CERT"
    with world.db.read() as s, pytest.raises(ExchangeStateConflict) as refused:
        listings.tradable_listing(s, traded, buyer=world.p(world.buyer), on=today_cn())
    assert refused.value.rule == "EXC-LST-CERT"
    with world.db.read() as s:
        assert listings.get_listing(s, world.p(world.seller), listing_id).state == "assessed"


# --- what the declaration signs ----------------------------------------------------------------


def test_the_declaration_signs_the_revenue_sharing_a_broker_wrote(client, world, create, db):
    listing_id = create(broker_id=world.broker.party_id)
    # A broker the seller did not name does not even see the draft.
    other = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.BROKER)
    r = client.patch(
        f"/api/v1/listings/{listing_id}", headers=bearer(client, other), json={"title": "x"}
    )
    assert r.status_code == 404
    # The broker the seller named prepares the draft, and writes itself a revenue share.
    h = bearer(client, world.broker)
    r = client.patch(
        f"/api/v1/listings/{listing_id}",
        headers=h,
        json={"revenue_sharing": [share_to(world.broker.party_id, 3000)]},
    )
    assert r.status_code == 200, r.text
    # The seller's administrator sees it where it signs, and the signature covers it.
    console_login(client, world.seller, "/exchange", "en")
    page = client.get(f"/exchange/sell/{listing_id}/submit")
    assert page.status_code == 200
    sharing = re.search(r'data-testid="submit-sharing">(.*?)</td>', page.text, re.S)
    assert sharing and "30.00%" in sharing.group(1)
    drive(world, listing_id, until="submitted")
    with world.db.read() as s:
        row = listings.get_listing(s, world.p(world.seller), listing_id)
        record, signature = row.declaration, row.declaration_signature
    assert record and signature
    assert record["listing"]["revenue_sharing"] == [share_to(world.broker.party_id, 3000)]
    assert record["listing"]["broker_id"] == world.broker.party_id
    assert verify_record(record, signature, record["signer_key"])


# --- bad input ---------------------------------------------------------------------------------


def test_control_characters_never_reach_the_database(client, world, publish):
    listing_id = publish()
    seller = bearer(client, world.seller)
    base = {"asset_id": world.product.asset_id, "channels": ["api"], "price_fen": 100}
    r = client.post("/api/v1/listings", headers=seller, json=base | {"title": "园区\x00用电指数"})
    assert r.status_code == 201, r.text
    assert "\x00" not in r.json()["title"] and r.json()["title"].startswith("园区")
    r = client.post(
        "/api/v1/listings", headers=seller, json=base | {"asset_id": "a\x00", "title": "x"}
    )
    assert r.status_code == 422 and r.json()["field"] == "asset_id"
    r = client.post(
        "/api/v1/listings",
        headers=seller,
        json=base | {"title": "x", "audience": "parties", "audience_parties": ["a\x00"]},
    )
    assert r.status_code == 422 and r.json()["field"] == "audience_parties"
    r = client.post(
        f"/api/v1/listings/{listing_id}/decision",
        headers=bearer(client, world.operator),
        json={"action": "suspend", "reason": "来源\x00争议"},
    )
    assert r.status_code == 200, r.text
    assert "\x00" not in r.json()["reason"]
    buyer = bearer(client, world.buyer)
    assert client.get("/api/v1/listings/a%00b", headers=buyer).status_code == 404
    for param in ("industry", "zone", "region"):  # refused at the edge, naming the parameter
        r = client.get(f"/api/v1/listings?{param}=a%00", headers=buyer)
        assert r.status_code == 400 and r.json()["field"] == param
    assert client.get("/exchange?kind=a%00").status_code == 400
    assert client.get("/exchange/listings/a%00b").status_code == 404


def test_absurd_filters_answer_an_empty_page_not_an_error(client, world, publish):
    publish(audience="public")
    buyer = bearer(client, world.buyer)
    r = client.get("/api/v1/listings", params={"price_min_fen": 10**20}, headers=buyer)
    assert r.status_code == 200 and r.json()["total"] == 0
    r = client.get("/api/v1/listings", params={"price_max_fen": 10**20}, headers=buyer)
    assert r.status_code == 200 and r.json()["total"] == 1
    page = client.get("/exchange", params={"price_min": "99999999999999999999"})
    assert page.status_code == 200 and 'data-testid="listing-card"' not in page.text
    # LIKE wildcards are no filter: a channel or a query of wildcards matches nothing.
    for params in ({"channel": "%"}, {"channel": "_pi"}, {"q": "%"}, {"q": "_"}):
        page = client.get("/exchange", params=params)
        assert page.status_code == 200
        assert 'data-testid="listing-card"' not in page.text, params
    page = client.get("/exchange", params={"channel": "api"})
    assert page.text.count('data-testid="listing-card"') == 1


# --- the mall's pages --------------------------------------------------------------------------


def test_the_mall_paging_link_keeps_a_query_with_reserved_characters(client, world, db):
    for _ in range(13):
        published_listing(db, world.product, world.seller)
    console_login(client, world.buyer, "/exchange", "en")
    page = client.get("/exchange", params={"q": "用电 #1&", "industry": "energy"})
    assert page.status_code == 200
    link = re.search(r'href="([^"]+)" data-testid="mall-next"', page.text)
    assert link, "no link to the next page"
    query = parse_qs(urlsplit(unescape(link.group(1))).query)
    assert query == {"q": ["用电 #1&"], "industry": ["energy"], "page": ["2"]}
    second = client.get(unescape(link.group(1)))
    assert second.text.count('data-testid="listing-card"') == 1


def test_the_sellers_of_a_page_are_named_in_one_query(world, db):
    for _ in range(6):
        published_listing(db, world.product, make_actor(db))
    viewer = principal(db, world.buyer)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    with world.db.read() as s:
        rows, total = listings.list_listings(s, viewer, listings.ListingQuery(), limit=50, offset=0)
        assert total == 6
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            names = listings.seller_names(s, rows)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert len(names) == 6 and all(names.values())
    assert len(statements) == 1, statements


def test_two_changes_of_one_draft_at_once_keep_both(client, world, create, db):
    listing_id = create()
    h = bearer(client, world.seller_staff)
    answers: list[int] = []

    def change_price() -> None:
        r = client.patch(f"/api/v1/listings/{listing_id}", headers=h, json={"price_fen": 990_000})
        answers.append(r.status_code)

    with world.db.write() as s:
        # Another change of the same draft holds its row while this PATCH comes in.
        row = s.scalars(
            select(ExchangeListing).where(ExchangeListing.id == listing_id).with_for_update()
        ).one()
        row.title = "园区用电景气指数"
        s.flush()
        patch = threading.Thread(target=change_price)
        patch.start()
        if not db.is_sqlite:  # SQLite runs one writer at a time: the PATCH waits to begin
            with db.engine.connect() as watch:
                waiting = 0
                for _ in range(2000):
                    waiting = watch.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query LIKE 'SELECT exchange_listing.%'"
                        )
                    ).scalar_one()
                    watch.rollback()  # a new statistics snapshot for the next look
                    if waiting:
                        break
                    threading.Event().wait(0.005)
                assert waiting, "the PATCH never reached the listing's lock"
    patch.join()
    assert answers == [200]
    with world.db.read() as s:
        row = listings.get_listing(s, world.p(world.seller), listing_id)
        assert (row.title, row.price_fen) == ("园区用电景气指数", 990_000)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", "²"),
        ("term_days", "³⁶⁵"),
        ("revenue_sharing", "{party} processing dividend inf%"),
        ("revenue_sharing", "{party} processing dividend 1e999999%"),
        ("revenue_sharing", "{party} processing dividend 12.345%"),
    ],
)
def test_the_listing_form_refuses_odd_numbers_with_the_field_marked(client, world, field, value):
    console_login(client, world.seller, "/exchange", "en")
    token = csrf_of(client.get("/exchange/sell/new").text)
    form = {
        "csrf_token": token,
        "asset_id": world.product.asset_id,
        "title": "园区用电指数",
        "price_model": "one_off",
        "price": "1200",
        "channels": "api",
        field: value.format(party=world.buyer.party_id),
    }
    r = client.post("/exchange/sell/new", data=form, follow_redirects=False)
    assert r.status_code == 422, r.text[:300]
    assert 'aria-invalid="true"' in r.text


def test_the_cli_answers_an_absurd_price_filter_with_an_empty_page(
    db_url, monkeypatch, tmp_path, world, publish
):
    import json

    from typer.testing import CliRunner

    from datafactor.cli import app as cli
    from datafactor.settings import get_settings

    publish()
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        for args, total in (
            (["--price-min-fen", str(10**20)], 0),
            (["--price-max-fen", str(10**20)], 1),
            (["--channel", "%"], 0),
        ):
            result = runner.invoke(
                cli, ["exchange", "listings", "--json", *args], catch_exceptions=False
            )
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["total"] == total, args
    finally:
        get_settings.cache_clear()
