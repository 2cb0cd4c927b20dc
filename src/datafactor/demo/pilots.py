"""The registry pilots of the demo province, as plain data: data sets, assets and registrations.

The plan (桂政办发〔2023〕51号, annex, task 1) asks for research and verification scenarios of the
data base system: "开展6个公共数据确权授权运营场景试点", led by the big-data bureau with "南宁、柳州市
人民政府，自治区自然资源厅、交通运输厅、农业农村厅，广西电网公司"; "开展2个企业数据确权授权运营场景
试点" (the power grid's electricity data first: "优先在电力数据应用领域"); and "开展1个跨境商贸类数据
确权授权运营场景试点". This module declares one registered data resource per public-data pilot body,
the grid's and a logistics firm's enterprise data, an ASEAN trade data set, two products derived
from them with their lineage, a licence, a pledge, three applications still under way and one
under objection — what ``loader.load_pilots`` drives through the registry's real services.

Every data set's bytes are generated here, deterministically (a seeded ``random.Random`` per data
set, fixed dates), so two loads store byte-identical files with the same SHA-256. The rows are
synthetic: station names, companies, plots and prices are invented and describe no real record.
No database code lives here.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Literal

from datafactor.identity.codes import make_uscc

#: The plan's three pilot lines (annex, task 1, 主要措施), quoted.
PILOT_LINES: tuple[str, ...] = (
    "开展6个公共数据确权授权运营场景试点。",
    "开展2个企业数据确权授权运营场景试点。",
    "开展1个跨境商贸类数据确权授权运营场景试点。",
)
#: Who carries the six public-data pilots, as the plan names them (annex, task 1, 配合单位).
PUBLIC_PILOT_BODIES_QUOTED = (
    "南宁、柳州市人民政府，自治区自然资源厅、交通运输厅、农业农村厅，广西电网公司"
)
#: The six pilots, one per body: (the body as the plan names it, its demo party key, asset key).
PUBLIC_PILOTS: tuple[tuple[str, str, str], ...] = (
    ("南宁市人民政府", "gov-nanning", "nanning-entities"),
    ("柳州市人民政府", "gov-liuzhou", "liuzhou-charging"),
    ("自治区自然资源厅", "gov-natres", "natres-land-use"),
    ("自治区交通运输厅", "gov-transport", "transport-tolls"),
    ("自治区农业农村厅", "gov-agri", "agri-prices"),
    ("广西电网公司", "power-grid", "grid-sector-power"),
)
#: The two enterprise-data pilots (the grid's electricity data, a logistics firm) and the
#: cross-border trade pilot: asset keys.
ENTERPRISE_PILOTS: tuple[str, ...] = ("grid-customers", "logistics-clearance")
CROSS_BORDER_PILOTS: tuple[str, ...] = ("asean-trade",)

ScenarioName = Literal["public", "enterprise", "cross_border", "other"]
TargetState = Literal[
    "certified", "formal_review", "substantive_review", "public_notice", "objection"
]

# ------------------------------------------------------------------------------ row generators

Rows = list[list[Any]]


def _csv(header: tuple[str, ...], rows: Rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def _months(year: int, n: int) -> list[str]:
    return [f"{year + (m // 12)}-{m % 12 + 1:02d}" for m in range(n)]


_NANNING_DISTRICTS = ("兴宁区", "青秀区", "江南区", "西乡塘区", "良庆区", "邕宁区", "武鸣区")
_LIUZHOU_DISTRICTS = ("城中区", "鱼峰区", "柳南区", "柳北区", "柳江区")
_GX_DIVISIONS = (
    ("450100", "南宁市"),
    ("450200", "柳州市"),
    ("450300", "桂林市"),
    ("450500", "北海市"),
    ("450700", "钦州市"),
    ("451400", "崇左市"),
)


def _nanning_registrations(rng: random.Random) -> Rows:
    industries = (
        "批发和零售业",
        "信息传输、软件和信息技术服务业",
        "制造业",
        "住宿和餐饮业",
        "建筑业",
    )
    words = ("邕城", "绿城", "青秀", "朝阳", "凤岭", "五象", "相思湖", "南湖")
    trades = ("商贸", "科技", "食品", "建材", "餐饮", "信息")
    rows: Rows = []
    for i in range(160):
        code = make_uscc("9", "1", "450100", f"DN{i:06d}")
        name = f"南宁{rng.choice(words)}{rng.choice(trades)}有限公司（演示{i:03d}）"
        founded = date(2015, 1, 1) + timedelta(days=rng.randrange(3650))
        rows.append(
            [
                code,
                name,
                founded.isoformat(),
                rng.choice(industries),
                rng.choice((50, 100, 200, 500, 1000, 3000)),
                rng.choice(_NANNING_DISTRICTS),
                rng.choice(("存续", "存续", "存续", "迁出")),
            ]
        )
    return rows


def _liuzhou_charging(rng: random.Random) -> Rows:
    stations = [f"LZCD{n:04d}" for n in range(1, 13)]
    rows: Rows = []
    for day in _days(date(2025, 10, 1), 20):
        for station in stations:
            sessions = rng.randint(20, 180)
            rows.append(
                [
                    station,
                    _LIUZHOU_DISTRICTS[int(station[-2:]) % len(_LIUZHOU_DISTRICTS)],
                    day.isoformat(),
                    sessions,
                    round(sessions * rng.uniform(18, 32), 1),
                    round(rng.uniform(0.35, 0.92), 2),
                ]
            )
    return rows


def _land_use(rng: random.Random) -> Rows:
    classes = (
        "耕地",
        "园地",
        "林地",
        "草地",
        "城镇村及工矿用地",
        "交通运输用地",
        "水域及水利设施用地",
    )
    rows: Rows = []
    for year in (2022, 2023, 2024):
        for code, city in _GX_DIVISIONS:
            for land in classes:
                rows.append([code, city, year, land, round(rng.uniform(800, 95000), 2)])
    return rows


def _toll_traffic(rng: random.Random) -> Rows:
    plazas = ("南宁东", "柳州北", "桂林西", "北海", "钦州港", "凭祥", "友谊关")
    vehicles = ("一类客车", "二类客车", "一类货车", "三类货车", "六类货车")
    rows: Rows = []
    for day in _days(date(2025, 9, 1), 10):
        for plaza in plazas:
            for vehicle in vehicles:
                rows.append(
                    [
                        plaza,
                        day.isoformat(),
                        vehicle,
                        rng.randint(120, 9000),
                        rng.choice(("入口", "出口")),
                    ]
                )
    return rows


def _farm_prices(rng: random.Random) -> Rows:
    markets = ("南宁五里亭蔬菜批发市场", "柳州柳邕农副产品批发市场", "田阳农副产品综合批发市场")
    goods = (("甘蔗", 0.6), ("沙糖桔", 4.5), ("芒果", 6.0), ("百香果", 8.0), ("大白菜", 1.8))
    rows: Rows = []
    for day in _days(date(2025, 11, 3), 15):
        for market in markets:
            for product, base in goods:
                rows.append(
                    [market, product, day.isoformat(), round(base * rng.uniform(0.8, 1.25), 2)]
                )
    return rows


def _power_by_sector(rng: random.Random) -> Rows:
    sectors = ("第一产业", "第二产业", "第三产业", "城乡居民生活")
    rows: Rows = []
    for month in _months(2024, 12):
        for code, city in _GX_DIVISIONS:
            for sector in sectors:
                rows.append([code, city, month, sector, round(rng.uniform(1200, 68000), 1)])
    return rows


def _grid_customers(rng: random.Random) -> Rows:
    industries = ("制糖", "有色金属冶炼", "汽车制造", "数据中心", "港口物流", "商贸零售")
    rows: Rows = []
    for n in range(60):
        account = f"GXDW-{n:06d}"
        industry = rng.choice(industries)
        county = rng.choice(_GX_DIVISIONS)[0]
        base = rng.uniform(8, 900)
        for month in _months(2025, 6):
            rows.append(
                [
                    account,
                    industry,
                    county,
                    month,
                    round(base * rng.uniform(0.85, 1.2), 2),
                    rng.choice(("按期缴费", "按期缴费", "按期缴费", "逾期≤30天")),
                ]
            )
    return rows


def _economy_index(rng: random.Random) -> Rows:
    industries = ("制糖", "有色金属冶炼", "汽车制造", "数据中心", "港口物流", "商贸零售")
    rows: Rows = []
    for month in _months(2025, 6):
        for industry in industries:
            rows.append(
                [
                    month,
                    industry,
                    round(rng.uniform(88, 118), 1),
                    rng.choice(("扩张", "平稳", "收缩")),
                ]
            )
    return rows


def _border_clearance(rng: random.Random) -> Rows:
    ports = ("友谊关口岸", "凭祥铁路口岸", "东兴口岸", "水口口岸")
    cargo = ("水果", "机电产品", "纺织品", "坚果", "海产品")
    rows: Rows = []
    for n in range(200):
        entered = date(2025, 8, 1) + timedelta(days=n // 8)
        rows.append(
            [
                f"BMT{entered:%Y%m%d}{n:04d}",
                rng.choice(ports),
                rng.choice(("进境", "出境")),
                rng.choice(cargo),
                round(rng.uniform(2, 32), 1),
                entered.isoformat(),
                rng.randint(25, 480),
            ]
        )
    return rows


def _asean_trade(rng: random.Random) -> Rows:
    goods = (
        ("080450", "芒果干及鲜芒果"),
        ("080410", "椰枣"),
        ("081090", "榴莲等鲜果"),
        ("100630", "大米"),
        ("851762", "通信设备"),
        ("400122", "天然橡胶"),
    )
    countries = ("VN", "TH", "MY", "ID", "KH", "LA")
    rows: Rows = []
    for month in _months(2025, 6):
        for hs, name in goods:
            for country in rng.sample(countries, 3):
                rows.append(
                    [
                        month,
                        hs,
                        name,
                        country,
                        rng.choice(("进口", "出口")),
                        round(rng.uniform(20, 2400), 1),
                        round(rng.uniform(5, 900), 1),
                    ]
                )
    return rows


def _charging_heatmap(rng: random.Random) -> Rows:
    rows: Rows = []
    for district in _LIUZHOU_DISTRICTS:
        for hour in range(0, 24, 2):
            rows.append(
                [district, f"{hour:02d}:00", round(rng.uniform(0.1, 1.0), 2), rng.randint(1, 40)]
            )
    return rows


def _sugarcane(rng: random.Random) -> Rows:
    towns = ("扶南镇", "驮卢镇", "新和镇", "濑湍镇", "左州镇")
    rows: Rows = []
    for n in range(150):
        rows.append(
            [
                f"GT-ZZ-{n:05d}",
                rng.choice(towns),
                round(rng.uniform(5, 120), 1),
                rng.choice(("桂糖42号", "桂柳05136", "新台糖22号")),
                round(rng.uniform(5.2, 7.8), 2),
                round(rng.uniform(480, 560), 0),
            ]
        )
    return rows


def _sme_survey(rng: random.Random) -> Rows:
    rows: Rows = []
    for n in range(120):
        rows.append(
            [
                f"SME-{n:05d}",
                rng.choice(_NANNING_DISTRICTS),
                rng.choice(("批发和零售业", "制造业", "住宿和餐饮业")),
                rng.randint(3, 95),
                round(rng.uniform(50, 5000), 1),
                rng.choice(("A", "B", "B", "C")),
            ]
        )
    return rows


def _port_calls(rng: random.Random) -> Rows:
    berths = ("北海港铁山港区1号泊位", "北海港石步岭港区3号泊位", "钦州港大榄坪5号泊位")
    rows: Rows = []
    for n in range(140):
        day = date(2025, 7, 1) + timedelta(days=n // 5)
        rows.append(
            [
                f"VOY{day:%Y%m%d}{n:03d}",
                rng.choice(berths),
                rng.choice(("散货船", "集装箱船", "油轮", "滚装船")),
                day.isoformat(),
                rng.randint(4, 72),
                rng.randint(3000, 75000),
            ]
        )
    return rows


# --- the exchange's products (issue 7: the demo province trades) ------------------------------


def _credit_scores(rng: random.Random) -> Rows:
    industries = ("制造业", "批发和零售业", "住宿和餐饮业", "交通运输业", "建筑业")
    rows: Rows = []
    for n in range(120):
        score = rng.randint(420, 880)
        grade = "AAA" if score >= 800 else "AA" if score >= 700 else "A" if score >= 600 else "B"
        rows.append(
            [f"GXDW{n * 7919 % 100000:05d}", rng.choice(industries), "2025-06", score, grade]
        )
    return rows


def _port_throughput(rng: random.Random) -> Rows:
    areas = ("钦州港区", "防城港区", "北海港区")
    cargo = ("集装箱", "煤炭", "金属矿石", "粮食", "液体化工")
    rows: Rows = []
    for month in _months(2025, 8):
        for area in areas:
            for kind in cargo:
                rows.append(
                    [month, area, kind, round(rng.uniform(12, 480), 1), rng.randint(0, 90000)]
                )
    return rows


def _port_monthly(rng: random.Random) -> Rows:
    rows: Rows = []
    for month in _months(2025, 12):
        for area in ("钦州港区", "防城港区", "北海港区"):
            total = round(rng.uniform(600, 1900), 1)
            rows.append([month, area, total, round(rng.uniform(-8, 15), 1), rng.randint(8, 40)])
    return rows


def _cane_monitoring(rng: random.Random) -> Rows:
    towns = ("扶南镇", "驮卢镇", "新和镇", "濑湍镇", "左州镇")
    rows: Rows = []
    for n in range(120):
        rows.append(
            [
                f"GT-JC-{n:05d}",
                rng.choice(towns),
                round(rng.uniform(0.35, 0.88), 2),
                round(rng.uniform(80, 260), 0),
                rng.choice(("正常", "正常", "轻度干旱", "病虫害预警")),
            ]
        )
    return rows


def _cane_forecast(rng: random.Random) -> Rows:
    rows: Rows = []
    for season in ("2024/2025", "2025/2026"):
        for town in ("扶南镇", "驮卢镇", "新和镇", "濑湍镇", "左州镇"):
            for variety in ("桂糖42号", "桂柳05136", "新台糖22号"):
                yield_per_mu = round(rng.uniform(5.4, 7.6), 2)
                total = round(rng.uniform(1.8, 9.5), 1)
                rows.append(
                    [season, town, variety, yield_per_mu, total, round(rng.uniform(0.72, 0.93), 2)]
                )
    return rows


def _asean_outlook(rng: random.Random) -> Rows:
    goods = ("芒果干及鲜芒果", "榴莲等鲜果", "大米", "天然橡胶", "通信设备")
    rows: Rows = []
    for month in _months(2025, 6):
        for name in goods:
            for country in ("VN", "TH", "MY"):
                rows.append(
                    [
                        month,
                        name,
                        country,
                        round(rng.uniform(50, 3000), 1),
                        round(rng.uniform(-20, 35), 1),
                        rng.choice(("上升", "平稳", "下降")),
                    ]
                )
    return rows


# ----------------------------------------------------------------------------------- the data


@dataclass(frozen=True, kw_only=True)
class DemoDataset:
    """A data set of a demo party with one generated CSV version.

    ``scan`` False leaves the version unscanned, so an application for it waits in formal review
    for the discovery grade (``REG-SCAN-GRADE``), as a real one would.
    """

    key: str
    party: str  # DemoParty.key
    user: str  # the username that uploads it
    name: str
    name_en: str
    description: str
    domain: str  # dataplane.DataDomain value
    update_frequency: str  # dataplane.UpdateFrequency value
    filename: str
    header: tuple[str, ...]
    generate: Callable[[random.Random], Rows]
    seed: int
    scan: bool = True

    def content(self) -> bytes:
        """The version's bytes: the same on every call and every machine."""
        return _csv(self.header, self.generate(random.Random(self.seed)))

    def row_count(self) -> int:
        return len(self.generate(random.Random(self.seed)))


@dataclass(frozen=True, kw_only=True)
class DemoAsset:
    """A registrable object declared from a demo data set (registry ``AssetDraft``)."""

    key: str
    dataset: str  # DemoDataset.key
    scenario: ScenarioName
    kind: Literal["resource", "product"]
    data_class: Literal["public", "enterprise", "personal"]
    name: str
    name_en: str
    description: str
    source_statement: str
    collection_method: str
    coverage: str
    region: str
    delivery_mode: str
    sample: str = ""
    lineage: tuple[str, ...] = ()  # DemoAsset keys of the sources


@dataclass(frozen=True, kw_only=True)
class DemoObjection:
    """An objection lodged during the public notice (stays open: the registrar has not decided)."""

    user: str
    grounds: tuple[str, ...]
    statement: str
    evidence: tuple[str, ...]
    lodged_after: int = 1  # working days after the notice starts


@dataclass(frozen=True, kw_only=True)
class DemoRegistration:
    """One registration application and how far the demo takes it.

    ``type`` is a registry ``RegistrationType`` value. ``right_of`` names the registration whose
    resulting right this one acts on (a licence's parent, the pledged right); ``counterparty`` the
    licensee or pledgee (a DemoParty key). The registrar acts on the working day after each step;
    a notice is closed on the first working day after its last day.
    """

    key: str
    type: Literal["initial", "licence", "pledge"]
    user: str  # the applicant's username
    asset: str  # DemoAsset key
    submitted_on: date
    target: TargetState = "certified"
    scope: dict[str, Any] = field(default_factory=dict)
    term_end: date | None = None
    right_of: str | None = None
    counterparty: str | None = None
    objection: DemoObjection | None = None


#: The registrar of the demo: the exchange operator is the registration authority (登记机构).
REGISTRAR = "exchange.reviewer"

DATASETS: tuple[DemoDataset, ...] = (
    # --- the six public-data pilots (公共数据确权授权运营场景) -----------------------------------
    DemoDataset(
        key="nanning-entities",
        party="gov-nanning",
        user="nanning.staff",
        name="南宁市市场主体登记信息",
        name_en="Nanning register of market entities",
        description="南宁市各城区市场主体的登记信息（演示数据，合成生成）。",
        domain="public_administration",
        update_frequency="daily",
        filename="nanning_market_entities.csv",
        header=(
            "统一社会信用代码",
            "企业名称",
            "成立日期",
            "行业门类",
            "注册资本万元",
            "所在城区",
            "登记状态",
        ),
        generate=_nanning_registrations,
        seed=4501,
    ),
    DemoDataset(
        key="liuzhou-charging",
        party="gov-liuzhou",
        user="liuzhou.staff",
        name="柳州市新能源汽车充电设施运行数据",
        name_en="Liuzhou EV charging station operations",
        description="柳州市公共充电站每日充电次数、充电量与利用率（演示数据）。",
        domain="energy",
        update_frequency="daily",
        filename="liuzhou_charging.csv",
        header=("充电站编号", "所在城区", "日期", "充电次数", "充电量千瓦时", "桩利用率"),
        generate=_liuzhou_charging,
        seed=4502,
    ),
    DemoDataset(
        key="natres-land-use",
        party="gov-natres",
        user="natres.staff",
        name="广西土地利用现状分类面积统计",
        name_en="Guangxi land use by class (area statistics)",
        description="按设区市、年度和地类汇总的土地利用现状面积（演示数据，汇总级，不含图斑坐标）。",
        domain="natural_resources",
        update_frequency="yearly",
        filename="gx_land_use.csv",
        header=("行政区划代码", "设区市", "年度", "地类", "面积公顷"),
        generate=_land_use,
        seed=4503,
    ),
    DemoDataset(
        key="transport-tolls",
        party="gov-transport",
        user="transport.staff",
        name="广西高速公路收费站车流量统计",
        name_en="Guangxi expressway toll plaza traffic counts",
        description="主要收费站按日、车型、方向汇总的车流量（演示数据）。",
        domain="transport",
        update_frequency="daily",
        filename="gx_toll_traffic.csv",
        header=("收费站", "日期", "车型", "车流量辆次", "方向"),
        generate=_toll_traffic,
        seed=4504,
    ),
    DemoDataset(
        key="agri-prices",
        party="gov-agri",
        user="agri.staff",
        name="广西农产品批发市场价格监测数据",
        name_en="Guangxi wholesale farm produce prices",
        description="重点批发市场甘蔗、沙糖桔、芒果等农产品日价格（演示数据）。",
        domain="agriculture",
        update_frequency="daily",
        filename="gx_farm_prices.csv",
        header=("批发市场", "品种", "日期", "价格元每公斤"),
        generate=_farm_prices,
        seed=4505,
    ),
    DemoDataset(
        key="grid-sector-power",
        party="power-grid",
        user="grid.data",
        name="广西分行业用电量统计",
        name_en="Guangxi electricity consumption by sector",
        description="设区市按月、按产业汇总的全社会用电量（演示数据）。",
        domain="energy",
        update_frequency="monthly",
        filename="gx_power_by_sector.csv",
        header=("行政区划代码", "设区市", "月份", "产业分类", "用电量万千瓦时"),
        generate=_power_by_sector,
        seed=4506,
    ),
    # --- the two enterprise-data pilots (企业数据确权授权运营场景) -------------------------------
    DemoDataset(
        key="grid-customers",
        party="power-grid",
        user="grid.data",
        name="工商业用户月度用电与缴费数据",
        name_en="Commercial and industrial customers' monthly consumption and payment",
        description="脱敏户号下的工商业用户月度用电量与缴费情况，用于电力看经济、电力征信（演示数据）。",
        domain="energy",
        update_frequency="monthly",
        filename="grid_customers_monthly.csv",
        header=("脱敏户号", "行业", "所在地区代码", "月份", "用电量万千瓦时", "缴费情况"),
        generate=_grid_customers,
        seed=4507,
    ),
    DemoDataset(
        key="grid-economy-index",
        party="power-grid",
        user="grid.data",
        name="电力看经济·重点行业景气指数",
        name_en="Power-based economic index of key industries",
        description="由工商业用户用电数据加工的重点行业月度景气指数（演示数据产品）。",
        domain="energy",
        update_frequency="monthly",
        filename="grid_economy_index.csv",
        header=("月份", "行业", "景气指数", "景气状态"),
        generate=_economy_index,
        seed=4508,
    ),
    DemoDataset(
        key="logistics-clearance",
        party="logistics",
        user="logistics.staff",
        name="凭祥口岸跨境货运通关时效数据",
        name_en="Pingxiang border crossings: freight clearance times",
        description="本公司承运的跨境货运车辆在各口岸的通关时效记录（演示数据）。",
        domain="transport",
        update_frequency="daily",
        filename="pingxiang_clearance.csv",
        header=("运单编号", "口岸", "进出境", "货物类别", "重量吨", "入境日期", "通关耗时分钟"),
        generate=_border_clearance,
        seed=4509,
    ),
    # --- the cross-border trade pilot (跨境商贸类数据确权授权运营场景) --------------------------
    DemoDataset(
        key="asean-trade",
        party="merchant-asean",
        user="asean.staff",
        name="中国—东盟重点商品进出口贸易数据",
        name_en="China–ASEAN trade in key goods",
        description="按月、按商品编码和东盟国家汇总的进出口量值（演示数据）。",
        domain="commerce",
        update_frequency="monthly",
        filename="china_asean_trade.csv",
        header=("月份", "HS编码", "商品名称", "贸易国别", "进出口", "金额万美元", "数量吨"),
        generate=_asean_trade,
        seed=4510,
    ),
    # --- a product of the public data operator, and the applications still under way ---------------
    DemoDataset(
        key="pdo-charging-heatmap",
        party="pdo",
        user="pdo.staff",
        name="柳州充电需求时空热力产品",
        name_en="Liuzhou charging demand heat map",
        description="基于柳州市充电设施运行数据在沙箱内加工的分城区、分时段充电需求指数（演示数据产品）。",
        domain="energy",
        update_frequency="monthly",
        filename="liuzhou_charging_heatmap.csv",
        header=("城区", "时段", "需求指数", "推荐新增桩数"),
        generate=_charging_heatmap,
        seed=4511,
    ),
    DemoDataset(
        key="sugar-cane",
        party="sugar",
        user="sugar.staff",
        name="糖料蔗种植与收购数据",
        name_en="Sugarcane planting and purchase records",
        description="合作蔗区地块的种植品种、面积、预估单产与收购价（演示数据）。",
        domain="agriculture",
        update_frequency="yearly",
        filename="sugarcane_fields.csv",
        header=("地块编号", "乡镇", "面积亩", "品种", "预估单产吨每亩", "收购价元每吨"),
        generate=_sugarcane,
        seed=4512,
        scan=False,
    ),
    DemoDataset(
        key="credit-sme",
        party="credit",
        user="credit.analyst",
        name="南宁小微企业经营状况调查数据",
        name_en="Nanning small business conditions survey",
        description="抽样小微企业的从业人数、营业收入与信用等级（演示数据）。",
        domain="finance",
        update_frequency="quarterly",
        filename="nanning_sme_survey.csv",
        header=("样本编号", "所在城区", "行业", "从业人数", "营业收入万元", "信用等级"),
        generate=_sme_survey,
        seed=4513,
    ),
    DemoDataset(
        key="ocean-port-calls",
        party="merchant-ocean",
        user="ocean.admin",
        name="北部湾港船舶进出港作业数据",
        name_en="Beibu Gulf port calls",
        description="北部湾港主要泊位的船舶进出港与作业量记录（演示数据）。",
        domain="transport",
        update_frequency="daily",
        filename="beibu_port_calls.csv",
        header=("航次编号", "泊位", "船舶类型", "靠泊日期", "作业时长小时", "装卸量吨"),
        generate=_port_calls,
        seed=4514,
    ),
    # --- the exchange's products (issue 7): what the demo province trades ------------------------
    DemoDataset(
        key="grid-credit-scores",
        party="power-grid",
        user="grid.data",
        name="电力信用评分",
        name_en="Electricity-based credit scores",
        description="由工商业用户用电与缴费行为加工的企业电力信用评分，仅在沙箱内可用（演示数据产品）。",
        domain="energy",
        update_frequency="monthly",
        filename="grid_credit_scores.csv",
        header=("脱敏户号", "行业", "评分月份", "电力信用分", "信用等级"),
        generate=_credit_scores,
        seed=4515,
    ),
    DemoDataset(
        key="port-throughput",
        party="merchant-ocean",
        user="ocean.admin",
        name="北部湾港分港区货物吞吐量统计",
        name_en="Beibu Gulf port throughput by area and cargo",
        description="北部湾港各港区分货类的月度吞吐量与集装箱量（演示数据）。",
        domain="transport",
        update_frequency="monthly",
        filename="beibu_port_throughput.csv",
        header=("月份", "港区", "货类", "吞吐量万吨", "集装箱标箱"),
        generate=_port_throughput,
        seed=4516,
    ),
    DemoDataset(
        key="port-throughput-monthly",
        party="merchant-ocean",
        user="ocean.admin",
        name="北部湾港吞吐量月报",
        name_en="Beibu Gulf port throughput monthly",
        description="按港区汇总的月度货物吞吐量、同比增速与在港船舶数（演示数据产品）。",
        domain="transport",
        update_frequency="monthly",
        filename="beibu_port_monthly.csv",
        header=("月份", "港区", "吞吐量万吨", "同比增速百分比", "在港船舶数"),
        generate=_port_monthly,
        seed=4517,
    ),
    DemoDataset(
        key="cane-monitoring",
        party="sugar",
        user="sugar.staff",
        name="蔗区地块长势监测数据",
        name_en="Sugarcane plot growth monitoring",
        description="合作蔗区地块的植被指数、降水与长势预警（演示数据）。",
        domain="agriculture",
        update_frequency="monthly",
        filename="cane_monitoring.csv",
        header=("地块编号", "乡镇", "植被指数", "累计降水毫米", "长势预警"),
        generate=_cane_monitoring,
        seed=4518,
    ),
    DemoDataset(
        key="cane-yield-forecast",
        party="sugar",
        user="sugar.staff",
        name="糖料蔗产量预测",
        name_en="Sugarcane yield forecast",
        description="分乡镇、分品种的本榨季糖料蔗单产与总产预测（演示数据产品）。",
        domain="agriculture",
        update_frequency="yearly",
        filename="cane_yield_forecast.csv",
        header=("榨季", "乡镇", "品种", "预测单产吨每亩", "预测总产万吨", "置信度"),
        generate=_cane_forecast,
        seed=4519,
    ),
    DemoDataset(
        key="asean-trade-outlook",
        party="merchant-asean",
        user="asean.staff",
        name="东盟重点商品贸易月度分析",
        name_en="ASEAN key goods trade monthly outlook",
        description="中国与越南、泰国、马来西亚重点商品贸易额、增速与走势研判（演示数据产品）。",
        domain="commerce",
        update_frequency="monthly",
        filename="asean_trade_outlook.csv",
        header=("月份", "商品名称", "贸易国别", "金额万美元", "同比增速百分比", "走势研判"),
        generate=_asean_outlook,
        seed=4520,
    ),
)
DATASETS_BY_KEY = MappingProxyType({d.key: d for d in DATASETS})


def _product(
    key: str,
    *,
    source: str,
    coverage: str,
    region: str,
    delivery_mode: str,
    sample: str,
    lineage: tuple[str, ...],
    scenario: ScenarioName = "enterprise",
) -> DemoAsset:
    """A data product made from its holder's own registered data (the dataset's names)."""
    data = DATASETS_BY_KEY[key]
    return DemoAsset(
        key=key,
        dataset=key,
        scenario=scenario,
        kind="product",
        data_class="enterprise",
        name=data.name,
        name_en=data.name_en,
        description=data.description,
        source_statement=source,
        collection_method="数据加工",
        coverage=coverage,
        region=region,
        delivery_mode=delivery_mode,
        sample=sample,
        lineage=lineage,
    )


def _public(key: str, dataset: str, name: str, name_en: str, region: str, source: str) -> DemoAsset:
    data = DATASETS_BY_KEY[dataset]
    return DemoAsset(
        key=key,
        dataset=dataset,
        scenario="public",
        kind="resource",
        data_class="public",
        name=name,
        name_en=name_en,
        description=data.description,
        source_statement=source,
        collection_method="依法履职过程中采集、汇聚",
        coverage="2022-01 至 2025-12",
        region=region,
        delivery_mode="sandbox",
    )


ASSETS: tuple[DemoAsset, ...] = (
    _public(
        "nanning-entities",
        "nanning-entities",
        "南宁市市场主体登记公共数据",
        "Nanning market entity register (public data)",
        "450100",
        "南宁市人民政府在市场主体登记履职中产生，经授权运营机制提供",
    ),
    _public(
        "liuzhou-charging",
        "liuzhou-charging",
        "柳州市新能源汽车充电设施运行公共数据",
        "Liuzhou EV charging operations (public data)",
        "450200",
        "柳州市人民政府充电设施监管平台汇聚",
    ),
    _public(
        "natres-land-use",
        "natres-land-use",
        "广西土地利用现状统计公共数据",
        "Guangxi land use statistics (public data)",
        "450000",
        "自治区自然资源厅国土变更调查成果汇总",
    ),
    _public(
        "transport-tolls",
        "transport-tolls",
        "广西高速公路车流量公共数据",
        "Guangxi expressway traffic (public data)",
        "450000",
        "自治区交通运输厅高速公路联网收费系统汇聚",
    ),
    _public(
        "agri-prices",
        "agri-prices",
        "广西农产品批发价格公共数据",
        "Guangxi wholesale farm prices (public data)",
        "450000",
        "自治区农业农村厅农产品市场信息监测采集",
    ),
    _public(
        "grid-sector-power",
        "grid-sector-power",
        "广西分行业用电量公共数据",
        "Guangxi power consumption by sector (public data)",
        "450000",
        "广西电网公司在提供公共服务中产生的电力统计数据",
    ),
    DemoAsset(
        key="grid-customers",
        dataset="grid-customers",
        scenario="enterprise",
        kind="resource",
        data_class="enterprise",
        name="电网工商业用户用电行为数据",
        name_en="Grid C&I customers' consumption behaviour",
        description=DATASETS_BY_KEY["grid-customers"].description,
        source_statement="广西电网公司计量自动化系统与营销系统自行采集，户号已脱敏",
        collection_method="计量自动化系统自动采集",
        coverage="2025-01 至 2025-06",
        region="450000",
        delivery_mode="sandbox",
    ),
    DemoAsset(
        key="grid-economy-index",
        dataset="grid-economy-index",
        scenario="enterprise",
        kind="product",
        data_class="enterprise",
        name="电力看经济·重点行业景气指数",
        name_en="Power-based economic index of key industries",
        description=DATASETS_BY_KEY["grid-economy-index"].description,
        source_statement="由本公司登记的工商业用户用电行为数据加工形成",
        collection_method="数据加工",
        coverage="2025-01 至 2025-06",
        region="450000",
        delivery_mode="api",
        sample="2025-03,制糖,104.2,扩张",
        lineage=("grid-customers",),
    ),
    DemoAsset(
        key="logistics-clearance",
        dataset="logistics-clearance",
        scenario="enterprise",
        kind="resource",
        data_class="enterprise",
        name="跨境货运通关时效数据",
        name_en="Cross-border freight clearance times",
        description=DATASETS_BY_KEY["logistics-clearance"].description,
        source_statement="本公司运输管理系统在承运业务中自行采集",
        collection_method="运输管理系统自动记录",
        coverage="2025-08 至 2025-09",
        region="451481",
        delivery_mode="api",
    ),
    DemoAsset(
        key="asean-trade",
        dataset="asean-trade",
        scenario="cross_border",
        kind="resource",
        data_class="enterprise",
        name="中国—东盟重点商品贸易数据",
        name_en="China–ASEAN key goods trade data",
        description=DATASETS_BY_KEY["asean-trade"].description,
        source_statement="本公司依据公开统计与合作企业授权数据整理汇总",
        collection_method="合作采集与整理",
        coverage="2025-01 至 2025-06",
        region="450000",
        delivery_mode="download",
    ),
    DemoAsset(
        key="pdo-charging-heatmap",
        dataset="pdo-charging-heatmap",
        scenario="public",
        kind="product",
        data_class="enterprise",
        name="柳州充电需求时空热力产品",
        name_en="Liuzhou charging demand heat map",
        description=DATASETS_BY_KEY["pdo-charging-heatmap"].description,
        source_statement="经柳州市人民政府许可，在沙箱内加工充电设施运行公共数据形成",
        collection_method="数据加工",
        coverage="2025-10",
        region="450200",
        delivery_mode="api",
        sample="鱼峰区,18:00,0.87,12",
        lineage=("liuzhou-charging",),
    ),
    DemoAsset(
        key="sugar-cane",
        dataset="sugar-cane",
        scenario="other",
        kind="resource",
        data_class="enterprise",
        name="糖料蔗种植与收购数据",
        name_en="Sugarcane planting and purchase records",
        description=DATASETS_BY_KEY["sugar-cane"].description,
        source_statement="本公司蔗区管理系统自行采集",
        collection_method="蔗区管理系统登记",
        coverage="2025/2026 榨季",
        region="451400",
        delivery_mode="download",
    ),
    DemoAsset(
        key="credit-sme",
        dataset="credit-sme",
        scenario="other",
        kind="resource",
        data_class="enterprise",
        name="南宁小微企业经营状况调查数据",
        name_en="Nanning small business conditions survey",
        description=DATASETS_BY_KEY["credit-sme"].description,
        source_statement="本公司抽样调查自行采集，受访企业书面同意",
        collection_method="抽样调查",
        coverage="2025 年第三季度",
        region="450100",
        delivery_mode="sandbox",
    ),
    DemoAsset(
        key="ocean-port-calls",
        dataset="ocean-port-calls",
        scenario="other",
        kind="resource",
        data_class="enterprise",
        name="北部湾港船舶进出港作业数据",
        name_en="Beibu Gulf port calls",
        description=DATASETS_BY_KEY["ocean-port-calls"].description,
        source_statement="本公司港航信息服务平台汇聚",
        collection_method="平台汇聚",
        coverage="2025-07 至 2025-08",
        region="450500",
        delivery_mode="api",
    ),
    # --- what the demo province trades on the exchange (issue 7) --------------------------------
    _product(
        "grid-credit-scores",
        source="由本公司登记的工商业用户用电行为数据在沙箱内加工形成",
        coverage="2025-06",
        region="450000",
        delivery_mode="sandbox",
        sample="GXDW07919,制造业,2025-06,812,AAA",
        lineage=("grid-customers",),
    ),
    DemoAsset(
        key="port-throughput",
        dataset="port-throughput",
        scenario="other",
        kind="resource",
        data_class="enterprise",
        name="北部湾港分港区货物吞吐量统计",
        name_en="Beibu Gulf port throughput by area and cargo",
        description=DATASETS_BY_KEY["port-throughput"].description,
        source_statement="本公司港航信息服务平台依据港口企业报送汇总，报送企业书面同意",
        collection_method="平台汇聚",
        coverage="2025-01 至 2025-08",
        region="450700",
        delivery_mode="api",
    ),
    _product(
        "port-throughput-monthly",
        source="由本公司登记的北部湾港分港区货物吞吐量统计加工形成",
        coverage="2025-01 至 2025-12",
        region="450700",
        delivery_mode="download",
        sample="2025-03,钦州港区,1350.2,8.4,21",
        lineage=("port-throughput",),
    ),
    DemoAsset(
        key="cane-monitoring",
        dataset="cane-monitoring",
        scenario="other",
        kind="resource",
        data_class="enterprise",
        name="蔗区地块长势监测数据",
        name_en="Sugarcane plot growth monitoring",
        description=DATASETS_BY_KEY["cane-monitoring"].description,
        source_statement="本公司蔗区管理系统与合作农户授权采集",
        collection_method="遥感与田间巡查",
        coverage="2025/2026 榨季",
        region="451400",
        delivery_mode="download",
    ),
    _product(
        "cane-yield-forecast",
        source="由本公司登记的蔗区地块长势监测数据建模加工形成",
        coverage="2024/2025 至 2025/2026 榨季",
        region="451400",
        delivery_mode="download",
        sample="2025/2026,扶南镇,桂糖42号,6.85,4.2,0.88",
        lineage=("cane-monitoring",),
    ),
    _product(
        "asean-trade-outlook",
        source="由本公司登记的中国—东盟重点商品贸易数据分析加工形成",
        coverage="2025-01 至 2025-06",
        region="450000",
        delivery_mode="download",
        sample="2025-03,大米,VN,1260.5,12.3,上升",
        lineage=("asean-trade",),
        scenario="cross_border",
    ),
)
ASSETS_BY_KEY = MappingProxyType({a.key: a for a in ASSETS})

_PUBLIC_SCOPE = {
    "purposes": [
        "public_governance",
        "public_welfare",
        "industry",
        "research",
        "product_development",
    ],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["api", "sandbox"],
}
_ENTERPRISE_SCOPE = {
    "purposes": [
        "industry",
        "research",
        "product_development",
        "credit_finance",
        "internal_operations",
    ],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["api", "sandbox", "download"],
}
_TRADE_SCOPE = {
    "purposes": ["industry", "research", "product_development", "trade_logistics"],
    "fields": None,
    "regions": ["CN", "VN", "TH", "MY", "ID", "KH", "LA"],
    "delivery_modes": ["api", "download"],
}

_MARCH = date(2026, 3, 2)  # a Monday; every notice below runs in 2026, a covered year
_JUNE = date(2026, 6, 1)


def _initial(key: str, user: str, scope: dict[str, Any], **kw: Any) -> DemoRegistration:
    return DemoRegistration(
        key=key, type="initial", user=user, asset=key, scope=scope, **{"submitted_on": _MARCH, **kw}
    )


REGISTRATIONS: tuple[DemoRegistration, ...] = (
    # The pilots' resources: public data on the fast track (10-working-day notice), the rest
    # through substantive review and a 3-working-day notice.
    _initial("nanning-entities", "nanning.admin", _PUBLIC_SCOPE),
    _initial("liuzhou-charging", "liuzhou.admin", _PUBLIC_SCOPE),
    _initial("natres-land-use", "natres.admin", _PUBLIC_SCOPE),
    _initial("transport-tolls", "transport.admin", _PUBLIC_SCOPE),
    _initial("agri-prices", "agri.admin", _PUBLIC_SCOPE),
    _initial("grid-sector-power", "grid.admin", _PUBLIC_SCOPE),
    _initial("grid-customers", "grid.admin", _ENTERPRISE_SCOPE),
    _initial("logistics-clearance", "logistics.admin", _ENTERPRISE_SCOPE),
    _initial("asean-trade", "asean.admin", _TRADE_SCOPE),
    # A product the grid derives from its own registered customers' data.
    _initial(
        "grid-economy-index",
        "grid.admin",
        {
            "purposes": ["industry", "research", "credit_finance"],
            "fields": None,
            "regions": ["450000"],
            "delivery_modes": ["api"],
        },
        submitted_on=date(2026, 3, 23),
        term_end=date(2029, 3, 31),
    ),
    # Liuzhou licenses the public data operator to process its charging data (加工使用权) ...
    DemoRegistration(
        key="liuzhou-licence-pdo",
        type="licence",
        user="liuzhou.admin",
        asset="liuzhou-charging",
        submitted_on=date(2026, 3, 23),
        scope={
            "purposes": ["industry", "product_development"],
            "fields": ["充电站编号", "所在城区", "日期", "充电次数", "充电量千瓦时", "桩利用率"],
            "regions": ["450200"],
            "delivery_modes": ["api", "sandbox"],
        },
        term_end=date(2028, 12, 31),
        right_of="liuzhou-charging",
        counterparty="pdo",
    ),
    # ... and the operator registers the product it made from them (产品经营权).
    _initial(
        "pdo-charging-heatmap",
        "pdo.admin",
        {
            "purposes": ["industry", "product_development"],
            "fields": None,
            "regions": ["450200"],
            "delivery_modes": ["api"],
        },
        submitted_on=date(2026, 4, 20),
        term_end=date(2028, 12, 31),
    ),
    # The logistics firm pledges its registered data to a bank (数据资产质押融资).
    DemoRegistration(
        key="logistics-pledge-bank",
        type="pledge",
        user="logistics.admin",
        asset="logistics-clearance",
        submitted_on=date(2026, 3, 23),
        right_of="logistics-clearance",
        counterparty="bank",
    ),
    # Under way: a licence of the grid's data to a credit firm on its public notice, ...
    DemoRegistration(
        key="grid-licence-credit",
        type="licence",
        user="grid.admin",
        asset="grid-customers",
        submitted_on=_JUNE,
        target="public_notice",
        scope={
            "purposes": ["credit_finance"],
            "fields": ["脱敏户号", "行业", "月份", "用电量万千瓦时", "缴费情况"],
            "regions": ["450000"],
            "delivery_modes": ["sandbox"],
        },
        term_end=date(2027, 6, 30),
        right_of="grid-customers",
        counterparty="credit",
    ),
    # ... a survey in substantive review, sugarcane records waiting for their discovery scan in
    # formal review, ...
    _initial(
        "credit-sme",
        "credit.admin",
        _ENTERPRISE_SCOPE,
        submitted_on=date(2026, 6, 3),
        target="substantive_review",
    ),
    _initial(
        "sugar-cane",
        "sugar.admin",
        _ENTERPRISE_SCOPE,
        submitted_on=date(2026, 6, 3),
        target="formal_review",
    ),
    # ... and port data whose notice drew an objection from the logistics firm (title dispute).
    _initial(
        "ocean-port-calls",
        "ocean.admin",
        _ENTERPRISE_SCOPE,
        submitted_on=_JUNE,
        target="objection",
        objection=DemoObjection(
            user="logistics.admin",
            grounds=("unlawful_source",),
            statement="该数据包含我司船舶调度系统推送的作业记录，未经我司授权不得登记。",
            evidence=("数据共享协议（2024）第五条", "调度系统推送日志截图"),
        ),
    ),
    # What the demo province trades on the exchange (issue 7): the grid's credit scores (sold to
    # the bank for use in the sandbox), the port's throughput (bought by the logistics firm), the
    # sugar firm's yield forecast (auctioned) and the ASEAN merchant's outlook (traded across the
    # border by agreement), each a product on its maker's own registered resource.
    _initial(
        "grid-credit-scores",
        "grid.admin",
        {
            "purposes": ["credit_finance", "research"],
            "fields": None,
            "regions": ["450000"],
            "delivery_modes": ["sandbox"],
        },
        submitted_on=date(2026, 3, 23),
        term_end=date(2029, 3, 31),
    ),
    _initial(
        "port-throughput",
        "ocean.admin",
        {
            **_ENTERPRISE_SCOPE,
            "purposes": [
                "industry",
                "research",
                "product_development",
                "credit_finance",
                "internal_operations",
                "trade_logistics",
            ],
        },
    ),
    _initial("cane-monitoring", "sugar.admin", _ENTERPRISE_SCOPE),
    _initial(
        "port-throughput-monthly",
        "ocean.admin",
        {
            "purposes": ["industry", "research", "trade_logistics"],
            "fields": None,
            "regions": ["450000"],
            "delivery_modes": ["api", "download"],
        },
        submitted_on=date(2026, 4, 20),
        term_end=date(2029, 4, 30),
    ),
    _initial(
        "cane-yield-forecast",
        "sugar.admin",
        {
            "purposes": ["industry", "research", "product_development"],
            "fields": None,
            "regions": ["450000"],
            "delivery_modes": ["api", "download"],
        },
        submitted_on=date(2026, 4, 20),
        term_end=date(2029, 4, 30),
    ),
    _initial(
        "asean-trade-outlook",
        "asean.admin",
        {**_TRADE_SCOPE, "purposes": ["industry", "research", "trade_logistics"]},
        submitted_on=date(2026, 4, 20),
        term_end=date(2029, 4, 30),
    ),
)
REGISTRATIONS_BY_KEY = MappingProxyType({r.key: r for r in REGISTRATIONS})
