"""The order rules without a database: quantities, keys, what an order comes to, the
agreement policy made from a listing's."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from datafactor.exchange import orders
from datafactor.exchange.errors import ExchangeInvalid

TODAY = date(2026, 11, 26)


def listing(**kw):  # type: ignore[no-untyped-def]
    values = {
        "price_model": "one_off",
        "price_fen": 12_000,
        "term_days": 365,
        "period": None,
        "seller_id": "seller",
        "contract_policy": {
            "@type": "Offer",
            "uid": "urn:x",
            "permission": [{"target": "urn:a", "action": "use"}],
        },
    }
    values.update(kw)
    return SimpleNamespace(**values)


@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, "", "abc", "-3", None, True, [1]])
def test_a_quantity_is_a_whole_number_of_at_least_one(value):
    with pytest.raises(ExchangeInvalid) as refused:
        orders.check_quantity(value)
    assert refused.value.rule == "EXC-ORDER-QUANTITY"
    assert refused.value.field == "quantity"


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (7, 7), ("3", 3), (" 12 ", 12)])
def test_quantities_as_people_type_them(value, expected):
    assert orders.check_quantity(value) == expected


def test_a_key_is_required_and_printable():
    with pytest.raises(orders.MissingIdempotencyKey) as missing:
        orders.check_key(None)
    assert missing.value.status == 400 and missing.value.rule == "EXC-ORDER-KEY"
    for bad in ("with space", "x" * 129, "钥匙", 5):
        with pytest.raises(ExchangeInvalid):
            orders.check_key(bad)
    assert orders.check_key("0f0c2a3e-8d1b-4b7e-9f70-1c2d3e4f5a6b") == (
        "0f0c2a3e-8d1b-4b7e-9f70-1c2d3e4f5a6b"
    )


def test_the_body_fingerprint_tells_bodies_apart():
    assert orders.request_hash("L1", 2) == orders.request_hash("L1", 2)
    assert orders.request_hash("L1", 2) != orders.request_hash("L1", 3)
    assert orders.request_hash("L1", 2) != orders.request_hash("L2", 2)


def test_one_off_takes_a_licence_per_unit_for_the_listing_term():
    terms = orders.order_terms(listing(), 3, TODAY)
    assert terms.licences == 3
    assert terms.amount_fen == 36_000
    assert (terms.term_start, terms.term_end) == (TODAY, date(2027, 11, 25))


def test_a_subscription_buys_periods_on_one_licence():
    terms = orders.order_terms(listing(price_model="subscription", period="month"), 3, TODAY)
    assert terms.licences == 1
    assert terms.amount_fen == 36_000
    assert terms.term_end == date(2027, 2, 25)  # three calendar months, both ends included
    year = orders.order_terms(listing(price_model="subscription", period="year"), 2, TODAY)
    assert year.term_end == date(2028, 11, 25)


def test_metered_prepays_calls_and_free_freezes_nothing():
    metered = orders.order_terms(listing(price_model="metered", price_fen=5), 10_000, TODAY)
    assert (metered.licences, metered.amount_fen) == (1, 50_000)
    free = orders.order_terms(listing(price_model="free", price_fen=999), 2, TODAY)
    assert (free.licences, free.amount_fen) == (2, 0)


def test_calendar_months_end_on_the_last_day_when_shorter():
    assert orders.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert orders.add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert orders.add_months(date(2026, 11, 26), 14) == date(2028, 1, 26)


def test_caps_come_from_the_rules_file():
    assert orders.max_quantity("one_off") == 1000
    assert orders.max_quantity("metered") == 100_000_000
    assert orders.max_quantity("something-new") == 1000


def test_the_agreement_names_the_seller_and_the_buyer():
    source = listing()
    policy = orders.agreement_policy(source, "buyer", "order-1")
    assert policy["@type"] == "Agreement"
    assert (policy["assigner"], policy["assignee"]) == ("seller", "buyer")
    assert policy["uid"] == "urn:datafactor:order:order-1"
    assert policy["permission"] == source.contract_policy["permission"]
    assert source.contract_policy["@type"] == "Offer"  # the listing's own is left alone
