"""Loading the demo province into the database, idempotently.

A second load changes nothing: parties are found by their identifier and users by username, and a
password is only re-hashed (and audited) when it actually differs from the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from datafactor.db import Database
from datafactor.demo.province import PARTIES
from datafactor.identity import (
    PartyApplication,
    PartyKind,
    ServiceRole,
    create_user_as_operator,
    ensure_user_password,
    find_party_id,
    register_party,
)

DEFAULT_PASSWORD = "DataFactor-2026"


@dataclass
class LoadReport:
    parties_created: int = 0
    users_created: int = 0
    passwords_changed: int = 0
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.parties_created or self.users_created or self.passwords_changed)


def load_demo(
    db: Database, password: str = DEFAULT_PASSWORD, today: date | None = None
) -> LoadReport:
    """Create every demo party and user that is missing; set every demo password to ``password``."""
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
        }
        for demo in PARTIES
        for user in demo.users
    ]
