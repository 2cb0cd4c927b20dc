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
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, dataplane, discovery, ledger
from datafactor.db import new_id, today_cn, utcnow
from datafactor.errors import N_, Forbidden, InvalidInput, NotFound
from datafactor.permissions import Permission, Principal
from datafactor.registry.domain import (
    CERTIFICATE_EVENT_KIND,
    FINAL_STATES,
    Action,
    ActorRole,
    ApplicationFacts,
    AssetKind,
    BrokenChainOfTitle,
    CertificateStatus,
    DataClass,
    Decision,
    Grounds,
    Outcome,
    RegistrationState,
    RegistrationType,
    RegistryRules,
    Right,
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
    decide_objection,
    default_calendar,
    formal_checks,
    format_certificate_number,
    load_registry_rules,
    lodge_objection,
    overdue,
    parse_certificate_number,
    rights_operation,
    submit,
)
from datafactor.registry.errors import NotRightHolder, RegistryError
from datafactor.registry.models import (
    RegistryApplication,
    RegistryApplicationEvent,
    RegistryAsset,
    RegistryCalendarDay,
    RegistryCertificate,
    RegistryCertificateSerial,
    RegistryLineage,
    RegistryObjection,
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
    "Lineage source {asset} is not a registered asset: register the data the product was "
    "derived from first, then list it."
)
MSG_NOT_APPLICANT: Final = N_("Only the applicant's party can {action} this application.")
MSG_NO_CERTIFICATE: Final = N_(
    "No certificate numbered {number} has been issued. Check the number on the certificate "
    "(rule {rule})."
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
        path.parent.mkdir(parents=True, exist_ok=True)
        text = ledger.Signer.generate(KEY_NAME).key_string() + "\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
    return ledger.Signer.from_key_string(path.read_text().strip())


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


def _set_lineage(session: Session, asset: RegistryAsset, sources: Iterable[str]) -> None:
    for row in session.scalars(
        select(RegistryLineage).where(RegistryLineage.product_id == asset.id)
    ):
        session.delete(row)
    for source_id in dict.fromkeys(sources):
        source = session.get(RegistryAsset, source_id)
        if source is None or source_id == asset.id:
            raise InvalidInput(MSG_NO_SOURCE, field="lineage", asset=source_id)
        session.add(
            RegistryLineage(
                product_id=asset.id, source_id=source_id, source_version_id=source.version_id
            )
        )
    session.flush()


_ASSET_FIELDS: Final = (
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
        **{name: getattr(draft, name) for name in _ASSET_FIELDS},
    )
    if draft.version_id:
        _attach_version(session, principal, asset, draft.version_id)
    session.add(asset)
    session.flush()
    if draft.lineage:
        _set_lineage(session, asset, draft.lineage)
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
        if name in _ASSET_FIELDS:
            setattr(asset, name, value)
        elif name == "field_schema":
            asset.field_schema = [dict(f) for f in value]
    if changes.get("version_id"):
        _attach_version(session, principal, asset, str(changes["version_id"]))
    if "lineage" in changes:
        _set_lineage(session, asset, changes["lineage"] or ())
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


# ------------------------------------------------------------------------------ applications


@dataclass(frozen=True)
class ApplicationDraft:
    """What an applicant asks for. ``scope`` / term describe the right to be registered (or a
    change's new ones); ``right_id`` the right acted on; ``counterparty_id`` the licensee,
    transferee or pledgee; ``fingerprint`` the SHA-256 of the version the applicant registers."""

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


def _facts_json(draft: ApplicationDraft) -> dict[str, Any]:
    return {
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


def _open_disputes(session: Session, asset_id: str, application_id: str) -> tuple[str, ...]:
    rows = session.scalars(
        select(RegistryObjection.id)
        .join(RegistryApplication, RegistryApplication.id == RegistryObjection.application_id)
        .where(
            RegistryApplication.asset_id == asset_id,
            RegistryApplication.id != application_id,
            RegistryObjection.outcome.is_(None),
        )
    )
    return tuple(rows)


def _application_facts(
    session: Session, row: RegistryApplication, lineage: Mapping[str, set[str]]
) -> ApplicationFacts:
    asset = session.get(RegistryAsset, row.asset_id)
    assert asset is not None
    facts = row.facts
    scope, term = _requested(facts)
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
        open_disputes=_open_disputes(session, asset.id, row.id),
        raw_single_records=bool(facts.get("raw_single_records")),
        self_commitment=bool(facts.get("self_commitment")),
        right_id=facts.get("right_id"),
        counterparty_id=facts.get("counterparty_id"),
        requested_scope=scope,
        requested_term=term,
        lineage={k: sorted(v) for k, v in lineage.items()},
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
        [step.reason or "", step.rule or ""],
    )


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
        facts=_facts_json(draft),
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
        _application_facts(session, row, lineage), book=book, on=on, rules=rules
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
    if row is None or not _can_see_party(
        principal, row.applicant_id, P.REGISTRY_APPLICATION_READ, P.REGISTRY_APPLICATION_READ_ALL
    ):
        raise NotFound(MSG_NO_APPLICATION)
    return row


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
) -> RegistryApplication:
    """A person acts on an application: a registrar (review, notice, register, return, refuse,
    re-run the formal review), the applicant (resubmit, withdraw) or an administrator (force,
    audited with its reason). Reaching *certified* issues the certificate in this transaction."""
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
    _record_step(session, row, step, principal, rules=rules)
    if row.state == S.SUBMITTED.value:
        _formal_review(session, row, on=on, issuer=issuer, rules=rules, calendar=calendar)
    elif row.state == S.CERTIFIED.value:
        _certify(session, row, principal, on=on, issuer=issuer, rules=rules)
    return row


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
    book, lineage = _load_book(session, [row.asset_id])
    facts = _application_facts(session, row, lineage)
    change = rights_operation(facts, book, on, rules, new_right_id=new_id(), registration_id=row.id)
    _persist_change(session, change, row.id)
    right = change.right
    row.result_right_id = right.id
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
    registration_type = RegistrationType(row.type)
    if not rules.type_rules(registration_type).certificate:
        return None
    after = change.apply(book)
    return _issue(
        session, row, after.right(right.id), after, principal, on=on, issuer=issuer, rules=rules
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
    return Verification(certificate, status, right.status, valid, chain, problem)


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
