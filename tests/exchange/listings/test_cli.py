"""``datafactor exchange listings --json`` and the operator's listing commands (both databases)."""

from __future__ import annotations

import json

from listing_support import drive


def test_listings_json_is_the_api_page_for_the_operator(run, world, create, publish):
    draft_id = create(title="工业负荷预测")
    listed = publish(quantity=4)
    result = run("exchange", "listings", "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert list(page) == ["items", "total", "limit", "offset"] and page["total"] == 2
    by_id = {i["id"]: i for i in page["items"]}
    assert by_id[draft_id]["status"] == "draft"
    assert {k: by_id[listed][k] for k in ("price_fen", "remaining_quantity", "status")} == {
        "price_fen": 120_000,
        "remaining_quantity": 4,
        "status": "published",
    }
    searched = json.loads(run("exchange", "listings", "--json", "--q", "负荷").stdout)
    assert [i["id"] for i in searched["items"]] == [draft_id]
    only = json.loads(run("exchange", "listings", "--json", "--state", "published").stdout)
    assert [i["id"] for i in only["items"]] == [listed]
    table = run("exchange", "listings")
    assert table.exit_code == 0 and "2 listing(s)" in table.stdout


def test_the_operator_decides_from_the_command_line(run, world, create):
    listing_id = create()
    drive(world, listing_id, until="assessed")
    result = run("exchange", "listing", listing_id, "--json")
    shown = json.loads(result.stdout)
    assert shown["status"] == "assessed" and shown["assessment"]["signed"] is True
    refused = run(
        "exchange", "listing-decide", listing_id, "return", "--as", world.operator.username
    )
    assert refused.exit_code == 2  # a return needs its reason
    ok = run(
        "exchange",
        "listing-decide",
        listing_id,
        "approve",
        "--as",
        world.operator.username,
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip().endswith("published")
    seller = run(
        "exchange",
        "listing-decide",
        listing_id,
        "suspend",
        "--as",
        world.seller.username,
        "--reason",
        "x",
    )
    assert seller.exit_code == 2
