"""The marketplace search: CJK bigram tokenisation (pure), and ranked full-text search with the
filters on both databases."""

from __future__ import annotations

import pytest

from datafactor.exchange import listings


def test_cjk_text_is_cut_into_characters_and_bigrams():
    tokens = listings.search_tokens("园区用电指数 Power-Index 2026")
    assert {"园区", "区用", "用电", "电指", "指数", "园", "电"} <= set(tokens)
    assert {"power", "index", "2026"} <= set(tokens)


def test_a_query_uses_bigrams_and_words():
    assert listings.query_tokens("用电") == ["用电"]
    assert listings.query_tokens("园区指数") == ["园区", "区指", "指数"]
    assert listings.query_tokens("电") == ["电"]
    assert listings.query_tokens("  Power   用电 ") == ["power", "用电"]
    assert listings.query_tokens("，。!") == []
    # Full-width forms normalise (NFKC) to the same tokens.
    assert listings.query_tokens("ＰＯＷＥＲ") == ["power"]


def test_search_text_puts_the_title_before_the_marker():
    text = listings.search_text_of(
        title="园区用电指数",
        title_en="",
        summary="按月汇总",
        summary_en="",
        tags=["电力"],
        industry="energy",
        region="450100",
        kind="product",
        number="GX-DL-2026-000001",
        seller="广西电网",
    )
    head, tail = text.split(" # ")
    assert " 用电 " in head + " " and " 汇总 " in tail + " " and " gx " in tail


@pytest.fixture
def market(world, create):
    """Three drafts of the world's product with different words (the operator sees drafts)."""
    ids = {
        "title": create(title="园区用电指数", summary="园区月度指数", price_fen=50_000),
        "summary": create(
            title="工业负荷预测",
            summary="基于用电数据预测负荷",
            price_model="metered",
            price_fen=200,
            channels=("api", "sandbox"),
        ),
        "other": create(
            title="港口吞吐量月报",
            title_en="Port throughput monthly",
            summary="北部湾港集装箱",
            industry="transport",
            region="450500",
            price_fen=3_000_000,
        ),
    }
    return ids


def search(world, **kw):
    with world.db.read() as s:
        rows, total = listings.list_listings(
            s, world.p(world.operator), listings.ListingQuery(**kw), limit=50, offset=0
        )
    assert total == len(rows)
    return [r.id for r in rows]


def test_a_chinese_search_ranks_title_matches_first(world, market):
    assert search(world, q="用电") == [market["title"], market["summary"]]
    assert search(world, q="园区指数") == [market["title"]]
    assert search(world, q="吞吐量") == [market["other"]]
    assert search(world, q="throughput") == [market["other"]]
    assert search(world, q="THROUGHPUT monthly") == [market["other"]]
    assert search(world, q="区块链") == []
    assert search(world, q="。") == []


def test_filters_narrow_the_listings(world, market):
    assert search(world, price_model="metered") == [market["summary"]]
    assert search(world, channel="sandbox") == [market["summary"]]
    assert set(search(world, price_min_fen=10_000, price_max_fen=100_000)) == {market["title"]}
    assert search(world, industry="transport") == [market["other"]]
    # A prefecture or province finds the divisions inside it.
    assert search(world, region="450500") == [market["other"]]
    assert set(search(world, region="450000")) == set(market.values())
    assert set(search(world, region="450100")) == {market["title"], market["summary"]}
    assert set(search(world, kind="product")) == set(market.values())
    assert search(world, kind="tool") == []
    assert search(world, q="用电", price_model="one_off") == [market["title"]]


def test_a_listing_number_is_searchable(world, market):
    with world.db.read() as s:
        number = listings.get_listing(s, world.p(world.operator), market["other"]).number
    assert search(world, q=number)[0] == market["other"]


def test_buyers_see_only_published_listings(world, market, publish):
    published = publish(title="园区用电指数（正式）")
    with world.db.read() as s:
        rows, total = listings.list_listings(
            s, world.p(world.buyer), listings.ListingQuery(q="用电"), limit=10, offset=0
        )
    assert [r.id for r in rows] == [published] and total == 1
    with world.db.read() as s:
        rows, total = listings.list_listings(
            s, world.p(world.seller), listings.ListingQuery(q="用电"), limit=10, offset=0
        )
    assert total == 3  # the seller sees its drafts and the published one
