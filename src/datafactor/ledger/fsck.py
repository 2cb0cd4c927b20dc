"""``ledger verify``: re-derive the whole tree from the entry bytes and check everything stored.

The log is cut into aligned perfect subtrees (the binary decomposition of its size, the larger
pieces halved until there is work for every core). Each piece is read in aligned chunks of
``2**CHUNK_LEVEL`` entries straight from the DB-API cursor, each chunk as one joined value and each
level of its stored nodes as another (a row tuple per entry would cost more than the hashing);
every entry is re-hashed and compared with its stored leaf hash and every interior node the chunk
completes is rebuilt and compared with the stored one (each a single call of ``batch``, native
code when built). The piece's root — plus the piece-local part of the root at every signed
checkpoint size inside it — is handed back. Pieces are independent, so on a large log they are
scanned by forked worker processes, each with its own database connection, and only the few nodes
that straddle pieces and the final folds are done by the parent. The fork-based workers need a
POSIX system and a single-threaded caller (the CLI); otherwise, and for small logs, everything
runs in the calling process.

Every disagreement is reported with the range of entries it implicates, and ``first_bad_index``
names the earliest: an entry whose bytes do not hash to its stored leaf hash is named exactly; a
stored node that does not match the entries names its subtree; an entry rewritten together with
every hash above it is caught by the signed checkpoints and bracketed between the last one that
still matches and the first that does not; a truncated log names the first missing entry.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datafactor.ledger import batch
from datafactor.ledger.merkle import EMPTY_ROOT, leaf_hash, node_hash
from datafactor.ledger.models import LedgerCheckpoint, LedgerEntry
from datafactor.ledger.note import Checkpoint, Verifier, open_note, parse_note
from datafactor.ledger.services import log_verifiers, tree_size

CHUNK_LEVEL = 14
CHUNK = 1 << CHUNK_LEVEL
PARALLEL_MIN = 1 << 18
MAX_PROBLEMS = 100


@dataclass
class VerifyProblem:
    """One disagreement, located as precisely as the stored data allows."""

    first_index: int
    last_index: int
    message: str


@dataclass
class VerifyReport:
    """The outcome of ``verify_log``: the re-derived roots against the signed checkpoints."""

    size: int = 0
    entries_checked: int = 0
    checkpoint_size: int | None = None
    checkpoint_root: str | None = None
    root: str | None = None
    checkpoints_checked: int = 0
    workers: int = 1
    problems: list[VerifyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        """The earliest index the problems point at, preferring the most precise evidence.

        Each problem says "some entry in [first, last] is bad". Taking the narrowest first, a
        problem whose range already holds an index named by a more precise one adds nothing
        (a changed entry also breaks the checkpoints after it); any other names its first index.
        """
        named: list[int] = []
        for p in sorted(self.problems, key=lambda p: (p.last_index - p.first_index, p.first_index)):
            if not any(p.first_index <= i <= p.last_index for i in named):
                named.append(p.first_index)
        return min(named, default=None)

    def add(self, first: int, last: int, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(VerifyProblem(first, last, message))


@dataclass
class _Piece:
    """The scan of one aligned perfect subtree ``[offset, offset + 2**level)`` (or its prefix)."""

    offset: int
    level: int
    root: bytes = b""
    local_roots: dict[int, bytes] = field(default_factory=dict)
    problems: list[VerifyProblem] = field(default_factory=list)
    checked: int = 0
    missing_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "level": self.level,
            "root": self.root.hex(),
            "local_roots": {str(k): v.hex() for k, v in self.local_roots.items()},
            "problems": [[p.first_index, p.last_index, p.message] for p in self.problems],
            "checked": self.checked,
            "missing_at": self.missing_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Piece:
        return cls(
            offset=data["offset"],
            level=data["level"],
            root=bytes.fromhex(data["root"]),
            local_roots={int(k): bytes.fromhex(v) for k, v in data["local_roots"].items()},
            problems=[VerifyProblem(a, b, m) for a, b, m in data["problems"]],
            checked=data["checked"],
            missing_at=data["missing_at"],
        )


class _Problems:
    def __init__(self, sink: list[VerifyProblem]) -> None:
        self.sink = sink

    def add(self, first: int, last: int, message: str) -> None:
        if len(self.sink) < MAX_PROBLEMS:
            self.sink.append(VerifyProblem(first, last, message))


def _fold_onto(prefix: Sequence[bytes], local: bytes) -> bytes:
    result = local
    for piece in reversed(prefix):
        result = node_hash(piece, result)
    return result


def _raw_cursor(session: Session) -> tuple[Any, str]:
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    placeholder = "?" if connection.dialect.name == "sqlite" else "%s"
    return dbapi.cursor(), placeholder


def _sqlite_file(session: Session) -> str | None:
    """The absolute path of the file the session's SQLite connection has open, else None.

    Not the URL's path: SQLAlchemy resolved a relative one when the engine was made, and the
    working directory may have changed since.
    """
    if session.get_bind().dialect.name != "sqlite":
        return None
    rows = session.connection().exec_driver_sql("PRAGMA database_list").all()
    return next((str(row[2]) for row in rows if row[1] == "main" and row[2]), None)


class _Reader:
    """The native ``SqliteReader`` (see ``_native.c``); after any error it is dropped and every
    later chunk is read through SQL (``None`` from either method means "read it through SQL")."""

    def __init__(self, native: Any) -> None:
        self.native = native

    def leaf_hashes(self, start: int, stop: int) -> bytes | None:
        return self._call("leaf_hashes", start, stop)

    def nodes(self, level: int, first: int, stop: int) -> bytes | None:
        return self._call("nodes", level, first, stop)

    def _call(self, method: str, *args: int) -> bytes | None:
        if self.native is None:
            return None
        try:
            result: bytes | None = getattr(self.native, method)(*args)
        except RuntimeError:  # say, "database is locked": the SQL path reads it all the same
            self.close()
            return None
        return result

    def close(self) -> None:
        if self.native is not None:
            self.native.close()
            self.native = None


def _open_reader(session: Session) -> _Reader | None:
    """A native reader of the session's SQLite file, or None: verify then reads through SQL.

    Only for a file database in WAL mode (a reader never waits for a writer there; in rollback
    mode a pending commit would lock a second connection out), and only when the native module
    links the same SQLite library as the ``sqlite3`` module: a second copy of SQLite in the
    process would drop the session's file locks when its own connection closes.
    """
    if batch.SqliteReader is None or not batch.same_sqlite():
        return None
    path = _sqlite_file(session)
    if path is None:
        return None
    mode = session.connection().exec_driver_sql("PRAGMA journal_mode").scalar()
    if str(mode).lower() != "wal":
        return None
    try:
        return _Reader(batch.SqliteReader(path))
    except RuntimeError:
        return None


def _decompose(size: int) -> list[tuple[int, int]]:
    """The aligned perfect subtrees covering ``[0, size)``, largest first: (offset, level)."""
    out = []
    offset = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((offset, level))
            offset += 1 << level
    return out


def _split_for(pieces: list[tuple[int, int]], workers: int) -> list[list[tuple[int, int]]]:
    """Halve the largest pieces until each worker can get a fair, contiguous share.

    Pieces are halved (never below a chunk) until none is more than 1/32 of a worker's
    share, then cut into ``workers`` contiguous groups, each cut placed where it leaves the
    groups before it closest to their fair share: the slowest worker sets the wall time.
    """
    pieces = list(pieces)
    total = sum(1 << level for _, level in pieces)
    limit = max(total // (32 * workers), 1)
    while True:
        biggest = max(range(len(pieces)), key=lambda i: pieces[i][1])
        offset, level = pieces[biggest]
        if level <= CHUNK_LEVEL or 1 << level <= limit:
            break
        half = level - 1
        pieces[biggest : biggest + 1] = [(offset, half), (offset + (1 << half), half)]
    groups: list[list[tuple[int, int]]] = [[]]
    done = 0
    for piece in pieces:
        size = 1 << piece[1]
        goal = total * len(groups) / workers
        if groups[-1] and len(groups) < workers and goal - done < done + size - goal:
            groups.append([])
        groups[-1].append(piece)
        done += size
    return groups


# How verify reads the store. A chunk costs two rows instead of a row tuple per entry: its entries
# joined by a byte canonical JSON never holds (a control character must be escaped) with their
# count, and its stored leaf hashes concatenated with the longest one's length. The entries split
# into exactly ``count`` pieces only if none holds the separator, and leaf hashes of at most 32
# bytes that concatenate to ``32 * count`` bytes are each exactly 32: so a chunk that splits and
# matches is, row for row, what was logged. A level of a chunk's stored nodes is one row the same
# way. Anything else is read again row by row, which names each bad entry or node (an entry that
# holds the separator — only a foreign one can — is then fine).
#
# SQLite keeps any value in any column: a hash written as TEXT (a hex literal without X'', a
# careless repair) has the right bytes for ``||`` and group_concat but reads back as ``str``, which
# the application cannot serve. So the aggregates also return the widest storage class (``blob``
# sorts first: the maximum is ``blob`` only if every value is one) and the row-by-row reads cast
# to BLOB and name the class. A node's ``idx`` must be an INTEGER too (ledger_entry's is the rowid):
# 3.5 sorts and ranges like an index but no proof finds it — the node's class is then "index".
# ledger_entry's rowid and ledger_node's WITHOUT ROWID clustering on (level, idx) make a range scan
# feed group_concat in index order (an ORDER BY subquery would double the cost); CAST makes the
# aggregate come back as bytes, without a text round trip.
_SEP = 0x0A
_DIALECT = {
    "?": {
        "joined": "CAST(group_concat({0}, {1}) AS BLOB)",
        "bytes": "CAST({0} AS BLOB), typeof({0})",
        "class": "max(typeof({0}))",
        "node_class": "CASE WHEN min(typeof(idx)) = 'integer' AND max(typeof(idx)) = 'integer' "
        "THEN max(typeof(hash)) ELSE 'index' END",
        "newline": "X'0A'",
        "empty": "''",
    },
    "%s": {
        "joined": "string_agg({0}, {1} ORDER BY idx)",
        "bytes": "{0}, 'blob'",
        "class": "'blob'",
        "node_class": "'blob'",
        "newline": "'\\x0a'::bytea",
        "empty": "''::bytea",
    },
}


@dataclass(frozen=True)
class _Sql:
    """The statements verify runs, in one dialect; ``ph`` is its parameter placeholder."""

    entries: str  # a chunk's entries joined by _SEP, their count, their widest storage class
    leaf_hashes: str  # its stored leaf hashes concatenated, the longest length, the widest class
    entry_rows: str  # row by row: idx, entry, its class, leaf hash, its class
    present: str  # the indexes stored in a range
    nodes: str  # a level's nodes in a range concatenated, count, longest length, widest class
    node_rows: str  # row by row: idx, hash, its class
    node: str  # one node: hash, its class

    @classmethod
    def of(cls, ph: str) -> _Sql:
        """Built from the fixed fragments above: no value is ever formatted into the SQL."""
        d = _DIALECT[ph]
        entries = f"FROM ledger_entry WHERE idx >= {ph} AND idx < {ph}"
        nodes = f"FROM ledger_node WHERE level = {ph} AND idx >= {ph} AND idx < {ph}"
        joined, as_bytes, widest = d["joined"].format, d["bytes"].format, d["class"].format
        return cls(
            entries=f"SELECT {joined('entry', d['newline'])}, count(*), {widest('entry')} {entries}",
            leaf_hashes=f"SELECT {joined('leaf_hash', d['empty'])}, max(length(leaf_hash)), "
            f"{widest('leaf_hash')} {entries}",
            entry_rows=f"SELECT idx, {as_bytes('entry')}, {as_bytes('leaf_hash')} {entries} "
            "ORDER BY idx",
            present=f"SELECT idx {entries}",
            nodes=f"SELECT {joined('hash', d['empty'])}, count(*), max(length(hash)), "
            f"{d['node_class']} {nodes}",
            node_rows=f"SELECT idx, {as_bytes('hash')} {nodes}",
            node=f"SELECT {as_bytes('hash')} FROM ledger_node WHERE level = {ph} AND idx = {ph}",  # noqa: S608
        )


_SQL = {ph: _Sql.of(ph) for ph in _DIALECT}


def _scan_piece(
    cursor: Any,
    ph: str,
    offset: int,
    level: int,
    sizes: Sequence[int],
    progress: Callable[[int], None] | None = None,
    reader: _Reader | None = None,
) -> _Piece:
    """Re-hash the perfect subtree at ``offset`` of ``2**level`` leaves; see the module doc.

    ``reader`` (a native ``SqliteReader``, see ``_open_reader``) reads clean chunks faster; any
    chunk it does not vouch for is read through ``cursor``.
    """
    piece = _Piece(offset, level)
    problems = _Problems(piece.problems)
    end = offset + (1 << level)
    wanted = [s for s in sizes if offset < s <= end]
    next_size = 0
    stack: list[tuple[int, bytes]] = []
    chunk = min(CHUNK, 1 << level)
    position = offset
    while position < end:
        stop = position + chunk
        hashes = reader.leaf_hashes(position, stop) if reader is not None else None
        if hashes is None:
            hashes = _chunk_leaf_hashes(cursor, ph, position, stop, problems)
        if hashes is None:
            cursor.execute(_SQL[ph].present, (position, stop))
            present = {r[0] for r in cursor.fetchall()}
            piece.missing_at = next(i for i in range(position, stop) if i not in present)
            return piece
        levels = batch.subtree_levels(hashes)
        _check_chunk_nodes(cursor, ph, position, levels, problems, reader)
        while next_size < len(wanted) and wanted[next_size] <= stop:
            s = wanted[next_size]
            next_size += 1
            pieces = [h for _, h in stack]
            rest, at = s - position, 0
            for lvl in range(rest.bit_length() - 1, -1, -1):
                if rest >> lvl & 1:
                    pieces.append(batch.digest_at(levels[lvl], at >> lvl))
                    at += 1 << lvl
            piece.local_roots[s] = _fold_onto(pieces[:-1], pieces[-1])
        _push_checked(cursor, ph, stack, len(levels) - 1, levels[-1], position, problems)
        piece.checked += stop - position
        if progress is not None:
            progress(stop - position)
        position = stop
    assert len(stack) == 1
    assert stack[0][0] == level
    piece.root = stack[0][1]
    return piece


def _chunk_leaf_hashes(
    cursor: Any, ph: str, start: int, stop: int, problems: _Problems
) -> bytes | None:
    """The leaf hashes of entries ``[start, stop)``, naming each bad one; None if one is missing."""
    sql = _SQL[ph]
    cursor.execute(sql.entries, (start, stop))
    joined, count, entry_class = cursor.fetchone()
    if count != stop - start:
        return None
    cursor.execute(sql.leaf_hashes, (start, stop))
    stored, longest, hash_class = cursor.fetchone()
    hashes = None
    if entry_class == hash_class == "blob" and longest == 32:
        hashes = batch.leaf_hashes_joined(bytes(joined), _SEP, count)
    if hashes is None or bytes(stored) != hashes:
        hashes = _check_leaf_rows(cursor, ph, start, stop, problems)
    return hashes


def _check_leaf_rows(cursor: Any, ph: str, start: int, stop: int, problems: _Problems) -> bytes:
    """Name each entry in ``[start, stop)`` whose stored leaf hash is not its entry's hash.

    Also names a value stored as another type than bytes (SQLite keeps whatever it is given; the
    application cannot read it back). Returns the entries' leaf hashes, concatenated.
    """
    cursor.execute(_SQL[ph].entry_rows, (start, stop))
    digests = []
    for i, entry, entry_class, stored, hash_class in cursor.fetchall():
        digest = leaf_hash(bytes(entry or b""))
        if entry_class != "blob":
            problems.add(i, i, f"entry {i} is stored as {entry_class}, not as bytes")
        if hash_class != "blob":
            problems.add(
                i, i, f"the leaf hash of entry {i} is stored as {hash_class}, not as bytes"
            )
        elif bytes(stored) != digest:
            problems.add(i, i, f"entry {i} does not match its stored leaf hash")
        digests.append(digest)
    return b"".join(digests)


def _check_chunk_nodes(
    cursor: Any,
    ph: str,
    start: int,
    levels: list[bytes],
    problems: _Problems,
    reader: _Reader | None = None,
) -> None:
    """Compare the stored interior nodes inside one aligned chunk with the rebuilt ones."""
    sql = _SQL[ph]
    for level in range(1, len(levels)):
        rebuilt = levels[level]
        first = start >> level
        nodes = len(rebuilt) // 32
        if reader is not None and reader.nodes(level, first, first + nodes) == rebuilt:
            continue
        cursor.execute(sql.nodes, (level, first, first + nodes))
        joined, count, longest, node_class = cursor.fetchone()
        if count == nodes and longest == 32 and node_class == "blob" and bytes(joined) == rebuilt:
            continue
        cursor.execute(sql.node_rows, (level, first, first + nodes))
        by_index = {r[0]: (bytes(r[1] or b""), r[2]) for r in cursor.fetchall()}
        for k in range(nodes):
            _check_node(
                problems, level, first + k, by_index.get(first + k), batch.digest_at(rebuilt, k)
            )


def _check_node(
    problems: _Problems, level: int, index: int, found: tuple[bytes, str] | None, digest: bytes
) -> None:
    """Name a stored node (its hash and storage class, or None) that is not ``digest``."""
    if found is None:
        what = "is missing"
    elif found[1] != "blob":
        what = f"is stored as {found[1]}, not as bytes"
    elif found[0] != digest:
        what = "does not match the entries"
    else:
        return
    lo = index << level
    hi = lo + (1 << level) - 1
    problems.add(
        lo, hi, f"stored node (level {level}, index {index}) over entries {lo}..{hi} {what}"
    )


def _push_checked(
    cursor: Any,
    ph: str,
    stack: list[tuple[int, bytes]],
    level: int,
    digest: bytes,
    first_leaf: int,
    problems: _Problems,
) -> None:
    """Push an aligned subtree on a compact range, checking each stored node a merge completes."""
    while stack and stack[-1][0] == level:
        _, left = stack.pop()
        digest = node_hash(left, digest)
        level += 1
        index = first_leaf >> level
        cursor.execute(_SQL[ph].node, (level, index))
        row = cursor.fetchone()
        _check_node(
            problems, level, index, None if row is None else (bytes(row[0] or b""), row[1]), digest
        )
    stack.append((level, digest))


def _scan_in_children(
    url: str, groups: list[list[tuple[int, int]]], sizes: Sequence[int]
) -> list[_Piece]:
    """Scan each group of pieces in a forked child with its own connection; keep the order."""
    from datafactor.db import Database

    children = []
    for group in groups:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, measured by the parent's results
            status = 0
            try:
                os.close(read_fd)
                db = Database(url, pool_size=1)
                with db.read() as session:
                    cursor, ph = _raw_cursor(session)
                    reader = _open_reader(session)
                    pieces = [
                        _scan_piece(cursor, ph, o, lv, sizes, None, reader) for o, lv in group
                    ]
                payload = json.dumps([p.to_json() for p in pieces]).encode()
            except BaseException as exc:
                payload = json.dumps({"error": repr(exc)}).encode()
                status = 1
            view = memoryview(payload)
            while view:
                written = os.write(write_fd, view)
                view = view[written:]
            os._exit(status)  # no atexit, no GC of the parent's connections
        os.close(write_fd)
        children.append((pid, read_fd))
    results: list[_Piece] = []
    errors = []
    for pid, read_fd in children:
        with os.fdopen(read_fd, "rb") as pipe:
            data = json.loads(pipe.read() or b'{"error": "worker died"}')
        os.waitpid(pid, 0)
        if isinstance(data, dict):
            errors.append(str(data.get("error")))
        else:
            results.extend(_Piece.from_json(d) for d in data)
    if errors:
        raise RuntimeError("verify worker failed: " + "; ".join(errors))
    return results


def _can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


def verify_log(
    session: Session,
    verifiers: Sequence[Verifier] | None = None,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Re-derive the whole tree from the entry bytes and check it against everything signed.

    Checks, naming the first index where each fails: every stored leaf hash is SHA-256(0x00 ||
    entry); every stored interior node equals the one rebuilt from the entries; the latest
    checkpoint's signature verifies under a log key; every stored checkpoint's signed root equals
    the rebuilt root at its size; the log holds every entry a checkpoint covers. ``workers``
    defaults to the number of CPUs for large logs (see the module doc). It checks the committed
    store (workers and the SQLite reader use connections of their own): give it a read session.
    """
    report = VerifyReport()
    size = tree_size(session)
    report.size = size
    verifiers = list(verifiers) if verifiers is not None else log_verifiers(session)
    signed = _signed_roots(session, verifiers, size, report)
    target = max([size, *signed])
    stored_rows = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
    if stored_rows != size:
        report.add(
            min(stored_rows, size),
            max(stored_rows, size),
            f"the head says {size} entries but {stored_rows} rows are stored",
        )
    sizes = sorted({size, *signed} - {0})
    pieces = _decompose(target)
    # Millions of short-lived row tuples would trigger the cyclic GC over and over for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        roots = _rebuild(session, pieces, sizes, target, workers, report, progress)
    finally:
        if gc_was_enabled:
            gc.enable()
    roots[0] = EMPTY_ROOT
    if size in roots:
        report.root = roots[size].hex()
    last_good = 0
    for s in sorted(signed):
        if s not in roots:
            break
        bad = [cid for signed_root, cid in signed[s] if signed_root != roots[s]]
        report.checkpoints_checked += len(signed[s])
        for cid in bad:
            hi = max(last_good, s - 1)
            report.add(
                last_good,
                hi,
                f"checkpoint #{cid} of size {s} signed a root the entries do not give: an entry "
                f"in {last_good}..{hi} was changed (or the log was rewritten and re-signed)",
            )
        if not bad:
            last_good = s
    return report


def _rebuild(
    session: Session,
    pieces: list[tuple[int, int]],
    sizes: Sequence[int],
    target: int,
    workers: int | None,
    report: VerifyReport,
    progress: Callable[[int], None] | None,
) -> dict[int, bytes]:
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count > 1 and target >= PARALLEL_MIN and _can_fork():
        groups = _split_for(pieces, count)
        url = session.get_bind().engine.url
        path = _sqlite_file(session)
        if path is not None:  # the file the session has open, whatever the working directory
            url = url.set(database=path)
        scanned = _scan_in_children(url.render_as_string(hide_password=False), groups, sizes)
        report.workers = len(groups)
    else:
        cursor, ph = _raw_cursor(session)
        reader = _open_reader(session)
        try:
            scanned = []
            for offset, level in pieces:
                scanned.append(_scan_piece(cursor, ph, offset, level, sizes, progress, reader))
                if scanned[-1].missing_at is not None:
                    break
        finally:
            cursor.close()
            if reader is not None:
                reader.close()
    return _combine(session, scanned, target, report, progress if report.workers > 1 else None)


def _combine(
    session: Session,
    scanned: list[_Piece],
    target: int,
    report: VerifyReport,
    progress: Callable[[int], None] | None,
) -> dict[int, bytes]:
    """Fold the pieces left to right into the roots at every wanted size."""
    cursor, ph = _raw_cursor(session)
    problems = _Problems(report.problems)
    stack: list[tuple[int, bytes]] = []
    roots: dict[int, bytes] = {}
    try:
        for piece in scanned:
            for p in piece.problems:
                report.add(p.first_index, p.last_index, p.message)
            report.entries_checked += piece.checked
            if progress is not None:
                progress(piece.checked)
            prefix = [h for _, h in stack]
            for s, local in piece.local_roots.items():
                roots[s] = _fold_onto(prefix, local)
            if piece.missing_at is not None:
                report.add(
                    piece.missing_at,
                    target - 1,
                    f"entry {piece.missing_at} is missing from the store",
                )
                break
            _push_checked(cursor, ph, stack, piece.level, piece.root, piece.offset, problems)
    finally:
        cursor.close()
    return roots


def _signed_roots(
    session: Session, verifiers: Sequence[Verifier], size: int, report: VerifyReport
) -> dict[int, list[tuple[bytes, int]]]:
    """Every stored checkpoint's (signed root, id) by size; checks the latest one's signature."""
    signed: dict[int, list[tuple[bytes, int]]] = {}
    rows = list(
        session.execute(
            select(LedgerCheckpoint.id, LedgerCheckpoint.size, LedgerCheckpoint.note).order_by(
                LedgerCheckpoint.size, LedgerCheckpoint.id
            )
        )
    )
    for cid, csize, note in rows:
        try:
            checkpoint = Checkpoint.parse(parse_note(note)[0])
        except ValueError as exc:
            report.add(csize, csize, f"checkpoint #{cid} is malformed: {exc}")
            continue
        if checkpoint.size != csize:
            report.add(
                csize, csize, f"checkpoint #{cid} row says size {csize}, note {checkpoint.size}"
            )
        signed.setdefault(checkpoint.size, []).append((checkpoint.root_hash, cid))
    if rows:
        _cid, latest_size, latest_note = rows[-1]
        report.checkpoint_size = latest_size
        try:
            body, _ = open_note(latest_note, verifiers)
            report.checkpoint_root = Checkpoint.parse(body).root_hash.hex()
        except ValueError as exc:
            report.add(latest_size, latest_size, f"the latest checkpoint does not verify: {exc}")
        if latest_size > size:
            report.add(
                size,
                latest_size - 1,
                f"the log holds {size} entries but checkpoint size {latest_size} was signed: "
                f"entries {size}..{latest_size - 1} are missing (truncated log)",
            )
    for empty_root, cid in signed.get(0, []):
        report.checkpoints_checked += 1
        if empty_root != EMPTY_ROOT:
            report.add(0, 0, f"checkpoint #{cid} of size 0 does not sign the empty root")
    return signed
