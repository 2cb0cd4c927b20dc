"""``datafactor trace FILE`` end to end on both databases: three buyers download the same
listing; a copy of one of them — header stripped, rows shuffled, a column dropped, half the rows
kept — is traced to that buyer and no other. ``datafactor exchange deliveries CONTRACT --json``
prints the log."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from factories import bearer
from typer.testing import CliRunner

from datafactor.cli import app as cli
from datafactor.settings import get_settings


@pytest.fixture
def run(db_url, settings, monkeypatch):
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATAFACTOR_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def download(client, world, buyer) -> bytes:
    h = bearer(client, buyer)
    issued = client.post(
        "/api/v1/deliveries/tokens",
        headers=h,
        json={
            "contract_id": world.contract_of(buyer),
            "channel": "download",
            "purpose": "research",
        },
    ).json()
    r = client.get(issued["url"].removeprefix("http://testserver"), headers=h)
    assert r.status_code == 200, r.text
    return r.content


def launder(data: bytes, *, drop: int, keep: float, seed: int = 3) -> bytes:
    """What a leaker does: strip the comment and header, shuffle, drop a column, keep a part."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[2:]
    random.Random(seed).shuffle(rows)
    rows = [r[:drop] + r[drop + 1 :] for r in rows[: int(len(rows) * keep)]]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def test_trace_names_the_leaking_buyer_and_no_other(client, world, run, tmp_path):
    copies = {b.party_id: download(client, world, b) for b in world.buyers}
    leaker = world.buyers[1]
    leaked = tmp_path / "found.csv"
    leaked.write_bytes(launder(copies[leaker.party_id], drop=4, keep=0.5))

    result = run("trace", str(leaked), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "identified"
    assert report["examined"] == 3
    (match,) = report["identified"]
    assert match["buyer_id"] == leaker.party_id
    assert match["contract_id"] == world.contract_of(leaker)
    assert match["canaries_found"] >= 2 and match["confidence"] > 0.999999
    assert report["declared"] is None  # the header was stripped

    human = run("trace", str(leaked))
    assert human.exit_code == 0 and "IDENTIFIED" in human.stdout


def test_an_honest_copy_declares_its_mark_and_the_content_agrees(client, world, run, tmp_path):
    buyer = world.buyers[0]
    data = download(client, world, buyer)
    found = tmp_path / "honest.csv"
    found.write_bytes(data)
    report = json.loads(run("trace", str(found), "--json").stdout)
    assert report["declared"]["buyer_id"] == buyer.party_id
    assert report["declared"]["matches_content"] is True
    assert [m["buyer_id"] for m in report["identified"]] == [buyer.party_id]


def test_a_file_that_is_not_a_delivery_names_no_one(client, world, run, tmp_path):
    for buyer in world.buyers:
        download(client, world, buyer)
    from delivery_support import METER_CSV

    original = tmp_path / "original.csv"
    original.write_bytes(METER_CSV)
    report = json.loads(run("trace", str(original), "--json").stdout)
    assert report["verdict"] == "inconclusive" and report["identified"] == []
    missing = run("trace", str(tmp_path / "nowhere.csv"))
    assert missing.exit_code == 2


def test_deliveries_prints_the_log_of_a_contract(client, world, run):
    buyer = world.buyers[0]
    download(client, world, buyer)
    result = run("exchange", "deliveries", world.contract_of(buyer), "--json")
    assert result.exit_code == 0, result.output
    log = json.loads(result.stdout)
    assert log["total"] == 1
    (item,) = log["items"]
    assert item["decision"] == "allowed" and item["channel"] == "download"
    assert item["mark"] and item["rows"] == 256 and "EXC-DLV-RECORD" in item["rules"]
    unknown = run("exchange", "deliveries", "GX-DC-1999-000000")
    assert unknown.exit_code == 2
