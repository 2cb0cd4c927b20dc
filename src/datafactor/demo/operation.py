"""Public data authorised operation (公共数据授权运营) in the demo province, loaded after the
registry pilots and the direct grants, through the same services people use.

* The big-data bureau sets the service-fee caps (per API call, per sandbox query, per year of
  access) and an 8 % reasonable-profit rate from 1 April 2026.
* The plan's six public-data pilot bodies — Nanning and Liuzhou, the departments of natural
  resources, transport and agriculture, and the power grid (a public enterprise, for the public
  data of its service) — each select the demo's public-data operator by a recorded procedure and
  sign an authorisation agreement over their registered public data (five years, API and sandbox
  only); the operator is licensed over each data set.
* The operator publishes its fees under the caps, grants a free public-governance use (the
  Nanning government reads expressway traffic), a free public-welfare use (an appraiser's land
  research), two paid uses (the bank by API, the logistics firm in the sandbox), and a paid use
  the logistics firm asked for waits for its decision; it records its 2026 costs. Its 2026
  annual report is generated from these records (filed once the year is over).

Every object is found again on a second load (agreements by number, fees by data set, unit and
date, uses by data set, user and class, costs by category and note), so loading twice changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from datafactor import registry
from datafactor.db import Database
from datafactor.demo.pilots import ASSETS_BY_KEY
from datafactor.permissions import Principal
from datafactor.policy import operation
from datafactor.settings import Settings

OPERATOR = "pdo.admin"
BUREAU = "bureau.admin"
CAPS_FROM = date(2026, 4, 1)
SIGNED_ON = date(2026, 4, 15)
FEES_FROM = date(2026, 5, 1)
USE_END = date(2027, 3, 31)
PRICE_DOCUMENT = "桂发改价格〔2026〕18号（演示）"

#: The bureau's caps: fee unit → fen.
CAPS: dict[str, int] = {"api_call": 50, "sandbox_query": 2_000, "access_year": 5_000_000}
PROFIT_RATE_BP = 800


@dataclass(frozen=True)
class DemoAgreement:
    body: str  # username of the body's administrator
    asset: str  # demo asset key
    number: str
    procedure: str
    reference: str
    selected_on: date
    record: str


AGREEMENTS: tuple[DemoAgreement, ...] = (
    DemoAgreement(
        "nanning.admin",
        "nanning-entities",
        "NNSZF-SQYY-2026-001",
        "public_tender",
        "NNZC2026-G1-00318-GXZB",
        date(2026, 3, 27),
        "经公开招标，广西数智公共数据运营有限公司以综合评分第一名中标。",
    ),
    DemoAgreement(
        "liuzhou.admin",
        "liuzhou-charging",
        "LZSZF-SQYY-2026-001",
        "competitive_consultation",
        "LZZC2026-C2-00045",
        date(2026, 3, 30),
        "经竞争性磋商，磋商小组推荐广西数智公共数据运营有限公司为成交供应商。",
    ),
    DemoAgreement(
        "natres.admin",
        "natres-land-use",
        "GXZRZYT-SQYY-2026-001",
        "public_tender",
        "GXZC2026-G1-00502-GXZB",
        date(2026, 4, 2),
        "经公开招标确定运营机构，中标结果已公告。",
    ),
    DemoAgreement(
        "transport.admin",
        "transport-tolls",
        "GXJTT-SQYY-2026-001",
        "single_source",
        "GXZC2026-D3-00017",
        date(2026, 4, 3),
        "经单一来源采购论证并公示无异议，确定运营机构。",
    ),
    DemoAgreement(
        "agri.admin",
        "agri-prices",
        "GXNYNCT-SQYY-2026-001",
        "competitive_negotiation",
        "GXZC2026-T2-00033",
        date(2026, 4, 7),
        "经竞争性谈判，确定最后报价最低的合格供应商为运营机构。",
    ),
    # The grid is a public enterprise: the implementing body for the public data of its service.
    DemoAgreement(
        "grid.admin",
        "grid-sector-power",
        "GXDW-SQYY-2026-001",
        "invited_tender",
        "GXDW-ZB2026-0088",
        date(2026, 4, 8),
        "经邀请招标，评标委员会推荐广西数智公共数据运营有限公司为中标人，结果已公示。",
    ),
)


@dataclass(frozen=True)
class DemoFee:
    asset: str
    unit: str
    amount_fen: int


FEES: tuple[DemoFee, ...] = (
    DemoFee("nanning-entities", "api_call", 30),
    DemoFee("liuzhou-charging", "sandbox_query", 1_500),
    DemoFee("transport-tolls", "api_call", 40),
    DemoFee("agri-prices", "api_call", 20),
    DemoFee("natres-land-use", "access_year", 3_000_000),
)


@dataclass(frozen=True)
class DemoUse:
    asset: str
    user: str  # username of the user's party (the grantee)
    use_class: str
    purpose: str
    on: date
    note: str
    asked: bool = False  # the user asks (the operator decides later) or the operator grants
    unit: str | None = None
    quantity: int = 1
    channels: tuple[str, ...] | None = None


USES: tuple[DemoUse, ...] = (
    DemoUse(
        "transport-tolls",
        "nanning.admin",
        "public_governance",
        "public_governance",
        date(2026, 5, 11),
        "南宁市城市交通拥堵治理（沙箱计算）",
        channels=("sandbox",),
    ),
    DemoUse(
        "natres-land-use",
        "appraiser.admin",
        "public_welfare",
        "research",
        date(2026, 5, 12),
        "土地利用与资产价值关系的公益研究",
    ),
    DemoUse(
        "nanning-entities",
        "bank.admin",
        "industry_development",
        "industry",
        date(2026, 5, 18),
        "小微企业信贷准入核验（接口调用）",
        unit="api_call",
        quantity=20_000,
        channels=("api",),
    ),
    DemoUse(
        "liuzhou-charging",
        "logistics.admin",
        "sector_development",
        "product_development",
        date(2026, 5, 25),
        "物流车队充电调度模型（沙箱计算）",
        unit="sandbox_query",
        quantity=50,
        channels=("sandbox",),
    ),
    DemoUse(
        "transport-tolls",
        "logistics.admin",
        "industry_development",
        "product_development",
        date(2026, 6, 8),
        "跨境货运线路时效产品开发（接口调用）",
        asked=True,
        unit="api_call",
        quantity=10_000,
        channels=("api",),
    ),
)

#: The operator's 2026 costs: (category, fen, note).
COSTS: tuple[tuple[str, int, str], ...] = (
    ("personnel", 120_000_000, "运营团队 12 人"),
    ("infrastructure", 80_000_000, "隐私计算平台与算力租赁"),
    ("data_governance", 30_000_000, "数据清洗与质量治理"),
    ("security", 15_000_000, "等级保护测评与安全审计"),
)


def _asset_id(db: Database, who: Principal, key: str) -> str | None:
    name = ASSETS_BY_KEY[key].name
    with db.read() as s:
        rows, _ = registry.list_assets(s, who, limit=500, offset=0)
    return next((a.id for a in rows if a.name == name and a.party_id == who.party_id), None)


def _prices(db: Database, bureau: Principal) -> int:
    done = 0
    with db.read() as s:
        caps = {(c.unit, c.effective_from, c.amount_fen) for c in operation.list_caps(s, bureau)}
        rates = {(r.effective_from, r.rate_bp) for r in operation.list_rates(s, bureau)}
    for unit, fen in CAPS.items():
        if (unit, CAPS_FROM, fen) not in caps:
            with db.write() as s:
                operation.set_cap(
                    s,
                    bureau,
                    unit=unit,
                    amount_fen=fen,
                    effective_from=CAPS_FROM,
                    source_document=PRICE_DOCUMENT,
                    today=CAPS_FROM,
                )
            done += 1
    if (CAPS_FROM, PROFIT_RATE_BP) not in rates:
        with db.write() as s:
            operation.set_profit_rate(
                s,
                bureau,
                rate_bp=PROFIT_RATE_BP,
                effective_from=CAPS_FROM,
                source_document=PRICE_DOCUMENT,
                today=CAPS_FROM,
            )
        done += 1
    return done


def load_operation(db: Database, settings: Settings, people: dict[str, Principal]) -> int:
    """Load the bureau's prices, the agreements, fees, uses and costs; the number of objects
    created (0 on a second load)."""
    if OPERATOR not in people or BUREAU not in people:
        return 0
    issuer = registry.issuer_for(settings)
    operator = people[OPERATOR]
    done = _prices(db, people[BUREAU])
    agreements: dict[str, str] = {}  # asset key → agreement id
    assets: dict[str, str] = {}  # asset key → asset id
    for plan in AGREEMENTS:
        body = people.get(plan.body)
        asset_id = _asset_id(db, body, plan.asset) if body else None
        if body is None or asset_id is None:
            continue
        assets[plan.asset] = asset_id
        with db.read() as s:
            rows, _ = operation.list_agreements(s, body, limit=200)
            found = next((a for a in rows if a.number == plan.number), None)
        if found is None:
            with db.write() as s:
                found = operation.sign_agreement(
                    s,
                    body,
                    operation.AgreementDraft(
                        operator_id=operator.party_id,
                        number=plan.number,
                        selection=operation.Selection(
                            plan.procedure, plan.reference, plan.selected_on, plan.record
                        ),
                        asset_ids=(asset_id,),
                    ),
                    issuer=issuer,
                    today=SIGNED_ON,
                )
            done += 1
        agreements[plan.asset] = found.id
    with db.read() as s:
        published = {
            (f.fee.asset_id, f.fee.unit, f.fee.effective_from)
            for f in operation.list_fees(s, operator, operator_id=operator.party_id, history=True)
        }
    for fee in FEES:
        asset_id = assets.get(fee.asset)
        if asset_id is None or (asset_id, fee.unit, FEES_FROM) in published:
            continue
        with db.write() as s:
            operation.publish_fee(
                s,
                operator,
                asset_id=asset_id,
                unit=fee.unit,
                amount_fen=fee.amount_fen,
                effective_from=FEES_FROM,
                today=SIGNED_ON,
            )
        done += 1
    with db.read() as s:
        uses, _ = operation.list_uses(s, operator, limit=200)
        made = {(u.asset_id, u.grantee_id, u.use_class) for u in uses}
    for wanted in USES:
        user = people.get(wanted.user)
        asset_id = assets.get(wanted.asset)
        if user is None or asset_id is None or (asset_id, user.party_id, wanted.use_class) in made:
            continue
        draft = operation.UseDraft(
            agreement_id=agreements[wanted.asset],
            asset_id=asset_id,
            use_class=wanted.use_class,
            purpose=wanted.purpose,
            term_start=wanted.on,
            term_end=USE_END,
            grantee_id=None if wanted.asked else user.party_id,
            channels=wanted.channels,
            unit=wanted.unit,
            quantity=wanted.quantity,
            purpose_note=wanted.note,
        )
        with db.write() as s:
            operation.make_use(
                s, user if wanted.asked else operator, draft, issuer=issuer, today=wanted.on
            )
        done += 1
    with db.read() as s:
        recorded = {(c.category, c.note) for c in operation.list_costs(s, operator, year=2026)}
    for category, fen, note in COSTS:
        if (category, note) in recorded:
            continue
        with db.write() as s:
            operation.record_cost(
                s, operator, year=2026, category=category, amount_fen=fen, note=note
            )
        done += 1
    return done
