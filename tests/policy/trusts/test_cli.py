"""``datafactor trusts list|show|sweep`` on both databases: the operator's view of every deed,
JSON output, an unknown deed refused with exit code 2, and the sweep."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from trusts_support import END, IN_TERM, Trust, drafted, established, make_trust
from typer.testing import CliRunner

from datafactor.cli import app as cli
from datafactor.db import Database
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import IncomeSource
from datafactor.settings import Settings, get_settings


@pytest.fixture
def invoke(settings: Settings, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATAFACTOR_ENVIRONMENT", "test")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def test_list_show_and_sweep(invoke, db: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    trust: Trust = make_trust(db, settings)
    # A draft holds no data: the same asset may then be put in trust by a deed in effect.
    draft = drafted(db, trust, title="草拟中的信托")
    active = established(db, trust)
    with db.write() as s:
        services.record_income(
            s,
            trust.trustee,
            active,
            services.IncomeDraft(100_001, IN_TERM, IncomeSource.OTHER, description="收入"),
            today=IN_TERM,
        )
    result = invoke("trusts", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["id"]: r["state"] for r in rows} == {active: "active", draft: "draft"}
    assert invoke("trusts", "list", "--state", "draft", "--json").output.count("\n") == 1

    number = next(r["number"] for r in rows if r["id"] == active)
    shown = json.loads(invoke("trusts", "show", number.lower(), "--json").output)
    assert shown["income_fen"] == 100_001
    assert sum(t["pending_fen"] for t in shown["totals"]) == 100_001
    assert [h["action"] for h in shown["history"]] == ["draft", "sign", "accept", "activate"]
    text = invoke("trusts", "show", active).output
    assert number in text and "1,000.01" in text

    missing = invoke("trusts", "show", "GX-XT-2026-999999")
    assert missing.exit_code == 2 and "没有这份信托合同" in missing.output  # zh by default

    after = (END + timedelta(days=1)).isoformat()
    assert invoke("trusts", "sweep", "--today", "tomorrow").exit_code == 2
    swept = invoke("trusts", "sweep", "--today", after, "--json")
    assert json.loads(swept.output)["expired"] == [number]
    again = invoke("trusts", "sweep", "--today", after, "--json")
    assert json.loads(again.output) == {"activated": [], "expired": []}
