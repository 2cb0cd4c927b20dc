"""Data set use cases: declare data sets, add versions from files or live tables, resumable uploads.

Each function is one use case on the caller's open ``Session`` (the entry point commits): it
checks permissions, applies the rules in ``domain.py``, writes, and records its audit event in the
same transaction. Bytes never move inside a transaction: a file is streamed into the blob store
first (``BlobStore.put_stream`` or an ``UploadSession``), and only its digest and size are
recorded here, so a long upload or its final re-hash never holds the database write lock. A blob
whose transaction then fails is harmless: it is content-addressed and the next upload of the same
bytes reuses it.

Visibility: a data set is seen by its holder's users and by parties that read across parties
(regulator, big-data bureau, exchange operator); another party's id answers "not found", never
"forbidden", so ids leak nothing. Only the holder's users change a data set.

Live database sources: the URL is checked (driver, SQLite files only when the operator allows
them), the table is looked up once through the data plane's reader, then the URL is sealed with
AES-GCM under a key derived from the secret key. What is shown anywhere is ``redact_url``'s form.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from datafactor import audit
from datafactor.dataplane.domain import (
    DatasetDraft,
    EventTag,
    SourceKind,
    check_database_scheme,
    check_dataset,
    check_filename,
    check_not_empty,
    check_table_name,
)
from datafactor.dataplane.errors import BlobNotFound, BlobTooLarge, UploadConflict
from datafactor.dataplane.models import Dataset, DatasetUpload, DatasetVersion
from datafactor.dataplane.readers import (
    SqlTable,
    Table,
    check_source_url,
    detect_format,
    open_table,
    redact_url,
)
from datafactor.dataplane.storage import Blob, BlobStore, validate_digest
from datafactor.db import utcnow
from datafactor.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from datafactor.permissions import Permission, Principal

P = Permission


def _require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."), permission=permission
        )


def _no_such_dataset() -> NotFound:
    return NotFound(N_("No such data set."))


def can_see(principal: Principal, party_id: str) -> bool:
    """Whether ``principal`` may read objects of ``party_id``'s data sets."""
    if party_id == principal.party_id:
        return principal.can(P.DATAPLANE_DATASET_READ)
    return principal.can(P.DATAPLANE_DATASET_READ_ALL)


# ------------------------------------------------------------------------------------ data sets


def create_dataset(session: Session, principal: Principal, draft: DatasetDraft) -> Dataset:
    """A party declares a data set it holds; versions are added to it afterwards."""
    _require(principal, P.DATAPLANE_DATASET_WRITE)
    clean = check_dataset(draft)
    dataset = Dataset(
        party_id=principal.party_id,
        name=clean.name,
        name_en=clean.name_en,
        description=clean.description,
        domain=clean.domain,
        update_frequency=clean.update_frequency,
        identifying_column=clean.identifying_column,
        version_count=0,
        created_by=principal.user_id,
    )
    session.add(dataset)
    session.flush()
    audit.record(
        session,
        actor=principal,
        action=EventTag.DATASET_CREATE,
        object_type="dataset",
        object_id=dataset.id,
        party_id=dataset.party_id,
        summary=f"Data set created: {dataset.name}",
    )
    return dataset


def get_dataset(
    session: Session, principal: Principal, dataset_id: str, *, for_update: bool = False
) -> Dataset:
    """A data set the principal may see; another tenant's id answers 'not found'."""
    if not (principal.can(P.DATAPLANE_DATASET_READ) or principal.can(P.DATAPLANE_DATASET_READ_ALL)):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."),
            permission=P.DATAPLANE_DATASET_READ,
        )
    stmt = select(Dataset).where(Dataset.id == dataset_id)
    if for_update:
        stmt = stmt.with_for_update()
    dataset = session.execute(stmt).scalar_one_or_none()
    if dataset is None or not can_see(principal, dataset.party_id):
        raise _no_such_dataset()
    return dataset


def _own_dataset(
    session: Session, principal: Principal, dataset_id: str, *, for_update: bool = False
) -> Dataset:
    """A data set the principal's party holds, for a change; others are refused."""
    _require(principal, P.DATAPLANE_DATASET_WRITE)
    dataset = get_dataset(session, principal, dataset_id, for_update=for_update)
    if dataset.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that holds a data set can change it."))
    return dataset


def update_dataset(
    session: Session, principal: Principal, dataset_id: str, changes: dict[str, Any]
) -> Dataset:
    """The holder corrects what it declared (names, description, domain, frequency, ID column)."""
    dataset = _own_dataset(session, principal, dataset_id, for_update=True)
    fields = ("name", "name_en", "description", "domain", "update_frequency", "identifying_column")
    unknown = set(changes) - set(fields)
    if unknown:
        raise InvalidInput(N_("Nothing to change."))
    current = {f: getattr(dataset, f) for f in fields}
    clean = check_dataset(DatasetDraft(**{**current, **changes}))
    changed = [f for f in fields if getattr(clean, f) != current[f]]
    if not changed:
        raise InvalidInput(N_("Nothing to change."))
    for f in changed:
        setattr(dataset, f, getattr(clean, f))
    dataset.updated_at = utcnow()
    audit.record(
        session,
        actor=principal,
        action=EventTag.DATASET_UPDATE,
        object_type="dataset",
        object_id=dataset.id,
        party_id=dataset.party_id,
        summary=f"Data set {dataset.name} changed: {', '.join(changed)}",
    )
    return dataset


@dataclass(frozen=True)
class DatasetQuery:
    """Filters of the data set list: a holder (for cross-party readers) and a name search."""

    party_id: str | None = None
    q: str | None = None


def list_datasets(
    session: Session, principal: Principal, query: DatasetQuery, *, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    """Data sets the principal may see, newest first, with the total for paging."""
    if not (principal.can(P.DATAPLANE_DATASET_READ) or principal.can(P.DATAPLANE_DATASET_READ_ALL)):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."),
            permission=P.DATAPLANE_DATASET_READ,
        )
    stmt = select(Dataset)
    if not principal.can(P.DATAPLANE_DATASET_READ_ALL):
        stmt = stmt.where(Dataset.party_id == principal.party_id)
    elif not principal.can(P.DATAPLANE_DATASET_READ):
        stmt = stmt.where(Dataset.party_id != principal.party_id)
    if query.party_id:
        stmt = stmt.where(Dataset.party_id == query.party_id)
    if query.q:
        like = f"%{query.q}%"
        stmt = stmt.where(or_(Dataset.name.like(like), Dataset.name_en.like(like)))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Dataset.created_at.desc(), Dataset.id).limit(limit).offset(offset)
    )
    return list(rows), total


# ------------------------------------------------------------------------------------- versions


def _next_version(
    session: Session,
    principal: Principal | None,
    dataset: Dataset,
    *,
    created_by: tuple[str | None, str] | None = None,
    actor_name: str | None = None,
    **fields: Any,
) -> DatasetVersion:
    """Number and add the next version; ``principal`` None is a system runner (``actor_name``)
    acting for the person ``created_by`` (user id, username) who asked for the version."""
    dataset.version_count += 1
    dataset.updated_at = utcnow()
    if created_by is not None:
        user_id, username = created_by
    elif principal is not None:
        user_id, username = principal.user_id, principal.username
    else:
        user_id, username = None, actor_name or "system"
    version = DatasetVersion(
        dataset_id=dataset.id,
        party_id=dataset.party_id,
        number=dataset.version_count,
        created_by=user_id,
        created_by_name=username[:64],
        **fields,
    )
    session.add(version)
    session.flush()
    where = (
        f"file {version.filename} sha256:{version.blob_sha256} ({version.size_bytes} bytes)"
        if version.source_kind == SourceKind.UPLOAD
        else f"table {version.source_table} at {version.source_url_display}"
    )
    if version.derived_from_id is not None:
        kind = (version.derivation or {}).get("kind", "derivation")
        where += f", derived from version {version.derived_from_id} by {kind} for {username}"
    audit.record(
        session,
        actor=principal,
        actor_name=actor_name,
        action=EventTag.VERSION_CREATE,
        object_type="dataset_version",
        object_id=version.id,
        party_id=dataset.party_id,
        summary=f"Version {version.number} of {dataset.name}: {where}",
    )
    return version


def add_file_version(
    session: Session, principal: Principal, dataset_id: str, *, blob: Blob, filename: str
) -> DatasetVersion:
    """A stored file becomes the data set's next version (its bytes are already in the store)."""
    dataset = _own_dataset(session, principal, dataset_id, for_update=True)
    name = check_filename(filename)
    fmt = detect_format(name)
    check_not_empty(blob.size)
    return _next_version(
        session,
        principal,
        dataset,
        source_kind=SourceKind.UPLOAD,
        blob_sha256=validate_digest(blob.digest),
        filename=name,
        format=fmt,
        size_bytes=blob.size,
    )


def add_derived_version(
    session: Session,
    dataset_id: str,
    *,
    blob: Blob,
    filename: str,
    derived_from_id: str,
    derivation: dict[str, Any],
    created_by: tuple[str | None, str],
    actor_name: str,
) -> DatasetVersion:
    """A file the system made from another version becomes the next version of ``dataset_id``.

    For runners acting for a person (``created_by``: their user id and name), after that person's
    request was checked: the data set and the source version must belong to the same party, so a
    derivation never crosses parties. ``derivation`` is kept with the version as it is (ids and
    digests only: it is shown to everyone who sees the version).
    """
    dataset = session.execute(
        select(Dataset).where(Dataset.id == dataset_id).with_for_update()
    ).scalar_one_or_none()
    source = session.get(DatasetVersion, derived_from_id)
    if dataset is None or source is None or source.party_id != dataset.party_id:
        raise _no_such_dataset()
    name = check_filename(filename)
    fmt = detect_format(name)
    check_not_empty(blob.size)
    return _next_version(
        session,
        None,
        dataset,
        created_by=created_by,
        actor_name=actor_name,
        source_kind=SourceKind.UPLOAD,
        blob_sha256=validate_digest(blob.digest),
        filename=name,
        format=fmt,
        size_bytes=blob.size,
        derived_from_id=source.id,
        derivation=dict(derivation),
    )


def check_writable(session: Session, principal: Principal, dataset_id: str) -> None:
    """Refuse now, before a long or outbound step, what adding a version would refuse later:
    no such data set (for this principal), or a data set of another party."""
    _own_dataset(session, principal, dataset_id)


def check_file_version(
    session: Session, principal: Principal, dataset_id: str, filename: str | None
) -> str:
    """Refuse an upload before any byte is read: not the holder, no such data set, a file name
    without a readable format. Returns the cleaned file name."""
    _own_dataset(session, principal, dataset_id)
    name = check_filename(filename)
    detect_format(name)
    return name


def check_readable(store: BlobStore, blob: Blob, filename: str) -> None:
    """Open the stored file as its format says and read its header: refuse it now, not at scan.

    Cheap (a sample of the bytes, the header row, a Parquet footer, a workbook's zip directory),
    so a binary file named ``.csv`` or a macro workbook is refused while the person still waits
    for the answer. Runs outside any transaction.
    """
    name = check_filename(filename)
    check_not_empty(blob.size)
    table = open_table(lambda: store.open(blob.digest), format=detect_format(name), name=name)
    _ = table.schema


def seal(secret_key: str, plaintext: str) -> str:
    """AES-GCM-encrypt ``plaintext`` under a key derived from ``secret_key`` (``v1:`` + base64)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(_url_key(secret_key)).encrypt(nonce, plaintext.encode(), b"dataset-source")
    return "v1:" + base64.b64encode(nonce + sealed).decode("ascii")


def unseal(secret_key: str, sealed: str) -> str:
    """The plaintext of ``seal``; ``InvalidInput`` when the secret key changed since sealing."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(sealed.removeprefix("v1:"))
        plain = AESGCM(_url_key(secret_key)).decrypt(raw[:12], raw[12:], b"dataset-source")
    except (InvalidTag, ValueError):
        raise InvalidInput(
            N_(
                "The stored database address cannot be decrypted (the server's secret key "
                "changed). Add the table again as a new version."
            ),
            code="source-sealed",
        ) from None
    return plain.decode()


def _url_key(secret_key: str) -> bytes:
    # A separate key for this purpose: the secret key itself signs sessions and CSRF tokens.
    return hashlib.sha256(b"datafactor/dataset-source-url/v1\x00" + secret_key.encode()).digest()


def check_database_source(
    url: str, table: str, schema: str | None, *, allow_files: bool, connect_timeout: int = 10
) -> tuple[str, str | None]:
    """Check a live table before it becomes a version: the driver is allowed and the table exists.

    Connects to the database (outside any transaction of ours); errors come back as
    ``SourceUnavailable`` / ``NotFound`` with the password removed.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    table, schema = check_table_name(table, schema)
    try:
        backend = make_url((url or "").strip()).get_backend_name()
    except (ArgumentError, ValueError):
        raise InvalidInput(
            N_(
                "This is not a database URL. Write it as driver://user:password@host/dbname, "
                "e.g. postgresql+psycopg://user:password@host/dbname."
            ),
            field="url",
            code="bad-database-url",
        ) from None
    check_database_scheme(backend, allow_files=allow_files)
    check_source_url(url.strip())  # no local sockets, no driver settings that reach our files
    try:
        make_url(url.strip()).get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError):
        raise InvalidInput(
            N_(
                "The server has no driver for this {backend} URL. For PostgreSQL write "
                "postgresql+psycopg://…; otherwise ask the operator to install the driver."
            ),
            field="url",
            code="database-driver-missing",
            backend=backend,
        ) from None
    source = SqlTable(url.strip(), table, schema=schema, connect_timeout=connect_timeout)
    source.close()
    return table, schema


def add_database_version(
    session: Session,
    principal: Principal,
    dataset_id: str,
    *,
    url: str,
    table: str,
    schema: str | None,
    secret_key: str,
) -> DatasetVersion:
    """A table in a live database becomes the data set's next version (read at each scan).

    Call ``check_database_source`` first, outside the transaction: it connects to the database.
    """
    dataset = _own_dataset(session, principal, dataset_id, for_update=True)
    table, schema = check_table_name(table, schema)
    url = (url or "").strip()
    return _next_version(
        session,
        principal,
        dataset,
        source_kind=SourceKind.DATABASE,
        format="sql",
        filename="",
        source_url_sealed=seal(secret_key, url),
        source_url_display=redact_url(url)[:512],
        source_table=table,
        source_schema=schema,
    )


def get_version(session: Session, principal: Principal, version_id: str) -> DatasetVersion:
    version = session.get(DatasetVersion, version_id)
    if version is None or not can_see(principal, version.party_id):
        raise NotFound(N_("No such data set version."))
    return version


def list_versions(
    session: Session, principal: Principal, dataset_id: str, *, limit: int, offset: int
) -> tuple[list[DatasetVersion], int]:
    """A data set's versions, newest first."""
    get_dataset(session, principal, dataset_id)
    stmt = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(DatasetVersion.number.desc()).limit(limit).offset(offset))
    return list(rows), total


def dataset_facts(session: Session, dataset_id: str) -> dict[str, Any]:
    """What a data set declares, as plain data for the system's runners (no principal)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise _no_such_dataset()
    return {
        "dataset_id": dataset.id,
        "name": dataset.name,
        "name_en": dataset.name_en,
        "domain": dataset.domain,
        "update_frequency": dataset.update_frequency,
        "identifying_column": dataset.identifying_column,
    }


@dataclass(frozen=True)
class VersionSource:
    """How to open a version's rows (for a scan runner): no ORM object, the URL unsealed."""

    version_id: str
    kind: str
    format: str
    filename: str
    digest: str | None
    url: str | None
    table: str | None
    schema: str | None
    created_at: datetime | None = None  # when the version was added: the data's last update


def version_source(session: Session, version_id: str, *, secret_key: str) -> VersionSource:
    """The source of a version, for the system's own runners (no principal: they act for it)."""
    version = session.get(DatasetVersion, version_id)
    if version is None:
        raise NotFound(N_("No such data set version."))
    url = (
        unseal(secret_key, version.source_url_sealed)
        if version.source_url_sealed is not None
        else None
    )
    return VersionSource(
        version.id,
        version.source_kind,
        version.format,
        version.filename,
        version.blob_sha256,
        url,
        version.source_table,
        version.source_schema,
        version.created_at,
    )


def open_version(store: BlobStore, source: VersionSource, *, connect_timeout: int = 10) -> Table:
    """The version's rows as a data plane ``Table`` (the caller closes an ``SqlTable``)."""
    if source.kind == SourceKind.DATABASE:
        assert source.url is not None
        assert source.table is not None
        return SqlTable(
            source.url,
            source.table,
            schema=source.schema,
            name=source.table,
            connect_timeout=connect_timeout,
        )
    assert source.digest is not None
    digest = source.digest
    return open_table(lambda: store.open(digest), format=source.format, name=source.filename)


# -------------------------------------------------------------------------------------- uploads


def _party_holds(session: Session, party_id: str, digest: str) -> bool:
    """Whether one of the party's own versions already has these bytes."""
    found = session.scalar(
        select(DatasetVersion.id)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(Dataset.party_id == party_id, DatasetVersion.blob_sha256 == digest)
        .limit(1)
    )
    return found is not None


def start_upload(
    session: Session,
    principal: Principal,
    store: BlobStore,
    dataset_id: str,
    *,
    filename: str,
    size: int,
    sha256: str,
    max_bytes: int,
) -> DatasetUpload:
    """Begin a resumable upload of a file whose size and SHA-256 the client declares.

    When the party already has a version with those bytes there is nothing to send: the upload
    starts complete (its offset is its size) and finishing it only adds the version. Bytes the
    store holds for *another* party must be sent and checked like any other: a declared digest
    proves nothing (digests are visible to cross-party readers), and answering differently would
    tell anyone whether some file exists.
    """
    dataset = _own_dataset(session, principal, dataset_id)
    name = check_filename(filename)
    fmt = detect_format(name)
    check_not_empty(size)
    digest = validate_digest(sha256)
    if size > max_bytes:
        raise BlobTooLarge(
            N_("The upload is larger than the limit of {max_bytes} bytes."), max_bytes=max_bytes
        )
    if _party_holds(session, dataset.party_id, digest) and store.exists(digest):
        if store.size(digest) != size:
            raise InvalidInput(
                N_("The declared size does not match the file with this SHA-256."), field="size"
            )
        upload_id = secrets.token_hex(16)
    else:
        upload_id = store.create_upload(size=size, sha256=digest, max_bytes=max_bytes).upload_id
    upload = DatasetUpload(
        id=upload_id,
        dataset_id=dataset.id,
        party_id=dataset.party_id,
        filename=name,
        format=fmt,
        size_bytes=size,
        sha256=digest,
        created_by=principal.user_id,
    )
    session.add(upload)
    session.flush()
    audit.record(
        session,
        actor=principal,
        action=EventTag.UPLOAD_START,
        object_type="dataset_upload",
        object_id=upload.id,
        party_id=dataset.party_id,
        summary=f"Upload of {name} ({size} bytes, sha256:{digest}) into {dataset.name}",
    )
    return upload


def get_upload(
    session: Session, principal: Principal, upload_id: str, *, for_update: bool = False
) -> DatasetUpload:
    """An upload of the principal's own party (only the holder uploads)."""
    _require(principal, P.DATAPLANE_DATASET_WRITE)
    stmt = select(DatasetUpload).where(DatasetUpload.id == upload_id)
    if for_update:
        stmt = stmt.with_for_update()
    upload = session.execute(stmt).scalar_one_or_none()
    if upload is None or upload.party_id != principal.party_id:
        raise BlobNotFound(N_("There is no upload session with this id."))
    return upload


def upload_offset(store: BlobStore, upload: DatasetUpload) -> int:
    """How many bytes of the upload the server holds: where the client resumes."""
    if upload.finished_at is not None:
        return upload.size_bytes
    try:
        return store.get_upload(upload.id).offset
    except BlobNotFound:
        return upload.size_bytes if store.exists(upload.sha256) else 0


def _check_open(upload: DatasetUpload) -> None:
    if upload.aborted_at is not None:
        raise Conflict(
            N_("This upload was abandoned; start the upload again."), code="upload-aborted"
        )


def append_chunk(store: BlobStore, upload: DatasetUpload, offset: int, data: bytes) -> int:
    """Write a chunk at ``offset`` (checked by the store); the new offset. Outside transactions."""
    _check_open(upload)
    if upload.finished_at is not None or not _has_session(store, upload.id):
        if not store.exists(upload.sha256):
            raise BlobNotFound(N_("There is no upload session with this id."))
        # Complete already (the bytes were stored before, or this is a retried last chunk).
        end = offset + len(data)
        if offset < 0 or end > upload.size_bytes:
            raise UploadConflict(
                N_("The chunk ends at byte {end}, past the declared size of {size} bytes."),
                end=end,
                size=upload.size_bytes,
            )
        return upload.size_bytes
    return store.get_upload(upload.id).append(offset, data)


def _has_session(store: BlobStore, upload_id: str) -> bool:
    try:
        store.get_upload(upload_id)
    except BlobNotFound:
        return False
    return True


def seal_upload(store: BlobStore, upload: DatasetUpload) -> Blob:
    """Verify the received bytes and move them into the store (idempotent). Outside transactions."""
    _check_open(upload)
    if not _has_session(store, upload.id) and store.exists(upload.sha256):
        return Blob(upload.sha256, upload.size_bytes)
    return store.get_upload(upload.id).finish()


def complete_upload(
    session: Session, principal: Principal, upload_id: str, blob: Blob
) -> tuple[DatasetVersion, bool]:
    """Record a sealed upload as the data set's next version; ``(version, created)``.

    Finishing twice (a client retrying after a lost answer) returns the version made the first
    time rather than a second, identical version.
    """
    upload = get_upload(session, principal, upload_id, for_update=True)
    _check_open(upload)
    if upload.version_id is not None:
        version = session.get(DatasetVersion, upload.version_id)
        assert version is not None
        return version, False
    if blob.digest != upload.sha256:
        raise Conflict(
            N_("The received bytes do not match the declared SHA-256; upload the file again.")
        )
    version = add_file_version(
        session, principal, upload.dataset_id, blob=blob, filename=upload.filename
    )
    upload.finished_at, upload.version_id = utcnow(), version.id
    return version, True


def abort_upload(
    session: Session, principal: Principal, store: BlobStore, upload_id: str
) -> DatasetUpload:
    """Abandon an unfinished upload: its received bytes are deleted."""
    upload = get_upload(session, principal, upload_id, for_update=True)
    if upload.finished_at is not None:
        raise Conflict(N_("This upload is finished; its version cannot be abandoned."))
    if upload.aborted_at is None:
        upload.aborted_at = utcnow()
        if _has_session(store, upload.id):
            store.get_upload(upload.id).abort()
        audit.record(
            session,
            actor=principal,
            action=EventTag.UPLOAD_ABORT,
            object_type="dataset_upload",
            object_id=upload.id,
            party_id=upload.party_id,
            summary=f"Upload of {upload.filename} abandoned",
        )
    return upload


def expire_uploads(session: Session, store: BlobStore, *, older_than: timedelta) -> int:
    """Abandon unfinished uploads started more than ``older_than`` ago (the system's sweep), so
    no upload stays open and no part file stays on disk forever; how many."""
    cutoff = utcnow() - older_than
    stale = session.scalars(
        select(DatasetUpload)
        .where(
            DatasetUpload.finished_at.is_(None),
            DatasetUpload.aborted_at.is_(None),
            DatasetUpload.created_at < cutoff,
        )
        .limit(500)
        .with_for_update(skip_locked=True)
    ).all()
    for upload in stale:
        upload.aborted_at = utcnow()
        if _has_session(store, upload.id):
            store.get_upload(upload.id).abort()
        audit.record(
            session,
            actor=None,
            actor_name="upload-sweep",
            action=EventTag.UPLOAD_ABORT,
            object_type="dataset_upload",
            object_id=upload.id,
            party_id=upload.party_id,
            summary=f"Unfinished upload of {upload.filename} abandoned after {older_than}",
        )
    return len(stale)
