"""The listing use cases on both databases: signed declaration and assessment, the ledger entry
on publication, the audit trail and the seller's notifications, the default contract policy,
and the tradability checks (personal information, public data, core data)."""

from __future__ import annotations

import json

import pytest
from exchange_support import certified_product
from listing_support import OPINION, all_pass, draft
from registry_support import principal
from sqlalchemy import select, update

from datafactor import inbox
from datafactor.audit import AuditEvent
from datafactor.db import today_cn, utcnow
from datafactor.exchange import ExchangeInvalid, listings
from datafactor.exchange.keys import verify_record
from datafactor.exchange.models import ExchangeListingEvent
from datafactor.ledger import services as ledger
from datafactor.policy import parse_policy
from datafactor.registry import DataClass
from datafactor.registry.models import RegistryAsset, RegistryRight


def test_publication_is_signed_audited_on_the_ledger_and_told(world, publish):
    listing_id = publish()
    with world.db.read() as s:
        row = listings.get_listing(s, world.p(world.seller), listing_id)
        assert row.state == "published" and row.published_at is not None
        record = row.declaration
        assert record["listing"]["number"] == row.number
        assert {i["id"] for i in record["items"]} >= {"lawful_source", "records"}
        assert verify_record(record, row.declaration_signature, record["signer_key"])
        tampered = dict(record, consent_basis="后来改的")
        assert not verify_record(tampered, row.declaration_signature, record["signer_key"])
        review = listings.latest_review(s, listing_id)
        assert review.decision == "approve" and review.opinion == OPINION
        assert verify_record(review.record, review.signature, review.signing_key)
        assert review.assessor_party_id == world.assessor.party_id
        assert [i["outcome"] for i in review.checklist] == ["pass"] * len(listings.checklist())
        actions = [
            e.action
            for e in s.scalars(
                select(ExchangeListingEvent).where(ExchangeListingEvent.listing_id == listing_id)
            )
        ]
        assert actions == ["create", "submit", "assess", "approve"]
        audited = set(
            s.scalars(select(AuditEvent.action).where(AuditEvent.object_id == listing_id))
        )
        assert audited == {
            "exchange:listing:create",
            "exchange:listing:submit",
            "exchange:listing:assess",
            "exchange:listing:approve",
        }
        size = ledger.tree_size(s)
        events = [e.event() for e in ledger.list_entries(s, max(0, size - 20), 20)]
        published = [e for e in events if e and e["kind"] == "exchange.listing.published"]
        assert published and published[-1]["payload"]["listing_id"] == listing_id
        messages, _ = inbox.list_messages(s, world.p(world.seller), limit=20, offset=0)
        assert sum(m.kind == "exchange.listing" for m in messages) == 2  # assessed, published


def test_the_default_policy_follows_the_right_and_the_channels(world, create):
    listing_id = create(channels=("api", "sandbox"))
    with world.db.read() as s:
        row = listings.get_listing(s, world.p(world.seller), listing_id)
    policy = parse_policy(row.contract_policy)
    assert [p.target for p in policy.permissions] == [world.product.asset_id]
    constraints = {c.left: c.right for c in policy.permissions[0].constraints}
    assert set(constraints["purpose"]) == {"industry", "research"}
    assert set(constraints["deliveryChannel"]) == {"api", "sandbox"}
    assert constraints["spatial"] == "450000"
    assert [p.action.name for p in policy.prohibitions] == ["distribute"]


def test_an_edited_policy_is_kept_and_must_target_the_product(world, create):
    own = {
        "@context": ["http://www.w3.org/ns/odrl.jsonld"],
        "@type": "Offer",
        "uid": "urn:example:policy",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
                ],
            }
        ],
    }
    listing_id = create(contract_policy=own)
    with world.db.read() as s:
        row = listings.get_listing(s, world.p(world.seller), listing_id)
    assert row.contract_policy["permission"][0]["target"] == world.product.asset_id
    assert row.contract_policy["uid"] == "urn:example:policy"
    with pytest.raises(ExchangeInvalid) as caught:
        create(contract_policy={**own, "target": "another-asset"})
    assert caught.value.rule == "EXC-LST-POLICY"
    with pytest.raises(ExchangeInvalid):
        create(contract_policy={**own, "permission": []})


def test_personal_information_needs_a_consent_basis(world, create):
    with world.db.write() as s:
        s.execute(
            update(RegistryAsset)
            .where(RegistryAsset.id == world.product.resource_id)
            .values(data_class="personal")
        )
    listing_id = create()
    seller = world.p(world.seller)
    with world.db.write() as s, pytest.raises(listings.ListingChecksFailed) as caught:
        listings.submit_listing(
            s, seller, listing_id, keys=world.keys, confirm=True, on=today_cn(), now=utcnow()
        )
    assert caught.value.rule == "EXC-LST-PERSONAL"
    with world.db.write() as s:
        row = listings.submit_listing(
            s,
            seller,
            listing_id,
            keys=world.keys,
            confirm=True,
            consent_basis="个人用户单独同意书（编号 C-2026-001 至 C-2026-950）",
            on=today_cn(),
            now=utcnow(),
        )
        assert row.state == "submitted"
        assert row.declaration["consent_basis"].startswith("个人用户单独同意书")


def test_public_data_is_refused_unless_operated_and_never_by_download(db, settings, world, issuer):
    product = certified_product(
        db,
        settings,
        principal(db, world.seller),
        principal(db, world.operator),
        issuer,
        data_class=DataClass.PUBLIC,
    )
    seller = world.p(world.seller)
    with db.write() as s:
        listing_id = listings.create_listing(
            s, seller, draft(product), on=today_cn(), now=utcnow()
        ).id
    with db.read() as s:
        found = listings.preflight(s, seller, listing_id, on=today_cn())
    public = next(f for f in found if f.check == "public_data")
    assert public.outcome == "fail" and public.rule == "EXC-LST-PUBLIC"
    # Even where the right's scope allows download, public data is never downloaded.
    with db.write() as s:
        right = s.get(RegistryRight, product.right_id)
        scope = dict(right.scope)
        scope["delivery_modes"] = ["api", "download", "sandbox"]
        s.execute(update(RegistryRight).where(RegistryRight.id == right.id).values(scope=scope))
    with db.write() as s, pytest.raises(ExchangeInvalid) as caught:
        listings.create_listing(
            s, seller, draft(product, channels=("download",)), on=today_cn(), now=utcnow()
        )
    assert caught.value.rule == "EXC-LST-CHANNEL" and "download" in str(caught.value)


def test_an_approval_rechecks_the_product(world, create):
    from listing_support import drive

    listing_id = create()
    drive(world, listing_id, until="assessed")
    with world.db.write() as s:
        s.execute(
            update(RegistryAsset)
            .where(RegistryAsset.id == world.product.asset_id)
            .values(grade="core")
        )
    with world.db.write() as s, pytest.raises(listings.ListingChecksFailed) as caught:
        listings.decide_listing(
            s, world.p(world.operator), listing_id, "approve", on=today_cn(), now=utcnow()
        )
    assert caught.value.rule == "EXC-LST-CORE"
    with world.db.write() as s:
        row = listings.decide_listing(
            s,
            world.p(world.operator),
            listing_id,
            "refuse",
            reason="数据发现分级为核心数据",
            on=today_cn(),
            now=utcnow(),
        )
        assert row.state == "refused"


def test_the_checklist_is_checked(world):
    items = all_pass()
    assert len(listings.check_checklist(items)) == len(items)
    with pytest.raises(ExchangeInvalid, match="missing"):
        listings.check_checklist(items[1:])
    with pytest.raises(ExchangeInvalid):
        listings.check_checklist([*items, items[0]])
    na = [dict(i, outcome="na") if i["id"] == "title" else i for i in items]
    with pytest.raises(ExchangeInvalid):
        listings.check_checklist(na)
    na = [dict(i, outcome="na") if i["id"] == "public_data" else i for i in items]
    assert listings.check_checklist(na)


def test_a_listing_record_serialises(world, publish):
    listing_id = publish()
    with world.db.read() as s:
        row = listings.get_listing(s, world.p(world.buyer), listing_id)
        item = listings.listing_item(row, listings.seller_names(s, [row]))
    assert json.loads(json.dumps(item))["id"] == listing_id
