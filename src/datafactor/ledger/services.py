"""Ledger use cases over the control-plane database: append, prove, sign, witness, verify.

Every function takes the caller's ``Session`` and never commits: an entry appended with
``append_event`` inside a registration's transaction lands (and becomes durable) together with the
registration or not at all. Appends lock the one ``ledger_head`` row (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite writers already hold the write lock from ``BEGIN IMMEDIATE``), so indexes are
dense and assigned in commit order; callers therefore keep ledger appends near the end of their
transaction. The stand-alone ``Integrator`` (``integrator.py``) batches many appends into one
transaction and signs checkpoints.

Roots and proofs never scan the log: the RFC 9162 algorithms in ``merkle`` ask for perfect-subtree
hashes, and ``_read_with_store`` first runs the algorithm against a recorder to learn which
(level, index) pairs it needs, fetches them all in two queries (leaf hashes, interior nodes), then
runs it again on the fetched hashes — O(log n) rows in two round trips, whatever the log's size.

``verify_log`` is the fsck: it re-hashes every entry, rebuilds every interior node and every signed
root from scratch in fixed-size aligned chunks, and names the first index where the stored log
and the signed checkpoints disagree.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy import Select, event, func, insert, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from datafactor import audit
from datafactor.audit import record as audit_record
from datafactor.errors import N_, InvalidInput, NotFound
from datafactor.ledger.jcs import canonical_json
from datafactor.ledger.keys import LogKeyStore
from datafactor.ledger.merkle import (
    HASH_SIZE,
    batch_inclusion_proofs,
    consistency_proof,
    inclusion_proof,
    tree_root,
    verify_consistency,
)
from datafactor.ledger.models import (
    LEAF_BLOCK_BITS,
    LedgerAlert,
    LedgerCheckpoint,
    LedgerCosignature,
    LedgerEntry,
    LedgerHead,
    LedgerKey,
    LedgerWitness,
)
from datafactor.ledger.note import (
    Checkpoint,
    CosignatureVerifier,
    NoteSignature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
    sign_note,
)
from datafactor.ledger.receipt import Receipt
from datafactor.ledger.witness import ALERT_HEADER
from datafactor.settings import Settings

DEFAULT_ORIGIN = "datafactor.local/ledger"
MAX_ENTRY_BYTES = 64 * 1024
MAX_PAGE = 1000
AUDIT_ANCHOR_KIND = "audit.chain_head"

_KIND = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_T = TypeVar("_T")


class LedgerRequestError(InvalidInput):
    """A malformed or out-of-range ledger request: 400, as the public API promises."""

    status = 400
    code = "bad-ledger-request"


class LedgerCorruptError(RuntimeError):
    """The stored tree is missing a hash it must have, or disagrees with a signed checkpoint."""


# ------------------------------------------------------------------------------------ the head


def _head_stmt() -> Select[LedgerHead]:
    return (
        select(LedgerHead)
        .where(LedgerHead.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _lock_head(session: Session) -> LedgerHead:
    """The head row, locked for this transaction; created on first use without racing."""
    head = session.scalars(_head_stmt()).one_or_none()
    if head is None:
        values = {"id": 1, "size": 0, "anchored_audit_seq": 0}
        dialect = session.get_bind().dialect.name
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql.insert(LedgerHead).values(**values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            stmt = sqlite.insert(LedgerHead).values(**values).on_conflict_do_nothing()
        else:  # pragma: no cover - only the two supported databases
            stmt = insert(LedgerHead).values(**values)
        session.execute(stmt)
        head = session.scalars(_head_stmt()).one()
    return head


def tree_size(session: Session) -> int:
    """The number of committed entries (visible to this transaction)."""
    cursor, _ = _cursor(session)
    try:
        cursor.execute("SELECT size FROM ledger_head WHERE id = 1")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- reading the tree

_ZERO = bytes(HASH_SIZE)


class _Recorder:
    """A ``HashReader`` that only notes which subtrees an algorithm asks for."""

    def __init__(self) -> None:
        self.wanted: set[tuple[int, int]] = set()

    def get_subtree(self, level: int, index: int) -> bytes:
        self.wanted.add((level, index))
        return _ZERO


class _Fetched:
    """A ``HashReader`` over hashes fetched in advance."""

    def __init__(self, hashes: Mapping[tuple[int, int], bytes]) -> None:
        self.hashes = hashes

    def get_subtree(self, level: int, index: int) -> bytes:
        try:
            return self.hashes[(level, index)]
        except KeyError:
            raise LookupError(f"no stored subtree at level {level}, index {index}") from None


def _cursor(session: Session) -> tuple[Any, str]:
    """A DB-API cursor inside the session's transaction, and the driver's placeholder.

    The proof and append paths issue a handful of tiny queries whose cost is mostly the ORM's own
    overhead, so they go to the driver directly (the SQL is fixed; only integers are bound).
    """
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    return dbapi.cursor(), "?" if connection.dialect.name == "sqlite" else "%s"


def _fetch(session: Session, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored hashes at ``wanted`` (level, index) pairs, in one round trip."""
    leaves: list[int] = []
    by_level: dict[int, list[int]] = {}
    for level, index in wanted:
        if level == 0:
            leaves.append(index)
        else:
            by_level.setdefault(level, []).append(index)
    cursor, ph = _cursor(session)
    parts: list[str] = []
    params: list[int] = []
    if leaves:
        marks = ", ".join([ph] * len(leaves))
        parts.append(f"SELECT 0, idx, leaf_hash FROM ledger_entry WHERE idx IN ({marks})")  # noqa: S608
        params += leaves
    if by_level:
        terms = []
        for level, indexes in sorted(by_level.items()):
            terms.append(f"(level = {ph} AND idx IN ({', '.join([ph] * len(indexes))}))")
            params += [level, *indexes]
        where = " OR ".join(terms)
        parts.append(f"SELECT level, idx, hash FROM ledger_node WHERE {where}")  # noqa: S608
    if not parts:
        return {}
    try:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {(level, idx): bytes(digest) for level, idx, digest in cursor.fetchall()}
    finally:
        cursor.close()


def _read_with_store(session: Session, algorithm: Callable[..., _T], *args: int) -> _T:
    """Run a ``merkle`` algorithm on stored hashes with one batched fetch (see module doc)."""
    recorder = _Recorder()
    algorithm(recorder, *args)
    try:
        return algorithm(_Fetched(_fetch(session, recorder.wanted)), *args)
    except LookupError as exc:
        raise LedgerCorruptError(f"the stored tree is incomplete: {exc}") from exc


def _check_size(session: Session, size: int | None, what: str = "tree_size") -> int:
    current = tree_size(session)
    if size is None:
        return current
    if not 0 <= size <= current:
        raise LedgerRequestError(
            N_("{what} must be between 0 and the log's size {current}; got {size}."),
            field=what,
            what=what,
            current=current,
            size=size,
        )
    return size


def root_at(session: Session, size: int) -> bytes:
    """The tree head MTH of the first ``size`` entries."""
    return _read_with_store(session, tree_root, size)


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 9162 audit path for leaf ``index`` in the tree of ``tree_size`` entries."""

    index: int
    tree_size: int
    leaf_hash: bytes
    proof: list[bytes]


def prove_inclusion(session: Session, index: int, size: int | None = None) -> InclusionProof:
    """The inclusion proof of entry ``index`` (default tree size: the latest checkpoint's)."""
    if size is None:
        latest = latest_checkpoint(session)
        size = latest.size if latest is not None and latest.size > index else tree_size(session)
    size = _check_size(session, size)
    if not 0 <= index < size:
        raise LedgerRequestError(
            N_("index must be below tree_size {size}; got {index}."),
            field="index",
            size=size,
            index=index,
        )
    digest, proof = _read_with_store(session, _leaf_and_path, index, size)
    return InclusionProof(index, size, digest, proof)


def _leaf_and_path(reader: Any, index: int, size: int) -> tuple[bytes, list[bytes]]:
    leaf: bytes = reader.get_subtree(0, index)
    return leaf, inclusion_proof(reader, index, size)


def prove_consistency(session: Session, first: int, second: int | None = None) -> list[bytes]:
    """The consistency proof from tree size ``first`` to ``second`` (default: current size)."""
    second = _check_size(session, second, "second")
    if not 0 <= first <= second:
        raise LedgerRequestError(
            N_("first must be between 0 and second ({second}); got {first}."),
            field="first",
            first=first,
            second=second,
        )
    return _read_with_store(session, consistency_proof, first, second)


# -------------------------------------------------------------------------------- appending


def event_entry(kind: str, payload: Mapping[str, Any], at: datetime | None = None) -> bytes:
    """The canonical (RFC 8785) bytes of an event: ``{"at", "kind", "payload"}``."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidInput(
            N_("A ledger event kind is lower-case letters, digits and . _ : - (at most 64)."),
            field="kind",
        )
    if not isinstance(payload, Mapping):
        raise InvalidInput(N_("A ledger event payload must be a JSON object."), field="payload")
    stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        return canonical_json({"at": stamp, "kind": kind, "payload": dict(payload)})
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            N_("The ledger event payload cannot be written as canonical JSON: {reason}"),
            field="payload",
            reason=str(exc),
        ) from exc


def _check_entry(entry: bytes) -> bytes:
    if not isinstance(entry, bytes | bytearray | memoryview):
        raise InvalidInput(N_("A ledger entry must be bytes."))
    raw = bytes(entry)
    if len(raw) > MAX_ENTRY_BYTES:
        raise InvalidInput(
            N_("A ledger entry is at most {limit} bytes; this one has {size}."),
            limit=MAX_ENTRY_BYTES,
            size=len(raw),
        )
    return raw


def _frontier(session: Session, size: int) -> list[tuple[int, int, bytes]]:
    """The compact range of the first ``size`` leaves: (level, index, hash), largest first."""
    coords: list[tuple[int, int]] = []
    position = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            coords.append((level, position >> level))
            position += 1 << level
    fetched = _fetch(session, coords)
    try:
        return [(level, index, fetched[(level, index)]) for level, index in coords]
    except KeyError as exc:
        raise LedgerCorruptError(f"the stored tree is missing the subtree {exc}") from None


_INSERT_ENTRY = "INSERT INTO ledger_entry (idx, entry, leaf_hash) VALUES (?, ?, ?)"
_INSERT_NODE = "INSERT INTO ledger_node (level, idx, hash) VALUES (?, ?, ?)"


def append_many(session: Session, entries: Sequence[bytes]) -> list[int]:
    """Append ``entries`` (exact leaf bytes) in order; return their indexes.

    Writes one ``ledger_entry`` row per entry and one ``ledger_node`` row per subtree the batch
    completes (about one per entry), all in the caller's transaction: durable when it commits.
    """
    batch = _append(session, entries)
    if batch is None:
        return []
    return list(range(batch.start, batch.start + len(batch.leaves)))


@dataclass(slots=True)  # not frozen: an integrator makes one per entry, and that costs 2×
class Appended:
    """An appended entry with its inclusion proof in the tree as it stands after its batch."""

    index: int
    tree_size: int
    leaf_hash: bytes
    proof: list[bytes]


def append_with_proofs(session: Session, entries: Sequence[bytes]) -> list[Appended]:
    """Like ``append_many``, and also prove each entry's inclusion in the resulting tree.

    The proofs cost no extra reads: every hash they need is either one of the frontier subtrees
    read for the append or a subtree the batch completed (a left sibling of a new leaf is never
    strictly inside an older complete subtree), so an integrator can hand each caller its index
    and audit path together.
    """
    batch = _append(session, entries)
    return [] if batch is None else _prove_batch(batch)


# The compact range of a tree's first ``size`` leaves: (size, [(level, index, hash), …]).
Frontier = tuple[int, list[tuple[int, int, bytes]]]


def append_group(
    session: Session, entries: Sequence[bytes], *, proofs: bool, frontier: Frontier | None = None
) -> tuple[list[Appended] | list[int], Frontier | None]:
    """The integrator's group commit: ``append_with_proofs`` (``proofs``) or ``append_many``,
    of ``entries`` that each went through ``_check_entry`` already (as the integrator's queue
    does).

    Also returns the frontier of the tree the batch leaves, which the caller may hand back as
    ``frontier`` for its next batch once this one committed: it is used only if the head still
    has that size (nobody appended in between), and saves reading it again.
    """
    batch = _append(session, entries, frontier, checked=True)
    if batch is None:
        return [], frontier
    results: list[Appended] | list[int] = (
        _prove_batch(batch) if proofs else list(range(batch.start, batch.start + len(batch.leaves)))
    )
    return results, (batch.start + len(batch.leaves), batch.after)


def _prove_batch(batch: _Batch) -> list[Appended]:
    start, leaves = batch.start, batch.leaves
    size = start + len(leaves)
    known = dict(zip(zip(repeat(0), range(start, size)), leaves, strict=True))
    for level, index, digest in chain(batch.frontier, batch.nodes):
        known[level, index] = digest
    proofs = batch_inclusion_proofs(known, start, size)
    return list(map(Appended, range(start, size), repeat(size), leaves, proofs))


@dataclass(frozen=True)
class _Batch:
    """What ``_append`` wrote: the first index, the frontier before the batch, the new leaf
    hashes, the (level, index, hash) of every subtree it completed, and the frontier after."""

    start: int
    frontier: list[tuple[int, int, bytes]]
    leaves: list[bytes]
    nodes: list[tuple[int, int, bytes]]
    after: list[tuple[int, int, bytes]]


_LOCKED_SIZE: Final = select(LedgerHead.size).where(LedgerHead.id == 1).with_for_update()


def _locked_size(session: Session) -> int:
    """Lock the head row (as ``_lock_head`` does) and return the tree size, without loading the
    ORM object.

    The batch path runs this for every group commit, where the ORM object's load and the flush of
    its update cost more than the rest of the batch's Python. It is a Core select through the
    session (autoflushed first, like the ORM query, so rows keep being written and locked in the
    same order: the transaction's own work, then the ledger head; and seen by what watches the
    session's locking selects, as the lock-order tests do).
    """
    size = session.execute(_LOCKED_SIZE).scalar_one_or_none()
    if size is None:  # the first append into this database: create the row without racing
        return _lock_head(session).size
    return int(size)


def _append(
    session: Session,
    entries: Sequence[bytes],
    known_frontier: Frontier | None = None,
    *,
    checked: bool = False,
) -> _Batch | None:
    """Write the batch (see ``_Batch``); None if it is empty.

    ``known_frontier`` is a frontier the caller already holds (the integrator keeps the one its
    last committed batch left): used when the locked head still has its size, which means nobody
    appended since, so the read is saved. ``checked``: every entry already went through
    ``_check_entry`` (the integrator checks each as it is queued).
    """
    raws = entries if checked else [_check_entry(e) for e in entries]
    if not raws:
        return None
    cursor, ph = _cursor(session)
    try:
        start = _locked_size(session)
        if known_frontier is not None and known_frontier[0] == start:
            frontier = known_frontier[1]
        else:
            frontier = _frontier(session, start)
        stack = [(level, digest) for level, _, digest in frontier]
        sha = hashlib.sha256
        entry_rows: list[tuple[int, bytes, bytes]] = []
        node_rows: list[tuple[int, int, bytes]] = []
        leaves: list[bytes] = []
        index = start
        for raw in raws:
            digest = sha(b"\x00" + raw).digest()
            leaves.append(digest)
            entry_rows.append((index, raw, digest))
            level = 0
            while stack and stack[-1][0] == level:
                _, left = stack.pop()
                digest = sha(b"\x01" + left + digest).digest()
                level += 1
                node_rows.append((level, index >> level, digest))
            stack.append((level, digest))
            index += 1
        cursor.executemany(_INSERT_ENTRY.replace("?", ph), entry_rows)
        if node_rows:
            cursor.executemany(_INSERT_NODE.replace("?", ph), node_rows)
        cursor.execute(f"UPDATE ledger_head SET size = {ph} WHERE id = 1", (index,))  # noqa: S608
    finally:
        cursor.close()
    session.info["ledger_appended"] = True
    after: list[tuple[int, int, bytes]] = []
    position = 0
    for level, digest in stack:  # largest first, as in ``_frontier``
        after.append((level, position >> level, digest))
        position += 1 << level
    return _Batch(start, frontier, leaves, node_rows, after)


def append_event(session: Session, kind: str, payload: Mapping[str, Any]) -> int:
    """Append one event to the ledger in the caller's transaction; return its index.

    The entry is ``canonical_json({"at": <UTC time>, "kind": kind, "payload": payload})``. It is
    durable once the caller commits, and a signed checkpoint covers it within about a second
    (the integrator signs one whenever the tree has grown). The payload is public forever:
    never put personal information in it (use ids, or hashes of identifiers).
    """
    return append_many(session, [event_entry(kind, payload)])[0]


# Ask any integrator in this process to look at the tree soon after a transaction appended.
_commit_listeners: list[Callable[[], None]] = []


def on_append_commit(callback: Callable[[], None]) -> Callable[[], None]:
    """Register ``callback`` to run after any session that appended commits; returns an undo."""
    _commit_listeners.append(callback)
    return lambda: _commit_listeners.remove(callback)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("ledger_appended", False):
        for callback in list(_commit_listeners):
            callback()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("ledger_appended", None)


# ------------------------------------------------------------------------------ reading entries


@dataclass(frozen=True)
class StoredEntry:
    """One entry as stored: index, exact bytes and leaf hash."""

    index: int
    entry: bytes
    leaf_hash: bytes

    def event(self) -> dict[str, Any] | None:
        """The decoded event when the entry is a ledger event, else None (for display)."""
        try:
            value = json.loads(self.entry)
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) and "kind" in value else None


def get_entry(session: Session, index: int) -> StoredEntry:
    size = tree_size(session)
    if not 0 <= index < size:
        raise LedgerRequestError(
            N_("index must be between 0 and {last}; got {index}."),
            field="index",
            last=size - 1,
            index=index,
        )
    row = session.get(LedgerEntry, index)
    if row is None:
        raise LedgerCorruptError(f"entry {index} is missing from the store")
    return StoredEntry(row.idx, bytes(row.entry), bytes(row.leaf_hash))


def list_entries(session: Session, start: int, limit: int) -> list[StoredEntry]:
    """Entries ``start``, ``start+1``, … (at most ``limit``) below the committed size."""
    if start < 0:
        raise LedgerRequestError(N_("start must not be negative."), field="start")
    if not 1 <= limit <= MAX_PAGE:
        raise LedgerRequestError(
            N_("limit must be between 1 and {max}."), field="limit", max=MAX_PAGE
        )
    end = min(start + limit, tree_size(session))
    rows = session.execute(
        select(LedgerEntry.idx, LedgerEntry.entry, LedgerEntry.leaf_hash)
        .where(LedgerEntry.idx >= start, LedgerEntry.idx < end)
        .order_by(LedgerEntry.idx)
    )
    return [StoredEntry(i, bytes(e), bytes(h)) for i, e, h in rows]


def recent_entries(session: Session, count: int = 20) -> list[StoredEntry]:
    size = tree_size(session)
    start = max(0, size - count)
    return list(reversed(list_entries(session, start, max(1, min(count, MAX_PAGE)))))


# One index seek per block of 2**LEAF_BLOCK_BITS entries (the index is keyed (block, leaf hash)),
# each a correlated subquery: as a join, SQLite 3.40 with planner statistics (after an ANALYZE)
# puts a Bloom filter in front of the expression index that drops matches. The literal shift must
# match the index's expression for the database to use it.
_FIND_BY_LEAF_HASH: Final = text(  # a constant shift; every value is bound
    "WITH RECURSIVE block(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM block WHERE k < :last) "  # noqa: S608
    "SELECT e.idx, e.entry, e.leaf_hash FROM ledger_entry AS e WHERE e.idx = ("
    " SELECT min(found) FROM (SELECT (SELECT f.idx FROM ledger_entry AS f"
    f"  WHERE (f.idx >> {LEAF_BLOCK_BITS}) = block.k AND f.leaf_hash = :digest AND f.idx < :size"
    "  ORDER BY f.idx LIMIT 1) AS found FROM block) AS hits)"
)


def find_by_leaf_hash(session: Session, digest: bytes) -> StoredEntry:
    """The first entry whose leaf hash is ``digest``.

    Costs one index seek per 4,096 entries of the log (about 250 at 10^6 entries, 2,500 at
    10^7): the price of appends that write only the current block's index pages.
    """
    size = tree_size(session)
    params = {"last": (size - 1) >> LEAF_BLOCK_BITS, "digest": digest, "size": size}
    row = session.execute(_FIND_BY_LEAF_HASH, params).first() if size else None
    if row is None:
        raise NotFound(N_("No ledger entry has this leaf hash."))
    return StoredEntry(row[0], bytes(row[1]), bytes(row[2]))


# ------------------------------------------------------------------------------- checkpoints


@lru_cache(maxsize=16)
def _keystore(directory: str, origin: str) -> LogKeyStore:
    return LogKeyStore(Path(directory), origin)


def keystore_for(var_dir: Path, origin: str = DEFAULT_ORIGIN) -> LogKeyStore:
    """The (process-wide, cached) log key store under ``<var_dir>/ledger``."""
    return _keystore(str(Path(var_dir).resolve() / "ledger"), origin)


def keys_for(settings: Settings) -> LogKeyStore:
    """The log key store of a deployment: ``<var_dir>/ledger``, named after the log's origin.

    The origin comes from a ``ledger_origin`` setting when the deployment defines one; the key
    file keeps the name it was created with, so the origin never changes under a running log.
    """
    origin = getattr(settings, "ledger_origin", None) or DEFAULT_ORIGIN
    return keystore_for(settings.var_dir, origin)


def _register_key(session: Session, signer: Signer) -> LedgerKey:
    vkey = signer.verifier().key_string()
    key = session.scalars(select(LedgerKey).where(LedgerKey.vkey == vkey)).one_or_none()
    if key is None:
        key = LedgerKey(name=signer.name, key_hash=signer.key_hash, vkey=vkey)
        session.add(key)
        session.flush()
    return key


def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    return session.scalars(
        select(LedgerCheckpoint)
        .order_by(LedgerCheckpoint.size.desc(), LedgerCheckpoint.id.desc())
        .limit(1)
    ).first()


def sign_checkpoint(
    session: Session, keys: LogKeyStore, *, force: bool = False
) -> LedgerCheckpoint | None:
    """Sign a checkpoint of the current tree if it grew since the last one (or ``force``).

    Before signing, the new root is checked to be consistent with the previous checkpoint from
    the stored hashes: a damaged store makes the log refuse to sign rather than sign a fork.
    Returns the new checkpoint, or None when there was nothing new to sign.
    """
    head = _lock_head(session)
    signer = keys.ensure()
    previous = latest_checkpoint(session)
    if (
        previous is not None
        and not force
        and previous.size == head.size
        and previous.key_id == _register_key(session, signer).id
    ):
        return None
    size = head.size
    root = root_at(session, size)
    if previous is not None:
        if previous.size > size:
            raise LedgerCorruptError(
                f"the log has {size} entries but a checkpoint of size {previous.size} was signed"
            )
        proof = _read_with_store(session, consistency_proof, previous.size, size)
        if not verify_consistency(previous.size, size, previous.root, root, proof):
            raise LedgerCorruptError(
                f"the stored tree of size {size} is not consistent with the checkpoint of size "
                f"{previous.size}; refusing to sign (run `datafactor ledger verify`)"
            )
    key = _register_key(session, signer)
    body = Checkpoint(signer.name, size, root).format()
    checkpoint = LedgerCheckpoint(
        size=size, root=root, note=sign_note(body, [signer]), key_id=key.id
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def ensure_checkpoint(session: Session, keys: LogKeyStore) -> LedgerCheckpoint:
    """The latest checkpoint, signing one first if there is none or the tree grew."""
    signed = sign_checkpoint(session, keys)
    if signed is not None:
        return signed
    latest = latest_checkpoint(session)
    assert latest is not None
    return latest


def log_verifiers(session: Session) -> list[Verifier]:
    """Verifiers of every key the log ever signed with, current and retired."""
    return [Verifier.from_key_string(k.vkey) for k in session.scalars(select(LedgerKey))]


def current_vkey(session: Session, keys: LogKeyStore) -> str:
    return keys.ensure().verifier().key_string()


@dataclass(frozen=True)
class KeyInfo:
    vkey: str
    created_at: datetime
    retired_at: datetime | None


def list_keys(session: Session) -> list[KeyInfo]:
    rows = session.scalars(select(LedgerKey).order_by(LedgerKey.id))
    return [KeyInfo(k.vkey, k.created_at, k.retired_at) for k in rows]


def rotate_key(session: Session, keys: LogKeyStore, *, actor_name: str = "system") -> str:
    """Retire the log key, sign a fresh checkpoint with a new one; return the new verifier key.

    The retired key's verifier stays in ``ledger_key`` (and ``GET /api/v1/ledger/keys``), so every
    checkpoint signed before the rotation still verifies. The rotation checkpoint is signed by
    both keys, so a client that trusts the old key can learn the new one from it.
    """
    _lock_head(session)
    old = keys.ensure()
    old_key = _register_key(session, old)
    _, new = keys.rotate()
    new_key = _register_key(session, new)
    old_key.retired_at = datetime.now(UTC)
    size = tree_size(session)
    root = root_at(session, size)
    body = Checkpoint(new.name, size, root).format()
    session.add(
        LedgerCheckpoint(size=size, root=root, note=sign_note(body, [new, old]), key_id=new_key.id)
    )
    audit_record(
        session,
        actor=None,
        actor_name=actor_name,
        action="ledger:key:rotate",
        object_type="ledger_key",
        object_id=f"{new.key_hash:08x}",
        summary=f"Log key {old.key_hash:08x} retired; new key {new.key_hash:08x}",
        party_id=None,
    )
    session.flush()
    return new.verifier().key_string()


def cosignatures_of(session: Session, checkpoint: LedgerCheckpoint) -> list[tuple[str, str, int]]:
    """(witness name, witness vkey, cosigned POSIX time) for each cosignature of a checkpoint."""
    rows = session.execute(
        select(LedgerWitness.name, LedgerWitness.vkey, LedgerCosignature.signature)
        .join(LedgerCosignature, LedgerCosignature.witness_id == LedgerWitness.id)
        .where(LedgerCosignature.checkpoint_id == checkpoint.id)
        .order_by(LedgerWitness.name)
    )
    return [(name, vkey, CosignatureVerifier.timestamp_of(bytes(sig))) for name, vkey, sig in rows]


def cosigned_note(session: Session, checkpoint: LedgerCheckpoint) -> str:
    """The checkpoint note with every stored witness cosignature line appended."""
    rows = session.execute(
        select(LedgerWitness.vkey, LedgerCosignature.signature)
        .join(LedgerCosignature, LedgerCosignature.witness_id == LedgerWitness.id)
        .where(LedgerCosignature.checkpoint_id == checkpoint.id)
        .order_by(LedgerWitness.name)
    )
    lines = []
    for vkey, signature in rows:
        verifier = _witness_verifier(vkey)
        lines.append(NoteSignature(verifier.name, verifier.key_hash, bytes(signature)).line())
    return checkpoint.note + "".join(lines)


def checkpoint_with_quorum(session: Session, quorum: int) -> LedgerCheckpoint | None:
    """The latest checkpoint cosigned by at least ``quorum`` distinct witnesses."""
    count = func.count(LedgerCosignature.id)
    row = session.execute(
        select(LedgerCheckpoint.id)
        .join(LedgerCosignature, LedgerCosignature.checkpoint_id == LedgerCheckpoint.id)
        .join(LedgerWitness, LedgerWitness.id == LedgerCosignature.witness_id)
        .where(LedgerWitness.active.is_(True))
        .group_by(LedgerCheckpoint.id, LedgerCheckpoint.size)
        .having(count >= quorum)
        .order_by(LedgerCheckpoint.size.desc(), LedgerCheckpoint.id.desc())
        .limit(1)
    ).first()
    return None if row is None else session.get(LedgerCheckpoint, row[0])


def receipt_for(
    session: Session, index: int, keys: LogKeyStore, *, checkpoint: LedgerCheckpoint | None = None
) -> Receipt:
    """A self-contained receipt for entry ``index`` against the latest (or given) checkpoint."""
    checkpoint = checkpoint or latest_checkpoint(session)
    if checkpoint is None or checkpoint.size <= index:
        checkpoint = sign_checkpoint(session, keys) or latest_checkpoint(session)
    if checkpoint is None or not 0 <= index < checkpoint.size:
        raise LedgerRequestError(
            N_("Entry {index} is not covered by a signed checkpoint yet."),
            field="index",
            index=index,
        )
    entry = get_entry(session, index)
    proof = _read_with_store(session, inclusion_proof, index, checkpoint.size)
    key = session.get(LedgerKey, checkpoint.key_id)
    assert key is not None
    witness_keys = tuple(vkey for _, vkey, _ in cosignatures_of(session, checkpoint))
    return Receipt(
        index=index,
        entry=entry.entry,
        tree_size=checkpoint.size,
        proof=tuple(proof),
        checkpoint=cosigned_note(session, checkpoint),
        log_key=key.vkey,
        witness_keys=witness_keys,
    )


# ------------------------------------------------------------------------------ witnesses


@lru_cache(maxsize=256)
def _witness_verifier(vkey: str) -> CosignatureVerifier:
    return CosignatureVerifier.from_key_string(vkey)


def add_witness(session: Session, vkey: str, *, actor_name: str = "system") -> LedgerWitness:
    """Accept cosignatures and alerts from the witness with verifier key ``vkey``."""
    try:
        verifier = CosignatureVerifier.from_key_string(vkey.strip())
    except ValueError as exc:
        raise InvalidInput(
            N_("Not a valid witness verifier key: {reason}"), field="vkey", reason=str(exc)
        ) from exc
    canonical = verifier.key_string()
    existing = session.scalars(
        select(LedgerWitness).where(
            or_(LedgerWitness.name == verifier.name, LedgerWitness.vkey == canonical)
        )
    ).first()
    if existing is not None:
        if existing.vkey != canonical:
            raise InvalidInput(
                N_("A witness named {name} with another key is already registered."),
                field="vkey",
                name=verifier.name,
            )
        existing.active = True
        return existing
    witness = LedgerWitness(name=verifier.name, vkey=canonical, active=True)
    session.add(witness)
    audit_record(
        session,
        actor=None,
        actor_name=actor_name,
        action="ledger:witness:add",
        object_type="ledger_witness",
        object_id=verifier.name[:64],
        summary=f"Witness {verifier.name} registered ({canonical})",
        party_id=None,
    )
    session.flush()
    return witness


def remove_witness(session: Session, name: str, *, actor_name: str = "system") -> None:
    witness = session.scalars(select(LedgerWitness).where(LedgerWitness.name == name)).first()
    if witness is None:
        raise NotFound(N_("No witness named {name}."), name=name)
    witness.active = False
    audit_record(
        session,
        actor=None,
        actor_name=actor_name,
        action="ledger:witness:remove",
        object_type="ledger_witness",
        object_id=name[:64],
        summary=f"Witness {name} no longer accepted",
        party_id=None,
    )


def list_witnesses(session: Session) -> list[LedgerWitness]:
    return list(session.scalars(select(LedgerWitness).order_by(LedgerWitness.name)))


@dataclass(frozen=True)
class CosignResult:
    """The witnesses whose cosignatures were stored, and the checkpoint's tree size."""

    accepted: list[str]
    tree_size: int


def accept_cosignatures(session: Session, note_text: str) -> CosignResult:
    """Store the cosignatures of registered witnesses on a checkpoint this log signed.

    ``note_text`` is the checkpoint note with the witnesses' cosignature lines appended (the
    C2SP tlog-cosignature form). Returns the names of the witnesses whose cosignatures were
    accepted; refuses a checkpoint this log did not sign, a bad cosignature, or a note with no
    cosignature from a registered witness.
    """
    try:
        body, signatures = parse_note(note_text)
        checkpoint = Checkpoint.parse(body)
    except ValueError as exc:
        raise LedgerRequestError(
            N_("Not a cosigned checkpoint note: {reason}"), reason=str(exc)
        ) from exc
    ours = session.scalars(
        select(LedgerCheckpoint).where(
            LedgerCheckpoint.size == checkpoint.size, LedgerCheckpoint.root == checkpoint.root_hash
        )
    ).first()
    if ours is None or parse_note(ours.note)[0] != body:
        raise LedgerRequestError(
            N_("This log never signed a checkpoint of size {size} with this root."),
            size=checkpoint.size,
        )
    witnesses = {
        (w.name, _witness_verifier(w.vkey).key_hash): w
        for w in session.scalars(select(LedgerWitness).where(LedgerWitness.active.is_(True)))
    }
    message = body.encode("utf-8")
    accepted: list[str] = []
    for sig in signatures:
        witness = witnesses.get((sig.name, sig.key_hash))
        if witness is None or witness.name in accepted:
            continue
        if not _witness_verifier(witness.vkey).verify(message, sig.signature):
            raise LedgerRequestError(
                N_("The cosignature by witness {name} does not verify."), name=witness.name
            )
        cosigned_at = datetime.fromtimestamp(CosignatureVerifier.timestamp_of(sig.signature), UTC)
        exists = session.scalar(
            select(LedgerCosignature.id).where(
                LedgerCosignature.checkpoint_id == ours.id,
                LedgerCosignature.witness_id == witness.id,
            )
        )
        if exists is None:
            session.add(
                LedgerCosignature(
                    checkpoint_id=ours.id,
                    witness_id=witness.id,
                    signature=sig.signature,
                    cosigned_at=cosigned_at,
                )
            )
        if (witness.last_cosigned_size or -1) <= ours.size:
            witness.last_cosigned_size = ours.size
            witness.last_cosigned_at = cosigned_at
        accepted.append(witness.name)
    if not accepted:
        raise LedgerRequestError(
            N_("The note carries no cosignature from a registered witness."),
            code="unknown-witness",
        )
    session.flush()
    return CosignResult(accepted, ours.size)


def accept_alert(session: Session, note_text: str) -> AlertInfo:
    """Record a witness's signed alert (a checkpoint inconsistent with what it saw before).

    The alert is a signed note whose body is ``datafactor-witness-alert/v1`` followed by one line
    of JSON; it must be signed by a registered witness (the witness's Ed25519 key, type 0x01).
    """
    verifiers = [
        Verifier(w.name, _witness_verifier(w.vkey).public_key)
        for w in session.scalars(select(LedgerWitness).where(LedgerWitness.active.is_(True)))
    ]
    try:
        body, names = open_note(note_text, verifiers)
    except UnverifiedNoteError as exc:
        raise LedgerRequestError(
            N_("The alert is not signed by a registered witness."), code="unknown-witness"
        ) from exc
    except ValueError as exc:
        raise LedgerRequestError(N_("Not a signed alert: {reason}"), reason=str(exc)) from exc
    header, _, rest = body.partition("\n")
    try:
        if header != ALERT_HEADER:
            raise ValueError(f"the first line must be {ALERT_HEADER}")
        data = json.loads(rest)
        if not isinstance(data, dict):
            raise ValueError("the alert body is not a JSON object")
        kind = str(data.get("kind", ""))[:32] or "inconsistent"
        message = str(data.get("message", ""))[:4000]
        old_size = data.get("old_size")
        new_size = data.get("new_size")
    except ValueError as exc:
        raise LedgerRequestError(N_("Not a signed alert: {reason}"), reason=str(exc)) from exc
    witness = session.scalars(select(LedgerWitness).where(LedgerWitness.name == names[0])).one()
    alert = LedgerAlert(
        witness_id=witness.id,
        kind=kind,
        message=message,
        old_size=old_size if isinstance(old_size, int) else None,
        new_size=new_size if isinstance(new_size, int) else None,
        report=note_text,
    )
    session.add(alert)
    audit_record(
        session,
        actor=None,
        actor_name=f"witness:{witness.name}"[:64],
        action="ledger:alert:raise",
        object_type="ledger_alert",
        object_id=witness.name[:64],
        summary=f"Witness {witness.name} refused a checkpoint: {message}"[:2000],
        party_id=None,
    )
    session.flush()
    return _alert_info(alert, witness.name)


@dataclass(frozen=True)
class AlertInfo:
    id: int
    witness: str
    kind: str
    message: str
    old_size: int | None
    new_size: int | None
    created_at: datetime
    resolved_at: datetime | None


def list_alerts(session: Session, *, include_resolved: bool = False) -> list[AlertInfo]:
    stmt = (
        select(LedgerAlert, LedgerWitness.name)
        .join(LedgerWitness, LedgerWitness.id == LedgerAlert.witness_id)
        .order_by(LedgerAlert.id.desc())
    )
    if not include_resolved:
        stmt = stmt.where(LedgerAlert.resolved_at.is_(None))
    return [_alert_info(a, name) for a, name in session.execute(stmt)]


def _alert_info(a: LedgerAlert, witness: str) -> AlertInfo:
    return AlertInfo(
        a.id, witness, a.kind, a.message, a.old_size, a.new_size, a.created_at, a.resolved_at
    )


# -------------------------------------------------------------------------------- anchoring


def anchor_audit_head(session: Session) -> int | None:
    """Append the audit chains' heads unless they are already anchored; return the index. The
    payload: ``seq`` the events the heads account for, ``hash`` their digest
    (``audit.heads_digest``), ``chains`` each non-empty chain's ``[chain, seq, hash]``."""
    heads = [h for h in audit.chain_heads(session) if h[1]]
    total = sum(n for _, n, _ in heads)
    if total == 0:
        return None
    head = _lock_head(session)
    if head.anchored_audit_seq >= total:
        return None
    payload = {
        "seq": total,
        "hash": audit.heads_digest(heads),
        "chains": [list(h) for h in heads],
    }
    index = append_event(session, AUDIT_ANCHOR_KIND, payload)
    head.anchored_audit_seq = total
    session.flush()
    return index
