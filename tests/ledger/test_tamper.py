"""Tampering with the stored log is caught by ``ledger verify``, which names where.

Each test damages the database the way an intruder or a broken disk would — an entry's bytes, a
leaf hash, an interior node, the tail of the log, or a wholesale consistent rewrite — and checks
that the fsck reports it at the right index, in one process and with forked workers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from ledger_support import fill, make_entries
from sqlalchemy import delete, text, update

from datafactor.db import Database
from datafactor.ledger import batch, fsck, services
from datafactor.ledger.fsck import verify_log
from datafactor.ledger.keys import LogKeyStore
from datafactor.ledger.merkle import leaf_hash
from datafactor.ledger.models import LedgerEntry, LedgerHead, LedgerNode


@pytest.fixture(params=[1, 2, 0], ids=["one-process", "two-workers", "one-process-sql"])
def workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    if request.param == 0:
        # On SQLite, clean chunks are read by the native reader; read everything through SQL too.
        monkeypatch.setattr(fsck, "_open_reader", lambda session: None)
        return 1
    if request.param > 1:
        # Exercise the forked workers on a small log (normally only above PARALLEL_MIN).
        monkeypatch.setattr(fsck, "PARALLEL_MIN", 0)
        monkeypatch.setattr(fsck, "CHUNK_LEVEL", 3)
        monkeypatch.setattr(fsck, "CHUNK", 8)
        monkeypatch.setattr(fsck, "_can_fork", lambda: True)
    return int(request.param)


def _log(db: Database, keys: LogKeyStore, sizes: tuple[int, ...] = (40, 77)) -> None:
    done = 0
    for size in sizes:
        fill(db, make_entries(size)[done:size], batch=9)
        with db.write() as session:
            services.sign_checkpoint(session, keys)
        done = size


def _verify(db: Database, workers: int) -> fsck.VerifyReport:
    with db.read() as session:
        report = verify_log(session, workers=workers)
    assert report.workers == workers
    return report


def test_an_intact_log_verifies(db: Database, keys: LogKeyStore, workers: int) -> None:
    _log(db, keys)
    report = _verify(db, workers)
    assert report.ok, report.problems
    assert report.entries_checked == 77
    assert report.checkpoints_checked == 2
    assert report.root == report.checkpoint_root
    assert report.first_bad_index is None


def test_a_changed_entry_is_named(db: Database, keys: LogKeyStore, workers: int) -> None:
    _log(db, keys)
    with db.write() as session:
        session.execute(
            update(LedgerEntry).where(LedgerEntry.idx == 33).values(entry=b'{"n":33,"p":"x"}')
        )
    report = _verify(db, workers)
    assert not report.ok
    assert report.first_bad_index == 33
    assert "entry 33 does not match its stored leaf hash" in report.problems[0].message


def test_a_changed_leaf_hash_is_named(db: Database, keys: LogKeyStore, workers: int) -> None:
    _log(db, keys)
    with db.write() as session:
        session.execute(
            update(LedgerEntry).where(LedgerEntry.idx == 70).values(leaf_hash=bytes(32))
        )
    report = _verify(db, workers)
    assert report.first_bad_index == 70


def test_leaf_hash_bytes_shifted_between_neighbours_are_named(
    db: Database, keys: LogKeyStore, workers: int
) -> None:
    # Verify reads a chunk's stored leaf hashes and entries as one joined value; two leaf hashes
    # of the wrong length that still concatenate to the right bytes must not pass for a match.
    _log(db, keys)
    with db.read() as session:
        rows = [session.get(LedgerEntry, i) for i in (30, 31)]
        left, right = (row.leaf_hash for row in rows if row is not None)
    with db.write() as session:
        for i, value in ((30, left[:31]), (31, left[31:] + right)):
            session.execute(update(LedgerEntry).where(LedgerEntry.idx == i).values(leaf_hash=value))
    report = _verify(db, workers)
    assert [p.first_index for p in report.problems[:2]] == [30, 31]
    assert report.first_bad_index == 30


def _set_entry(db: Database, index: int, **values: bytes) -> None:
    with db.write() as session:
        session.execute(update(LedgerEntry).where(LedgerEntry.idx == index).values(**values))


@pytest.mark.parametrize("cut", [5, 36, 0], ids=["hash-5-bytes", "hash-36-bytes", "hash-empty"])
def test_the_hash_entry_boundary_moved_inside_a_row_is_named(
    db: Database, keys: LogKeyStore, workers: int, cut: int
) -> None:
    # leaf_hash || entry is unchanged, but the store now serves other bytes as entry 31.
    _log(db, keys)
    entry = make_entries(77)[31]
    record = leaf_hash(entry) + entry
    _set_entry(db, 31, leaf_hash=record[:cut], entry=record[cut:])
    report = _verify(db, workers)
    assert report.first_bad_index == 31
    assert "entry 31 does not match its stored leaf hash" in report.problems[0].message


def test_a_row_boundary_moved_onto_a_newline_inside_a_hash_is_named(
    db: Database, keys: LogKeyStore, workers: int
) -> None:
    # Every stored leaf hash is still 32 bytes and the chunk's bytes joined by newlines are
    # unchanged: the newline between rows b-1 and b moved into entry b-1, and a newline byte inside
    # H_b became the boundary. Verify must not read the chunk as the original rows.
    _log(db, keys)
    entries = make_entries(77)
    hashes = [leaf_hash(e) for e in entries]
    b, j = next(
        (b, h.index(b"\n"))
        for b, h in enumerate(hashes)
        if b % 8 and b"\n" in h and h.index(b"\n") < len(entries[b])
    )
    rest = hashes[b][j + 1 :] + entries[b]
    _set_entry(db, b - 1, entry=entries[b - 1] + b"\n" + hashes[b][:j])
    _set_entry(db, b, leaf_hash=rest[:32], entry=rest[32:])
    report = _verify(db, workers)
    assert report.first_bad_index == b - 1
    assert {p.first_index for p in report.problems} >= {b - 1, b}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("table", "column", "where", "named"),
    [
        ("ledger_entry", "entry", "idx = 31", "entry 31 is stored as text, not as bytes"),
        ("ledger_entry", "leaf_hash", "idx = 31", "the leaf hash of entry 31 is stored as text"),
        ("ledger_node", "hash", "level = 1 AND idx = 15", "stored node (level 1, index 15)"),
        ("ledger_node", "hash", "level = 6 AND idx = 0", "stored node (level 6, index 0)"),
    ],
)
def test_a_value_stored_as_text_is_named(
    db: Database, keys: LogKeyStore, workers: int, table: str, column: str, where: str, named: str
) -> None:
    # SQLite keeps a TEXT value in a BLOB column (a hex literal without X'', a careless repair):
    # the bytes are right, but the application reads back a str and cannot serve the row.
    _log(db, keys)
    with db.write() as session:
        session.execute(text(f"UPDATE {table} SET {column} = CAST({column} AS TEXT) WHERE {where}"))
    report = _verify(db, workers)
    assert not report.ok
    assert any(named in p.message and "stored as text" in p.message for p in report.problems)


def test_entries_holding_the_separator_are_still_checked(
    db: Database, keys: LogKeyStore, workers: int
) -> None:
    # A foreign entry may hold the byte verify joins a chunk's entries with (canonical JSON never
    # does); such a chunk is read row by row, and a change in it is still named.
    entries = [b'{"n":%d}' % i + (b"\n" if i % 5 == 2 else b"") for i in range(45)]
    fill(db, entries, batch=9)
    with db.write() as session:
        services.sign_checkpoint(session, keys)
    report = _verify(db, workers)
    assert report.ok, report.problems
    assert report.entries_checked == 45
    with db.write() as session:
        session.execute(
            update(LedgerEntry).where(LedgerEntry.idx == 22).values(entry=b'{"n":22}\n\n')
        )
    report = _verify(db, workers)
    assert report.first_bad_index == 22
    assert "entry 22 does not match its stored leaf hash" in report.problems[0].message


@pytest.mark.parametrize(("level", "index"), [(1, 5), (3, 2), (6, 0)])
def test_a_changed_interior_node_is_named(
    db: Database, keys: LogKeyStore, workers: int, level: int, index: int
) -> None:
    _log(db, keys)
    with db.write() as session:
        session.execute(
            update(LedgerNode)
            .where(LedgerNode.level == level, LedgerNode.idx == index)
            .values(hash=bytes(32))
        )
    report = _verify(db, workers)
    assert not report.ok
    first = index << level
    assert report.first_bad_index == first
    assert f"stored node (level {level}, index {index})" in report.problems[0].message


def test_node_bytes_shifted_between_neighbours_are_named(
    db: Database, keys: LogKeyStore, workers: int
) -> None:
    # The stored nodes of a level still concatenate to the right bytes, but two of them are the
    # wrong length: the bulk comparison of a level must not take that for a match.
    _log(db, keys)
    with db.read() as session:
        left, right = (
            session.get(LedgerNode, {"level": 1, "idx": i}).hash  # type: ignore[union-attr]
            for i in (4, 5)
        )
    with db.write() as session:
        for i, value in ((4, left[:31]), (5, left[31:] + right)):
            session.execute(
                update(LedgerNode)
                .where(LedgerNode.level == 1, LedgerNode.idx == i)
                .values(hash=value)
            )
    report = _verify(db, workers)
    assert not report.ok
    assert report.first_bad_index == 8
    assert "stored node (level 1, index 4)" in report.problems[0].message


def test_a_missing_interior_node_is_named(db: Database, keys: LogKeyStore, workers: int) -> None:
    _log(db, keys)
    with db.write() as session:
        session.execute(delete(LedgerNode).where(LedgerNode.level == 2, LedgerNode.idx == 3))
    report = _verify(db, workers)
    assert report.first_bad_index == 12
    assert "stored node (level 2, index 3)" in report.problems[0].message
    assert "is missing" in report.problems[0].message


def test_a_truncated_log_is_caught_by_the_signed_checkpoint(
    db: Database, keys: LogKeyStore, workers: int
) -> None:
    _log(db, keys)
    with db.write() as session:
        session.execute(delete(LedgerEntry).where(LedgerEntry.idx >= 60))
        session.execute(update(LedgerHead).values(size=60))
    report = _verify(db, workers)
    assert report.first_bad_index == 60
    assert any("truncated" in p.message for p in report.problems)


def test_a_consistent_rewrite_is_bracketed_by_the_checkpoints(
    db: Database, keys: LogKeyStore, workers: int
) -> None:
    _log(db, keys)
    # Rebuild the whole store with entry 50 changed: every stored hash agrees with the entries,
    # only the signed checkpoints remember the original.
    items = make_entries(77)
    items[50] = b'{"n":50,"p":"rewritten"}'
    with db.write() as session:
        session.execute(delete(LedgerNode))
        session.execute(delete(LedgerEntry))
        session.execute(update(LedgerHead).values(size=0))
        services.append_many(session, items)
    report = _verify(db, workers)
    assert not report.ok
    assert report.first_bad_index == 40  # the checkpoint of size 40 still matches
    assert "checkpoint" in report.problems[0].message
    assert "40..76" in report.problems[0].message


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_chunks_are_read_by_the_native_reader(
    db: Database, keys: LogKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast path on SQLite (see _native.c); without it verify still works, through SQL.
    _log(db, keys)
    opened: list[object] = []
    real = fsck._open_reader

    def spy(session: object) -> object:
        opened.append(real(session))  # type: ignore[arg-type]
        return opened[-1]

    monkeypatch.setattr(fsck, "_open_reader", spy)
    assert _verify(db, 1).ok
    assert opened and opened[0] is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL's BIGINT rounds it
def test_a_node_with_a_fractional_index_is_named(
    db: Database, keys: LogKeyStore, workers: int
) -> None:
    # SQLite keeps 3.5 in a BIGINT column: it sorts and ranges like index 3, but no proof finds it.
    _log(db, keys)
    with db.write() as session:
        session.execute(
            update(LedgerNode).where(LedgerNode.level == 1, LedgerNode.idx == 3).values(idx=3.5)
        )
    report = _verify(db, workers)
    assert report.first_bad_index == 6
    assert (
        "stored node (level 1, index 3) over entries 6..7 is missing" in report.problems[0].message
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_verify_reads_the_file_the_session_has_open_whatever_the_working_directory(
    db: Database,
    keys: LogKeyStore,
    workers: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A relative URL is resolved when the engine is made; a clean copy of the database under the
    # same name in the current working directory must not be what verify (or a worker) reads.
    _log(db, keys)
    path = Path(db.engine.url.database or "")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with sqlite3.connect(path) as source, sqlite3.connect(elsewhere / path.name) as copy:
        source.backup(copy)
    _set_entry(db, 33, entry=b'{"n":33,"p":"x"}')
    monkeypatch.chdir(path.parent)
    relative = Database(f"sqlite:///{path.name}")
    try:
        monkeypatch.chdir(elsewhere)
        report = _verify(relative, workers)
    finally:
        relative.dispose()
    assert report.first_bad_index == 33


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failing_native_reader_hands_over_to_sql(
    db: Database, keys: LogKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Say the database is locked for the reader's own connection: verify goes on through SQL.
    class Locked:
        def __init__(self, path: str) -> None:
            pass

        def leaf_hashes(self, start: int, stop: int) -> bytes | None:
            raise RuntimeError("cannot read the ledger: database is locked")

        nodes = leaf_hashes

        def close(self) -> None:
            pass

    _log(db, keys)
    _set_entry(db, 33, entry=b'{"n":33,"p":"x"}')
    monkeypatch.setattr(batch, "SqliteReader", Locked)
    report = _verify(db, 1)
    assert report.entries_checked == 77
    assert report.first_bad_index == 33
