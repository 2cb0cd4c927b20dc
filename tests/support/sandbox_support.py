"""Sandbox test helpers: a small household electricity table and a sandbox world made by the
pilot's own tool (``services.offer_file``: registered data set and asset, profile, a grant to
the grantee for sandbox use, its licence certified), and further grants over its data with a
policy from the editor (``another_grant``)."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from factories import Actor
from grants_support import certify_licence
from registry_support import principal

from datafactor import dataplane
from datafactor.dataplane import DatasetDraft
from datafactor.db import Database, today_cn
from datafactor.permissions import Principal
from datafactor.policy.editor import EditorValues, build_document
from datafactor.policy.grants import GrantDraft, offer_grant
from datafactor.registry import services as registry
from datafactor.sandbox import services
from datafactor.settings import Settings

COUNTIES = ("450102", "450103", "450203")
SMALL_COUNTY = "451481"  # fewer households than k: always suppressed


def households(path: Path, *, units: int = 60, seed: int = 7, extra: int = 3) -> Path:
    """One row per household: account (privacy unit), name (identifier), county (group key),
    kWh (measure, 0–600). ``extra`` households live in ``SMALL_COUNTY``."""
    rng = random.Random(seed)
    lines = ["account,name,county,kwh"]
    for i in range(units):
        lines.append(f"JM-{i:05d},户主{i},{COUNTIES[i % 3]},{rng.randint(50, 550)}")
    for i in range(extra):
        lines.append(f"JM-9{i:04d},户主9{i},{SMALL_COUNTY},{rng.randint(50, 550)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


COLUMNS = "name:identifier,county:group_key,kwh:measure:0:600"


@dataclass
class SandboxWorld:
    holder: Principal
    grantee: Principal
    registrar: Principal
    grant_id: str
    asset_id: str
    outcome: services.OfferOutcome


def offer_world(
    db: Database,
    settings: Settings,
    tmp: Path,
    holder: Actor,
    grantee: Actor,
    registrar: Actor,
    *,
    k: int = 5,
    epsilon: float | None = None,
    **kw: Any,
) -> SandboxWorld:
    outcome = services.offer_file(
        db,
        settings,
        households(tmp / "households.csv"),
        table="households",
        holder=holder.party_id,
        grantee=grantee.party_id,
        privacy_unit="account",
        columns=services.parse_columns(COLUMNS),
        k=k,
        epsilon=epsilon,
        registrar=registrar.username,
        **kw,
    )
    return SandboxWorld(
        principal(db, holder),
        principal(db, grantee),
        principal(db, registrar),
        outcome.grant_id,
        outcome.asset_id,
        outcome,
    )


def add_file(db: Database, settings: Settings, who: Principal, data: bytes, filename: str) -> str:
    """A data set of ``who``'s with one file version holding ``data``; the version's id."""
    store = dataplane.blob_store(settings)
    blob = store.put_stream(io.BytesIO(data), max_bytes=10**7)
    with db.write() as s:
        dataset = dataplane.create_dataset(s, who, DatasetDraft(name="居民用电"))
        return dataplane.add_file_version(s, who, dataset.id, blob=blob, filename=filename).id


def another_grant(
    db: Database,
    settings: Settings,
    world: SandboxWorld,
    grantee_id: str,
    *,
    review: bool = False,
    note: str = "沙箱内聚合计算",
    **values: Any,
) -> str:
    """A further grant over the world's data to ``grantee_id``, from today for 300 days, under a
    policy from the editor (the sandbox channel, no download, ``values`` such as ``max_uses``,
    ``min_group_size``, ``epsilon``; with ``review`` the duty ``df:outputReview``), its licence
    certified; the grant's id."""
    issuer = registry.issuer_for(settings)
    today = today_cn()
    end = today + timedelta(days=300)
    document = build_document(
        EditorValues(channels=["sandbox"], term_end=end, prohibit_download=True, **values)
    )
    if review:
        document["permission"][0]["duty"] = [{"action": "df:outputReview"}]
    with db.write() as s:
        grant_id = offer_grant(
            s,
            world.holder,
            GrantDraft(
                asset_id=world.asset_id,
                grantee_id=grantee_id,
                policy=document,
                term_start=today,
                term_end=end,
                purpose_note=note,
            ),
            issuer=issuer,
            today=today,
        ).id
    certify_licence(db, world.registrar, world.holder, grant_id, issuer, today)
    return grant_id
