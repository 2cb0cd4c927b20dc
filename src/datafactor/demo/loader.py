"""Loading the demo province into the database, idempotently.

A second load changes nothing: parties are found by their identifier and users by username, and a
password is only re-hashed (and audited) when it actually differs from the stored one. With the
settings (the data plane and the registry's certificate key), the registry pilots of
``demo.pilots`` are loaded too, through the same service functions people use: data sets are
found by name, assets by name within their party, applications by asset, type and counterparty;
an application found half-way is taken on from the state it is in, so an interrupted load resumes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from datafactor import dataplane, discovery, registry
from datafactor.db import Database
from datafactor.demo.pilots import (
    ASSETS,
    ASSETS_BY_KEY,
    DATASETS,
    DATASETS_BY_KEY,
    REGISTRAR,
    REGISTRATIONS,
    REGISTRATIONS_BY_KEY,
    DemoAsset,
    DemoDataset,
    DemoRegistration,
)
from datafactor.demo.province import PARTIES, PARTIES_BY_KEY
from datafactor.identity import (
    PartyApplication,
    PartyKind,
    ServiceRole,
    create_user_as_operator,
    ensure_user_password,
    find_party_id,
    list_users,
    register_party,
)
from datafactor.permissions import Permission, Principal, Role, effective_permissions
from datafactor.settings import Settings

DEFAULT_PASSWORD = "DataFactor-2026"


#: What each demo login does beyond its roles (``demo users``).
DUTIES: dict[str, str] = {
    REGISTRAR: "registrar (登记审核员): reviews registrations, closes notices, decides objections;"
    " decides exchange listings",
    "exchange.admin": "registration authority administrator: force-transitions, calendar",
    "lawfirm.staff": "compliance assessor (合规评估): assesses and signs exchange listings",
    "broker.admin": "data broker (数据经纪): co-signs agreement trades, e.g. the Vietnamese one",
}


@dataclass
class LoadReport:
    parties_created: int = 0
    users_created: int = 0
    passwords_changed: int = 0
    datasets_created: int = 0
    scans_run: int = 0
    assets_created: int = 0
    applications_submitted: int = 0
    steps_taken: int = 0
    objections_lodged: int = 0
    exchange_steps: int = 0
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.parties_created
            or self.users_created
            or self.passwords_changed
            or self.datasets_created
            or self.scans_run
            or self.assets_created
            or self.applications_submitted
            or self.steps_taken
            or self.objections_lodged
            or self.exchange_steps
        )


def load_demo(
    db: Database,
    password: str = DEFAULT_PASSWORD,
    today: date | None = None,
    settings: Settings | None = None,
) -> LoadReport:
    """Create every demo party and user that is missing; set every demo password to ``password``;
    with ``settings``, load the registry pilots as well (``load_pilots``)."""
    report = LoadReport()
    today = today or date(2026, 1, 1)
    for demo in PARTIES:
        with db.write() as session:
            party_id = find_party_id(session, demo.code_type, demo.country, demo.code)
            if party_id is None:
                party = register_party(
                    session,
                    None,
                    PartyApplication(
                        kind=PartyKind(demo.kind),
                        name=demo.name_zh,
                        name_en=demo.name_en,
                        code=demo.code,
                        country=demo.country,
                        service_role=ServiceRole(demo.service_role) if demo.service_role else None,
                    ),
                    today=today,
                )
                party_id = party.id
                report.parties_created += 1
            for user in demo.users:
                changed = ensure_user_password(session, user.username, password)
                if changed is None:
                    create_user_as_operator(
                        session,
                        party_id,
                        username=user.username,
                        display_name=user.display_name,
                        password=password,
                        roles=list(user.roles),
                    )
                    report.users_created += 1
                elif changed:
                    report.passwords_changed += 1
    from datafactor.demo.settlement import fund_demo_buyers  # the demo buyers' money

    fund_demo_buyers(db)
    if settings is not None:
        load_pilots(db, settings, report)
        from datafactor.demo.grants import load_grants  # after the pilots: grants need rights

        load_grants(db, settings, demo_principals(db))
        from datafactor.demo.trusts import load_trusts  # the grid's electricity data trust

        load_trusts(db, settings)
        from datafactor.demo.operation import load_operation  # public data operation pilots

        load_operation(db, settings, demo_principals(db))
        from datafactor.demo.exchange import load_exchange  # the trades: after every product

        report.exchange_steps += len(load_exchange(db, settings).steps)
        from datafactor.demo.sandbox import load_sandbox  # the bank's sandbox grants made usable

        load_sandbox(db, settings, demo_principals(db))
    return report


def demo_users() -> list[dict[str, object]]:
    """Each demo login: username, party, party kind and roles (for ``demo users --json``)."""
    return [
        {
            "username": user.username,
            "display_name": user.display_name,
            "party": demo.name_zh,
            "party_en": demo.name_en,
            "party_key": demo.key,
            "party_kind": demo.kind,
            "roles": list(user.roles),
            "duty": DUTIES.get(user.username, ""),
        }
        for demo in PARTIES
        for user in demo.users
    ]


# ------------------------------------------------------------------------- the registry pilots


def demo_principals(db: Database) -> dict[str, Principal]:
    """Every demo user as the principal a login would give them (the demo parties are verified).

    The loader is the operator's tool: it looks users up with the one permission that needs, as
    the census command line does for its department, and then acts as each user.
    """
    lookup = Principal(
        user_id="",
        username="demo-loader",
        party_id="",
        party_kind="exchange_operator",
        roles=frozenset(),
        permissions=frozenset({Permission.IDENTITY_USER_READ_ALL}),
        via="cli",
    )
    out: dict[str, Principal] = {}
    with db.read() as session:
        for demo in PARTIES:
            party_id = find_party_id(session, demo.code_type, demo.country, demo.code)
            if party_id is None:
                continue
            users, _ = list_users(session, lookup, party_id=party_id, limit=100, offset=0)
            for user in users:
                roles = frozenset(Role(r) for r in user.roles)
                out[user.username] = Principal(
                    user_id=user.id,
                    username=user.username,
                    party_id=party_id,
                    party_kind=demo.kind,
                    roles=roles,
                    permissions=effective_permissions(demo.kind, True, roles),
                    via="cli",
                )
    return out


def _find_dataset(session: Any, who: Principal, name: str) -> Any | None:
    rows, _ = dataplane.list_datasets(
        session, who, dataplane.DatasetQuery(q=name), limit=100, offset=0
    )
    return next((d for d in rows if d.name == name and d.party_id == who.party_id), None)


def _load_dataset(
    db: Database, store: Any, who: Principal, demo: DemoDataset, report: LoadReport
) -> str:
    """The data set's version id; the data set, its generated version and its scan request are
    created together when missing."""
    with db.read() as session:
        found = _find_dataset(session, who, demo.name)
        if found is not None:
            versions, _ = dataplane.list_versions(session, who, found.id, limit=1, offset=0)
            if versions:
                return str(versions[0].id)
    content = demo.content()
    blob = store.put_stream(io.BytesIO(content), max_bytes=len(content) + 1)
    with db.write() as session:
        dataset = _find_dataset(session, who, demo.name) or dataplane.create_dataset(
            session,
            who,
            dataplane.DatasetDraft(
                name=demo.name,
                name_en=demo.name_en,
                description=demo.description,
                domain=demo.domain,
                update_frequency=demo.update_frequency,
            ),
        )
        version = dataplane.add_file_version(
            session, who, dataset.id, blob=blob, filename=demo.filename
        )
        if demo.scan:
            discovery.request_scan(session, who, version.id, "sample")
            report.scans_run += 1
        report.datasets_created += 1
        return str(version.id)


def _asset_draft(demo: DemoAsset, version_id: str, lineage: tuple[str, ...]) -> Any:
    data = DATASETS_BY_KEY[demo.dataset]
    return registry.AssetDraft(
        kind=registry.AssetKind(demo.kind),
        name=demo.name,
        data_class=registry.DataClass(demo.data_class),
        name_en=demo.name_en,
        description=demo.description,
        domain=data.domain,
        source_statement=demo.source_statement,
        collection_method=demo.collection_method,
        update_frequency=data.update_frequency,
        coverage=demo.coverage,
        region=demo.region,
        volume=f"{data.row_count()} 行",
        delivery_mode=demo.delivery_mode,
        field_schema=tuple({"name": column} for column in data.header),
        sample=demo.sample,
        version_id=version_id,
        lineage=lineage,
    )


def _load_asset(
    db: Database,
    who: Principal,
    demo: DemoAsset,
    version_id: str,
    asset_ids: dict[str, str],
    report: LoadReport,
    *,
    create: bool = True,
) -> tuple[str, str | None] | None:
    """The asset's id and fingerprint, declaring it when missing (unless ``create`` is False)."""
    with db.write() as session:
        rows, _ = registry.list_assets(session, who, limit=500, offset=0)
        found = next((a for a in rows if a.name == demo.name and a.party_id == who.party_id), None)
        if found is None and not create:
            return None
        if found is None:
            lineage = tuple(asset_ids[key] for key in demo.lineage)
            found = registry.create_asset(session, who, _asset_draft(demo, version_id, lineage))
            report.assets_created += 1
        return str(found.id), found.fingerprint


def _find_application(
    session: Any, registrar: Principal, applicant: Principal, asset_id: str, plan: DemoRegistration
) -> Any | None:
    counterparty = None
    if plan.counterparty:
        counterparty = find_party_id(
            session,
            PARTIES_BY_KEY[plan.counterparty].code_type,
            PARTIES_BY_KEY[plan.counterparty].country,
            PARTIES_BY_KEY[plan.counterparty].code,
        )
    rows, _ = registry.list_applications(
        session,
        registrar,
        registry.ApplicationQuery(applicant_id=applicant.party_id),
        limit=500,
        offset=0,
    )
    # The pilot's own application is the first one: the demos loaded after the pilots (public
    # data operation) may file another licence of the same asset to the same party.
    matching = [
        r
        for r in rows
        if r.asset_id == asset_id
        and r.type == plan.type
        and (r.facts or {}).get("counterparty_id") == counterparty
    ]
    return min(matching, key=lambda r: (r.submitted_on, r.created_at), default=None)


def _application_draft(
    session: Any,
    plan: DemoRegistration,
    asset_id: str,
    fingerprint: str | None,
    right_id: str | None,
) -> Any:
    counterparty = None
    if plan.counterparty:
        party = PARTIES_BY_KEY[plan.counterparty]
        counterparty = find_party_id(session, party.code_type, party.country, party.code)
    with_term = plan.type in ("initial", "licence")
    return registry.ApplicationDraft(
        type=registry.RegistrationType(plan.type),
        asset_id=asset_id,
        right_id=right_id,
        counterparty_id=counterparty,
        scope=plan.scope if with_term else None,
        term_start=plan.submitted_on if with_term else None,
        term_end=plan.term_end,
        fingerprint=fingerprint if plan.type == "initial" else None,
    )


class DemoLoadError(RuntimeError):
    """The demo data no longer goes through the registry's rules (a rule or the data changed)."""


def _next_working_day(day: date) -> date:
    return registry.add_working_days(day, 1)


@dataclass(frozen=True)
class _Step:
    """The next thing that happens to a demo registration, and on which day."""

    on: date
    kind: str  # "submit" | "act" | "lodge"
    action: Any = None


# How far along the path to a certificate each state is (objection: during the notice).
_PROGRESS = {
    "submitted": 0,
    "formal_review": 1,
    "substantive_review": 2,
    "public_notice": 3,
    "objection": 4,
    "certified": 5,
}


def _next_step(
    db: Database,
    registrar: Principal,
    plan: DemoRegistration,
    application_id: str | None,
    *,
    ours: bool,
) -> _Step | None:
    """Where a registration goes next on its way to ``plan.target``: the registrar acts on the
    working day after a state began and closes a notice the working day after its last day; an
    objection is lodged during the notice. None: the plan's target is reached — or, for an
    application this load did not submit (``ours`` False), someone has taken it elsewhere in
    the console since (it is left as they left it)."""
    if application_id is None:
        return _Step(plan.submitted_on, "submit")
    with db.read() as session:
        row = registry.get_application(session, registrar, application_id)
        state, since = row.state, row.state_since
        starts, ends, decision = row.notice_starts, row.notice_ends, row.decision
        objected = bool(plan.objection) and bool(
            registry.list_objections(session, registrar, application_id)
        )
    progress = _PROGRESS.get(state)
    if progress is None or progress >= _PROGRESS[plan.target]:
        if progress is None and ours:
            raise DemoLoadError(
                f"demo registration {plan.key} stopped in {state}: {decision}; "
                "fix src/datafactor/demo/pilots.py"
            )
        return None
    if state == "substantive_review":
        has_notice = plan.type != "pledge"
        action = registry.Action.APPROVE_TO_NOTICE if has_notice else registry.Action.APPROVE
        return _Step(_next_working_day(since), "act", action)
    if state == "public_notice" and plan.objection is not None and starts is not None:
        if objected:
            return None  # lodged before, and since dismissed by the registrar: left as it is
        return _Step(registry.add_working_days(starts, plan.objection.lodged_after), "lodge")
    if state == "public_notice" and ends is not None:
        return _Step(_next_working_day(ends), "act", registry.Action.CLOSE_NOTICE)
    raise DemoLoadError(
        f"demo registration {plan.key} stopped in {state} (target {plan.target}): {decision}; "
        "fix src/datafactor/demo/pilots.py"
    )


def _right_of(db: Database, registrar: Principal, application_id: str | None) -> str | None:
    if application_id is None:
        return None
    with db.read() as session:
        found = registry.get_application(session, registrar, application_id).result_right_id
        return None if found is None else str(found)


def load_pilots(db: Database, settings: Settings, report: LoadReport | None = None) -> LoadReport:
    """The registry pilots of ``demo.pilots``: data sets with generated versions and their
    discovery scans, registry assets with lineage, and the registrations taken as far as each
    plan says — certificates signed and appended to the ledger by the services themselves.

    The registrations advance in date order across all plans (the earliest next step first), so
    certificate serials follow issue dates as they would in a real registry.
    """
    report = report if report is not None else LoadReport()
    people = demo_principals(db)
    store = dataplane.blob_store(settings)
    versions: dict[str, str] = {}
    for data in DATASETS:
        versions[data.key] = _load_dataset(db, store, people[data.user], data, report)
    if report.scans_run:
        discovery.run_pending(db, settings, store)
    asset_ids: dict[str, str] = {}
    fingerprints: dict[str, str | None] = {}

    def asset(key: str, *, create: bool) -> None:
        demo = ASSETS_BY_KEY[key]
        found = _load_asset(
            db,
            people[DATASETS_BY_KEY[demo.dataset].user],
            demo,
            versions[demo.dataset],
            asset_ids,
            report,
            create=create,
        )
        if found is not None:
            asset_ids[key], fingerprints[key] = found

    # A product is declared once its maker holds a registered right on every source (the
    # registry refuses lineage to data the declarer cannot build on): just before its
    # registration is submitted. Resources are declared up front.
    for demo in ASSETS:
        asset(demo.key, create=not demo.lineage)

    issuer = registry.issuer_for(settings)
    registrar = people[REGISTRAR]
    applications: dict[str, str | None] = {}
    with db.read() as session:
        for plan in REGISTRATIONS:
            found = None
            if plan.asset in asset_ids:
                found = _find_application(
                    session, registrar, people[plan.user], asset_ids[plan.asset], plan
                )
            applications[plan.key] = None if found is None else str(found.id)
    order = {plan.key: n for n, plan in enumerate(REGISTRATIONS)}
    # A plan's next step depends only on its own application: recomputed after each step of it.
    ours: set[str] = set()
    steps = {
        plan.key: _next_step(db, registrar, plan, applications[plan.key], ours=False)
        for plan in REGISTRATIONS
    }
    while due := {k: s for k, s in steps.items() if s is not None}:
        key = min(due, key=lambda k: (due[k].on, order[k]))
        plan, step = REGISTRATIONS_BY_KEY[key], due[key]
        application_id = applications[plan.key]
        if step.kind == "submit":
            if plan.asset not in asset_ids:
                asset(plan.asset, create=True)
            right_id = None
            if plan.right_of is not None:
                right_id = _right_of(db, registrar, applications[plan.right_of])
                if right_id is None:
                    raise DemoLoadError(
                        f"demo registration {plan.key} needs {plan.right_of} certified first"
                    )
            with db.write() as session:
                draft = _application_draft(
                    session, plan, asset_ids[plan.asset], fingerprints[plan.asset], right_id
                )
                row = registry.submit_application(
                    session, people[plan.user], draft, issuer=issuer, today=step.on
                )
                applications[plan.key] = str(row.id)
            ours.add(plan.key)
            report.applications_submitted += 1
        elif step.kind == "lodge":
            objection = plan.objection
            assert objection is not None
            assert application_id is not None
            with db.write() as session:
                registry.lodge(
                    session,
                    people[objection.user],
                    application_id,
                    registry.ObjectionDraft(
                        objection.grounds, objection.statement, objection.evidence
                    ),
                    today=step.on,
                )
            report.objections_lodged += 1
        else:
            assert application_id is not None
            with db.write() as session:
                registry.act(
                    session, registrar, application_id, step.action, issuer=issuer, today=step.on
                )
            report.steps_taken += 1
        steps[key] = _next_step(db, registrar, plan, applications[key], ours=key in ours)
    return report
