"""The demo province's authorisations: loaded after the registry pilots, once."""

from __future__ import annotations

from datafactor.demo.grants import GRANTS
from datafactor.demo.loader import demo_principals, load_demo
from datafactor.policy.grants import list_grants
from datafactor.registry import services as registry


def test_the_demo_grants_are_loaded_once(db, settings):
    load_demo(db, settings=settings)
    people = demo_principals(db)
    logistics = people["logistics.admin"]
    with db.read() as s:
        grants = list_grants(s, logistics, role="grantee", regime="direct")
        assert sorted(g.state for g in grants) == ["approved", "requested"]
        offered = next(g for g in grants if g.state == "approved")
        licence = registry.get_application(s, people["asean.admin"], offered.licence_application_id)
        assert licence.state == "public_notice" and licence.type == "licence"
        asked = next(g for g in grants if g.state == "requested")
        assert asked.holder_id == people["grid.admin"].party_id
    load_demo(db, settings=settings)
    with db.read() as s:
        assert len(list_grants(s, logistics, role="grantee", regime="direct")) == len(GRANTS)
