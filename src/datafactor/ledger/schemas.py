"""Pydantic shapes of the public ledger API: entries, proofs, keys, witnesses, alerts.

Hashes travel as lower-case hex and entry bytes as standard base64, the forms the issue's API
contract fixes; the checkpoint and the verifier key travel as plain text (see ``api``).
"""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, Field


class EntryPublic(BaseModel):
    """One log entry: its index, the exact leaf bytes (base64) and the leaf hash (hex)."""

    index: int
    entry: str = Field(description="Base64 of the exact leaf bytes.")
    leaf_hash: str = Field(description="Hex of SHA-256(0x00 || entry).")

    @classmethod
    def of(cls, index: int, entry: bytes, leaf_hash: bytes) -> EntryPublic:
        return cls(
            index=index, entry=base64.b64encode(entry).decode("ascii"), leaf_hash=leaf_hash.hex()
        )


class EntryPage(BaseModel):
    """A page of entries starting at ``start``; ``next`` is the start of the next page."""

    items: list[EntryPublic]
    start: int
    limit: int
    tree_size: int
    next: int | None


class InclusionProofPublic(BaseModel):
    """RFC 9162 inclusion proof (audit path), leaf-level sibling first."""

    index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]


class ConsistencyProofPublic(BaseModel):
    """RFC 9162 consistency proof between two tree sizes."""

    first: int
    second: int
    proof: list[str]


class KeyPublic(BaseModel):
    """A log verifier key, current (``retired_at`` null) or retired."""

    vkey: str
    created_at: datetime
    retired_at: datetime | None


class WitnessPublic(BaseModel):
    """A witness whose cosignatures the log accepts."""

    name: str
    vkey: str
    active: bool
    last_cosigned_size: int | None
    last_cosigned_at: datetime | None


class CosignaturesAccepted(BaseModel):
    """The witnesses whose cosignatures were stored."""

    accepted: list[str]
    tree_size: int


class AlertPublic(BaseModel):
    """A witness's report that the log showed it an inconsistent checkpoint."""

    id: int
    witness: str
    kind: str
    message: str
    old_size: int | None
    new_size: int | None
    created_at: datetime
