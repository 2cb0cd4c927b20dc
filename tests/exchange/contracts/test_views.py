"""The contract pages over HTTP, on both databases: my contracts with filters, one contract
(terms, policy, deadline, signatures, history, forms for what the reader may do, the PDF link),
signing only after the confirmation box, the exchange's disputes queue; another party's contract
is not found."""

from __future__ import annotations

import re

from contracts_support import deliver, engine_policy, sign_all
from factories import console_login

from datafactor.db import utcnow
from datafactor.exchange import contracts
from datafactor.exchange.models import ExchangeListing


def test_my_contracts_page_lists_and_filters(client, world, open_for):
    contract_id = open_for(now=utcnow())
    console_login(client, world.buyer, "/exchange/contracts")
    page = client.get("/exchange/contracts")
    assert page.status_code == 200
    assert f'data-contract="{contract_id}"' in page.text
    assert 'data-status="accepted"' in page.text
    assert (
        f'data-contract="{contract_id}"' not in client.get("/exchange/contracts?status=active").text
    )
    assert (
        f'data-contract="{contract_id}"' not in client.get("/exchange/contracts?role=seller").text
    )
    assert 'data-testid="contracts-disputes"' not in page.text
    console_login(client, world.outsider, "/exchange/contracts")
    assert f'data-contract="{contract_id}"' not in client.get("/exchange/contracts").text
    assert client.get(f"/exchange/contracts/{contract_id}").status_code == 404
    assert client.get(f"/exchange/contracts/{contract_id}/pdf").status_code == 404


def test_signing_on_the_page_needs_the_box_ticked(client, world, open_for):
    with world.db.read() as s:
        asset_id = s.get(ExchangeListing, world.listing_id).asset_id
    contract_id = open_for(now=utcnow(), policy=engine_policy(asset_id))
    csrf = console_login(client, world.buyer, "/exchange/contracts")
    page = client.get(f"/exchange/contracts/{contract_id}")
    assert page.status_code == 200
    for testid in ("contract-sign", "contract-document", "contract-terminate", "contract-pdf"):
        assert f'data-testid="{testid}"' in page.text
    assert 'data-testid="contract-deadline"' in page.text
    assert re.search(r'data-testid="contract-policy"><li>[^<]*产业发展', page.text)
    refused = client.post(f"/exchange/contracts/{contract_id}/sign", data={"csrf_token": csrf})
    assert refused.status_code == 422
    assert 'data-testid="contract-error"' in refused.text and "EXC-CONTRACT-SIGN" in refused.text
    signed = client.post(
        f"/exchange/contracts/{contract_id}/sign",
        data={"csrf_token": csrf, "confirm": "yes"},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    page = client.get(f"/exchange/contracts/{contract_id}").text
    assert 'data-role="buyer" data-signed="yes"' in page
    assert 'data-role="seller" data-signed="no"' in page
    assert 'data-testid="contract-sign"' not in page  # signed once, nothing left to sign


def test_the_pdf_downloads_from_the_page(client, world, open_for):
    contract_id = open_for(now=utcnow())
    console_login(client, world.seller, "/exchange/contracts")
    r = client.get(f"/exchange/contracts/{contract_id}/pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")


def test_dispute_and_decision_through_the_pages(client, world, open_for):
    now = utcnow()
    contract_id = open_for(now=now)
    sign_all(world, contract_id, now=now)
    deliver(world, contract_id, now=now)
    csrf = console_login(client, world.buyer, "/exchange/contracts")
    page = client.get(f"/exchange/contracts/{contract_id}").text
    assert 'data-testid="contract-confirm"' in page and 'data-testid="contract-dispute"' in page
    empty = client.post(
        f"/exchange/contracts/{contract_id}/dispute", data={"csrf_token": csrf, "grounds": ""}
    )
    assert empty.status_code == 422
    r = client.post(
        f"/exchange/contracts/{contract_id}/dispute",
        data={"csrf_token": csrf, "grounds": "缺少园区B的数据"},
        follow_redirects=False,
    )
    assert r.status_code == 303

    csrf = console_login(client, world.operator, "/exchange/contracts")
    queue = client.get("/exchange/contracts/disputes")
    assert queue.status_code == 200
    assert f'data-contract="{contract_id}"' in queue.text and "缺少园区B的数据" in queue.text
    page = client.get(f"/exchange/contracts/{contract_id}").text
    assert 'data-testid="contract-resolve"' in page
    bad = client.post(
        f"/exchange/contracts/{contract_id}/resolve",
        data={"csrf_token": csrf, "outcome": "split", "pay_yuan": "三十", "reason": "部分交付"},
    )
    assert bad.status_code == 422 and "EXC-CONTRACT-DISPUTE" in bad.text
    r = client.post(
        f"/exchange/contracts/{contract_id}/resolve",
        data={"csrf_token": csrf, "outcome": "split", "pay_yuan": "30.00", "reason": "部分交付"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with world.db.read() as s:
        row = contracts.get_contract(s, world.p(world.operator), contract_id)
        assert row.state == "completed"
    console_login(client, world.buyer, "/exchange/contracts")
    assert client.get("/exchange/contracts/disputes").status_code == 403
