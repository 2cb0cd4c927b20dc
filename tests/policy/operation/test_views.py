"""The public data operation console over HTTP (TestClient): each role's pages and forms, with
CSRF, in Chinese by default; a refused form shows the reason and its rule."""

from __future__ import annotations

import re

import pytest
from factories import console_login
from operation_support import SELECTION, SIGNED, make_cast

from datafactor.policy.operation.api import operation_today
from datafactor.web.i18n import translations


def zh(msgid: str) -> str:
    return str(translations("zh_CN").gettext(msgid))


@pytest.fixture
def cast(app, db, settings):
    app.dependency_overrides[operation_today] = lambda: SIGNED
    yield make_cast(db, settings)
    app.dependency_overrides.pop(operation_today, None)


def test_every_role_does_its_part_in_the_console(client, cast):
    # The body signs an agreement with the form.
    csrf = console_login(client, cast.body, "/operation/agreements/new")
    page = client.get("/operation")
    assert 'data-testid="nav-operation"' in page.text and 'data-testid="op-sign-link"' in page.text
    form = client.get("/operation/agreements/new").text
    assert cast.asset_id in form and cast.operator.party_id in form
    r = client.post(
        "/operation/agreements",
        data={
            "csrf_token": csrf,
            "operator_id": cast.operator.party_id,
            "procedure": "public_tender",
            "reference": SELECTION.reference,
            "decided_on": SELECTION.decided_on.isoformat(),
            "record": SELECTION.record,
            "number": "NNSZF-SQYY-2026-001",
            "asset_ids": cast.asset_id,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    agreement_url = r.headers["location"]
    page = client.get(agreement_url).text
    assert "NNSZF-SQYY-2026-001" in page and zh("Active") in page
    assert 'data-testid="op-suspend"' in page

    # The bureau sets the cap (typed in yuan) and the rate (in percent).
    csrf = console_login(client, cast.bureau, "/operation/fees")
    r = client.post(
        "/operation/caps",
        data={
            "csrf_token": csrf,
            "unit": "api_call",
            "amount": "0.50",
            "effective_from": SIGNED.isoformat(),
            "source_document": "桂发改价格〔2026〕12号",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = client.post(
        "/operation/rates",
        data={
            "csrf_token": csrf,
            "rate_percent": "8",
            "effective_from": SIGNED.isoformat(),
            "source_document": "桂发改价格〔2026〕12号",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert "8.00 %" in client.get("/operation/fees").text

    # The operator publishes a fee; above the cap it is refused with the rule.
    csrf = console_login(client, cast.operator, "/operation/fees")
    r = client.post(
        "/operation/fees",
        data={"csrf_token": csrf, "asset_id": cast.asset_id, "unit": "api_call", "amount": "0.60"},
    )
    assert r.status_code == 422 and "OPS-FEE-CAP" in r.text and 'data-testid="error"' in r.text
    r = client.post(
        "/operation/fees",
        data={"csrf_token": csrf, "asset_id": cast.asset_id, "unit": "api_call", "amount": "0.40"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text

    # A user sees the published fee and asks for a paid use.
    csrf = console_login(client, cast.user, "/operation/uses")
    assert "0.40" in client.get("/operation").text
    uses = client.get("/operation/uses").text
    entry = re.search(r'<option value="([^"]+/[^"]+)"', uses).group(1)
    r = client.post(
        "/operation/uses",
        data={
            "csrf_token": csrf,
            "entry": entry,
            "use_class": "industry_development",
            "purpose": "product_development",
            "term_start": SIGNED.isoformat(),
            "term_end": "2026-12-31",
            "unit": "api_call",
            "quantity": "2,000",
            "purpose_note": "小微企业信贷风控模型",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert zh("Awaiting the operator's decision") in client.get("/operation/uses").text
    # Asking for download is refused, whatever the class.
    r = client.post(
        "/operation/uses",
        data={
            "csrf_token": csrf,
            "entry": entry,
            "use_class": "public_welfare",
            "purpose": "public_welfare",
            "channels": "download",
            "unit_fee": "1.00",
        },
    )
    assert r.status_code == 422 and ("OPS-IN-DOMAIN" in r.text or "OPS-FREE-USE" in r.text)

    # The operator approves it, records a cost and reads the report.
    csrf = console_login(client, cast.operator, "/operation/uses")
    page = client.get("/operation/uses").text
    use_id = re.search(r'action="/operation/uses/([^/]+)/decision"', page).group(1)
    r = client.post(
        f"/operation/uses/{use_id}/decision",
        data={"csrf_token": csrf, "approve": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = client.post(
        "/operation/costs",
        data={"csrf_token": csrf, "year": "2026", "category": "personnel", "amount": "500"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = client.post(
        "/operation/costs",
        data={"csrf_token": csrf, "year": "2026", "category": "personnel", "amount": "-5"},
    )
    assert r.status_code == 422 and "OPS-MONEY" in r.text
    report = client.get(f"/operation/reports/{cast.operator.party_id}/2026").text
    assert 'data-testid="op-income">800.00<' in report  # 2,000 calls at 0.40
    assert 'data-testid="op-allowed">540.00<' in report  # 500.00 + 8 %
    assert 'data-testid="op-excess">260.00<' in report
    assert "NNSZF-SQYY-2026-001" in report
    csv_text = client.get(f"/operation/reports/{cast.operator.party_id}/2026/report.csv")
    assert csv_text.status_code == 200 and "260.00" in csv_text.content.decode("utf-8-sig")

    # The body suspends the agreement from its page, with a reason.
    csrf = console_login(client, cast.body, agreement_url)
    r = client.post(
        agreement_url + "/suspend",
        data={"csrf_token": csrf, "reason": "安全检查"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert zh("Suspended") in client.get(agreement_url).text
    r = client.post(agreement_url + "/terminate", data={"csrf_token": csrf, "reason": ""})
    assert r.status_code == 422


def test_pages_refuse_other_parties_and_forms_need_csrf(client, cast):
    from operation_support import sign

    agreement_id = sign(client.app.state.db, cast)
    console_login(client, cast.user, "/operation")
    assert client.get(f"/operation/agreements/{agreement_id}").status_code == 404
    assert client.get(f"/operation/reports/{cast.operator.party_id}/2026").status_code == 404
    r = client.post("/operation/uses", data={"csrf_token": "forged", "entry": "x/y"})
    assert r.status_code == 403
    # An operator signs no agreement (an enterprise may: as a public enterprise's body).
    console_login(client, cast.operator, "/operation")
    assert client.get("/operation/agreements/new").status_code == 403


def test_the_console_speaks_english_on_request(client, cast):
    console_login(client, cast.operator, "/operation")
    client.get("/lang/en", follow_redirects=False)
    page = client.get("/operation/fees").text
    assert "Published fees and caps" in page and "No cap is set yet" in page


def test_odd_numbers_typed_in_forms_are_refused_with_the_reason(client, cast):
    from operation_support import sign

    sign(client.app.state.db, cast)
    csrf = console_login(client, cast.bureau, "/operation/fees")
    for amount in ("1e5000", "sNaN", "1e999999", "Infinity", "12.345"):
        r = client.post(
            "/operation/caps",
            data={"csrf_token": csrf, "unit": "api_call", "amount": amount, "source_document": "x"},
        )
        assert r.status_code == 422 and "OPS-MONEY" in r.text, amount
    r = client.post(
        "/operation/rates",
        data={"csrf_token": csrf, "rate_percent": "sNaN", "source_document": "x"},
    )
    assert r.status_code == 422 and "OPS-CAP-SETTING" in r.text
    # Full-width digits typed with a Chinese input method are read as digits.
    r = client.post(
        "/operation/caps",
        data={"csrf_token": csrf, "unit": "api_call", "amount": "０.５０", "source_document": "x"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    csrf = console_login(client, cast.operator, "/operation/costs")
    for year in ("9" * 30, "²⁰²⁶x", "-1"):
        r = client.post(
            "/operation/costs",
            data={"csrf_token": csrf, "year": year, "category": "personnel", "amount": "1"},
        )
        assert r.status_code == 422, year
    r = client.post("/operation/reports", data={"csrf_token": csrf, "year": "9" * 30})
    assert r.status_code == 422


def test_a_body_reads_its_part_of_the_filed_report_and_the_operator_may_refuse(client, cast):
    from datetime import date

    from operation_support import sign

    from datafactor.policy.operation import services

    db = client.app.state.db
    agreement_id = sign(db, cast)
    console_login(client, cast.body, "/operation")
    assert client.get(f"/operation/reports/{cast.operator.party_id}/2026").status_code == 404
    assert 'data-testid="op-report-body-note"' in client.get("/operation/reports").text
    with db.write() as s:
        services.file_report(s, cast["operator"], 2026, today=date(2027, 1, 5))
    page = client.get(f"/operation/reports/{cast.operator.party_id}/2026").text
    assert 'data-testid="op-report-body-scope"' in page and "NNSZF-SQYY-2026-001" in page
    assert 'data-testid="op-allowed"' not in page
    # The operator sees the agreement signed with it and may terminate it with a reason.
    csrf = console_login(client, cast.operator, f"/operation/agreements/{agreement_id}")
    page = client.get(f"/operation/agreements/{agreement_id}").text
    assert (
        'data-testid="op-operator-terminate-form"' in page
        and 'data-testid="op-suspend"' not in page
    )
    r = client.post(
        f"/operation/agreements/{agreement_id}/terminate",
        data={"csrf_token": csrf, "reason": "不接受该协议"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert zh("Terminated") in client.get(f"/operation/agreements/{agreement_id}").text
