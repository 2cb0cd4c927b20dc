"""Data set tables: data sets owned by parties, their numbered versions, and resumable uploads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow


class Dataset(Base):
    """A data set (数据集) a party holds: what it declares about the data, not the data itself.

    ``version_count`` is the number of the newest version; the row is locked to number the next
    one, so two uploads at once get 2 and 3, never 2 twice.
    """

    __tablename__ = "dataset"
    __table_args__ = (Index("ix_dataset_party_created", "party_id", "created_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    party_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    domain: Mapped[str] = mapped_column(String(32))
    update_frequency: Mapped[str] = mapped_column(String(16))
    identifying_column: Mapped[str | None] = mapped_column(String(128))
    version_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetVersion(Base):
    """One immutable version of a data set: a stored file (by SHA-256) or a live database table.

    A database source keeps its SQLAlchemy URL encrypted (``source_url_sealed``, AES-GCM under a
    key derived from the secret key) and a redacted copy for display; the URL with its password is
    never returned by the API, shown or logged.

    A version made from another one (a de-identified copy) names it in ``derived_from_id`` — of
    the same data set or another one of the same party — and says how in ``derivation``: a small
    JSON record (the kind, the job that made it, the recipe's digest) written once with the
    version. The recipe itself (a de-identification policy, its report) stays with the domain
    that made it; the data plane only keeps the link.
    """

    __tablename__ = "dataset_version"
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("dataset.id"))
    party_id: Mapped[str] = mapped_column(ID, index=True)
    number: Mapped[int] = mapped_column(Integer)
    source_kind: Mapped[str] = mapped_column(String(16))
    blob_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    source_url_sealed: Mapped[str | None] = mapped_column(Text)
    source_url_display: Mapped[str] = mapped_column(String(512), default="")
    source_schema: Mapped[str | None] = mapped_column(String(128))
    source_table: Mapped[str | None] = mapped_column(String(128))
    derived_from_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_version.id"), index=True
    )
    derivation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetUpload(Base):
    """A resumable upload into a data set: the bytes wait in the blob store's upload session
    (same id); finishing it verifies the SHA-256 and adds a version."""

    __tablename__ = "dataset_upload"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("dataset.id"), index=True)
    party_id: Mapped[str] = mapped_column(ID, index=True)
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    aborted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version_id: Mapped[str | None] = mapped_column(ID)
