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
def run(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(tmp_path / "var"))  # demo blobs, registry key
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


def test_serve_with_two_workers_answers_and_stops_on_sigterm(db_url, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    from pgserver import free_port

    port = free_port()
    env = {**os.environ, "DATAFACTOR_DATABASE_URL": db_url, "DATAFACTOR_VAR_DIR": str(tmp_path)}
    exe = Path(sys.executable).with_name("datafactor")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--workers", "2"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    assert json.loads(r.read())["database"] == "ok"
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)  # the parent exits only after both workers stopped
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
