"""``datafactor ledger …``, ``datafactor witness`` and ``datafactor verify-receipt`` as a user runs
them, including a witness talking plain HTTP to a running server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import update
from typer.testing import CliRunner

from datafactor.cli import app as cli
from datafactor.db import Database
from datafactor.ledger.models import LedgerEntry
from datafactor.settings import Settings, get_settings

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATAFACTOR_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_append_checkpoint_prove_and_verify(env: Settings) -> None:
    for i in range(6):
        code, out = run("ledger", "append", "test.cli", json.dumps({"i": i}))
        assert code == 0, out
    assert "appended entry 5" in out
    code, note = run("ledger", "checkpoint")
    assert code == 0
    assert note.split("\n")[1] == "6"
    code, out = run("ledger", "key")
    assert out.startswith("datafactor.local/ledger+")
    code, out = run("ledger", "prove", "inclusion", "3")
    assert code == 0
    proof = json.loads(out)
    assert (proof["index"], proof["tree_size"], len(proof["proof"])) == (3, 6, 3)
    code, out = run("ledger", "prove", "consistency", "2", "6")
    assert json.loads(out)["first"] == 2
    code, out = run("ledger", "prove", "inclusion", "9")
    assert code == 2
    assert "index" in out
    code, out = run("ledger", "verify")
    assert code == 0, out
    assert "ledger OK: 6 entries" in out
    code, out = run("ledger", "anchor")
    assert code == 0


def test_verify_names_the_first_bad_index(env: Settings, db: Database) -> None:
    for i in range(9):
        run("ledger", "append", "test.cli", json.dumps({"i": i}))
    run("ledger", "checkpoint")
    with db.write() as session:
        session.execute(update(LedgerEntry).where(LedgerEntry.idx == 4).values(entry=b"{}"))
    code, out = run("ledger", "verify")
    assert code == 1
    assert "first bad index 4" in out
    code, out = run("ledger", "verify", "--json")
    assert json.loads(out)["first_bad_index"] == 4


def test_receipts_verify_offline(env: Settings, tmp_path: Path) -> None:
    for i in range(5):
        run("ledger", "append", "test.cli", json.dumps({"i": i}))
    receipt = tmp_path / "receipt.json"
    code, out = run("ledger", "receipt", "2", "-o", str(receipt))
    assert code == 0, out
    _, vkey = run("ledger", "key")
    code, out = run("verify-receipt", str(receipt), "--key", vkey.strip())
    assert code == 0, out
    assert "receipt OK" in out
    code, out = run("verify-receipt", str(receipt), "--quorum", "1")
    assert code == 1
    assert "required" in out
    data = json.loads(receipt.read_text())
    data["index"] = 3
    receipt.write_text(json.dumps(data))
    code, out = run("verify-receipt", str(receipt))
    assert code == 1
    assert "does NOT verify" in out
    receipt.write_text("{}")
    assert run("verify-receipt", str(receipt))[0] == 2


def test_rotate_key_and_manage_witnesses(env: Settings, tmp_path: Path) -> None:
    run("ledger", "append", "test.cli", "{}")
    _, old = run("ledger", "key")
    code, out = run("ledger", "rotate-key")
    assert code == 0
    _, new = run("ledger", "key")
    assert old != new
    assert new.strip() in out.replace("\n", "")
    assert run("ledger", "verify")[0] == 0
    code, vkey = run("witness", "--show-key", "--state-dir", str(tmp_path / "w"), "--name", "reg")
    assert code == 0
    assert vkey.startswith("reg+")
    assert run("ledger", "witness", "add", vkey.strip())[0] == 0
    code, out = run("ledger", "witness", "list")
    assert "reg" in out
    assert run("ledger", "witness", "remove", "reg")[0] == 0
    assert run("ledger", "witness", "remove", "nobody")[0] == 2
    assert run("ledger", "witness", "add", "garbage")[0] == 2
    code, out = run("ledger", "append", "Bad Kind", "{}")
    assert code == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_witness_over_http_against_a_running_server(
    env: Settings, db: Database, tmp_path: Path
) -> None:
    from datafactor.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(env, db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        state = tmp_path / "witness"
        _, vkey = run("witness", "--show-key", "--state-dir", str(state), "--name", "reg")
        run("ledger", "witness", "add", vkey.strip())
        run("ledger", "append", "test.cli", "{}")
        run("ledger", "checkpoint")
        base = f"http://127.0.0.1:{port}"
        code, out = run("witness", "--once", "--log", base, "--state-dir", str(state))
        assert code == 0, out
        assert "cosigned" in out
        code, note = run("ledger", "checkpoint", "--no-sign")
        assert "— reg " in note
        dead = f"http://127.0.0.1:{_free_port()}"
        code, out = run("witness", "--once", "--log", dead, "--state-dir", str(state))
        assert code == 2
    finally:
        server.should_exit = True
        thread.join(10)
