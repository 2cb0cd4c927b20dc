"""Data set rules: what a data set declares, how versions are numbered, which sources are allowed.

Pure Python (no web framework, no ORM), so every rule here is unit-tested without a database. A
``Dataset`` (数据集) is the generic object that every later capability attaches to — the
data-property registry's assets, listings, census inventories — so it declares only what any of
them needs: names in Chinese and English, a description, the domain (行业领域) and update frequency
(更新频率) the owner declares, and optionally the column that identifies an individual (for later
privacy work). Its bytes live in numbered ``DatasetVersion``s: an uploaded file in the blob store,
or a table in a live database reached by a SQLAlchemy URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from datafactor.errors import N_, InvalidInput


class SourceKind(StrEnum):
    """Where a version's rows come from."""

    UPLOAD = "upload"  # a file in the blob store
    DATABASE = "database"  # a table in a live database


class UpdateFrequency(StrEnum):
    """How often the owner declares the data set is updated (timeliness is judged against it)."""

    REALTIME = "realtime"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"
    IRREGULAR = "irregular"
    ONCE = "once"


class DataDomain(StrEnum):
    """The declared domain or industry (行业领域, GB/T 43697 5.1), by which grading picks catalogues.

    The codes are those of the grading rules (``discovery/rules/grading.yaml``, ``domains``); a
    test keeps the two lists equal. A data set that fits none says ``other``.
    """

    INDUSTRY = "industry"
    TELECOM = "telecom"
    FINANCE = "finance"
    ENERGY = "energy"
    TRANSPORT = "transport"
    AUTOMOTIVE = "automotive"
    NATURAL_RESOURCES = "natural_resources"
    HEALTH = "health"
    EDUCATION = "education"
    SCIENCE = "science"
    AGRICULTURE = "agriculture"
    PUBLIC_ADMINISTRATION = "public_administration"
    COMMERCE = "commerce"
    OTHER = "other"


class EventTag(StrEnum):
    """Audit action tags of data sets (``scope:resource:action``)."""

    DATASET_CREATE = "dataplane:dataset:create"
    DATASET_UPDATE = "dataplane:dataset:update"
    VERSION_CREATE = "dataplane:version:create"
    UPLOAD_START = "dataplane:upload:start"
    UPLOAD_ABORT = "dataplane:upload:abort"


SOURCE_KIND_LABELS: dict[str, str] = {
    SourceKind.UPLOAD: N_("Uploaded file"),
    SourceKind.DATABASE: N_("Database table"),
}
FREQUENCY_LABELS: dict[str, str] = {
    UpdateFrequency.REALTIME: N_("Real time"),
    UpdateFrequency.DAILY: N_("Daily"),
    UpdateFrequency.WEEKLY: N_("Weekly"),
    UpdateFrequency.MONTHLY: N_("Monthly"),
    UpdateFrequency.QUARTERLY: N_("Quarterly"),
    UpdateFrequency.YEARLY: N_("Yearly"),
    UpdateFrequency.IRREGULAR: N_("Irregularly"),
    UpdateFrequency.ONCE: N_("Once (not updated)"),
}
DOMAIN_LABELS: dict[str, str] = {
    DataDomain.INDUSTRY: N_("Industry"),
    DataDomain.TELECOM: N_("Telecommunications"),
    DataDomain.FINANCE: N_("Finance"),
    DataDomain.ENERGY: N_("Energy"),
    DataDomain.TRANSPORT: N_("Transport"),
    DataDomain.AUTOMOTIVE: N_("Automotive"),
    DataDomain.NATURAL_RESOURCES: N_("Natural resources (incl. surveying and mapping)"),
    DataDomain.HEALTH: N_("Health"),
    DataDomain.EDUCATION: N_("Education"),
    DataDomain.SCIENCE: N_("Scientific data"),
    DataDomain.AGRICULTURE: N_("Agriculture"),
    DataDomain.PUBLIC_ADMINISTRATION: N_("Public administration"),
    DataDomain.COMMERCE: N_("Commerce and trade"),
    DataDomain.OTHER: N_("Other"),
}
EVENT_LABELS: dict[str, str] = {
    EventTag.DATASET_CREATE: N_("Created a data set"),
    EventTag.DATASET_UPDATE: N_("Changed a data set"),
    EventTag.VERSION_CREATE: N_("Added a data set version"),
    EventTag.UPLOAD_START: N_("Started an upload"),
    EventTag.UPLOAD_ABORT: N_("Abandoned an upload"),
}

NAME_MAX = 128
DESCRIPTION_MAX = 2000
COLUMN_MAX = 128
FILENAME_MAX = 255
TABLE_MAX = 128
# The database drivers a live source may use; anything else (and SQLite files unless the operator
# allows them) is refused before a connection is attempted.
DATABASE_SCHEMES = ("postgresql", "mysql", "sqlite")


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


@dataclass(frozen=True)
class DatasetDraft:
    """What the owner declares about a data set, before it is checked."""

    name: str
    name_en: str = ""
    description: str = ""
    domain: str = DataDomain.OTHER
    update_frequency: str = UpdateFrequency.IRREGULAR
    identifying_column: str | None = None


def check_dataset(draft: DatasetDraft) -> DatasetDraft:
    """The draft with whitespace normalised, or ``InvalidInput`` naming the first bad field."""
    name = _clean(draft.name)
    if not name or len(name) > NAME_MAX:
        raise InvalidInput(N_("A data set name has 1–128 characters."), field="name")
    name_en = _clean(draft.name_en)
    if len(name_en) > NAME_MAX:
        raise InvalidInput(N_("The English name has at most 128 characters."), field="name_en")
    description = (draft.description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise InvalidInput(N_("The description has at most 2000 characters."), field="description")
    if draft.domain not in set(DataDomain):
        raise InvalidInput(N_("Choose the data set's domain from the list."), field="domain")
    if draft.update_frequency not in set(UpdateFrequency):
        raise InvalidInput(
            N_("Choose how often the data set is updated from the list."),
            field="update_frequency",
        )
    column = (draft.identifying_column or "").strip() or None
    if column is not None and len(column) > COLUMN_MAX:
        raise InvalidInput(
            N_("A column name has at most 128 characters."), field="identifying_column"
        )
    return DatasetDraft(
        name=name,
        name_en=name_en,
        description=description,
        domain=DataDomain(draft.domain),
        update_frequency=UpdateFrequency(draft.update_frequency),
        identifying_column=column,
    )


def check_filename(filename: str | None) -> str:
    """The base name of an uploaded file (never a path), or ``InvalidInput``."""
    raw = (filename or "").replace("\\", "/")
    name = PurePath(raw).name.strip() if raw else ""
    if not name or name in (".", ".."):
        raise InvalidInput(
            N_("The upload has no file name; choose a file to upload."), field="filename"
        )
    if len(name) > FILENAME_MAX or any(ord(c) < 32 for c in name):
        raise InvalidInput(
            N_("The file name is too long or contains control characters; rename the file."),
            field="filename",
        )
    return name


def check_not_empty(size: int) -> None:
    if size <= 0:
        raise InvalidInput(
            N_("The file is empty: there is nothing to scan. Choose a file with data in it."),
            field="file",
            code="empty-file",
        )


def check_table_name(table: str, schema: str | None) -> tuple[str, str | None]:
    table = (table or "").strip()
    schema = (schema or "").strip() or None
    if not table or len(table) > TABLE_MAX:
        raise InvalidInput(N_("Name the table to read (1–128 characters)."), field="table")
    if schema is not None and len(schema) > TABLE_MAX:
        raise InvalidInput(N_("A schema name has at most 128 characters."), field="schema")
    return table, schema


def check_database_scheme(backend: str, *, allow_files: bool) -> None:
    """Refuse a live source on a driver we do not read, or an SQLite file unless allowed.

    An SQLite URL names a file on the server: letting any user point a scan at one would let
    them read the server's own files (the control-plane database included), so operators must
    opt in (``DATAFACTOR_SOURCE_ALLOW_SQLITE``).
    """
    if backend not in DATABASE_SCHEMES:
        raise InvalidInput(
            N_(
                "Databases of type {backend} cannot be read. Use a PostgreSQL or MySQL URL, "
                "e.g. postgresql+psycopg://user:password@host/dbname."
            ),
            field="url",
            code="unsupported-database",
            backend=backend or "?",
        )
    if backend == "sqlite" and not allow_files:
        raise InvalidInput(
            N_("SQLite files on the server cannot be used as a source here."),
            field="url",
            code="sqlite-not-allowed",
        )
