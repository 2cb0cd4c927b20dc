"""API shapes of data sets, versions and uploads: ``XCreate`` in, ``XPublic`` out, ``Page`` for lists.

A version's database URL appears only redacted (``source_url``); the sealed form never leaves
the server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from datafactor.dataplane.domain import DataDomain, SourceKind, UpdateFrequency
from datafactor.dataplane.models import Dataset, DatasetUpload, DatasetVersion

T = TypeVar("T")


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class DatasetCreate(Strict):
    name: str = Field(max_length=512)
    name_en: str = Field("", max_length=512)
    description: str = Field("", max_length=8000)
    domain: DataDomain = DataDomain.OTHER
    update_frequency: UpdateFrequency = UpdateFrequency.IRREGULAR
    identifying_column: str | None = Field(
        None,
        max_length=512,
        description="The column that identifies an individual, if any (for later privacy work).",
    )


class DatasetUpdate(Strict):
    name: str | None = Field(None, max_length=512)
    name_en: str | None = Field(None, max_length=512)
    description: str | None = Field(None, max_length=8000)
    domain: DataDomain | None = None
    update_frequency: UpdateFrequency | None = None
    identifying_column: str | None = Field(None, max_length=512)


class DatasetPublic(BaseModel):
    id: str
    party_id: str
    name: str
    name_en: str
    description: str
    domain: DataDomain
    update_frequency: UpdateFrequency
    identifying_column: str | None
    version_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetPublic:
        return cls(
            id=dataset.id,
            party_id=dataset.party_id,
            name=dataset.name,
            name_en=dataset.name_en,
            description=dataset.description,
            domain=DataDomain(dataset.domain),
            update_frequency=UpdateFrequency(dataset.update_frequency),
            identifying_column=dataset.identifying_column,
            version_count=dataset.version_count,
            created_at=dataset.created_at,
            updated_at=dataset.updated_at,
        )


class VersionPublic(BaseModel):
    id: str
    dataset_id: str
    number: int
    source_kind: SourceKind
    format: str
    filename: str
    sha256: str | None = Field(description="SHA-256 of the uploaded file (upload versions).")
    size_bytes: int | None
    source_url: str | None = Field(
        description="The database URL with its password hidden (database versions)."
    )
    source_schema: str | None
    source_table: str | None
    derived_from_id: str | None = Field(
        None, description="The version this one was made from (a de-identified copy), if any."
    )
    derivation: dict[str, Any] | None = Field(
        None,
        description="How it was made from derived_from_id: kind, the job, the source's data set "
        "and number, the recipe's name and digest (ids and digests only).",
    )
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, version: DatasetVersion) -> VersionPublic:
        database = version.source_kind == SourceKind.DATABASE
        return cls(
            id=version.id,
            dataset_id=version.dataset_id,
            number=version.number,
            source_kind=SourceKind(version.source_kind),
            format=version.format,
            filename=version.filename,
            sha256=version.blob_sha256,
            size_bytes=version.size_bytes,
            source_url=version.source_url_display if database else None,
            source_schema=version.source_schema,
            source_table=version.source_table,
            derived_from_id=version.derived_from_id,
            derivation=dict(version.derivation) if version.derivation else None,
            created_by=version.created_by_name,
            created_at=version.created_at,
        )


class DatabaseVersionCreate(Strict):
    url: str = Field(
        max_length=2000,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host/dbname. Stored "
        "encrypted; shown only with the password hidden.",
    )
    table: str = Field(max_length=512)
    schema_name: str | None = Field(None, alias="schema", max_length=512)


class UploadCreate(Strict):
    filename: str = Field(
        max_length=1024, description="The file's name; its suffix names the format."
    )
    size: int = Field(ge=0, description="Size of the whole file in bytes.")
    sha256: str = Field(max_length=64, description="SHA-256 of the whole file (64 hex digits).")


class UploadPublic(BaseModel):
    id: str
    dataset_id: str
    filename: str
    format: str
    size: int
    sha256: str
    offset: int = Field(description="Bytes received: send the next chunk from here.")
    status: str = Field(description="open, finished or aborted.")
    version_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, upload: DatasetUpload, offset: int) -> UploadPublic:
        status = (
            "aborted"
            if upload.aborted_at is not None
            else "finished"
            if upload.finished_at is not None
            else "open"
        )
        return cls(
            id=upload.id,
            dataset_id=upload.dataset_id,
            filename=upload.filename,
            format=upload.format,
            size=upload.size_bytes,
            sha256=upload.sha256,
            offset=offset,
            status=status,
            version_id=upload.version_id,
            created_at=upload.created_at,
        )
