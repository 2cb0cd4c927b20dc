"""Plain-language rendering of any policy, in Chinese and English: one sentence per rule.

``describe(policy, locale)`` reads the parsed ``Policy`` (never the JSON-LD text), so what a person
reads is exactly what the engine decides on: each permission ("允许…使用，须…"), each prohibition
("禁止…") and each obligation ("须…"), with its conditions in the words of the vocabulary —
operand, operator, action and channel labels from ``vocabulary``, purpose names from
``rules/policy.yaml``. The well-known shapes read naturally ("期限至 2027-12-31", "at most 1,000
uses", "only the fields a, b"); any other constraint falls back to "<operand> <operator> <value>",
so no term a policy may hold is left out. Labels are the vocabulary's ``{zh, en}`` pairs rather
than gettext msgids, like a decision's reasons, so both languages can be produced in one call.
Pure Python: no web, no ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

from datafactor.policy.odrl import (
    CST,
    Action,
    AnyConstraint,
    Constraint,
    Duty,
    Permission,
    Policy,
    Prohibition,
    RightValue,
)
from datafactor.policy.rulebook import load_policy_rules
from datafactor.policy.vocabulary import (
    ACTION_LABELS,
    CHANNEL_LABELS,
    OPERANDS,
    OPERATOR_LABELS,
    REGION_GROUPS,
    Kind,
    Operator,
)

# Names of the places a policy of this platform usually names (the vocabulary checks the codes;
# these only make them readable). Anything else is shown as its code.
PLACE_NAMES: Final[Mapping[str, tuple[str, str]]] = {
    "CN": ("中国", "China"),
    "CN-GX": ("广西", "Guangxi"),
    "CN-GD": ("广东", "Guangdong"),
    "CN-YN": ("云南", "Yunnan"),
    "CN-HI": ("海南", "Hainan"),
    "450000": ("广西", "Guangxi"),
    "450100": ("南宁市", "Nanning"),
    "ASEAN": ("东盟", "ASEAN"),
    "BN": ("文莱", "Brunei"),
    "KH": ("柬埔寨", "Cambodia"),
    "ID": ("印度尼西亚", "Indonesia"),
    "LA": ("老挝", "Laos"),
    "MY": ("马来西亚", "Malaysia"),
    "MM": ("缅甸", "Myanmar"),
    "PH": ("菲律宾", "the Philippines"),
    "SG": ("新加坡", "Singapore"),
    "TH": ("泰国", "Thailand"),
    "VN": ("越南", "Vietnam"),
    "TL": ("东帝汶", "Timor-Leste"),
}
assert REGION_GROUPS["ASEAN"] <= PLACE_NAMES.keys()  # every member has a name


# What the grantee must do, as an English verb phrase after "must" (the labels are nouns).
DUTY_VERBS_EN: Final[Mapping[str, str]] = {
    "compensate": "pay",
    "attribute": "attribute the source",
    "inform": "inform",
    "obtainConsent": "obtain consent",
    "acceptTracking": "accept tracking",
    "df:outputReview": "have every output reviewed before release",
}


def language(locale: str) -> str:
    """``zh`` or ``en`` for a locale (``zh_CN``, ``zh``, ``en``, ``en_GB`` …); Chinese otherwise."""
    return "en" if locale.lower().startswith("en") else "zh"


class _Words:
    """The sentences of one language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.zh = lang == "zh"
        self.purposes = load_policy_rules().purposes

    # values -----------------------------------------------------------------------------------
    def join(self, items: Sequence[str], conj: str) -> str:
        """``a、b或c`` / ``a, b or c``; ``conj`` is "or" or "and"."""
        items = list(items)
        if len(items) <= 1:
            return "".join(items)
        if self.zh:
            word = "或" if conj == "or" else "和"
            if items[-1][:1].isascii() or items[-2][-1:].isascii():
                word = f" {word} "  # between Latin codes a bare 和 runs into the words
            return "、".join(items[:-1]) + word + items[-1]
        return ", ".join(items[:-1]) + f" {conj} " + items[-1]

    def action(self, name: str) -> str:
        label = ACTION_LABELS.get(name)
        return label[self.lang] if label else name

    def code(self, left: str, value: str) -> str:
        kind = OPERANDS[left].kind
        if left == "purpose" and value in self.purposes:
            return self.purposes[value][self.lang]
        if left == "deliveryChannel" and value in CHANNEL_LABELS:
            return CHANNEL_LABELS[value][self.lang]
        if kind is Kind.PLACE and value in PLACE_NAMES:
            name = PLACE_NAMES[value][0 if self.zh else 1]
            return name if value in ("ASEAN",) else f"{name} ({value})"
        return value

    def money(self, amount: Decimal) -> str:
        return f"{amount:,.2f} 元" if self.zh else f"CNY {amount:,.2f}"

    def instant(self, value: datetime | date) -> str:
        if isinstance(value, datetime):
            local = value.astimezone(CST)
            text = local.strftime("%Y-%m-%d %H:%M")
            return f"{text}（北京时间）" if self.zh else f"{text} (China time)"
        return value.isoformat()

    def duration(self, value: timedelta) -> str:
        days, seconds = value.days, value.seconds
        if seconds == 0:
            return f"{days} 天" if self.zh else f"{days} day{'s' if days != 1 else ''}"
        hours = days * 24 + seconds / 3600
        shown = f"{hours:g}"
        return f"{shown} 小时" if self.zh else f"{shown} hours"

    def value(self, left: str, right: RightValue) -> str:
        if isinstance(right, tuple):
            return self.join([self.code(left, v) for v in right], "or")
        if isinstance(right, bool):  # pragma: no cover - never parsed
            return str(right)
        if isinstance(right, Decimal):
            return self.money(right) if OPERANDS[left].kind is Kind.MONEY else f"{right}"
        if isinstance(right, datetime | date):
            return self.instant(right)
        if isinstance(right, timedelta):
            return self.duration(right)
        if isinstance(right, int):
            return f"{right:,}"
        return self.code(left, right)

    def listed(self, left: str, right: RightValue, conj: str) -> str:
        values = right if isinstance(right, tuple) else (str(right),)
        return self.join([self.code(left, v) for v in values], conj)

    # constraints ------------------------------------------------------------------------------
    def constraint(self, c: Constraint) -> str:
        special = _SPECIAL.get((c.left, c.operator))
        if special is not None:
            return special(self, c)
        operand = OPERANDS[c.left]
        label = operand.label[self.lang]
        op = OPERATOR_LABELS[c.operator][self.lang]
        conj = "and" if c.operator is Operator.IS_ALL_OF else "or"
        shown = (
            self.listed(c.left, c.right, conj)
            if isinstance(c.right, tuple)
            else self.value(c.left, c.right)
        )
        if c.operator is Operator.IS_NONE_OF and isinstance(c.right, tuple):
            shown = self.join([self.code(c.left, v) for v in c.right], "and" if self.zh else "or")
        return f"{label}{op}{shown}" if self.zh else f"the {label} {op} {shown}"

    def any_constraint(self, c: AnyConstraint) -> str:
        if isinstance(c, Constraint):
            return self.constraint(c)
        parts = [self.constraint(m) for m in c.constraints]
        if c.operand.value == "xone":
            inner = "；".join(parts) if self.zh else "; ".join(parts)
            return f"（恰好满足其一：{inner}）" if self.zh else f"(exactly one of: {inner})"
        conj = "or" if c.operand.value == "or" else "and"
        if self.zh:
            return "（" + ("，或" if conj == "or" else "，且").join(parts) + "）"
        return "(" + f" {conj} ".join(parts) + ")"

    # rules ------------------------------------------------------------------------------------
    def scope(self, rule: Permission | Prohibition) -> tuple[str, str]:
        """(who, what): the assignee and the target, when the rule names them."""
        who = what = ""
        if rule.assignee:
            who = f"{rule.assignee} " if self.zh else f" by {rule.assignee}"
        if rule.target:
            what = f"数据 {rule.target} 的" if self.zh else f" of {rule.target}"
        return who, what

    def conditions(self, action: Action, constraints: Sequence[AnyConstraint]) -> list[str]:
        return [self.any_constraint(c) for c in (*action.refinements, *constraints)]

    def duty(self, d: Duty) -> str:
        text = self.action(d.action.name)
        if not self.zh:
            text = DUTY_VERBS_EN.get(d.action.name, text)
        amounts = [
            c
            for c in (*d.action.refinements, *d.constraints)
            if isinstance(c, Constraint) and c.left == "payAmount" and c.operator is Operator.EQ
        ]
        rest = [c for c in (*d.action.refinements, *d.constraints) if c not in amounts]
        if amounts and isinstance(amounts[0].right, Decimal):
            fee = self.money(amounts[0].right)
            text = f"{text} {fee}"
        if d.target:
            text += f"（对象 {d.target}）" if self.zh else f" (on {d.target})"
        for function, party in d.parties:
            text += f"（{function}：{party}）" if self.zh else f" ({function}: {party})"
        if rest:
            inner = ("，" if self.zh else ", ").join(self.any_constraint(c) for c in rest)
            text += f"（{inner}）" if self.zh else f" ({inner})"
        return text

    def permission(self, p: Permission) -> str:
        who, what = self.scope(p)
        conditions = self.conditions(p.action, p.constraints)
        duties = [self.duty(d) for d in p.duties]
        if self.zh:
            text = f"允许 {who}{what}{self.action(p.action.name)}"
            if conditions:
                text += "，" + "，".join(conditions)
            if duties:
                text += "，须 " + "、".join(duties)
            return text + "。"
        text = f"Permitted: {self.action(p.action.name)}{what}{who}"
        if conditions:
            # "use for research, until …"; any other first condition after a comma.
            lead = " " if conditions[0].startswith("for ") else ", "
            text += lead + ", ".join(conditions)
        if duties:
            text += "; the grantee must " + self.join(duties, "and")
        return text + "."

    def prohibition(self, p: Prohibition) -> str:
        who, what = self.scope(p)
        conditions = self.conditions(p.action, p.constraints)
        remedies = [self.duty(d) for d in p.remedies]
        if self.zh:
            text = f"禁止 {who}{what}{self.action(p.action.name)}"
            if conditions:
                text += "（当" + "，且".join(conditions) + "时）"
            if remedies:
                text += "；违反时须 " + "、".join(remedies)
            return text + "。"
        text = f"Prohibited: {self.action(p.action.name)}{what}{who}"
        if conditions:
            text += " when " + " and ".join(conditions)
        if remedies:
            text += "; if it happens, the party must " + self.join(remedies, "and")
        return text + "."

    def obligation(self, d: Duty) -> str:
        return f"须 {self.duty(d)}。" if self.zh else f"Required: {self.duty(d)}."


# The shapes authors write most, in natural words. Keyed by (left operand, operator).
def _until(w: _Words, c: Constraint) -> str:
    shown = w.value(c.left, c.right)
    if c.operator is Operator.LT:
        return f"在 {shown} 之前" if w.zh else f"before {shown}"
    return f"期限至 {shown}" if w.zh else f"until {shown}"


def _from(w: _Words, c: Constraint) -> str:
    shown = w.value(c.left, c.right)
    if c.operator is Operator.GT:
        return f"在 {shown} 之后" if w.zh else f"after {shown}"
    return f"自 {shown} 起" if w.zh else f"from {shown}"


def _max_uses(w: _Words, c: Constraint) -> str:
    assert isinstance(c.right, int)
    most = c.right - 1 if c.operator is Operator.LT else c.right
    return f"最多使用 {most:,} 次" if w.zh else f"at most {most:,} use{'s' if most != 1 else ''}"


def _purpose(w: _Words, c: Constraint) -> str:
    if c.operator is Operator.IS_A:
        shown = w.value(c.left, c.right)
        return f"使用目的属于{shown}类" if w.zh else f"for a purpose of the kind {shown}"
    shown = w.listed(c.left, c.right, "or")
    return f"使用目的为{shown}" if w.zh else f"for {shown}"


def _channel(w: _Words, c: Constraint) -> str:
    shown = w.listed(c.left, c.right, "or")
    return f"交付方式为{shown}" if w.zh else f"delivered by {shown}"


def _places(w: _Words, c: Constraint) -> str:
    shown = w.listed(c.left, c.right, "or")
    return f"使用地点在{shown}境内" if w.zh else f"in {shown}"


def _fields(w: _Words, c: Constraint) -> str:
    shown = w.listed(c.left, c.right, "and")
    return f"仅限字段 {shown}" if w.zh else f"only the fields {shown}"


def _min_pay(w: _Words, c: Constraint) -> str:
    shown = w.value(c.left, c.right)
    return f"每次支付不少于 {shown}" if w.zh else f"paying at least {shown} per use"


def _group(w: _Words, c: Constraint) -> str:
    assert isinstance(c.right, int)
    least = c.right + 1 if c.operator is Operator.GT else c.right
    return (
        f"聚合结果每组不少于 {least:,} 人"
        if w.zh
        else f"results over groups of at least {least:,} people"
    )


def _epsilon(w: _Words, c: Constraint) -> str:
    word = ("低于" if w.zh else "below") if c.operator is Operator.LT else None
    if w.zh:
        return f"差分隐私预算 ε {word or '不超过'} {c.right}"
    return f"within a privacy budget ε {word or 'of at most'} {c.right}"


def _elapsed(w: _Words, c: Constraint) -> str:
    shown = w.value(c.left, c.right)
    return f"自策略签发起 {shown} 内" if w.zh else f"within {shown} of the policy's issue"


def _recipient(w: _Words, c: Constraint) -> str:
    shown = w.listed(c.left, c.right, "or")
    return f"接收方为 {shown}" if w.zh else f"the recipient is {shown}"


_O = Operator
_SPECIAL: Final[dict[tuple[str, Operator], Callable[[_Words, Constraint], str]]] = {
    ("dateTime", _O.LTEQ): _until,
    ("dateTime", _O.LT): _until,
    ("dateTime", _O.GTEQ): _from,
    ("dateTime", _O.GT): _from,
    ("count", _O.LTEQ): _max_uses,
    ("count", _O.LT): _max_uses,
    ("purpose", _O.EQ): _purpose,
    ("purpose", _O.IS_ANY_OF): _purpose,
    ("purpose", _O.IS_A): _purpose,
    ("deliveryChannel", _O.EQ): _channel,
    ("deliveryChannel", _O.IS_ANY_OF): _channel,
    ("spatial", _O.EQ): _places,
    ("spatial", _O.IS_ANY_OF): _places,
    ("spatial", _O.IS_PART_OF): _places,
    ("df:fields", _O.IS_PART_OF): _fields,
    ("payAmount", _O.GTEQ): _min_pay,
    ("df:minGroupSize", _O.GTEQ): _group,
    ("df:minGroupSize", _O.GT): _group,
    ("df:epsilon", _O.LTEQ): _epsilon,
    ("df:epsilon", _O.LT): _epsilon,
    ("elapsedTime", _O.LTEQ): _elapsed,
    ("elapsedTime", _O.LT): _elapsed,
    ("recipient", _O.EQ): _recipient,
    ("recipient", _O.IS_ANY_OF): _recipient,
}


def describe(policy: Policy, locale: str) -> list[str]:
    """The policy in plain language, one sentence per rule: permissions, prohibitions, then
    obligations. An empty policy says that it permits nothing (deny by default)."""
    words = _Words(language(locale))
    sentences = [words.permission(p) for p in policy.permissions]
    sentences += [words.prohibition(p) for p in policy.prohibitions]
    sentences += [words.obligation(d) for d in policy.obligations]
    if not policy.permissions:
        sentences.append(
            "本策略没有任何许可：一切请求均被拒绝（默认拒绝）。"
            if words.zh
            else "This policy has no permission: every request is denied (deny by default)."
        )
    return sentences
