"""The data-trust console pages over HTTP, on both databases: the settlor drafts and signs, the
trustee accepts and records income, the beneficiary sees its own line only; bad input is
re-rendered with its rule and nothing written; another party gets 404; both languages."""

from __future__ import annotations

import re

import pytest
import registry_support as rs
from factories import console_login
from grants_support import certify_licence
from sqlalchemy import func, select
from trusts_support import IN_TERM, SCOPE, Trust, established, make_trust

from datafactor.db import Database
from datafactor.policy.trusts import services
from datafactor.policy.trusts.api import trusts_today
from datafactor.policy.trusts.models import PolicyTrustDeed, PolicyTrustIncome
from datafactor.registry import services as registry
from datafactor.settings import Settings
from datafactor.web.i18n import translations


def zh(msgid: str) -> str:
    """The Chinese of a msgid (its English until the catalogue carries it)."""
    return str(translations("zh_CN").gettext(msgid))


@pytest.fixture
def trust(db: Database, settings: Settings, app) -> Trust:  # type: ignore[no-untyped-def]
    app.dependency_overrides[trusts_today] = lambda: IN_TERM
    yield make_trust(db, settings)
    app.dependency_overrides.pop(trusts_today, None)


def _codes(db: Database, *party_ids: str) -> dict[str, str]:
    with db.read() as s:
        return services.party_codes(s, party_ids)


def _form(trust: Trust, codes: dict[str, str], shares: str) -> dict[str, str | list[str]]:
    return {
        "title": "居民用电数据信托",
        "purpose": "以居民用电数据支持普惠金融",
        "trustee": codes[trust.trustee.party_id],
        "asset_ids": [trust.asset_id],
        "purposes": list(SCOPE["purposes"]),
        "regions": "450000",
        "delivery_modes": ["sandbox"],
        "term_start": "2026-04-01",
        "term_end": "2029-03-31",
        "trustee_fee_bp": "500",
        "beneficiaries": shares,
    }


def test_the_deed_from_draft_to_income_in_the_console(client, db: Database, trust: Trust) -> None:  # type: ignore[no-untyped-def]
    codes = _codes(db, trust.settlor.party_id, trust.trustee.party_id, trust.beneficiary.party_id)
    token = console_login(client, trust.actors["settlor"], "/trusts", "en")
    page = client.get("/trusts/new")
    assert page.status_code == 200
    assert trust.asset_id in page.text  # the registered asset is offered as trust property

    # Shares that do not add up: re-rendered with the rule, nothing written.
    bad = _form(
        trust,
        codes,
        f"{codes[trust.settlor.party_id]} 7000\n{codes[trust.beneficiary.party_id]} 2000",
    )
    r = client.post("/trusts/new", data={**bad, "csrf_token": token})
    assert r.status_code == 422
    assert 'data-testid="error-rule">' in r.text and "TRUST-SHARES" in r.text
    assert "add up to 9000 basis points" in r.text
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(PolicyTrustDeed)) == 0

    good = _form(
        trust,
        codes,
        f"{codes[trust.settlor.party_id]} 7000\n{codes[trust.beneficiary.party_id]} 3000",
    )
    r = client.post("/trusts/new", data={**good, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    deed_url = r.headers["location"]
    page = client.get(deed_url)
    assert 'data-state="draft"' in page.text and 'data-testid="sign-deed"' in page.text
    r = client.post(f"{deed_url}/sign", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert 'data-state="signed"' in client.get(deed_url).text

    # The trustee accepts: the term has started, so the deed is in effect at once.
    token = console_login(client, trust.actors["trustee"], "/trusts", "en")
    page = client.get(deed_url)
    assert 'data-testid="accept-deed"' in page.text
    client.post(f"{deed_url}/accept", data={"csrf_token": token})
    page = client.get(deed_url)
    assert 'data-state="active"' in page.text and 'data-testid="income-form"' in page.text
    r = client.post(
        f"{deed_url}/income",
        data={
            "csrf_token": token,
            "amount": "-3",
            "received_on": IN_TERM.isoformat(),
            "source": "other",
            "description": "x",
        },
    )
    assert r.status_code == 422  # not an amount
    r = client.post(
        f"{deed_url}/income",
        data={
            "csrf_token": token,
            "amount": "1000.01",
            "received_on": IN_TERM.isoformat(),
            "source": "other",
            "description": "数据服务收入",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(deed_url).text
    assert page.count('data-testid="distribution-line"') == 3
    assert "665.01" in page and "285.00" in page and "50.00" in page

    # The beneficiary sees the deed, its own line and its benefits — not the others'.
    console_login(client, trust.actors["beneficiary"], "/trusts", "en")
    page = client.get(deed_url).text
    assert page.count('data-testid="distribution-line"') == 1 and "285.00" in page
    assert "665.01" not in page
    assert 'data-testid="deed-grants"' not in page
    benefits = client.get("/trusts/benefits").text
    assert 'data-testid="benefit-pending">285.00' in benefits

    # A stranger is told there is no such deed.
    console_login(client, trust.actors["stranger"], "/trusts", "en")
    assert client.get(deed_url).status_code == 404
    assert 'data-testid="deed-row"' not in client.get("/trusts").text


def test_pages_speak_chinese_by_default_and_english_on_request(
    client, db: Database, trust: Trust
) -> None:  # type: ignore[no-untyped-def]
    deed_id = established(db, trust)
    console_login(client, trust.actors["trustee"], "/trusts")
    page = client.get(f"/trusts/{deed_id}").text
    assert zh("Income and distributions") in page
    assert zh("Record trust income") in page
    assert 'data-testid="nav-trusts"' in page
    console_login(client, trust.actors["trustee"], "/trusts", "en")
    page = client.get(f"/trusts/{deed_id}").text
    assert "Income and distributions" in page and "In effect" in page
    listing = client.get("/trusts?role=trustee").text
    assert f'data-deed="{deed_id}"' in listing
    assert f'data-deed="{deed_id}"' not in client.get("/trusts?role=settlor").text


def test_the_settlor_amends_and_the_trustee_proposes_to_end(
    client, db: Database, trust: Trust
) -> None:  # type: ignore[no-untyped-def]
    deed_id = established(db, trust)
    codes = _codes(db, trust.settlor.party_id, trust.beneficiary.party_id)
    token = console_login(client, trust.actors["settlor"], "/trusts", "en")
    page = client.get(f"/trusts/{deed_id}").text
    assert 'data-testid="amend-form"' in page
    assert codes[trust.beneficiary.party_id] in page  # the current shares, prefilled
    r = client.post(
        f"/trusts/{deed_id}/amend",
        data={
            "csrf_token": token,
            "beneficiaries": f"{codes[trust.settlor.party_id]} 5000\n{codes[trust.beneficiary.party_id]} 5000",
            "reason": "提高居民分成",
            "effective_on": "2026-05-10",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = client.get(f"/trusts/{deed_id}").text
    assert page.count('data-testid="split-version"') == 2
    token = console_login(client, trust.actors["trustee"], "/trusts", "en")
    client.post(f"/trusts/{deed_id}/terminate", data={"csrf_token": token, "reason": "业务调整"})
    page = client.get(f"/trusts/{deed_id}").text
    assert 'data-testid="termination-proposed"' in page and 'data-state="active"' in page
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(PolicyTrustIncome)) == 0


def test_the_trustee_grants_a_use_and_records_misuse_in_the_console(
    client, db: Database, settings: Settings, trust: Trust
) -> None:  # type: ignore[no-untyped-def]
    deed_id = established(db, trust)
    codes = _codes(db, trust.stranger.party_id)
    token = console_login(client, trust.actors["trustee"], "/trusts", "en")
    assert 'data-testid="grant-form"' in client.get(f"/trusts/{deed_id}").text
    grant = {
        "csrf_token": token,
        "asset_id": trust.asset_id,
        "grantee": codes[trust.stranger.party_id],
        "template": "sandbox-aggregates",
        "purposes": ["credit_finance"],
        "grant_start": IN_TERM.isoformat(),
        "grant_end": "2027-06-30",
        "fee": "20000.00",
        "purpose_note": "信贷风控",
    }
    # A template that contradicts the deed (API use under a sandbox-only deed) is refused.
    r = client.post(f"/trusts/{deed_id}/grants", data={**grant, "template": "public-welfare"})
    assert r.status_code == 422, r.text[:300]
    r = client.post(f"/trusts/{deed_id}/grants", data=grant, follow_redirects=False)
    assert r.status_code == 303, r.text[:2000]
    page = client.get(f"/trusts/{deed_id}").text
    match = re.search(r'data-testid="grant-row" data-grant="([^"]+)"', page)
    assert match and "20,000.00" in page
    assert 'data-testid="misuse-form"' not in page  # approved: its licence is not certified yet
    certify_licence(
        db,
        rs.principal(db, trust.actors["registrar"]),
        trust.trustee,
        match.group(1),
        registry.issuer_for(settings),
        IN_TERM,
    )
    assert 'data-testid="misuse-form"' in client.get(f"/trusts/{deed_id}").text
    r = client.post(
        f"/trusts/{deed_id}/misuse",
        data={"csrf_token": token, "grant_id": match.group(1), "description": "转售聚合结果"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(f"/trusts/{deed_id}").text
    assert 'data-testid="misuse-list"' in page and "转售聚合结果" in page


def test_the_draft_can_be_reopened_and_a_party_without_data_is_told(
    client, db: Database, trust: Trust
) -> None:  # type: ignore[no-untyped-def]
    from trusts_support import drafted

    deed_id = drafted(db, trust)
    console_login(client, trust.actors["settlor"], "/trusts", "en")
    page = client.get(f"/trusts/{deed_id}/edit").text
    assert 'data-testid="deed-form"' in page and "居民用电数据信托" in page
    assert f'value="{trust.asset_id}" checked' in page
    console_login(client, trust.actors["stranger"], "/trusts", "en")
    page = client.get("/trusts/new").text
    assert "holds no registered holding right" in page
    assert client.get(f"/trusts/{deed_id}/edit").status_code == 404


def test_only_the_settlor_opens_the_edit_form_of_its_draft(
    client, db: Database, trust: Trust
) -> None:  # type: ignore[no-untyped-def]
    """The edit form shows every beneficiary's identifier and share: a beneficiary of an
    established deed (who sees only its own share) never gets it, by GET or by a POST's
    re-rendered form; nor does the settlor once the deed is no longer a draft."""
    from factories import make_actor

    from datafactor.identity import PartyKind

    other = make_actor(db, PartyKind.INDIVIDUAL, name="黄测试")
    deed_id = established(
        db,
        trust,
        beneficiaries=(
            services.Share(trust.settlor.party_id, 6000),
            services.Share(trust.beneficiary.party_id, 3000),
            services.Share(other.party_id, 1000),
        ),
    )
    secret = _codes(db, other.party_id)[other.party_id]
    token = console_login(client, trust.actors["beneficiary"], "/trusts", "en")
    assert secret not in client.get(f"/trusts/{deed_id}").text
    r = client.get(f"/trusts/{deed_id}/edit")
    assert r.status_code == 403 and secret not in r.text
    r = client.post(
        f"/trusts/{deed_id}/edit",
        data={"csrf_token": token, "title": "x", "beneficiaries": "nonsense"},
    )
    assert r.status_code in (403, 422) and secret not in r.text
    console_login(client, trust.actors["stranger"], "/trusts", "en")
    assert client.get(f"/trusts/{deed_id}/edit").status_code == 404
    console_login(client, trust.actors["settlor"], "/trusts", "en")
    r = client.get(f"/trusts/{deed_id}/edit")
    assert r.status_code == 409 and "TRUST-LIFECYCLE" in r.text


def test_digits_that_are_not_numbers_are_refused_on_the_page(
    client, db: Database, trust: Trust
) -> None:  # type: ignore[no-untyped-def]
    deed_id = established(db, trust)
    token = console_login(client, trust.actors["trustee"], "/trusts", "en")
    r = client.post(
        f"/trusts/{deed_id}/income",
        data={
            "csrf_token": token,
            "amount": "²",
            "received_on": IN_TERM.isoformat(),
            "source": "other",
            "description": "x",
        },
    )
    assert r.status_code == 422 and "amount in yuan" in r.text
    r = client.post(
        f"/trusts/{deed_id}/grants",
        data={"csrf_token": token, "template": "sandbox-aggregates", "fee": "١٠"},
    )
    assert r.status_code == 422 and "amount in yuan" in r.text
    codes = _codes(db, trust.settlor.party_id)
    token = console_login(client, trust.actors["settlor"], "/trusts", "en")
    r = client.post(
        f"/trusts/{deed_id}/amend",
        data={
            "csrf_token": token,
            "beneficiaries": f"{codes[trust.settlor.party_id]} ²",
            "reason": "x",
        },
    )
    assert r.status_code == 422 and "identifier share" in r.text
    r = client.post(
        "/trusts/new",
        data={**_form(trust, _codes(db, trust.trustee.party_id), ""), "trustee_fee_bp": "²",
              "csrf_token": token},
    )  # fmt: skip
    assert r.status_code == 422 and "whole number" in r.text
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(PolicyTrustIncome)) == 0


def test_the_trustee_decides_a_request_on_the_deeds_page(
    client, db: Database, settings: Settings, trust: Trust
) -> None:  # type: ignore[no-untyped-def]
    """A party's request under the deed is decided on the deed's page (the deed checked as it
    stands that day); the grant's own page links there instead of offering its decide form,
    and the grants core refuses a decision made without the deed."""
    from datafactor.policy import grants
    from datafactor.policy.grants import GrantDraft
    from datafactor.policy.templates import get_template
    from datafactor.policy.trusts.domain import policy_within

    deed_id = established(db, trust)
    ask = GrantDraft(
        asset_id=trust.asset_id,
        grantee_id=trust.stranger.party_id,
        policy=policy_within(
            get_template("sandbox-aggregates").document(), SCOPE, purposes=["research"]
        ),
        term_start=IN_TERM,
        term_end=IN_TERM.replace(year=2027),
    )
    with db.write() as s:
        grant_id = services.request_use(s, trust.stranger, deed_id, ask, today=IN_TERM).id
    with pytest.raises(grants.GrantInvalid) as refused, db.write() as s:
        grants.decide_grant(
            s,
            trust.trustee,
            grant_id,
            approve=True,
            issuer=registry.issuer_for(settings),
            today=IN_TERM,
        )
    assert refused.value.rule == "GRT-MANDATE"

    token = console_login(client, trust.actors["trustee"], "/trusts", "en")
    page = client.get(f"/grants/{grant_id}").text
    assert 'data-testid="grant-decide-under"' in page and 'data-testid="grant-decide"' not in page
    assert f'href="/trusts/{deed_id}#grants"' in page
    page = client.get(f"/trusts/{deed_id}").text
    assert 'data-testid="request-decide"' in page
    url = f"/trusts/{deed_id}/grants/{grant_id}/decision"
    r = client.post(url, data={"csrf_token": token, "approve": "no", "reason": ""})
    assert r.status_code == 422 and 'data-testid="request-decide"' in r.text
    r = client.post(url, data={"csrf_token": token, "approve": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/trusts/{deed_id}"
    with db.read() as s:
        assert grants.get_grant(s, trust.trustee, grant_id).state == "approved"
    # Another party's user is not the trustee: the deed is not even found.
    token = console_login(client, trust.actors["stranger"], "/trusts", "en")
    r = client.post(url, data={"csrf_token": token, "approve": "yes"})
    assert r.status_code == 404
