"""HTML routes of the registry, applicant side: assets, the registration wizard, applications.

Thin shells over ``registry.services`` (and the data plane's and discovery's surfaces for the
versions and scans an asset rests on): read the form, check CSRF, call the use case in one unit
of work, render the page. A refusal re-renders the page with the ``DomainError``'s message in the
user's language, and nothing is written (the unit of work rolls back).

* ``/registry/assets`` lists the party's assets (every party's for registrars and regulators)
  and declares a new one from a version of one of its data sets; ``/registry/assets/{id}`` shows
  its metadata, the version registered with its fingerprint and discovery grade, the data set's
  newer versions (and moves the asset to one), lineage both ways, the rights on it and its
  applications.
* ``/registry/apply`` is the registration wizard: a stepped form (type → object → parties →
  scope and term → track → review) whose earlier answers travel as hidden fields, so it works
  without script; with htmx each step swaps only the wizard (``hx-select``). Which steps a type
  has follows the rules file (public notice, fast track) and the rights operation the type
  performs. Submitting runs the formal review at once and opens the application's page.
* ``/registry/applications`` and ``/registry/applications/{id}``: where an application stands and
  why — state, track, owner, due date in working days, the history with reasons and rules, the
  formal review's reasons with their rule ids, objections, the certificate once issued — and the
  actions the viewer may take now (registrar's review with its checklist, applicant's resubmit or
  withdraw, administrator's audited force), all through ``services.act``.

The registrar's queue, the notice board, certificate pages and the public verification page
live elsewhere (``/registry/queue``, ``/registry/notices``, ``/registry/certificates``,
``/verify``); these pages link to them. Labels of registration types, purposes and delivery modes
come from the rules file (both languages); the others are the msgids below.

Read helpers here (rights a party holds, an asset's rights and derived products, the certificate
of an application) query the registry's own tables with the same visibility as
``services.get_asset`` / ``services.get_application``: a party sees its own, readers with the
``read-all`` permission see everyone's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from datafactor import context, dataplane, discovery, identity
from datafactor.discovery.workflow import GRADE_LABELS
from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.identity import WebIdentity
from datafactor.permissions import Permission, Principal
from datafactor.registry import (
    ACTION_LABELS,
    ENDED_STATUSES,
    FINAL_STATES,
    FORCE_TARGETS,
    OBJECTION_RECORD_LABELS,
    ORIGIN_LABELS,
    OUTCOME_LABELS,
    REGISTRATION_TYPE_LABELS,
    RIGHT_KIND_LABELS,
    RIGHT_STATUS_LABELS,
    ROLE_LABELS,
    STATE_LABELS,
    TRACK_LABELS,
    TRANSITIONS,
    Action,
    ActorRole,
    AssetKind,
    DataClass,
    Grounds,
    InvalidRegistration,
    ObjectionRecord,
    ObjectionRecordStatus,
    RegistrationState,
    RegistrationType,
    RightNotInForce,
    Scope,
    Term,
    check_grounds,
    check_scope,
    load_registry_rules,
    parse_certificate_number,
    services,
    working_days_between,
)
from datafactor.registry.api import TodayDep
from datafactor.registry.checks import MSG_NOTHING_TO_OBJECT, MSG_OBJECTOR_IS_HOLDER
from datafactor.registry.models import (
    RegistryApplication,
    RegistryAsset,
    RegistryCertificate,
    RegistryLineage,
    RegistryRight,
)
from datafactor.registry.schemas import AssetCreate
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, form_list, read_form, redirect, render
from datafactor.web.i18n import gettext

router = APIRouter(prefix="/registry", include_in_schema=False)
PAGE: Final = 20
P = Permission
T = RegistrationType
A = Action
S = RegistrationState

# Display labels the vocabulary does not carry yet (English msgids; the catalogues the Chinese).
ASSET_KIND_LABELS: Final[dict[str, str]] = {
    AssetKind.RESOURCE: N_("Data resource"),
    AssetKind.PRODUCT: N_("Data product"),
    AssetKind.SERVICE: N_("Data service"),
    AssetKind.TOOL: N_("Data tool"),
}
DATA_CLASS_LABELS: Final[dict[str, str]] = {
    DataClass.PUBLIC: N_("Public data"),
    DataClass.ENTERPRISE: N_("Enterprise data"),
    DataClass.PERSONAL: N_("Personal data"),
}
# What the history says each step did (past tense; the vocabulary's labels are imperative).
EVENT_LABELS: Final[dict[str, str]] = {
    A.SUBMIT: N_("Submitted"),
    A.ACCEPT: N_("Accepted"),
    A.PASS_FORMAL: N_("Formal review passed"),
    A.FAST_TRACK_NOTICE: N_("Fast track: formal review passed, to public notice"),
    A.FAST_TRACK_REGISTER: N_("Fast track: formal review passed, registered"),
    A.RETURN_FORMAL: N_("Returned for correction at formal review"),
    A.REFUSE_FORMAL: N_("Refused at formal review"),
    A.APPROVE_TO_NOTICE: N_("Approved for public notice"),
    A.APPROVE: N_("Approved and registered"),
    A.RETURN: N_("Returned for correction"),
    A.REFUSE: N_("Refused"),
    A.RESUBMIT: N_("Resubmitted"),
    A.LODGE_OBJECTION: N_("Objection lodged"),
    A.DISMISS_OBJECTIONS: N_("Objections dismissed, notice continues"),
    A.UPHOLD_OBJECTION: N_("Objection upheld"),
    A.CLOSE_NOTICE: N_("Notice closed, registered"),
    A.WITHDRAW: N_("Withdrawn"),
    A.FORCE: N_("Forced by an administrator"),
}
# What the buttons say: the vocabulary's imperative labels; "accept" on an application waiting in
# formal review re-runs the automatic checks, and says so.
BUTTON_LABELS: Final[dict[str, str]] = {**ACTION_LABELS, A.ACCEPT: N_("Re-run the formal review")}
EFFECT_LABELS: Final[dict[str, str]] = {
    "refuse": N_("Refused"),
    "return": N_("Return for correction"),
    "pending": N_("Waiting"),
    "note": N_("Note"),
}
OBJECTION_OUTCOME_LABELS: Final[dict[str, str]] = {
    "refuse": N_("Refused"),
    "return": N_("Returned for correction"),
    "pending": N_("Waiting for a check to finish"),
    "pass": N_("Passed"),
}
# Actions a registrar takes here (objections are upheld through their decision, not a button).
REGISTRAR_ACTIONS: Final = (
    A.ACCEPT,
    A.PASS_FORMAL,
    A.RETURN_FORMAL,
    A.REFUSE_FORMAL,
    A.APPROVE_TO_NOTICE,
    A.APPROVE,
    A.RETURN,
    A.REFUSE,
    A.DISMISS_OBJECTIONS,
    A.CLOSE_NOTICE,
)
APPROVALS: Final = frozenset({A.APPROVE_TO_NOTICE, A.APPROVE})
NEEDS_REASON: Final = frozenset({A.RETURN, A.REFUSE, A.RETURN_FORMAL, A.REFUSE_FORMAL, A.FORCE})

MSG_REQUIRED: Final = N_("Fill in {field_name}: it is required.")
MSG_SOURCE: Final = N_(
    "Say where the data comes from and how it was obtained: the Data Security Law (art. 33) "
    "requires a statement of data source for every registration."
)
MSG_BAD_FIELD: Final = N_("{field_name} is too long or malformed: shorten or correct it.")
MSG_CHOOSE_TYPE: Final = N_("Choose the type of registration.")
MSG_CHOOSE_ASSET: Final = N_("Choose the asset to register (declare it first if it is not listed).")
MSG_CHOOSE_RIGHT: Final = N_("Choose the registered right this application acts on.")
MSG_COUNTERPARTY: Final = N_(
    "Enter the {role}'s unified social credit code (or resident ID number), as registered on the "
    "platform."
)
MSG_UNKNOWN_PARTY: Final = N_(
    "No party on the platform has the code {code}. Check it, or ask the party to apply for an "
    "account first."
)
MSG_SELF: Final = N_("The {role} must be another party, not your own.")
MSG_DATE: Final = N_("{field_name} is not a date: use the form YYYY-MM-DD.")
MSG_COMMITMENT: Final = N_(
    "The fast track for non-public data needs your self-commitment (承诺制): tick the box, or "
    "choose the standard track."
)
MSG_UNKNOWN_ACTION: Final = N_("Choose one of the actions offered on the page.")
MSG_REASON: Final = N_("Give a reason for this action; the applicant sees it.")
MSG_TOO_MANY: Final = N_("{field_name}: at most {max} lines. Combine or shorten them.")
MSG_CONFIRM_CONSENT: Final = N_(
    "Tick the box to confirm that your party, the pledgee, consents to releasing the pledge."
)
MSG_CLOSURE_CHOICE: Final = N_(
    "Choose whether the objection registration is substantiated, and give the reason."
)

FIELD_NAMES: Final[dict[str, str]] = {
    "name": N_("Name"),
    "name_en": N_("Name in English"),
    "description": N_("Description"),
    "source_statement": N_("Statement of data source"),
    "collection_method": N_("Collection method"),
    "coverage": N_("Time coverage"),
    "region": N_("Region"),
    "volume": N_("Volume"),
    "delivery_mode": N_("Delivery mode"),
    "sample": N_("Sample"),
    "field_schema": N_("Field schema"),
    "domain": N_("Industry domain"),
    "update_frequency": N_("Update frequency"),
    "term_start": N_("Start of the term"),
    "term_end": N_("End of the term"),
    "version_id": N_("Data set version"),
    "kind": N_("Kind of asset"),
    "data_class": N_("Class of data"),
    "lineage": N_("Derived from"),
    "certificate": N_("Certificate number"),
    "grounds": N_("Grounds"),
    "statement": N_("Statement"),
    "evidence": N_("Evidence"),
    "order_reference": N_("Order document number"),
}

LABELS: Final[dict[str, Any]] = {
    "state_labels": STATE_LABELS,
    "track_labels": TRACK_LABELS,
    "right_kind_labels": RIGHT_KIND_LABELS,
    "right_status_labels": RIGHT_STATUS_LABELS,
    "origin_labels": ORIGIN_LABELS,
    "asset_kind_labels": ASSET_KIND_LABELS,
    "data_class_labels": DATA_CLASS_LABELS,
    "role_labels": ROLE_LABELS,
    "action_labels": EVENT_LABELS,
    "button_labels": BUTTON_LABELS,
    "effect_labels": EFFECT_LABELS,
    "outcome_labels": OUTCOME_LABELS,
    "objection_outcome_labels": OBJECTION_OUTCOME_LABELS,
    "grade_labels": GRADE_LABELS,
    "domain_labels": dataplane.DOMAIN_LABELS,
    "frequency_labels": dataplane.FREQUENCY_LABELS,
    "field_names": FIELD_NAMES,
    "record_labels": OBJECTION_RECORD_LABELS,
}


def _checklist() -> dict[str, str]:
    """The substantive-review checklist of the rules file, in the reader's language."""
    lang = _lang()
    return {
        key: text.get(lang) or text["en"]
        for key, text in load_registry_rules().substantive_checklist.items()
    }


def _lang() -> str:
    """The key of the rules file's bilingual texts for the current request."""
    return "zh" if context.locale.get().startswith("zh") else "en"


def _vocabulary() -> dict[str, Any]:
    """Names in the request's language: registration types (the vocabulary's labels), and the
    purposes, delivery modes and objection grounds of the rules file."""
    rules = load_registry_rules()
    lang = _lang()
    return {
        "type_names": {str(t): gettext(label) for t, label in REGISTRATION_TYPE_LABELS.items()},
        "purpose_names": {k: v[lang] for k, v in rules.purposes.items()},
        "delivery_names": {k: v[lang] for k, v in rules.delivery_modes.items()},
        "grounds_names": {k: v[lang] for k, v in rules.objection_grounds.items()},
    }


def _party_names(session: Session, principal: Principal, party_ids: set[str]) -> dict[str, str]:
    """Display names of the parties a page relates the viewer to (``counterparty_names``)."""
    return identity.counterparty_names(session, principal, party_ids)


def _sees_all_assets(principal: Principal) -> bool:
    return principal.can(P.REGISTRY_ASSET_READ_ALL)


def _asset_labels(session: Session, principal: Principal, ids: set[str]) -> dict[str, str]:
    """Names of the assets among ``ids`` the viewer may see (as ``services.get_asset`` decides)."""
    if not ids:
        return {}
    stmt = select(RegistryAsset.id, RegistryAsset.name, RegistryAsset.party_id).where(
        RegistryAsset.id.in_(ids)
    )
    out = {}
    for asset_id, name, party_id in session.execute(stmt):
        if party_id == principal.party_id or _sees_all_assets(principal):
            out[asset_id] = name
    return out


def _held_rights(
    session: Session, principal: Principal, *, every: bool = False
) -> list[RegistryRight]:
    """Rights the viewer's party holds or has in pledge; with ``every`` (a revocation, which
    only the authority applies for) any right, for a registrar."""
    stmt = select(RegistryRight)
    if not (every and principal.can(P.REGISTRY_APPLICATION_REVIEW)):
        stmt = stmt.where(
            or_(
                RegistryRight.holder_id == principal.party_id,
                RegistryRight.pledgee_id == principal.party_id,
            )
        )
    return list(session.scalars(stmt.order_by(RegistryRight.created_at.desc()).limit(200)))


def _right_visible(principal: Principal, right: RegistryRight) -> bool:
    return principal.party_id in (right.holder_id, right.pledgee_id) or principal.can(
        P.REGISTRY_APPLICATION_READ_ALL
    )


def _certificate_of(session: Session, application_id: str) -> RegistryCertificate | None:
    return session.scalars(
        select(RegistryCertificate)
        .where(RegistryCertificate.application_id == application_id)
        .order_by(RegistryCertificate.issued_at.desc())
    ).first()


def _form_error(exc: DomainError) -> dict[str, Any]:
    """The message in the reader's language, the field, and the registry rule that refused (if
    the message does not name it already)."""
    shown: dict[str, Any] = dict(error_text(exc))
    rule = getattr(exc, "rule", None)
    if rule and rule not in str(shown.get("error") or ""):
        shown["error_rule"] = rule
    return shown


# ------------------------------------------------------------------------------------- assets


def _version_choices(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The viewer's own data sets and their versions: what an asset can be declared from."""
    if not principal.can(P.DATAPLANE_DATASET_READ):
        return []
    rows, _ = dataplane.list_datasets(
        session, principal, dataplane.DatasetQuery(principal.party_id, None), limit=100, offset=0
    )
    out = []
    for dataset in rows:
        if dataset.party_id != principal.party_id:
            continue
        versions, _ = dataplane.list_versions(session, principal, dataset.id, limit=20, offset=0)
        for version in versions:
            out.append(
                {
                    "id": version.id,
                    "dataset": dataset.name,
                    "number": version.number,
                    "label": version.filename or version.source_table or "",
                }
            )
    return out


def _lineage_choices(session: Session, principal: Principal) -> list[tuple[str, str]]:
    """Assets a product can be derived from: the party's own and those it holds a right on."""
    own = select(RegistryAsset.id, RegistryAsset.name).where(
        RegistryAsset.party_id == principal.party_id
    )
    held = (
        select(RegistryAsset.id, RegistryAsset.name)
        .join(RegistryRight, RegistryRight.asset_id == RegistryAsset.id)
        .where(RegistryRight.holder_id == principal.party_id)
    )
    seen: dict[str, str] = {}
    for asset_id, name in [*session.execute(own.limit(200)), *session.execute(held.limit(200))]:
        seen.setdefault(asset_id, name)
    return sorted(seen.items(), key=lambda item: item[1])


def _field_schema(text: str) -> tuple[dict[str, str], ...]:
    """One column a line: ``name`` or ``name: description`` (a full-width colon works too)."""
    out = []
    for line in text.splitlines():
        name, _, note = line.replace("：", ":").partition(":")
        if name.strip():
            item = {"name": name.strip()}
            if note.strip():
                item["description"] = note.strip()
            out.append(item)
    return tuple(out)


def _schema_text(schema: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(
        f"{f.get('name', '')}: {f['description']}" if f.get("description") else str(f.get("name"))
        for f in schema
    )


def _asset_draft(form: Mapping[str, str], lineage: list[str]) -> services.AssetDraft:
    """The declared asset, checked as the API checks it (lengths, kinds), or InvalidInput."""
    values: dict[str, Any] = {
        name: form.get(name, "").strip() for name in services.ASSET_TEXT_FIELDS
    }
    for required in ("name", "source_statement"):
        if not values[required]:
            if required == "source_statement":
                raise InvalidInput(MSG_SOURCE, field=required)
            raise InvalidInput(MSG_REQUIRED, field=required, field_name=_field_label(required))
    try:
        body = AssetCreate(
            kind=form.get("kind", ""),
            data_class=form.get("data_class", "") or DataClass.ENTERPRISE,
            field_schema=list(_field_schema(form.get("field_schema", ""))),
            version_id=form.get("version_id") or None,
            lineage=lineage,
            **values,
        )
    except ValidationError as exc:
        loc = str(exc.errors()[0]["loc"][0]) if exc.errors() else "name"
        raise InvalidInput(MSG_BAD_FIELD, field=loc, field_name=_field_label(loc)) from None
    data = body.model_dump()
    data["field_schema"] = tuple(data["field_schema"])
    data["lineage"] = tuple(data["lineage"])
    return services.AssetDraft(**data)


def _field_label(name: str) -> str:
    label = FIELD_NAMES.get(name)
    return gettext(label) if label else name


def _assets_page(
    request: Request,
    identity_: WebIdentity,
    db: DbDep,
    *,
    page: int = 1,
    status: int = 200,
    form: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    principal = identity_.principal
    with db.read() as session:
        rows, total = services.list_assets(session, principal, limit=PAGE, offset=(page - 1) * PAGE)
        parties = _party_names(session, principal, {a.party_id for a in rows})
        can_write = principal.can(P.REGISTRY_ASSET_WRITE)
        versions = _version_choices(session, principal) if can_write else []
        lineage = _lineage_choices(session, principal) if can_write else []
    if extra.get("error_field"):
        extra["error_field"] = str(extra["error_field"])
    return render(
        request,
        "registry/assets.html",
        identity_,
        status=status,
        items=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        parties=parties,
        can_write=can_write,
        versions=versions,
        lineage_choices=lineage,
        form=dict(form or {}),
        chosen_lineage=form_list(dict(form or {}), "lineage"),
        **LABELS,
        **_vocabulary(),
        **extra,
    )


@router.get("/assets")
def assets(
    request: Request,
    identity_: WebUser,
    db: DbDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    return _assets_page(request, identity_, db, page=page)


@router.post("/assets")
async def assets_create(request: Request, identity_: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity_)
    try:
        draft = _asset_draft(form, form_list(form, "lineage"))
        with db.write() as session:
            asset_id = services.create_asset(session, identity_.principal, draft).id
    except DomainError as exc:
        return _assets_page(
            request, identity_, db, status=exc.status, form=form, **_form_error(exc)
        )
    return redirect(f"/registry/assets/{asset_id}")


def _latest_scan(session: Session, principal: Principal, version_id: str) -> Any:
    try:
        scans, _ = discovery.list_scans(
            session,
            principal,
            discovery.ScanQuery(version_id=version_id, status=discovery.ScanStatus.SUCCEEDED.value),
            limit=1,
            offset=0,
        )
    except DomainError:
        return None
    return scans[0] if scans else None


def _asset_page(
    request: Request,
    identity_: WebIdentity,
    db: DbDep,
    asset_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity_.principal
    with db.read() as session:
        asset = services.get_asset(session, principal, asset_id)
        versions: list[dataplane.VersionPublic] = []
        scans: dict[str, Any] = {}
        dataset = None
        if asset.dataset_id:
            try:
                dataset = dataplane.DatasetPublic.of(
                    dataplane.get_dataset(session, principal, asset.dataset_id)
                )
                rows, _ = dataplane.list_versions(
                    session, principal, asset.dataset_id, limit=20, offset=0
                )
                versions = [dataplane.VersionPublic.of(v) for v in rows]
            except DomainError:
                dataset = None  # a registrar without access to the data plane sees the metadata
            for v in versions:
                scans[v.id] = _latest_scan(session, principal, v.id)
        current_scan = (
            _latest_scan(session, principal, asset.version_id) if asset.version_id else None
        )
        sources = services.lineage_of(session, asset.id)
        products = list(
            session.scalars(
                select(RegistryLineage.product_id).where(RegistryLineage.source_id == asset.id)
            )
        )
        names = _asset_labels(session, principal, {*sources, *products})
        # Products of other parties are not shown to this party (only that some exist).
        products_hidden = len([p for p in products if p not in names])
        products = [p for p in products if p in names]
        rights = list(
            session.scalars(
                select(RegistryRight)
                .where(RegistryRight.asset_id == asset.id)
                .order_by(RegistryRight.created_at)
            )
        )
        own_apps = list(
            session.scalars(
                select(RegistryApplication)
                .where(RegistryApplication.asset_id == asset.id)
                .order_by(RegistryApplication.created_at.desc())
                .limit(50)
            )
        )
        if not principal.can(P.REGISTRY_APPLICATION_READ_ALL):
            own_apps = [a for a in own_apps if a.applicant_id == principal.party_id]
        parties = _party_names(
            session,
            principal,
            {asset.party_id, *(r.holder_id for r in rights), *(a.applicant_id for a in own_apps)},
        )
    holder = asset.party_id == principal.party_id
    newer = [v for v in versions if v.id != asset.version_id]
    return render(
        request,
        "registry/asset.html",
        identity_,
        status=status,
        asset=asset,
        dataset=dataset,
        versions=versions,
        newer=newer,
        scans=scans,
        current_scan=current_scan,
        sources=sources,
        products=products,
        products_hidden=products_hidden,
        asset_names=names,
        rights=rights,
        applications=own_apps,
        parties=parties,
        schema_text=_schema_text(asset.field_schema or []),
        can_write=holder and principal.can(P.REGISTRY_ASSET_WRITE),
        can_apply=principal.can(P.REGISTRY_APPLICATION_SUBMIT),
        **LABELS,
        **_vocabulary(),
        **extra,
    )


@router.get("/assets/{asset_id}")
def asset_detail(request: Request, asset_id: str, identity_: WebUser, db: DbDep) -> Response:
    return _asset_page(request, identity_, db, asset_id)


@router.post("/assets/{asset_id}/version")
async def asset_version(request: Request, asset_id: str, identity_: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity_)
    try:
        version_id = form.get("version_id", "").strip()
        if not version_id:
            raise InvalidInput(
                MSG_REQUIRED, field="version_id", field_name=_field_label("version_id")
            )
        with db.write() as session:
            services.update_asset(
                session, identity_.principal, asset_id, {"version_id": version_id}
            )
    except DomainError as exc:
        if exc.code == "csrf":
            raise
        return _asset_page(request, identity_, db, asset_id, status=exc.status, **_form_error(exc))
    return redirect(f"/registry/assets/{asset_id}")


# ---------------------------------------------------------------------------------- the wizard

WIZARD_FIELDS: Final = (
    "type",
    "asset_id",
    "right_id",
    "certificate",
    "counterparty",
    "purposes",
    "purposes_any",
    "fields",
    "regions",
    "delivery_modes",
    "delivery_any",
    "term_start",
    "term_end",
    "amend",
    "track",
    "self_commitment",
    "grounds",
    "statement",
    "evidence",
    "order_reference",
)
# The object of each type: an asset (initial) or a registered right (every other).
WITH_COUNTERPARTY: Final = {
    T.LICENCE: N_("licensee"),
    T.TRANSFER: N_("transferee"),
    T.PLEDGE: N_("pledgee"),
}
WITH_SCOPE: Final = frozenset({T.INITIAL, T.LICENCE, T.CHANGE, T.CORRECTION})
WITH_TERM: Final = frozenset({T.INITIAL, T.LICENCE, T.CHANGE, T.CORRECTION, T.RENEWAL})
AMENDING: Final = frozenset({T.CHANGE, T.CORRECTION})
# Lines of evidence an application carries at most (as the API's ApplicationCreate).
MAX_EVIDENCE: Final = 50
MAX_ORDER_REFERENCE: Final = 200
STEP_FIELDS: Final[dict[str, frozenset[str]]] = {
    "type": frozenset({"type"}),
    "object": frozenset({"asset_id", "right_id", "certificate"}),
    "parties": frozenset({"counterparty"}),
    "scope": frozenset(
        {
            "purposes",
            "purposes_any",
            "fields",
            "regions",
            "delivery_modes",
            "delivery_any",
            "term_start",
            "term_end",
            "amend",
        }
    ),
    "track": frozenset({"track", "self_commitment"}),
    "grounds": frozenset({"grounds", "statement", "evidence"}),
    "order": frozenset({"order_reference", "evidence"}),
    "review": frozenset(),
}
STEP_NAMES: Final[dict[str, str]] = {
    "type": N_("Type"),
    "object": N_("Asset or right"),
    "parties": N_("Parties"),
    "scope": N_("Scope and term"),
    "track": N_("Track"),
    "grounds": N_("Grounds and evidence"),
    "order": N_("Court or authority order"),
    "review": N_("Review and submit"),
}


def _wizard_types(principal: Principal) -> list[RegistrationType]:
    """Types a person applies for here: every type to a party that can submit — an objection
    registration (异议登记) against anyone's registered right, a revocation on a court or
    authority order — and a revocation to a registrar (the authority) as well."""
    submits = principal.can(P.REGISTRY_APPLICATION_SUBMIT)
    contesting = {
        T.OBJECTION: submits,
        T.REVOCATION: submits or principal.can(P.REGISTRY_APPLICATION_REVIEW),
    }
    return [t for t in RegistrationType if contesting.get(t, True)]


def _by_certificate(principal: Principal, kind: RegistrationType | None) -> bool:
    """Whether the right acted on is named by its certificate number: an objection registration
    and a revocation on an order contest another party's right, which only its (public)
    certificate identifies; a registrar revokes any right, chosen from the list."""
    return kind is T.OBJECTION or (
        kind is T.REVOCATION and not principal.can(P.REGISTRY_APPLICATION_REVIEW)
    )


def _type_of(form: Mapping[str, str]) -> RegistrationType | None:
    try:
        return RegistrationType(form.get("type", ""))
    except ValueError:
        return None


def _steps(kind: RegistrationType | None, principal: Principal) -> list[str]:
    if kind is None:
        return ["type"]
    steps = ["type", "object"]
    if kind is T.OBJECTION:
        steps.append("grounds")
    elif kind is T.REVOCATION and _by_certificate(principal, kind):
        steps.append("order")
    if kind in WITH_COUNTERPARTY:
        steps.append("parties")
    if kind in WITH_TERM:
        steps.append("scope")
    if load_registry_rules().type_rules(kind).fast_track:
        steps.append("track")
    steps.append("review")
    return steps


def _date(form: Mapping[str, str], name: str) -> date | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(MSG_DATE, field=name, field_name=_field_label(name)) from None


def _split(text: str) -> list[str]:
    return [v for v in text.replace("，", ",").replace(",", " ").split() if v]


def _lines(text: str) -> tuple[str, ...]:
    """One item a line (evidence): blank lines dropped, each line trimmed, duplicates once."""
    return tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def _scope(form: Mapping[str, str]) -> dict[str, list[str] | None]:
    """The requested scope: a ticked 'any' or a blank text is unrestricted (None); nothing
    ticked is an empty dimension, which the rules refuse (deny by default)."""
    return {
        "purposes": None if form.get("purposes_any") else form_list(dict(form), "purposes"),
        "fields": _split(form.get("fields", "")) or None,
        "regions": _split(form.get("regions", "")) or None,
        "delivery_modes": None
        if form.get("delivery_any")
        else form_list(dict(form), "delivery_modes"),
    }


def _counterparty(session: Session, principal: Principal, form: Mapping[str, str]) -> str | None:
    kind = _type_of(form)
    if kind not in WITH_COUNTERPARTY:
        return None
    assert kind is not None
    role = _field_role(kind)
    text = "".join(form.get("counterparty", "").split()).upper()
    if not text:
        raise InvalidInput(MSG_COUNTERPARTY, field="counterparty", role=role)
    party_id = identity.find_party_id(session, "uscc", "CN", text)
    if party_id is None:
        party_id = identity.find_party_id(session, "resident_id", "CN", text)
    if party_id is None:
        raise InvalidInput(MSG_UNKNOWN_PARTY, field="counterparty", code=text)
    if party_id == principal.party_id:
        raise InvalidInput(MSG_SELF, field="counterparty", role=role)
    return party_id


def _field_role(kind: RegistrationType) -> str:
    return gettext(WITH_COUNTERPARTY[kind])


def _certificate_right(
    session: Session, form: Mapping[str, str], today: date, *, strict: bool = False
) -> RegistryRight | None:
    """The right whose certificate number the form names. ``strict`` checks it through the
    public verification (a malformed or unknown number is refused naming its rule); otherwise
    an unusable number is just no right (pages being drawn)."""
    text = form.get("certificate", "")
    if strict:
        check = services.verify_certificate(session, text, today=today)
        return session.get(RegistryRight, check.certificate.right_id)
    try:
        number = str(parse_certificate_number(text, today=today))
    except DomainError:
        return None
    right_id = session.scalar(
        select(RegistryCertificate.right_id).where(RegistryCertificate.number == number)
    )
    return session.get(RegistryRight, right_id) if right_id else None


def _wizard_right(
    session: Session, principal: Principal, form: Mapping[str, str], today: date
) -> RegistryRight | None:
    """The right the application acts on: named by certificate number (contesting types), or
    chosen from the viewer's list (every other type but the initial registration)."""
    kind = _type_of(form)
    if kind is None or kind is T.INITIAL:
        return None
    if _by_certificate(principal, kind):
        return _certificate_right(session, form, today)
    right = session.get(RegistryRight, form["right_id"]) if form.get("right_id") else None
    # Only a right the viewer may see (a registrar revoking may name any): the wizard shows the
    # chosen right's scope and term.
    authority = kind is T.REVOCATION and principal.can(P.REGISTRY_APPLICATION_REVIEW)
    return right if right is not None and (authority or _right_visible(principal, right)) else None


def _admissible_objection(principal: Principal, right: RegistryRight) -> None:
    """Refuse at once, with the formal review's own rule and message, an objection registration
    the review would refuse: against the applicant's own right, or a right that has ended.
    (The formal review still decides; this only spares a doomed application.)"""
    rules = load_registry_rules()
    if right.holder_id == principal.party_id:
        raise InvalidRegistration(
            MSG_OBJECTOR_IS_HOLDER, rule=rules.rule_id("holder"), field="certificate"
        )
    if right.status in ENDED_STATUSES:
        raise RightNotInForce(
            MSG_NOTHING_TO_OBJECT,
            rule=rules.rule_id("objection_registration"),
            field="certificate",
            right=right.id,
            status=right.status,
        )


def _check_step(
    session: Session, principal: Principal, step: str, form: Mapping[str, str], today: date
) -> None:
    """Refuse what this step got wrong (InvalidInput naming the field), before moving on."""
    kind = _type_of(form)
    if step == "type":
        if kind is None or kind not in _wizard_types(principal):
            raise InvalidInput(MSG_CHOOSE_TYPE, field="type")
    elif step == "object":
        if kind is T.INITIAL:
            if not form.get("asset_id"):
                raise InvalidInput(MSG_CHOOSE_ASSET, field="asset_id")
            services.get_asset(session, principal, form["asset_id"])
        elif _by_certificate(principal, kind):
            right = _certificate_right(session, form, today, strict=True)
            if right is None:
                raise InvalidInput(MSG_CHOOSE_RIGHT, field="certificate")
            if kind is T.OBJECTION:
                _admissible_objection(principal, right)
        else:
            right = (
                session.get(RegistryRight, form.get("right_id", ""))
                if form.get("right_id")
                else None
            )
            authority = kind is T.REVOCATION and principal.can(P.REGISTRY_APPLICATION_REVIEW)
            if right is None or not (_right_visible(principal, right) or authority):
                raise InvalidInput(MSG_CHOOSE_RIGHT, field="right_id")
    elif step == "parties":
        _counterparty(session, principal, form)
    elif step == "scope":
        if kind in AMENDING and form.get("amend") == "metadata":
            return
        if kind in WITH_SCOPE:
            check_scope(Scope.from_dict(_scope(form)))
        start = _date(form, "term_start")
        if start is None:
            raise InvalidInput(
                MSG_REQUIRED, field="term_start", field_name=_field_label("term_start")
            )
        Term(start, _date(form, "term_end"))
    elif step == "track" and form.get("track") == "fast" and not form.get("self_commitment"):
        asset = _wizard_asset(session, principal, form, today)
        if asset is None or asset.data_class != DataClass.PUBLIC.value:
            raise InvalidInput(MSG_COMMITMENT, field="self_commitment")
    elif step == "grounds":
        _check_evidence(form)
        check_grounds(
            Grounds(
                frozenset(form_list(dict(form), "grounds")),
                form.get("statement", ""),
                _lines(form.get("evidence", "")),
            )
        )
    elif step == "order":
        reference = _order_reference(form)
        # A regulator is an authority by its party's kind and may revoke without an order.
        regulator = principal.party_kind == identity.PartyKind.REGULATOR.value
        if not reference and not regulator:
            raise InvalidInput(
                MSG_REQUIRED, field="order_reference", field_name=_field_label("order_reference")
            )
        if len(reference) > MAX_ORDER_REFERENCE:
            raise InvalidInput(
                MSG_BAD_FIELD,
                field="order_reference",
                field_name=_field_label("order_reference"),
            )
        _check_evidence(form)


def _check_evidence(form: Mapping[str, str]) -> None:
    if len(_lines(form.get("evidence", ""))) > MAX_EVIDENCE:
        raise InvalidInput(
            MSG_TOO_MANY, field="evidence", field_name=_field_label("evidence"), max=MAX_EVIDENCE
        )


def _order_reference(form: Mapping[str, str]) -> str:
    return " ".join(form.get("order_reference", "").split())


def _wizard_asset(
    session: Session, principal: Principal, form: Mapping[str, str], today: date
) -> RegistryAsset | None:
    """The asset the application is about: the one chosen, or the chosen right's."""
    if _type_of(form) is T.INITIAL:
        asset_id = form.get("asset_id", "")
    else:
        right = _wizard_right(session, principal, form, today)
        asset_id = right.asset_id if right is not None else ""
    return session.get(RegistryAsset, asset_id) if asset_id else None


def _draft(
    session: Session, principal: Principal, form: Mapping[str, str], today: date
) -> services.ApplicationDraft:
    kind = _type_of(form)
    assert kind is not None
    asset = _wizard_asset(session, principal, form, today)
    if asset is None:
        raise InvalidInput(
            MSG_CHOOSE_ASSET if kind is T.INITIAL else MSG_CHOOSE_RIGHT,
            field="asset_id"
            if kind is T.INITIAL
            else "certificate"
            if _by_certificate(principal, kind)
            else "right_id",
        )
    right = _wizard_right(session, principal, form, today)
    metadata_only = kind in AMENDING and form.get("amend") == "metadata"
    scope = _scope(form) if kind in WITH_SCOPE and not metadata_only else None
    with_term = kind in WITH_TERM and not metadata_only
    fast = form.get("track") == "fast"
    declares_fingerprint = kind in (T.INITIAL, T.CHANGE, T.CORRECTION)
    objecting = kind is T.OBJECTION
    return services.ApplicationDraft(
        type=kind,
        asset_id=asset.id,
        right_id=None if right is None else right.id,
        counterparty_id=_counterparty(session, principal, form),
        scope=scope,
        term_start=_date(form, "term_start") if with_term else None,
        term_end=_date(form, "term_end") if with_term else None,
        fingerprint=asset.fingerprint if declares_fingerprint else None,
        self_commitment=fast and bool(form.get("self_commitment")),
        order_reference=(_order_reference(form) or None) if kind is T.REVOCATION else None,
        grounds=tuple(form_list(dict(form), "grounds")) if objecting else (),
        statement=form.get("statement", "").strip() if objecting else "",
        evidence=_lines(form.get("evidence", "")) if kind in (T.OBJECTION, T.REVOCATION) else (),
    )


def _prefill(session: Session, principal: Principal, form: dict[str, str], today: date) -> None:
    """Sensible first answers on reaching the scope step: the chosen right's own scope and term
    (a licence starts within its parent, a change edits what is there), else unrestricted."""
    if "term_start" in form:
        return
    kind = _type_of(form)
    right = _wizard_right(session, principal, form, today)
    scope: Mapping[str, Any] = {}
    if right is not None and kind is not T.INITIAL:
        scope = right.scope
        form["term_start"] = (
            right.term_start.isoformat() if kind in (T.RENEWAL, *AMENDING) else today.isoformat()
        )
        form["term_end"] = right.term_end.isoformat() if right.term_end else ""
    else:
        form["term_start"] = today.isoformat()
    purposes = scope.get("purposes")
    delivery = scope.get("delivery_modes")
    form["purposes_any"] = "" if purposes else "1"
    form["purposes"] = "\n".join(purposes or ())
    form["delivery_any"] = "" if delivery else "1"
    form["delivery_modes"] = "\n".join(delivery or ())
    form["fields"] = " ".join(scope.get("fields") or ())
    form["regions"] = " ".join(scope.get("regions") or ())


def _wizard_page(
    request: Request,
    identity_: WebIdentity,
    db: DbDep,
    form: dict[str, str],
    step: str,
    today: date,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity_.principal
    kind = _type_of(form)
    steps = _steps(kind, principal)
    if step not in steps:
        step = steps[0]
    by_certificate = _by_certificate(principal, kind)
    with db.read() as session:
        if step == "scope":
            _prefill(session, principal, form, today)
        own_assets, _ = services.list_assets(session, principal, limit=200, offset=0)
        own_assets = [a for a in own_assets if a.party_id == principal.party_id]
        rights = (
            [] if by_certificate else _held_rights(session, principal, every=kind is T.REVOCATION)
        )
        asset_names = _asset_labels(
            session, principal, {r.asset_id for r in rights} | {a.id for a in own_assets}
        )
        asset = _wizard_asset(session, principal, form, today)
        # A contested right's asset is another party's: its name is not shown, only its id.
        asset_visible = asset is not None and bool(_asset_labels(session, principal, {asset.id}))
        right = _wizard_right(session, principal, form, today)
        summary: dict[str, Any] = {}
        if step == "review":
            try:
                draft = _draft(session, principal, form, today)
                summary = {"draft": draft, "counterparty": draft.counterparty_id}
            except DomainError as exc:
                extra.setdefault("error", error_text(exc)["error"])
    htmx = bool(request.headers.get("HX-Request"))
    # The message is shown inside the wizard, which is all an htmx step swaps.
    wizard_error = extra.pop("error", None)
    return render(
        request,
        "registry/apply.html",
        identity_,
        status=200 if htmx else status,  # htmx swaps 200 answers only
        form=form,
        step=step,
        steps=steps,
        step_names=STEP_NAMES,
        position=steps.index(step),
        kind=kind,
        types=_wizard_types(principal),
        type_rules={t.value: load_registry_rules().type_rules(t) for t in RegistrationType},
        own_assets=own_assets,
        rights=rights,
        asset_names=asset_names,
        asset=asset,
        asset_visible=asset_visible,
        right=right,
        by_certificate=by_certificate,
        chosen_grounds=form_list(form, "grounds"),
        counterparty_role=WITH_COUNTERPARTY.get(kind) if kind else None,
        with_scope=kind in WITH_SCOPE,
        amending=kind in AMENDING,
        summary=summary,
        chosen_purposes=form_list(form, "purposes"),
        chosen_delivery=form_list(form, "delivery_modes"),
        carried=[
            (name, value)
            for name in WIZARD_FIELDS
            for value in (form.get(name, "").split("\n") if form.get(name) else [])
        ],
        step_fields=STEP_FIELDS[step],
        wizard_error=wizard_error,
        lapse_days=load_registry_rules().objection_lapse_days,
        **LABELS,
        **_vocabulary(),
        **extra,
    )


@router.get("/apply")
def apply_start(
    request: Request,
    identity_: WebUser,
    db: DbDep,
    today: TodayDep,
    type: Annotated[str | None, Query(max_length=24)] = None,
    asset: Annotated[str | None, Query(max_length=36)] = None,
    right: Annotated[str | None, Query(max_length=36)] = None,
    certificate: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    form: dict[str, str] = {}
    if type:
        form["type"] = type
    if asset:
        form["asset_id"] = asset
        form.setdefault("type", T.INITIAL.value)
    if right:
        form["right_id"] = right
    if certificate:
        # From a certificate or verification page: object to (or revoke) that right.
        form["certificate"] = certificate
        form.setdefault("type", T.OBJECTION.value)
    step = "object" if _type_of(form) is not None else "type"
    return _wizard_page(request, identity_, db, form, step, today)


@router.post("/apply")
async def apply_step(
    request: Request, identity_: WebUser, db: DbDep, settings: SettingsDep, today: TodayDep
) -> Response:
    """``go``: ``next`` checks this step and shows the next, ``back`` the previous one, ``submit``
    submits (the formal review runs at once) and opens the application."""
    raw = await read_form(request)
    check_csrf(request, raw.get("csrf_token"), identity_)
    # Line ends as one "\n": multi-line answers (statement, evidence) travel between steps as
    # one hidden field a line, and come back joined by "\n".
    form = {
        k: v.replace("\r\n", "\n").replace("\r", "\n") for k, v in raw.items() if k in WIZARD_FIELDS
    }
    principal = identity_.principal
    step = raw.get("step", "type")
    go = raw.get("go", "next")
    steps = _steps(_type_of(form), principal)
    if step not in steps:
        step = steps[0]
    index = steps.index(step)
    if go == "back":
        return _wizard_page(request, identity_, db, form, steps[max(0, index - 1)], today)
    try:
        with db.read() as session:
            _check_step(session, principal, step, form, today)
        steps = _steps(_type_of(form), principal)  # the type may have changed the steps
        if go != "submit" or step != "review":
            return _wizard_page(
                request, identity_, db, form, steps[min(len(steps) - 1, index + 1)], today
            )
        issuer = services.issuer_for(settings)
        with db.write() as session:
            for earlier in steps[:-1]:
                _check_step(session, principal, earlier, form, today)
            draft = _draft(session, principal, form, today)
            row = services.submit_application(session, principal, draft, issuer=issuer, today=today)
            application_id = row.id
    except DomainError as exc:
        if exc.code == "csrf":
            raise
        return _wizard_page(
            request, identity_, db, form, step, today, status=exc.status, **_form_error(exc)
        )
    target = f"/registry/applications/{application_id}"
    if request.headers.get("HX-Request"):
        response = Response(status_code=204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


# ------------------------------------------------------------------------------- applications


@router.get("/applications")
def applications(
    request: Request,
    identity_: WebUser,
    db: DbDep,
    state: Annotated[str | None, Query(max_length=24)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    principal = identity_.principal
    chosen = state if state in STATE_LABELS else None
    with db.read() as session:
        rows, total = services.list_applications(
            session,
            principal,
            services.ApplicationQuery(state=chosen),
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        names = _asset_labels(session, principal, {a.asset_id for a in rows})
        parties = _party_names(session, principal, {a.applicant_id for a in rows})
    return render(
        request,
        "registry/applications.html",
        identity_,
        items=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        state=chosen or "",
        asset_names=names,
        parties=parties,
        can_apply=principal.can(P.REGISTRY_APPLICATION_SUBMIT),
        **LABELS,
        **_vocabulary(),
    )


def _reasons(decision: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The formal review's reasons, each in the request's language with its rule."""
    if not decision:
        return []
    lang = "zh" if _lang() == "zh" else "en"
    out = []
    for r in decision.get("reasons") or []:
        if not isinstance(r, Mapping):
            continue
        title = r.get("title") or {}
        out.append(
            {
                "rule": r.get("rule", ""),
                "effect": r.get("effect", ""),
                "text": r.get(lang) or r.get("en") or "",
                "title": title.get(lang, "") if isinstance(title, Mapping) else "",
                "source": r.get("source", ""),
                "article": r.get("article", ""),
            }
        )
    return out


def _viewer_actions(
    principal: Principal, row: RegistryApplication
) -> tuple[list[Action], list[Action]]:
    """(registrar actions, applicant actions) the viewer may take now, by the transition table."""
    state = RegistrationState(row.state)
    if state in FINAL_STATES:
        return [], []
    rules = load_registry_rules()
    noticed = rules.type_rules(RegistrationType(row.type)).public_notice
    possible = {t.action: t for t in TRANSITIONS if t.source is state}
    registrar: list[Action] = []
    if principal.can(P.REGISTRY_APPLICATION_REVIEW):
        for action in REGISTRAR_ACTIONS:
            if action is A.ACCEPT and state is S.FORMAL_REVIEW:
                registrar.append(action)  # re-runs the automatic checks
                continue
            t = possible.get(action)
            if t is None or ActorRole.REGISTRAR not in t.roles:
                continue
            if (action is A.APPROVE_TO_NOTICE and not noticed) or (action is A.APPROVE and noticed):
                continue
            registrar.append(action)
    applicant: list[Action] = []
    if row.applicant_id == principal.party_id and principal.can(P.REGISTRY_APPLICATION_SUBMIT):
        applicant = [a for a in (A.RESUBMIT, A.WITHDRAW) if a in possible]
    return registrar, applicant


def _application_page(
    request: Request,
    identity_: WebIdentity,
    db: DbDep,
    application_id: str,
    today: date,
    *,
    status: int = 200,
    form: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    principal = identity_.principal
    with db.read() as session:
        row = services.get_application(session, principal, application_id)
        events = services.application_events(session, row.id)
        objections = services.list_objections(session, principal, row.id)
        certificate = _certificate_of(session, row.id)
        asset_names = _asset_labels(session, principal, {row.asset_id})
        right = session.get(RegistryRight, row.right_id) if row.right_id else None
        result = session.get(RegistryRight, row.result_right_id) if row.result_right_id else None
        contested = (
            _current_certificate(session, row.right_id)
            if row.right_id and row.type in (T.OBJECTION.value, T.REVOCATION.value)
            else None
        )
        pledgee = _awaited_pledgee(row, right)
        parties = _party_names(
            session,
            principal,
            {
                row.applicant_id,
                *(o.objector_id for o in objections),
                *([str(row.facts["counterparty_id"])] if row.facts.get("counterparty_id") else []),
                *([pledgee] if pledgee else []),
            },
        )
        days_left = None
        if row.due_on is not None and row.state not in {s.value for s in FINAL_STATES}:
            calendar = services.calendar_for(session)
            if row.due_on >= today:
                days_left = working_days_between(today, row.due_on, calendar)
            else:
                days_left = -working_days_between(row.due_on, today, calendar)
    registrar_actions, applicant_actions = _viewer_actions(principal, row)
    facts = row.facts or {}
    record = (
        ObjectionRecord.from_dict(facts["record"])
        if row.type == T.OBJECTION.value and row.state == S.CERTIFIED.value and facts.get("record")
        else None
    )
    record_status = record.status(today) if record is not None else None
    record_open = record_status is ObjectionRecordStatus.IN_FORCE
    reviews = principal.can(P.REGISTRY_APPLICATION_REVIEW)
    objector = row.applicant_id == principal.party_id and principal.can(
        P.REGISTRY_APPLICATION_SUBMIT
    )
    return render(
        request,
        "registry/application.html",
        identity_,
        status=status,
        app=row,
        events=events,
        objections=objections,
        certificate=certificate,
        asset_name=asset_names.get(row.asset_id),
        right=right if right is not None and _right_visible(principal, right) else None,
        result=result,
        parties=parties,
        facts=facts,
        decision=row.decision or {},
        reasons=_reasons(row.decision),
        days_left=days_left,
        contested=contested,
        pledgee=pledgee,
        can_consent=pledgee is not None
        and pledgee == principal.party_id
        and principal.can(P.REGISTRY_APPLICATION_SUBMIT),
        record=record,
        record_status=record_status,
        can_record_lawsuit=record_open and (objector or reviews),
        can_close_record=record_open and reviews,
        registrar_actions=registrar_actions,
        applicant_actions=applicant_actions,
        can_force=principal.can(P.REGISTRY_APPLICATION_FORCE)
        and RegistrationState(row.state) not in FINAL_STATES,
        force_targets=sorted(s.value for s in FORCE_TARGETS if s.value != row.state),
        needs_reason=[a.value for a in NEEDS_REASON],
        approvals=[a.value for a in APPROVALS],
        form=dict(form or {}),
        ticked=form_list(dict(form or {}), "checklist"),
        checklist=_checklist(),
        **LABELS,
        **_vocabulary(),
        **extra,
    )


def _current_certificate(session: Session, right_id: str) -> RegistryCertificate | None:
    """The latest certificate of a right (public: the contested right is named by it)."""
    return session.scalars(
        select(RegistryCertificate)
        .where(RegistryCertificate.right_id == right_id)
        .order_by(RegistryCertificate.issued_at.desc())
    ).first()


def _awaited_pledgee(row: RegistryApplication, right: RegistryRight | None) -> str | None:
    """The pledgee whose consent a holder's pledge release waits for in formal review (the
    review's ``REG-PLEDGE-LOCK`` wait), or None."""
    if (
        row.type != T.PLEDGE_RELEASE.value
        or row.state != S.FORMAL_REVIEW.value
        or right is None
        or not right.pledgee_id
        or row.applicant_id != right.holder_id
    ):
        return None
    consent = (row.facts or {}).get("pledgee_consent") or {}
    return None if consent.get("party_id") == right.pledgee_id else right.pledgee_id


@router.get("/applications/{application_id}")
def application_detail(
    request: Request, application_id: str, identity_: WebUser, db: DbDep, today: TodayDep
) -> Response:
    return _application_page(request, identity_, db, application_id, today)


@router.post("/applications/{application_id}/act")
async def application_act(
    request: Request,
    application_id: str,
    identity_: WebUser,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> Response:
    principal = identity_.principal

    def act(session: Session, form: Mapping[str, str]) -> object:
        try:
            action = Action(form.get("action", ""))
        except ValueError:
            raise InvalidInput(MSG_UNKNOWN_ACTION, field="action") from None
        reason = form.get("reason", "").strip()
        if action in NEEDS_REASON and not reason:
            raise InvalidInput(MSG_REASON, field="reason")
        target = None
        if action is A.FORCE:
            try:
                target = RegistrationState(form.get("target", ""))
            except ValueError:
                raise InvalidInput(MSG_UNKNOWN_ACTION, field="target") from None
        return services.act(
            session,
            principal,
            application_id,
            action,
            issuer=services.issuer_for(settings),
            reason=reason,
            target=target,
            today=today,
            checklist=form_list(dict(form), "checklist"),
        )

    return await _application_form(request, application_id, identity_, db, today, act)


async def _application_form(
    request: Request,
    application_id: str,
    identity_: WebIdentity,
    db: DbDep,
    today: date,
    use_case: Callable[[Session, Mapping[str, str]], object],
) -> Response:
    """Post a form of the application page: CSRF, the use case in one unit of work, back to
    the page; a refusal re-renders it with the message (nothing is written)."""
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity_)
    try:
        with db.write() as session:
            use_case(session, form)
    except DomainError as exc:
        return _application_page(
            request,
            identity_,
            db,
            application_id,
            today,
            status=exc.status,
            form=form,
            **_form_error(exc),
        )
    return redirect(f"/registry/applications/{application_id}")


@router.post("/applications/{application_id}/consent")
async def application_consent(
    request: Request,
    application_id: str,
    identity_: WebUser,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> Response:
    """The pledgee consents to the holder's release of its pledge; the formal review runs
    again (``services.consent_to_release``)."""
    issuer = services.issuer_for(settings)

    def consent(session: Session, form: Mapping[str, str]) -> object:
        if not form.get("confirm"):
            # Only the pledgee is told what to tick; anyone else learns nothing.
            services.get_application(session, identity_.principal, application_id)
            raise InvalidInput(MSG_CONFIRM_CONSENT, field="confirm")
        return services.consent_to_release(
            session, identity_.principal, application_id, issuer=issuer, today=today
        )

    return await _application_form(request, application_id, identity_, db, today, consent)


@router.post("/applications/{application_id}/lawsuit")
async def application_lawsuit(
    request: Request, application_id: str, identity_: WebUser, db: DbDep, today: TodayDep
) -> Response:
    """The objector (or a registrar) records the lawsuit that keeps an objection registration
    in force past its lapse date."""

    def lawsuit(session: Session, form: Mapping[str, str]) -> object:
        return services.record_objection_lawsuit(
            session,
            identity_.principal,
            application_id,
            reference=form.get("reference", ""),
            today=today,
        )

    return await _application_form(request, application_id, identity_, db, today, lawsuit)


@router.post("/applications/{application_id}/closure")
async def application_closure(
    request: Request, application_id: str, identity_: WebUser, db: DbDep, today: TodayDep
) -> Response:
    """A registrar closes an objection registration: substantiated, or lifted."""

    def closure(session: Session, form: Mapping[str, str]) -> object:
        choice = form.get("substantiated", "")
        if choice not in ("yes", "no"):
            services.get_application(session, identity_.principal, application_id)
            raise InvalidInput(MSG_CLOSURE_CHOICE, field="substantiated")
        return services.close_objection_registration(
            session,
            identity_.principal,
            application_id,
            substantiated=choice == "yes",
            reason=form.get("reason", ""),
            today=today,
        )

    return await _application_form(request, application_id, identity_, db, today, closure)
