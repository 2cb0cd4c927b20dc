"""Batch hashing for ``ledger verify``: the native module agrees with the Python reference.

``make install`` builds ``datafactor.ledger._native``; both it and the Python fallback must give
exactly the RFC 6962 hashes of ``merkle.py``, and both must refuse (``None``) a chunk that does not
split into exactly its entries, so that verify re-reads it row by row.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import fill, make_entries
from sqlalchemy import text

from datafactor.db import Database
from datafactor.ledger import batch
from datafactor.ledger.merkle import leaf_hash, node_hash

SEP = 0x0A
Joined = Callable[[bytes, int, int], bytes | None]
Levels = Callable[[bytes], list[bytes]]


def _impl(name: str) -> tuple[Joined, Levels]:
    if name == "python":
        return batch.py_leaf_hashes_joined, batch.py_subtree_levels
    assert batch._native is not None, "datafactor.ledger._native is not built: run `make install`"
    return batch._native.leaf_hashes_joined, batch._native.subtree_levels


both = pytest.mark.parametrize("impl", ["python", "native"])
entries = st.lists(
    st.binary(max_size=80).map(lambda e: e.replace(b"\n", b"")), min_size=1, max_size=40
)


def test_the_native_reader_shares_sqlite_with_the_sqlite3_module() -> None:
    # Otherwise closing the reader's connection could drop the session's locks (two SQLite copies
    # in one process), and verify reads everything through SQL instead.
    import _hashlib
    import _sqlite3

    assert batch._native is not None
    assert batch._native.same_sqlite(_sqlite3.__file__)
    assert not batch._native.same_sqlite(_hashlib.__file__)
    assert batch.same_sqlite()


def test_the_native_module_is_built() -> None:
    # make install compiles it (gcc and OpenSSL's headers come with `make install`'s build deps);
    # without it verify still works, about three times slower, so a missing build must be seen.
    assert batch.NATIVE, "datafactor.ledger._native is not built: run `make install`"


@both
@settings(max_examples=150, deadline=None)
@given(items=entries)
def test_leaf_hashes_of_joined_entries(impl: str, items: list[bytes]) -> None:
    joined, _ = _impl(impl)
    expected = b"".join(leaf_hash(e) for e in items)
    assert joined(b"\n".join(items), SEP, len(items)) == expected


@both
@settings(max_examples=150, deadline=None)
@given(items=entries, data=st.data())
def test_a_chunk_that_does_not_split_into_its_entries_is_refused(
    impl: str, items: list[bytes], data: st.DataObject
) -> None:
    joined, _ = _impl(impl)
    if data.draw(st.booleans()):  # an entry holds the separator
        k = data.draw(st.integers(0, len(items) - 1))
        at = data.draw(st.integers(0, len(items[k])))
        items[k] = items[k][:at] + b"\n" + items[k][at:]
        count = len(items)
    else:  # the count is not the number of entries
        count = data.draw(
            st.sampled_from([n for n in (len(items) - 1, len(items) + 1, 2**62) if n])
        )
    assert joined(b"\n".join(items), SEP, count) is None


@both
@settings(max_examples=100, deadline=None)
@given(leaves=st.integers(1, 70))
def test_subtree_levels_are_rfc_6962_nodes(impl: str, leaves: int) -> None:
    _, levels = _impl(impl)
    hashes = [leaf_hash(b"%d" % i) for i in range(leaves)]
    expected = [b"".join(hashes)]
    while len(hashes) > 1:
        hashes = [node_hash(a, b) for a, b in zip(hashes[0::2], hashes[1::2], strict=False)]
        expected.append(b"".join(hashes))
    assert levels(expected[0]) == expected


@both
def test_bad_arguments_are_refused(impl: str) -> None:
    joined, levels = _impl(impl)
    with pytest.raises(ValueError, match="multiple of 32"):
        levels(b"x" * 33)
    with pytest.raises(ValueError, match="multiple of 32"):
        levels(b"")
    with pytest.raises(ValueError, match="count positive"):
        joined(b"", SEP, 0)
    with pytest.raises(ValueError, match="sep must be a byte"):
        joined(b"", 256, 1)


# ------------------------------------------------------------------- the native SQLite reader

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _reader(db: Database) -> Any:
    assert batch.SqliteReader is not None, "datafactor.ledger._native is not built"
    return batch.SqliteReader(db.engine.url.database or "")


def _tamper(db: Database, sql: str) -> None:
    with db.write() as session:
        session.execute(text(sql))


@sqlite_only
def test_the_reader_vouches_for_a_clean_range_only(db: Database) -> None:
    entries = make_entries(40)
    fill(db, entries)
    reader = _reader(db)
    digests = [leaf_hash(e) for e in entries]
    assert reader.leaf_hashes(0, 40) == b"".join(digests)
    assert reader.leaf_hashes(8, 16) == b"".join(digests[8:16])
    assert reader.leaf_hashes(32, 41) is None  # entry 40 does not exist
    level1 = [node_hash(a, b) for a, b in zip(digests[0::2], digests[1::2], strict=True)]
    assert reader.nodes(1, 0, 20) == b"".join(level1)
    assert reader.nodes(1, 0, 21) is None
    for damage in [
        "UPDATE ledger_entry SET entry = CAST('{}' AS BLOB) WHERE idx = 9",
        "UPDATE ledger_entry SET leaf_hash = substr(leaf_hash, 1, 31) WHERE idx = 9",
        "UPDATE ledger_entry SET leaf_hash = CAST(leaf_hash AS TEXT) WHERE idx = 9",
        "UPDATE ledger_entry SET entry = CAST(entry AS TEXT) WHERE idx = 9",
        "DELETE FROM ledger_entry WHERE idx = 9",
    ]:
        _tamper(db, damage)  # committed: the reader's own connection sees it
        assert reader.leaf_hashes(8, 16) is None, damage
        assert reader.leaf_hashes(16, 24) == b"".join(digests[16:24]), damage
        _restore(db, entries, 9)
    _tamper(db, "UPDATE ledger_node SET hash = CAST(hash AS TEXT) WHERE level = 1 AND idx = 3")
    assert reader.nodes(1, 0, 20) is None
    assert reader.nodes(1, 4, 20) == b"".join(level1[4:])
    reader.close()


def _restore(db: Database, entries: list[bytes], index: int) -> None:
    with db.write() as session:
        session.execute(text("DELETE FROM ledger_entry WHERE idx = :i"), {"i": index})
        session.execute(
            text("INSERT INTO ledger_entry (idx, entry, leaf_hash) VALUES (:i, :e, :h)"),
            {"i": index, "e": entries[index], "h": leaf_hash(entries[index])},
        )


@sqlite_only
def test_the_reader_refuses_bad_arguments_and_bad_files(db: Database, tmp_path: Path) -> None:
    fill(db, make_entries(4))
    reader = _reader(db)
    with pytest.raises(ValueError, match="start < stop"):
        reader.leaf_hashes(3, 3)
    with pytest.raises(ValueError, match="first < stop"):
        reader.nodes(1, -1, 2)
    with pytest.raises(RuntimeError, match="already open"):
        reader.__init__(db.engine.url.database or "")  # type: ignore[misc]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: a connection does not survive a fork
        try:
            reader.leaf_hashes(0, 4)
            os._exit(1)
        except RuntimeError as exc:
            os._exit(0 if "another process" in str(exc) else 2)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.leaf_hashes(0, 4)
    with pytest.raises(RuntimeError, match="cannot open the ledger database"):
        batch.SqliteReader(str(tmp_path / "missing.db"))
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(RuntimeError, match="cannot read the ledger tables"):
        batch.SqliteReader(str(empty))
