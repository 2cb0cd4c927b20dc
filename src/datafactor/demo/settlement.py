"""The demo province's money: the buyers of the demo trades have funds in their accounts.

The issue's demo trades are bought by the bank (electricity-data credit scores, by sandbox), the
logistics firm (port throughput data), the Vietnamese company (the cross-border agreement trade)
and the credit firm (the economy index, and the winning bid of the cane forecast auction:
``demo.exchange``). Each gets one deposit through the local bank backend on ``FUNDED_AT`` (before
the demo's first trade, so statements read in date order), with a fixed idempotency key, so a
second load replays it and changes nothing. Done through ``settlement``'s surface as the operator
(``cli``) would record a transfer the custody bank confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from datafactor import settlement
from datafactor.db import CHINA, Database
from datafactor.demo.province import PARTIES_BY_KEY
from datafactor.identity import find_party_id


@dataclass(frozen=True)
class DemoFunding:
    party_key: str  # a key of ``demo.province.PARTIES_BY_KEY``
    amount_fen: int
    memo: str


FUNDING: tuple[DemoFunding, ...] = (
    DemoFunding("bank", 200_000_000, "演示资金：邕江银行采购信用评分数据"),  # ¥2,000,000.00
    DemoFunding("logistics", 50_000_000, "演示资金：边贸通物流采购港口吞吐量数据"),  # ¥500,000.00
    DemoFunding("vn-trading", 30_000_000, "演示资金：红河贸易跨境协议交易"),  # ¥300,000.00
    DemoFunding("credit", 30_000_000, "演示资金：数衡信用采购指数与参与竞价"),  # ¥300,000.00
)
#: When the custody bank confirmed the deposits (a working day before the first demo trade).
FUNDED_AT = datetime(2026, 5, 6, 9, 0, tzinfo=CHINA).astimezone(UTC)


def fund_demo_buyers(db: Database) -> int:
    """Deposit each demo buyer's funds once; the number of deposits made now (0 on a reload)."""
    made = 0
    for funding in FUNDING:
        demo = PARTIES_BY_KEY[funding.party_key]
        with db.write() as session:
            party_id = find_party_id(session, demo.code_type, demo.country, demo.code)
            if party_id is None:
                continue
            posted = settlement.deposit_funds(
                session,
                party_id,
                funding.amount_fen,
                key=f"demo-funding-{funding.party_key}",
                actor="demo-loader",
                memo=funding.memo,
                now=FUNDED_AT,
            )
            made += 0 if posted.replayed else 1
    return made
