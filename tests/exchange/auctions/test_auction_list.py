"""The auction list on both databases: visibility, filters, order and paging in one query with
the right ``total`` — bidding first (a scheduled auction whose start has come is bidding),
then the scheduled, then the ended, newest first in each — for the service, the API and the
console page; every party lists exactly the auctions it may open, and the number of statements
does not grow with the number of auctions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from auctions_support import NOW, TradeWorld
from factories import Actor, bearer, console_login
from sqlalchemy import event

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.exchange import auctions
from datafactor.exchange.models import ExchangeListing
from datafactor.permissions import Principal

LATER = NOW + timedelta(minutes=10)  # when the lists below are read
END = NOW + timedelta(hours=2)


@dataclass
class Auctions:
    """Seven auctions of the world's seller, by name; the listings and parties around them."""

    ids: dict[str, str]
    public: str  # the listing every verified party sees
    private: str  # the listing only ``invited`` sees
    invited: Actor
    bidder: Actor
    outsider: Actor

    def names(self, rows: list[Any]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[r.id] for r in rows]


@pytest.fixture
def seven(db: Database, world: TradeWorld, create, bid, close) -> Auctions:  # type: ignore[no-untyped-def]
    """At ``LATER``: four bidding (``started`` is still stored scheduled), one scheduled, one
    cancelled, one unsold; ``hidden`` is of the private listing; ``bidder`` bid on ``newest``."""
    invited, bidder, outsider = world.buyer(), world.buyer(), world.buyer()
    public = world.listing(price_fen=10_000, quantity=10)
    private = world.listing(
        price_fen=10_000, access={"audience": "parties", "parties": [invited.party_id]}
    )
    seller = world.p(world.seller)
    at = {name: NOW + timedelta(minutes=i) for i, name in enumerate(["first", "started", "gone"])}
    ids = {
        "unsold": create(
            seller, public, now=NOW - timedelta(hours=3), ends_at=NOW - timedelta(hours=1)
        ).id,
        "first": create(seller, public, now=at["first"]).id,
        "started": create(
            seller, public, now=at["started"], starts_at=NOW + timedelta(minutes=5)
        ).id,
        "gone": create(seller, public, now=at["gone"]).id,
        "hidden": create(seller, private, now=NOW + timedelta(minutes=3)).id,
        "newest": create(seller, public, now=NOW + timedelta(minutes=4)).id,
        "ahead": create(
            seller, public, now=NOW + timedelta(minutes=5), starts_at=NOW + timedelta(hours=1)
        ).id,
    }
    close(ids["unsold"], now=NOW)
    with db.write() as s:
        auctions.cancel_auction(s, seller, ids["gone"], now=NOW + timedelta(minutes=6))
    bid(world.p(bidder), ids["newest"], 10_000, now=NOW + timedelta(minutes=7))
    return Auctions(ids, public, private, invited, bidder, outsider)


def listed(db: Database, principal: Principal, **filters: Any) -> tuple[list[Any], int]:
    with db.read() as s:
        return auctions.list_auctions(s, principal, now=LATER, **filters)


ALL = ["newest", "hidden", "started", "first", "ahead", "gone", "unsold"]


def test_the_list_is_ordered_and_paged_with_the_total(db, world, seven) -> None:
    operator = world.p(world.operator)
    rows, total = listed(db, operator)
    assert (seven.names(rows), total) == (ALL, 7)
    pages = [listed(db, operator, limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [seven.names(rows) for rows, _ in pages] == [ALL[0:3], ALL[3:6], ALL[6:], []]
    assert {total for _, total in pages} == {7}
    with db.read() as s:
        shown = [
            auctions.state_at(r, LATER) for r in auctions.list_auctions(s, operator, now=LATER)[0]
        ]
    assert shown == ["open"] * 4 + ["scheduled", "cancelled", "unsold"]


def test_the_filters_are_applied_before_paging(db, world, seven) -> None:
    seller, operator = world.p(world.seller), world.p(world.operator)
    cases: list[tuple[Principal, dict[str, Any], list[str], int]] = [
        (operator, {"state": "open"}, ["newest", "hidden", "started", "first"], 4),
        (operator, {"state": "scheduled"}, ["ahead"], 1),
        (operator, {"state": "cancelled"}, ["gone"], 1),
        (operator, {"state": "unsold"}, ["unsold"], 1),
        (operator, {"state": "closed"}, [], 0),
        (operator, {"listing_id": seven.private}, ["hidden"], 1),
        (
            operator,
            {"state": "open", "listing_id": seven.public, "limit": 2, "offset": 1},
            ["started", "first"],
            3,
        ),
        (seller, {"mine": True}, ALL, 7),
        (seller, {"mine": True, "limit": 2, "offset": 5}, ["gone", "unsold"], 7),
        (world.p(seven.bidder), {"mine": True}, ["newest"], 1),
        (world.p(seven.outsider), {"mine": True}, [], 0),
        (world.p(seven.outsider), {"listing_id": seven.private}, [], 0),
        (world.p(seven.outsider), {"listing_id": "no\x00such"}, [], 0),
        (world.p(seven.outsider), {"state": "open", "offset": 1}, ["started", "first"], 3),
    ]
    for principal, filters, expected, expected_total in cases:
        rows, total = listed(db, principal, **filters)
        assert (seven.names(rows), total) == (expected, expected_total), filters
    with pytest.raises(DomainError) as caught:
        listed(db, operator, state="bidding")
    assert caught.value.status == 422 and caught.value.params["rule"] == "EXC-AUC-VISIBLE"


def _may_open(db: Database, principal: Principal, auction_id: str) -> bool:
    with db.read() as s:
        try:
            auctions.get_auction(s, principal, auction_id)
        except DomainError:
            return False
    return True


def test_each_party_lists_exactly_the_auctions_it_may_open(db, world, seven) -> None:
    def check(expected: dict[str, list[str]]) -> None:
        for who, names in expected.items():
            principal = world.p(getattr(seven, who, None) or getattr(world, who))
            rows, total = listed(db, principal)
            assert (seven.names(rows), total) == (names, len(names)), who
            openable = [n for n in ALL if _may_open(db, principal, seven.ids[n])]
            assert openable == names, who

    everything_public = [n for n in ALL if n != "hidden"]
    check(
        {
            "operator": ALL,
            "seller": ALL,
            "broker": ALL,  # brokers the listings
            "invited": ALL,
            "bidder": everything_public,
            "outsider": everything_public,
        }
    )
    # The public listing is narrowed to the invited party: the bidder still sees the auction
    # it bid in (not the others); the outsider sees none.
    with db.write() as s:
        row = s.get(ExchangeListing, seven.public)
        assert row is not None
        row.access = {"audience": "parties", "parties": [seven.invited.party_id]}
    check({"operator": ALL, "invited": ALL, "bidder": ["newest"], "outsider": []})


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_statements_do_not_grow_with_the_auctions(db, world, seven, create) -> None:
    outsider = world.p(seven.outsider)

    def measured() -> tuple[int, int]:
        with statements(db) as seen:
            _, total = listed(db, outsider, limit=2)
        return len(seen), total

    before, total = measured()
    assert total == 6
    seller = world.p(world.seller)
    for minute in range(8, 12):
        create(seller, seven.public, now=NOW + timedelta(minutes=minute))
    after, total = measured()
    assert total == 10
    assert after == before


def test_the_api_pages_and_filters_the_auctions(client, db, world) -> None:
    now = datetime.now(UTC)
    seller = world.p(world.seller)
    listing_id = world.listing(price_fen=10_000, quantity=5)
    made = []
    for minutes in range(3):
        with db.write() as s:
            made.append(
                auctions.create_auction(
                    s,
                    seller,
                    auctions.AuctionDraft(
                        listing_id=listing_id,
                        start_fen=10_000,
                        starts_at=now + timedelta(hours=1) if minutes == 2 else None,
                        ends_at=now + timedelta(hours=3),
                    ),
                    now=now + timedelta(seconds=minutes),
                ).number
            )
    as_buyer = bearer(client, world.buyer())

    def numbers(query: str) -> tuple[list[str], int]:
        r = client.get(f"/api/v1/auctions?{query}", headers=as_buyer)
        assert r.status_code == 200, r.text
        body = r.json()
        return [a["number"] for a in body["items"]], body["total"]

    # Bidding first, newest first; then the scheduled one.
    assert numbers("limit=2") == ([made[1], made[0]], 3)
    assert numbers("limit=2&offset=2") == ([made[2]], 3)
    assert numbers("status=scheduled") == ([made[2]], 1)
    assert numbers(f"status=open&listing_id={listing_id}&offset=1") == ([made[0]], 2)
    assert numbers("mine=true") == ([], 0)
    r = client.get("/api/v1/auctions?status=bidding", headers=as_buyer)
    assert r.status_code == 422 and r.json()["field"] == "state"


def test_the_page_lists_the_filtered_auctions(client, db, world, bid: Callable[..., Any]) -> None:
    now = datetime.now(UTC)
    seller = world.p(world.seller)
    listing_id = world.listing(price_fen=10_000, quantity=5)
    made = []
    for i in range(3):
        with db.write() as s:
            made.append(
                auctions.create_auction(
                    s,
                    seller,
                    auctions.AuctionDraft(
                        listing_id=listing_id, start_fen=10_000, ends_at=now + timedelta(hours=2)
                    ),
                    now=now + timedelta(seconds=i),
                )
            )
    buyer = world.buyer()
    bid(world.p(buyer), made[0].id, 10_000, now=now + timedelta(seconds=5))
    console_login(client, buyer, "/exchange/auctions")

    def shown(query: str) -> list[str]:
        r = client.get(f"/exchange/auctions{query}")
        assert r.status_code == 200, r.text
        return re.findall(r'data-testid="auction-link">([^<]+)<', r.text)

    assert shown("") == [a.number for a in reversed(made)]
    assert shown("?mine=true") == [made[0].number]
    assert shown("?status=scheduled") == []
