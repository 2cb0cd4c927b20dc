"""The shared tenant-isolation registry: every API endpoint that returns or changes one object.

Each entry says how to create an object owned by one party and how to call the endpoint on it.
``tests/test_tenant_isolation.py`` calls every entry with another party's token (must answer 403 or
404) and with the owner's (must succeed, so the check cannot pass vacuously), and fails when an
API route with a path parameter is neither registered here nor listed as public. New domains add
their endpoints to ``ENDPOINTS`` (or ``PUBLIC``, with the reason).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from factories import PASSWORD, Actor, bearer
from fastapi.testclient import TestClient

from datafactor.identity.codes import make_resident_id, make_uscc

Maker = Callable[[TestClient, Actor, dict[str, str]], str]


@dataclass(frozen=True)
class ObjectEndpoint:
    method: str
    path: str  # the route path, with its one path parameter in braces
    make: Maker  # creates the object as the owner; returns the path parameter's value
    body: dict[str, Any] | None = None
    owner_kind: str = "enterprise"  # kind of the owner party (and of the intruder's party)
    ok_status: tuple[int, ...] = (200, 201)
    notes: str = ""
    extra_intruder_kinds: tuple[str, ...] = field(default=())
    # Fixed values of the path's other parameters (e.g. a report's year), by name.
    path_values: dict[str, str] = field(default_factory=dict)


def _own_party(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    return owner.party_id


def _own_user(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "username": f"{owner.username}.u",
            "display_name": "",
            "password": PASSWORD,
            "roles": ["staff"],
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _own_token(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/v1/tokens", headers=headers, json={"name": "isolation", "expires_in_days": 1}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _own_audit_event(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.get("/api/v1/audit/events?limit=1", headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["items"][0]["seq"])


_counter = iter(range(10**6))


def _pending_application(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    n = next(_counter)
    r = client.post(
        "/api/v1/parties",
        json={
            "kind": "enterprise",
            "name": f"待审企业{n}",
            "code": make_uscc("9", "1", "450100", f"TN{n:06d}"),
            "admin_username": f"iso{n}.admin",
            "admin_password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# ------------------------------------------------------------------- data sets and discovery

# A small table with a resident-ID column: enough for the recognisers to find something to review.
DISCOVERY_CSV = (
    "姓名,身份证号,城市\n"
    + "".join(
        f"测试{i},{make_resident_id('450102', date(1985, 1 + i % 12, 1 + i % 28), i)},南宁\n"
        for i in range(40)
    )
).encode()


def _own_dataset(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/v1/datasets",
        headers=headers,
        json={"name": "隔离测试数据集", "domain": "public_administration"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _uploaded(client: TestClient, owner: Actor, headers: dict[str, str]) -> dict[str, Any]:
    """A data set with one uploaded CSV version; the answer of the upload (version and scan)."""
    dataset_id = _own_dataset(client, owner, headers)
    r = client.post(
        f"/api/v1/datasets/{dataset_id}/versions?filename=people.csv",
        headers={**headers, "Content-Type": "application/octet-stream"},
        content=DISCOVERY_CSV,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _own_version(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    return str(_uploaded(client, owner, headers)["version"]["id"])


def _own_queued_scan(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    return str(_uploaded(client, owner, headers)["scan"]["id"])


def _run_scans(client: TestClient) -> None:
    from datafactor.discovery.api import store_of
    from datafactor.discovery.jobs import run_pending

    app: Any = client.app
    run_pending(app.state.db, app.state.settings, store_of(app))


def _own_finished_scan(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    scan_id = _own_queued_scan(client, owner, headers)
    _run_scans(client)
    return scan_id


def _own_upload(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    dataset_id = _own_dataset(client, owner, headers)
    data = DISCOVERY_CSV + b"# isolation upload\n"
    r = client.post(
        f"/api/v1/datasets/{dataset_id}/uploads",
        headers=headers,
        json={
            "filename": "people.csv",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _own_sent_upload(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    """An upload whose bytes were all sent (so finishing it succeeds)."""
    dataset_id = _own_dataset(client, owner, headers)
    data = DISCOVERY_CSV + b"# sent upload\n"
    r = client.post(
        f"/api/v1/datasets/{dataset_id}/uploads",
        headers=headers,
        json={
            "filename": "people.csv",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    assert r.status_code == 201, r.text
    upload_id = str(r.json()["id"])
    r = client.patch(
        f"/api/v1/uploads/{upload_id}?offset=0",
        headers={**headers, "Content-Type": "application/octet-stream"},
        content=data,
    )
    assert r.status_code == 200, r.text
    return upload_id


def _own_scanned_version(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    version_id = _own_version(client, owner, headers)
    _run_scans(client)
    return version_id


def _queued_deidentification(
    client: TestClient, owner: Actor, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    version_id = _own_scanned_version(client, owner, headers)
    r = client.post(f"/api/v1/versions/{version_id}/deidentifications", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _own_deidentification(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    return str(_queued_deidentification(client, owner, headers, {"profile": "publish"})["id"])


def _own_derived_version(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    job = _queued_deidentification(client, owner, headers, {"profile": "publish"})
    _run_scans(client)
    r = client.get(f"/api/v1/deidentifications/{job['id']}", headers=headers)
    assert r.json()["status"] == "succeeded", r.text
    return str(r.json()["result_version_id"])


def _own_tokenised_version(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    """A version whose resident-ID column is tokenised with the owner as its own trustee."""
    body = {"profile": "share-with-trustee", "trustee": owner.party_id}
    job = _queued_deidentification(client, owner, headers, body)
    _run_scans(client)
    r = client.get(f"/api/v1/deidentifications/{job['id']}", headers=headers)
    assert r.json()["status"] == "succeeded", r.text
    return str(r.json()["result_version_id"])


DEIDENTIFICATION_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "POST",
        "/api/v1/versions/{version_id}/deidentification-plan",
        _own_scanned_version,
        body={"profile": "publish"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/versions/{version_id}/deidentifications",
        _own_scanned_version,
        body={"profile": "publish"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint("GET", "/api/v1/versions/{version_id}/derivation", _own_derived_version),
    ObjectEndpoint("GET", "/api/v1/deidentifications/{job_id}", _own_deidentification),
    ObjectEndpoint(
        "POST",
        "/api/v1/deidentifications/{job_id}/cancel",
        _own_deidentification,
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/deidentifications/{job_id}/force-cancel",
        _own_deidentification,
        body={"reason": "隔离测试"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/versions/{version_id}/detokenise",
        _own_tokenised_version,
        body={"column": "身份证号", "tokens": []},
        ok_status=(422,),
        notes="the owner, its own trustee, gets past the trustee check to the empty-list "
        "refusal; a regulator sees the version but is not the trustee (403)",
        extra_intruder_kinds=("regulator",),
    ),
]


DISCOVERY_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/datasets/{dataset_id}", _own_dataset),
    ObjectEndpoint(
        "PATCH",
        "/api/v1/datasets/{dataset_id}",
        _own_dataset,
        body={"description": "改"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint("GET", "/api/v1/datasets/{dataset_id}/versions", _own_dataset),
    ObjectEndpoint(
        "POST",
        "/api/v1/datasets/{dataset_id}/versions",
        _own_dataset,
        body={"not": "a file"},
        ok_status=(422,),
        notes="the owner gets past the ownership check to the missing ?filename refusal",
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/datasets/{dataset_id}/versions/database",
        _own_dataset,
        body={"url": "sqlite:////etc/passwd", "table": "t"},
        ok_status=(422,),
        notes="the owner gets past the ownership check to the SQLite-file refusal",
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/datasets/{dataset_id}/uploads",
        _own_dataset,
        body={"filename": "a.csv", "size": 4, "sha256": "ab" * 32},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint("GET", "/api/v1/datasets/{dataset_id}/reviews", _own_dataset),
    ObjectEndpoint(
        "POST",
        "/api/v1/datasets/{dataset_id}/reviews",
        _own_dataset,
        body={"column": "身份证号", "entity_type": "cn_resident_id", "decision": "confirmed"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint("GET", "/api/v1/versions/{version_id}", _own_version),
    ObjectEndpoint(
        "POST",
        "/api/v1/versions/{version_id}/scans",
        _own_version,
        body={"mode": "full"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "GET", "/api/v1/uploads/{upload_id}", _own_upload, extra_intruder_kinds=("regulator",)
    ),
    ObjectEndpoint(
        "PATCH",
        "/api/v1/uploads/{upload_id}",
        _own_upload,
        ok_status=(400,),
        notes="the owner gets past the ownership check to the missing ?offset refusal",
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "DELETE",
        "/api/v1/uploads/{upload_id}",
        _own_upload,
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/uploads/{upload_id}/finish",
        _own_sent_upload,
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint("GET", "/api/v1/scans/{scan_id}", _own_queued_scan),
    ObjectEndpoint("GET", "/api/v1/scans/{scan_id}/report", _own_finished_scan),
    ObjectEndpoint(
        "POST",
        "/api/v1/scans/{scan_id}/cancel",
        _own_queued_scan,
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/scans/{scan_id}/force-cancel",
        _own_queued_scan,
        body={"reason": "隔离测试"},
        notes="the owner's admin may force-cancel its own party's scans",
        extra_intruder_kinds=("regulator",),
    ),
]


# ------------------------------------------------------------------------------------ census


def _own_census(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    """A queued census of a small SQLite department database (SQLite allowed for the test)."""
    import sqlite3

    app: Any = client.app
    settings = app.state.settings
    settings.source_allow_sqlite = True
    folder = settings.var_dir / "census-isolation"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dept{next(_counter)}.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE residents (id INTEGER, name TEXT)")
    r = client.post("/api/v1/census", headers=headers, json={"url": f"sqlite:///{path}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _own_cancelled_census(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    run_id = _own_census(client, owner, headers)
    r = client.post(f"/api/v1/census/{run_id}/cancel", headers=headers)
    assert r.status_code == 200, r.text
    return run_id


_DEPARTMENT = "government_department"
CENSUS_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "GET",
        "/api/v1/census/{run_id}",
        _own_census,
        owner_kind=_DEPARTMENT,
        extra_intruder_kinds=(_DEPARTMENT,),
    ),
    ObjectEndpoint(
        "GET",
        "/api/v1/census/{run_id}/tables",
        _own_census,
        owner_kind=_DEPARTMENT,
        extra_intruder_kinds=(_DEPARTMENT,),
    ),
    ObjectEndpoint(
        "GET",
        "/api/v1/census/{run_id}/export.xlsx",
        _own_census,
        owner_kind=_DEPARTMENT,
        extra_intruder_kinds=(_DEPARTMENT,),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/census/{run_id}/cancel",
        _own_census,
        owner_kind=_DEPARTMENT,
        extra_intruder_kinds=(_DEPARTMENT, "regulator"),
        notes="a regulator reads every census but changes none",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/census/{run_id}/resume",
        _own_cancelled_census,
        owner_kind=_DEPARTMENT,
        extra_intruder_kinds=(_DEPARTMENT, "regulator"),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/census/{run_id}/force-cancel",
        _own_census,
        body={"reason": "隔离测试"},
        owner_kind=_DEPARTMENT,
        notes="the department's admin may force-cancel its own census",
        extra_intruder_kinds=(_DEPARTMENT, "regulator"),
    ),
]


# ------------------------------------------------------------------------------------ registry
# The makers build their objects through the registry's services on the app's database, on the
# fixed clock of ``registry_support`` (a notice running on TODAY), as the owner and, where the
# workflow needs one, a registrar of a fresh exchange operator.


def _registry_ctx(client: TestClient) -> tuple[Any, Any]:
    return client.app.state.db, client.app.state.settings  # type: ignore[attr-defined]


def _own_registry_asset(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    import registry_support as rs

    db, settings = _registry_ctx(client)
    who = rs.principal(db, owner)
    return rs.new_asset(db, who, rs.scanned_version(db, settings, who))


def _own_registry_application(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    import registry_support as rs

    from datafactor.registry import services as registry

    db, settings = _registry_ctx(client)
    asset_id = _own_registry_asset(client, owner, headers)
    with db.write() as s:
        row = registry.submit_application(
            s,
            rs.principal(db, owner),
            rs.initial(db, asset_id),
            issuer=registry.issuer_for(settings),
            today=rs.TODAY,
        )
        return str(row.id)


def _registrar(client: TestClient) -> Any:
    import registry_support as rs
    from factories import make_actor

    from datafactor.identity import PartyKind

    db, _ = _registry_ctx(client)
    return rs.principal(db, make_actor(db, PartyKind.EXCHANGE_OPERATOR))


def _noticed_application(client: TestClient, applicant: Actor) -> str:
    import registry_support as rs

    from datafactor.registry import Action
    from datafactor.registry import services as registry

    db, settings = _registry_ctx(client)
    app_id = _own_registry_application(client, applicant, {})
    with db.write() as s:
        registry.act(
            s,
            _registrar(client),
            app_id,
            Action.APPROVE_TO_NOTICE,
            issuer=registry.issuer_for(settings),
            today=rs.TODAY,
        )
    return app_id


def _own_certificate(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    import registry_support as rs

    from datafactor.registry import Action
    from datafactor.registry import services as registry

    db, settings = _registry_ctx(client)
    app_id = _noticed_application(client, owner)
    with db.write() as s:
        registry.act(
            s,
            _registrar(client),
            app_id,
            Action.CLOSE_NOTICE,
            issuer=registry.issuer_for(settings),
            today=rs.LATER,
        )
        return str(s.scalars(text_select_number(app_id)).one())


def text_select_number(application_id: str) -> Any:
    from sqlalchemy import select

    from datafactor.registry.models import RegistryCertificate

    return select(RegistryCertificate.number).where(
        RegistryCertificate.application_id == application_id
    )


def _objection_against_another(client: TestClient, objector: Actor) -> str:
    import registry_support as rs
    from factories import make_actor

    from datafactor.registry import services as registry

    db, _ = _registry_ctx(client)
    app_id = _noticed_application(client, make_actor(db))
    with db.write() as s:
        objection = registry.lodge(
            s,
            rs.principal(db, objector),
            app_id,
            registry.ObjectionDraft(
                ("title_dispute",), "该数据由我方采集，有合同为证", ("合同.pdf",)
            ),
            today=rs.TODAY,
        )
        return str(objection.id)


def _own_objection(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    return _objection_against_another(client, owner)


def _objection_for_registrar(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    from factories import make_actor

    db, _ = _registry_ctx(client)
    return _objection_against_another(client, make_actor(db))


def _calendar_day(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    """A day of the platform's working-day calendar: the registration authority's administrator
    edits it; no other party may."""
    return "2026-10-12"


def _calendar_override(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    import registry_support as rs

    from datafactor.registry import maintenance

    db, _ = _registry_ctx(client)
    with db.write() as s:
        maintenance.set_calendar_day(
            s, rs.principal(db, owner), date(2026, 10, 12), kind="holiday", note="台风停工"
        )
    return "2026-10-12"


def _registered_right(client: TestClient) -> tuple[Any, str, str]:
    """A fresh party's resource with a certified holding right: (holder, asset id, right id)."""
    import registry_support as rs
    from factories import make_actor

    from datafactor.registry import services as registry

    db, settings = _registry_ctx(client)
    holder = rs.principal(db, make_actor(db))
    asset_id = rs.new_asset(db, holder, rs.scanned_version(db, settings, holder))
    _, right_id, _ = rs.drive_to_certified(
        db,
        holder,
        _registrar(client),
        rs.initial(db, asset_id),
        registry.issuer_for(settings),
        rs.TODAY,
    )
    assert right_id is not None
    return holder, asset_id, right_id


def _release_awaiting_pledgee(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    """A holder's pledge release waiting for the consent of its pledgee, ``owner``."""
    import registry_support as rs

    from datafactor.db import today_cn
    from datafactor.registry import RegistrationType
    from datafactor.registry import services as registry

    db, settings = _registry_ctx(client)
    issuer = registry.issuer_for(settings)
    holder, asset_id, right_id = _registered_right(client)
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=asset_id,
        right_id=right_id,
        counterparty_id=owner.party_id,
    )
    rs.drive_to_certified(db, holder, _registrar(client), pledge, issuer, rs.LATER)
    release = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE_RELEASE, asset_id=asset_id, right_id=right_id
    )
    with db.write() as s:
        row = registry.submit_application(s, holder, release, issuer=issuer, today=today_cn())
        return str(row.id)


def _certified_objection(client: TestClient, objector: Any) -> str:
    """An objection registration by ``objector`` against another party's right, certified on
    the API's clock (today), so it is in force when the endpoint is called."""
    import registry_support as rs

    from datafactor.db import today_cn
    from datafactor.registry import RegistrationType
    from datafactor.registry import services as registry

    db, settings = _registry_ctx(client)
    _, asset_id, right_id = _registered_right(client)
    draft = registry.ApplicationDraft(
        type=RegistrationType.OBJECTION,
        asset_id=asset_id,
        right_id=right_id,
        grounds=("title_dispute",),
        statement="该数据由我方采集，有合同为证",
        evidence=("合同.pdf",),
    )
    app_id, _, _ = rs.drive_to_certified(
        db, objector, _registrar(client), draft, registry.issuer_for(settings), today_cn()
    )
    return app_id


def _own_objection_registration(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    import registry_support as rs

    db, _ = _registry_ctx(client)
    return _certified_objection(client, rs.principal(db, owner))


def _objection_registration_for_registrar(
    client: TestClient, owner: Actor, headers: dict[str, str]
) -> str:
    import registry_support as rs
    from factories import make_actor

    db, _ = _registry_ctx(client)
    return _certified_objection(client, rs.principal(db, make_actor(db)))


REGISTRY_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/registry/assets/{asset_id}", _own_registry_asset),
    ObjectEndpoint(
        "PATCH",
        "/api/v1/registry/assets/{asset_id}",
        _own_registry_asset,
        body={"description": "更新说明"},
        extra_intruder_kinds=("regulator",),
        notes="a regulator reads every asset but changes none",
    ),
    ObjectEndpoint(
        "GET", "/api/v1/registry/applications/{application_id}", _own_registry_application
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/registry/applications/{application_id}/actions",
        _own_registry_application,
        body={"action": "withdraw"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "GET",
        "/api/v1/registry/applications/{application_id}/objections",
        _own_registry_application,
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/registry/applications/{application_id}/objections",
        _own_registry_application,
        body={"grounds": ["title_dispute"], "statement": "该数据由我方采集", "evidence": ["x"]},
        ok_status=(422,),
        notes="not on the notice board: other parties get 404; the applicant is refused "
        "(it cannot object to its own application)",
    ),
    ObjectEndpoint("GET", "/api/v1/registry/objections/{objection_id}", _own_objection),
    ObjectEndpoint(
        "POST",
        "/api/v1/registry/applications/{application_id}/consent",
        _release_awaiting_pledgee,
        notes="owner = the pledgee of the right whose release the holder applied for",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/registry/applications/{application_id}/lawsuit",
        _own_objection_registration,
        body={"reference": "(2026)桂0103民初88号"},
        notes="owner = the objector of a certified objection registration",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/registry/applications/{application_id}/closure",
        _objection_registration_for_registrar,
        body={"substantiated": False, "reason": "异议人未能举证"},
        owner_kind="exchange_operator",
        extra_intruder_kinds=("regulator",),
        notes="owner = a registrar (exchange operator); a regulator reads but does not close",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/registry/objections/{objection_id}/decision",
        _objection_for_registrar,
        body={"substantiated": False, "reason": "证据不足以证明权属争议"},
        owner_kind="exchange_operator",
        notes="owner = a registrar (exchange operator); intruders = parties that are not",
    ),
    ObjectEndpoint("GET", "/api/v1/registry/certificates/{number}/receipt", _own_certificate),
    ObjectEndpoint(
        "PUT",
        "/api/v1/registry/calendar/{day}",
        _calendar_day,
        body={"kind": "holiday", "note": "台风停工"},
        owner_kind="exchange_operator",
        extra_intruder_kinds=("regulator",),
        notes="the platform's calendar: only the registration authority's admin edits it",
    ),
    ObjectEndpoint(
        "DELETE",
        "/api/v1/registry/calendar/{day}",
        _calendar_override,
        owner_kind="exchange_operator",
        extra_intruder_kinds=("regulator",),
        notes="the platform's calendar: only the registration authority's admin edits it",
    ),
    ObjectEndpoint("GET", "/api/v1/registry/certificates/{number}/pdf", _own_certificate),
]

# ------------------------------------------------------------------------------------- inbox


def _own_notification(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    import registry_support as rs

    from datafactor import inbox

    db, _ = _registry_ctx(client)
    with db.write() as s:
        inbox.notify(
            s, [owner.party_id], kind="test", message="Isolation check {n}", params={"n": "1"}
        )
    who = rs.principal(db, owner)
    with db.read() as s:
        rows, _ = inbox.list_messages(s, who, limit=1, offset=0)
        return rows[0].id


INBOX_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "POST",
        "/api/v1/notifications/{message_id}/read",
        _own_notification,
        extra_intruder_kinds=("regulator", "exchange_operator"),
        notes="a party's inbox is its own: not even a regulator reads or marks it",
    ),
]


def _grant(side: str, state: str = "requested") -> Maker:
    """A grant in which the owner is the grantee or the grantor (grants_support)."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        from grants_support import isolation_grant

        return isolation_grant(client, owner, side=side, state=state)

    return make


def _sandbox(side: str, what: str) -> Maker:
    """A sandbox world (sandbox_support.offer_world) in which the owner is the grantee or the
    holder; returns a query's id (``what="query"``) or the asset's (``"asset"``)."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        import tempfile
        from pathlib import Path

        from factories import make_actor
        from sandbox_support import offer_world

        from datafactor.identity import PartyKind
        from datafactor.sandbox import services

        db, settings = client.app.state.db, client.app.state.settings
        other = make_actor(db)
        registrar = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
        holder, grantee = (owner, other) if side == "holder" else (other, owner)
        world = offer_world(db, settings, Path(tempfile.mkdtemp()), holder, grantee, registrar)
        if what == "asset":
            return world.asset_id
        sql = "SELECT county, COUNT(*) AS n FROM households GROUP BY county"
        answer = services.run_query(db, settings, world.grantee, world.grant_id, sql)
        assert answer.id is not None
        return answer.id

    return make


SANDBOX_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/sandbox/queries/{query_id}", _sandbox("grantee", "query")),
    ObjectEndpoint(
        "POST",
        "/api/v1/sandbox/queries/{query_id}/review",
        _sandbox("holder", "query"),
        body={"release": True},
        ok_status=(409,),
        notes="owner = the data holder; its query was released at once (no review duty), so "
        "the owner is answered 409 (not held) and an intruder 404",
    ),
    ObjectEndpoint("GET", "/api/v1/sandbox/profiles/{asset_id}", _sandbox("holder", "asset")),
    ObjectEndpoint(
        "PUT",
        "/api/v1/sandbox/profiles/{asset_id}",
        _sandbox("holder", "asset"),
        body={"table": "households", "columns": [{"name": "account", "role": "privacy_unit"}]},
        notes="owner = the holder; a registered asset is public, so an intruder is refused 403",
    ),
]


_USE = {"request": {"action": "read", "purpose": "industry"}, "dry_run": True}
GRANTS_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/grants/{grant_id}", _grant("grantee")),
    ObjectEndpoint("POST", "/api/v1/grants/{grant_id}/withdrawal", _grant("grantee")),
    ObjectEndpoint("POST", "/api/v1/grants/{grant_id}/uses", _grant("grantee"), body=_USE),
    ObjectEndpoint(
        "POST",
        "/api/v1/grants/{grant_id}/decision",
        _grant("grantor"),
        body={"approve": False, "reason": "不予授权"},
        extra_intruder_kinds=("regulator", "exchange_operator"),
        notes="supervisors read every grant; a regulator may revoke one, but none decides",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/grants/{grant_id}/suspension",
        _grant("grantor", "active"),
        body={"reason": "核查"},
        extra_intruder_kinds=("regulator", "exchange_operator"),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/grants/{grant_id}/resumption",
        _grant("grantor", "suspended"),
        body={"reason": "核查完毕"},
        extra_intruder_kinds=("regulator", "exchange_operator"),
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/grants/{grant_id}/revocation",
        _grant("grantor"),
        body={"reason": "终止"},
        extra_intruder_kinds=("exchange_operator",),
        notes="the grantor or a regulator revokes; the exchange reads every grant but does not",
    ),
]

# ------------------------------------------------------------------------------ data trusts


def _deed(kind: str) -> Maker:
    """A deed whose settlor or trustee is the owner (trusts_support)."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        import trusts_support

        return str(getattr(trusts_support, kind)(client, owner, headers))

    return make


_DEED = "/api/v1/trusts/deeds/{deed_id}"
_REFUSED_BY_RULE = "a static body the rules refuse for the owner (422); others get 404"
TRUSTS_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", _DEED, _deed("settlors_draft")),
    ObjectEndpoint(
        "PUT",
        _DEED,
        _deed("settlors_draft"),
        body={
            "title": "改写",
            "purpose": "改写",
            "trustee_id": "no-such-party",
            "asset_ids": ["no-such-asset"],
            "scope": {},
            "term_start": "2026-04-01",
            "term_end": "2028-12-31",
            "trustee_fee_bp": 500,
            "beneficiaries": [{"party_id": "no-such-party", "share_bp": 10000}],
        },
        ok_status=(422,),
        extra_intruder_kinds=("regulator",),
        notes=_REFUSED_BY_RULE,
    ),
    ObjectEndpoint(
        "POST", f"{_DEED}/sign", _deed("settlors_draft"), extra_intruder_kinds=("regulator",)
    ),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/withdraw",
        _deed("settlors_draft"),
        body={"reason": "撤回"},
        extra_intruder_kinds=("regulator",),
    ),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/accept",
        _deed("trustees_signed_deed"),
        owner_kind="service_firm",
        extra_intruder_kinds=("regulator",),
        notes="owner = the trustee of a signed deed",
    ),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/decline",
        _deed("trustees_signed_deed"),
        body={"reason": "报酬过低"},
        owner_kind="service_firm",
        extra_intruder_kinds=("regulator",),
        notes="owner = the trustee of a signed deed",
    ),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/amendments",
        _deed("settlors_active_deed"),
        body={"beneficiaries": [{"party_id": "no-such-party", "share_bp": 10000}], "reason": "x"},
        ok_status=(422,),
        extra_intruder_kinds=("regulator",),
        notes=_REFUSED_BY_RULE,
    ),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/termination",
        _deed("settlors_active_deed"),
        body={"reason": "业务调整"},
        notes="the settlor proposes ending early; a regulator would need an order reference",
    ),
    ObjectEndpoint("GET", f"{_DEED}/grants", _deed("settlors_active_deed")),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/grants",
        _deed("trustees_active_deed"),
        body={
            "asset_id": "no-such-asset",
            "grantee_id": "no-such-party",
            "policy": {},
            "term_start": "2026-05-04",
            "term_end": "2026-12-31",
        },
        owner_kind="service_firm",
        ok_status=(422,),
        extra_intruder_kinds=("regulator",),
        notes=_REFUSED_BY_RULE,
    ),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/decisions",
        _deed("trustees_active_deed"),
        body={"grant_id": "no-such-grant", "approve": False, "reason": "不予授权"},
        owner_kind="service_firm",
        ok_status=(422,),
        extra_intruder_kinds=("regulator",),
        notes=_REFUSED_BY_RULE,
    ),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/misuse",
        _deed("trustees_active_deed"),
        body={"grant_id": "no-such-grant", "description": "转售"},
        owner_kind="service_firm",
        ok_status=(422,),
        extra_intruder_kinds=("regulator",),
        notes=_REFUSED_BY_RULE,
    ),
    ObjectEndpoint("GET", f"{_DEED}/income", _deed("settlors_active_deed")),
    ObjectEndpoint(
        "POST",
        f"{_DEED}/income",
        _deed("trustees_active_deed"),
        body={
            "amount_fen": 10000,
            "received_on": "2026-05-04",
            "source": "other",
            "description": "数据服务收入",
        },
        owner_kind="service_firm",
        extra_intruder_kinds=("regulator",),
        notes="owner = the trustee of a deed in effect",
    ),
    ObjectEndpoint("GET", f"{_DEED}/distributions", _deed("settlors_active_deed")),
]

# --------------------------------------------------------------- public data operation


def _operation(name: str) -> Maker:
    """An object of public data operation owned by the owner (operation_support)."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        import operation_support

        return str(getattr(operation_support, name)(client, owner, headers))

    return make


_BODY = "government_department"
_PDO = "public_data_operator"
_AGREEMENT = "/api/v1/operation/agreements/{agreement_id}"
_REPORT = "/api/v1/operation/reports/{operator_id}/{year}"
OPERATION_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "GET",
        _AGREEMENT,
        _operation("isolation_agreement"),
        owner_kind=_BODY,
        extra_intruder_kinds=(_BODY, _PDO),
        notes="the body, its operator and supervisors read it",
    ),
    *(
        ObjectEndpoint(
            "POST",
            f"{_AGREEMENT}/{action}",
            _operation(maker),
            body={"reason": "隔离测试"},
            owner_kind=_BODY,
            extra_intruder_kinds=(_BODY, _PDO, "regulator", "bigdata_bureau"),
            notes="only the implementing body that signed it changes it",
        )
        for action, maker in (
            ("suspend", "isolation_agreement"),
            ("resume", "isolation_suspended_agreement"),
            ("terminate", "isolation_agreement"),
        )
    ),
    ObjectEndpoint(
        "GET",
        "/api/v1/operation/uses/{use_id}",
        _operation("isolation_use"),
        owner_kind=_PDO,
        extra_intruder_kinds=(_BODY, _PDO),
        notes="owner = the operator; its body and user read it too",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/operation/uses/{use_id}/decision",
        _operation("isolation_requested_use"),
        body={"approve": False, "reason": "隔离测试"},
        owner_kind=_PDO,
        extra_intruder_kinds=(_BODY, _PDO, "regulator"),
        notes="only the agreement's operator decides",
    ),
    *(
        ObjectEndpoint(
            "GET",
            path,
            _operation("isolation_operator"),
            owner_kind=_PDO,
            extra_intruder_kinds=(_BODY, _PDO),
            path_values={"year": "2026"},
            notes="the operator, the bodies it operates for, and supervisors read its report",
        )
        for path in (_REPORT, f"{_REPORT}/report.csv")
    ),
]

# ------------------------------------------------------------------------------- settlement


def _own_money_account(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.get("/api/v1/settlement/accounts", headers=headers)
    assert r.status_code == 200, r.text
    return next(str(a["id"]) for a in r.json()["items"] if a["kind"] == "available")


def _own_money_journal(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/v1/settlement/deposits",
        headers={**headers, "Idempotency-Key": f"isolation-{owner.party_id}"},
        json={"amount_fen": 100},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


SETTLEMENT_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/settlement/accounts/{account_id}", _own_money_account),
    ObjectEndpoint("GET", "/api/v1/settlement/accounts/{account_id}/statement", _own_money_account),
    ObjectEndpoint("GET", "/api/v1/settlement/journals/{journal_id}", _own_money_journal),
]

# ------------------------------------------------------------------ settlement of contracts


def _own_settled_contract(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    """A settled contract whose seller is the owner (exchange_settle_support)."""
    import exchange_settle_support

    app = client.app
    return exchange_settle_support.settled_contract_for(
        app.state.db,  # type: ignore[attr-defined]
        app.state.settings,  # type: ignore[attr-defined]
        owner,
    )


def _trustees_funded_income(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    """Income of a deed in effect whose trustee is the owner, with the income deposited."""
    import trusts_support

    from datafactor.db import today_cn
    from datafactor.policy.trusts import services as trusts
    from datafactor.policy.trusts.domain import IncomeSource
    from datafactor.settlement import services as money

    deed_id = trusts_support.trustees_active_deed(client, owner, headers)
    db = client.app.state.db  # type: ignore[attr-defined]
    trustee = trusts_support.rs.principal(db, owner)
    today = today_cn()
    with db.write() as s:
        income_id = trusts.record_income(
            s,
            trustee,
            deed_id,
            trusts.IncomeDraft(10_000, today, IncomeSource.OTHER, description="数据服务收入"),
            today=today,
        ).id
        money.deposit_funds(s, owner.party_id, 10_000, key=f"iso-{income_id}", actor="test")
    return str(income_id)


EXCHANGE_SETTLE_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "GET",
        "/api/v1/exchange/settlements/{contract_id}",
        _own_settled_contract,
        extra_intruder_kinds=("service_firm",),
        notes="owner = the seller; its buyer, broker, the operator and regulators read it too",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/trusts/income/{income_id}/payment",
        _trustees_funded_income,
        owner_kind="service_firm",
        extra_intruder_kinds=("regulator",),
        notes="owner = the trustee of a deed in effect, the income received in its funds",
    ),
]

# ------------------------------------------------------------------------------ contracts


def _contract_at(stage: str, *, as_buyer: bool = True) -> Maker:
    """A contract whose buyer is the owner (or, ``as_buyer=False``, between other parties, for
    the exchange's own acts), at ``stage`` (contracts_support)."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        import contracts_support

        app = client.app
        return contracts_support.contract_for(
            app.state.db,  # type: ignore[attr-defined]
            app.state.settings,  # type: ignore[attr-defined]
            owner,
            stage=stage,
            as_buyer=as_buyer,
        )

    return make


_READ_ALL = "owner = the buyer; its seller, broker, the exchange and regulators read it too"
CONTRACT_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "GET",
        "/api/v1/contracts/{contract_id}",
        _contract_at("accepted"),
        extra_intruder_kinds=("service_firm",),
        notes=_READ_ALL,
    ),
    ObjectEndpoint(
        "GET",
        "/api/v1/contracts/{contract_id}.pdf",
        _contract_at("accepted"),
        extra_intruder_kinds=("service_firm",),
        notes=_READ_ALL,
    ),
    ObjectEndpoint(
        "GET",
        "/api/v1/contracts/{contract_id}/pdf",
        _contract_at("accepted"),
        extra_intruder_kinds=("service_firm",),
        notes=_READ_ALL,
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/contracts/{contract_id}/sign",
        _contract_at("accepted"),
        body={"confirm": True},
        extra_intruder_kinds=("service_firm", "regulator", "exchange_operator"),
        notes="only the contract's parties sign; the exchange and regulators read, never sign",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/contracts/{contract_id}/terminate",
        _contract_at("accepted"),
        body={"reason": "隔离测试"},
        extra_intruder_kinds=("service_firm", "regulator"),
        notes="a party before signing; the exchange's administrator may force it (so it is "
        "not an intruder here)",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/contracts/{contract_id}/confirm",
        _contract_at("delivered"),
        extra_intruder_kinds=("service_firm", "regulator", "exchange_operator"),
        notes="only the buyer accepts a delivery",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/contracts/{contract_id}/dispute",
        _contract_at("active"),
        body={"grounds": "隔离测试"},
        extra_intruder_kinds=("service_firm", "regulator", "exchange_operator"),
        notes="only the buyer or the seller raises a dispute",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/contracts/{contract_id}/resolve",
        _contract_at("disputed", as_buyer=False),
        body={"outcome": "buyer", "reason": "隔离测试"},
        owner_kind="exchange_operator",
        extra_intruder_kinds=("service_firm", "regulator"),
        notes="owner = the exchange's administrator (decides every dispute); intruders = "
        "parties that are not the exchange",
    ),
]

# ------------------------------------------------------------------------- exchange listings


def _listing(state: str = "draft", *, own: bool = True) -> Maker:
    """A listing of a certified product: the owner's (its seller), or (``own=False``) another
    seller's, for the exchange operator's and the assessors' acts (listing_support)."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        import listing_support

        app = client.app
        return listing_support.listing_for(
            app.state.db,  # type: ignore[attr-defined]
            app.state.settings,  # type: ignore[attr-defined]
            owner if own else None,
            state=state,
        )

    return make


_DRAFT = "owner = the seller; a draft is its own (and its broker's and the exchange's)"
LISTING_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/listings/{listing_id}", _listing(), notes=_DRAFT),
    ObjectEndpoint(
        "PATCH", "/api/v1/listings/{listing_id}", _listing(), body={"title": "改名"}, notes=_DRAFT
    ),
    ObjectEndpoint("GET", "/api/v1/listings/{listing_id}/events", _listing(), notes=_DRAFT),
    ObjectEndpoint("GET", "/api/v1/listings/{listing_id}/reviews", _listing(), notes=_DRAFT),
    ObjectEndpoint(
        "POST", "/api/v1/listings/{listing_id}/checks", _listing(), body={}, notes=_DRAFT
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/listings/{listing_id}/submit",
        _listing(),
        body={"confirm": True},
        extra_intruder_kinds=("exchange_operator", "service_firm"),
        notes="only the seller's administrator signs the declaration and submits",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/listings/{listing_id}/withdraw",
        _listing(),
        body={"action": "withdraw", "reason": "隔离测试"},
        extra_intruder_kinds=("exchange_operator", "service_firm"),
        notes="only the seller withdraws or delists its listing",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/listings/{listing_id}/assess",
        _listing("submitted"),
        body={"checklist": [], "opinion": "隔离测试", "confirm": True},
        ok_status=(403,),
        extra_intruder_kinds=("exchange_operator", "service_firm"),
        notes="only a compliance assessor (a service firm with that role) assesses; the seller "
        "itself is refused too (a service firm made here is a broker)",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/listings/{listing_id}/decision",
        _listing("submitted", own=False),
        body={"action": "return", "reason": "隔离测试"},
        owner_kind="exchange_operator",
        extra_intruder_kinds=("service_firm", "regulator"),
        notes="owner = the exchange operator (decides every listing); intruders = parties that "
        "are not the exchange",
    ),
]


# ------------------------------------------------------------------------------ mall orders


def _order(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    from orders_support import isolation_order

    return isolation_order(client, owner, headers)


_BUYERS = "owner = the buyer (its seller reads it too; a stranger is not told it exists)"
ORDER_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "GET",
        "/api/v1/orders/{order_id}",
        _order,
        extra_intruder_kinds=("service_firm",),
        notes=_BUYERS,
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/orders/{order_id}/cancel",
        _order,
        body={"reason": "隔离测试"},
        extra_intruder_kinds=("service_firm",),
        notes="only the buyer cancels, before the contract is signed",
    ),
]

# -------------------------------------------------------- agreement trades and auctions


def _trade(name: str) -> Maker:
    """An agreement trade or auction owned by the owner (auctions_support)."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        import auctions_support

        return str(getattr(auctions_support, name)(client, owner, headers))

    return make


_NEGOTIATION = "/api/v1/negotiations/{negotiation_id}"
_AUCTION = "/api/v1/auctions/{auction_id}"
_NEGOTIATORS = "owner = the buyer, answered by the seller (seller and broker see it; others do not)"
AUCTION_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint(
        "GET",
        _NEGOTIATION,
        _trade("isolation_negotiation"),
        extra_intruder_kinds=("service_firm",),
        notes=_NEGOTIATORS,
    ),
    ObjectEndpoint(
        "POST",
        f"{_NEGOTIATION}/offers",
        _trade("isolation_negotiation"),
        body={"price_fen": 850},
        extra_intruder_kinds=("service_firm",),
        notes=_NEGOTIATORS,
    ),
    ObjectEndpoint(
        "POST",
        f"{_NEGOTIATION}/accept",
        _trade("isolation_negotiation"),
        body={"seq": 2},
        extra_intruder_kinds=("service_firm",),
        notes=_NEGOTIATORS + "; the funded buyer accepts the seller's counter-offer",
    ),
    ObjectEndpoint(
        "POST",
        f"{_NEGOTIATION}/withdraw",
        _trade("isolation_negotiation"),
        body={"reason": "隔离测试"},
        extra_intruder_kinds=("service_firm",),
        notes=_NEGOTIATORS,
    ),
    ObjectEndpoint(
        "GET",
        _AUCTION,
        _trade("isolation_auction"),
        extra_intruder_kinds=("service_firm",),
        notes="an auction of a listing whose audience is the owner alone: others are not told "
        "it exists (an auction of a public listing is public, like the listing)",
    ),
    ObjectEndpoint(
        "POST",
        f"{_AUCTION}/bids",
        _trade("isolation_auction"),
        body={"amount_fen": 1_000},
        ok_status=(400,),
        extra_intruder_kinds=("service_firm",),
        notes="the invited owner reaches the Idempotency-Key check (400: the registry sends no "
        "header); others get 404 before it",
    ),
    ObjectEndpoint(
        "POST",
        f"{_AUCTION}/close",
        _trade("isolation_ended_auction"),
        notes="owner = the seller, after the deadline; other parties may see a public auction "
        "but not close it (403)",
    ),
    ObjectEndpoint(
        "POST",
        f"{_AUCTION}/cancel",
        _trade("isolation_running_auction"),
        notes="owner = the seller's administrator, before any bid; others 403/404",
    ),
]

# ------------------------------------------------------------------------- exchange delivery


def _delivery(kind: str) -> Maker:
    """A delivery token, a download link or a delivery of a contract the owner bought."""

    def make(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
        import delivery_support

        return str(getattr(delivery_support, kind)(client, owner, headers))

    return make


DELIVERY_ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/deliveries/tokens/{token_id}", _delivery("own_token")),
    ObjectEndpoint("DELETE", "/api/v1/deliveries/tokens/{token_id}", _delivery("own_token")),
    ObjectEndpoint("GET", "/api/v1/deliveries/{delivery_id}", _delivery("own_delivery")),
    ObjectEndpoint(
        "GET",
        "/api/v1/deliveries/download/{token}",
        _delivery("own_download_secret"),
        notes="a buyer's download link followed by another party's user: 404, and the buyer's "
        "log shows the attempt; the buyer's own user gets the file",
    ),
]

ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/parties/{party_id}", _own_party),
    ObjectEndpoint("GET", "/api/v1/users/{user_id}", _own_user),
    ObjectEndpoint("PATCH", "/api/v1/users/{user_id}", _own_user, body={"display_name": "改名"}),
    ObjectEndpoint("GET", "/api/v1/tokens/{token_id}", _own_token),
    ObjectEndpoint("DELETE", "/api/v1/tokens/{token_id}", _own_token),
    ObjectEndpoint("GET", "/api/v1/audit/events/{seq}", _own_audit_event),
    # Reviewing is the exchange operator's act: any other party must be refused.
    ObjectEndpoint(
        "POST",
        "/api/v1/parties/{party_id}/standing",
        _own_party,
        body={"suspend": True, "reason": "核查"},
        owner_kind="enterprise",
        ok_status=(403,),
        notes="only the exchange operator may; the owner itself is refused too",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/parties/{party_id}/review",
        _pending_application,
        body={"approve": True},
        owner_kind="exchange_operator",
        notes="owner = an exchange operator; intruder = an enterprise",
    ),
    *DISCOVERY_ENDPOINTS,
    *DEIDENTIFICATION_ENDPOINTS,
    *CENSUS_ENDPOINTS,
    *REGISTRY_ENDPOINTS,
    *INBOX_ENDPOINTS,
    *GRANTS_ENDPOINTS,
    *TRUSTS_ENDPOINTS,
    *OPERATION_ENDPOINTS,
    *SETTLEMENT_ENDPOINTS,
    *EXCHANGE_SETTLE_ENDPOINTS,
    *CONTRACT_ENDPOINTS,
    *LISTING_ENDPOINTS,
    *ORDER_ENDPOINTS,
    *AUCTION_ENDPOINTS,
    *DELIVERY_ENDPOINTS,
    *SANDBOX_ENDPOINTS,
]

# Routes with a path parameter that are deliberately public (no tenant owns them).
PUBLIC: dict[str, str] = {
    "GET /api/v1/ledger/entries/{index}": "the transparency log is public by design (issue 3)",
    "GET /api/v1/ledger/entries/by-hash/{leaf_hash}": "public transparency log lookup",
    "GET /api/v1/ledger/receipts/{index}": "receipts are built from public log data only",
    "GET /api/v1/registry/verify/{number}": "certificate verification is public by design "
    "(issue 5: anyone shown a certificate can check it, without login)",
    "GET /api/v1/policy/templates/{name}": "the built-in policy templates belong to no party: "
    "every logged-in party reads the same four (issue 6)",
    "POST /api/v1/trusts/deeds/{deed_id}/requests": "any verified party may ask a trust's trustee "
    "for a use of the trust's data (issue 6); a deed not in effect is not found for anyone who "
    "cannot see it, and the request is checked against the deed by the grants core",
}


def headers_for(client: TestClient, actor: Actor) -> dict[str, str]:
    return bearer(client, actor)
