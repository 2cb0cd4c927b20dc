"""The public ledger API and explorer, end to end through the app: no login, exact formats,
400 problem+json for every malformed or out-of-range parameter, witnesses cosigning over HTTP
and raising a visible alert on a rewritten history."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from datafactor.db import Database
from datafactor.ledger import (
    Checkpoint,
    CosignatureVerifier,
    Verifier,
    leaf_hash,
    open_note,
    services,
    verify_consistency,
    verify_inclusion,
)
from datafactor.ledger.models import (
    LedgerCheckpoint,
    LedgerCosignature,
    LedgerEntry,
    LedgerHead,
    LedgerNode,
)
from datafactor.ledger.witness import Witness
from datafactor.settings import Settings

API = "/api/v1/ledger"


def _append(app: Any, n: int, kind: str = "test.event") -> list[int]:
    integrator = app.state.ledger_integrator
    return [integrator.append_event(kind, {"i": i}) for i in range(n)]


def _checkpoint_of(client: TestClient, size: int) -> str:
    deadline = time.monotonic() + 3
    while True:
        note = client.get(f"{API}/checkpoint").text
        if int(note.split("\n")[1]) >= size or time.monotonic() > deadline:
            return note
        time.sleep(0.05)


def _transport(client: TestClient):  # type: ignore[no-untyped-def]
    def call(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "text/plain; charset=utf-8"} if body is not None else {}
        response = client.request(method, path, content=body, headers=headers)
        return response.status_code, response.content

    return call


def test_checkpoint_and_key_are_plain_text_and_verify(client: TestClient, app: Any) -> None:
    _append(app, 5)
    note = _checkpoint_of(client, 5)
    response = client.get(f"{API}/checkpoint")
    assert response.headers["content-type"].startswith("text/plain")
    key = client.get(f"{API}/key")
    assert key.headers["content-type"].startswith("text/plain")
    vkey = key.text.strip()
    body, names = open_note(note, [Verifier.from_key_string(vkey)])
    checkpoint = Checkpoint.parse(body)
    assert checkpoint.size == 5
    assert names == [checkpoint.origin]
    assert vkey.startswith(checkpoint.origin + "+")
    keys = client.get(f"{API}/keys").json()
    assert [k["vkey"] for k in keys] == [vkey]
    assert keys[0]["retired_at"] is None


def test_entries_proofs_and_lookup(client: TestClient, app: Any) -> None:
    _append(app, 12)
    note = _checkpoint_of(client, 12)
    root = Checkpoint.parse(note[: note.index("\n\n") + 1]).root_hash
    one = client.get(f"{API}/entries/7").json()
    assert set(one) == {"index", "entry", "leaf_hash"}
    raw = base64.b64decode(one["entry"])
    assert json.loads(raw)["payload"] == {"i": 7}
    assert one["leaf_hash"] == leaf_hash(raw).hex()

    page = client.get(f"{API}/entries", params={"start": 10, "limit": 5}).json()
    assert [e["index"] for e in page["items"]] == [10, 11]
    assert page["tree_size"] == 12
    assert page["next"] is None
    assert client.get(f"{API}/entries", params={"limit": 4}).json()["next"] == 4

    proof = client.get(f"{API}/proof/inclusion", params={"index": 7, "tree_size": 12}).json()
    assert set(proof) == {"index", "tree_size", "leaf_hash", "proof"}
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 7, 12, [bytes.fromhex(p) for p in proof["proof"]], root
    )
    default = client.get(f"{API}/proof/inclusion", params={"index": 7}).json()
    assert default == proof

    cons = client.get(f"{API}/proof/consistency", params={"first": 5, "second": 12}).json()
    assert set(cons) == {"first", "second", "proof"}
    with app.state.db.read() as session:
        root5 = services.root_at(session, 5)
    assert verify_consistency(5, 12, root5, root, [bytes.fromhex(p) for p in cons["proof"]])

    found = client.get(f"{API}/entries/by-hash/{one['leaf_hash']}").json()
    assert found == one
    assert client.get(f"{API}/entries/by-hash/{'ab' * 32}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/entries/abc",
        "/entries/-1",
        "/entries/1.5",
        "/entries/99",
        "/entries/99999999999999999999999",
        "/entries?start=-3",
        "/entries?start=x",
        "/entries?limit=0",
        "/entries?limit=1001",
        "/entries?start=50",
        "/entries/by-hash/zz",
        "/entries/by-hash/" + "a" * 63,
        "/proof/inclusion",
        "/proof/inclusion?index=3",
        "/proof/inclusion?index=3&tree_size=3",
        "/proof/inclusion?index=0&tree_size=4",
        "/proof/inclusion?index=0&tree_size=0x1",
        "/proof/inclusion?index=1e3&tree_size=2",
        "/proof/consistency?first=2",
        "/proof/consistency?first=3&second=2",
        "/proof/consistency?first=1&second=4",
        "/proof/consistency?first=&second=",
        "/proof/consistency?first=1&second=2&extra=1",
        "/checkpoint?min_cosignatures=x",
        "/checkpoint?min_cosignatures=1",
        "/receipts/7",
        "/receipts/abc",
    ],
)
def test_malformed_or_out_of_range_parameters_answer_400(
    client: TestClient, app: Any, path: str
) -> None:
    _append(app, 3)
    response = client.get(API + path)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert problem["detail"]


def test_receipts_download_and_check_on_the_explorer(client: TestClient, app: Any) -> None:
    _append(app, 6)
    _checkpoint_of(client, 6)
    receipt = client.get(f"{API}/receipts/4")
    assert receipt.status_code == 200
    data = receipt.json()
    assert data["format"] == "datafactor-ledger-receipt/v1"
    assert data["index"] == 4
    ok = client.post(
        "/ledger/receipt", files={"receipt": ("r.json", receipt.content, "application/json")}
    )
    assert ok.status_code == 200
    assert 'class="alert success" data-testid="receipt-result"' in ok.text
    data["inclusion_proof"][0] = "00" * 32
    bad = client.post(
        "/ledger/receipt",
        files={"receipt": ("r.json", json.dumps(data).encode(), "application/json")},
    )
    assert 'class="alert error" role="alert" data-testid="receipt-result"' in bad.text
    junk = client.post("/ledger/receipt", files={"receipt": ("r.json", b"{nope", "text/plain")})
    assert junk.status_code == 400
    assert "receipt-result" in junk.text


def test_explorer_pages_are_public(client: TestClient, app: Any) -> None:
    _append(app, 3, "registry.certificate.issued")
    _checkpoint_of(client, 3)
    page = client.get("/ledger", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert 'data-testid="checkpoint-note"' in page.text
    assert page.text.count('data-testid="entry-row"') == 3
    assert "registry.certificate.issued" in page.text
    entry = client.get("/ledger/entries/1", headers={"Accept-Language": "en"})
    assert entry.status_code == 200
    assert 'data-testid="receipt-link"' in entry.text
    lookup = client.get("/ledger/lookup", params={"q": "2"}, follow_redirects=False)
    assert lookup.status_code == 303
    assert lookup.headers["location"] == "/ledger/entries/2"
    digest = client.get(f"{API}/entries/0").json()["leaf_hash"]
    lookup = client.get("/ledger/lookup", params={"q": digest.upper()}, follow_redirects=False)
    assert lookup.headers["location"] == "/ledger/entries/0"
    assert client.get("/ledger/lookup", params={"q": "nonsense"}).status_code == 400
    assert client.get("/ledger/lookup", params={"q": "77"}).status_code == 400
    assert client.get("/ledger/entries/zz").status_code == 400


def test_unsigned_or_unknown_cosignatures_and_alerts_are_refused(client: TestClient) -> None:
    for path in ("/cosignatures", "/alerts"):
        response = client.post(
            API + path, content=b"not a note", headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
    big = client.post(
        f"{API}/cosignatures", content=b"x" * 70_000, headers={"Content-Type": "text/plain"}
    )
    assert big.status_code == 400


def test_a_witness_cosigns_over_http_and_alerts_on_a_rewritten_history(
    client: TestClient, app: Any, db: Database, settings: Settings, tmp_path: Path
) -> None:
    witness = Witness(_transport(client), tmp_path / "witness", name="regulator")
    with db.write() as session:
        services.add_witness(session, witness.vkey)
    _append(app, 10)
    _checkpoint_of(client, 10)

    first = witness.run_once()
    assert first.status == "cosigned", first.message
    served = client.get(f"{API}/checkpoint").text
    cosigner = CosignatureVerifier.from_key_string(witness.vkey)
    assert open_note(served, [cosigner])[1] == ["regulator"]
    assert client.get(f"{API}/checkpoint", params={"min_cosignatures": 1}).text == served
    listed = client.get(f"{API}/witnesses").json()
    assert listed[0]["name"] == "regulator"
    assert listed[0]["last_cosigned_size"] == first.size

    _append(app, 5)
    _checkpoint_of(client, 15)
    second = witness.run_once()
    assert second.status == "cosigned", second.message
    assert "consistent with tree size" in second.message
    assert witness.run_once().status == "unchanged"

    # The operator rewrites entry 3 and re-signs a history that hides it: new entries, new
    # checkpoint from scratch, everything internally consistent.
    with db.write() as session:
        old = [services.get_entry(session, i).entry for i in range(15)]
        old[3] = old[3].replace(b'"i":3', b'"i":333')
        session.execute(delete(LedgerCosignature))
        session.execute(delete(LedgerCheckpoint))
        session.execute(delete(LedgerNode))
        session.execute(delete(LedgerEntry))
        session.execute(update(LedgerHead).values(size=0))
        services.append_many(session, [*old, b'{"cover":"up"}'])
        services.sign_checkpoint(session, services.keys_for(settings))
    refused = witness.run_once()
    assert refused.status == "refused"
    assert "inconsistent" in refused.message
    assert witness.state.size == 15  # it keeps vouching only for what it saw
    assert (tmp_path / "witness" / "alerts.jsonl").read_text().count("\n") == 1
    alerts = client.get(f"{API}/alerts").json()
    assert len(alerts) == 1
    assert alerts[0]["witness"] == "regulator"
    assert alerts[0]["kind"] == "inconsistent"
    assert (alerts[0]["old_size"], alerts[0]["new_size"]) == (15, 16)
    page = client.get("/ledger", headers={"Accept-Language": "en"})
    assert 'data-testid="ledger-alert"' in page.text
    assert "Witness regulator refused a checkpoint" in page.text
    # The same bad checkpoint is refused again, but alerted only once.
    assert witness.run_once().status == "refused"
    assert len(client.get(f"{API}/alerts").json()) == 1
