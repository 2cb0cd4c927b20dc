"""The ``datafactor`` command: migrations, the demo province (idempotent), users."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from datafactor import audit
from datafactor.cli import app as cli
from datafactor.demo.province import PARTIES
from datafactor.identity.models import Party, User
from datafactor.settings import get_settings


@pytest.fixture
def run(db_url, monkeypatch):
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def counts(db):
    with db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(t)) for t in (Party, User, audit.AuditEvent)
        )


def test_demo_load_is_idempotent_and_password_option_applies(run, db):
    assert run("db", "upgrade").exit_code == 0  # already at head: a no-op
    first = run("demo", "load")
    assert first.exit_code == 0, first.output
    n_users = sum(len(p.users) for p in PARTIES)
    assert counts(db)[:2] == (len(PARTIES), n_users)
    after_first = counts(db)
    second = run("demo", "load")
    assert "nothing to change" in second.output
    assert counts(db) == after_first  # not even an audit event
    third = run("demo", "load", "--password", "Another-Pass-42")
    assert f"{n_users} passwords changed" in third.output
    with db.read() as s:
        assert audit.verify_chain(s).ok


def test_demo_users_json_lists_every_login(run):
    result = run("demo", "users", "--json")
    users = json.loads(result.output)
    assert {u["username"] for u in users} >= {"exchange.admin", "bureau.admin"}
    assert all({"username", "party", "party_kind", "roles"} <= set(u) for u in users)


def test_users_create_and_its_refusals(run, db):
    run("demo", "load")
    with db.read() as s:
        party_id = s.scalar(select(Party.id).where(Party.kind == "enterprise").limit(1))
    ok = run(
        "users",
        "create",
        "--party-id",
        party_id,
        "--username",
        "cli.user",
        "--password",
        "Cli-Password-1",
        "--role",
        "staff",
    )
    assert ok.exit_code == 0, ok.output
    again = run(
        "users",
        "create",
        "--party-id",
        party_id,
        "--username",
        "cli.user",
        "--password",
        "Cli-Password-1",
    )
    assert again.exit_code == 2
    short = run(
        "users", "create", "--party-id", party_id, "--username", "cli.other", "--password", "short"
    )
    assert short.exit_code == 2
