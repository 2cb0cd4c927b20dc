"""Direct authorisations (授权) in the demo province, loaded after the registry pilots.

Two grants through the same services people use, each found again on a second load (by its
data, grantee and grantor), so loading twice changes nothing:

* the ASEAN trade data merchant grants the Pingxiang logistics firm API use of its registered
  China–ASEAN trade data for trade and logistics in China and Viet Nam (at most 1,000 uses, no
  download, no onward transfer) — approved, its licence filed and put on public notice by the
  registrar; closing the notice in the console puts the grant in effect;
* the logistics firm asks the power grid for API use of its customers' electricity data for
  product development in Guangxi — waiting for the grid's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from datafactor import registry
from datafactor.db import Database
from datafactor.demo.pilots import ASSETS_BY_KEY, REGISTRAR
from datafactor.permissions import Principal
from datafactor.policy.editor import EditorValues, build_document
from datafactor.policy.grants import GrantDraft, list_grants, offer_grant, request_grant
from datafactor.settings import Settings


@dataclass(frozen=True)
class DemoGrant:
    asset: str  # demo asset key
    grantor: str  # username of the holder's user
    grantee: str  # username of the grantee's user
    offered: bool  # the holder grants (offer) or the grantee asks (request)
    on: date
    term_end: date
    values: EditorValues
    note: str


GRANTS: tuple[DemoGrant, ...] = (
    DemoGrant(
        asset="asean-trade",
        grantor="asean.admin",
        grantee="logistics.admin",
        offered=True,
        on=date(2026, 4, 1),
        term_end=date(2027, 3, 31),
        values=EditorValues(
            purposes=["trade_logistics"],
            channels=["api"],
            regions=["CN", "VN"],
            max_uses=1000,
            prohibit_download=True,
            prohibit_onward_transfer=True,
        ),
        note="中越边境跨境物流线路规划（接口调用）",
    ),
    DemoGrant(
        asset="grid-customers",
        grantor="grid.admin",
        grantee="logistics.admin",
        offered=False,
        on=date(2026, 6, 8),
        term_end=date(2027, 6, 30),
        values=EditorValues(
            purposes=["product_development"],
            channels=["api"],
            regions=["CN-GX"],
            max_uses=500,
            prohibit_download=True,
            prohibit_onward_transfer=True,
            prohibit_reidentification=True,
        ),
        note="园区用电指数产品开发",
    ),
)


def _asset_id(people: dict[str, Principal], db: Database, demo: DemoGrant) -> str | None:
    name = ASSETS_BY_KEY[demo.asset].name
    holder = people[demo.grantor]
    with db.read() as s:
        rows, _ = registry.list_assets(s, holder, limit=500, offset=0)
        found = next((a for a in rows if a.name == name and a.party_id == holder.party_id), None)
        return None if found is None else str(found.id)


def load_grants(db: Database, settings: Settings, people: dict[str, Principal]) -> int:
    """Make each demo grant that is missing; returns how many were made."""
    issuer = registry.issuer_for(settings)
    made = 0
    for demo in GRANTS:
        asset_id = _asset_id(people, db, demo)
        if asset_id is None:
            continue
        grantor, grantee = people[demo.grantor], people[demo.grantee]
        with db.read() as s:
            existing = [
                g
                for g in list_grants(s, grantor, role="grantor", asset_id=asset_id)
                if g.grantee_id == grantee.party_id
            ]
        if existing:
            continue
        values = EditorValues(**{**demo.values.__dict__, "term_end": demo.term_end})
        draft = GrantDraft(
            asset_id=asset_id,
            grantee_id=grantee.party_id,
            policy=build_document(values),
            term_start=demo.on,
            term_end=demo.term_end,
            purpose_note=demo.note,
        )
        with db.write() as s:
            if demo.offered:
                grant = offer_grant(s, grantor, draft, issuer=issuer, today=demo.on)
                application_id = grant.licence_application_id
            else:
                request_grant(s, grantee, draft, today=demo.on)
                application_id = None
        made += 1
        if application_id is None:
            continue
        # The registrar takes the licence to its public notice on the next working day.
        day = registry.add_working_days(demo.on, 1)
        with db.write() as s:
            row = registry.get_application(s, people[REGISTRAR], application_id)
            if row.state == "substantive_review":
                registry.act(
                    s,
                    people[REGISTRAR],
                    application_id,
                    registry.Action.APPROVE_TO_NOTICE,
                    issuer=issuer,
                    today=day,
                )
    return made
