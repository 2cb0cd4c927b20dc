"""Looking ledger entries up by leaf hash (index ``ix_ledger_entry_leaf_bucket``, keyed by block of
4,096 indexes): the first copy wins across blocks, nothing at or beyond the tree size is found, the
answer does not depend on the planner's statistics, and the API and the explorer say so."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from ledger_support import fill, make_entries
from sqlalchemy import insert, text

from datafactor.db import Database
from datafactor.errors import NotFound
from datafactor.ledger import leaf_hash, services
from datafactor.ledger.models import LedgerEntry

API = "/api/v1/ledger"
EN = {"Accept-Language": "en"}


def test_lookup_finds_entries_once_the_database_has_planner_statistics(db: Database) -> None:
    # An operator's ANALYZE (or SQLite's PRAGMA optimize) gives the planner statistics; a lookup
    # must find the same entries before and after it.
    items = make_entries(20)
    fill(db, items)
    with db.write() as session:
        session.execute(text("ANALYZE"))
    with db.read() as session:
        found = [services.find_by_leaf_hash(session, leaf_hash(item)).index for item in items]
    assert found == list(range(20))


def test_the_first_copy_is_found_when_no_copy_is_in_the_first_block(db: Database) -> None:
    entries = make_entries(8_200)
    entries[4_095] = entries[4_096] = b"edge pair"  # the two sides of the first block edge
    entries[4_097] = entries[8_193] = b"twice later"  # first copy in block 1, second in block 2
    entries[8_191] = entries[8_192] = b"second edge"
    fill(db, entries, batch=5_000)
    with db.read() as session:
        assert services.find_by_leaf_hash(session, leaf_hash(b"edge pair")).index == 4_095
        assert services.find_by_leaf_hash(session, leaf_hash(b"twice later")).index == 4_097
        assert services.find_by_leaf_hash(session, leaf_hash(b"second edge")).index == 8_191


def test_a_row_at_or_beyond_the_tree_size_is_never_found(db: Database) -> None:
    # A row the head does not count yet (written outside an append) is not part of the log.
    fill(db, make_entries(3))
    with db.write() as session:
        session.execute(
            insert(LedgerEntry).values(idx=3, entry=b"not yet", leaf_hash=leaf_hash(b"not yet"))
        )
    with db.read() as session, pytest.raises(NotFound):
        services.find_by_leaf_hash(session, leaf_hash(b"not yet"))


def test_the_api_and_the_explorer_look_up_by_leaf_hash(client: TestClient, app: Any) -> None:
    empty = client.get(f"{API}/entries/by-hash/{leaf_hash(b'x').hex()}", headers=EN)
    assert empty.status_code == 404
    assert empty.headers["content-type"] == "application/problem+json"
    assert "No ledger entry has this leaf hash." in empty.json()["detail"]
    integrator = app.state.ledger_integrator
    indexes = [integrator.append(entry) for entry in (b"a", b"b", b"a")]
    assert indexes == [0, 1, 2]
    with app.state.db.write() as session:
        session.execute(text("ANALYZE"))
    found = client.get(f"{API}/entries/by-hash/{leaf_hash(b'b').hex()}", headers=EN)
    assert found.status_code == 200
    assert found.json()["index"] == 1
    assert client.get(f"{API}/entries/by-hash/{leaf_hash(b'a').hex()}").json()["index"] == 0
    lookup = client.get(
        "/ledger/lookup", params={"q": leaf_hash(b"b").hex()}, follow_redirects=False
    )
    assert (lookup.status_code, lookup.headers["location"]) == (303, "/ledger/entries/1")
    missing = client.get("/ledger/lookup", params={"q": leaf_hash(b"c").hex()}, headers=EN)
    assert missing.status_code == 404
    assert "No ledger entry has this leaf hash." in missing.text
