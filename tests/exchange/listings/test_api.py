"""The listings API: the stable browse shape, the review through the write routes, and clear
problem+json refusals (both databases)."""

from __future__ import annotations

import pytest
from factories import bearer, make_actor
from listing_support import draft

from datafactor.db import today_cn, utcnow
from datafactor.exchange import listings
from datafactor.identity import PartyKind

PROBLEM = "application/problem+json"


@pytest.fixture
def h(client, world):
    """Bearer headers per role of the world."""
    return {
        name: bearer(client, getattr(world, name))
        for name in ("seller", "seller_staff", "operator", "assessor", "broker", "buyer")
    }


def body(world, **kw):
    values = {
        "asset_id": world.product.asset_id,
        "title": "园区用电指数",
        "title_en": "Industrial park power index",
        "summary": "按园区汇总的月度用电指数",
        "industry": "energy",
        "region": "450100",
        "tags": ["电力"],
        "price_model": "subscription",
        "price_fen": 880_000,
        "period": "month",
        "channels": ["api", "sandbox"],
        "term_days": 365,
        "quantity": 10,
    }
    values.update(kw)
    return values


def all_pass():
    return [{"id": str(i["id"]), "outcome": "pass", "note": ""} for i in listings.checklist()]


def test_a_listing_from_draft_to_the_mall(client, world, h):
    r = client.post("/api/v1/listings", headers=h["seller_staff"], json=body(world))
    assert r.status_code == 201, r.text
    created = r.json()
    listing_id = created["id"]
    assert created["status"] == "draft"
    assert created["number"].startswith(f"GX-DL-{today_cn().year}-")
    assert created["remaining_quantity"] == 10
    assert created["policy_text"] and created["contract_policy"]["@type"] == "Offer"
    assert created["verify_url"] == f"/verify/{world.product.certificate}"

    # A draft is the seller's alone.
    assert client.get(f"/api/v1/listings/{listing_id}", headers=h["buyer"]).status_code == 404
    mine = client.get("/api/v1/listings?mine=true", headers=h["seller"]).json()
    assert [i["id"] for i in mine["items"]] == [listing_id]

    r = client.patch(
        f"/api/v1/listings/{listing_id}",
        headers=h["seller_staff"],
        json={"title": "园区用电景气指数"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "园区用电景气指数" and r.json()["price_fen"] == 880_000

    checks = client.post(f"/api/v1/listings/{listing_id}/checks", headers=h["seller"], json={})
    assert checks.status_code == 200
    assert {f["check"] for f in checks.json()} >= {"certificate", "source_statement", "core_data"}
    assert all(f["outcome"] != "fail" for f in checks.json())

    # Staff cannot sign the declaration; the administrator must confirm it.
    r = client.post(
        f"/api/v1/listings/{listing_id}/submit", headers=h["seller_staff"], json={"confirm": True}
    )
    assert r.status_code == 403 and "EXC-LST-DECLARATION" in r.json()["detail"]
    r = client.post(f"/api/v1/listings/{listing_id}/submit", headers=h["seller"], json={})
    assert r.status_code == 422 and r.json()["field"] == "confirm"
    r = client.post(
        f"/api/v1/listings/{listing_id}/submit", headers=h["seller"], json={"confirm": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted" and r.json()["declared"] is True

    r = client.post(
        f"/api/v1/listings/{listing_id}/assess",
        headers=h["assessor"],
        json={"checklist": all_pass(), "opinion": "同意挂牌", "confirm": True},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "assessed"

    r = client.post(
        f"/api/v1/listings/{listing_id}/decision",
        headers=h["operator"],
        json={"action": "approve", "reason": ""},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published" and r.json()["published_at"]

    page = client.get("/api/v1/listings", headers=h["buyer"]).json()
    assert page["total"] == 1
    item = page["items"][0]
    assert {k: item[k] for k in ("id", "title", "price_fen", "remaining_quantity", "status")} == {
        "id": listing_id,
        "title": "园区用电景气指数",
        "price_fen": 880_000,
        "remaining_quantity": 10,
        "status": "published",
    }
    assert item["seller_name"] == "广西电网数据公司"

    reviews = client.get(f"/api/v1/listings/{listing_id}/reviews", headers=h["seller"]).json()
    assert reviews[0]["signature"] and reviews[0]["decision"] == "approve"
    events = client.get(f"/api/v1/listings/{listing_id}/events", headers=h["seller"]).json()
    assert [e["action"] for e in events] == ["create", "update", "submit", "assess", "approve"]
    # A buyer sees the listing, not how it was reviewed.
    assert client.get(f"/api/v1/listings/{listing_id}/events", headers=h["buyer"]).json() == []


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"asset_id": "00000000-0000-0000-0000-000000000000"}, "asset_id", "EXC-LST-SELLER"),
        ({"price_fen": -5}, "price", "EXC-LST-PRICE"),
        ({"price_fen": 10**13}, "price", "EXC-LST-PRICE"),
        ({"price_model": "free", "price_fen": 100, "period": None}, "price", "EXC-LST-PRICE"),
        ({"channels": ["download"]}, "channels", "EXC-LST-CHANNEL"),
        ({"channels": ["fax"]}, "channels", "EXC-LST-CHANNEL"),
        ({"contract_policy": {"permission": "nonsense"}}, "contract_policy", "EXC-LST-POLICY"),
        (
            {
                "contract_policy": {
                    "@type": "Set",
                    "uid": "urn:x",
                    "permission": [{"target": "someone-else", "action": "use"}],
                }
            },
            "contract_policy",
            "EXC-LST-POLICY",
        ),
        ({"quantity": 0}, "quantity", "EXC-LST-QUANTITY"),
        ({"placement": "zone", "zone": "moon"}, "zone", "EXC-LST-ZONE"),
        ({"audience": "parties", "audience_parties": []}, "audience_parties", "EXC-LST-ACCESS"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_the_rule(client, world, h, change, field, rule):
    r = client.post("/api/v1/listings", headers=h["seller"], json=body(world, **change))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["field"] == field and rule in r.json()["detail"]


def test_revenue_sharing_over_100_percent_or_an_unknown_party_is_refused(client, world, h, db):
    partner = make_actor(db)
    shares = [
        {"party_id": partner.party_id, "stage": "collection", "mode": "dividend", "bp": 6000},
        {"party_id": world.broker.party_id, "stage": "circulation", "mode": "dividend", "bp": 5000},
    ]
    r = client.post(
        "/api/v1/listings", headers=h["seller"], json=body(world, revenue_sharing=shares)
    )
    assert r.status_code == 422 and "EXC-LST-SHARING" in r.json()["detail"]
    assert r.json()["field"] == "revenue_sharing"
    shares[1] = {"party_id": "nobody", "stage": "application", "mode": "commission", "fen": 100}
    shares[0]["bp"] = 500
    r = client.post(
        "/api/v1/listings", headers=h["seller"], json=body(world, revenue_sharing=shares)
    )
    assert r.status_code == 422 and "nobody" in r.json()["detail"]
    shares[1]["party_id"] = world.broker.party_id
    r = client.post(
        "/api/v1/listings", headers=h["seller"], json=body(world, revenue_sharing=shares)
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft"


def test_a_product_of_another_party_is_refused_as_unknown(client, world, h):
    r = client.post("/api/v1/listings", headers=h["buyer"], json=body(world, title="别人的产品"))
    assert r.status_code == 422 and r.json()["field"] == "asset_id"
    assert "EXC-LST-SELLER" in r.json()["detail"]


def test_acting_in_the_wrong_state_is_a_conflict(client, world, h, create):
    listing_id = create()
    r = client.post(
        f"/api/v1/listings/{listing_id}/decision",
        headers=h["operator"],
        json={"action": "approve"},
    )
    assert r.status_code == 409 and "EXC-LST-STATE" in r.json()["detail"]
    r = client.post(
        f"/api/v1/listings/{listing_id}/assess",
        headers=h["assessor"],
        json={"checklist": all_pass(), "opinion": "同意", "confirm": True},
    )
    assert r.status_code in (404, 409)


def test_only_the_reviewers_review(client, world, h, create):
    listing_id = create()
    client.post(
        f"/api/v1/listings/{listing_id}/submit", headers=h["seller"], json={"confirm": True}
    )
    # A broker is not a compliance assessor; the seller is not the exchange.
    r = client.post(
        f"/api/v1/listings/{listing_id}/assess",
        headers=h["broker"],
        json={"checklist": all_pass(), "opinion": "同意", "confirm": True},
    )
    assert r.status_code == 403 and "EXC-LST-ASSESSMENT" in r.json()["detail"]
    r = client.post(
        f"/api/v1/listings/{listing_id}/decision",
        headers=h["seller"],
        json={"action": "approve"},
    )
    assert r.status_code == 403


def test_a_failing_assessment_returns_the_listing_with_the_reasons(client, world, h, create):
    listing_id = create()
    client.post(
        f"/api/v1/listings/{listing_id}/submit", headers=h["seller"], json={"confirm": True}
    )
    items = all_pass()
    items[1] = {"id": items[1]["id"], "outcome": "fail", "note": ""}
    r = client.post(
        f"/api/v1/listings/{listing_id}/assess",
        headers=h["assessor"],
        json={"checklist": items, "opinion": "来源说明不完整", "confirm": True},
    )
    assert r.status_code == 422 and r.json()["field"].startswith("checklist.")
    items[1]["note"] = "缺少采集授权文件"
    r = client.post(
        f"/api/v1/listings/{listing_id}/assess",
        headers=h["assessor"],
        json={"checklist": items, "opinion": "来源说明不完整，请补充", "confirm": True},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "returned" and r.json()["reason"] == "来源说明不完整，请补充"
    # Returned: the seller changes it and submits again.
    r = client.patch(
        f"/api/v1/listings/{listing_id}", headers=h["seller"], json={"summary": "补充"}
    )
    assert r.status_code == 200
    r = client.post(
        f"/api/v1/listings/{listing_id}/submit", headers=h["seller"], json={"confirm": True}
    )
    assert r.status_code == 200 and r.json()["status"] == "submitted"


def test_a_submission_the_checks_refuse_lists_every_failure(client, world, h, create, db):
    from sqlalchemy import update

    from datafactor.registry.models import RegistryAsset

    listing_id = create()
    with db.write() as s:
        s.execute(
            update(RegistryAsset)
            .where(RegistryAsset.id == world.product.asset_id)
            .values(source_statement="", grade="core")
        )
    r = client.post(
        f"/api/v1/listings/{listing_id}/submit", headers=h["seller"], json={"confirm": True}
    )
    assert r.status_code == 422
    problem = r.json()
    assert r.headers["content-type"].startswith(PROBLEM)
    assert set(problem["rules"]) == {"EXC-LST-SOURCE", "EXC-LST-CORE"}
    failed = {f["check"] for f in problem["findings"] if f["outcome"] == "fail"}
    assert failed == {"source_statement", "core_data"}
    got = client.get(f"/api/v1/listings/{listing_id}", headers=h["seller"]).json()
    assert got["status"] == "draft"


def test_operator_decisions_need_reasons_and_move_the_listing(client, world, h, publish):
    listing_id = publish()
    url = f"/api/v1/listings/{listing_id}/decision"
    r = client.post(url, headers=h["operator"], json={"action": "suspend"})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = client.post(url, headers=h["operator"], json={"action": "suspend", "reason": "核查来源"})
    assert r.json()["status"] == "suspended"
    # Buyers still see what became of it, but not in the mall.
    assert client.get(f"/api/v1/listings/{listing_id}", headers=h["buyer"]).status_code == 200
    assert client.get("/api/v1/listings", headers=h["buyer"]).json()["total"] == 0
    r = client.post(url, headers=h["operator"], json={"action": "resume", "reason": "核查完毕"})
    assert r.json()["status"] == "published"
    r = client.post(url, headers=h["operator"], json={"action": "delist", "reason": "证书到期"})
    assert r.json()["status"] == "delisted"
    r = client.post(url, headers=h["operator"], json={"action": "resume", "reason": "x"})
    assert r.status_code == 409


def test_the_seller_withdraws_a_draft_and_delists_a_listing(client, world, h, create, publish):
    draft_id = create()
    r = client.post(
        f"/api/v1/listings/{draft_id}/withdraw",
        headers=h["seller_staff"],
        json={"action": "withdraw", "reason": "暂不挂牌"},
    )
    assert r.status_code == 200 and r.json()["status"] == "delisted"
    listed = publish()
    r = client.post(
        f"/api/v1/listings/{listed}/withdraw",
        headers=h["buyer"],
        json={"action": "delist", "reason": "x"},
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/listings/{listed}/withdraw",
        headers=h["seller"],
        json={"action": "delist", "reason": "产品下线"},
    )
    assert r.json()["status"] == "delisted"


def test_a_named_broker_prepares_the_draft(client, world, h, create, db):
    listing_id = create(broker_id=world.broker.party_id)
    r = client.patch(
        f"/api/v1/listings/{listing_id}",
        headers=h["broker"],
        json={"summary": "经纪机构补充的说明", "price_fen": 990_000},
    )
    assert r.status_code == 200, r.text
    assert r.json()["price_fen"] == 990_000 and r.json()["broker_id"] == world.broker.party_id
    # The broker cannot hand the listing to someone else, nor sign for the seller.
    other = make_actor(db, PartyKind.SERVICE_FIRM)
    r = client.patch(
        f"/api/v1/listings/{listing_id}", headers=h["broker"], json={"broker_id": other.party_id}
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/listings/{listing_id}/submit", headers=h["broker"], json={"confirm": True}
    )
    assert r.status_code == 403
    # A broker that is not one is refused.
    r = client.patch(
        f"/api/v1/listings/{listing_id}",
        headers=h["seller"],
        json={"broker_id": world.assessor.party_id},
    )
    assert r.status_code == 422 and r.json()["field"] == "broker_id"


def test_zone_placement_needs_the_operator(client, world, h, create):
    from listing_support import drive

    zoned = create(placement="zone", zone="energy")
    drive(world, zoned, until="assessed")
    r = client.post(
        f"/api/v1/listings/{zoned}/decision", headers=h["operator"], json={"action": "approve"}
    )
    assert r.json()["placement"] == "zone" and r.json()["zone_approved"] is True
    moved = create(placement="zone", zone="finance")
    drive(world, moved, until="assessed")
    r = client.post(
        f"/api/v1/listings/{moved}/decision",
        headers=h["operator"],
        json={"action": "approve", "zone_approved": False},
    )
    assert r.json()["placement"] == "mall" and r.json()["zone"] is None
    zone = client.get("/api/v1/listings?placement=zone&zone=energy", headers=h["buyer"]).json()
    assert [i["id"] for i in zone["items"]] == [zoned]


def test_an_unknown_query_parameter_or_a_bad_filter_is_refused(client, h):
    assert client.get("/api/v1/listings?colour=red", headers=h["buyer"]).status_code == 400
    assert client.get("/api/v1/listings?channel=fax", headers=h["buyer"]).status_code == 422


def test_declaration_and_checklist_are_published(client, h):
    text = client.get("/api/v1/listings/declaration", headers=h["seller"]).json()
    assert text["version"] and any(i["id"] == "records" for i in text["items"])
    items = client.get("/api/v1/listings/checklist", headers=h["assessor"]).json()["items"]
    assert {i["group"] for i in items} == {"basic", "legality", "tradability", "security"}


def test_services_create_the_same_number_sequence(world):
    with world.db.write() as s:
        a = listings.create_listing(
            s, world.p(world.seller), draft(world.product), on=today_cn(), now=utcnow()
        ).number
        b = listings.create_listing(
            s, world.p(world.seller), draft(world.product), on=today_cn(), now=utcnow()
        ).number
    assert int(b.rsplit("-", 1)[1]) == int(a.rsplit("-", 1)[1]) + 1


def test_a_buyer_does_not_read_the_sellers_arrangements(client, world, h, publish):
    shares = (
        {"party_id": world.broker.party_id, "stage": "circulation", "mode": "dividend", "bp": 800},
    )
    listing_id = publish(
        revenue_sharing=shares, audience="parties", audience_parties=(world.buyer.party_id,)
    )
    seen = client.get(f"/api/v1/listings/{listing_id}", headers=h["buyer"]).json()
    assert seen["revenue_sharing"] == [] and seen["access"] == {"audience": "parties"}
    own = client.get(f"/api/v1/listings/{listing_id}", headers=h["seller"]).json()
    assert own["revenue_sharing"][0]["bp"] == 800
    assert own["access"]["parties"] == [world.buyer.party_id]
