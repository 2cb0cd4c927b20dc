"""Authorisation test helpers: a registered asset with its holding right, policies built with
the form editor, grant drafts, and the licence of an approved grant driven to certification.

On the registry's fixed clock (``registry_support.TODAY``, a working Monday). The holding right
registered here has the registry helpers' ``SCOPE``: purposes industry and research, region
450000 (Guangxi), delivery by API or sandbox, every field.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from registry_support import SCOPE, TODAY, drive_to_certified, initial, new_asset, scanned_version

from datafactor.db import Database
from datafactor.permissions import Principal
from datafactor.policy.editor import EditorValues, build_document
from datafactor.policy.grants import GrantDraft, GrantState, get_grant
from datafactor.registry import Action, DataClass
from datafactor.registry import services as registry
from datafactor.settings import Settings

# A grant's term: from the day the test data is registered at the latest (a standard
# registration is certified a week after ``TODAY``, public data's fast track three weeks after) —
# a new grant never starts in the past (GRT-NO-BACKDATE) — to the next spring.
START = TODAY + timedelta(days=21)
TERM_END = date(2027, 3, 1)


def registered_asset(
    db: Database,
    settings: Settings,
    holder: Principal,
    registrar: Principal,
    issuer: registry.Issuer,
    *,
    data_class: DataClass = DataClass.ENTERPRISE,
    scope: dict[str, Any] | None = None,
    on: date = TODAY,
) -> tuple[str, str, date]:
    """An asset of ``holder``'s with a certified holding right: (asset id, right id, the day it
    was certified)."""
    asset_id = new_asset(db, holder, scanned_version(db, settings, holder), data_class=data_class)
    draft = initial(db, asset_id, scope=scope or SCOPE)
    if data_class is not DataClass.PUBLIC:
        _, right_id, day = drive_to_certified(db, holder, registrar, draft, issuer, on)
        assert right_id is not None
        return asset_id, right_id, day
    # Public data takes the fast track to a notice of 10 working days.
    with db.write() as s:
        app_id = registry.submit_application(s, holder, draft, issuer=issuer, today=on).id
    day = on + timedelta(days=21)
    with db.write() as s:
        row = registry.act(s, registrar, app_id, Action.CLOSE_NOTICE, issuer=issuer, today=day)
        assert row.state == "certified" and row.result_right_id
        return asset_id, row.result_right_id, day


def policy(
    *,
    purposes: tuple[str, ...] = ("industry",),
    channels: tuple[str, ...] = ("api",),
    regions: tuple[str, ...] = ("CN-GX",),
    max_uses: int | None = None,
    until: date | None = None,
    fields: tuple[str, ...] = (),
    prohibit_download: bool = True,
) -> dict[str, Any]:
    """A policy as the form editor writes it (one permission of ``use``, the chosen limits)."""
    return build_document(
        EditorValues(
            purposes=list(purposes),
            channels=list(channels),
            regions=list(regions),
            term_end=until,
            max_uses=max_uses,
            fields=list(fields),
            prohibit_download=prohibit_download,
        )
    )


def draft(
    asset_id: str, grantee_id: str, document: dict[str, Any] | None = None, **kw: Any
) -> GrantDraft:
    values: dict[str, Any] = {
        "asset_id": asset_id,
        "grantee_id": grantee_id,
        "policy": document if document is not None else policy(),
        "term_start": START,
        "term_end": TERM_END,
        "purpose_note": "产品开发",
    }
    values.update(kw)
    return GrantDraft(**values)


def certify_licence(
    db: Database,
    registrar: Principal,
    reader: Principal,
    grant_id: str,
    issuer: registry.Issuer,
    on: date,
) -> date:
    """Take the licence application of an approved grant through review and its notice to
    certification (the registry's hook then activates the grant); the day it was certified."""
    with db.read() as s:
        application_id = get_grant(s, reader, grant_id).licence_application_id
    assert application_id is not None
    with db.read() as s:
        state = registry.get_application(s, registrar, application_id).state
    if state == "substantive_review":
        with db.write() as s:
            state = registry.act(
                s, registrar, application_id, Action.APPROVE_TO_NOTICE, issuer=issuer, today=on
            ).state
    assert state == "public_notice", state
    day = on + timedelta(days=21)
    with db.write() as s:
        state = registry.act(
            s, registrar, application_id, Action.CLOSE_NOTICE, issuer=issuer, today=day
        ).state
    assert state == "certified", state
    return day


def state_of(db: Database, reader: Principal, grant_id: str) -> GrantState:
    with db.read() as s:
        return GrantState(get_grant(s, reader, grant_id).state)


def isolation_grant(client: Any, owner: Any, *, side: str, state: str = "requested") -> str:
    """For the tenant-isolation registry: a grant in ``state`` (requested, active, suspended) in
    which ``owner`` (an ``Actor``) is the grantee (``side="grantee"``) or the holder granting it
    (``side="grantor"``); the other party is a fresh enterprise. Returns the grant id."""
    from factories import make_actor
    from registry_support import principal

    from datafactor.db import today_cn
    from datafactor.identity import PartyKind
    from datafactor.policy.grants import decide_grant, request_grant, suspend_grant

    db, settings = client.app.state.db, client.app.state.settings
    issuer = registry.issuer_for(settings)
    other = principal(db, make_actor(db))
    registrar = principal(db, make_actor(db, PartyKind.EXCHANGE_OPERATOR))
    me = principal(db, owner)
    holder, grantee = (me, other) if side == "grantor" else (other, me)
    asset_id, _, day = registered_asset(db, settings, holder, registrar, issuer)
    # On the API's clock (today), so the term covers the day the endpoint is called.
    start, end = today_cn(), today_cn() + timedelta(days=365)
    terms = {"term_start": start, "term_end": end}
    with db.write() as s:
        grant_id = request_grant(
            s, grantee, draft(asset_id, grantee.party_id, **terms), today=start
        ).id
    if state in ("active", "suspended"):
        with db.write() as s:
            decide_grant(s, holder, grant_id, approve=True, issuer=issuer, today=start)
        certify_licence(db, registrar, holder, grant_id, issuer, start)
        if state == "suspended":
            with db.write() as s:
                suspend_grant(s, holder, grant_id, reason="核查", today=start)
    del day
    return grant_id
