"""Ledger services on SQLite and PostgreSQL: appends, proofs from stored hashes, checkpoints,
keys and rotation, receipts, witnesses' cosignatures, audit anchoring and the integrator."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from aio import run_async
from ledger_support import fill, make_entries
from sqlalchemy import select, update

from datafactor import audit
from datafactor.db import Database
from datafactor.errors import InvalidInput, NotFound
from datafactor.ledger import (
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    MemoryTree,
    NoteSignature,
    Receipt,
    Verifier,
    canonical_json,
    leaf_hash,
    open_note,
    services,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)
from datafactor.ledger.fsck import verify_log
from datafactor.ledger.integrator import Integrator, IntegratorStopped
from datafactor.ledger.keys import KeyFileError, LogKeyStore
from datafactor.ledger.models import LedgerCheckpoint, LedgerNode
from datafactor.ledger.services import LedgerCorruptError, LedgerRequestError


def _tree(items: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for item in items:
        tree.append(item)
    return tree


def test_appends_get_dense_indexes_and_every_proof_matches_the_rfc_tree(db: Database) -> None:
    items = make_entries(133)
    # Uneven batches cross many subtree boundaries.
    indexes: list[int] = []
    for lo, hi in [(0, 1), (1, 2), (2, 7), (7, 64), (64, 65), (65, 100), (100, 133)]:
        with db.write() as session:
            indexes += services.append_many(session, items[lo:hi])
    assert indexes == list(range(133))
    tree = _tree(items)
    with db.read() as session:
        assert services.tree_size(session) == 133
        for size in (1, 2, 3, 64, 65, 100, 133):
            root = services.root_at(session, size)
            assert root == tree.root(size)
            for index in range(0, size, 7):
                proof = services.prove_inclusion(session, index, size)
                assert proof.proof == tree.inclusion_proof(index, size)
                assert verify_inclusion(leaf_hash(items[index]), index, size, proof.proof, root)
            for first in range(0, size + 1, 5):
                cons = services.prove_consistency(session, first, size)
                assert cons == tree.consistency_proof(first, size)
                assert verify_consistency(first, size, tree.root(first), root, cons)


def test_appends_can_return_their_proofs_without_extra_reads(db: Database) -> None:
    items = make_entries(90)
    tree = MemoryTree()
    for lo, hi in [(0, 3), (3, 4), (4, 37), (37, 64), (64, 90)]:
        with db.write() as session:
            appended = services.append_with_proofs(session, items[lo:hi])
        for item in items[lo:hi]:
            tree.append(item)
        assert [a.index for a in appended] == list(range(lo, hi))
        for a in appended:
            assert a.tree_size == hi
            assert a.leaf_hash == leaf_hash(items[a.index])
            assert a.proof == tree.inclusion_proof(a.index, hi)
            assert verify_inclusion(a.leaf_hash, a.index, hi, a.proof, tree.root(hi))


def test_group_appends_reuse_their_frontier_only_while_nobody_else_appended(
    db: Database,
) -> None:
    """The integrator hands each batch the frontier the last one left; an append by anyone else
    in between makes it stale, and the batch reads the stored one instead."""
    items = make_entries(70)
    tree = MemoryTree()
    frontier: services.Frontier | None = None
    for lo, hi, outside in [(0, 5, False), (5, 32, False), (32, 33, True), (34, 60, False)]:
        if outside:  # another transaction appends: the held frontier no longer fits the head
            with db.write() as session:
                services.append_many(session, [items[hi]])
            tree.append(items[hi])
            continue
        with db.write() as session:
            results, frontier = services.append_group(
                session, items[lo:hi], proofs=True, frontier=frontier
            )
        for item in items[lo:hi]:
            tree.append(item)
        assert frontier is not None
        assert frontier[0] == tree.size
        for a in results:
            assert isinstance(a, services.Appended)
            assert a.proof == tree.inclusion_proof(a.index, tree.size)
    with db.write() as session:
        indexes, _ = services.append_group(session, items[60:], proofs=False, frontier=frontier)
    assert indexes == list(range(tree.size, tree.size + 10))
    for item in items[60:]:
        tree.append(item)
    with db.read() as session:
        assert services.root_at(session, tree.size) == tree.root()
        report = verify_log(session)
    assert report.ok, report.problems


def test_entries_read_back_exactly(db: Database) -> None:
    items = [b"", b"\x00\xff binary", "中文".encode(), b"x" * 1000]
    fill(db, items)
    with db.read() as session:
        for i, item in enumerate(items):
            got = services.get_entry(session, i)
            assert (got.entry, got.leaf_hash) == (item, leaf_hash(item))
        assert [e.index for e in services.list_entries(session, 1, 2)] == [1, 2]
        assert services.find_by_leaf_hash(session, leaf_hash(items[2])).index == 2
        with pytest.raises(NotFound):
            services.find_by_leaf_hash(session, leaf_hash(b"absent"))
        with pytest.raises(LedgerRequestError):
            services.get_entry(session, 4)


def test_lookup_by_leaf_hash_finds_the_first_copy_in_any_block_of_the_log(db: Database) -> None:
    # The index is keyed by blocks of 4,096 indexes: entries in the first, a middle and the
    # last (partial) block are found; an entry appended twice is found at its first index.
    with db.read() as session, pytest.raises(NotFound):  # an empty log
        services.find_by_leaf_hash(session, leaf_hash(b"x"))
    fill(db, [b"twice", *make_entries(9_000), b"twice", b"last"], batch=5_000)
    with db.read() as session:
        assert services.find_by_leaf_hash(session, leaf_hash(b"twice")).index == 0
        assert services.find_by_leaf_hash(session, leaf_hash(b"last")).index == 9_002
        for index in (1, 4_095, 4_096, 4_097, 8_192, 9_000):
            stored = services.get_entry(session, index)
            found = services.find_by_leaf_hash(session, stored.leaf_hash)
            assert (found.index, found.entry) == (index, stored.entry)
        with pytest.raises(NotFound):
            services.find_by_leaf_hash(session, leaf_hash(b"never appended"))


def test_out_of_range_requests_are_refused_with_400(db: Database) -> None:
    fill(db, make_entries(5))
    with db.read() as session:
        for call in (
            lambda: services.prove_inclusion(session, 5, 5),
            lambda: services.prove_inclusion(session, 0, 6),
            lambda: services.prove_consistency(session, 4, 3),
            lambda: services.prove_consistency(session, 0, 9),
            lambda: services.list_entries(session, 0, 0),
            lambda: services.list_entries(session, -1, 5),
        ):
            with pytest.raises(LedgerRequestError) as info:
                call()
            assert info.value.status == 400


def test_append_event_is_canonical_json_and_rolls_back_with_the_caller(db: Database) -> None:
    with db.write() as session:
        index = services.append_event(session, "registry.certificate.issued", {"b": 1, "a": "证书"})
    with db.read() as session:
        entry = services.get_entry(session, index).entry
    decoded = json.loads(entry)
    assert entry == canonical_json(decoded)
    assert decoded["kind"] == "registry.certificate.issued"
    assert decoded["payload"] == {"a": "证书", "b": 1}
    assert decoded["at"].endswith("Z")

    def failing_use_case() -> None:
        with db.write() as session:
            services.append_event(session, "identity.party.verified", {"party_id": "x"})
            raise RuntimeError("the caller's use case failed")

    with pytest.raises(RuntimeError):
        failing_use_case()
    with db.read() as session:
        assert services.tree_size(session) == 1


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("Bad Kind", {}),
        ("", {}),
        ("x" * 65, {}),
        ("ok.kind", ["not", "an", "object"]),
        ("ok.kind", {"n": float("nan")}),
        ("ok.kind", {"big": "x" * 70_000}),
    ],
)
def test_bad_events_are_refused(db: Database, kind: str, payload: object) -> None:
    with pytest.raises(InvalidInput), db.write() as session:
        services.append_event(session, kind, payload)  # type: ignore[arg-type]


def test_checkpoints_are_signed_only_when_the_tree_grew(db: Database, keys: LogKeyStore) -> None:
    with db.write() as session:
        first = services.sign_checkpoint(session, keys)
        assert first is not None
        assert first.size == 0
        assert services.sign_checkpoint(session, keys) is None
    fill(db, make_entries(10))
    with db.write() as session:
        second = services.sign_checkpoint(session, keys)
        assert second is not None
        assert second.size == 10
    with db.read() as session:
        verifiers = services.log_verifiers(session)
        body, names = open_note(second.note, verifiers)
        checkpoint = Checkpoint.parse(body)
        assert names == ["test.datafactor/ledger"]
        assert checkpoint.origin == "test.datafactor/ledger"
        assert checkpoint.size == 10
        assert checkpoint.root_hash == _tree(make_entries(10)).root()


def test_key_is_created_once_with_0600_and_group_readable_keys_are_refused(
    keys: LogKeyStore, tmp_path: Path
) -> None:
    signer = keys.ensure()
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    assert LogKeyStore(keys.directory, "other-name").ensure().key_hash == signer.key_hash
    os.chmod(keys.path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        LogKeyStore(keys.directory, "x").signer()


def test_rotation_keeps_old_checkpoints_verifiable(db: Database, keys: LogKeyStore) -> None:
    fill(db, make_entries(3))
    with db.write() as session:
        old_note = services.ensure_checkpoint(session, keys).note
    old_vkey = keys.ensure().verifier().key_string()
    with db.write() as session:
        new_vkey = services.rotate_key(session, keys)
    assert new_vkey != old_vkey
    fill(db, make_entries(2, "after"))
    with db.write() as session:
        latest = services.ensure_checkpoint(session, keys)
        verifiers = services.log_verifiers(session)
        rotation = session.scalars(
            select(LedgerCheckpoint)
            .where(LedgerCheckpoint.size == 3)
            .order_by(LedgerCheckpoint.id.desc())
        ).first()
        assert rotation is not None
        keys_listed = services.list_keys(session)
    assert {k.vkey for k in keys_listed} == {old_vkey, new_vkey}
    assert [k.retired_at is not None for k in keys_listed] == [True, False]
    # The old checkpoint verifies with the retired key, the new one with the new key only.
    assert open_note(old_note, [Verifier.from_key_string(old_vkey)])[0]
    assert open_note(latest.note, [Verifier.from_key_string(new_vkey)])[0]
    assert open_note(latest.note, verifiers)[0]
    # The rotation checkpoint is signed by both, so a client can follow the rotation.
    _, names = open_note(
        rotation.note, [Verifier.from_key_string(old_vkey), Verifier.from_key_string(new_vkey)]
    )
    assert len(names) == 2
    with db.read() as session:
        assert verify_log(session).ok


def test_receipts_verify_offline_and_tampering_fails(db: Database, keys: LogKeyStore) -> None:
    items = make_entries(21)
    fill(db, items, batch=4)
    with db.write() as session:
        receipt = services.receipt_for(session, 13, keys)
    text = receipt.dumps()
    parsed = Receipt.loads(text)
    vkey = keys.ensure().verifier().key_string()
    check = verify_receipt(parsed, trusted_log_keys=[vkey])
    assert check.ok, check.problems
    assert check.log_key_source == "trusted"
    assert verify_receipt(parsed).ok

    data = json.loads(text)
    bad_entry = dict(data, entry="eyJ4IjoxfQ==", leaf_hash=None)
    assert not verify_receipt(Receipt.from_json(bad_entry)).ok
    bad_proof = dict(data, inclusion_proof=["00" * 32, *data["inclusion_proof"][1:]])
    assert not verify_receipt(Receipt.from_json(bad_proof)).ok
    other = LogKeyStore(keys.directory.parent / "other", "test.datafactor/ledger").ensure()
    check = verify_receipt(parsed, trusted_log_keys=[other.verifier().key_string()])
    assert not check.ok
    assert "not signed by the log key" in check.problems[0]
    with pytest.raises(ValueError, match="leaf_hash"):
        Receipt.from_json(dict(data, leaf_hash="11" * 32))
    assert not verify_receipt(parsed, quorum=1).ok


def _witness(name: str) -> Cosigner:
    return Cosigner.generate(name)


def _cosigned(note: str, *witnesses: Cosigner) -> str:
    body = note[: note.index("\n\n") + 1]
    lines = "".join(
        NoteSignature(w.name, w.key_hash, w.sign(body.encode())).line() for w in witnesses
    )
    return note + lines


def test_cosignatures_from_registered_witnesses_are_attached(
    db: Database, keys: LogKeyStore
) -> None:
    fill(db, make_entries(4))
    alice, bob, mallory = _witness("alice"), _witness("bob"), _witness("mallory")
    with db.write() as session:
        services.add_witness(session, alice.verifier().key_string())
        services.add_witness(session, bob.verifier().key_string())
        note = services.ensure_checkpoint(session, keys).note
    with db.write() as session:
        result = services.accept_cosignatures(session, _cosigned(note, alice, mallory))
        assert result.accepted == ["alice"]
        assert result.tree_size == 4
    with db.write() as session:
        with pytest.raises(LedgerRequestError, match="registered witness"):
            services.accept_cosignatures(session, _cosigned(note, mallory))
        forged = _cosigned(note, Cosigner("bob", os.urandom(32)))
        with pytest.raises(LedgerRequestError, match="registered witness"):
            services.accept_cosignatures(session, forged)
    with db.write() as session:
        bad = note + NoteSignature(bob.name, bob.key_hash, bytes(72)).line()
        with pytest.raises(LedgerRequestError, match="does not verify"):
            services.accept_cosignatures(session, bad)
    foreign = Checkpoint("test.datafactor/ledger", 4, bytes(32)).format()
    with db.write() as session, pytest.raises(LedgerRequestError, match="never signed"):
        services.accept_cosignatures(session, foreign + "\n" + _cosigned_line(alice, foreign))
    with db.write() as session:
        services.accept_cosignatures(session, _cosigned(note, bob))
        latest = services.latest_checkpoint(session)
        assert latest is not None
        served = services.cosigned_note(session, latest)
        quorum = services.checkpoint_with_quorum(session, 2)
        assert quorum is not None
        assert quorum.id == latest.id
        assert services.checkpoint_with_quorum(session, 3) is None
    verifiers = [
        CosignatureVerifier.from_key_string(w.verifier().key_string()) for w in (alice, bob)
    ]
    assert sorted(open_note(served, verifiers)[1]) == ["alice", "bob"]
    with db.write() as session:
        receipt = services.receipt_for(session, 2, keys)
    assert verify_receipt(receipt, quorum=2).ok
    assert not verify_receipt(receipt, quorum=3).ok


def _cosigned_line(witness: Cosigner, body: str) -> str:
    return NoteSignature(witness.name, witness.key_hash, witness.sign(body.encode())).line()


def test_witness_registration_is_checked_and_audited(db: Database) -> None:
    alice = _witness("alice")
    with db.write() as session:
        services.add_witness(session, alice.verifier().key_string())
        services.add_witness(session, alice.verifier().key_string())  # idempotent
        with pytest.raises(InvalidInput):
            services.add_witness(session, "not a key")
        with pytest.raises(InvalidInput, match="another key"):
            services.add_witness(session, _witness("alice").verifier().key_string())
        services.remove_witness(session, "alice")
        assert [w.active for w in services.list_witnesses(session)] == [False]
    with db.read() as session:
        actions = [e.action for e in session.scalars(select(audit.AuditEvent))]
    assert actions == ["ledger:witness:add", "ledger:witness:remove"]


def test_audit_chain_head_is_anchored_once_per_change(db: Database) -> None:
    with db.write() as session:
        assert services.anchor_audit_head(session) is None  # no audit event yet
        audit.record(
            session,
            actor=None,
            action="test:thing:do",
            object_type="thing",
            object_id="1",
            summary="did a thing",
            party_id=None,
        )
    with db.write() as session:
        index = services.anchor_audit_head(session)
        assert index is not None
        assert services.anchor_audit_head(session) is None
        heads = [h for h in audit.chain_heads(session) if h[1]]
        event = json.loads(services.get_entry(session, index).entry)
    assert event["kind"] == "audit.chain_head"
    (chain, seq, digest) = heads[0]  # the one event's chain
    assert event["payload"] == {
        "seq": 1,
        "hash": audit.heads_digest(heads),
        "chains": [[chain, seq, digest]],
    }
    with db.read() as session:
        assert audit.verify_chain(session).head_hash == event["payload"]["hash"]


def test_the_log_refuses_to_sign_a_tree_inconsistent_with_its_last_checkpoint(
    db: Database, keys: LogKeyStore
) -> None:
    fill(db, make_entries(8))
    with db.write() as session:
        services.ensure_checkpoint(session, keys)
    fill(db, make_entries(3, "more"))
    # The subtree over entries 0..7 is what the consistency proof from size 8 rests on.
    with db.write() as session:
        session.execute(
            update(LedgerNode)
            .where(LedgerNode.level == 3, LedgerNode.idx == 0)
            .values(hash=bytes(32))
        )
    with db.write() as session, pytest.raises(LedgerCorruptError, match="not consistent"):
        services.sign_checkpoint(session, keys)


def test_async_callers_share_commits_and_get_proofs(db: Database, keys: LogKeyStore) -> None:
    """API handlers await appends on their event loop: no thread each, same guarantees."""

    async def callers(integrator: Integrator) -> list[services.Appended]:
        return await asyncio.gather(
            *(integrator.append_with_proof_async(f'{{"c":{k}}}'.encode()) for k in range(64))
        )

    with Integrator(db, keys, anchor_interval=None) as integrator:
        proved = run_async(lambda: callers(integrator))
        plain = run_async(lambda: integrator.append_async(b'{"plain":true}'))
        assert integrator.batches < 64  # the 64 callers shared commits
    assert sorted(a.index for a in proved) == list(range(64))
    assert plain == 64
    with db.read() as session:
        for a in proved:
            root = services.root_at(session, a.tree_size)
            assert verify_inclusion(a.leaf_hash, a.index, a.tree_size, a.proof, root)
            assert services.get_entry(session, a.index).leaf_hash == a.leaf_hash

    async def late() -> int:
        return await integrator.append_async(b'{"late":true}')

    with pytest.raises(IntegratorStopped):
        run_async(late)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's write-ahead log
def test_the_integrator_checkpoints_the_sqlite_wal_itself(db: Database, keys: LogKeyStore) -> None:
    """On SQLite the integrator copies the write-ahead log back itself: the log does not grow
    without bound, and connections it used go back to the pool with automatic checkpoints on."""
    with Integrator(db, keys, anchor_interval=None) as integrator:
        for k in range(20):
            integrator.append(f'{{"wal":{k}}}'.encode())
    with db.write() as session:
        dbapi = session.connection().connection.dbapi_connection
        assert dbapi is not None
        assert dbapi.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    raw = db.engine.raw_connection()
    try:
        busy, frames, copied = raw.driver_connection.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
    finally:
        raw.close()
    assert busy == 0
    assert copied == frames  # everything written is in the database file


def test_integrator_batches_concurrent_appends_and_signs_within_a_second(
    db: Database, keys: LogKeyStore
) -> None:
    results: list[int] = []
    lock = threading.Lock()
    with Integrator(db, keys, anchor_interval=None) as integrator:

        def worker(k: int) -> None:
            for i in range(25):
                index = integrator.append(f'{{"w":{k},"i":{i}}}'.encode())
                with lock:
                    results.append(index)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == list(range(200))
        proved = integrator.append_with_proof(b'{"with":"proof"}')
        assert proved.index == 200
        with db.read() as session:
            root = services.root_at(session, proved.tree_size)
        assert verify_inclusion(proved.leaf_hash, 200, proved.tree_size, proved.proof, root)
        assert integrator.batches < 200  # concurrent appends shared commits
        # Another transaction appends on its own: the integrator covers it too.
        with db.write() as session:
            services.append_event(session, "test.outside", {"n": 1})
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            with db.read() as session:
                latest = services.latest_checkpoint(session)
            if latest is not None and latest.size == 202:
                break
            time.sleep(0.05)
        assert latest is not None
        assert latest.size == 202
    with pytest.raises(IntegratorStopped):
        integrator.submit(b"late")
    with db.read() as session:
        report = verify_log(session)
    assert report.ok, report.problems
    assert report.checkpoint_size == 202
