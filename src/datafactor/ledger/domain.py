"""The pure domain core of the transparency ledger: canonical bytes, Merkle proofs, signed heads.

This module is the ledger's rule book with no database and no web: it gathers, under one import
path, RFC 8785 canonical JSON (``jcs``), RFC 6962/9162 tree hashing with proof generation and
independent verification (``merkle``), and the C2SP signed-note, checkpoint and cosignature
formats (``note``). The storage and HTTP layers build on these names and nothing else, so the
same rules serve the log, its witnesses and offline verifiers.
"""

from __future__ import annotations

from datafactor.ledger.jcs import canonical_json, serialize_number
from datafactor.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    HashReader,
    MemoryTree,
    batch_inclusion_proofs,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from datafactor.ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    Signer,
    UnverifiedNoteError,
    Verifier,
    format_note,
    generate_key,
    is_valid_key_name,
    key_hash,
    open_note,
    parse_note,
    sign_note,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Checkpoint",
    "CosignatureVerifier",
    "Cosigner",
    "HashReader",
    "MemoryTree",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "batch_inclusion_proofs",
    "canonical_json",
    "consistency_proof",
    "format_note",
    "generate_key",
    "inclusion_proof",
    "is_valid_key_name",
    "key_hash",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_note",
    "range_hash",
    "root_from_leaf_hashes",
    "serialize_number",
    "sign_note",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]
