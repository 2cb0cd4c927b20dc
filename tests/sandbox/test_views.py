"""The sandbox pages (隐私计算沙箱): the grantee's grants with their columns and roles, the SQL
editor's preview → run round trip through the form (nothing spent by a preview, ε and the budget
left after a run, the result table), refusals and bad input shown next to the editor with the SQL
kept, the query history as each party may see it (grantee, holder, regulator; a stranger gets
404), the holder's review of a held result, and the holder's profile page."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from factories import Actor, console_login, csrf_of, make_actor
from listing_support import staff_of
from sandbox_support import COLUMNS, another_grant, households, offer_world

from datafactor.identity import PartyKind
from datafactor.sandbox import services

AGGREGATE = (
    "SELECT county, COUNT(*) AS households, SUM(kwh) AS total_kwh\nFROM households\nGROUP BY county"
)


def text_of(html: str, testid: str) -> str:
    """The text inside the first element with ``data-testid=testid`` (tags stripped)."""
    match = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no {testid} on the page"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def textarea(html: str) -> str:
    match = re.search(r'data-testid="sandbox-sql"[^>]*>(.*?)</textarea>', html, re.S)
    assert match, "no SQL editor on the page"
    return unescape(match.group(1))


def result_rows(html: str) -> list[list[str]]:
    rows = re.findall(r'<tr data-testid="sandbox-result-row">(.*?)</tr>', html, re.S)
    return [[unescape(c) for c in re.findall(r"<td>(.*?)</td>", r, re.S)] for r in rows]


@pytest.fixture
def actors(db: Any) -> dict[str, Actor]:
    return {
        "holder": make_actor(db, PartyKind.ENTERPRISE, username="gx.grid", name="广西电网数据公司"),
        "grantee": make_actor(db, PartyKind.ENTERPRISE, username="bank.admin", name="北部湾银行"),
        "registrar": make_actor(db, PartyKind.EXCHANGE_OPERATOR, username="bbg.registrar"),
        "regulator": make_actor(
            db, PartyKind.REGULATOR, roles=("auditor",), username="reg.auditor"
        ),
        "stranger": make_actor(db, PartyKind.ENTERPRISE, username="rival.admin"),
    }


def dp_world(db: Any, settings: Any, tmp_path: Any, actors: dict[str, Actor]) -> str:
    """A grant under differential privacy (ε 1.5 in all) over enough households per county
    (1,000) that its groups pass the noisy threshold of a query of ε 1; the grant id."""
    outcome = services.offer_file(
        db,
        settings,
        households(tmp_path / "households.csv", units=3000),
        table="households",
        holder=actors["holder"].party_id,
        grantee=actors["grantee"].party_id,
        privacy_unit="account",
        columns=services.parse_columns(COLUMNS),
        k=5,
        epsilon=1.5,
        registrar=actors["registrar"].username,
    )
    return outcome.grant_id


def test_editor_preview_then_run_and_refusals(client, db, settings, tmp_path, actors) -> None:  # type: ignore[no-untyped-def]
    grant_id = dp_world(db, settings, tmp_path, actors)
    csrf = console_login(client, actors["grantee"], "/sandbox")

    # My sandbox grants: the table, each column with its type and role, k and the budget.
    page = client.get("/sandbox").text
    assert f'data-grant="{grant_id}"' in page
    assert 'data-usable="true"' in page
    for column, role in (
        ("account", "privacy_unit"),
        ("name", "identifier"),
        ("county", "group_key"),
        ("kwh", "measure"),
    ):
        assert f'data-column="{column}" data-role="{role}"' in page
    assert text_of(page, "sandbox-grant-k") == "5"
    assert text_of(page, "sandbox-grant-budget") == "1.5 / 1.5"

    url = f"/sandbox/grants/{grant_id}"
    editor = client.get(url).text
    assert "FROM households" in textarea(editor)  # a first query to start from

    # Preview: the decision, the ε it would spend, the output columns — nothing spent.
    r = client.post(url, data={"csrf_token": csrf, "sql": AGGREGATE, "epsilon": "1",
                               "action": "preview"})  # fmt: skip
    assert r.status_code == 200
    assert 'data-testid="sandbox-preview-result" data-decision="allowed"' in r.text
    assert text_of(r.text, "sandbox-preview-epsilon") == "1"
    assert re.findall(r'data-testid="sandbox-preview-column">(\w+)<', r.text) == [
        "county",
        "households",
        "total_kwh",
    ]
    assert text_of(r.text, "sandbox-budget-left") == "1.5 / 1.5"
    assert textarea(r.text) == AGGREGATE

    # Run: the result table (the small county suppressed), ε spent and the budget left.
    r = client.post(url, data={"csrf_token": csrf, "sql": AGGREGATE, "epsilon": "1",
                               "action": "run"})  # fmt: skip
    assert r.status_code == 200
    assert 'data-testid="sandbox-answer" data-decision="allowed" data-state="released"' in r.text
    rows = result_rows(r.text)
    assert sorted(row[0] for row in rows) == ["450102", "450103", "450203"]
    assert text_of(r.text, "sandbox-answer-epsilon") == "1"
    assert text_of(r.text, "sandbox-answer-left") == "0.5"
    assert text_of(r.text, "sandbox-budget-left") == "1.5 / 0.5"
    assert textarea(r.text) == AGGREGATE

    # Refusals: raw rows of an identifier, a syntax error — the reason with its rule id in
    # Chinese, the SQL kept, nothing spent.
    raw = "SELECT name, kwh FROM households"
    r = client.post(url, data={"csrf_token": csrf, "sql": raw, "epsilon": "", "action": "run"})
    assert 'data-testid="sandbox-answer" data-decision="refused"' in r.text
    reasons = re.findall(r'<li data-rule="(SBX-[A-Z-]+)"><code>[^<]*</code> ([^<]*)</li>', r.text)
    assert reasons and all(rule.startswith("SBX-Q-") for rule, _ in reasons)
    assert all(re.search(r"[\u4e00-\u9fff]", text) for _, text in reasons)  # Chinese
    assert textarea(r.text) == raw
    assert text_of(r.text, "sandbox-budget-left") == "1.5 / 0.5"

    r = client.post(url, data={"csrf_token": csrf, "sql": "SELEC county FROM households",
                               "action": "preview"})  # fmt: skip
    assert 'data-decision="refused"' in r.text and 'data-rule="SBX-Q-SYNTAX"' in r.text
    assert textarea(r.text) == "SELEC county FROM households"
    r = client.post(url, data={"csrf_token": csrf, "sql": "SELECT COUNT(*) AS n FROM meters",
                               "action": "preview"})  # fmt: skip
    assert 'data-decision="refused"' in r.text and 'data-rule="SBX-Q-TABLES"' in r.text

    # A query costing more than the budget left: refused with the balance, nothing spent.
    r = client.post(url, data={"csrf_token": csrf, "sql": AGGREGATE, "epsilon": "1",
                               "action": "run"})  # fmt: skip
    assert 'data-testid="sandbox-answer" data-decision="refused"' in r.text
    total = re.search(r'<li data-rule="SBX-BUD-TOTAL"><code>[^<]*</code> ([^<]*)</li>', r.text)
    assert total and "0.5" in total.group(1)  # says what is left
    assert textarea(r.text) == AGGREGATE
    assert text_of(r.text, "sandbox-budget-left") == "1.5 / 0.5"

    # Bad input: an ε that is not a number (shown next to the editor, 422), one over the
    # per-query cap (refused with its rule) — the SQL kept, nothing spent.
    r = client.post(url, data={"csrf_token": csrf, "sql": AGGREGATE, "epsilon": "abc",
                               "action": "run"})  # fmt: skip
    assert r.status_code == 422
    assert 'data-testid="sandbox-epsilon"' in r.text and 'aria-invalid="true"' in r.text
    assert text_of(r.text, "sandbox-editor-error")
    assert textarea(r.text) == AGGREGATE
    r = client.post(url, data={"csrf_token": csrf, "sql": AGGREGATE, "epsilon": "3",
                               "action": "run"})  # fmt: skip
    assert 'data-testid="sandbox-answer" data-decision="refused"' in r.text
    assert 'data-rule="SBX-BUD-CAP"' in r.text
    assert text_of(r.text, "sandbox-budget-left") == "1.5 / 0.5"

    # The same refusal in English once the reader switches.
    client.cookies.set("df_lang", "en")
    r = client.post(url, data={"csrf_token": csrf, "sql": raw, "action": "preview"})
    reasons = re.findall(r'<li data-rule="(SBX-[A-Z-]+)"><code>[^<]*</code> ([^<]*)</li>', r.text)
    assert reasons and not any(re.search(r"[\u4e00-\u9fff]", text) for _, text in reasons)
    assert 'lang="en"' in r.text

    # A stranger does not see the grant or its editor.
    console_login(client, actors["stranger"], "/sandbox")
    assert client.get(url).status_code == 404
    assert f'data-grant="{grant_id}"' not in client.get("/sandbox").text


def test_history_visibility_and_review(client, db, settings, tmp_path, actors) -> None:  # type: ignore[no-untyped-def]
    world = offer_world(
        db, settings, tmp_path, actors["holder"], actors["grantee"], actors["registrar"]
    )
    reviewed = make_actor(db, PartyKind.ENTERPRISE, username="insurer.admin", name="北部湾保险")
    held_grant = another_grant(
        db,
        settings,
        world,
        reviewed.party_id,
        review=True,
        note="沙箱内聚合计算，结果经审核",
        min_group_size=5,
    )

    # The review grantee runs a query: it is held, and says so.
    csrf = console_login(client, reviewed, "/sandbox")
    r = client.post(f"/sandbox/grants/{held_grant}",
                    data={"csrf_token": csrf, "sql": AGGREGATE, "action": "run"})  # fmt: skip
    assert 'data-decision="allowed" data-state="held"' in r.text
    assert 'data-testid="sandbox-held"' in r.text
    assert 'data-testid="sandbox-result"' not in r.text
    held_id = re.search(r'href="/sandbox/queries/([^"]+)" data-testid="sandbox-answer-link"',
                        r.text).group(1)  # type: ignore[union-attr]  # fmt: skip
    detail = client.get(f"/sandbox/queries/{held_id}").text
    assert 'data-state="held"' in detail
    assert 'data-testid="sandbox-review-form"' not in detail  # the grantee does not review
    assert 'data-testid="sandbox-result"' not in detail

    # The first grantee runs one allowed and one refused query.
    csrf = console_login(client, actors["grantee"], "/sandbox")
    url = f"/sandbox/grants/{world.grant_id}"
    client.post(url, data={"csrf_token": csrf, "sql": AGGREGATE, "action": "run"})
    client.post(url, data={"csrf_token": csrf, "sql": "SELECT name FROM households",
                           "action": "run"})  # fmt: skip
    history = client.get("/sandbox/queries").text
    states = re.findall(r'data-testid="sandbox-query-row" data-state="(\w+)" data-role="(\w+)"',
                        history)  # fmt: skip
    assert sorted(states) == [("refused", "grantee"), ("released", "grantee")]
    assert held_id not in history  # another grantee's query

    # The holder sees every query over its data — text, decision, ε, result hash — and the
    # review form on the held one only.
    csrf = console_login(client, actors["holder"], "/sandbox")
    history = client.get("/sandbox/queries").text
    states = re.findall(r'data-testid="sandbox-query-row" data-state="(\w+)" data-role="(\w+)"',
                        history)  # fmt: skip
    assert sorted(states) == [("held", "holder"), ("refused", "holder"), ("released", "holder")]
    assert "SELECT name FROM households" in history
    detail = client.get(f"/sandbox/queries/{held_id}").text
    assert 'data-testid="sandbox-review-form"' in detail
    assert 'data-testid="sandbox-result"' in detail  # the holder sees what it would release
    released_id = re.search(
        r'data-state="released" data-role="holder">\s*<td><a href="/sandbox/queries/([^"]+)"',
        history,
    ).group(1)  # type: ignore[union-attr]
    assert (
        'data-testid="sandbox-review-form"'
        not in client.get(f"/sandbox/queries/{released_id}").text
    )

    # The holder's staff read the held query but cannot release it; a post is refused.
    csrf = console_login(client, staff_of(db, actors["holder"], "grid.staff"), "/sandbox")
    detail = client.get(f"/sandbox/queries/{held_id}").text
    assert 'data-state="held"' in detail and 'data-testid="sandbox-review-form"' not in detail
    r = client.post(f"/sandbox/queries/{held_id}/review",
                    data={"csrf_token": csrf, "decision": "release", "note": ""})  # fmt: skip
    assert r.status_code == 403

    # A regulator sees all, reviews none; a stranger sees nothing.
    console_login(client, actors["regulator"], "/sandbox")
    history = client.get("/sandbox/queries").text
    assert len(re.findall(r'data-testid="sandbox-query-row"', history)) == 3
    assert 'data-testid="sandbox-review-form"' not in client.get(f"/sandbox/queries/{held_id}").text
    console_login(client, actors["stranger"], "/sandbox")
    assert 'data-testid="sandbox-query-row"' not in client.get("/sandbox/queries").text
    assert client.get(f"/sandbox/queries/{held_id}").status_code == 404

    # The holder's administrator releases the held result with a note; the grantee sees it.
    csrf = console_login(client, actors["holder"], "/sandbox")
    r = client.post(f"/sandbox/queries/{held_id}/review",
                    data={"csrf_token": csrf, "decision": "release", "note": "同意发布"},
                    follow_redirects=True)  # fmt: skip
    assert 'data-state="released"' in r.text and "同意发布" in r.text
    assert 'data-testid="sandbox-review-form"' not in r.text
    console_login(client, reviewed, "/sandbox")
    detail = client.get(f"/sandbox/queries/{held_id}").text
    assert 'data-testid="sandbox-result"' in detail and "同意发布" in detail


def test_profile_page(client, db, settings, tmp_path, actors) -> None:  # type: ignore[no-untyped-def]
    world = offer_world(
        db, settings, tmp_path, actors["holder"], actors["grantee"], actors["registrar"]
    )
    url = f"/sandbox/profiles/{world.asset_id}"
    csrf = console_login(client, actors["holder"], "/sandbox")
    assert f'href="{url}"' in client.get("/sandbox").text
    page = client.get(url).text
    names = re.findall(r'data-testid="sandbox-profile-column" data-column="(\w+)"', page)
    assert names == ["account", "name", "county", "kwh"]
    form = {"csrf_token": csrf, "table_name": "power", "role_0": "privacy_unit",
            "role_1": "forbidden", "role_2": "group_key", "role_3": "measure",
            "lower_3": "0", "upper_3": "800"}  # fmt: skip

    # Bounds the wrong way round: the services' message next to the columns, the input kept.
    r = client.post(url, data={**form, "lower_3": "900"})
    assert r.status_code == 422
    assert "SBX-GRT-PROFILE" in text_of(r.text, "sandbox-profile-error")
    assert 'value="900"' in r.text and 'value="power"' in r.text
    rows = dict(re.findall(r'data-column="(\w+)">(.*?)</tr>', r.text, re.S))
    assert 'aria-invalid="true"' in rows["kwh"]  # the column the message names
    assert 'aria-invalid="true"' not in rows["county"]
    # A bad table name, next to its field.
    r = client.post(url, data={**form, "table_name": "9 power"})
    assert r.status_code == 422 and 'aria-invalid="true"' in r.text

    r = client.post(url, data=form, follow_redirects=True)
    assert 'data-testid="sandbox-profile-saved"' in r.text
    assert 'value="power"' in r.text and 'value="800"' in r.text

    # The grantee reads the new profile in its grants (the identifier now forbidden).
    console_login(client, actors["grantee"], "/sandbox")
    page = client.get("/sandbox").text
    assert 'data-table="power"' in page
    assert 'data-column="name" data-role="forbidden"' in page
    assert 'data-testid="sandbox-profile-form"' not in client.get(url).text
    # Neither the grantee nor a stranger may declare it.
    assert client.post(
        url, data={**form, "csrf_token": csrf_of(client.get(url).text)}
    ).status_code in (403, 404)
    console_login(client, actors["stranger"], "/sandbox")
    assert client.get(url).status_code == 404
