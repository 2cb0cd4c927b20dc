"""The demo province's trades on the Beibu Gulf exchange (issue 7), loaded through the exchange's
own use cases after the registry pilots, the trusts and public data operation.

The data first (who lists what, who buys, on which day), then the loading. Every step is the
service a person's click would run: the seller drafts a listing and its administrator signs the
declaration and commitment (声明和承诺); the law firm 广西明律律师事务所 (compliance assessor) signs
its checklist; the exchange's reviewer approves (or the assessor returns the listing for
changes); buyers order (escrow frozen), both administrators sign the contract with their party
keys, the buyer takes the data (a fingerprinted download, an API pull) and accepts it, and the
contract settles (the exchange's fee, the seller's income). What the demo shows:

* five published listings: the grid's electricity credit scores (quarterly subscription, sandbox
  only, in the finance zone), the ocean data firm's port throughput (one-off, download + API),
  the grid's economy index (API, 20 licences, 5 sold: 15 left), the sugar group's cane yield
  forecast (2 licences, sold by auction), the ASEAN merchant's trade outlook (cross-border, by
  agreement through the broker 广西数联数据经纪, in the ASEAN zone); and the review queue: one
  listing awaiting the law firm, one awaiting the exchange, one returned for changes;
* settled mall trades: the logistics firm's port throughput (downloaded, accepted, settled) and
  the economy index's licences (the credit firm 3, the bank 2; pulled by API, accepted,
  settled);
* a closed auction of the cane forecast (three bidders, six bids, the last one extending the
  deadline against sniping; the credit firm won; its contract signed, delivered, accepted and
  settled; the others' deposits released);
* live (relative to the real clock at load time, so the deadline clocks of the exchange find
  them in time): the bank's subscription to the credit scores (signed by both, active, awaiting
  delivery in the sandbox — issue 8); the Vietnamese company's agreement trade of the trade
  outlook (offer, the broker's counter-offer for the seller, a counter-offer, the seller's
  acceptance: a ``cross_border`` contract signed by the buyer and co-signed by the broker,
  awaiting the seller's signature); and a second auction of the cane forecast, bidding open and
  ending five days after the load.

The historical steps run on fixed 2026 dates after the products' certificates (issued 30 March
and 27 April 2026), with an explicit ``now`` for each, so their figures are the same on every
load. Idempotent: listings are found by seller and title, orders and bids replay by their
idempotency keys, auctions and negotiations are found by listing, and each step runs only from
the state it starts from (a listing step already in its history is never taken again; an object
someone moved since in the console is left where they left it). A second load writes nothing.

The bank's sandbox subscription is itself a sandbox grant (its contract id is the grant id the
sandbox lists; ``demo/sandbox.py`` declares the credit scores' profile so it can be computed on).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from datafactor import registry
from datafactor.db import CHINA, Database, utcnow
from datafactor.demo.pilots import ASSETS_BY_KEY
from datafactor.demo.province import PARTIES_BY_KEY
from datafactor.exchange import (
    auctions,
    contracts,
    delivery,
    listings,
    negotiation,
    orders,
)
from datafactor.exchange.keys import PartyKeys, party_keys
from datafactor.identity import find_party_id
from datafactor.permissions import Principal
from datafactor.settings import Settings


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of 2026 in China time, as UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=CHINA).astimezone(UTC)


# ---------------------------------------------------------------------------------- the data

ASSESSOR: Final = "lawfirm.staff"  # 明律律所合规律师 signs the law firm's assessments
REVIEWER: Final = "exchange.reviewer"  # 交易中心审核员 decides listings
OPINION: Final = (
    "经核查，挂牌数据来源合法、授权链条完整、登记证书有效，未发现禁止交易情形，"
    "不含核心数据与个人信息，交付方式与安全分级相适应，同意提交交易所审核。"
)


@dataclass(frozen=True)
class DemoListing:
    """A listing of a registered product, and how far its review goes (``target``: published,
    assessed — awaiting the exchange —, submitted — awaiting the law firm — or returned, with
    the assessor's ``returned_item`` failed and its note)."""

    key: str
    asset: str  # DemoAsset key (a certified product of the seller)
    preparer: str  # username drafting it (the seller's staff)
    signer: str  # username signing the declaration (the seller's administrator)
    title: str
    title_en: str
    summary: str
    industry: str
    region: str
    tags: tuple[str, ...]
    price_model: str
    price_fen: int
    channels: tuple[str, ...]
    drafted: datetime
    submitted: datetime
    assessed: datetime | None = None
    approved: datetime | None = None
    target: str = "published"
    period: str | None = None
    term_days: int = 365
    quantity: int | None = None
    cross_border: bool = False
    broker: str | None = None  # a DemoParty key
    zone: str | None = None
    returned_item: str = ""
    returned_note: str = ""


LISTINGS: tuple[DemoListing, ...] = (
    DemoListing(
        key="credit-scores",
        asset="grid-credit-scores",
        preparer="grid.data",
        signer="grid.admin",
        title="电力信用评分（沙箱订阅）",
        title_en="Electricity-based credit scores (sandbox subscription)",
        summary=(
            "以工商业用户用电与缴费行为加工的企业电力信用评分，按季度订阅；仅在隐私计算沙箱内"
            "“可用不可见”地使用，适用于小微企业信贷准入与贷后预警。"
        ),
        industry="finance",
        region="450000",
        tags=("电力", "信用评分", "普惠金融", "沙箱"),
        price_model="subscription",
        period="quarter",
        price_fen=2_500_000,  # 25,000.00 yuan a quarter
        channels=("sandbox",),
        zone="finance",
        drafted=at(5, 6, 9, 30),
        submitted=at(5, 6, 15),
        assessed=at(5, 8, 10),
        approved=at(5, 11, 10),
    ),
    DemoListing(
        key="port-throughput",
        asset="port-throughput-monthly",
        preparer="ocean.admin",
        signer="ocean.admin",
        title="北部湾港吞吐量月报（2025年度）",
        title_en="Beibu Gulf port throughput monthly (2025)",
        summary="钦州、防城港、北海三个港区 2025 年逐月货物吞吐量、同比增速与在港船舶数，可下载或接口调用。",
        industry="transport",
        region="450700",
        tags=("港口", "吞吐量", "北部湾", "物流"),
        price_model="one_off",
        price_fen=1_200_000,  # 12,000.00 yuan a licence
        channels=("download", "api"),
        drafted=at(5, 6, 10),
        submitted=at(5, 6, 15, 30),
        assessed=at(5, 8, 11),
        approved=at(5, 11, 10, 30),
    ),
    DemoListing(
        key="economy-index",
        asset="grid-economy-index",
        preparer="grid.data",
        signer="grid.admin",
        title="电力看经济·重点行业景气指数（接口，限量）",
        title_en="Power-based economic index of key industries (API, limited)",
        summary="由工商业用电数据加工的重点行业月度景气指数，接口调用；限量发售 20 份许可。",
        industry="energy",
        region="450000",
        tags=("电力", "景气指数", "宏观经济"),
        price_model="one_off",
        price_fen=360_000,  # 3,600.00 yuan a licence
        channels=("api",),
        quantity=20,
        drafted=at(5, 6, 10, 30),
        submitted=at(5, 6, 16),
        assessed=at(5, 8, 14),
        approved=at(5, 11, 11),
    ),
    DemoListing(
        key="cane-forecast",
        asset="cane-yield-forecast",
        preparer="sugar.staff",
        signer="sugar.admin",
        title="糖料蔗产量预测（2025/2026榨季·竞价）",
        title_en="Sugarcane yield forecast, 2025/2026 season (by auction)",
        summary="扶绥县五个乡镇分品种的本榨季糖料蔗单产与总产预测；限量 2 份许可，以竞价方式出让。",
        industry="agriculture",
        region="451400",
        tags=("糖料蔗", "产量预测", "农业", "竞价"),
        price_model="one_off",
        price_fen=3_000_000,  # 30,000.00 yuan a licence
        channels=("download",),
        quantity=2,
        drafted=at(5, 6, 11),
        submitted=at(5, 6, 16, 30),
        assessed=at(5, 8, 15),
        approved=at(5, 11, 14),
    ),
    DemoListing(
        key="asean-outlook",
        asset="asean-trade-outlook",
        preparer="asean.staff",
        signer="asean.admin",
        title="东盟重点商品贸易月度分析（跨境·协议交易）",
        title_en="ASEAN key goods trade monthly outlook (cross-border, by agreement)",
        summary=(
            "中国与越南、泰国、马来西亚重点商品贸易额、增速与走势研判；面向境内外买方，"
            "经数据经纪人居间，以协议方式交易。"
        ),
        industry="commerce",
        region="450000",
        tags=("东盟", "跨境贸易", "越南", "协议交易"),
        price_model="one_off",
        price_fen=5_000_000,  # 50,000.00 yuan (the asking price of the agreement trade)
        channels=("download", "api"),
        cross_border=True,
        broker="broker",
        zone="asean",
        drafted=at(5, 7, 9, 30),
        submitted=at(5, 7, 15),
        assessed=at(5, 11, 15),
        approved=at(5, 12, 10),
    ),
    # --- the review queue ------------------------------------------------------------------------
    DemoListing(
        key="cane-subscription",
        asset="cane-yield-forecast",
        preparer="sugar.staff",
        signer="sugar.admin",
        title="糖料蔗产量预测（接口·年度订阅）",
        title_en="Sugarcane yield forecast (API, yearly subscription)",
        summary="覆盖广西全部蔗区的糖料蔗单产与总产预测，按年订阅，接口调用。",
        industry="agriculture",
        region="451400",
        tags=("糖料蔗", "产量预测", "订阅"),
        price_model="subscription",
        period="year",
        price_fen=6_000_000,
        channels=("api",),
        drafted=at(9, 7, 9),
        submitted=at(9, 7, 16),
        assessed=at(9, 9, 10),
        target="returned",
        returned_item="basic_information",
        returned_note=(
            "挂牌简介称“覆盖广西全部蔗区”，与登记的覆盖范围（崇左市扶绥县五个乡镇）不一致，"
            "请据实修改简介后重新提交。"
        ),
    ),
    DemoListing(
        key="charging-heatmap",
        asset="pdo-charging-heatmap",
        preparer="pdo.staff",
        signer="pdo.admin",
        title="柳州充电需求时空热力指数（接口）",
        title_en="Liuzhou charging demand heat map (API)",
        summary="基于柳州市充电设施运行公共数据在沙箱内加工的分城区、分时段充电需求指数，接口调用。",
        industry="energy",
        region="450200",
        tags=("新能源汽车", "充电", "公共数据"),
        price_model="one_off",
        price_fen=600_000,
        channels=("api",),
        drafted=at(9, 14, 9),
        submitted=at(9, 14, 16),
        assessed=at(9, 16, 11),
        target="assessed",
    ),
    DemoListing(
        key="port-subscription",
        asset="port-throughput-monthly",
        preparer="ocean.admin",
        signer="ocean.admin",
        title="北部湾港吞吐量月报（接口·按月订阅）",
        title_en="Beibu Gulf port throughput monthly (API, monthly subscription)",
        summary="北部湾港各港区逐月货物吞吐量、同比增速与在港船舶数，按月订阅，接口调用。",
        industry="transport",
        region="450700",
        tags=("港口", "吞吐量", "订阅"),
        price_model="subscription",
        period="month",
        price_fen=150_000,
        channels=("api",),
        drafted=at(9, 21, 9),
        submitted=at(9, 21, 15),
        target="submitted",
    ),
)
LISTINGS_BY_KEY: Final = {d.key: d for d in LISTINGS}


@dataclass(frozen=True)
class DemoPurchase:
    """A mall purchase, taken as far as its moments say: ordered (escrow frozen), signed by the
    buyer's and the seller's administrators, delivered (``channel`` with the ``declared`` use),
    accepted (settled). ``live``: the moments are offsets before the load's clock."""

    key: str  # the order's idempotency key is derived from it
    listing: str  # DemoListing key
    buyer: str  # username ordering (the buyer's staff)
    buyer_signer: str
    seller_signer: str
    quantity: int
    ordered: datetime | timedelta
    buyer_signed: datetime | timedelta
    seller_signed: datetime | timedelta
    channel: str | None = None
    declared: dict[str, str] = field(default_factory=dict)
    delivered: datetime | timedelta | None = None
    accepted: datetime | timedelta | None = None
    live: bool = False


PURCHASES: tuple[DemoPurchase, ...] = (
    DemoPurchase(
        key="port-logistics",
        listing="port-throughput",
        buyer="logistics.staff",
        buyer_signer="logistics.admin",
        seller_signer="ocean.admin",
        quantity=1,
        ordered=at(5, 18, 10),
        buyer_signed=at(5, 18, 11),
        seller_signed=at(5, 18, 15),
        channel="download",
        declared={"purpose": "trade_logistics", "spatial": "451481"},
        delivered=at(5, 19, 9, 30),
        accepted=at(5, 21, 16),
    ),
    DemoPurchase(
        key="index-credit",
        listing="economy-index",
        buyer="credit.analyst",
        buyer_signer="credit.admin",
        seller_signer="grid.admin",
        quantity=3,
        ordered=at(5, 20, 10),
        buyer_signed=at(5, 20, 11),
        seller_signed=at(5, 20, 14),
        channel="api",
        declared={"purpose": "research", "spatial": "450100"},
        delivered=at(5, 21, 10),
        accepted=at(5, 25, 10),
    ),
    DemoPurchase(
        key="index-bank",
        listing="economy-index",
        buyer="bank.risk",
        buyer_signer="bank.admin",
        seller_signer="grid.admin",
        quantity=2,
        ordered=at(6, 1, 10),
        buyer_signed=at(6, 1, 11),
        seller_signed=at(6, 1, 15),
        channel="api",
        declared={"purpose": "credit_finance", "spatial": "450100"},
        delivered=at(6, 2, 10),
        accepted=at(6, 4, 10),
    ),
    # The bank's sandbox subscription: live, so its delivery deadline runs from the load.
    DemoPurchase(
        key="scores-bank",
        listing="credit-scores",
        buyer="bank.risk",
        buyer_signer="bank.admin",
        seller_signer="grid.admin",
        quantity=4,  # four quarters: a year
        ordered=timedelta(days=5, hours=6),
        buyer_signed=timedelta(days=5, hours=5),
        seller_signed=timedelta(days=4, hours=20),
        live=True,
    ),
)


@dataclass(frozen=True)
class DemoBid:
    bidder: str  # username
    amount_fen: int  # per licence
    when: datetime | timedelta


@dataclass(frozen=True)
class DemoAuction:
    """An English auction of one licence of a listing. A closed one (fixed moments) is closed by
    the clock one minute after its deadline and its contract signed, delivered by download and
    accepted; a ``live`` one starts ``created`` before the load and ends ``ends_in`` after it."""

    key: str
    listing: str
    seller: str  # the seller's administrator
    start_fen: int
    reserve_fen: int
    increment_fen: int
    deposit_fen: int
    created: datetime | timedelta
    ends: datetime | timedelta  # fixed, or (live) after the load
    bids: tuple[DemoBid, ...]
    starts: datetime | None = None
    live: bool = False
    winner_signer: str = ""
    winner_receiver: str = ""
    signed: tuple[datetime, datetime] | None = None  # winner, seller
    delivered: datetime | None = None
    declared: dict[str, str] = field(default_factory=dict)
    accepted: datetime | None = None


AUCTIONS: tuple[DemoAuction, ...] = (
    DemoAuction(
        key="cane-1",
        listing="cane-forecast",
        seller="sugar.admin",
        start_fen=2_000_000,
        reserve_fen=2_500_000,
        increment_fen=100_000,
        deposit_fen=500_000,
        created=at(6, 8, 9),
        starts=at(6, 8, 10),
        ends=at(6, 12, 17),
        bids=(
            DemoBid("credit.analyst", 2_000_000, at(6, 8, 10, 30)),
            DemoBid("bank.risk", 2_200_000, at(6, 9, 10)),
            DemoBid("credit.analyst", 2_400_000, at(6, 10, 14)),
            DemoBid("logistics.staff", 2_500_000, at(6, 11, 9)),
            DemoBid("bank.risk", 2_600_000, at(6, 11, 15)),
            # In the last five minutes: the deadline moves to 17:05 (anti-sniping).
            DemoBid("credit.analyst", 2_800_000, at(6, 12, 16, 58)),
        ),
        winner_signer="credit.admin",
        winner_receiver="credit.analyst",
        signed=(at(6, 15, 10), at(6, 15, 14)),
        delivered=at(6, 16, 10),
        declared={"purpose": "product_development", "spatial": "450100"},
        accepted=at(6, 18, 10),
    ),
    DemoAuction(
        key="cane-2",
        listing="cane-forecast",
        seller="sugar.admin",
        start_fen=2_000_000,
        reserve_fen=2_400_000,
        increment_fen=100_000,
        deposit_fen=500_000,
        created=timedelta(hours=5),
        ends=timedelta(days=5),
        bids=(
            DemoBid("bank.risk", 2_000_000, timedelta(hours=3)),
            DemoBid("logistics.staff", 2_100_000, timedelta(hours=2)),
        ),
        live=True,
    ),
)


@dataclass(frozen=True)
class DemoOffer:
    by: str  # username
    price_fen: int
    when: timedelta  # before the load
    note: str


@dataclass(frozen=True)
class DemoNegotiation:
    """A live agreement trade: the buyer's first offer and the counter-offers (the listing's
    broker makes the seller's), accepted by ``accepter``; the contract then signed by
    ``signers`` (the seller's signature is left for the console)."""

    key: str
    listing: str
    offers: tuple[DemoOffer, ...]
    quantity: int
    channels: tuple[str, ...]
    term_days: int
    accepter: str
    accepted: timedelta
    signers: tuple[tuple[str, timedelta], ...]


NEGOTIATIONS: tuple[DemoNegotiation, ...] = (
    DemoNegotiation(
        key="asean-vn",
        listing="asean-outlook",
        offers=(
            DemoOffer(
                "vntrade.admin",
                4_000_000,
                timedelta(days=4, hours=4),
                "用于本公司自东盟进口大宗农产品的采购规划，仅供内部研究使用，不向第三方提供。",
            ),
            DemoOffer(
                "broker.staff",
                4_800_000,
                timedelta(days=3, hours=5),
                "卖方代表：数据含越南、泰国、马来西亚三国逐月数据及走势研判，报价 48,000 元。",
            ),
            DemoOffer(
                "vntrade.admin",
                4_500_000,
                timedelta(days=2, hours=6),
                "接受一年期与下载方式，报价 45,000 元。",
            ),
        ),
        quantity=1,
        channels=("download",),
        term_days=365,
        accepter="asean.admin",
        accepted=timedelta(days=1, hours=6),
        signers=(
            ("vntrade.admin", timedelta(hours=20)),
            ("broker.admin", timedelta(hours=18)),
        ),
    ),
)

#: The live trades never start before this (a clock earlier than the fixed trades would put them
#: before the listings they trade).
LIVE_FLOOR: Final = at(10, 8, 12)


# ---------------------------------------------------------------------------------- the loading


@dataclass
class ExchangeLoadReport:
    """What this load did (a second load does nothing)."""

    steps: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)


class DemoExchangeError(RuntimeError):
    """The demo trades no longer go through the exchange's rules (a rule or the data changed)."""


@dataclass
class _Context:
    db: Database
    settings: Settings
    people: dict[str, Principal]
    keys: PartyKeys
    live: datetime
    report: ExchangeLoadReport
    listing_ids: dict[str, str] = field(default_factory=dict)

    def when(self, moment: datetime | timedelta) -> datetime:
        return self.live - moment if isinstance(moment, timedelta) else moment

    def step(self, name: str) -> None:
        self.report.steps.append(name)


def _party(db: Database, key: str) -> str:
    demo = PARTIES_BY_KEY[key]
    with db.read() as session:
        found = find_party_id(session, demo.code_type, demo.country, demo.code)
    if found is None:
        raise DemoExchangeError(f"demo party {key} is missing: load the demo parties first")
    return str(found)


def _asset_id(ctx: _Context, demo: DemoListing) -> str:
    name = ASSETS_BY_KEY[demo.asset].name
    holder = ctx.people[demo.signer]
    with ctx.db.read() as session:
        rows, _ = registry.list_assets(session, holder, limit=500, offset=0)
    found = next((a for a in rows if a.name == name and a.party_id == holder.party_id), None)
    if found is None:
        raise DemoExchangeError(f"demo asset {demo.asset} is missing: load the pilots first")
    return str(found.id)


# --- listings -----------------------------------------------------------------------------------


def _checklist(demo: DemoListing) -> list[dict[str, str]]:
    out = []
    for item in listings.checklist():
        key = str(item["id"])
        if key == demo.returned_item:
            out.append({"id": key, "outcome": "fail", "note": demo.returned_note})
        else:
            out.append({"id": key, "outcome": "pass", "note": ""})
    return out


def _load_listing(ctx: _Context, demo: DemoListing) -> str:
    """The listing's id, drafted when missing and reviewed as far as ``demo.target``."""
    seller = ctx.people[demo.signer]
    with ctx.db.read() as session:
        rows, _ = listings.list_listings(
            session, seller, listings.ListingQuery(mine=True), limit=500, offset=0
        )
        found = next(
            (r for r in rows if r.title == demo.title and r.seller_id == seller.party_id), None
        )
    if found is None:
        draft = listings.ListingDraft(
            asset_id=_asset_id(ctx, demo),
            title=demo.title,
            title_en=demo.title_en,
            summary=demo.summary,
            industry=demo.industry,
            region=demo.region,
            tags=demo.tags,
            price_model=demo.price_model,
            price_fen=demo.price_fen,
            period=demo.period,
            channels=demo.channels,
            term_days=demo.term_days,
            placement="zone" if demo.zone else "mall",
            zone=demo.zone,
            quantity=demo.quantity,
            cross_border=demo.cross_border,
            broker_id=_party(ctx.db, demo.broker) if demo.broker else None,
        )
        on = demo.drafted.astimezone(CHINA).date()
        with ctx.db.write() as session:
            found = listings.create_listing(
                session, ctx.people[demo.preparer], draft, on=on, now=demo.drafted
            )
        ctx.step(f"listing:{demo.key}:create")
    listing_id = str(found.id)
    plan: list[tuple[str, str, datetime | None]] = [("submit", "draft", demo.submitted)]
    if demo.target != "submitted":
        plan.append(("assess", "submitted", demo.assessed))
    if demo.target == "published":
        plan.append(("approve", "assessed", demo.approved))
    for action, source, moment in plan:
        with ctx.db.read() as session:
            row = listings.get_listing(session, seller, listing_id)
            state = row.state
            done = {e.action for e in listings.listing_events(session, seller, listing_id)}
        if action in done:
            continue  # taken before (by this loader, or in the console since)
        if state != source or moment is None:
            break  # someone moved it elsewhere in the console: left where it is
        on = moment.astimezone(CHINA).date()
        with ctx.db.write() as session:
            if action == "submit":
                listings.submit_listing(
                    session,
                    ctx.people[demo.signer],
                    listing_id,
                    keys=ctx.keys,
                    confirm=True,
                    on=on,
                    now=moment,
                )
            elif action == "assess":
                listings.assess_listing(
                    session,
                    ctx.people[ASSESSOR],
                    listing_id,
                    items=_checklist(demo),
                    opinion=demo.returned_note or OPINION,
                    confirm=True,
                    keys=ctx.keys,
                    now=moment,
                )
            else:
                listings.decide_listing(
                    session, ctx.people[REVIEWER], listing_id, "approve", on=on, now=moment
                )
        ctx.step(f"listing:{demo.key}:{action}")
    return listing_id


# --- contracts and delivery ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    """A contract as one of its parties sees it: state, delivered, and whether that party's
    signatures are all there."""

    state: str
    delivered: bool
    signed: bool


def _contract(ctx: _Context, who: Principal, contract_id: str) -> _Seen:
    with ctx.db.read() as session:
        row = contracts.get_contract(session, who, contract_id)
        mine = contracts.roles_of(row, who.party_id)
        signed = all(getattr(row, f"{role}_signature") is not None for role in mine)
        return _Seen(row.state, row.delivered_at is not None, signed)


def _sign(ctx: _Context, contract_id: str, username: str, moment: datetime, name: str) -> None:
    who = ctx.people[username]
    seen = _contract(ctx, who, contract_id)
    if seen.state != "accepted" or seen.signed:
        return
    with ctx.db.write() as session:
        contracts.sign_contract(session, who, contract_id, keys=ctx.keys, confirm=True, now=moment)
    ctx.step(f"{name}:sign:{username}")


def _deliver(
    ctx: _Context,
    contract_id: str,
    username: str,
    channel: str,
    declared: dict[str, str],
    moment: datetime,
    name: str,
) -> None:
    """The buyer takes the data once, as the delivery endpoints do: a fingerprinted CSV
    download, or one page of the API pull."""
    who = ctx.people[username]
    seen = _contract(ctx, who, contract_id)
    if seen.state != "active" or seen.delivered:
        return
    access = delivery.data_access(ctx.settings)
    with ctx.db.write() as session:
        issued = delivery.issue_token(
            session,
            who,
            contract_id,
            channel=channel,
            declared=declared,
            access=access,
            now=moment,
        )
    secret = issued.secret
    with ctx.db.write() as session:
        if channel == "download":
            attempt = delivery.begin_download(
                session, who, secret, fmt="csv", access=access, now=moment
            )
        else:
            attempt = delivery.begin_pull(
                session, secret, requested=None, access=access, now=moment
            )
    if attempt.refusal is not None or attempt.delivery is None or attempt.source is None:
        raise DemoExchangeError(f"{name}: the delivery was refused: {attempt.refusal}")
    delivery_id = attempt.delivery.id
    if channel == "download":
        marked = delivery.plan_fingerprint(access, attempt)
        with ctx.db.write() as session:
            delivery.store_fingerprint(session, delivery_id, marked.record())
        sent = delivery.Sent()
        for _chunk in delivery.encode(access, attempt, marked, "csv", sent):
            pass  # the buyer's file is not kept: what was sent is recorded below
        rows, size, digest = sent.rows, sent.size, sent.digest.hexdigest()
    else:
        items, _ = delivery.read_page(access, attempt.source, offset=0, limit=100)
        raw = json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()
        rows, size, digest = len(items), len(raw), hashlib.sha256(raw).hexdigest()
    with ctx.db.write() as session:
        delivery.finish_delivery(
            session, delivery_id, rows=rows, size=size, content_hash=digest, now=moment
        )
    ctx.step(f"{name}:deliver:{channel}")


def _accept(ctx: _Context, contract_id: str, username: str, moment: datetime, name: str) -> None:
    who = ctx.people[username]
    seen = _contract(ctx, who, contract_id)
    if seen.state != "active" or not seen.delivered:
        return
    with ctx.db.write() as session:
        contracts.confirm_delivery(session, who, contract_id, now=moment)
    ctx.step(f"{name}:accept")


# --- trades -------------------------------------------------------------------------------------


def _purchase(ctx: _Context, demo: DemoPurchase) -> None:
    buyer = ctx.people[demo.buyer]
    name = f"order:{demo.key}"
    orders.open_buyer_accounts(ctx.db, buyer)
    with ctx.db.write() as session:
        placed = orders.place_order(
            session,
            buyer,
            ctx.listing_ids[demo.listing],
            demo.quantity,
            key=f"demo-exchange-{demo.key}",
            now=ctx.when(demo.ordered),
        )
        contract_id = placed.order.contract_id
        replayed = placed.replayed
    if not replayed:
        ctx.step(name)
    if contract_id is None:
        return
    _sign(ctx, contract_id, demo.buyer_signer, ctx.when(demo.buyer_signed), name)
    _sign(ctx, contract_id, demo.seller_signer, ctx.when(demo.seller_signed), name)
    if demo.channel and demo.delivered is not None:
        _deliver(
            ctx,
            contract_id,
            demo.buyer,
            demo.channel,
            demo.declared,
            ctx.when(demo.delivered),
            name,
        )
    if demo.accepted is not None:
        _accept(ctx, contract_id, demo.buyer_signer, ctx.when(demo.accepted), name)


def _auction(ctx: _Context, demo: DemoAuction, index: int) -> None:
    """The listing's ``index``-th auction (in order of creation), created when missing."""
    seller = ctx.people[demo.seller]
    listing_id = ctx.listing_ids[demo.listing]
    name = f"auction:{demo.key}"
    with ctx.db.read() as session:
        rows, _ = auctions.list_auctions(session, seller, listing_id=listing_id, limit=100)
        ours = sorted(rows, key=lambda a: (a.created_at, a.id))
    if len(ours) > index:
        auction_id = str(ours[index].id)
    elif len(ours) < index:
        return  # an earlier auction is missing: someone cancelled one in the console
    else:
        created = ctx.when(demo.created)
        ends = ctx.when(demo.ends) if not demo.live else _live_end(ctx.live, demo.ends)
        with ctx.db.write() as session:
            auction = auctions.create_auction(
                session,
                seller,
                auctions.AuctionDraft(
                    listing_id=listing_id,
                    start_fen=demo.start_fen,
                    reserve_fen=demo.reserve_fen,
                    increment_fen=demo.increment_fen,
                    deposit_fen=demo.deposit_fen,
                    starts_at=demo.starts,
                    ends_at=ends,
                ),
                now=created,
            )
            auction_id = str(auction.id)
        ctx.step(f"{name}:create")
    bidders = sorted({ctx.people[b.bidder].party_id for b in demo.bids})
    auctions.open_accounts(ctx.db, bidders)
    for n, bid in enumerate(demo.bids, start=1):
        with ctx.db.write() as session:
            placed = auctions.place_bid(
                session,
                ctx.people[bid.bidder],
                auction_id,
                bid.amount_fen,
                key=f"demo-exchange-{demo.key}-bid-{n}",
                now=ctx.when(bid.when),
            )
        if not placed.replayed:
            ctx.step(f"{name}:bid:{n}")
    if demo.live:
        return
    with ctx.db.read() as session:
        row = auctions.get_auction(session, seller, auction_id)
        ends_at, state = row.ends_at, row.state
    if state in ("open", "scheduled"):
        with ctx.db.write() as session:
            # The clock closes it a minute after its (extended) deadline.
            auctions.close_auction(session, None, auction_id, now=ends_at + timedelta(minutes=1))
        ctx.step(f"{name}:close")
    with ctx.db.read() as session:
        contract_id = auctions.get_auction(session, seller, auction_id).contract_id
    if contract_id is None or demo.signed is None:
        return
    _sign(ctx, contract_id, demo.winner_signer, demo.signed[0], name)
    _sign(ctx, contract_id, demo.seller, demo.signed[1], name)
    if demo.delivered is not None:
        _deliver(
            ctx,
            contract_id,
            demo.winner_receiver,
            "download",
            demo.declared,
            demo.delivered,
            name,
        )
    if demo.accepted is not None:
        _accept(ctx, contract_id, demo.winner_signer, demo.accepted, name)


def _live_end(live: datetime, after: datetime | timedelta) -> datetime:
    """A live auction's deadline: 17:00 China time on the day ``after`` the load."""
    assert isinstance(after, timedelta)
    day = (live + after).astimezone(CHINA).date()
    return datetime(day.year, day.month, day.day, 17, tzinfo=CHINA).astimezone(UTC)


def _negotiation(ctx: _Context, demo: DemoNegotiation) -> None:
    first = demo.offers[0]
    buyer = ctx.people[first.by]
    listing_id = ctx.listing_ids[demo.listing]
    name = f"negotiation:{demo.key}"
    with ctx.db.read() as session:
        rows, _ = negotiation.list_negotiations(session, buyer, role="buyer", limit=500)
        mine = [r for r in rows if r.listing_id == listing_id]
        found = min(mine, key=lambda r: (r.created_at, r.id), default=None)  # the demo's first
    negotiation.open_accounts(ctx.db, [buyer.party_id])
    if found is None:
        with ctx.db.write() as session:
            found = negotiation.open_negotiation(
                session,
                buyer,
                listing_id,
                negotiation.Terms(
                    price_fen=first.price_fen,
                    quantity=demo.quantity,
                    channels=demo.channels,
                    term_days=demo.term_days,
                    note=first.note,
                ),
                now=ctx.when(first.when),
            )
        ctx.step(f"{name}:open")
    negotiation_id = str(found.id)
    for seq, offer in enumerate(demo.offers[1:], start=2):
        with ctx.db.read() as session:
            row = negotiation.get_negotiation(session, buyer, negotiation_id)
            latest = negotiation.latest_offer(session, negotiation_id).seq
            state = row.state
        if state != "open" or latest >= seq:
            continue
        with ctx.db.write() as session:
            negotiation.make_offer(
                session,
                ctx.people[offer.by],
                negotiation_id,
                negotiation.Terms(price_fen=offer.price_fen, note=offer.note),
                now=ctx.when(offer.when),
            )
        ctx.step(f"{name}:offer:{seq}")
    with ctx.db.read() as session:
        row = negotiation.get_negotiation(session, buyer, negotiation_id)
        state, contract_id = row.state, row.contract_id
        latest = negotiation.latest_offer(session, negotiation_id).seq
    if state == "open" and latest == len(demo.offers):
        with ctx.db.write() as session:
            accepted = negotiation.accept_offer(
                session,
                ctx.people[demo.accepter],
                negotiation_id,
                seq=latest,
                now=ctx.when(demo.accepted),
            )
            contract_id = accepted.contract.id
        ctx.step(f"{name}:accept")
    if contract_id is None:
        return
    for username, moment in demo.signers:
        _sign(ctx, contract_id, username, ctx.when(moment), name)


def load_exchange(
    db: Database, settings: Settings, *, now: datetime | None = None
) -> ExchangeLoadReport:
    """The demo province's listings and trades (see the module docstring). ``now``: the clock
    the live trades are placed against (the real one by default)."""
    from datafactor.demo.loader import demo_principals

    report = ExchangeLoadReport()
    moment = max(now or utcnow(), LIVE_FLOOR).replace(second=0, microsecond=0)
    ctx = _Context(db, settings, demo_principals(db), party_keys(settings), moment, report)
    for demo in LISTINGS:
        ctx.listing_ids[demo.key] = _load_listing(ctx, demo)
    steps: list[tuple[datetime, Callable[[], None]]] = []
    for purchase in PURCHASES:
        steps.append((ctx.when(purchase.ordered), _bind(_purchase, ctx, purchase)))
    per_listing: dict[str, int] = {}
    for auction in AUCTIONS:
        index = per_listing.get(auction.listing, 0)
        per_listing[auction.listing] = index + 1
        steps.append((ctx.when(auction.created), _bind(_auction, ctx, auction, index)))
    for agreement in NEGOTIATIONS:
        steps.append((ctx.when(agreement.offers[0].when), _bind(_negotiation, ctx, agreement)))
    # In the order they began, so numbers follow dates as in a real exchange.
    for _, run in sorted(steps, key=lambda s: s[0]):
        run()
    return report


def _bind(function: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: function(*args)
