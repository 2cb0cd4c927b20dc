"""The demo province's sandbox (issue 8): the grid declares how two of its data sets may be
computed on, so the bank's two sandbox grants are usable.

* ``grid_households`` — the households' electricity data of the electricity data trust
  (``demo/trusts.py``). The bank's grant is the trustee's (the ``sandbox-aggregates`` template:
  k 10, ε 1.0 in total, each result reviewed by the grid before the bank sees it). The
  de-identified account number is the privacy unit; county, month and payment status are group
  keys; consumption (0–1,000 kWh a month) and the peak/valley ratio (0–1) are measures.
* ``grid_credit_scores`` — the electricity credit scores the bank subscribes to on the exchange
  (``demo/exchange.py``: a contract delivered by sandbox; its policy sets no k and no ε, so the
  rules' default k applies and answers are exact). The enterprise's account number is the privacy
  unit; industry, month and grade are group keys; the score (0–1,000) is a measure.

Idempotent: a profile already declared is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from datafactor import registry
from datafactor.db import Database
from datafactor.demo.pilots import ASSETS_BY_KEY
from datafactor.demo.trusts import ASSET_NAME, HOUSEHOLDS
from datafactor.permissions import Principal
from datafactor.sandbox import services
from datafactor.sandbox.errors import SandboxNotFound
from datafactor.settings import Settings

C = services.ColumnDraft


@dataclass(frozen=True)
class DemoProfile:
    asset_name: str
    table: str
    columns: tuple[services.ColumnDraft, ...]


TABLE: Final = "grid_households"
PROFILES: Final = (
    DemoProfile(
        ASSET_NAME,
        TABLE,
        (
            C("脱敏户号", "privacy_unit"),
            C("所在地区代码", "group_key"),
            C("月份", "group_key"),
            C("用电量千瓦时", "measure", 0.0, 1000.0),
            C("峰谷用电比", "measure", 0.0, 1.0),
            C("缴费情况", "group_key"),
        ),
    ),
    DemoProfile(
        ASSETS_BY_KEY["grid-credit-scores"].name,
        "grid_credit_scores",
        (
            C("脱敏户号", "privacy_unit"),
            C("行业", "group_key"),
            C("评分月份", "group_key"),
            C("电力信用分", "measure", 0.0, 1000.0),
            C("信用等级", "group_key"),
        ),
    ),
)
EXAMPLE_SQL: Final = (
    'SELECT "所在地区代码" AS county, COUNT(*) AS households, AVG("用电量千瓦时") AS kwh '
    'FROM grid_households GROUP BY "所在地区代码"'
)
SCORES_SQL: Final = (
    'SELECT "行业" AS industry, COUNT(*) AS firms, AVG("电力信用分") AS score '
    'FROM grid_credit_scores GROUP BY "行业"'
)


def _asset(db: Database, holder: Principal, name: str) -> str | None:
    with db.read() as session:
        rows, _ = registry.list_assets(session, holder, limit=500, offset=0)
        found = next((a for a in rows if a.name == name and a.party_id == holder.party_id), None)
        return None if found is None else str(found.id)


def load_sandbox(db: Database, settings: Settings, people: dict[str, Principal]) -> int:
    """Declare each demo profile that is missing; how many were declared."""
    admin = people["grid.admin"]
    made = 0
    for demo in PROFILES:
        asset_id = _asset(db, people[HOUSEHOLDS.user], demo.asset_name)
        if asset_id is None:
            continue
        with db.read() as session:
            try:
                services.get_profile(session, admin, asset_id)
                continue
            except SandboxNotFound:
                pass
        with db.write() as session:
            services.declare_profile(
                session,
                admin,
                services.ProfileDraft(
                    asset_id=asset_id, table_name=demo.table, columns=demo.columns
                ),
                settings=settings,
            )
        made += 1
    return made
