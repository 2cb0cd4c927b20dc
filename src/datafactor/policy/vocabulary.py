"""The policy language's vocabulary: the ODRL 2.2 terms we support and our profile's, with labels.

Actions (and which actions each one includes), left operands (and the operators each accepts),
operators, delivery channels, the places ``spatial`` understands (ISO 3166 codes, the provinces
of GB/T 2260 and the ASEAN group) and the GB/T 4754 industry codes ``isA`` nests (the purpose
taxonomy is data: rules/policy.yaml). Every term a policy
may use is listed here; anything else is refused by the parser with the term named. Terms are
kept in their compact form: ODRL terms bare (``use``, ``purpose``), our profile's with the ``df:``
prefix (``df:fields``). Labels are plain ``{zh, en}`` pairs (not gettext msgids): a decision's
reasons are recorded in both languages at once. Pure Python: no web, no ORM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

ODRL_NS: Final = "http://www.w3.org/ns/odrl/2/"
ODRL_CONTEXT: Final = "http://www.w3.org/ns/odrl.jsonld"
DF_NS: Final = "https://datafactor.gx.cn/odrl/profile#"
DF_PROFILE: Final = "https://datafactor.gx.cn/odrl/profile"
DCT_NS: Final = "http://purl.org/dc/terms/"
XSD_NS: Final = "http://www.w3.org/2001/XMLSchema#"

Label = Mapping[str, str]


def _l(zh: str, en: str) -> Label:
    return MappingProxyType({"zh": zh, "en": en})


class PolicyType(StrEnum):
    """ODRL 2.2 §2.1 policy subclasses (``Policy`` is read as ``Set``)."""

    SET = "Set"
    OFFER = "Offer"
    AGREEMENT = "Agreement"


class Operator(StrEnum):
    """ODRL 2.2 relational operators supported (ODRL Vocabulary, Operator)."""

    EQ = "eq"
    NEQ = "neq"
    LT = "lt"
    LTEQ = "lteq"
    GT = "gt"
    GTEQ = "gteq"
    IS_A = "isA"
    IS_PART_OF = "isPartOf"
    IS_ANY_OF = "isAnyOf"
    IS_ALL_OF = "isAllOf"
    IS_NONE_OF = "isNoneOf"


SET_OPERATORS: Final = frozenset(
    {Operator.IS_ANY_OF, Operator.IS_ALL_OF, Operator.IS_NONE_OF, Operator.IS_PART_OF}
)
ORDER_OPERATORS: Final = frozenset({Operator.LT, Operator.LTEQ, Operator.GT, Operator.GTEQ})

OPERATOR_LABELS: Final[Mapping[str, Label]] = MappingProxyType(
    {
        Operator.EQ: _l("等于", "equals"),
        Operator.NEQ: _l("不等于", "differs from"),
        Operator.LT: _l("小于/早于", "less than / before"),
        Operator.LTEQ: _l("不超过/不晚于", "at most / no later than"),
        Operator.GT: _l("大于/晚于", "greater than / after"),
        Operator.GTEQ: _l("不少于/不早于", "at least / no earlier than"),
        Operator.IS_A: _l("属于……类别", "is a kind of"),
        Operator.IS_PART_OF: _l("包含于", "is part of"),
        Operator.IS_ANY_OF: _l("为其中之一", "is any of"),
        Operator.IS_ALL_OF: _l("包含全部", "includes all of"),
        Operator.IS_NONE_OF: _l("不为其中任何一个", "is none of"),
    }
)


class Logical(StrEnum):
    """ODRL 2.2 §2.5.2 logical constraint operands supported (``andSequence`` is refused)."""

    AND = "and"
    OR = "or"
    XONE = "xone"


class Kind(StrEnum):
    """How a left operand's values compare (chooses the evaluator and the wording)."""

    CODE = "code"  # a code compared for equality (recipient, deliveryChannel)
    TAXONOMY = "taxonomy"  # a code with broader codes (purpose, industry): isA
    PLACE = "place"  # a place; a place matches the regions it lies within
    TIME = "time"  # an instant (dateTime)
    DURATION = "duration"  # elapsedTime
    COUNT = "count"  # a whole number of uses
    MONEY = "money"  # payAmount, compared in fen
    FIELDS = "fields"  # a set of field names (df:fields)
    LIMIT = "limit"  # an output limit the executor enforces (df:minGroupSize, df:epsilon)


class Operand:
    """A left operand: its term, kind, request key, operators accepted and labels."""

    __slots__ = ("kind", "label", "operators", "plural", "request_key", "term")

    def __init__(
        self,
        term: str,
        kind: Kind,
        request_key: str | None,
        operators: frozenset[Operator],
        label: Label,
        plural: Label,
    ) -> None:
        self.term = term
        self.kind = kind
        self.request_key = request_key
        self.operators = operators
        self.label = label
        self.plural = plural


_O = Operator
_CODE_OPS = frozenset({_O.EQ, _O.NEQ, _O.IS_ANY_OF, _O.IS_NONE_OF})
_TAXONOMY_OPS = _CODE_OPS | {_O.IS_A}
_PLACE_OPS = _CODE_OPS | {_O.IS_PART_OF}
_ORDER_OPS = frozenset({_O.EQ, _O.NEQ, _O.LT, _O.LTEQ, _O.GT, _O.GTEQ})

OPERANDS: Final[Mapping[str, Operand]] = MappingProxyType(
    {
        o.term: o
        for o in (
            Operand(
                "purpose",
                Kind.TAXONOMY,
                "purpose",
                _TAXONOMY_OPS,
                _l("使用目的", "purpose"),
                _l("使用目的", "purposes"),
            ),
            Operand(
                "dateTime",
                Kind.TIME,
                "time",
                frozenset({_O.EQ, _O.LT, _O.LTEQ, _O.GT, _O.GTEQ}),
                _l("使用时间", "time"),
                _l("时间", "times"),
            ),
            Operand(
                "count",
                Kind.COUNT,
                "count_so_far",
                _ORDER_OPS,
                _l("使用次数", "number of uses"),
                _l("次数", "counts"),
            ),
            Operand(
                "spatial",
                Kind.PLACE,
                "spatial",
                _PLACE_OPS,
                _l("使用地点", "place"),
                _l("地区", "places"),
            ),
            Operand(
                "recipient",
                Kind.CODE,
                "assignee",
                _CODE_OPS,
                _l("接收方", "recipient"),
                _l("接收方", "recipients"),
            ),
            Operand(
                "elapsedTime",
                Kind.DURATION,
                "time",
                frozenset({_O.LT, _O.LTEQ}),
                _l("自策略签发起经过的时间", "time elapsed since the policy was issued"),
                _l("时长", "durations"),
            ),
            Operand(
                "deliveryChannel",
                Kind.CODE,
                "channel",
                _CODE_OPS,
                _l("交付方式", "delivery channel"),
                _l("交付方式", "delivery channels"),
            ),
            Operand(
                "industry",
                Kind.TAXONOMY,
                "industry",
                _TAXONOMY_OPS,
                _l("行业", "industry"),
                _l("行业", "industries"),
            ),
            Operand(
                "payAmount",
                Kind.MONEY,
                "pay_amount",
                _ORDER_OPS,
                _l("支付金额", "payment"),
                _l("金额", "amounts"),
            ),
            Operand(
                "df:fields",
                Kind.FIELDS,
                "fields",
                frozenset({_O.EQ, _O.IS_PART_OF, _O.IS_ANY_OF, _O.IS_ALL_OF, _O.IS_NONE_OF}),
                _l("请求的字段", "requested fields"),
                _l("字段", "fields"),
            ),
            Operand(
                "df:minGroupSize",
                Kind.LIMIT,
                None,
                frozenset({_O.GTEQ, _O.GT}),
                _l("最小聚合组规模", "minimum aggregation group size"),
                _l("规模", "sizes"),
            ),
            Operand(
                "df:epsilon",
                Kind.LIMIT,
                None,
                frozenset({_O.LTEQ, _O.LT}),
                _l("差分隐私预算 ε", "privacy budget ε"),
                _l("预算", "budgets"),
            ),
        )
    }
)


# --- actions -------------------------------------------------------------------------------
# ODRL 2.2 §2.4: ``use`` and ``transfer`` are the top-level actions; every other action is
# ``includedIn`` one of them, and a permission or prohibition of an action covers every action it
# includes. The ODRL Common Vocabulary nests some actions deeper (e.g. play under display); we
# keep each supported action directly under its top-level parent except where our profile adds a
# grouping, so nothing is implied that the vocabulary does not state.
# Our profile: ``df:onwardTransfer`` (passing the data, or results computed from it, to a third
# party) includes distribute, transfer, sell and give — prohibiting it prohibits all four.
# ``df:reidentify`` is deliberately included in nothing: a permission to ``use`` never implies
# the right to re-identify people, only an explicit permission of ``df:reidentify`` does.
ACTION_PARENTS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "use": frozenset(),
        "transfer": frozenset({"df:onwardTransfer"}),
        "read": frozenset({"use"}),
        "display": frozenset({"use"}),
        "play": frozenset({"use"}),
        "print": frozenset({"use"}),
        "reproduce": frozenset({"use"}),
        "distribute": frozenset({"use", "df:onwardTransfer"}),
        "aggregate": frozenset({"use"}),
        "anonymize": frozenset({"use"}),
        "derive": frozenset({"use"}),
        "index": frozenset({"use"}),
        "archive": frozenset({"use"}),
        "modify": frozenset({"use"}),
        "stream": frozenset({"use"}),
        "sell": frozenset({"transfer"}),
        "give": frozenset({"transfer"}),
        "df:onwardTransfer": frozenset(),
        "df:reidentify": frozenset(),
    }
)

# Actions that are duties (what the grantee must do), never requested.
DUTY_ACTIONS: Final = frozenset(
    {
        "compensate",
        "attribute",
        "delete",
        "inform",
        "obtainConsent",
        "acceptTracking",
        "anonymize",
        "df:outputReview",
    }
)

ACTION_LABELS: Final[Mapping[str, Label]] = MappingProxyType(
    {
        "use": _l("使用", "use"),
        "transfer": _l("转让", "transfer"),
        "read": _l("读取", "read"),
        "display": _l("展示", "display"),
        "play": _l("播放", "play"),
        "print": _l("打印", "print"),
        "reproduce": _l("复制", "reproduce"),
        "distribute": _l("分发", "distribute"),
        "aggregate": _l("聚合", "aggregate"),
        "anonymize": _l("匿名化", "anonymize"),
        "derive": _l("衍生加工", "derive"),
        "index": _l("索引", "index"),
        "archive": _l("存档", "archive"),
        "modify": _l("修改", "modify"),
        "stream": _l("流式传输", "stream"),
        "sell": _l("出售", "sell"),
        "give": _l("赠与", "give"),
        "df:onwardTransfer": _l("向第三方再提供", "onward transfer to a third party"),
        "df:reidentify": _l("重新识别个人", "re-identify people"),
        "compensate": _l("支付对价", "compensate"),
        "attribute": _l("注明来源", "attribute"),
        "delete": _l("删除", "delete"),
        "inform": _l("告知", "inform"),
        "obtainConsent": _l("取得同意", "obtain consent"),
        "acceptTracking": _l("接受追踪", "accept tracking"),
        "df:outputReview": _l("输出结果审核", "output review"),
    }
)


def _included() -> Mapping[str, frozenset[str]]:
    """For each action, the actions it includes (itself and every descendant)."""
    children: dict[str, set[str]] = {a: set() for a in ACTION_PARENTS}
    for action, parents in ACTION_PARENTS.items():
        for parent in parents:
            children[parent].add(action)

    def down(action: str) -> set[str]:
        found = {action}
        for child in children[action]:
            found |= down(child)
        return found

    return MappingProxyType({a: frozenset(down(a)) for a in ACTION_PARENTS})


# INCLUDES["use"] = {"use", "read", ...}: a permission of ``use`` covers a request for any.
INCLUDES: Final = _included()

# Functional roles a rule or duty may name (ODRL 2.2 §2.3.1 and the Common Vocabulary).
FUNCTIONS: Final = frozenset(
    {
        "assigner",
        "assignee",
        "attributedParty",
        "attributingParty",
        "compensatedParty",
        "compensatingParty",
        "consentingParty",
        "consentedParty",
        "informedParty",
        "informingParty",
        "trackingParty",
        "trackedParty",
    }
)


class Channel(StrEnum):
    """Delivery channels (交付方式): the values of ``deliveryChannel`` and a request's ``channel``."""

    DOWNLOAD = "download"  # 文件下载
    API = "api"  # 接口调用
    SANDBOX = "sandbox"  # 沙箱计算（可用不可见）


CHANNEL_LABELS: Final[Mapping[str, Label]] = MappingProxyType(
    {
        Channel.DOWNLOAD: _l("文件下载", "file download"),
        Channel.API: _l("接口调用", "API"),
        Channel.SANDBOX: _l("沙箱计算（可用不可见）", "sandbox (usable but not visible)"),
    }
)


# --- places --------------------------------------------------------------------------------
# GB/T 2260 province-level codes (first two digits) and their ISO 3166-2:CN subdivisions.
GBT2260_PROVINCES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "11": "CN-BJ", "12": "CN-TJ", "13": "CN-HE", "14": "CN-SX", "15": "CN-NM",
        "21": "CN-LN", "22": "CN-JL", "23": "CN-HL", "31": "CN-SH", "32": "CN-JS",
        "33": "CN-ZJ", "34": "CN-AH", "35": "CN-FJ", "36": "CN-JX", "37": "CN-SD",
        "41": "CN-HA", "42": "CN-HB", "43": "CN-HN", "44": "CN-GD", "45": "CN-GX",
        "46": "CN-HI", "50": "CN-CQ", "51": "CN-SC", "52": "CN-GZ", "53": "CN-YN",
        "54": "CN-XZ", "61": "CN-SN", "62": "CN-GS", "63": "CN-QH", "64": "CN-NX",
        "65": "CN-XJ", "71": "CN-TW", "81": "CN-HK", "82": "CN-MO",
    }
)  # fmt: skip
CN_SUBDIVISIONS: Final = frozenset(GBT2260_PROVINCES.values())
_ISO_TO_GBT: Final = {iso: f"{prefix}0000" for prefix, iso in GBT2260_PROVINCES.items()}

# Region groups a policy may name (never a request: a request names one place).
# ASEAN: the ten founding/acceding members plus Timor-Leste (admitted October 2025).
REGION_GROUPS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {"ASEAN": frozenset({"BN", "KH", "ID", "LA", "MY", "MM", "PH", "SG", "TH", "VN", "TL"})}
)
_COUNTRY = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"([A-Z]{2})-[A-Z0-9]{1,3}")
_GBT = re.compile(r"\d{6}")


def place_code(value: str) -> str | None:
    """``value`` as a canonical place code (upper case), or None when it is not one.

    ISO 3166-1 alpha-2 (``VN``), ISO 3166-2 (``CN-GX``; for China one of the 34 subdivisions),
    or a GB/T 2260 six-digit code whose province is known (``450100``)."""
    code = value.strip().upper()
    if _COUNTRY.fullmatch(code):
        return code
    match = _SUBDIVISION.fullmatch(code)
    if match:
        if match.group(1) == "CN" and code not in CN_SUBDIVISIONS:
            return None
        return code
    if _GBT.fullmatch(code) and code[:2] in GBT2260_PROVINCES:
        return code
    return None


def region_code(value: str) -> str | None:
    """Like ``place_code`` but also accepts a region group (``ASEAN``): a policy's right operand."""
    code = value.strip().upper()
    return code if code in REGION_GROUPS else place_code(code)


def regions_of(code: str) -> frozenset[str]:
    """Every region ``code`` lies within, itself included (its equivalent codes too).

    ``450102`` → {450102, 450100, 450000, CN-GX, CN}; ``CN-GX`` → {CN-GX, 450000, CN};
    ``VN`` → {VN, ASEAN}."""
    found = {code}
    if _GBT.fullmatch(code):
        found |= {code[:4] + "00", code[:2] + "0000", GBT2260_PROVINCES[code[:2]], "CN"}
    else:
        match = _SUBDIVISION.fullmatch(code)
        if match:
            found.add(match.group(1))
            if code in _ISO_TO_GBT:
                found.add(_ISO_TO_GBT[code])
    for group, members in REGION_GROUPS.items():
        if found & members:
            found.add(group)
    return frozenset(found)


# --- industries ----------------------------------------------------------------------------
# GB/T 4754-2017 codes written with their section letter (I, I65, I651, I6510): a longer code
# lies within every prefix, so ``industry isA I`` covers ``I6510``.
_GBT4754 = re.compile(r"[A-T](\d{2}(\d{1,2})?)?")


def industries_of(code: str) -> frozenset[str]:
    """``code`` and the broader GB/T 4754 codes it lies within (just itself for other codes)."""
    if not _GBT4754.fullmatch(code):
        return frozenset({code})
    return frozenset(code[:n] for n in (1, 3, 4, 5) if n <= len(code))
