"""The registry's review and public pages over HTTP, on both databases: the registrar's queue
(refused to others), the notice board with an objection lodged and decided through the forms, the
certificate page with its chain of title and lineage graph, receipts and the public verification
page (no login) for a good number, an unknown number and a tampered receipt."""

from __future__ import annotations

import base64
import json
import re
from datetime import date, timedelta

import pytest
from factories import console_login
from fastapi.testclient import TestClient
from registry_support import LATER, SCOPE, TODAY, initial, new_asset, principal, scanned_version

from datafactor import ledger
from datafactor.registry import Action, RegistrationType
from datafactor.registry import services as registry
from datafactor.registry.api import registry_today
from datafactor.registry.views_review import GraphNode, layout

NUMBER = "GX-DR-2026-000001"


@pytest.fixture
def clock(app):  # type: ignore[no-untyped-def]
    now = {"today": TODAY}
    app.dependency_overrides[registry_today] = lambda: now["today"]
    yield now
    app.dependency_overrides.pop(registry_today, None)


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


def browser_for(app, actor) -> tuple[TestClient, str]:
    """A client logged in as ``actor`` (its own cookies) and its CSRF token."""
    client = TestClient(app, raise_server_exceptions=False)
    return client, console_login(client, actor, "/")


def submitted(db, settings, issuer, enterprise) -> tuple[str, str]:
    """An initial registration of the enterprise's data, waiting in substantive review."""
    who = principal(db, enterprise)
    asset_id = new_asset(db, who, scanned_version(db, settings, who))
    with db.write() as s:
        row = registry.submit_application(s, who, initial(db, asset_id), issuer=issuer, today=TODAY)
        assert row.state == "substantive_review", row.decision
        return row.id, asset_id


def act(db, actor, application_id, action, issuer, today=TODAY) -> str:
    with db.write() as s:
        row = registry.act(
            s, principal(db, actor), application_id, action, issuer=issuer, today=today
        )
        return row.state


def certified(db, settings, issuer, enterprise, operator) -> tuple[str, str]:
    app_id, asset_id = submitted(db, settings, issuer, enterprise)
    assert act(db, operator, app_id, Action.APPROVE_TO_NOTICE, issuer) == "public_notice"
    assert act(db, operator, app_id, Action.CLOSE_NOTICE, issuer, today=LATER) == "certified"
    return app_id, asset_id


def test_queue_is_the_registrars_and_marks_what_is_overdue(
    app, clock, db, settings, issuer, enterprise, operator
):
    app_id, _ = submitted(db, settings, issuer, enterprise)
    registrar, _ = browser_for(app, operator)
    r = registrar.get("/registry/queue")
    assert r.status_code == 200, r.text
    assert f'data-application="{app_id}"' in r.text
    assert "南宁供电量数据" in r.text and 'data-overdue="true"' not in r.text
    # Filters by state, type and track; the HTMX request gets only the table.
    r = registrar.get(
        "/registry/queue", params={"state": "substantive_review", "track": "standard"}
    )
    assert f'data-application="{app_id}"' in r.text
    r = registrar.get("/registry/queue", params={"type": "transfer"})
    assert app_id not in r.text and 'data-testid="queue-empty"' in r.text
    partial = registrar.get("/registry/queue", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and 'data-testid="queue-table"' in partial.text
    assert registrar.get("/registry/queue", params={"state": "bogus"}).status_code == 422
    # Three working days in substantive review; two weeks later it is overdue and comes first.
    clock["today"] = TODAY + timedelta(days=14)
    r = registrar.get("/registry/queue")
    assert 'data-overdue="true"' in r.text and 'data-testid="queue-overdue-count"' in r.text

    owner, _ = browser_for(app, enterprise)
    refused = owner.get("/registry/queue")
    assert refused.status_code == 403
    assert "registrar" in refused.text.lower() or "登记审核员" in refused.text
    assert app_id not in refused.text
    assert TestClient(app).get("/registry/queue", follow_redirects=False).status_code == 303


def test_objection_lodged_and_decided_through_the_forms(
    app, clock, db, settings, issuer, enterprise, other_enterprise, operator
):
    app_id, _ = submitted(db, settings, issuer, enterprise)
    assert act(db, operator, app_id, Action.APPROVE_TO_NOTICE, issuer) == "public_notice"
    rival, csrf = browser_for(app, other_enterprise)
    board = rival.get("/registry/notices")
    assert board.status_code == 200
    assert f'data-application="{app_id}"' in board.text and "南宁供电量数据" in board.text
    assert "2026-03-05" in board.text and 'data-days="3"' in board.text  # 3 working days
    assert 'data-testid="objection-form"' in board.text
    # The applicant sees its own notice but no objection form for it.
    owner, _ = browser_for(app, enterprise)
    assert 'data-testid="objection-form"' not in owner.get("/registry/notices").text

    # No grounds: refused with the rule, the statement kept in the form.
    r = rival.post(
        f"/registry/notices/{app_id}/objections",
        data={"csrf_token": csrf, "statement": "这些站点的数据归我方所有", "evidence": "合同"},
        follow_redirects=False,
    )
    assert r.status_code == 422
    assert "REG-OBJECTION-GROUNDS" in r.text and "这些站点的数据归我方所有" in r.text
    # Without the CSRF token nothing is lodged.
    r = rival.post(
        f"/registry/notices/{app_id}/objections",
        data={"grounds": "title_dispute", "statement": "x" * 20, "evidence": "a"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    r = rival.post(
        f"/registry/notices/{app_id}/objections",
        data={
            "csrf_token": csrf,
            "grounds": ["title_dispute", "unlawful_source"],
            "statement": "这些站点的数据归我方所有",
            "evidence": "采集合同\n站点清单",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    objection_url = r.headers["location"]
    assert objection_url.startswith("/registry/objections/")
    page = rival.get(objection_url)
    assert page.status_code == 200 and 'data-testid="outcome-pending"' in page.text
    assert "采集合同" in page.text and 'data-testid="decide-form"' not in page.text
    assert 'data-testid="my-objections"' in rival.get("/registry/notices").text

    registrar, rcsrf = browser_for(app, operator)
    queue = registrar.get("/registry/queue", params={"state": "objection"})
    assert objection_url in queue.text
    page = registrar.get(objection_url)
    assert 'data-testid="decide-form"' in page.text
    # A decision without reasons is refused; then the registrar dismisses it.
    r = registrar.post(
        objection_url + "/decision",
        data={"csrf_token": rcsrf, "substantiated": "no", "reason": ""},
        follow_redirects=False,
    )
    assert r.status_code == 422 and 'data-testid="error"' in r.text
    r = registrar.post(
        objection_url + "/decision",
        data={
            "csrf_token": rcsrf,
            "substantiated": "no",
            "reason": "异议人未能证明其采集了这些数据",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    # The objector sees the outcome and the reason; the notice goes on.
    page = rival.get(objection_url)
    assert 'data-outcome="dismissed"' in page.text
    assert "异议人未能证明其采集了这些数据" in page.text
    with db.read() as s:
        assert registry.get_application(s, principal(db, enterprise), app_id).state == (
            "public_notice"
        )
    # A stranger to the objection does not see it.
    stranger_page = owner.get("/registry/objections/not-an-id")
    assert stranger_page.status_code == 404


def test_certificate_page_shows_chain_graph_receipt(
    app, clock, db, settings, issuer, enterprise, other_enterprise, operator
):
    _, asset_id = certified(db, settings, issuer, enterprise, operator)
    clock["today"] = LATER
    # The holder licenses a processing-use right to the rival: the graph grows a licence edge.
    holder = principal(db, enterprise)
    with db.read() as s:
        holding_id = registry.verify_certificate(s, NUMBER, today=LATER).certificate.right_id
    with db.write() as s:
        row = registry.submit_application(
            s,
            holder,
            registry.ApplicationDraft(
                type=RegistrationType.LICENCE,
                asset_id=asset_id,
                right_id=holding_id,
                counterparty_id=other_enterprise.party_id,
                scope=SCOPE,
                term_start=LATER,
                term_end=date(2027, 4, 20),
            ),
            issuer=issuer,
            today=LATER,
        )
        licence_app = row.id
        assert row.state == "substantive_review", row.decision
    assert act(db, operator, licence_app, Action.APPROVE_TO_NOTICE, issuer, LATER) == (
        "public_notice"
    )
    later = LATER + timedelta(days=30)
    clock["today"] = later
    assert act(db, operator, licence_app, Action.CLOSE_NOTICE, issuer, later) == "certified"

    owner, _ = browser_for(app, enterprise)
    listing = owner.get("/registry/certificates")
    assert listing.status_code == 200 and NUMBER in listing.text
    page = owner.get(f"/registry/certificates/{NUMBER.lower()}")
    assert page.status_code == 200, page.text
    assert 'data-status="active"' in page.text and 'data-testid="signature-valid"' in page.text
    assert 'data-testid="chain-of-title"' in page.text
    assert re.search(r'href="/ledger/entries/\d+"', page.text)
    assert f"/registry/certificates/{NUMBER}/pdf" in page.text
    # The lineage graph: the holding right (current) with the licence drawn from it.
    graph = page.text[page.text.index('data-testid="rights-graph"') :]
    graph = graph[: graph.index("</svg>")]
    assert graph.count('class="node"') == 2 and 'data-kind="licensed"' in graph
    assert f'data-node="{holding_id}"' in graph and 'data-current="true"' in graph
    assert "/verify/GX-DR-2026-000002" in graph  # the licensee's certificate: public page

    # The licensee's certificate page: its chain runs up to the holding right.
    rival, _ = browser_for(app, other_enterprise)
    licence = rival.get("/registry/certificates/GX-DR-2026-000002")
    assert licence.status_code == 200
    chain = licence.text[licence.text.index('data-testid="chain-of-title"') :]
    assert chain.count("data-right=") == 2
    # Another party's certificate page is not shown; the public page is.
    refused = rival.get(f"/registry/certificates/{NUMBER}")
    assert refused.status_code == 404 and f"/verify/{NUMBER}" in refused.text

    receipt = owner.get(f"/registry/certificates/{NUMBER}/receipt")
    assert receipt.status_code == 200
    assert "attachment" in receipt.headers["content-disposition"]
    doc = receipt.json()
    assert ledger.verify_receipt(ledger.Receipt.from_json(doc)).ok
    assert rival.get(f"/registry/certificates/{NUMBER}/receipt").status_code == 403
    # The certificate PDF (its QR code points at the public page): the holder's, not the rival's.
    pdf = owner.get(f"/registry/certificates/{NUMBER}/pdf")
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert rival.get(f"/registry/certificates/{NUMBER}/pdf").status_code == 403

    # Public verification, no login: a good number, a typed one, an unknown one.
    public = TestClient(app, raise_server_exceptions=False)
    r = public.get(f"/verify/{NUMBER}")
    assert r.status_code == 200
    assert 'data-status="active"' in r.text and 'data-testid="chain-of-title"' in r.text
    assert holding_id in r.text and "南宁供电量数据" not in r.text  # ids only in public
    r = public.get("/verify", params={"number": " gx-dr-2026-000001 "}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/verify/{NUMBER}"
    r = public.get("/verify/GX-DR-2026-000777")
    assert r.status_code == 404 and "REG-CERT-NUMBER" in r.text
    assert 'data-testid="verify-help"' in r.text
    assert public.get("/verify", params={"number": "12345"}).status_code == 422

    # An uploaded receipt: the good one verifies, a tampered one is refused with advice.
    r = public.post("/verify", files={"receipt": ("r.json", json.dumps(doc), "application/json")})
    assert r.status_code == 200 and 'data-ok="true"' in r.text
    assert 'data-status="active"' in r.text
    forged = json.loads(base64.b64decode(doc["entry"]))
    forged["payload"]["right"]["holder_id"] = other_enterprise.party_id
    tampered = {**doc, "entry": base64.b64encode(ledger.canonical_json(forged)).decode()}
    tampered.pop("leaf_hash")
    r = public.post(
        "/verify", files={"receipt": ("r.json", json.dumps(tampered), "application/json")}
    )
    assert r.status_code == 422 and 'data-ok="false"' in r.text
    assert 'data-testid="receipt-problems"' in r.text
    r = public.post("/verify", files={"receipt": ("r.json", b"not json", "application/json")})
    assert r.status_code == 422 and 'data-ok="false"' in r.text
    r = public.post("/verify", files={"receipt": ("r.json", b"", "application/json")})
    assert r.status_code == 400

    # After the log's key is rotated, a receipt taken before still verifies (old key retired,
    # not forgotten).
    from datafactor.ledger.services import rotate_key

    with db.write() as s:
        rotate_key(s, ledger.keys_for(settings))
    r = public.post("/verify", files={"receipt": ("r.json", json.dumps(doc), "application/json")})
    assert r.status_code == 200 and 'data-ok="true"' in r.text, r.text


def test_layout_is_layered_and_deterministic():
    def nodes():
        return [
            GraphNode("c", ("c", "", ""), "right-active", parents=[("a", "licensed")]),
            GraphNode(
                "p", ("p", "", ""), "right-active", parents=[("a", "derived"), ("b", "derived")]
            ),
            GraphNode("b", ("b", "", ""), "right-active"),
            GraphNode("a", ("a", "", ""), "right-active"),
        ]

    first, second = layout(nodes(), {}), layout(list(reversed(nodes())), {})
    place = {n.id: (n.layer, n.row, n.x, n.y) for n in first.nodes}
    assert place == {n.id: (n.layer, n.row, n.x, n.y) for n in second.nodes}
    assert place["a"][0] == place["b"][0] == 0 and place["c"][0] == place["p"][0] == 1
    assert len(first.edges) == 3 and first.width > 0 and first.height > 0


def test_the_public_receipt_check_refuses_what_it_cannot_read_before_reading_it(client):
    """No login is needed, so the upload is bounded before it is parsed (a large body is refused
    by its declared length, never spooled), and a hostile JSON nesting is 'not a receipt'."""
    huge = client.post("/verify", files={"receipt": ("r.json", b"x" * (2 * 1024 * 1024))})
    assert huge.status_code == 413 and 'data-testid="error"' in huge.text
    nested = client.post("/verify", files={"receipt": ("r.json", b"[" * 200_000)})
    assert nested.status_code == 422
    for path in ("/ledger/receipt",):
        assert client.post(path, files={"receipt": ("r.json", b"x" * (2 << 20))}).status_code == 413
