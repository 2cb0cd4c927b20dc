"""Delivery test helpers: a seller's certified product whose data version is a realistic table
(``METER_CSV``: 240 meter readings with a phone column the policy forbids), published, and active
contracts of it for several buyers (``delivery_world``); the makers the tenant-isolation registry
uses."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exchange_support import active_contract, published_listing, seller_world
from factories import Actor, bearer, make_actor
from registry_support import principal, scanned_version

from datafactor import registry
from datafactor.db import Database
from datafactor.registry import services as registry_services
from datafactor.settings import Settings

FIELDS = ("日期", "站点", "用电量千瓦时", "负荷率", "温度", "户号", "联系电话")
BANNED = "联系电话"
ROWS = 240


def meter_rows(n: int = ROWS, seed: int = 7) -> list[list[str]]:
    r = random.Random(seed)
    return [
        [
            f"2025-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}",
            f"站{i % 12}",
            f"{r.uniform(5000, 95000):.2f}",
            f"{r.uniform(0.3, 0.99):.3f}",
            f"{r.uniform(-2, 36):.1f}",
            f"4501{r.randint(10**9, 10**10 - 1)}",
            f"13{r.randint(10**8, 10**9 - 1)}",
        ]
        for i in range(n)
    ]


def meter_csv(rows: list[list[str]] | None = None) -> bytes:
    lines = [",".join(FIELDS)] + [",".join(r) for r in rows or meter_rows()]
    return ("\n".join(lines) + "\n").encode()


METER_CSV = meter_csv()


def delivery_policy(
    asset_id: str,
    *,
    channels: tuple[str, ...] = ("download", "api"),
    purposes: tuple[str, ...] = ("industry", "research"),
    banned: tuple[str, ...] = (BANNED,),
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Use for the purposes through the channels; the banned fields never; no onward transfer."""
    prohibitions: list[dict[str, Any]] = [{"target": asset_id, "action": "df:onwardTransfer"}]
    if banned:
        prohibitions.append(
            {
                "target": asset_id,
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "df:fields",
                        "operator": "isAnyOf",
                        "rightOperand": list(banned),
                    }
                ],
            }
        )
    return {
        "@context": [
            "http://www.w3.org/ns/odrl.jsonld",
            {"df": "https://datafactor.gx.cn/odrl/profile#"},
        ],
        "@type": "Set",
        "uid": f"urn:datafactor:test-delivery-policy:{asset_id}",
        "permission": [
            {
                "target": asset_id,
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "purpose",
                        "operator": "isAnyOf",
                        "rightOperand": list(purposes),
                    },
                    {
                        "leftOperand": "deliveryChannel",
                        "operator": "isAnyOf",
                        "rightOperand": list(channels),
                    },
                    *(extra or []),
                ],
            }
        ],
        "prohibition": prohibitions,
    }


@dataclass
class DeliveryWorld:
    db: Database
    settings: Settings
    seller: Actor
    operator: Actor
    buyers: list[Actor]
    listing_id: str
    asset_id: str
    contracts: dict[str, str] = field(default_factory=dict)  # buyer party id → contract id

    def contract_of(self, buyer: Actor) -> str:
        return self.contracts[buyer.party_id]

    def open(self, buyer: Actor, **kw: Any) -> str:
        kw.setdefault("policy", delivery_policy(self.asset_id))
        contract_id = active_contract(self.db, self.listing_id, buyer, **kw)
        self.contracts.setdefault(buyer.party_id, contract_id)
        return contract_id


def delivery_world(
    db: Database,
    settings: Settings,
    *,
    buyers: int = 3,
    data: bytes = METER_CSV,
    channels: tuple[str, ...] = ("download", "api"),
) -> DeliveryWorld:
    base = seller_world(db, settings, registry.issuer_for(settings))
    seller: Actor = base["seller"]
    product = base["product"]
    who = principal(db, seller)
    version_id = scanned_version(db, settings, who, data)
    with db.write() as s:
        registry_services.update_asset(s, who, product.asset_id, {"version_id": version_id})
    listing_id = published_listing(db, product, seller, price_fen=0, channels=channels)
    world = DeliveryWorld(
        db,
        settings,
        seller,
        base["operator"],
        [make_actor(db) for _ in range(buyers)],
        listing_id,
        product.asset_id,
    )
    for buyer in world.buyers:
        world.open(buyer, channels=channels)
    return world


def now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ tenant-isolation makers


def isolation_contract(client: Any, owner: Actor) -> str:
    """An active contract whose buyer is ``owner`` (a world of its own, seller included)."""
    db, settings = client.app.state.db, client.app.state.settings
    base = seller_world(db, settings, registry.issuer_for(settings))
    who = principal(db, base["seller"])
    version_id = scanned_version(db, settings, who, meter_csv(meter_rows(40)))
    with db.write() as s:
        registry_services.update_asset(s, who, base["product"].asset_id, {"version_id": version_id})
    listing_id = published_listing(db, base["product"], base["seller"], price_fen=0)
    return active_contract(db, listing_id, owner, policy=delivery_policy(base["product"].asset_id))


def isolation_token(
    client: Any, owner: Actor, headers: dict[str, str], channel: str
) -> dict[str, Any]:
    contract_id = isolation_contract(client, owner)
    r = client.post(
        "/api/v1/deliveries/tokens",
        headers=headers,
        json={"contract_id": contract_id, "channel": channel, "purpose": "research"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def own_token(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    return str(isolation_token(client, owner, headers, "api")["id"])


def own_download_secret(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    return str(isolation_token(client, owner, headers, "download")["secret"])


def own_delivery(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    issued = isolation_token(client, owner, headers, "api")
    r = client.get(
        "/api/v1/deliveries/pull", headers={"Authorization": f"Bearer {issued['secret']}"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["delivery_id"])


__all__ = ["bearer"]
