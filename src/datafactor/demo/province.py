"""The parties of the demo province and their users, as plain data.

The demo province is Guangxi: the autonomous-region big-data bureau, the Beibu Gulf big-data
exchange, four regulators, the finance department as treasury, city governments and departments,
a public data operator, enterprises, data merchants, service firms, a Vietnamese trading company
and three private persons. Public bodies, the exchange and the grid company carry their real
names; every other company and every person is fictional. All identifiers are synthetic: they are
computed here at import time with the generators of ``datafactor.identity.codes`` from fixed
inputs, so they always carry valid check digits (organisation code bodies start with "DF" to mark
them as DataFactor demo codes), but they are not the registered codes of any real body, and any
resemblance of a resident identity number to a real person's is accidental. No database code
lives here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

from datafactor.identity.codes import make_resident_id, make_uscc, validate_foreign_registration

PartyKindName = Literal[
    "bigdata_bureau",
    "exchange_operator",
    "regulator",
    "government_department",
    "public_data_operator",
    "enterprise",
    "data_merchant",
    "service_firm",
    "individual",
    "treasury",
    "foreign_company",
]
CodeTypeName = Literal["uscc", "resident_id", "foreign"]
ServiceRoleName = Literal[
    "broker", "custodian", "appraiser", "compliance_assessor", "notary", "arbitrator"
]
RoleName = Literal["admin", "staff", "auditor"]

PARTY_KINDS: tuple[str, ...] = get_args(PartyKindName)
CODE_TYPES: tuple[str, ...] = get_args(CodeTypeName)
SERVICE_ROLES: tuple[str, ...] = get_args(ServiceRoleName)
USER_ROLES: tuple[str, ...] = get_args(RoleName)


@dataclass(frozen=True, kw_only=True)
class DemoUser:
    """A login of a demo party. ``roles`` are held inside the user's own party."""

    username: str
    display_name: str
    roles: tuple[RoleName, ...]


@dataclass(frozen=True, kw_only=True)
class DemoParty:
    """A market participant (市场主体) of the demo province.

    ``code`` is the normalised identifier of type ``code_type``: a unified social credit code, a
    resident identity number, or (for a foreign company) the registration number in ``country``.
    ``service_role`` is set for service firms only.
    """

    key: str
    kind: PartyKindName
    name_zh: str
    name_en: str
    code: str
    code_type: CodeTypeName
    country: str = "CN"
    service_role: ServiceRoleName | None = None
    users: tuple[DemoUser, ...]


# Registration authority + organisation category (GB 32100 characters 1-2).
_STATE_ORGAN = "11"  # 机构编制 / 机关
_ENTERPRISE = "91"  # 市场监管 / 企业
_LAW_FIRM = "31"  # 司法行政 / 律师事务所

# Administrative divisions (GB/T 2260).
_GUANGXI = "450000"
_NANNING = "450100"
_XINGNING = "450102"  # 南宁市兴宁区
_LIUZHOU = "450200"
_YUFENG = "450203"  # 柳州市鱼峰区
_BEIHAI = "450500"
_CHONGZUO = "451400"
_PINGXIANG = "451481"  # 凭祥市 (崇左)


def _uscc(authority_category: str, division: str, serial: int) -> str:
    """A synthetic credit code; the organisation code body is "DF" and a six-digit serial."""
    return make_uscc(authority_category[0], authority_category[1], division, f"DF{serial:06d}")


def _user(username: str, display_name: str, *roles: RoleName) -> DemoUser:
    return DemoUser(username=username, display_name=display_name, roles=roles)


def _regulator(
    key: str, slug: str, serial: int, name_zh: str, short: str, name_en: str
) -> DemoParty:
    return DemoParty(
        key=key,
        kind="regulator",
        name_zh=name_zh,
        name_en=name_en,
        code=_uscc(_STATE_ORGAN, _GUANGXI, serial),
        code_type="uscc",
        users=(
            _user(f"regulator.{slug}", f"{short}管理员", "admin"),
            _user(f"regulator.{slug}.auditor", f"{short}监管员", "auditor"),
        ),
    )


def _person(key: str, name_zh: str, name_en: str, username: str, code: str) -> DemoParty:
    return DemoParty(
        key=key,
        kind="individual",
        name_zh=name_zh,
        name_en=name_en,
        code=code,
        code_type="resident_id",
        users=(_user(username, name_zh, "admin"),),
    )


_VN_COUNTRY, _VN_NUMBER = validate_foreign_registration("VN", "0101234567")

PARTIES: tuple[DemoParty, ...] = (
    # --- the state: bureau, exchange, regulators, treasury, governments -------------------------
    DemoParty(
        key="bureau",
        kind="bigdata_bureau",
        name_zh="广西壮族自治区大数据发展局",
        name_en="Guangxi Zhuang Autonomous Region Big Data Development Bureau",
        code=_uscc(_STATE_ORGAN, _GUANGXI, 1),
        code_type="uscc",
        users=(
            _user("bureau.admin", "大数据发展局管理员", "admin"),
            _user("bureau.staff", "大数据发展局业务专员", "staff"),
        ),
    ),
    DemoParty(
        key="exchange",
        kind="exchange_operator",
        name_zh="北部湾大数据交易中心",
        name_en="Beibu Gulf Big Data Exchange",
        code=_uscc(_ENTERPRISE, _NANNING, 2),
        code_type="uscc",
        users=(
            _user("exchange.admin", "交易中心管理员", "admin"),
            _user("exchange.reviewer", "交易中心审核员", "staff"),
            _user("exchange.auditor", "交易中心稽核员", "auditor"),
        ),
    ),
    _regulator(
        "reg-finance",
        "finance",
        3,
        "广西壮族自治区地方金融管理局",
        "地方金融管理局",
        "Guangxi Local Financial Regulatory Administration",
    ),
    _regulator(
        "reg-cyber",
        "cyber",
        4,
        "中共广西壮族自治区委员会网络安全和信息化委员会办公室",
        "自治区党委网信办",
        "Cyberspace Affairs Office of the CPC Guangxi Regional Committee",
    ),
    _regulator(
        "reg-police",
        "police",
        5,
        "广西壮族自治区公安厅",
        "自治区公安厅",
        "Guangxi Public Security Department",
    ),
    _regulator(
        "reg-market",
        "market",
        6,
        "广西壮族自治区市场监督管理局",
        "自治区市场监管局",
        "Guangxi Administration for Market Regulation",
    ),
    DemoParty(
        key="finance",
        kind="treasury",
        name_zh="广西壮族自治区财政厅",
        name_en="Guangxi Department of Finance",
        code=_uscc(_STATE_ORGAN, _GUANGXI, 7),
        code_type="uscc",
        users=(
            _user("finance.admin", "财政厅管理员", "admin"),
            _user("finance.staff", "财政厅国库专员", "staff"),
        ),
    ),
    DemoParty(
        key="gov-nanning",
        kind="government_department",
        name_zh="南宁市人民政府",
        name_en="Nanning Municipal People's Government",
        code=_uscc(_STATE_ORGAN, _NANNING, 8),
        code_type="uscc",
        users=(
            _user("nanning.admin", "南宁市政府管理员", "admin"),
            _user("nanning.staff", "南宁市政府数据专员", "staff"),
        ),
    ),
    DemoParty(
        key="gov-liuzhou",
        kind="government_department",
        name_zh="柳州市人民政府",
        name_en="Liuzhou Municipal People's Government",
        code=_uscc(_STATE_ORGAN, _LIUZHOU, 9),
        code_type="uscc",
        users=(
            _user("liuzhou.admin", "柳州市政府管理员", "admin"),
            _user("liuzhou.staff", "柳州市政府数据专员", "staff"),
        ),
    ),
    DemoParty(
        key="gov-natres",
        kind="government_department",
        name_zh="广西壮族自治区自然资源厅",
        name_en="Guangxi Department of Natural Resources",
        code=_uscc(_STATE_ORGAN, _GUANGXI, 10),
        code_type="uscc",
        users=(
            _user("natres.admin", "自然资源厅管理员", "admin"),
            _user("natres.staff", "自然资源厅数据专员", "staff"),
        ),
    ),
    DemoParty(
        key="gov-transport",
        kind="government_department",
        name_zh="广西壮族自治区交通运输厅",
        name_en="Guangxi Department of Transport",
        code=_uscc(_STATE_ORGAN, _GUANGXI, 11),
        code_type="uscc",
        users=(
            _user("transport.admin", "交通运输厅管理员", "admin"),
            _user("transport.staff", "交通运输厅数据专员", "staff"),
        ),
    ),
    DemoParty(
        key="gov-agri",
        kind="government_department",
        name_zh="广西壮族自治区农业农村厅",
        name_en="Guangxi Department of Agriculture and Rural Affairs",
        code=_uscc(_STATE_ORGAN, _GUANGXI, 12),
        code_type="uscc",
        users=(
            _user("agri.admin", "农业农村厅管理员", "admin"),
            _user("agri.staff", "农业农村厅数据专员", "staff"),
        ),
    ),
    # --- data holders and the public data operator ----------------------------------------------
    DemoParty(
        key="power-grid",
        kind="enterprise",
        name_zh="广西电网有限责任公司",
        name_en="Guangxi Power Grid Co., Ltd.",
        code=_uscc(_ENTERPRISE, _GUANGXI, 13),
        code_type="uscc",
        users=(
            _user("grid.admin", "电网公司管理员", "admin"),
            _user("grid.data", "电网公司数据专员", "staff"),
        ),
    ),
    DemoParty(
        key="pdo",
        kind="public_data_operator",
        name_zh="广西数智公共数据运营有限公司",
        name_en="Guangxi Shuzhi Public Data Operations Co., Ltd.",
        code=_uscc(_ENTERPRISE, _NANNING, 14),
        code_type="uscc",
        users=(
            _user("pdo.admin", "公共数据运营管理员", "admin"),
            _user("pdo.staff", "公共数据产品经理", "staff"),
        ),
    ),
    # --- enterprises -----------------------------------------------------------------------------
    DemoParty(
        key="sugar",
        kind="enterprise",
        name_zh="广西桂甜糖业集团有限公司",
        name_en="Guangxi Guitian Sugar Group Co., Ltd.",
        code=_uscc(_ENTERPRISE, _CHONGZUO, 15),
        code_type="uscc",
        users=(
            _user("sugar.admin", "桂甜糖业管理员", "admin"),
            _user("sugar.staff", "桂甜糖业数据专员", "staff"),
        ),
    ),
    DemoParty(
        key="logistics",
        kind="enterprise",
        name_zh="凭祥边贸通跨境物流有限公司",
        name_en="Pingxiang Biantong Cross-border Logistics Co., Ltd.",
        code=_uscc(_ENTERPRISE, _PINGXIANG, 16),
        code_type="uscc",
        users=(
            _user("logistics.admin", "边贸通物流管理员", "admin"),
            _user("logistics.staff", "边贸通物流调度员", "staff"),
        ),
    ),
    DemoParty(
        key="bank",
        kind="enterprise",
        name_zh="广西邕江商业银行股份有限公司",
        name_en="Guangxi Yongjiang Commercial Bank Co., Ltd.",
        code=_uscc(_ENTERPRISE, _NANNING, 17),
        code_type="uscc",
        users=(
            _user("bank.admin", "邕江银行管理员", "admin"),
            _user("bank.risk", "邕江银行风控专员", "staff"),
        ),
    ),
    DemoParty(
        key="credit",
        kind="enterprise",
        name_zh="南宁数衡信用科技有限公司",
        name_en="Nanning Shuheng Credit Technology Co., Ltd.",
        code=_uscc(_ENTERPRISE, _XINGNING, 18),
        code_type="uscc",
        users=(
            _user("credit.admin", "数衡信用管理员", "admin"),
            _user("credit.analyst", "数衡信用建模分析师", "staff"),
        ),
    ),
    # --- data merchants --------------------------------------------------------------------------
    DemoParty(
        key="merchant-asean",
        kind="data_merchant",
        name_zh="南宁东盟商数科技有限公司",
        name_en="Nanning ASEAN Trade Data Technology Co., Ltd.",
        code=_uscc(_ENTERPRISE, _NANNING, 19),
        code_type="uscc",
        users=(
            _user("asean.admin", "东盟商数管理员", "admin"),
            _user("asean.staff", "东盟商数产品经理", "staff"),
        ),
    ),
    DemoParty(
        key="merchant-ocean",
        kind="data_merchant",
        name_zh="北海蓝湾海洋数据服务有限公司",
        name_en="Beihai Blue Bay Ocean Data Services Co., Ltd.",
        code=_uscc(_ENTERPRISE, _BEIHAI, 20),
        code_type="uscc",
        users=(_user("ocean.admin", "蓝湾海洋数据管理员", "admin"),),
    ),
    # --- third-party service firms ---------------------------------------------------------------
    DemoParty(
        key="broker",
        kind="service_firm",
        name_zh="广西数联数据经纪有限公司",
        name_en="Guangxi Shulian Data Brokerage Co., Ltd.",
        code=_uscc(_ENTERPRISE, _NANNING, 21),
        code_type="uscc",
        service_role="broker",
        users=(
            _user("broker.admin", "数联经纪管理员", "admin"),
            _user("broker.staff", "数联经纪经纪人", "staff"),
        ),
    ),
    DemoParty(
        key="custodian",
        kind="service_firm",
        name_zh="广西数安数据托管有限公司",
        name_en="Guangxi Shu'an Data Custody Co., Ltd.",
        code=_uscc(_ENTERPRISE, _NANNING, 22),
        code_type="uscc",
        service_role="custodian",
        users=(_user("custodian.admin", "数安托管管理员", "admin"),),
    ),
    DemoParty(
        key="appraiser",
        kind="service_firm",
        name_zh="广西华衡数据资产评估有限公司",
        name_en="Guangxi Huaheng Data Asset Appraisal Co., Ltd.",
        code=_uscc(_ENTERPRISE, _NANNING, 23),
        code_type="uscc",
        service_role="appraiser",
        users=(
            _user("appraiser.admin", "华衡评估管理员", "admin"),
            _user("appraiser.staff", "华衡评估师", "staff"),
        ),
    ),
    DemoParty(
        key="lawfirm",
        kind="service_firm",
        name_zh="广西明律律师事务所",
        name_en="Guangxi Minglv Law Firm",
        code=_uscc(_LAW_FIRM, _GUANGXI, 24),
        code_type="uscc",
        service_role="compliance_assessor",
        users=(
            _user("lawfirm.admin", "明律律所管理员", "admin"),
            _user("lawfirm.staff", "明律律所合规律师", "staff"),
        ),
    ),
    # --- abroad ----------------------------------------------------------------------------------
    DemoParty(
        key="vn-trading",
        kind="foreign_company",
        name_zh="越南红河贸易股份公司",
        name_en="Red River Trading Joint Stock Company",
        code=_VN_NUMBER,
        code_type="foreign",
        country=_VN_COUNTRY,
        users=(_user("vntrade.admin", "红河贸易管理员", "admin"),),
    ),
    # --- private persons -------------------------------------------------------------------------
    _person(
        "person-wei",
        "韦小明",
        "Wei Xiaoming",
        "weixiaoming",
        make_resident_id(_XINGNING, datetime.date(1990, 3, 15), 131),  # male
    ),
    _person(
        "person-huang",
        "黄丽娟",
        "Huang Lijuan",
        "huanglijuan",
        make_resident_id(_YUFENG, datetime.date(1985, 11, 8), 242),  # female
    ),
    _person(
        "person-qin",
        "覃志强",
        "Qin Zhiqiang",
        "qinzhiqiang",
        make_resident_id(_PINGXIANG, datetime.date(1978, 6, 21), 17),  # male
    ),
)

#: The parties by ``key`` (read-only).
PARTIES_BY_KEY = MappingProxyType({party.key: party for party in PARTIES})
