"""``datafactor sandbox``: ``offer`` a CSV file (results reviewed), then ``grants --json``,
``query --json``, the holder's ``review`` and, once the result is released, ``show --json`` as the
grantee, in the
integrators' shapes (issue 8, item 6)."""

from __future__ import annotations

import json
import re

import pytest
from sandbox_support import COLUMNS, households
from typer.testing import CliRunner

from datafactor.cli import app as cli
from datafactor.settings import get_settings


@pytest.fixture
def run(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DATAFACTOR_SECRET_KEY", "test-secret-key-test-secret-key-0123456789")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def test_offer_then_query(run, db, tmp_path, enterprise, other_enterprise, operator) -> None:
    data = households(tmp_path / "h.csv")
    offered = run(
        "sandbox", "offer", str(data), "--table", "households",
        "--holder", enterprise.party_id, "--grantee", other_enterprise.party_id,
        "--privacy-unit", "account", "--columns", COLUMNS, "--k", "5", "--review",
        "--registrar", operator.username, "--json",
    )  # fmt: skip
    assert offered.exit_code == 0, offered.output
    grant_id = json.loads(offered.output)["grant_id"]

    listed = run("sandbox", "grants", "--as", other_enterprise.username, "--json")
    assert listed.exit_code == 0, listed.output
    grants = json.loads(listed.output)
    assert [g["id"] for g in grants] == [grant_id]
    assert {"id", "tables", "k", "budget_left"} <= set(grants[0])
    assert {c["name"]: c["role"] for c in grants[0]["tables"][0]["columns"]}["account"] == (
        "privacy_unit"
    )

    sql = "SELECT county, AVG(kwh) AS kwh FROM households GROUP BY county"
    answered = run(
        "sandbox", "query", "--grant", grant_id, "--sql", sql,
        "--as", other_enterprise.username, "--json",
    )  # fmt: skip
    assert answered.exit_code == 0, answered.output
    body = json.loads(answered.output)
    assert body["decision"] == "allowed" and body["epsilon_spent"] == 0
    assert body["held"] and body["rows"] == []  # --review: held for the holder

    # Only the holder reviews; once it releases the result, `show` gives the grantee the rows
    # (a stranger: exit 2).
    review = ("sandbox", "review", body["id"], "--release", "--note", "ok")
    assert run(*review, "--as", other_enterprise.username).exit_code == 2
    assert run("sandbox", "review", body["id"], "--as", enterprise.username).exit_code == 2
    released = run(*review, "--as", enterprise.username, "--json")
    assert released.exit_code == 0, released.output
    assert json.loads(released.output)["state"] == "released"
    again = run("sandbox", "review", body["id"], "--withhold", "--as", enterprise.username)
    assert again.exit_code == 2  # reviewed once: a released result stays released
    shown = run("sandbox", "show", body["id"], "--as", other_enterprise.username, "--json")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["state"] == "released" and record["columns"] == ["county", "kwh"]
    assert len(record["rows"]) == 3 and record["result_hash"] == body["result_hash"]
    assert run("sandbox", "show", body["id"], "--as", operator.username).exit_code == 2

    # Without --json a refusal is its reasons in the user's language (Chinese by default), exit 1.
    raw = run("sandbox", "query", "--grant", grant_id, "--sql", "SELECT name FROM households",
              "--as", other_enterprise.username)  # fmt: skip
    assert raw.exit_code == 1 and "[SBX-Q-" in raw.output
    assert re.search(r"\[SBX-Q-[A-Z-]+\] .*[\u4e00-\u9fff]", raw.output), raw.output

    stranger = run("sandbox", "query", "--grant", "nope", "--sql", sql, "--as",
                   other_enterprise.username, "--json")  # fmt: skip
    assert stranger.exit_code == 2
