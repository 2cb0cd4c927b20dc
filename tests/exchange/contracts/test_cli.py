"""``datafactor exchange contracts [--json]`` and ``datafactor exchange deadlines`` on both
databases, and the moves as a user."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from contracts_support import NOW, hold, load
from typer.testing import CliRunner

from datafactor.cli import app as cli
from datafactor.db import utcnow
from datafactor.settings import get_settings


@pytest.fixture
def run(db_url, monkeypatch, world):
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(world.settings.var_dir))
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def test_contracts_json_lists_every_contract_or_a_users(run, world, open_for):
    first, second = open_for(), open_for(quantity=2)
    result = run("exchange", "contracts", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["total"] == 2
    assert {i["id"] for i in body["items"]} == {first, second}
    item = next(i for i in body["items"] if i["id"] == second)
    assert item["status"] == "accepted" and item["amount_fen"] == 20_000
    assert item["number"].startswith("GX-DC-2026-")
    mine = json.loads(
        run("exchange", "contracts", "--as", world.outsider.username, "--json").stdout
    )
    assert mine == {"items": [], "total": 0}
    table = run("exchange", "contracts", "--status", "accepted")
    assert load(world, first).number in table.stdout


def test_deadlines_applies_what_has_passed(run, world, open_for):
    contract_id = open_for(now=NOW)  # long past its signing deadline by the real clock
    fresh = open_for(now=utcnow())
    result = run("exchange", "deadlines", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["changed"] == 1 and body["failed"] == []
    assert body["contracts"][0]["id"] == contract_id and body["contracts"][0]["to"] == "terminated"
    assert hold(world, contract_id)["released_fen"] == 10_000
    assert load(world, fresh).state == "accepted"
    again = json.loads(run("exchange", "deadlines", "--json").stdout)
    assert again["changed"] == 0


def test_sign_as_users_needs_confirm(run, world, open_for):
    contract_id = open_for(now=utcnow())
    refused = run("exchange", "contract-sign", contract_id, "--as", world.buyer.username)
    assert refused.exit_code == 2
    assert "EXC-CONTRACT-SIGN" in refused.output
    for who in (world.buyer, world.seller):
        r = run(
            "exchange", "contract-sign", contract_id, "--as", who.username, "--confirm", "--json"
        )
        assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "active"


def test_terminate_and_pdf_from_the_command_line(run, world, open_for, tmp_path):
    contract_id = open_for(now=utcnow() - timedelta(minutes=1))
    out = tmp_path / "contract.pdf"
    r = run("exchange", "contract-pdf", contract_id, "--out", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(b"%PDF")
    r = run(
        "exchange",
        "contract-terminate",
        contract_id,
        "--as",
        world.seller.username,
        "--reason",
        "库存不足",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "terminated"
