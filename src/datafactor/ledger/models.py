"""Ledger tables: the entries, the stored subtree hashes, signed checkpoints, keys and witnesses.

The layout is what makes proofs cheap. ``ledger_entry`` holds the exact leaf bytes and the leaf
hash (level 0 of the tree) keyed by index; ``ledger_node`` holds the hash of every *complete*
perfect subtree above the leaves, keyed by (level, index). A subtree is complete once its last
leaf is appended and never changes after that, so rows are inserted once and never updated, and
any root or proof is answered with O(log n) point reads (one batched query per level table; see
``services``). The one mutable row is ``ledger_head`` (the tree size), which also serves as the
writers' lock. Private keys are never stored here: only the public verifier keys of the log
(``ledger_key``, so checkpoints signed by a retired key stay verifiable) and of witnesses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import Base, UTCDateTime, utcnow

# Entries are indexed by leaf hash within blocks of 4,096 consecutive indexes.
LEAF_BLOCK_BITS = 12

# On SQLite an INTEGER PRIMARY KEY is the rowid itself: no second B-tree for the key.
_Index = BigInteger().with_variant(Integer, "sqlite")


class LedgerHead(Base):
    """The single row holding the tree size; writers lock it to append one after another."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    # The last audit chain sequence number anchored in the log (0: none yet).
    anchored_audit_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerEntry(Base):
    """One leaf of the log: its index, the exact entry bytes and SHA-256(0x00 || entry)."""

    __tablename__ = "ledger_entry"
    # Lookup by leaf hash, keyed first by the entry's block of 2**LEAF_BLOCK_BITS indexes, so a
    # batch's index rows go to the few pages of the current block instead of one random page of
    # a log-sized B-tree each (see ``services.find_by_leaf_hash`` and migration 0020).
    __table_args__ = (
        Index("ix_ledger_entry_leaf_bucket", text(f"(idx >> {LEAF_BLOCK_BITS})"), "leaf_hash"),
    )

    idx: Mapped[int] = mapped_column(_Index, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerNode(Base):
    """The hash of the complete perfect subtree of ``2**level`` leaves starting at ``idx * 2**level``.

    Level 0 (the leaf hashes) lives in ``ledger_entry``; this table holds levels 1 and up.
    """

    __tablename__ = "ledger_node"
    # A clustered (level, idx) key: one B-tree, no rowid, the hash stored beside the key.
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy reads it

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerKey(Base):
    """A public key the log signs (or signed) checkpoints with; retired keys stay for verifying."""

    __tablename__ = "ledger_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[int] = mapped_column(BigInteger)
    vkey: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerCheckpoint(Base):
    """A signed tree head: the C2SP checkpoint note exactly as served (log signature only)."""

    __tablename__ = "ledger_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[int] = mapped_column(ForeignKey("ledger_key.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class LedgerWitness(Base):
    """A witness the log accepts cosignatures and alerts from (deny by default: only these)."""

    __tablename__ = "ledger_witness"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    vkey: Mapped[str] = mapped_column(String(256), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_cosigned_size: Mapped[int | None] = mapped_column(BigInteger)
    last_cosigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerCosignature(Base):
    """A witness's tlog-cosignature/v1 on one checkpoint (the bytes after the key ID)."""

    __tablename__ = "ledger_cosignature"
    __table_args__ = (UniqueConstraint("checkpoint_id", "witness_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("ledger_checkpoint.id"), index=True)
    witness_id: Mapped[int] = mapped_column(ForeignKey("ledger_witness.id"))
    signature: Mapped[bytes] = mapped_column(LargeBinary(72))
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerAlert(Base):
    """A witness's signed report that the log showed it an inconsistent checkpoint."""

    __tablename__ = "ledger_alert"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    witness_id: Mapped[int] = mapped_column(ForeignKey("ledger_witness.id"))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    old_size: Mapped[int | None] = mapped_column(BigInteger)
    new_size: Mapped[int | None] = mapped_column(BigInteger)
    # The signed alert note as received: it carries both checkpoints, so it is its own evidence.
    report: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
