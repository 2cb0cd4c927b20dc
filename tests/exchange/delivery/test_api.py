"""Delivery through the API on both databases: download tokens counted and expiring, a buyer
never getting another buyer's file, the policy asked at every delivery (forbidden fields left
out), nothing once the contract has ended, API pull with its rate limit, the delivery log."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from delivery_support import BANNED, FIELDS, meter_rows
from factories import bearer

from datafactor.db import utcnow
from datafactor.exchange import delivery
from datafactor.exchange.models import ExchangeContract, ExchangeDelivery, ExchangeDeliveryToken
from datafactor.inbox.models import InboxMessage

DELIVERED = [f for f in FIELDS if f != BANNED]


def take(client, headers, contract_id, channel="download", purpose="research", **extra):
    return client.post(
        "/api/v1/deliveries/tokens",
        headers=headers,
        json={"contract_id": contract_id, "channel": channel, "purpose": purpose, **extra},
    )


def code(problem) -> str:
    """The problem's code: the last part of its ``type`` URI."""
    body = problem if isinstance(problem, dict) else problem.json()
    return str(body["type"]).rsplit("/", 1)[-1]


def link(issued: dict) -> str:
    return issued["url"].removeprefix("http://testserver")


def rows_of(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))


def log(world, contract_id):
    with world.db.read() as s:
        return list(
            s.query(ExchangeDelivery)
            .filter(ExchangeDelivery.contract_id == contract_id)
            .order_by(ExchangeDelivery.at)
        )


def set_contract(world, contract_id, **values):
    with world.db.write() as s:
        row = s.get(ExchangeContract, contract_id)
        for name, value in values.items():
            setattr(row, name, value)


@pytest.fixture
def buyer(world):
    return world.buyers[0]


@pytest.fixture
def h(client, buyer):
    return bearer(client, buyer)


# ------------------------------------------------------------------------------ download


def test_a_download_is_the_permitted_fields_fingerprinted_and_recorded(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    r = take(client, h, contract_id)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert issued["secret"].startswith("dfx_dl_") and issued["max_uses"] == 3
    assert issued["declared"] == {"purpose": "research"}
    with world.db.read() as s:
        stored = s.get(ExchangeDeliveryToken, issued["id"])
        assert stored.secret_hash == hashlib.sha256(issued["secret"].encode()).hexdigest()
        assert issued["secret"] not in repr(vars(stored))

    d = client.get(link(issued), headers=h)
    assert d.status_code == 200, d.text
    assert d.headers["content-type"].startswith("text/csv")
    body = d.content
    lines = rows_of(body.decode())
    assert lines[0][0].startswith("# DataFactor") and "mark=" in lines[0][0]
    mark = lines[0][0].split("mark=")[1].split()[0]
    assert lines[1] == DELIVERED  # the phone numbers the policy forbids are not there
    data = lines[2:]
    real = [r[:6] for r in meter_rows()]
    assert len(data) == len(real) + 16  # 16 canary rows among the real ones
    assert all(row in data for row in real)

    (row,) = log(world, contract_id)
    assert row.decision == "allowed" and row.mark == mark and row.format == "csv"
    assert row.fields == DELIVERED
    assert (row.rows, row.bytes) == (256, len(body))
    assert row.content_hash == hashlib.sha256(body).hexdigest()
    assert len(row.fingerprint["canaries"]) == 16
    assert {"EXC-DLV-RECORD", "EXC-DLV-POLICY", "EXC-DLV-FINGERPRINT"} <= set(row.rules)
    with world.db.read() as s:
        contract = s.get(ExchangeContract, contract_id)
        assert contract.delivered_at is not None  # the acceptance period has started
        told = s.query(InboxMessage).filter(InboxMessage.party_id == world.seller.party_id)
        assert any(n.params.get("number") == contract.number for n in told)

    mine = client.get(f"/api/v1/deliveries?contract={contract_id}", headers=h).json()
    assert mine["total"] == 1 and mine["items"][0]["mark"] == mark
    assert any("联系电话" in reason for reason in mine["items"][0]["reasons"])
    theirs = client.get(f"/api/v1/deliveries/{row.id}", headers=bearer(client, world.seller)).json()
    assert theirs["decision"] == "allowed" and theirs["mark"] is None  # the seller never sees it
    assert theirs["token_id"] is None


def test_a_download_token_is_counted_and_refused_past_its_count(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    issued = take(client, h, contract_id).json()
    marks = set()
    for _ in range(3):
        d = client.get(link(issued), headers=h)
        assert d.status_code == 200
        marks.add(rows_of(d.text)[0][0].split("mark=")[1].split()[0])
    assert len(marks) == 3  # every copy its own mark
    again = client.get(link(issued), headers=h)
    assert again.status_code == 409
    problem = again.json()
    assert again.headers["content-type"].startswith("application/problem+json")
    assert problem["rule"] == "EXC-DLV-TOKEN" and code(problem) == "token-used-up"
    assert "3" in problem["detail"]
    decisions = [r.decision for r in log(world, contract_id)]
    assert decisions == ["allowed", "allowed", "allowed", "refused"]
    token = client.get(f"/api/v1/deliveries/tokens/{issued['id']}", headers=h).json()
    assert token["uses"] == 3 and token["status"] == "used_up"


def test_an_expired_or_revoked_token_is_refused(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    old = take(client, h, contract_id).json()
    with world.db.write() as s:
        s.get(ExchangeDeliveryToken, old["id"]).expires_at = utcnow() - timedelta(seconds=1)
    expired = client.get(link(old), headers=h)
    assert expired.status_code == 409 and expired.json()["rule"] == "EXC-DLV-TOKEN"

    fresh = take(client, h, contract_id).json()
    gone = client.delete(f"/api/v1/deliveries/tokens/{fresh['id']}", headers=h)
    assert gone.status_code == 200 and gone.json()["status"] == "revoked"
    revoked = client.get(link(fresh), headers=h)
    assert revoked.status_code == 409 and revoked.json()["rule"] == "EXC-DLV-TOKEN"
    assert [r.decision for r in log(world, contract_id)] == ["refused", "refused"]


def test_another_buyer_can_never_download_this_buyers_file(client, world, buyer, h):
    other = world.buyers[1]
    oh = bearer(client, other)
    mine = take(client, h, world.contract_of(buyer)).json()
    # the other buyer holding my link gets nothing, and my log shows the attempt
    stolen = client.get(link(mine), headers=oh)
    assert stolen.status_code == 404 and stolen.json()["rule"] == "EXC-DLV-BUYER"
    (attempt,) = log(world, world.contract_of(buyer))
    assert attempt.decision == "refused" and attempt.actor_user_id == other.user_id
    # nor can it take a token on my contract, or see or revoke mine
    assert take(client, oh, world.contract_of(buyer)).status_code == 404
    assert client.get(f"/api/v1/deliveries/tokens/{mine['id']}", headers=oh).status_code == 404
    assert client.delete(f"/api/v1/deliveries/tokens/{mine['id']}", headers=oh).status_code == 404
    listed = client.get(f"/api/v1/deliveries?contract={world.contract_of(buyer)}", headers=oh)
    assert listed.status_code == 404
    # the seller sees the contract but receives nothing
    seller = take(client, bearer(client, world.seller), world.contract_of(buyer))
    assert seller.status_code == 403 and seller.json()["rule"] == "EXC-DLV-BUYER"
    # and my link still works for me: the stolen attempt did not count
    assert client.get(link(mine), headers=h).status_code == 200
    # the other buyer's own file carries its own mark
    theirs = take(client, oh, world.contract_of(other)).json()
    assert client.get(link(theirs), headers=oh).status_code == 200
    marks = {r.mark for c in world.contracts.values() for r in log(world, c) if r.mark}
    assert len(marks) == 2


def test_a_link_works_only_with_the_buyers_login(client, world, buyer, h):
    issued = take(client, h, world.contract_of(buyer)).json()
    anonymous = client.get(link(issued))
    assert anonymous.status_code == 401
    browser = client.get(link(issued), headers={"Accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303 and browser.headers["location"].startswith("/login")
    assert log(world, world.contract_of(buyer)) == []  # nothing delivered, nothing counted


@pytest.mark.parametrize("state", ["completed", "terminated", "disputed", "signed"])
def test_nothing_is_delivered_unless_the_contract_is_in_performance(client, world, buyer, h, state):
    contract_id = world.contract_of(buyer)
    issued = take(client, h, contract_id).json()
    set_contract(world, contract_id, state=state)
    refused = client.get(link(issued), headers=h)
    assert refused.status_code == 409 and refused.json()["rule"] == "EXC-DLV-ACTIVE"
    assert [r.decision for r in log(world, contract_id)] == ["refused"]
    no_token = take(client, h, contract_id)
    assert no_token.status_code == 409 and code(no_token.json()) == "contract-not-active"


def test_nothing_is_delivered_after_the_term(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    issued = take(client, h, contract_id).json()
    today = utcnow().date()
    set_contract(
        world,
        contract_id,
        term_start=today - timedelta(days=30),
        term_end=today - timedelta(days=2),
    )
    refused = client.get(link(issued), headers=h)
    assert refused.status_code == 409
    assert code(refused.json()) == "contract-outside-term"


def test_a_channel_the_contract_does_not_name_is_refused(client, world, buyer, h):
    contract_id = world.open(world.buyers[2], channels=("download",))
    own = bearer(client, world.buyers[2])
    api = take(client, own, contract_id, channel="api")
    assert api.status_code == 409 and api.json()["rule"] == "EXC-DLV-CHANNEL"
    sandbox = take(client, own, contract_id, channel="sandbox")
    assert sandbox.status_code == 409 and sandbox.json()["rule"] == "EXC-DLV-SANDBOX"


def test_a_purpose_the_policy_does_not_permit_gets_no_token(client, world, buyer, h):
    refused = take(client, h, world.contract_of(buyer), purpose="public_governance")
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["rule"] == "EXC-DLV-POLICY"
    assert "public_governance" in problem["detail"]
    empty = take(client, h, world.contract_of(buyer), purpose="  ")
    assert empty.status_code == 422 and empty.json()["field"] == "purpose"
    odd = take(client, h, world.contract_of(buyer), purpose="research", spatial="地球")
    assert odd.status_code == 422


def test_the_policy_is_asked_again_at_each_delivery(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    issued = take(client, h, contract_id).json()
    with world.db.write() as s:
        contract = s.get(ExchangeContract, contract_id)
        policy = dict(contract.policy)
        permission = dict(policy["permission"][0])
        permission["constraint"] = [
            *permission["constraint"],
            {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2020-01-01"},
        ]
        policy["permission"] = [permission]
        contract.policy = policy
    refused = client.get(link(issued), headers=h)
    assert refused.status_code == 403
    problem = refused.json()
    assert code(problem) == "policy-denied"
    assert {"EXC-DLV-POLICY", "POL-DATETIME"} <= set(problem["rules"])
    assert problem["reasons"]
    (row,) = log(world, contract_id)
    assert row.decision == "refused" and "POL-DATETIME" in row.rules
    assert row.reasons and {"rule", "en", "zh"} <= set(row.reasons[0])


def test_the_policy_counts_deliveries(client, world, h, buyer):
    extra = [{"leftOperand": "count", "operator": "lteq", "rightOperand": 2}]
    from delivery_support import delivery_policy

    owner = world.buyers[2]
    contract_id = world.open(owner, policy=delivery_policy(world.asset_id, extra=extra))
    own = bearer(client, owner)
    issued = take(client, own, contract_id).json()
    assert client.get(link(issued), headers=own).status_code == 200
    assert client.get(link(issued), headers=own).status_code == 200
    third = client.get(link(issued), headers=own)
    assert third.status_code == 403 and "POL-COUNT" in third.json()["rules"]


def test_a_parquet_download_carries_the_mark_in_its_metadata(client, world, buyer, h):
    issued = take(client, h, world.contract_of(buyer)).json()
    d = client.get(link(issued) + "?format=parquet", headers=h)
    assert d.status_code == 200
    table = pq.read_table(io.BytesIO(d.content))
    assert table.column_names == DELIVERED
    assert table.num_rows == 256
    (row,) = log(world, world.contract_of(buyer))
    assert table.schema.metadata[b"datafactor.mark"].decode() == row.mark
    assert row.format == "parquet" and row.bytes == len(d.content)
    bad = client.get(link(issued) + "?format=xlsx", headers=h)
    assert bad.status_code == 422


def test_tokens_in_use_are_limited_per_contract(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    for _ in range(5):
        assert take(client, h, contract_id).status_code == 201
    sixth = take(client, h, contract_id)
    assert sixth.status_code == 409 and sixth.json()["rule"] == "EXC-DLV-TOKEN"
    listed = client.get(f"/api/v1/deliveries/tokens?contract={contract_id}", headers=h).json()
    assert listed["total"] == 5 and all("secret" not in t for t in listed["items"])
    client.delete(f"/api/v1/deliveries/tokens/{listed['items'][0]['id']}", headers=h)
    assert take(client, h, contract_id).status_code == 201


# ------------------------------------------------------------------------------- API pull


def pull(client, secret, **params):
    return client.get(
        "/api/v1/deliveries/pull", headers={"Authorization": f"Bearer {secret}"}, params=params
    )


def test_api_pull_returns_only_the_permitted_fields_and_counts_each_call(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    issued = take(client, h, contract_id, channel="api", purpose="credit_finance").json()
    assert issued["secret"].startswith("dfx_api_") and issued["max_uses"] is None
    assert "curl" in issued["example"] and issued["url"].endswith("/api/v1/deliveries/pull")
    first = pull(client, issued["secret"])
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["fields"] == DELIVERED and page["omitted_fields"] == [BANNED]
    real = meter_rows()
    assert [list(item.values()) for item in page["items"]] == [r[:6] for r in real[:100]]
    assert page["next_offset"] == 100
    second = pull(client, issued["secret"], offset=230, limit=50).json()
    assert len(second["items"]) == 10 and second["next_offset"] is None
    some = pull(client, issued["secret"], fields="日期,站点", limit=2).json()
    assert some["items"] == [{"日期": r[0], "站点": r[1]} for r in real[:2]]
    banned = pull(client, issued["secret"], fields=f"日期,{BANNED}")
    assert banned.status_code == 403 and code(banned.json()) == "policy-denied"
    unknown = pull(client, issued["secret"], fields="日期,电压")
    assert unknown.status_code == 422
    with world.db.read() as s:
        assert delivery.allowed_calls(s, contract_id) == 3  # what a metered contract pays for
    rows = log(world, contract_id)
    assert [r.decision for r in rows] == ["allowed", "allowed", "allowed", "refused"]
    assert rows[0].rows == 100 and rows[0].content_hash and rows[0].mark is None


def test_pull_needs_the_pull_token_not_a_login(client, world, buyer, h):
    login = pull(client, h["Authorization"].split()[1])
    assert login.status_code == 401 and code(login.json()) == "invalid-pull-token"
    nothing = client.get("/api/v1/deliveries/pull")
    assert nothing.status_code == 401
    download = take(client, h, world.contract_of(buyer)).json()
    assert pull(client, download["secret"]).status_code == 401


def test_pull_is_rate_limited_per_token(client, world, buyer, h, monkeypatch):
    rules = delivery.delivery_rules()
    monkeypatch.setattr(
        delivery, "delivery_rules", lambda: dataclasses.replace(rules, rate_per_minute=3)
    )
    contract_id = world.contract_of(buyer)
    one = take(client, h, contract_id, channel="api").json()
    two = take(client, h, contract_id, channel="api").json()
    for _ in range(3):
        assert pull(client, one["secret"], limit=1).status_code == 200
    limited = pull(client, one["secret"], limit=1)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["rule"] == "EXC-DLV-RATE"
    assert pull(client, two["secret"], limit=1).status_code == 200  # per token
    assert len(log(world, contract_id)) == 4  # a 429 is not a delivery


def test_pull_is_refused_once_the_contract_has_ended_or_the_token_is_revoked(
    client, world, buyer, h
):
    contract_id = world.contract_of(buyer)
    issued = take(client, h, contract_id, channel="api").json()
    client.delete(f"/api/v1/deliveries/tokens/{issued['id']}", headers=h)
    revoked = pull(client, issued["secret"])
    assert revoked.status_code == 409 and code(revoked.json()) == "token-revoked"
    fresh = take(client, h, contract_id, channel="api").json()
    set_contract(world, contract_id, state="completed")
    ended = pull(client, fresh["secret"])
    assert ended.status_code == 409 and ended.json()["rule"] == "EXC-DLV-ACTIVE"
    assert [r.decision for r in log(world, contract_id)] == ["refused", "refused"]


def test_a_metered_contract_stops_when_its_prepaid_calls_are_used_up(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    with world.db.write() as s:
        contract = s.get(ExchangeContract, contract_id)
        document = dict(contract.document)
        document["object"] = {**document["object"], "price_model": "metered"}
        contract.document, contract.quantity = document, 2
    issued = take(client, h, contract_id, channel="api").json()
    assert pull(client, issued["secret"], limit=1).status_code == 200
    assert pull(client, issued["secret"], limit=1).status_code == 200
    third = pull(client, issued["secret"], limit=1)
    assert third.status_code == 409 and third.json()["rule"] == "EXC-DLV-QUOTA"
    with world.db.read() as s:
        assert delivery.allowed_calls(s, contract_id) == 2  # what settlement charges


def test_the_api_token_lives_at_most_to_the_contracts_end(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    today = utcnow().date()
    set_contract(world, contract_id, term_end=today + timedelta(days=3))
    issued = take(client, h, contract_id, channel="api").json()
    with world.db.read() as s:
        token = s.get(ExchangeDeliveryToken, issued["id"])
        assert token.expires_at <= utcnow() + timedelta(days=4, hours=1)


# ----------------------------------------------------------------------------------- log


def test_the_log_is_filtered_and_read_by_the_parties_and_the_exchange(client, world, buyer, h):
    contract_id = world.contract_of(buyer)
    issued = take(client, h, contract_id).json()
    client.get(link(issued), headers=h)
    client.get(link(issued) + "?format=xml", headers=h)  # bad input: not a delivery
    operator = client.get("/api/v1/deliveries", headers=bearer(client, world.operator)).json()
    assert operator["total"] == 1 and operator["items"][0]["mark"]
    allowed = client.get("/api/v1/deliveries?decision=allowed", headers=h).json()
    refused = client.get("/api/v1/deliveries?decision=refused", headers=h).json()
    assert (allowed["total"], refused["total"]) == (1, 0)
    other = client.get("/api/v1/deliveries", headers=bearer(client, world.buyers[1])).json()
    assert other["total"] == 0
