"""Registry tables: assets and their lineage, rights, applications with their history,
objections, certificates with their per-year serial counter, and the calendar's overrides.

The rows hold what the pure domain (``registry.domain``) works on: ``RegistryRight.to_domain``
rebuilds a ``Right`` and ``RegistryApplication.to_domain`` a ``RegistrationApplication``; the
services load the rows that matter, apply a domain function and write back what it returns.
Party ids (holder, applicant, objector, pledgee) are ``party.id``s; assets point at the data
plane's data set and the version registered, by id only (the data plane is another domain).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow
from datafactor.registry.domain import (
    DataClass,
    RegistrationApplication,
    RegistrationState,
    RegistrationType,
    Right,
    Track,
    right_from_dict,
)


class RegistryAsset(Base):
    """A registrable object (数据资源, 数据产品, 数据服务, 数据工具) and its metadata.

    ``party_id`` is the owning party (the holder of the data set registered). ``version_id`` and
    ``fingerprint`` (SHA-256 of the stored bytes) name the version the registration is about;
    ``grade`` is the latest succeeded discovery scan's grade of that version when last read.
    """

    __tablename__ = "registry_asset"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    party_id: Mapped[str] = mapped_column(ForeignKey("party.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    data_class: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(256))
    name_en: Mapped[str] = mapped_column(String(256), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    domain: Mapped[str] = mapped_column(String(32), default="")
    source_statement: Mapped[str] = mapped_column(Text, default="")
    collection_method: Mapped[str] = mapped_column(String(512), default="")
    update_frequency: Mapped[str] = mapped_column(String(16), default="")
    coverage: Mapped[str] = mapped_column(String(128), default="")
    region: Mapped[str] = mapped_column(String(16), default="")
    volume: Mapped[str] = mapped_column(String(64), default="")
    delivery_mode: Mapped[str] = mapped_column(String(32), default="")
    field_schema: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    sample: Mapped[str] = mapped_column(Text, default="")
    dataset_id: Mapped[str | None] = mapped_column(ID, index=True)
    version_id: Mapped[str | None] = mapped_column(ID)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    grade: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegistryLineage(Base):
    """One lineage link: product ``product_id`` was derived from ``source_id`` (at a version)."""

    __tablename__ = "registry_lineage"

    product_id: Mapped[str] = mapped_column(ForeignKey("registry_asset.id"), primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("registry_asset.id"), primary_key=True)
    source_version_id: Mapped[str | None] = mapped_column(ID)


class RegistryRight(Base):
    """One registered right (持有权, 加工使用权, 经营权); ``to_domain`` is its domain value."""

    __tablename__ = "registry_right"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(24))
    holder_id: Mapped[str] = mapped_column(ID, index=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("registry_asset.id"), index=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    term_start: Mapped[date] = mapped_column(Date)
    term_end: Mapped[date | None] = mapped_column(Date)
    origin: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(ID, index=True)
    basis_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))
    pledgee_id: Mapped[str | None] = mapped_column(ID)
    pledge_since: Mapped[date | None] = mapped_column(Date)
    pledge_registration_id: Mapped[str | None] = mapped_column(ID)
    suspended_by: Mapped[str | None] = mapped_column(ID)
    registration_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def to_domain(self) -> Right:
        return right_from_dict(
            {
                "id": self.id,
                "kind": self.kind,
                "holder_id": self.holder_id,
                "asset_id": self.asset_id,
                "scope": self.scope,
                "term": {
                    "start": self.term_start.isoformat(),
                    "end": None if self.term_end is None else self.term_end.isoformat(),
                },
                "origin": self.origin,
                "parent_id": self.parent_id,
                "basis_ids": list(self.basis_ids or ()),
                "status": self.status,
                "pledge": None
                if self.pledgee_id is None or self.pledge_since is None
                else {
                    "pledgee_id": self.pledgee_id,
                    "since": self.pledge_since.isoformat(),
                    "registration_id": self.pledge_registration_id,
                },
                "suspended_by": self.suspended_by,
            }
        )

    def assign(self, right: Right) -> None:
        """Copy a domain right's state onto this row (the id and kind never change)."""
        self.kind = right.kind.value
        self.holder_id = right.holder_id
        self.asset_id = right.asset_id
        self.scope = right.scope.as_dict()
        self.term_start = right.term.start
        self.term_end = right.term.end
        self.origin = right.origin.value
        self.parent_id = right.parent_id
        self.basis_ids = sorted(right.basis_ids)
        self.status = right.status.value
        self.pledgee_id = right.pledge.pledgee_id if right.pledge else None
        self.pledge_since = right.pledge.since if right.pledge else None
        self.pledge_registration_id = right.pledge.registration_id if right.pledge else None
        self.suspended_by = right.suspended_by
        self.updated_at = utcnow()


class RegistryApplication(Base):
    """A registration application (登记申请): its state, owner, due date, facts and decision.

    ``facts`` is what the applicant declared (right acted on, counterparty, requested scope and
    term, declared fingerprint, self-commitment); ``decision`` the formal review's ``Decision``
    (outcome, track, reasons with rule ids, both languages) or a person's refusal with its rule.
    """

    __tablename__ = "registry_application"
    __table_args__ = (
        Index("ix_registry_application_state_due", "state", "due_on"),
        Index("ix_registry_application_applicant", "applicant_id", "created_at"),
        # objection registrations on a right, read by every verification and certification
        Index("ix_registry_application_right", "right_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(16))
    track: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24))
    owner_role: Mapped[str | None] = mapped_column(String(16))
    due_on: Mapped[date | None] = mapped_column(Date)
    state_since: Mapped[date] = mapped_column(Date)
    submitted_on: Mapped[date] = mapped_column(Date)
    notice_starts: Mapped[date | None] = mapped_column(Date)
    notice_ends: Mapped[date | None] = mapped_column(Date)
    excluded_days: Mapped[int] = mapped_column(Integer, default=0)
    applicant_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    asset_id: Mapped[str] = mapped_column(ForeignKey("registry_asset.id"), index=True)
    data_class: Mapped[str] = mapped_column(String(16))
    right_id: Mapped[str | None] = mapped_column(ID)
    result_right_id: Mapped[str | None] = mapped_column(ID)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def to_domain(self) -> RegistrationApplication:
        return RegistrationApplication(
            id=self.id,
            type=RegistrationType(self.type),
            applicant_id=self.applicant_id,
            asset_id=self.asset_id,
            data_class=DataClass(self.data_class),
            submitted_on=self.submitted_on,
            state=RegistrationState(self.state),
            state_since=self.state_since,
            due_on=self.due_on,
            track=Track(self.track),
            notice_starts=self.notice_starts,
            notice_ends=self.notice_ends,
            excluded_days=self.excluded_days,
            right_id=self.right_id,
        )

    def assign(self, application: RegistrationApplication, owner: str | None) -> None:
        self.state = application.state.value
        self.track = application.track.value
        self.state_since = application.since
        self.due_on = application.due_on
        self.notice_starts = application.notice_starts
        self.notice_ends = application.notice_ends
        self.excluded_days = application.excluded_days
        self.owner_role = owner
        self.updated_at = utcnow()


class RegistryApplicationEvent(Base):
    """One step of an application's history: action, states, who (role and user), why, rule."""

    __tablename__ = "registry_application_event"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(ForeignKey("registry_application.id"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    source: Mapped[str | None] = mapped_column(String(24))
    target: Mapped[str] = mapped_column(String(24))
    role: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_name: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str] = mapped_column(String(64), default="")
    on: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegistryObjection(Base):
    """An objection (异议) lodged during a public notice, and the registrar's decision on it."""

    __tablename__ = "registry_objection"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(ForeignKey("registry_application.id"), index=True)
    objector_id: Mapped[str] = mapped_column(ForeignKey("party.id"), index=True)
    grounds: Mapped[list[str]] = mapped_column(JSON)
    statement: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSON)
    lodged_on: Mapped[date] = mapped_column(Date)
    lodged_by: Mapped[str | None] = mapped_column(ID)
    outcome: Mapped[str | None] = mapped_column(String(16))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decided_on: Mapped[date | None] = mapped_column(Date)
    decided_by: Mapped[str | None] = mapped_column(ID)


class RegistryCertificate(Base):
    """A registration certificate: number, the signed canonical payload, its ledger entry.

    ``payload`` is the canonical certificate (``certificate_payload``); ``signature`` its Ed25519
    signature (base64) by the registry key ``key`` (a verifier key line); ``ledger_index`` the
    ``registry.certificate.issued`` entry written in the same transaction. ``status`` is
    ``current`` or ``superseded``; what the public sees is derived from the right's status.
    """

    __tablename__ = "registry_certificate"
    __table_args__ = (UniqueConstraint("year", "serial"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    serial: Mapped[int] = mapped_column(Integer)
    right_id: Mapped[str] = mapped_column(ForeignKey("registry_right.id"), index=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("registry_application.id"))
    asset_id: Mapped[str] = mapped_column(ID, index=True)
    holder_id: Mapped[str] = mapped_column(ID, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    ledger_index: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16), default="current")
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegistryCertificateSerial(Base):
    """The last serial issued in a year; issuing locks this row, so numbers are never reused."""

    __tablename__ = "registry_certificate_serial"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_serial: Mapped[int] = mapped_column(Integer, default=0)


class RegistryRevision(Base):
    """One row counting the changes to what a certificate's verification shows.

    Every transaction that writes a right, a certificate, an asset, a lineage link, an objection
    registration or an objection lodged during a notice bumps ``value`` as it commits
    (``bump_revision_at_commit``), so a verification computed after reading the counter can be
    reused by any reader that reads the same counter value (``services.VerificationCache``, the
    exchange's check of a listed right at each trade): nothing it depends on has changed since.
    """

    __tablename__ = "registry_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class RegistryCalendarDay(Base):
    """An administrator's override of the working-day calendar: a holiday or a make-up day."""

    __tablename__ = "registry_calendar_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "holiday" | "workday"
    note: Mapped[str] = mapped_column(String(256), default="")
    updated_by: Mapped[str | None] = mapped_column(ID)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Tables whose rows a certificate verification reads (status, chain of title, objections), or
# the exchange's check of a listed right at each trade (``title_disputes``: also the objections
# lodged during a notice, which open a title dispute until they are decided).
_VERIFIED_FROM: Final = (
    RegistryRight,
    RegistryCertificate,
    RegistryAsset,
    RegistryLineage,
    RegistryObjection,
)
_BUMP: Final = (
    update(RegistryRevision)
    .where(RegistryRevision.id == 1)
    .values(value=RegistryRevision.value + 1)
    .execution_options(synchronize_session=False)
)


_CHANGED: Final = "datafactor.registry.revision_due"
# The PostgreSQL notification channel carrying each new revision value.
REVISION_CHANNEL: Final = "datafactor_registry_revision"
_NOTIFY: Final = text("SELECT pg_notify(:channel, :value)")


@event.listens_for(Session, "before_flush")
def bump_revision_on_flush(session: Session, _context: Any, _instances: Any) -> None:
    """Note a flush that writes anything a verification depends on; the bump itself waits for
    the commit (``bump_revision_at_commit``)."""
    if session.info.get(_CHANGED):
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, _VERIFIED_FROM) or (
            isinstance(obj, RegistryApplication) and obj.type == RegistrationType.OBJECTION.value
        ):
            session.info[_CHANGED] = True
            return


@event.listens_for(Session, "before_commit")
def bump_revision_at_commit(session: Session) -> None:
    """Bump ``registry_revision`` in the committing transaction when it wrote what a
    verification reads. Last, so its row lock is the last lock the transaction takes: taken at
    the first flush it ordered against the audit chain's lock both ways and could deadlock on
    PostgreSQL. Still inside the transaction, so readers never see the new count before the
    data."""
    session.flush()
    if session.info.pop(_CHANGED, False):
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            connection.execute(_BUMP)
            return
        # PostgreSQL: tell every process's watch (``Database.counter``) the new value; the
        # notification is delivered only if and when this transaction commits.
        value = connection.execute(_BUMP.returning(RegistryRevision.value)).scalar_one()
        connection.execute(_NOTIFY, {"channel": REVISION_CHANNEL, "value": str(value)})


@event.listens_for(Session, "after_rollback")
def forget_revision_on_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
