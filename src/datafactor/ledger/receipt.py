"""Ledger receipts: self-contained JSON evidence that an entry is in the log, checked offline.

A receipt carries the exact entry bytes, its index, an inclusion proof up to a tree size, the
signed checkpoint of that size (with any witness cosignatures) and the verifier keys, so anyone
can check it with no server and no database: the checkpoint signature must verify under a log
key, the leaf hash of the entry must fold up through the proof to the checkpoint's root, and — if
a quorum is asked for — enough known witnesses must have cosigned the same checkpoint. Verifying
against the key *inside* the receipt only proves the receipt is internally consistent; a verifier
that wants to know the receipt comes from *this* log passes the log key it trusts (published at
``/api/v1/ledger/key``). The format is documented in ``docs/ledger.md``. Pure Python: no
database, no web.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datafactor.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from datafactor.ledger.note import (
    Checkpoint,
    CosignatureVerifier,
    NoteVerifier,
    UnverifiedNoteError,
    Verifier,
    open_note,
)

RECEIPT_FORMAT = "datafactor-ledger-receipt/v1"
MAX_RECEIPT_BYTES = 1 << 20


@dataclass(frozen=True)
class Receipt:
    """Everything needed to check offline that ``entry`` is leaf ``index`` of a signed tree."""

    index: int
    entry: bytes
    tree_size: int
    proof: tuple[bytes, ...]
    checkpoint: str
    log_key: str
    witness_keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON object (see docs/ledger.md)."""
        return {
            "format": RECEIPT_FORMAT,
            "index": self.index,
            "entry": base64.b64encode(self.entry).decode("ascii"),
            "leaf_hash": leaf_hash(self.entry).hex(),
            "tree_size": self.tree_size,
            "inclusion_proof": [p.hex() for p in self.proof],
            "checkpoint": self.checkpoint,
            "log_key": self.log_key,
            "witness_keys": list(self.witness_keys),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: object) -> Receipt:
        """Parse a receipt object; ``ValueError`` names the first malformed field."""
        if not isinstance(data, Mapping):
            raise ValueError("a receipt is a JSON object")
        if data.get("format") != RECEIPT_FORMAT:
            raise ValueError(f"receipt 'format' must be {RECEIPT_FORMAT!r}")
        index = _int_field(data, "index")
        tree_size = _int_field(data, "tree_size")
        entry = _b64_field(data, "entry")
        proof_raw = data.get("inclusion_proof")
        if not isinstance(proof_raw, list) or len(proof_raw) > 64:
            raise ValueError("receipt 'inclusion_proof' must be a list of at most 64 hex hashes")
        proof = tuple(_hex_hash(p, "inclusion_proof") for p in proof_raw)
        checkpoint = data.get("checkpoint")
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError("receipt 'checkpoint' must be the signed checkpoint note text")
        log_key = data.get("log_key")
        if not isinstance(log_key, str) or not log_key:
            raise ValueError("receipt 'log_key' must be the log's verifier key line")
        witness_raw = data.get("witness_keys", [])
        if not isinstance(witness_raw, list) or not all(isinstance(w, str) for w in witness_raw):
            raise ValueError("receipt 'witness_keys' must be a list of verifier key lines")
        claimed = data.get("leaf_hash")
        if claimed is not None and _hex_hash(claimed, "leaf_hash") != leaf_hash(entry):
            raise ValueError("receipt 'leaf_hash' is not the hash of its 'entry'")
        return cls(index, entry, tree_size, proof, checkpoint, log_key, tuple(witness_raw))

    @classmethod
    def loads(cls, text: str | bytes) -> Receipt:
        if len(text) > MAX_RECEIPT_BYTES:
            raise ValueError("a receipt is at most 1 MiB")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"receipt is not valid JSON: {exc}") from exc
        except RecursionError:
            raise ValueError("receipt is not valid JSON: nested too deeply") from None
        return cls.from_json(data)


def _int_field(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValueError(f"receipt {name!r} must be a non-negative integer")
    return value


def _b64_field(data: Mapping[str, Any], name: str) -> bytes:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"receipt {name!r} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"receipt {name!r} is not valid base64") from exc


def _hex_hash(value: object, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * HASH_SIZE:
        raise ValueError(f"receipt {name!r} must hold 64-digit hex hashes")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(f"receipt {name!r} must hold 64-digit hex hashes") from exc


@dataclass
class ReceiptCheck:
    """The outcome of checking a receipt: ``ok`` and what was (or was not) established."""

    ok: bool = False
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    index: int | None = None
    tree_size: int | None = None
    leaf_hash: str | None = None
    origin: str | None = None
    root: str | None = None
    log_key_source: str = "receipt"
    witnesses: list[str] = field(default_factory=list)


def _verifiers(keys: Sequence[str], kind: type[Verifier], what: str) -> list[NoteVerifier]:
    out: list[NoteVerifier] = []
    for key in keys:
        try:
            out.append(kind.from_key_string(key))
        except ValueError as exc:
            raise ValueError(f"{what} {key!r} is not a valid verifier key: {exc}") from exc
    return out


def verify_receipt(
    receipt: Receipt,
    *,
    trusted_log_keys: Sequence[str] = (),
    witness_keys: Sequence[str] | None = None,
    quorum: int = 0,
) -> ReceiptCheck:
    """Check ``receipt`` with no network and no database; never raises on a bad receipt.

    ``trusted_log_keys`` are the log keys the caller trusts; when empty, the key carried in the
    receipt is used (and the result says so). ``witness_keys`` default to the receipt's own;
    ``quorum`` is how many of them must have cosigned the checkpoint.
    """
    check = ReceiptCheck(index=receipt.index, tree_size=receipt.tree_size)
    check.leaf_hash = leaf_hash(receipt.entry).hex()
    try:
        log_verifiers = _verifiers(list(trusted_log_keys) or [receipt.log_key], Verifier, "log key")
        cosigners = _verifiers(
            list(receipt.witness_keys if witness_keys is None else witness_keys),
            CosignatureVerifier,
            "witness key",
        )
    except ValueError as exc:
        check.problems.append(str(exc))
        return check
    check.log_key_source = "trusted" if trusted_log_keys else "receipt"
    try:
        body, _ = open_note(receipt.checkpoint, log_verifiers)
    except UnverifiedNoteError:
        check.problems.append("the checkpoint is not signed by the log key")
        return check
    except ValueError as exc:
        check.problems.append(f"the checkpoint signature does not verify: {exc}")
        return check
    check.passed.append("checkpoint signed by the log key")
    try:
        checkpoint = Checkpoint.parse(body)
    except ValueError as exc:
        check.problems.append(f"the signed note is not a checkpoint: {exc}")
        return check
    check.origin = checkpoint.origin
    check.root = checkpoint.root_hash.hex()
    if checkpoint.size != receipt.tree_size:
        check.problems.append(
            f"the checkpoint is for tree size {checkpoint.size}, "
            f"the proof for tree size {receipt.tree_size}"
        )
        return check
    if not verify_inclusion(
        leaf_hash(receipt.entry),
        receipt.index,
        receipt.tree_size,
        list(receipt.proof),
        checkpoint.root_hash,
    ):
        check.problems.append(
            f"the inclusion proof does not connect entry {receipt.index} "
            f"to the checkpoint root of tree size {receipt.tree_size}"
        )
        return check
    check.passed.append(f"entry {receipt.index} is included in tree size {receipt.tree_size}")
    if cosigners:
        try:
            _, names = open_note(receipt.checkpoint, cosigners)
            check.witnesses = names
        except UnverifiedNoteError:
            check.witnesses = []
        except ValueError as exc:
            check.problems.append(f"a witness cosignature does not verify: {exc}")
            return check
    if quorum > 0:
        if len(check.witnesses) < quorum:
            check.problems.append(
                f"{len(check.witnesses)} known witness(es) cosigned the checkpoint; "
                f"{quorum} required"
            )
            return check
        check.passed.append(f"cosigned by {len(check.witnesses)} witness(es): quorum {quorum} met")
    check.ok = True
    return check
