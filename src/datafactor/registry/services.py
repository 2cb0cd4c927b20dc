"""The registry's use cases: assets, applications, registrar actions, objections, certificates.

Each function is one use case in the caller's transaction (``db.write()``), with its audit record:
it loads the rows that matter, applies the pure domain (``registry.domain`` — the formal checks,
the workflow, the rights operations, the certificate rules) and writes back what the domain
returned. No rule is decided here; this module only gathers facts and persists results.

Certification happens in the transaction of the action that reaches *certified* (a registrar
closing the notice, an approval, the fast track): the rights change is applied to a
``RightsBook`` loaded from the rows concerned, the certificate gets the next number of its year
from a row-locked counter, its canonical payload is signed with the registry's Ed25519 key, and
the ``registry.certificate.issued`` event is appended to the ledger **in the same transaction** —
a crash leaves both the certificate and its ledger entry, or neither.

Dates: every use case takes ``today`` (the date in Asia/Shanghai by default) so tests and
operators can run the workflow on a fixed clock; working days come from the packaged holiday
calendar with the administrator's overrides (``registry_calendar_day``).
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import weakref
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from datafactor import audit, dataplane, discovery, identity, ledger
from datafactor.db import Database, new_id, today_cn, utcnow
from datafactor.errors import N_, Forbidden, InvalidInput, NotFound
from datafactor.fsutil import read_private_file, write_new_private_file
from datafactor.permissions import Permission, Principal
from datafactor.registry.domain import (
    CERTIFICATE_EVENT_KIND,
    DISPUTE_EXEMPT,
    DISPUTING_STATUSES,
    FINAL_STATES,
    Action,
    ActorRole,
    ApplicationFacts,
    AssetKind,
    BrokenChainOfTitle,
    CertificateStatus,
    DataClass,
    Decision,
    EventTag,
    Grounds,
    ObjectionRecord,
    ObjectionRecordStatus,
    Outcome,
    RegistrationState,
    RegistrationType,
    RegistryRules,
    Right,
    RightKind,
    RightsBook,
    RightsChange,
    Scope,
    Step,
    Term,
    Track,
    WorkingCalendar,
    advance,
    certificate_bytes,
    certificate_payload,
    certificate_status,
    certificate_validity,
    chain_of_title,
    close_objection_record,
    decide_objection,
    default_calendar,
    formal_checks,
    format_certificate_number,
    load_registry_rules,
    lodge_objection,
    overdue,
    parse_certificate_number,
    record_lawsuit,
    register_objection,
    require_objection_record,
    require_open,
    resolve_objection_record,
    rights_operation,
    submit,
)
from datafactor.registry.errors import (
    InvalidRegistration,
    NotRightHolder,
    RegistryError,
    TitleDisputed,
)
from datafactor.registry.models import (
    REVISION_CHANNEL,
    RegistryApplication,
    RegistryApplicationEvent,
    RegistryAsset,
    RegistryCalendarDay,
    RegistryCertificate,
    RegistryCertificateSerial,
    RegistryLineage,
    RegistryObjection,
    RegistryRevision,
    RegistryRight,
)

P = Permission
A = Action
S = RegistrationState
R = ActorRole

KEY_FILE: Final = "certificate.key"
KEY_NAME: Final = "datafactor-registry"
NOTICE_STATES: Final = (S.PUBLIC_NOTICE.value, S.OBJECTION.value)

MSG_NOT_ALLOWED: Final = N_("Your account is not allowed to do this ({permission}).")
MSG_NO_ASSET: Final = N_("No such registry asset.")
MSG_NO_APPLICATION: Final = N_("No such registration application.")
MSG_NO_OBJECTION: Final = N_("No such objection.")
MSG_NOT_YOUR_VERSION: Final = N_(
    "Data set version {version} is held by another party: only the party that holds data can "
    "register it. Register a version of one of your own data sets (rule {rule})."
)
MSG_NO_SOURCE: Final = N_(
    "Lineage source {asset} is not a registered asset you can build on: list your own "
    "registered data, or data on which you hold a registered holding or processing-use right. "
    "Obtain a licence for it (or register the data first), then list it (rule {rule})."
)
MSG_DISPUTED: Final = N_(
    "Title to right {right} is under dispute ({disputes}): the registration cannot be made "
    "while the dispute is open. Refuse or return the application, or wait until the objection "
    "is closed or lapses (rule {rule})."
)
MSG_NOT_OBJECTOR: Final = N_(
    "Only the objector or a registrar can record a lawsuit on objection registration {application}."
)
MSG_NOT_APPLICANT: Final = N_("Only the applicant's party can {action} this application.")
MSG_NO_CERTIFICATE: Final = N_(
    "No certificate numbered {number} has been issued. Check the number on the certificate "
    "(rule {rule})."
)
MSG_CHECKLIST: Final = N_(
    "Confirm every item of the substantive-review checklist before approving ({count} not "
    "confirmed yet), or return the application with a reason (rule {rule})."
)
MSG_UNKNOWN_CHECK: Final = N_(
    "{item} is not an item of the substantive-review checklist: confirm the items the "
    "checklist lists (rule {rule})."
)
MSG_NOT_NOTICED: Final = N_(
    "Application {application} is not on the public notice board: objections are lodged "
    "during its public notice."
)


# ---------------------------------------------------------------------------------- plumbing


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(p) for p in permissions):
        raise Forbidden(MSG_NOT_ALLOWED, permission=permissions[0].value)


def _rules() -> RegistryRules:
    return load_registry_rules()


def calendar_for(session: Session) -> WorkingCalendar:
    """The working-day calendar: the packaged years with the administrator's overrides."""
    rows = list(session.scalars(select(RegistryCalendarDay)))
    return default_calendar(
        holidays=[r.day for r in rows if r.kind == "holiday"],
        workdays=[r.day for r in rows if r.kind == "workday"],
    )


@dataclass(frozen=True)
class Issuer:
    """Who signs certificates: the registry's Ed25519 key and the authority's name."""

    signer: ledger.Signer
    name: str
    keys: Any  # the ledger's key store (signs the checkpoint a receipt needs)


def load_or_create_signer(directory: Path) -> ledger.Signer:
    """The registry's certificate key under ``directory`` (created 0600 on first use).

    Kept like the ledger's log key, but separate from it: the log key signs checkpoints, this
    one certificates, so either can be rotated without touching the other.
    """
    path = Path(directory) / KEY_FILE
    if not path.exists():
        # Written whole and linked into place (another process may win: its key is used).
        write_new_private_file(path, ledger.Signer.generate(KEY_NAME).key_string() + "\n")
    return ledger.Signer.from_key_string(read_private_file(path))


def issuer_for(settings: Any) -> Issuer:
    keys = ledger.keys_for(settings)
    keys.ensure()
    signer = load_or_create_signer(Path(settings.var_dir) / "registry")
    return Issuer(signer=signer, name=keys.name, keys=keys)


def _audit(
    session: Session,
    principal: Principal | None,
    action: str,
    object_type: str,
    object_id: str,
    summary: str,
    party_id: str | None,
    reasons: Sequence[str] = (),
) -> None:
    audit.record(
        session,
        actor=principal,
        action=action,
        object_type=object_type,
        object_id=object_id,
        summary=summary,
        party_id=party_id,
        reasons=[r for r in reasons if r],
        actor_name=None if principal else "system",
    )


# -------------------------------------------------------------------------------------- assets


@dataclass(frozen=True)
class AssetDraft:
    """What a party declares about a registrable object; ``version_id`` is the data registered."""

    kind: AssetKind
    name: str
    data_class: DataClass = DataClass.ENTERPRISE
    name_en: str = ""
    description: str = ""
    domain: str = ""
    source_statement: str = ""
    collection_method: str = ""
    update_frequency: str = ""
    coverage: str = ""
    region: str = ""
    volume: str = ""
    delivery_mode: str = ""
    field_schema: tuple[Mapping[str, Any], ...] = ()
    sample: str = ""
    version_id: str | None = None
    lineage: tuple[str, ...] = ()  # source asset ids (products, services, tools)


def _latest_grade(session: Session, principal: Principal, version_id: str) -> str | None:
    """The grade of the latest succeeded discovery scan of the version (None: none finished)."""
    scans, _ = discovery.list_scans(
        session,
        principal,
        discovery.ScanQuery(version_id=version_id, status=discovery.ScanStatus.SUCCEEDED.value),
        limit=1,
        offset=0,
    )
    return scans[0].grade if scans else None


def _attach_version(
    session: Session, principal: Principal, asset: RegistryAsset, version_id: str
) -> None:
    version = dataplane.get_version(session, principal, version_id)
    if version.party_id != principal.party_id:
        rule = _rules().rule_id("holder")
        raise NotRightHolder(
            MSG_NOT_YOUR_VERSION, rule=rule, field="version_id", version=version_id
        )
    facts = dataplane.dataset_facts(session, version.dataset_id)
    asset.dataset_id = version.dataset_id
    asset.version_id = version.id
    asset.fingerprint = version.blob_sha256
    asset.grade = _latest_grade(session, principal, version.id)
    asset.domain = asset.domain or str(facts.get("domain") or "")
    asset.update_frequency = asset.update_frequency or str(facts.get("update_frequency") or "")


def _usable_source(session: Session, principal: Principal, source: RegistryAsset) -> bool:
    """Whether ``principal`` may name ``source`` in a product's lineage: it sees the asset (its
    own, or every asset as a registrar), or its party holds a holding or processing-use right on
    it (a licensee builds products on data it does not hold)."""
    if _can_see_party(principal, source.party_id, P.REGISTRY_ASSET_READ, P.REGISTRY_ASSET_READ_ALL):
        return True
    held = session.scalar(
        select(func.count()).where(
            RegistryRight.asset_id == source.id,
            RegistryRight.holder_id == principal.party_id,
            RegistryRight.kind.in_([RightKind.HOLDING.value, RightKind.PROCESSING_USE.value]),
        )
    )
    return bool(held)


def _set_lineage(
    session: Session, principal: Principal, asset: RegistryAsset, sources: Iterable[str]
) -> None:
    for row in session.scalars(
        select(RegistryLineage).where(RegistryLineage.product_id == asset.id)
    ):
        session.delete(row)
    for source_id in dict.fromkeys(sources):
        source = session.get(RegistryAsset, source_id)
        # Unknown and invisible sources get the same answer: no oracle for others' asset ids.
        if (
            source is None
            or source_id == asset.id
            or not _usable_source(session, principal, source)
        ):
            raise InvalidRegistration(
                MSG_NO_SOURCE,
                rule=_rules().rule_id("product_lineage"),
                field="lineage",
                asset=source_id,
            )
        session.add(
            RegistryLineage(
                product_id=asset.id, source_id=source_id, source_version_id=source.version_id
            )
        )
    session.flush()


ASSET_TEXT_FIELDS: Final = (  # an asset's text metadata, as declared
    "name",
    "name_en",
    "description",
    "domain",
    "source_statement",
    "collection_method",
    "update_frequency",
    "coverage",
    "region",
    "volume",
    "delivery_mode",
    "sample",
)


def create_asset(session: Session, principal: Principal, draft: AssetDraft) -> RegistryAsset:
    """A party declares an asset, from a version of one of its own data sets."""
    _require(principal, P.REGISTRY_ASSET_WRITE)
    asset = RegistryAsset(
        id=new_id(),
        party_id=principal.party_id,
        kind=AssetKind(draft.kind).value,
        data_class=DataClass(draft.data_class).value,
        field_schema=[dict(f) for f in draft.field_schema],
        created_by=principal.user_id,
        **{name: getattr(draft, name) for name in ASSET_TEXT_FIELDS},
    )
    if draft.version_id:
        _attach_version(session, principal, asset, draft.version_id)
    session.add(asset)
    session.flush()
    if draft.lineage:
        _set_lineage(session, principal, asset, draft.lineage)
    _audit(
        session,
        principal,
        "registry:asset:create",
        "registry_asset",
        asset.id,
        f"Registry asset declared: {asset.name}",
        asset.party_id,
    )
    return asset


def update_asset(
    session: Session, principal: Principal, asset_id: str, changes: Mapping[str, Any]
) -> RegistryAsset:
    """Change an asset's metadata, or point it at a newer version (fingerprint, grade)."""
    _require(principal, P.REGISTRY_ASSET_WRITE)
    asset = get_asset(session, principal, asset_id)
    if asset.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that declared an asset can change it."))
    for name, value in changes.items():
        if name in ASSET_TEXT_FIELDS:
            setattr(asset, name, value)
        elif name == "field_schema":
            asset.field_schema = [dict(f) for f in value]
    if changes.get("version_id"):
        _attach_version(session, principal, asset, str(changes["version_id"]))
    if "lineage" in changes:
        _set_lineage(session, principal, asset, changes["lineage"] or ())
    asset.updated_at = utcnow()
    _audit(
        session,
        principal,
        "registry:asset:update",
        "registry_asset",
        asset.id,
        f"Registry asset changed: {', '.join(sorted(changes))}",
        asset.party_id,
    )
    return asset


def _can_see_party(principal: Principal, party_id: str, own: Permission, every: Permission) -> bool:
    if party_id == principal.party_id:
        return principal.can(own)
    return principal.can(every)


def get_asset(session: Session, principal: Principal, asset_id: str) -> RegistryAsset:
    _require(principal, P.REGISTRY_ASSET_READ, P.REGISTRY_ASSET_READ_ALL)
    asset = session.get(RegistryAsset, asset_id)
    if asset is None or not _can_see_party(
        principal, asset.party_id, P.REGISTRY_ASSET_READ, P.REGISTRY_ASSET_READ_ALL
    ):
        raise NotFound(MSG_NO_ASSET)
    return asset


def list_assets(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[RegistryAsset], int]:
    _require(principal, P.REGISTRY_ASSET_READ, P.REGISTRY_ASSET_READ_ALL)
    stmt = select(RegistryAsset)
    if not principal.can(P.REGISTRY_ASSET_READ_ALL):
        stmt = stmt.where(RegistryAsset.party_id == principal.party_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(RegistryAsset.created_at.desc(), RegistryAsset.id).limit(limit).offset(offset)
    )
    return list(rows), total


def lineage_of(session: Session, asset_id: str) -> list[str]:
    return list(
        session.scalars(
            select(RegistryLineage.source_id)
            .where(RegistryLineage.product_id == asset_id)
            .order_by(RegistryLineage.source_id)
        )
    )


def _metadata_present(session: Session, asset: RegistryAsset) -> frozenset[str]:
    present = {
        "name_zh": asset.name,
        "description": asset.description,
        "industry_domain": asset.domain,
        "collection_method": asset.collection_method,
        "update_frequency": asset.update_frequency,
        "time_coverage": asset.coverage,
        "region": asset.region,
        "volume": asset.volume,
        "field_schema": bool(asset.field_schema),
        "sample": asset.sample,
        "delivery_mode": asset.delivery_mode,
        "lineage": bool(lineage_of(session, asset.id)),
    }
    return frozenset(k for k, v in present.items() if v)


# ------------------------------------------------------------------------------- the rights book


def _asset_closure(session: Session, asset_ids: Iterable[str]) -> set[str]:
    """The assets, the sources they were derived from and the products built from them."""
    seen: set[str] = set()
    todo = set(asset_ids)
    while todo:
        seen |= todo
        links = session.execute(
            select(RegistryLineage.product_id, RegistryLineage.source_id).where(
                (RegistryLineage.product_id.in_(todo)) | (RegistryLineage.source_id.in_(todo))
            )
        ).all()
        todo = {x for link in links for x in link} - seen
    return seen


def _load_book(
    session: Session, asset_ids: Iterable[str]
) -> tuple[RightsBook, dict[str, set[str]]]:
    """Every right on the assets concerned (and the parents and bases they name), and the
    lineage of the products among them: what the domain's operations need to see."""
    closure = _asset_closure(session, asset_ids)
    rows = {
        r.id: r
        for r in session.scalars(select(RegistryRight).where(RegistryRight.asset_id.in_(closure)))
    }
    missing = {x for r in rows.values() for x in (r.parent_id, *r.basis_ids) if x} - set(rows)
    while missing:
        found = list(session.scalars(select(RegistryRight).where(RegistryRight.id.in_(missing))))
        for r in found:
            rows[r.id] = r
        missing = {x for r in found for x in (r.parent_id, *r.basis_ids) if x} - set(rows)
    lineage: dict[str, set[str]] = {}
    for product_id, source_id in session.execute(
        select(RegistryLineage.product_id, RegistryLineage.source_id).where(
            RegistryLineage.product_id.in_(closure)
        )
    ):
        lineage.setdefault(product_id, set()).add(source_id)
    return RightsBook(r.to_domain() for r in rows.values()), lineage


def _persist_change(session: Session, change: RightsChange, registration_id: str) -> None:
    for right in change.created:
        row = RegistryRight(id=right.id, registration_id=registration_id)
        row.assign(right)
        session.add(row)
    for right in change.updated:
        existing = session.get(RegistryRight, right.id, with_for_update=True)
        assert existing is not None, right.id
        existing.assign(right)
    session.flush()
    # The parties the change names are told in this transaction (stored with the change, seen
    # only if it commits): holders and pledgees of the rights it touched or suspended.
    from datafactor.registry.notifications import rights_changed

    rights_changed(session, change)


# ------------------------------------------------------------------------------ applications


@dataclass(frozen=True)
class ApplicationDraft:
    """What an applicant asks for. ``scope`` / term describe the right to be registered (or a
    change's new ones); ``right_id`` the right acted on; ``counterparty_id`` the licensee,
    transferee or pledgee; ``fingerprint`` the SHA-256 of the version the applicant registers.
    ``order_reference`` is the court or authority order a revocation is applied for on;
    ``grounds`` / ``statement`` / ``evidence`` are an objection registration's (evidence also
    supports a revocation on an order)."""

    type: RegistrationType
    asset_id: str
    right_id: str | None = None
    counterparty_id: str | None = None
    scope: Mapping[str, Any] | None = None
    term_start: date | None = None
    term_end: date | None = None
    fingerprint: str | None = None
    self_commitment: bool = False
    raw_single_records: bool = False
    order_reference: str | None = None
    grounds: tuple[str, ...] = ()
    statement: str = ""
    evidence: tuple[str, ...] = ()


def _facts_json(draft: ApplicationDraft, *, authority: bool = False) -> dict[str, Any]:
    return {
        "authority": authority,
        "order_reference": (draft.order_reference or "").strip() or None,
        "grounds": list(draft.grounds),
        "statement": draft.statement,
        "evidence": list(draft.evidence),
        "right_id": draft.right_id,
        "counterparty_id": draft.counterparty_id,
        "scope": None if draft.scope is None else dict(draft.scope),
        "term_start": None if draft.term_start is None else draft.term_start.isoformat(),
        "term_end": None if draft.term_end is None else draft.term_end.isoformat(),
        "fingerprint": draft.fingerprint,
        "self_commitment": draft.self_commitment,
        "raw_single_records": draft.raw_single_records,
    }


def _requested(facts: Mapping[str, Any]) -> tuple[Scope | None, Term | None]:
    scope = None if facts.get("scope") is None else Scope.from_dict(facts["scope"])
    term = None
    if facts.get("term_start"):
        end = facts.get("term_end")
        term = Term(
            date.fromisoformat(facts["term_start"]), None if not end else date.fromisoformat(end)
        )
    return scope, term


def _objection_records(
    session: Session, right_ids: Iterable[str]
) -> list[tuple[RegistryApplication, ObjectionRecord]]:
    """The certified objection registrations (异议登记) on ``right_ids``, with their records."""
    ids = sorted(set(right_ids))
    if not ids:
        return []
    rows = session.scalars(
        select(RegistryApplication)
        .where(
            RegistryApplication.type == RegistrationType.OBJECTION.value,
            RegistryApplication.state == S.CERTIFIED.value,
            RegistryApplication.right_id.in_(ids),
        )
        .order_by(RegistryApplication.submitted_on, RegistryApplication.id)
    )
    return [
        (row, ObjectionRecord.from_dict(row.facts["record"]))
        for row in rows
        if row.facts.get("record")
    ]


def _title_rights(book: RightsBook, right_id: str | None, on: date) -> set[str]:
    """The right acted on and every right its title rests on (its chain of title)."""
    if right_id is None or book.get(right_id) is None:
        return set() if right_id is None else {right_id}
    try:
        return {right_id, *chain_of_title(right_id, book, on=on).right_ids()}
    except RegistryError:
        return {right_id}


def _disputes_on(
    session: Session,
    asset_id: str,
    right_id: str | None,
    book: RightsBook,
    on: date,
    *,
    application_id: str = "",
    correcting: bool = False,
) -> tuple[str, ...]:
    """Open title disputes on ``asset_id`` and ``right_id`` (ids of the objections and
    objection registrations): undecided objections lodged against applications on the asset
    (other than ``application_id``), and objection registrations in force on the right or on
    any right its title rests on (a substantiated one does not block the correction that
    carries it out)."""
    objections = select(RegistryObjection.id).join(
        RegistryApplication, RegistryApplication.id == RegistryObjection.application_id
    )
    found = list(
        session.scalars(
            objections.where(
                RegistryApplication.asset_id == asset_id,
                RegistryApplication.id != application_id,
                RegistryObjection.outcome.is_(None),
            )
        )
    )
    for other, record in _objection_records(session, _title_rights(book, right_id, on)):
        if other.id == application_id or not record.disputes(on):
            continue
        if correcting and record.closed is ObjectionRecordStatus.SUBSTANTIATED:
            continue
        found.append(other.id)
    return tuple(found)


def _open_disputes(
    session: Session,
    row: RegistryApplication,
    book: RightsBook,
    on: date,
) -> tuple[str, ...]:
    """Open title disputes the application meets (``_disputes_on`` its asset and the right it
    acts on)."""
    return _disputes_on(
        session,
        row.asset_id,
        row.right_id,
        book,
        on,
        application_id=row.id,
        correcting=row.type == RegistrationType.CORRECTION.value,
    )


def title_disputes(
    session: Session, right_id: str, *, today: date | None = None
) -> tuple[str, ...]:
    """The open title disputes on a registered right on ``today``, as the open-dispute rule
    (REG-REFUSE-OPEN-DISPUTE) sees them for a registration acting on it: objection
    registrations in force or substantiated on the right or on any right its title rests on,
    and undecided objections lodged against an application on its asset — the ids of those
    objection registrations and objections; empty when there is none (or no such right).

    Every write that opens or closes one bumps the registry's revision (``RegistryRevision``),
    except an objection registration's lapse, which comes with the day: a reader may reuse an
    empty answer for the same revision and day (the exchange's trades do)."""
    row = session.get(RegistryRight, right_id) if right_id else None
    if row is None:
        return ()
    on = today or today_cn()
    book, _ = _load_book(session, [row.asset_id])
    return _disputes_on(session, row.asset_id, row.id, book, on)


def _application_facts(
    session: Session,
    row: RegistryApplication,
    lineage: Mapping[str, set[str]],
    book: RightsBook | None = None,
    on: date | None = None,
) -> ApplicationFacts:
    asset = session.get(RegistryAsset, row.asset_id)
    assert asset is not None
    facts = row.facts
    scope, term = _requested(facts)
    consent = facts.get("pledgee_consent") or {}
    return ApplicationFacts(
        registration_type=RegistrationType(row.type),
        applicant_id=row.applicant_id,
        asset_id=asset.id,
        asset_kind=AssetKind(asset.kind),
        data_class=DataClass(asset.data_class),
        asset_holder_id=asset.party_id,
        metadata_present=_metadata_present(session, asset),
        source_statement=asset.source_statement,
        grade=asset.grade,
        declared_fingerprint=facts.get("fingerprint"),
        stored_fingerprint=asset.fingerprint,
        open_disputes=_open_disputes(session, row, book or RightsBook(), on or today_cn()),
        raw_single_records=bool(facts.get("raw_single_records")),
        self_commitment=bool(facts.get("self_commitment")),
        right_id=facts.get("right_id"),
        counterparty_id=facts.get("counterparty_id"),
        requested_scope=scope,
        requested_term=term,
        lineage={k: sorted(v) for k, v in lineage.items()},
        authority=bool(facts.get("authority")),
        grounds=Grounds(
            frozenset(facts.get("grounds") or ()),
            str(facts.get("statement") or ""),
            tuple(facts.get("evidence") or ()),
        )
        if row.type == RegistrationType.OBJECTION.value
        else None,
        order_reference=facts.get("order_reference"),
        pledgee_consent=consent.get("party_id"),
        application_id=row.id,
    )


def _actor_name(principal: Principal | None) -> str:
    return principal.username if principal else "system"


def _record_step(
    session: Session,
    row: RegistryApplication,
    step: Step,
    principal: Principal | None,
    *,
    rules: RegistryRules,
    details: Sequence[str] = (),
) -> None:
    application = step.application
    owner = application.owner(rules)
    row.assign(application, None if owner is None else owner.value)
    session.add(
        RegistryApplicationEvent(
            application_id=row.id,
            action=step.action.value,
            source=None if step.source is None else step.source.value,
            target=step.target.value,
            role=step.role.value,
            actor_user_id=principal.user_id if principal else None,
            actor_name=_actor_name(principal),
            reason=step.reason or "",
            rule=step.rule or "",
            on=step.on,
        )
    )
    session.flush()
    tag = (
        "registry:application:force"
        if step.action is A.FORCE
        else "registry:application:submit"
        if step.action is A.SUBMIT
        else "registry:application:transition"
    )
    _audit(
        session,
        principal,
        tag,
        "registry_application",
        row.id,
        f"{step.action.value}: {step.source.value if step.source else '-'} -> {step.target.value}",
        row.applicant_id,
        [step.reason or "", step.rule or "", *details],
    )
    if step.target in (S.REFUSED, S.WITHDRAWN):
        _settled(session, row)


def submit_application(
    session: Session,
    principal: Principal,
    draft: ApplicationDraft,
    *,
    issuer: Issuer,
    today: date | None = None,
) -> RegistryApplication:
    """An applicant submits; the formal review runs at once (accepted, checked, then returned,
    refused, passed to substantive review, or on the fast track to notice or register)."""
    _require(principal, P.REGISTRY_APPLICATION_SUBMIT)
    on = today or today_cn()
    rules = _rules()
    asset = session.get(RegistryAsset, draft.asset_id)
    if asset is None:
        raise NotFound(MSG_NO_ASSET)
    if draft.type is RegistrationType.INITIAL:
        # An initial registration names one of the applicant's own assets; others' assets are
        # not even shown to exist (a registrar, who sees them, is refused by REG-HOLDER).
        asset = get_asset(session, principal, draft.asset_id)
    visible = _can_see_party(
        principal, asset.party_id, P.REGISTRY_ASSET_READ, P.REGISTRY_ASSET_READ_ALL
    )
    if not visible and not _may_apply_on(session, principal, asset, draft):
        # The decision would show another party's fingerprint and grade: not found, as for any
        # asset the applicant cannot see.
        raise NotFound(MSG_NO_ASSET)
    if not visible:
        # A third party contesting a right (objection, revocation on an order) does not declare
        # the holder's data: a declared fingerprint would make the review an oracle for it.
        draft = dataclasses.replace(draft, fingerprint=None)
    if asset.version_id and asset.party_id == principal.party_id:
        asset.grade = _latest_grade(session, principal, asset.version_id)
    calendar = calendar_for(session)
    row = RegistryApplication(
        id=new_id(),
        type=draft.type.value,
        track=Track.STANDARD.value,
        state=S.SUBMITTED.value,
        state_since=on,
        submitted_on=on,
        applicant_id=principal.party_id,
        asset_id=asset.id,
        data_class=asset.data_class,
        right_id=draft.right_id,
        facts=_facts_json(draft, authority=_is_authority(principal)),
        created_by=principal.user_id,
    )
    session.add(row)
    session.flush()
    step = submit(
        row.id,
        draft.type,
        applicant_id=row.applicant_id,
        asset_id=asset.id,
        data_class=DataClass(asset.data_class),
        on=on,
        right_id=draft.right_id,
        rules=rules,
        calendar=calendar,
    )
    _record_step(session, row, step, principal, rules=rules)
    _formal_review(session, row, on=on, issuer=issuer, rules=rules, calendar=calendar)
    return row


def _is_authority(principal: Principal) -> bool:
    """A registrar (of the registration authority) or a regulator: may apply for revocation."""
    return principal.can(P.REGISTRY_APPLICATION_REVIEW) or (
        principal.party_kind == identity.PartyKind.REGULATOR.value
    )


# Types a party that cannot see the asset may file on a right it names: contesting it.
_CONTESTING: Final = frozenset({RegistrationType.OBJECTION, RegistrationType.REVOCATION})


def _may_apply_on(
    session: Session, principal: Principal, asset: RegistryAsset, draft: ApplicationDraft
) -> bool:
    """Whether a party that cannot see ``asset`` may still apply on it: it holds a right on it
    or is the pledgee of one (a licensee transferring its licence, a pledgee releasing its
    pledge), or it contests a registered right on it (objection registration, revocation on an
    order) — certificates, with their right and asset ids, are public."""
    party = principal.party_id
    interested = session.scalar(
        select(func.count()).where(
            RegistryRight.asset_id == asset.id,
            (RegistryRight.holder_id == party) | (RegistryRight.pledgee_id == party),
        )
    )
    if interested:
        return True
    if draft.type in _CONTESTING and draft.right_id:
        right = session.get(RegistryRight, draft.right_id)
        return right is not None and right.asset_id == asset.id
    return False


_SYSTEM_ACTION: Final = {
    Outcome.REFUSE: A.REFUSE_FORMAL,
    Outcome.RETURN: A.RETURN_FORMAL,
}


def _formal_review(
    session: Session,
    row: RegistryApplication,
    *,
    on: date,
    issuer: Issuer,
    rules: RegistryRules,
    calendar: WorkingCalendar,
) -> None:
    """Accept (system), run the automatic checks, and take the step their decision calls for."""
    if row.state == S.SUBMITTED.value:
        step = advance(row.to_domain(), A.ACCEPT, R.SYSTEM, on=on, rules=rules, calendar=calendar)
        _record_step(session, row, step, None, rules=rules)
    book, lineage = _load_book(session, [row.asset_id])
    decision = formal_checks(
        _application_facts(session, row, lineage, book, on), book=book, on=on, rules=rules
    )
    row.decision = decision.as_dict()
    if decision.outcome is Outcome.PENDING:
        return  # waits (e.g. for the discovery scan); a registrar re-runs the review later
    action = _SYSTEM_ACTION.get(decision.outcome)
    type_rules = rules.type_rules(RegistrationType(row.type))
    if action is None and decision.track is Track.FAST:
        action = A.FAST_TRACK_NOTICE if type_rules.public_notice else A.FAST_TRACK_REGISTER
    elif action is None:
        action = A.PASS_FORMAL
    step = advance(
        row.to_domain(), action, R.SYSTEM, on=on, decision=decision, rules=rules, calendar=calendar
    )
    _record_step(session, row, step, None, rules=rules)
    if row.state == S.CERTIFIED.value:
        _certify(session, row, None, on=on, issuer=issuer, rules=rules)


def _visible_application(
    session: Session, principal: Principal, application_id: str, *, for_update: bool = False
) -> RegistryApplication:
    _require(principal, P.REGISTRY_APPLICATION_READ, P.REGISTRY_APPLICATION_READ_ALL)
    stmt = select(RegistryApplication).where(RegistryApplication.id == application_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None or not (
        _can_see_party(
            principal,
            row.applicant_id,
            P.REGISTRY_APPLICATION_READ,
            P.REGISTRY_APPLICATION_READ_ALL,
        )
        or _is_consenting_pledgee(session, principal, row)
    ):
        raise NotFound(MSG_NO_APPLICATION)
    return row


def _is_consenting_pledgee(
    session: Session, principal: Principal, row: RegistryApplication
) -> bool:
    """The pledgee reads the holder's application to release its pledge (it must consent)."""
    if row.type != RegistrationType.PLEDGE_RELEASE.value or row.right_id is None:
        return False
    right = session.get(RegistryRight, row.right_id)
    return right is not None and right.pledgee_id == principal.party_id


def get_application(
    session: Session, principal: Principal, application_id: str
) -> RegistryApplication:
    return _visible_application(session, principal, application_id)


def application_events(session: Session, application_id: str) -> list[RegistryApplicationEvent]:
    return list(
        session.scalars(
            select(RegistryApplicationEvent)
            .where(RegistryApplicationEvent.application_id == application_id)
            .order_by(RegistryApplicationEvent.at, RegistryApplicationEvent.id)
        )
    )


@dataclass(frozen=True)
class ApplicationQuery:
    state: str | None = None
    applicant_id: str | None = None


def list_applications(
    session: Session, principal: Principal, query: ApplicationQuery, *, limit: int, offset: int
) -> tuple[list[RegistryApplication], int]:
    _require(principal, P.REGISTRY_APPLICATION_READ, P.REGISTRY_APPLICATION_READ_ALL)
    stmt = select(RegistryApplication)
    if not principal.can(P.REGISTRY_APPLICATION_READ_ALL):
        stmt = stmt.where(RegistryApplication.applicant_id == principal.party_id)
    if query.state:
        stmt = stmt.where(RegistryApplication.state == query.state)
    if query.applicant_id:
        stmt = stmt.where(RegistryApplication.applicant_id == query.applicant_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(RegistryApplication.created_at.desc(), RegistryApplication.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def notice_board(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[RegistryApplication], int]:
    """Applications in public notice (or handling objections): any logged-in party reads it."""
    _require(principal, P.REGISTRY_NOTICE_READ)
    stmt = select(RegistryApplication).where(RegistryApplication.state.in_(NOTICE_STATES))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(RegistryApplication.notice_ends, RegistryApplication.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def _open_objections(session: Session, application_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                RegistryObjection.application_id == application_id,
                RegistryObjection.outcome.is_(None),
            )
        )
        or 0
    )


_APPLICANT_ACTIONS: Final = frozenset({A.RESUBMIT, A.WITHDRAW})


def act(
    session: Session,
    principal: Principal,
    application_id: str,
    action: Action,
    *,
    issuer: Issuer,
    reason: str = "",
    target: RegistrationState | None = None,
    today: date | None = None,
    checklist: Collection[str] | None = None,
) -> RegistryApplication:
    """A person acts on an application: a registrar (review, notice, register, return, refuse,
    re-run the formal review), the applicant (resubmit, withdraw) or an administrator (force,
    audited with its reason). Reaching *certified* issues the certificate in this transaction.

    ``checklist``: the substantive-review items the registrar confirmed. The API and the console
    always pass it, and an approval is refused unless every item of the rules' checklist is
    confirmed (``REG-SUBSTANTIVE-CHECKLIST``); the items are stored with the approval's audit
    record. ``None`` is for in-process callers with no person reviewing (the demo loader)."""
    on = today or today_cn()
    rules = _rules()
    calendar = calendar_for(session)
    if action is A.FORCE:
        _require(principal, P.REGISTRY_APPLICATION_FORCE)
        role = R.ADMINISTRATOR
    elif action in _APPLICANT_ACTIONS:
        _require(principal, P.REGISTRY_APPLICATION_SUBMIT)
        role = R.APPLICANT
    else:
        _require(principal, P.REGISTRY_APPLICATION_REVIEW)
        role = R.REGISTRAR
    row = _visible_application(session, principal, application_id, for_update=True)
    if role is R.APPLICANT and row.applicant_id != principal.party_id:
        raise Forbidden(MSG_NOT_APPLICANT, action=action.value)
    confirmed: tuple[str, ...] = ()
    if checklist is not None and action in _APPROVALS:
        confirmed = _checked(checklist, rules)
    if action is A.ACCEPT and row.state == S.FORMAL_REVIEW.value:
        # "Accept" on an application waiting in formal review re-runs the automatic checks
        # (e.g. once the discovery scan has finished).
        _formal_review(session, row, on=on, issuer=issuer, rules=rules, calendar=calendar)
        return row
    decision = None if row.decision is None else Decision.from_dict(row.decision)
    step = advance(
        row.to_domain(),
        action,
        role,
        on=on,
        actor_id=principal.party_id if role is R.APPLICANT else principal.user_id,
        reason=reason,
        decision=decision,
        target=target,
        open_objections=_open_objections(session, row.id),
        rules=rules,
        calendar=calendar,
    )
    if (
        step.reason
        and role in (R.REGISTRAR, R.ADMINISTRATOR)
        and action
        in (
            A.REFUSE,
            A.RETURN,
            A.REFUSE_FORMAL,
            A.RETURN_FORMAL,
            A.FORCE,
        )
    ):
        row.decision = {
            **(row.decision or {}),
            "by": role.value,
            "reason": step.reason,
            "rule": step.rule,
        }
    _record_step(
        session,
        row,
        step,
        principal,
        rules=rules,
        details=[f"checklist: {', '.join(confirmed)}"] if confirmed else [],
    )
    if row.state == S.SUBMITTED.value:
        _formal_review(session, row, on=on, issuer=issuer, rules=rules, calendar=calendar)
    elif row.state == S.CERTIFIED.value:
        _certify(session, row, principal, on=on, issuer=issuer, rules=rules)
    return row


_APPROVALS: Final = frozenset({A.APPROVE_TO_NOTICE, A.APPROVE})


def _checked(checklist: Collection[str], rules: RegistryRules) -> tuple[str, ...]:
    """The checklist items confirmed, in the rules' order; refused unless every one is."""
    rule = rules.rule_id("substantive_checklist")
    items = rules.substantive_checklist
    for item in checklist:
        if item not in items:
            raise InvalidInput(MSG_UNKNOWN_CHECK, field="checklist", item=item, rule=rule)
    missing = [item for item in items if item not in checklist]
    if missing:
        raise InvalidInput(MSG_CHECKLIST, field="checklist", count=len(missing), rule=rule)
    return tuple(items)


def consent_to_release(
    session: Session,
    principal: Principal,
    application_id: str,
    *,
    issuer: Issuer,
    today: date | None = None,
) -> RegistryApplication:
    """The pledgee consents to the holder's application to release its pledge (质押注销登记,
    applied for jointly): a user of the pledgee party signs the consent, which is recorded on
    the application and audited, and the formal review waiting for it runs again."""
    _require(principal, P.REGISTRY_APPLICATION_SUBMIT)
    on = today or today_cn()
    rules = _rules()
    row = session.execute(
        select(RegistryApplication)
        .where(RegistryApplication.id == application_id)
        .with_for_update()
    ).scalar_one_or_none()
    right = (
        None if row is None or row.right_id is None else session.get(RegistryRight, row.right_id)
    )
    if (
        row is None
        or row.type != RegistrationType.PLEDGE_RELEASE.value
        or right is None
        or right.pledgee_id != principal.party_id
    ):
        # Not the pledgee: the application is not shown to exist.
        raise NotFound(MSG_NO_APPLICATION)
    require_open(row.to_domain(), rules=rules)
    row.facts = {
        **row.facts,
        "pledgee_consent": {
            "party_id": principal.party_id,
            "user_id": principal.user_id,
            "username": principal.username,
            "on": on.isoformat(),
        },
    }
    session.flush()
    for party in sorted({principal.party_id, row.applicant_id}):
        _audit(
            session,
            principal,
            EventTag.PLEDGE_CONSENT.value,
            "registry_application",
            row.id,
            f"Pledgee {principal.party_id} consented to releasing the pledge on right "
            f"{right.id} (application {row.id})",
            party,
            [rules.rule_id("pledge_lock")],
        )
    if row.state == S.FORMAL_REVIEW.value:
        _formal_review(
            session, row, on=on, issuer=issuer, rules=rules, calendar=calendar_for(session)
        )
    return row


def _objection_application(
    session: Session, principal: Principal, application_id: str, rules: RegistryRules
) -> tuple[RegistryApplication, ObjectionRecord]:
    row = _visible_application(session, principal, application_id, for_update=True)
    record = require_objection_record(row.to_domain(), row.facts.get("record"), rules=rules)
    return row, record


def _save_record(
    session: Session,
    principal: Principal,
    row: RegistryApplication,
    record: ObjectionRecord,
    tag: EventTag,
    summary: str,
    reasons: Sequence[str],
) -> None:
    row.facts = {**row.facts, "record": record.as_dict()}
    row.updated_at = utcnow()
    session.flush()
    right = session.get(RegistryRight, record.right_id)
    parties = {row.applicant_id, *([right.holder_id] if right is not None else [])}
    for party in sorted(parties):
        _audit(
            session, principal, tag.value, "registry_application", row.id, summary, party, reasons
        )


def record_objection_lawsuit(
    session: Session,
    principal: Principal,
    application_id: str,
    *,
    reference: str,
    today: date | None = None,
) -> RegistryApplication:
    """The objector (or a registrar) records the lawsuit or proceedings it started within the
    period: the objection registration then stays in force until the registrar closes it."""
    _require(principal, P.REGISTRY_APPLICATION_SUBMIT, P.REGISTRY_APPLICATION_REVIEW)
    on = today or today_cn()
    rules = _rules()
    row, record = _objection_application(session, principal, application_id, rules)
    if row.applicant_id != principal.party_id and not principal.can(P.REGISTRY_APPLICATION_REVIEW):
        raise Forbidden(MSG_NOT_OBJECTOR, application=row.id)
    updated = record_lawsuit(record, reference, on=on, rules=rules)
    _save_record(
        session,
        principal,
        row,
        updated,
        EventTag.OBJECTION_RECORD_LAWSUIT,
        f"Lawsuit recorded on objection registration {row.id}: {updated.lawsuit}",
        [rules.rule_id("objection_registration")],
    )
    return row


def close_objection_registration(
    session: Session,
    principal: Principal,
    application_id: str,
    *,
    substantiated: bool,
    reason: str,
    today: date | None = None,
) -> RegistryApplication:
    """The registrar closes an objection registration in force: unsubstantiated → lifted (the
    right is free again); substantiated → it keeps the right under objection until the right's
    correction or revocation is registered (then it is resolved)."""
    _require(principal, P.REGISTRY_APPLICATION_REVIEW)
    on = today or today_cn()
    rules = _rules()
    row, record = _objection_application(session, principal, application_id, rules)
    closed = close_objection_record(
        record, substantiated=substantiated, reason=reason, role=R.REGISTRAR, on=on, rules=rules
    )
    assert closed.closed is not None
    _save_record(
        session,
        principal,
        row,
        closed,
        EventTag.OBJECTION_RECORD_CLOSE,
        f"Objection registration {row.id} closed: {closed.closed.value}",
        [closed.reason, rules.rule_id("objection_registration")],
    )
    return row


def objection_records(
    session: Session, right_id: str, *, today: date | None = None
) -> list[tuple[ObjectionRecord, ObjectionRecordStatus]]:
    """The objection registrations on a right, each with its status on ``today`` (the public
    verification page shows a right under objection)."""
    on = today or today_cn()
    return [(record, record.status(on)) for _, record in _objection_records(session, [right_id])]


def overdue_queue(
    session: Session, principal: Principal, *, today: date | None = None
) -> list[tuple[RegistryApplication, int, str]]:
    """Applications past their due date, the longest overdue first: (row, days late, owner)."""
    _require(principal, P.REGISTRY_APPLICATION_REVIEW)
    on = today or today_cn()
    rows = {
        r.id: r
        for r in session.scalars(
            select(RegistryApplication).where(
                RegistryApplication.state.notin_([s.value for s in FINAL_STATES]),
                RegistryApplication.due_on < on,
            )
        )
    }
    items = overdue(
        [r.to_domain() for r in rows.values()], on, rules=_rules(), calendar=calendar_for(session)
    )
    return [(rows[i.application.id], i.working_days_late, i.owner.value) for i in items]


# -------------------------------------------------------------------------------- objections


@dataclass(frozen=True)
class ObjectionDraft:
    grounds: tuple[str, ...]
    statement: str
    evidence: tuple[str, ...] = field(default=())


def lodge(
    session: Session,
    principal: Principal,
    application_id: str,
    draft: ObjectionDraft,
    *,
    today: date | None = None,
) -> RegistryObjection:
    """Anyone logged in but the applicant objects during the notice, with grounds and evidence."""
    _require(principal, P.REGISTRY_OBJECTION_LODGE)
    on = today or today_cn()
    rules = _rules()
    row = session.execute(
        select(RegistryApplication)
        .where(RegistryApplication.id == application_id)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(MSG_NO_APPLICATION)
    if row.state not in NOTICE_STATES and row.applicant_id != principal.party_id:
        # Only what is on the public board is visible to other parties.
        raise NotFound(MSG_NOT_NOTICED, application=application_id)
    objection, step = lodge_objection(
        row.to_domain(),
        objection_id=new_id(),
        objector_id=principal.party_id,
        grounds=Grounds(frozenset(draft.grounds), draft.statement, tuple(draft.evidence)),
        on=on,
        rules=rules,
        calendar=calendar_for(session),
    )
    saved = RegistryObjection(
        id=objection.id,
        application_id=row.id,
        objector_id=objection.objector_id,
        grounds=sorted(objection.grounds.codes),
        statement=objection.grounds.statement,
        evidence=list(objection.grounds.evidence),
        lodged_on=on,
        lodged_by=principal.user_id,
    )
    session.add(saved)
    session.flush()
    _audit(
        session,
        principal,
        "registry:objection:lodge",
        "registry_objection",
        saved.id,
        f"Objection lodged against application {row.id}",
        principal.party_id,
        [", ".join(saved.grounds)],
    )
    if step is not None:
        _record_step(session, row, step, principal, rules=rules)
    return saved


def get_objection(session: Session, principal: Principal, objection_id: str) -> RegistryObjection:
    """An objection: its objector, the applicant and registrars see it (and its decision)."""
    _require(principal, P.REGISTRY_APPLICATION_READ, P.REGISTRY_APPLICATION_READ_ALL)
    objection = session.get(RegistryObjection, objection_id)
    if objection is None:
        raise NotFound(MSG_NO_OBJECTION)
    application = session.get(RegistryApplication, objection.application_id)
    assert application is not None
    visible = principal.party_id in (objection.objector_id, application.applicant_id) or (
        principal.can(P.REGISTRY_APPLICATION_READ_ALL)
    )
    if not visible:
        raise NotFound(MSG_NO_OBJECTION)
    return objection


def list_objections(
    session: Session, principal: Principal, application_id: str
) -> list[RegistryObjection]:
    _visible_application(session, principal, application_id)
    return list(
        session.scalars(
            select(RegistryObjection)
            .where(RegistryObjection.application_id == application_id)
            .order_by(RegistryObjection.lodged_on, RegistryObjection.id)
        )
    )


def decide(
    session: Session,
    principal: Principal,
    objection_id: str,
    *,
    substantiated: bool,
    reason: str,
    today: date | None = None,
) -> RegistryObjection:
    """The registrar decides an objection: substantiated → the application is refused (and the
    objector and applicant are told); dismissed → the notice goes on when none remains open."""
    _require(principal, P.REGISTRY_APPLICATION_REVIEW)
    on = today or today_cn()
    rules = _rules()
    objection = session.get(RegistryObjection, objection_id, with_for_update=True)
    if objection is None:
        raise NotFound(MSG_NO_OBJECTION)
    row = _visible_application(session, principal, objection.application_id, for_update=True)
    if objection.outcome is not None:
        raise InvalidInput(N_("This objection has already been decided."), field="objection")
    others_open = _open_objections(session, row.id) - 1
    domain_objection = _domain_objection(objection)
    decision = decide_objection(
        domain_objection,
        row.to_domain(),
        substantiated=substantiated,
        reason=reason,
        role=R.REGISTRAR,
        on=on,
        open_after=others_open,
        rules=rules,
    )
    objection.outcome = decision.outcome.value
    objection.decision = decision.as_dict()
    objection.decided_on = on
    objection.decided_by = principal.user_id
    session.flush()
    _audit(
        session,
        principal,
        "registry:objection:decide",
        "registry_objection",
        objection.id,
        f"Objection {decision.outcome.value}; told: {', '.join(sorted(decision.notify))}",
        objection.objector_id,
        [decision.reason, decision.rule],
    )
    from datafactor.registry.notifications import objection_decided

    objection_decided(
        session,
        decision.notify,
        application_id=row.id,
        asset_id=row.asset_id,
        upheld=decision.credit_event,
        reason=decision.reason,
    )
    if decision.action is not None:
        step = advance(
            row.to_domain(),
            decision.action,
            R.REGISTRAR,
            on=on,
            actor_id=principal.user_id,
            reason=decision.reason,
            open_objections=others_open,
            rules=rules,
            calendar=calendar_for(session),
        )
        if decision.action is A.UPHOLD_OBJECTION:
            row.decision = {
                **(row.decision or {}),
                "by": R.REGISTRAR.value,
                "reason": decision.reason,
                "rule": decision.rule,
                "objection_id": objection.id,
            }
        _record_step(session, row, step, principal, rules=rules)
    return objection


def _domain_objection(row: RegistryObjection) -> Any:
    from datafactor.registry.domain import Objection

    return Objection(
        row.id,
        row.application_id,
        row.objector_id,
        Grounds(frozenset(row.grounds), row.statement, tuple(row.evidence)),
        row.lodged_on,
    )


# ------------------------------------------------------------------------------- certification


def _next_number(session: Session, year: int, rules: RegistryRules) -> tuple[str, int]:
    """The next certificate number of ``year``, from the row-locked per-year counter."""
    stmt = (
        select(RegistryCertificateSerial)
        .where(RegistryCertificateSerial.year == year)
        .with_for_update()
    )
    counter = session.execute(stmt).scalar_one_or_none()
    if counter is None:
        # First certificate of the year: create the counter; a concurrent creator wins the
        # insert and we lock its row instead.
        try:
            with session.begin_nested():
                session.add(RegistryCertificateSerial(year=year, last_serial=0))
        except IntegrityError:
            pass
        counter = session.execute(stmt).scalar_one()
    counter.last_serial += 1
    session.flush()
    return format_certificate_number(year, counter.last_serial, rules=rules), counter.last_serial


def _certify(
    session: Session,
    row: RegistryApplication,
    principal: Principal | None,
    *,
    on: date,
    issuer: Issuer,
    rules: RegistryRules,
) -> RegistryCertificate | None:
    """Apply the registration's rights change and, for a type with a certificate, issue it:
    numbered, signed and appended to the ledger in the caller's transaction."""
    # The rights book is read, checked and written back: two certifications on one asset (a
    # double transfer, a transfer racing a pledge) must not interleave on PostgreSQL, so the
    # asset row is locked first (SQLite writers are already serialised by BEGIN IMMEDIATE).
    session.execute(
        select(RegistryAsset.id).where(RegistryAsset.id == row.asset_id).with_for_update()
    )
    registration_type = RegistrationType(row.type)
    if registration_type is RegistrationType.INITIAL:
        _lock_lineage(session, row.asset_id)
    book, lineage = _load_book(session, [row.asset_id])
    if registration_type is RegistrationType.OBJECTION:
        _register_objection(session, row, book, principal, on=on, rules=rules)
        return None
    facts = _application_facts(session, row, lineage, book, on)
    if registration_type not in DISPUTE_EXEMPT:
        # An objection registration certified since the review (or any dispute opened since)
        # must still stop the registration: nothing is written.
        disputes = _open_disputes(session, row, book, on)
        if disputes:
            raise TitleDisputed(
                MSG_DISPUTED,
                rule=rules.rule_id("open_dispute"),
                field="right",
                right=row.right_id or row.asset_id,
                disputes=", ".join(disputes),
            )
    change = rights_operation(facts, book, on, rules, new_right_id=new_id(), registration_id=row.id)
    _persist_change(session, change, row.id)
    right = change.right
    row.result_right_id = right.id
    if registration_type in (RegistrationType.CORRECTION, RegistrationType.REVOCATION):
        _resolve_objections(session, row, principal, on=on)
    _audit(
        session,
        principal,
        change.event.value,
        "registry_right",
        right.id,
        f"{change.event.value} by registration {row.id}; notify: {', '.join(sorted(change.notify))}",
        right.holder_id,
        [change.rule],
    )
    # Every other right the change touched gets its own event, under its holder's party: the old
    # holder of a transferred right, the holders of rights a cancellation suspended.
    for other in (*change.created, *change.updated):
        if other.id == right.id:
            continue
        _audit(
            session,
            principal,
            change.event.value,
            "registry_right",
            other.id,
            f"{change.event.value} by registration {row.id}: right {other.id} is now "
            f"{other.status.value}",
            other.holder_id,
            [change.rule],
        )
    certificate = None
    if rules.type_rules(registration_type).certificate:
        after = change.apply(book)
        certificate = _issue(
            session, row, after.right(right.id), after, principal,
            on=on, issuer=issuer, rules=rules,
        )  # fmt: skip
    _settled(session, row)
    return certificate


def _lock_lineage(session: Session, product_id: str) -> None:
    """Lock the rows a product's registration rests on, before its rights book is read: the
    assets of its lineage (every source, transitively) and the rights on them. A cancellation,
    revocation or transfer of a source right locks its asset first, so it cannot slip between
    the lineage check and the certification (SQLite writers are serialised anyway)."""
    sources: set[str] = set()
    todo = {product_id}
    while todo:
        found = set(
            session.scalars(
                select(RegistryLineage.source_id).where(RegistryLineage.product_id.in_(todo))
            )
        )
        todo = found - sources - {product_id}
        sources |= found
    sources.discard(product_id)
    if not sources:
        return
    ordered = sorted(sources)  # one order everywhere: no deadlock between two products
    session.execute(
        select(RegistryAsset.id)
        .where(RegistryAsset.id.in_(ordered))
        .order_by(RegistryAsset.id)
        .with_for_update()
    )
    session.execute(
        select(RegistryRight.id)
        .where(RegistryRight.asset_id.in_(ordered))
        .order_by(RegistryRight.id)
        .with_for_update()
    )


def _register_objection(
    session: Session,
    row: RegistryApplication,
    book: RightsBook,
    principal: Principal | None,
    *,
    on: date,
    rules: RegistryRules,
) -> None:
    """Certify an objection registration: its record goes on the right it names, which is
    under objection from now on; the right's holder (and pledgee) are told."""
    assert row.right_id is not None
    record = register_objection(row.to_domain(), right_id=row.right_id, on=on, rules=rules)
    row.facts = {**row.facts, "record": record.as_dict()}
    row.result_right_id = row.right_id
    right = book.right(row.right_id)
    told = sorted({right.holder_id, *([right.pledge.pledgee_id] if right.pledge else [])})
    _audit(
        session,
        principal,
        EventTag.RIGHT_OBJECTION.value,
        "registry_right",
        right.id,
        f"Objection registration {row.id} by party {row.applicant_id}: right {right.id} is "
        f"under objection until {record.lapses_on.isoformat()} unless a lawsuit is recorded; "
        f"notify: {', '.join(told)}",
        right.holder_id,
        [rules.rule_id("objection_registration")],
    )


def _resolve_objections(
    session: Session, row: RegistryApplication, principal: Principal | None, *, on: date
) -> None:
    """A correction or revocation of a right carries out the substantiated objection
    registrations on it: they are resolved."""
    for other, record in _objection_records(session, [row.right_id or ""]):
        resolved = resolve_objection_record(record, on=on)
        if resolved is None:
            continue
        other.facts = {**other.facts, "record": resolved.as_dict()}
        _audit(
            session,
            principal,
            EventTag.OBJECTION_RECORD_CLOSE.value,
            "registry_application",
            other.id,
            f"Objection registration {other.id} resolved by registration {row.id}",
            other.applicant_id,
        )


def _issue(
    session: Session,
    row: RegistryApplication,
    right: Right,
    book: RightsBook,
    principal: Principal | None,
    *,
    on: date,
    issuer: Issuer,
    rules: RegistryRules,
) -> RegistryCertificate:
    asset = session.get(RegistryAsset, row.asset_id)
    assert asset is not None
    validity = certificate_validity(
        RegistrationType(row.type),
        issued_on=on,
        right_term=right.term,
        right_id=right.id,
        rules=rules,
    )
    number, serial = _next_number(session, on.year, rules)
    payload = certificate_payload(
        number=number,
        registration_id=row.id,
        registration_type=RegistrationType(row.type),
        track=Track(row.track),
        right=right,
        chain=chain_of_title(right.id, book, on=on, rules=rules),
        validity=validity,
        issued_at=datetime.now(UTC),
        issuer=issuer.name,
        asset_fingerprint=asset.fingerprint,
        rules=rules,
    )
    signature = issuer.signer.sign(certificate_bytes(payload, rules=rules))
    # Earlier certificates of the same right (a change, correction, renewal) are superseded.
    for old in session.scalars(
        select(RegistryCertificate).where(
            RegistryCertificate.right_id == right.id, RegistryCertificate.status == "current"
        )
    ):
        old.status = "superseded"
    index = ledger.append_event(session, CERTIFICATE_EVENT_KIND, payload)
    certificate = RegistryCertificate(
        id=new_id(),
        number=number,
        year=on.year,
        serial=serial,
        right_id=right.id,
        application_id=row.id,
        asset_id=right.asset_id,
        holder_id=right.holder_id,
        payload=payload,
        signature=base64.b64encode(signature).decode("ascii"),
        key=issuer.signer.verifier().key_string(),
        ledger_index=index,
        status="current",
        valid_from=validity.valid_from,
        valid_until=validity.valid_until,
    )
    session.add(certificate)
    session.flush()
    _audit(
        session,
        principal,
        "registry:certificate:issue",
        "registry_certificate",
        certificate.id,
        f"Certificate {number} issued (ledger entry {index})",
        right.holder_id,
        [rules.rule_id("certificate_number")],
    )
    return certificate


# ---------------------------------------------------------------------------- certificates


def _certificate_by_number(session: Session, number: str, on: date) -> RegistryCertificate:
    rules = _rules()
    parsed = parse_certificate_number(number, today=on, rules=rules)
    found = session.scalars(
        select(RegistryCertificate).where(RegistryCertificate.number == str(parsed))
    ).one_or_none()
    if found is None:
        raise NotFound(
            MSG_NO_CERTIFICATE,
            field="number",
            code="registry-unknown-certificate",
            number=str(parsed),
            rule=rules.rule_id("certificate_number"),
        )
    return found


@dataclass(frozen=True)
class Verification:
    """What the public verification page shows for a certificate number."""

    certificate: RegistryCertificate
    status: CertificateStatus
    right_status: str
    signature_valid: bool
    chain_of_title: dict[str, Any] | None
    chain_problem: str | None
    objections: tuple[tuple[ObjectionRecord, ObjectionRecordStatus], ...] = ()

    @property
    def under_objection(self) -> bool:
        return any(status in DISPUTING_STATUSES for _, status in self.objections)

    def as_dict(self) -> dict[str, Any]:
        c = self.certificate
        right = c.payload.get("right", {})
        return {
            "number": c.number,
            "status": self.status.value,
            "valid_from": c.valid_from.isoformat(),
            "valid_until": c.valid_until.isoformat(),
            "right_id": c.right_id,
            "right_kind": right.get("kind"),
            "right_status": self.right_status,
            "holder_id": c.holder_id,
            "asset_id": c.asset_id,
            "fingerprint": c.payload.get("asset", {}).get("fingerprint"),
            "issued_at": c.payload.get("issued_at"),
            "issuer": c.payload.get("issuer"),
            "ledger_index": c.ledger_index,
            "signature_valid": self.signature_valid,
            "chain_of_title": self.chain_of_title,
            "chain_problem": self.chain_problem,
            "under_objection": self.under_objection,
            "objections": [
                {
                    "application_id": r.application_id,
                    "status": status.value,
                    "registered_on": r.registered_on.isoformat(),
                    "lapses_on": r.lapses_on.isoformat(),
                }
                for r, status in self.objections
            ],
        }


def _status_of(
    session: Session, certificate: RegistryCertificate, on: date
) -> tuple[CertificateStatus, RegistryRight]:
    right = session.get(RegistryRight, certificate.right_id)
    assert right is not None
    status = certificate_status(
        valid_until=certificate.valid_until,
        right_status=right.to_domain().status,
        today=on,
        superseded=certificate.status == "superseded",
    )
    return status, right


def verify_certificate(session: Session, number: str, *, today: date | None = None) -> Verification:
    """Public: a certificate's status, validity, signature and chain of title, by its number."""
    on = today or today_cn()
    certificate = _certificate_by_number(session, number, on)
    status, right = _status_of(session, certificate, on)
    book, _ = _load_book(session, [right.asset_id])
    chain: dict[str, Any] | None = None
    problem: str | None = None
    try:
        chain = chain_of_title(right.id, book, on=on).as_dict()
    except BrokenChainOfTitle as exc:
        problem = str(exc)
    try:
        verifier = ledger.Verifier.from_key_string(certificate.key)
        valid = verifier.verify(
            certificate_bytes(certificate.payload), base64.b64decode(certificate.signature)
        )
    except (ValueError, RegistryError):
        valid = False
    objections = tuple(objection_records(session, right.id, today=on))
    return Verification(certificate, status, right.status, valid, chain, problem, objections)


_REVISION_VALUE: Final = (
    select(RegistryRevision.__table__.c.value)
    .where(RegistryRevision.__table__.c.id == 1)
    .scalar_subquery()
)
_REVISION: Final = select(RegistryRevision.__table__.c.value).where(
    RegistryRevision.__table__.c.id == bindparam("id")
)


def revision_value() -> ScalarSelect[int]:
    """The registry's change counter (``RegistryRevision``) as a scalar subquery, for another
    domain's Core statement that reads it with its own rows (the exchange's mall order keys its
    cache of the registry's checks by it)."""
    return _REVISION_VALUE


async def registry_revision(db: Database) -> int:
    """The registry's change counter (``RegistryRevision``), read on the lookup hot path: on
    PostgreSQL from this process's watch of the commits' notifications (``Database.counter``)."""
    value = await db.counter(_REVISION, {"id": 1}, channel=REVISION_CHANNEL)
    return 0 if value is None else value


class VerificationCache:
    """Public verifications already computed for one database, keyed by (number, day, registry
    revision, …): the API's JSON bytes, the verification page's context per locale.

    A verification depends only on rows whose every write bumps the registry revision in the
    same transaction, and on the day. A reader that reads the revision *before* computing may
    reuse what was computed at that revision: at worst it was computed from a newer state, never
    an older one. Bounded (least recently used out); one per process and use. What is stored is
    shared by every reader and must not be changed.
    """

    def __init__(self, size: int = 16_384) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


_CACHES: Final[weakref.WeakKeyDictionary[Database, dict[str, VerificationCache]]] = (
    weakref.WeakKeyDictionary()
)


def verification_cache(db: Database, use: str = "api") -> VerificationCache:
    """The verification cache of ``db`` for ``use`` ("api", "page"): one per database, use and
    process."""
    caches = _CACHES.get(db)  # not setdefault: that builds a weak reference at every call
    if caches is None:
        caches = _CACHES[db] = {}
    cache = caches.get(use)
    if cache is None:
        cache = caches[use] = VerificationCache(4_096 if use == "page" else 16_384)
    return cache


@dataclass(frozen=True)
class CertificateRow:
    number: str
    asset_id: str
    asset_name: str
    right_kind: str
    holder_id: str
    status: str
    valid_until: date

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "asset_id": self.asset_id,
            "asset": self.asset_name,
            "right_kind": self.right_kind,
            "holder_id": self.holder_id,
            "status": self.status,
            "valid_until": self.valid_until.isoformat(),
        }


def list_certificates(
    session: Session,
    principal: Principal | None,
    *,
    limit: int,
    offset: int,
    today: date | None = None,
) -> tuple[list[CertificateRow], int]:
    """Certificates, newest first: a party's own (as holder), every one for a registrar or
    regulator, and every one for the operator's CLI (``principal`` None)."""
    on = today or today_cn()
    stmt = (
        select(RegistryCertificate, RegistryRight, RegistryAsset)
        .join(RegistryRight, RegistryRight.id == RegistryCertificate.right_id)
        .join(RegistryAsset, RegistryAsset.id == RegistryCertificate.asset_id)
    )
    if principal is not None:
        _require(principal, P.REGISTRY_APPLICATION_READ, P.REGISTRY_APPLICATION_READ_ALL)
        if not principal.can(P.REGISTRY_APPLICATION_READ_ALL):
            stmt = stmt.where(RegistryCertificate.holder_id == principal.party_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(
        stmt.order_by(RegistryCertificate.year.desc(), RegistryCertificate.serial.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    out = []
    for certificate, right, asset in rows:
        status = certificate_status(
            valid_until=certificate.valid_until,
            right_status=right.to_domain().status,
            today=on,
            superseded=certificate.status == "superseded",
        )
        out.append(
            CertificateRow(
                certificate.number,
                asset.id,
                asset.name,
                right.kind,
                certificate.holder_id,
                status.value,
                certificate.valid_until,
            )
        )
    return out, total


def certificate_receipt(
    session: Session,
    principal: Principal | None,
    number: str,
    keys: Any,
    *,
    today: date | None = None,
) -> ledger.Receipt:
    """A ledger receipt whose entry is the certificate's ``registry.certificate.issued`` event,
    checkable offline with ``datafactor verify-receipt`` (signs a checkpoint if none covers it:
    call inside ``db.write()``). The holder, a registrar, or the operator's CLI (None)."""
    certificate = _certificate_by_number(session, number, today or today_cn())
    if principal is not None and not (
        certificate.holder_id == principal.party_id
        or principal.can(P.REGISTRY_APPLICATION_READ_ALL)
    ):
        # Existence of a number is public (the verification page), its receipt is the holder's.
        raise Forbidden(N_("Only the holder of a certificate can export its receipt."))
    return ledger.receipt_for(session, certificate.ledger_index, keys)


# ----------------------------------------------------- surface for authorisations (policy.grants)
# An authorisation (授权) is registered as a licence (许可登记) of the grantor's right. The
# grants service reads the few facts it needs about an asset and its rights by id (it never
# sees the registry's rows), dry-runs the licence, files it in the holder's name — also on the
# holder's behalf by an agent acting under a public-data operation agreement or a trust deed,
# whose mandate the grants service has checked — and follows it through a callback run when an
# application is settled (certified, refused or withdrawn), in that step's transaction.


@dataclass(frozen=True)
class AssetFacts:
    """What another domain may know of a registered asset whose id it was given: its holder
    party, kind, class of data (public data never leaves the domain), names and field names."""

    id: str
    party_id: str
    kind: str
    data_class: str
    name: str
    name_en: str
    fields: tuple[str, ...]
    grade: str | None = None  # the latest discovery grade (core data is never circulated)
    # What the exchange's listing review reads: the statement of data source (DSL art. 33), the
    # registered version (its discovery scan), the assets it was derived from, where and what.
    source_statement: str = ""
    version_id: str | None = None
    lineage: tuple[str, ...] = ()
    region: str = ""
    domain: str = ""
    description: str = ""


def asset_facts(session: Session, asset_id: str) -> AssetFacts | None:
    asset = session.get(RegistryAsset, asset_id)
    if asset is None:
        return None
    fields = tuple(str(f.get("name")) for f in asset.field_schema or () if f.get("name"))
    return AssetFacts(
        asset.id,
        asset.party_id,
        asset.kind,
        asset.data_class,
        asset.name,
        asset.name_en,
        fields,
        grade=asset.grade,
        source_statement=asset.source_statement,
        version_id=asset.version_id,
        lineage=tuple(lineage_of(session, asset.id)),
        region=asset.region,
        domain=asset.domain,
        description=asset.description,
    )


def rights_on_asset(session: Session, asset_id: str) -> list[Right]:
    """Every right registered on ``asset_id`` (any status), oldest first."""
    rows = session.scalars(
        select(RegistryRight)
        .where(RegistryRight.asset_id == asset_id)
        .order_by(RegistryRight.created_at, RegistryRight.id)
    )
    return [r.to_domain() for r in rows]


def right_of(session: Session, right_id: str) -> Right | None:
    row = session.get(RegistryRight, right_id)
    return None if row is None else row.to_domain()


def current_certificate(session: Session, right_id: str) -> tuple[str, date] | None:
    """The number and last valid day of the right's current certificate (the newest one a
    change, correction or renewal has not superseded), or None when the right has none. With the
    right's status this gives the certificate's status without verifying it in full (the
    exchange checks it on every trade)."""
    row = session.execute(
        select(RegistryCertificate.number, RegistryCertificate.valid_until)
        .where(RegistryCertificate.right_id == right_id, RegistryCertificate.status != "superseded")
        .order_by(RegistryCertificate.year.desc(), RegistryCertificate.serial.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


@dataclass(frozen=True)
class LineageRight:
    """One right on an asset of a product's rights lineage: what another domain (the exchange's
    revenue sharing) may know — which asset and how deep in the lineage (the product is 0, its
    sources 1, their sources 2, …), the asset's kind and class of data, the right's kind, holder
    and whether it is in force on the day asked."""

    asset_id: str
    depth: int
    asset_kind: str
    data_class: str
    right_id: str
    right_kind: str
    holder_id: str
    in_force: bool


def rights_lineage(session: Session, asset_id: str, on: date) -> list[LineageRight]:
    """Every right on ``asset_id`` and on the assets its lineage reaches (its sources,
    transitively, down to the data resources), each with its holder: the product's chain of
    rights that revenue shares are drawn from. Ordered by depth, asset and right id."""
    depth = {asset_id: 0}
    frontier = {asset_id}
    while frontier:
        links = session.execute(
            select(RegistryLineage.product_id, RegistryLineage.source_id).where(
                RegistryLineage.product_id.in_(sorted(frontier))
            )
        ).all()
        frontier = set()
        for product_id, source_id in links:
            if source_id not in depth:
                depth[source_id] = depth[product_id] + 1
                frontier.add(source_id)
    assets = {
        a.id: a for a in session.scalars(select(RegistryAsset).where(RegistryAsset.id.in_(depth)))
    }
    out = []
    for row in session.scalars(select(RegistryRight).where(RegistryRight.asset_id.in_(depth))):
        asset = assets.get(row.asset_id)
        if asset is None:
            continue
        right = row.to_domain()
        out.append(
            LineageRight(
                row.asset_id,
                depth[row.asset_id],
                asset.kind,
                asset.data_class,
                row.id,
                right.kind.value,
                right.holder_id,
                right.in_force(on),
            )
        )
    return sorted(out, key=lambda x: (x.depth, x.asset_id, x.right_id))


def check_licence(
    session: Session,
    *,
    right_id: str,
    licensee_id: str,
    scope: Mapping[str, Any],
    term_start: date,
    term_end: date,
    on: date,
) -> None:
    """Dry-run the licence of ``right_id`` to ``licensee_id``: raises the registry's own refusal
    (not a right that may license, pledged, not in force, broken title, scope or term beyond
    the parent) exactly as the certification would; writes nothing."""
    from datafactor.registry.domain import license as license_right

    row = session.get(RegistryRight, right_id)
    if row is None:
        from datafactor.registry.errors import UnknownRight

        raise UnknownRight(
            N_("Right {right} is not registered (rule {rule})."),
            rule=_rules().rule_id("holder"),
            field="right_id",
            right=right_id,
        )
    book, _ = _load_book(session, [row.asset_id])
    license_right(
        book,
        right_id,
        right_id=new_id(),
        licensor_id=row.holder_id,
        licensee_id=licensee_id,
        scope=Scope.from_dict(scope),
        term=Term(term_start, term_end),
        on=on,
    )


def file_licence(
    session: Session,
    principal: Principal,
    *,
    right_id: str,
    licensee_id: str,
    scope: Mapping[str, Any],
    term_start: date,
    term_end: date,
    issuer: Issuer,
    today: date | None = None,
    mandate: Mapping[str, Any] | None = None,
) -> RegistryApplication:
    """File the licence application of ``right_id`` to ``licensee_id`` in the name of the
    right's holder: by the holder's own user, or — with ``mandate`` (regime, reference and agent
    of an operation agreement or trust deed, checked by the caller to cover the right) — by the
    agent's user on the holder's behalf. The mandate is recorded in the application's facts;
    the applicant is the holder, who alone may then resubmit or withdraw it."""
    row = session.get(RegistryRight, right_id)
    holder = row.holder_id if row is not None else principal.party_id
    acting = principal
    if mandate is not None and holder != principal.party_id:
        acting = dataclasses.replace(principal, party_id=holder)
    draft = ApplicationDraft(
        type=RegistrationType.LICENCE,
        asset_id=row.asset_id if row is not None else "",
        right_id=right_id,
        counterparty_id=licensee_id,
        scope=dict(scope),
        term_start=term_start,
        term_end=term_end,
    )
    application = submit_application(session, acting, draft, issuer=issuer, today=today)
    if mandate is not None:
        application.facts = {
            **application.facts,
            "mandate": {**dict(mandate), "filed_by": principal.party_id},
        }
        session.flush()
    return application


@dataclass(frozen=True)
class ApplicationOutcome:
    """Where an application stands, for a domain following it: its state, the right it
    created, its certificate's number and, when refused or returned, the reason given."""

    id: str
    type: str
    state: str
    result_right_id: str | None
    certificate_number: str | None
    reason: str = ""
    reason_zh: str = ""
    rule: str = ""
    settled_on: date | None = None  # the day it reached its state (the registry's clock)


def application_outcome(session: Session, application_id: str) -> ApplicationOutcome | None:
    row = session.get(RegistryApplication, application_id)
    if row is None:
        return None
    number = None
    if row.result_right_id is not None:
        number = session.scalar(
            select(RegistryCertificate.number).where(RegistryCertificate.application_id == row.id)
        )
    decision = row.decision or {}
    reason = reason_zh = str(decision.get("reason") or "")
    rule = str(decision.get("rule") or "")
    blocking = [r for r in decision.get("reasons") or () if r.get("effect") in ("refuse", "return")]
    if not reason and blocking:
        reason, reason_zh = str(blocking[0].get("en") or ""), str(blocking[0].get("zh") or "")
        rule = str(blocking[0].get("rule") or "")
    return ApplicationOutcome(
        row.id,
        row.type,
        row.state,
        row.result_right_id,
        number,
        reason,
        reason_zh,
        rule,
        settled_on=row.state_since,
    )


_SETTLED_HOOKS: list[Any] = []


def on_application_settled(hook: Any) -> Any:
    """Call ``hook(session, outcome)`` whenever an application is certified, refused or
    withdrawn, in that step's transaction (after the rights change and certificate are
    written). Returns a function that removes the hook."""
    if hook not in _SETTLED_HOOKS:
        _SETTLED_HOOKS.append(hook)
    return lambda: _SETTLED_HOOKS.remove(hook) if hook in _SETTLED_HOOKS else None


def _settled(session: Session, row: RegistryApplication) -> None:
    if not _SETTLED_HOOKS:
        return
    session.flush()
    outcome = application_outcome(session, row.id)
    assert outcome is not None
    for hook in list(_SETTLED_HOOKS):
        hook(session, outcome)


def withdraw_licence_application(
    session: Session, application_id: str, *, reason: str, today: date | None = None
) -> bool:
    """Withdraw an open licence application in its applicant's name because what it was filed
    for has ended: the authorisation (授权) it registers was revoked or expired before the
    licence was registered. The step is the applicant's own withdrawal, recorded as the
    system's; the settled-application hooks run. False when there is nothing to withdraw (no
    such licence application, or already certified, refused or withdrawn)."""
    on = today or today_cn()
    row = session.execute(
        select(RegistryApplication)
        .where(RegistryApplication.id == application_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None or row.type != RegistrationType.LICENCE.value:
        return False
    if RegistrationState(row.state) in FINAL_STATES:
        return False
    rules = _rules()
    step = advance(
        row.to_domain(),
        A.WITHDRAW,
        R.APPLICANT,
        on=on,
        actor_id=row.applicant_id,
        reason=reason,
        rules=rules,
        calendar=calendar_for(session),
    )
    _record_step(session, row, step, None, rules=rules)
    return True


def end_licence(
    session: Session, right_id: str, *, revoked: bool, reason: str, today: date | None = None
) -> bool:
    """End a processing-use right registered as the licence of an authorisation that has ended,
    through the registry's own rights operations (so the chain of title, the certificate's
    status and every right derived from it follow): revoked with it (撤销) when the
    authorisation was revoked; otherwise cancelled (注销: the licence's basis is gone) — revoked
    too while it is pledged, since a pledge blocks a cancellation. False when the right is not
    such a licence in force, or its own term is over (the daily sweep expires it)."""
    from datafactor.registry.domain import RightStatus
    from datafactor.registry.domain import cancel as cancel_right
    from datafactor.registry.domain import revoke as revoke_right

    on = today or today_cn()
    row = session.get(RegistryRight, right_id)
    if row is None:
        return False
    # Certifications lock the asset row before reading its rights: so does this.
    session.execute(
        select(RegistryAsset.id).where(RegistryAsset.id == row.asset_id).with_for_update()
    )
    book, _ = _load_book(session, [row.asset_id])
    right = book.right(right_id)
    if right.kind is not RightKind.PROCESSING_USE or right.status not in (
        RightStatus.ACTIVE,
        RightStatus.PLEDGED,
        RightStatus.SUSPENDED,
    ):
        return False
    if right.term.end is not None and right.term.end < on:
        return False
    rules = _rules()
    if revoked or right.pledge is not None:
        change = revoke_right(book, right_id, rules=rules)
    else:
        change = cancel_right(book, right_id, by=right.holder_id, rules=rules)
    _persist_change(session, change, "")
    for ended in change.updated:
        _audit(
            session,
            None,
            change.event.value,
            "registry_right",
            ended.id,
            f"{change.event.value}: right {ended.id} is now {ended.status.value} ({reason})",
            ended.holder_id,
            [change.rule],
        )
    return True
