"""Registry test helpers: principals, a scanned data set version, assets and applications on a
fixed clock (``TODAY`` is a working Monday of a year the holiday calendar covers), and a rival's
certified objection registration (异议登记) that puts a right under dispute (``object_to``)."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from factories import make_actor

from datafactor import dataplane
from datafactor.dataplane import DatasetDraft
from datafactor.db import Database
from datafactor.discovery import jobs
from datafactor.discovery import services as discovery_services
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for
from datafactor.permissions import Principal
from datafactor.registry import AssetKind, DataClass, RegistrationType
from datafactor.registry import services as registry
from datafactor.settings import Settings

TODAY = date(2026, 3, 2)  # a Monday, not a holiday
LATER = date(2026, 4, 20)  # after any notice that starts on TODAY

POWER = (
    "日期,站点,用电量千瓦时\n"
    + "".join(f"2025-01-{1 + i % 28:02d},站{i % 7},{1000 + i}\n" for i in range(40))
).encode()

OBJECTION_GROUNDS: dict[str, Any] = {
    "grounds": ("title_dispute",),
    "statement": "该产品的源数据由我方采集，有采集合同为证",
    "evidence": ("contract-2025-88.pdf",),
}

SCOPE: dict[str, Any] = {
    "purposes": ["industry", "research"],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["api", "sandbox"],
}


def principal(db: Database, actor: Any) -> Principal:
    with db.read() as s:
        user = s.get(User, actor.user_id)
        party = s.get(Party, actor.party_id)
        return principal_for(user, party, via="session")


def scanned_version(db: Database, settings: Settings, who: Principal, data: bytes = POWER) -> str:
    """A data set of ``who`` with one uploaded version whose sample scan has finished."""
    store = dataplane.blob_store(settings)
    with db.write() as s:
        dataset_id = dataplane.create_dataset(
            s, who, DatasetDraft(name="用电量", domain="energy")
        ).id
    blob = store.put_stream(io.BytesIO(data), max_bytes=10**7)
    with db.write() as s:
        version, _job = discovery_services.add_file_version(
            s, who, dataset_id, blob=blob, filename="power.csv"
        )
        version_id = version.id
    jobs.run_pending(db, settings, store)
    return version_id


def asset_draft(version_id: str | None, **kw: Any) -> registry.AssetDraft:
    values: dict[str, Any] = {
        "kind": AssetKind.RESOURCE,
        "name": "南宁供电量数据",
        "name_en": "Nanning power supply data",
        "description": "各站点每日供电量",
        "domain": "energy",
        "source_statement": "本单位计量系统自行采集",
        "collection_method": "计量系统自动采集",
        "update_frequency": "daily",
        "coverage": "2025-01 至 2025-12",
        "region": "450100",
        "volume": "40 行",
        "field_schema": ({"name": "日期"}, {"name": "站点"}, {"name": "用电量千瓦时"}),
        "version_id": version_id,
        "data_class": DataClass.ENTERPRISE,
    }
    values.update(kw)
    return registry.AssetDraft(**values)


def new_asset(db: Database, who: Principal, version_id: str | None, **kw: Any) -> str:
    with db.write() as s:
        return registry.create_asset(s, who, asset_draft(version_id, **kw)).id


def fingerprint(db: Database, asset_id: str) -> str:
    from datafactor.registry.models import RegistryAsset

    with db.read() as s:
        asset = s.get(RegistryAsset, asset_id)
        assert asset is not None and asset.fingerprint
        return asset.fingerprint


def initial(db: Database, asset_id: str, **kw: Any) -> registry.ApplicationDraft:
    values: dict[str, Any] = {
        "type": RegistrationType.INITIAL,
        "asset_id": asset_id,
        "scope": SCOPE,
        "term_start": TODAY,
        "term_end": None,
        "fingerprint": fingerprint(db, asset_id),
    }
    values.update(kw)
    return registry.ApplicationDraft(**values)


def drive_to_certified(
    db: Database,
    applicant: Principal,
    registrar: Principal,
    draft: registry.ApplicationDraft,
    issuer: registry.Issuer,
    on: date,
) -> tuple[str, str | None, date]:
    """Submit ``draft`` on ``on`` and take it through review (and its notice, closed a week
    later) to certification: (application id, the right it created or acted on, the day it
    was certified). Fails loudly with the decision if the formal review does not pass."""
    from datetime import timedelta

    from datafactor.registry import Action

    with db.write() as s:
        row = registry.submit_application(s, applicant, draft, issuer=issuer, today=on)
        app_id, state, decision = row.id, row.state, row.decision
    assert state in ("substantive_review", "public_notice", "certified"), decision
    day = on
    if state == "substantive_review":
        notice = load_rules().type_rules(draft.type).public_notice
        action = Action.APPROVE_TO_NOTICE if notice else Action.APPROVE
        with db.write() as s:
            state = registry.act(s, registrar, app_id, action, issuer=issuer, today=day).state
    if state == "public_notice":
        day = on + timedelta(days=7)
        with db.write() as s:
            state = registry.act(
                s, registrar, app_id, Action.CLOSE_NOTICE, issuer=issuer, today=day
            ).state
    assert state == "certified", state
    with db.read() as s:
        return app_id, registry.get_application(s, registrar, app_id).result_right_id, day


def load_rules() -> Any:
    from datafactor.registry import load_registry_rules

    return load_registry_rules()


def object_to(
    db: Database,
    registrar: Principal,
    issuer: registry.Issuer,
    *,
    asset_id: str,
    right_id: str,
    on: date,
) -> str:
    """A rival's (南宁数据采集公司) objection registration on ``right_id`` of ``asset_id``,
    submitted on ``on`` and certified by ``registrar`` the same day: its id."""
    rival = principal(db, make_actor(db, name="南宁数据采集公司"))
    draft = registry.ApplicationDraft(
        type=RegistrationType.OBJECTION, asset_id=asset_id, right_id=right_id, **OBJECTION_GROUNDS
    )
    app_id, _, day = drive_to_certified(db, rival, registrar, draft, issuer, on)
    assert day == on  # no public notice: the dispute holds from the day it is registered
    return app_id
