"""The policy engine: one ``decide`` for every request, with reasons in Chinese and English.

Semantics (docs/policy.md, rule ids from rules/policy.yaml):

* Deny by default (POL-DENY-DEFAULT): without a permission that applies, the answer is deny.
* A permission applies (POL-PERMISSION) when the requested action is the permitted action or one
  it includes (POL-ACTION, ODRL §2.4 includedIn), its target and assignee, if it names them, are
  the request's (POL-TARGET, POL-ASSIGNEE), and every constraint and refinement is satisfied. The
  first permission that applies, in document order, is the one applied: the permit carries its
  duties and the policy's obligations (POL-DUTY), and its output limits (POL-OUTPUT-LIMITS).
* A prohibition beats any permission (POL-PROHIBITION). It covers a request when the requested
  action is the prohibited action or included in it (as for permissions: a prohibition of
  ``df:onwardTransfer`` catches a request to ``distribute``; a request to ``use`` in general is
  decided by the permissions, and the prohibition stays a term of what is granted), and no
  constraint of it is *un*satisfied.
* Three-valued constraints (POL-MISSING-OPERAND): a constraint on something the request does
  not state is unknown. Unknown never satisfies a permission, and never lets a request escape a
  prohibition — leaving the purpose out cannot evade a ban on marketing. So is a value broader
  than one the condition names: the purpose ``industry`` against a ban on ``marketing``, the place
  ``CN`` against ``CN-GX``, ``ASEAN`` against ``VN``.
* In a prohibition a list of fields names what is banned: ``df:fields isAnyOf`` (or isPartOf, eq)
  covers a request that touches any of them, ``isAllOf`` one that touches all of them together.

``compile_policy`` does the work a policy needs once — action sets, closures per constraint,
wording templates — so ``CompiledPolicy.decide`` only compares values; ``decide`` compiles and
decides. Narrowing a policy (a constraint more, a prohibition more, a smaller list) never turns a
deny into a permit: every part of a permission is a conjunct, every prohibition a veto.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, Literal

from datafactor.policy.odrl import (
    CST,
    Constraint,
    Duty,
    LogicalConstraint,
    Permission,
    Policy,
    Prohibition,
    RightValue,
    format_duration,
)
from datafactor.policy.request import Request, parse_request
from datafactor.policy.rulebook import PolicyRules, load_policy_rules
from datafactor.policy.vocabulary import (
    ACTION_LABELS,
    INCLUDES,
    OPERANDS,
    Kind,
    Logical,
    Operand,
    Operator,
    industries_of,
    regions_of,
)

Tri = bool | None  # True satisfied, False not satisfied, None unknown (the request is silent)
Test = Callable[[Request], Tri]
V: Final = "\x00v"  # placeholder for the request's value in a prepared sentence
X: Final = "\x00x"  # placeholder for the offending fields

OPERAND_RULE_KEYS: Final[Mapping[str, str]] = {
    "purpose": "purpose",
    "dateTime": "datetime",
    "count": "count",
    "spatial": "spatial",
    "recipient": "recipient",
    "elapsedTime": "elapsed",
    "deliveryChannel": "channel",
    "industry": "industry",
    "payAmount": "pay_amount",
    "df:fields": "fields",
    "df:minGroupSize": "group_size",
    "df:epsilon": "epsilon",
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason for a decision: the rule applied and what it found, in plain zh and en."""

    rule: str
    en: str
    zh: str

    def text(self, locale: str = "en") -> str:
        return self.zh if locale.lower().startswith("zh") else self.en


@dataclass(frozen=True, slots=True)
class Limit:
    """An output limit the permit carries for the executor (sandbox) to enforce."""

    operand: str  # df:minGroupSize or df:epsilon
    operator: str
    value: int | Decimal

    def as_dict(self) -> dict[str, Any]:
        value = self.value if isinstance(self.value, int) else str(self.value)
        return {"operand": self.operand, "operator": self.operator, "value": value}


class Decision:
    """Permit or deny, why (rule id + zh/en text), the duties now due, the rules applied.

    A permit's reasons are worded on first access (``reasons``): deciding stays fast when the
    caller only needs the outcome, and the text is the same whenever it is asked for."""

    __slots__ = ("_explain", "_reasons", "decision", "duties", "limits", "permission", "rules")

    def __init__(
        self,
        decision: Literal["permit", "deny"],
        reasons: tuple[Reason, ...] | None = None,
        duties: tuple[Duty, ...] = (),
        rules: tuple[str, ...] = (),
        limits: tuple[Limit, ...] = (),
        permission: str | None = None,
        *,
        explain: Callable[[], tuple[Reason, ...]] | None = None,
    ) -> None:
        self.decision = decision
        self._reasons = reasons
        self._explain = explain
        self.duties = duties
        self.rules = rules
        self.limits = limits
        self.permission = permission  # the uid (or position) of the permission applied

    @property
    def reasons(self) -> tuple[Reason, ...]:
        if self._reasons is None:
            self._reasons = self._explain() if self._explain is not None else ()
            self._explain = None
        return self._reasons

    @property
    def permitted(self) -> bool:
        return self.decision == "permit"

    def __repr__(self) -> str:
        return f"Decision({self.decision!r}, rules={self.rules!r})"

    def as_dict(self, locale: str = "en") -> dict[str, Any]:
        """``{"decision", "reasons", "duties", "rules"}`` (+ ``"limits"`` when there are any).

        Duties are given by their ODRL action names (``compensate``, ``df:outputReview``)."""
        out: dict[str, Any] = {
            "decision": self.decision,
            "reasons": [r.text(locale) for r in self.reasons],
            "duties": [d.action.name for d in self.duties],
            "rules": list(self.rules),
        }
        if self.limits:
            out["limits"] = [limit.as_dict() for limit in self.limits]
        return out


# --- wording -------------------------------------------------------------------------------

_ORDER_WORDS: Final[Mapping[str, Mapping[Operator, tuple[str, str]]]] = {
    "time": {
        Operator.EQ: ("on", "为"),
        Operator.LT: ("before", "早于"),
        Operator.LTEQ: ("no later than", "不晚于"),
        Operator.GT: ("after", "晚于"),
        Operator.GTEQ: ("no earlier than", "不早于"),
    },
    "number": {
        Operator.EQ: ("exactly", "等于"),
        Operator.NEQ: ("other than", "不等于"),
        Operator.LT: ("less than", "小于"),
        Operator.LTEQ: ("at most", "不超过"),
        Operator.GT: ("more than", "大于"),
        Operator.GTEQ: ("at least", "不少于"),
    },
}

# (en when it holds, en when it fails, zh requirement) for codes, taxonomies and places.
_SET_PHRASES: Final[Mapping[Operator, tuple[str, str, str]]] = {
    Operator.EQ: ("{s} is {r}, as required", "{s} is not {r}, which is required", "为{r}"),
    Operator.NEQ: ("{s} is not {r}, as required", "{s} is {r}, which is excluded", "不为{r}"),
    Operator.IS_ANY_OF: (
        "{s} is one of the permitted {p}: {r}",
        "{s} is not one of the permitted {p}: {r}",
        "为以下允许的{p}之一：{r}",
    ),
    Operator.IS_NONE_OF: (
        "{s} is none of the excluded {p}: {r}",
        "{s} is one of the excluded {p}: {r}",
        "不为以下被排除的{p}：{r}",
    ),
    Operator.IS_A: (
        "{s} is a kind of {r}",
        "{s} is not a kind of {r}, which is required",
        "属于{r}类",
    ),
}
_PLACE_PHRASES: Final[Mapping[Operator, tuple[str, str, str]]] = {
    Operator.EQ: (
        "{s} lies within {r}",
        "{s} does not lie within {r}, which is required",
        "位于{r}范围内",
    ),
    Operator.IS_PART_OF: (
        "{s} lies within {r}",
        "{s} does not lie within {r}, which is required",
        "位于{r}范围内",
    ),
    Operator.NEQ: (
        "{s} lies outside {r}",
        "{s} lies within {r}, which is excluded",
        "不位于{r}范围内",
    ),
    Operator.IS_ANY_OF: (
        "{s} lies within one of the permitted {p}: {r}",
        "{s} lies within none of the permitted {p}: {r}",
        "位于以下允许的{p}之一范围内：{r}",
    ),
    Operator.IS_NONE_OF: (
        "{s} lies outside every excluded {p}: {r}",
        "{s} lies within one of the excluded {p}: {r}",
        "不位于以下被排除的{p}范围内：{r}",
    ),
}
_FIELD_BASE: Final[Mapping[Operator, tuple[str, str, str]]] = {
    Operator.IS_PART_OF: (
        "{s} are all among the permitted fields: {r}",
        "{s} include fields that are not permitted (" + X + "); permitted fields: {r}",
        "均在以下允许的字段内：{r}",
    ),
    Operator.IS_ALL_OF: (
        "{s} include all of {r}",
        "{s} lack " + X + ", and must include all of {r}",
        "包含以下全部字段：{r}",
    ),
    Operator.IS_NONE_OF: (
        "{s} include none of the excluded fields: {r}",
        "{s} include excluded fields (" + X + "): {r}",
        "不包含以下被排除的字段：{r}",
    ),
    Operator.EQ: ("{s} are exactly {r}", "{s} are not exactly {r}", "恰为{r}"),
}
_FIELD_PHRASES: Final[Mapping[Operator, tuple[str, str, str]]] = {
    **_FIELD_BASE,
    Operator.IS_ANY_OF: _FIELD_BASE[Operator.IS_PART_OF],
}
# In a prohibition a list of fields names what is banned: the ban covers a request that touches
# any of them (isAnyOf, isPartOf, eq), or all of them together (isAllOf).
_BANNED_ANY: Final = (
    "{s} include fields it names (" + X + "): {r}",
    "{s} include none of the fields it names: {r}",
    "包含以下任一字段：{r}",
)
_BANNED_FIELD_PHRASES: Final[Mapping[Operator, tuple[str, str, str]]] = {
    **_FIELD_BASE,
    Operator.IS_ANY_OF: _BANNED_ANY,
    Operator.IS_PART_OF: _BANNED_ANY,
    Operator.EQ: _BANNED_ANY,
}


def _right_text(value: RightValue, locale: str) -> str:
    if isinstance(value, tuple):
        return ("、" if locale == "zh" else ", ").join(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _subject(operand: Operand, locale: str) -> str:
    """The sentence subject with the request's value as the placeholder V."""
    label = operand.label[locale]
    kind = operand.kind
    if locale == "zh":
        if kind in (Kind.CODE, Kind.TAXONOMY, Kind.PLACE):
            return f"{label}“{V}”"
        if kind is Kind.COUNT:
            return f"使用次数（含本次）{V}"
        if kind is Kind.MONEY:
            return f"{label}{V}元"
        return f"{label}{V}"
    if kind in (Kind.CODE, Kind.TAXONOMY, Kind.PLACE):
        return f"the {label} '{V}'"
    if kind is Kind.COUNT:
        return f"the number of uses {V} (including this one)"
    if kind is Kind.MONEY:
        return f"the payment {V} yuan"
    return f"the {label} {V}"


@dataclass(frozen=True, slots=True)
class _Wording:
    en_hold: str
    en_fail: str
    zh_hold: str
    zh_fail: str
    en_missing: str
    zh_missing: str
    en_coarse: str
    zh_coarse: str


def _wording(c: Constraint, *, banned: bool = False) -> _Wording:
    operand = OPERANDS[c.left]
    r_en, r_zh = _right_text(c.right, "en"), _right_text(c.right, "zh")
    if operand.kind is Kind.MONEY:
        r_en, r_zh = f"{r_en} yuan", f"{r_zh}元"
    s_en, s_zh = _subject(operand, "en"), _subject(operand, "zh")
    p_en, p_zh = operand.plural["en"], operand.plural["zh"]
    if operand.kind in (Kind.TIME, Kind.COUNT, Kind.MONEY, Kind.DURATION):
        words = _ORDER_WORDS["time" if operand.kind is Kind.TIME else "number"][c.operator]
        en_hold = f"{s_en} is {words[0]} {r_en}"
        en_fail = f"{s_en} is not {words[0]} {r_en}, as required"
        zh_req = f"{words[1]}{r_zh}"
    else:
        fields = _BANNED_FIELD_PHRASES if banned else _FIELD_PHRASES
        table = {Kind.PLACE: _PLACE_PHRASES, Kind.FIELDS: fields}.get(operand.kind, _SET_PHRASES)
        hold, fail, req = table[c.operator]
        en_hold = hold.format(s=s_en, r=r_en, p=p_en)
        en_fail = fail.format(s=s_en, r=r_en, p=p_en)
        zh_req = req.format(r=r_zh, p=p_zh)
    zh_fail = f"{s_zh}不符合要求：须{zh_req}"
    if operand.kind is Kind.FIELDS and c.operator is not Operator.EQ:
        zh_fail += f"（涉及字段：{X}）"
    return _Wording(
        en_hold=en_hold,
        en_fail=en_fail,
        zh_hold=f"{s_zh}符合要求：{zh_req}",
        zh_fail=zh_fail,
        en_missing=(
            f"the request does not state the {operand.label['en']}, so the condition "
            f"'{c.left} {c.operator.value} {r_en}' cannot be met"
        ),
        zh_missing=f"请求未提供{operand.label['zh']}，无法满足条件：{operand.label['zh']}须{zh_req}",
        en_coarse=(
            f"{s_en} is broader than what the condition '{c.left} {c.operator.value} {r_en}' "
            "names, so whether it is met cannot be known: state it more precisely"
        ),
        zh_coarse=f"{s_zh}的范围比条件所列更宽，无法判断是否满足（须{zh_req}），请更具体地说明",
    )


# --- evaluation ----------------------------------------------------------------------------


def _start_end(value: RightValue) -> tuple[Any, Any]:
    if isinstance(value, date) and not isinstance(value, datetime):
        start = datetime.combine(value, time(0), CST)
        return start, start + timedelta(days=1)
    return value, None


def _ordered(op: Operator, right: RightValue) -> Callable[[Any], bool]:
    """A comparison of a request value with ``right``; a date covers its whole CST day."""
    start, end = _start_end(right)
    if end is not None:  # a day [start, end)
        return {
            Operator.EQ: lambda v: start <= v < end,
            Operator.LT: lambda v: v < start,
            Operator.LTEQ: lambda v: v < end,
            Operator.GT: lambda v: v >= end,
            Operator.GTEQ: lambda v: v >= start,
        }[op]
    return {
        Operator.EQ: lambda v: v == start,
        Operator.NEQ: lambda v: v != start,
        Operator.LT: lambda v: v < start,
        Operator.LTEQ: lambda v: v <= start,
        Operator.GT: lambda v: v > start,
        Operator.GTEQ: lambda v: v >= start,
    }[op]


@lru_cache(maxsize=4096)
def _regions(code: str) -> frozenset[str]:
    return regions_of(code)


def _membership(
    op: Operator,
    right: RightValue,
    broader: Callable[[str], frozenset[str]] | None,
    *,
    nested_eq: bool = False,
) -> Callable[[str], Tri]:
    """Code comparisons. With ``broader`` (taxonomies, places) a value also matches the classes
    or regions it lies within, for isA/isPartOf/isAnyOf/isNoneOf; with ``nested_eq`` (places)
    for eq/neq too: ``spatial eq CN`` holds for a request from CN-GX."""
    values = frozenset(right) if isinstance(right, tuple) else frozenset({str(right)})
    one = str(right) if not isinstance(right, tuple) else ""
    if broader is None:
        return {
            Operator.EQ: lambda v: v == one,
            Operator.NEQ: lambda v: v != one,
            Operator.IS_ANY_OF: lambda v: v in values,
            Operator.IS_NONE_OF: lambda v: v not in values,
        }[op]
    b = broader
    match: Callable[[str], bool] = {
        Operator.IS_A: lambda v: one in b(v),
        Operator.IS_PART_OF: lambda v: one in b(v),
        Operator.IS_ANY_OF: lambda v: not values.isdisjoint(b(v)),
        Operator.IS_NONE_OF: lambda v: values.isdisjoint(b(v)),
        Operator.EQ: (lambda v: one in b(v)) if nested_eq else (lambda v: v == one),
        Operator.NEQ: (lambda v: one not in b(v)) if nested_eq else (lambda v: v != one),
    }[op]
    # A requested class or place broader than one the condition names (the purpose 'industry'
    # against 'marketing', the place CN against CN-GX) may or may not be it: unknown, so that it
    # satisfies no permission and escapes no prohibition.
    within = {w: b(w) for w in values}
    negative = op in (Operator.NEQ, Operator.IS_NONE_OF)

    def coarse(v: str) -> bool:
        return any(v in above and v != w for w, above in within.items())

    def test(v: str) -> Tri:
        result = match(v)
        if result is negative and coarse(v):
            return None
        return result

    return test


def _field_test(
    op: Operator, right: RightValue, *, banned: bool = False
) -> Callable[[frozenset[str]], bool]:
    allowed = frozenset(right) if isinstance(right, tuple) else frozenset({str(right)})
    if banned and op in (Operator.IS_ANY_OF, Operator.IS_PART_OF, Operator.EQ):
        return lambda v: not allowed.isdisjoint(v)
    return {
        Operator.IS_PART_OF: lambda v: v <= allowed,
        Operator.IS_ANY_OF: lambda v: v <= allowed,
        Operator.IS_ALL_OF: lambda v: allowed <= v,
        Operator.IS_NONE_OF: lambda v: allowed.isdisjoint(v),
        Operator.EQ: lambda v: v == allowed,
    }[op]


def _offending(
    op: Operator, right: RightValue, requested: frozenset[str], *, banned: bool = False
) -> str:
    allowed = frozenset(right) if isinstance(right, tuple) else frozenset({str(right)})
    if banned and op is not Operator.IS_ALL_OF:
        return ", ".join(sorted(requested & allowed))
    if op in (Operator.IS_PART_OF, Operator.IS_ANY_OF):
        return ", ".join(sorted(requested - allowed))
    if op is Operator.IS_ALL_OF:
        return ", ".join(sorted(allowed - requested))
    return ", ".join(sorted(requested & allowed))


class _Check:
    """One compiled constraint: its test and how to explain the outcome."""

    __slots__ = ("banned", "constraint", "rule", "rule_missing", "test", "value_text", "wording")

    def __init__(
        self, c: Constraint, policy: Policy, rules: PolicyRules, *, banned: bool = False
    ) -> None:
        self.constraint = c
        self.banned = banned  # a prohibition's constraint
        self.rule = rules.rule_id(OPERAND_RULE_KEYS[c.left])
        self.rule_missing = rules.rule_id("missing_operand")
        self.wording = _wording(c, banned=banned)
        self.test, self.value_text = _compile_test(c, policy, rules, banned=banned)

    def explain(self, request: Request, result: Tri) -> Reason:
        w = self.wording
        key = OPERANDS[self.constraint.left].request_key
        if result is None:
            if key is not None and getattr(request, key) is not None:
                # The request states a value, broader than the condition's (see _membership).
                value = self.value_text(request)
                return Reason(
                    self.rule_missing, w.en_coarse.replace(V, value), w.zh_coarse.replace(V, value)
                )
            return Reason(self.rule_missing, w.en_missing, w.zh_missing)
        value = self.value_text(request)
        en, zh = (w.en_hold, w.zh_hold) if result else (w.en_fail, w.zh_fail)
        en, zh = en.replace(V, value), zh.replace(V, value)
        if X in en or X in zh:
            requested = request.fields or frozenset()
            c = self.constraint
            x = _offending(c.operator, c.right, requested, banned=self.banned)
            en, zh = en.replace(X, x), zh.replace(X, x)
        return Reason(self.rule, en, zh)


def _compile_test(
    c: Constraint, policy: Policy, rules: PolicyRules, *, banned: bool = False
) -> tuple[Test, Callable[[Request], str]]:
    operand = OPERANDS[c.left]
    key = operand.request_key
    assert key is not None
    op, right = c.operator, c.right

    def plain(r: Request) -> str:
        return str(getattr(r, key))

    if operand.kind in (Kind.CODE, Kind.TAXONOMY, Kind.PLACE):
        broader: Callable[[str], frozenset[str]] | None = None
        if operand.kind is Kind.PLACE:
            broader = _regions
        elif c.left == "purpose":
            broader = rules.purposes_of
        elif c.left == "industry":
            broader = industries_of
        match = _membership(op, right, broader, nested_eq=operand.kind is Kind.PLACE)

        def test_code(r: Request) -> Tri:
            v = getattr(r, key)
            return None if v is None else match(v)

        return test_code, plain
    if operand.kind is Kind.TIME:
        compare = _ordered(op, right)

        def test_time(r: Request) -> Tri:
            return None if r.time is None else compare(r.time)

        return test_time, lambda r: r.time.isoformat() if r.time else ""
    if operand.kind is Kind.DURATION:
        compare = _ordered(op, right)
        issued = policy.issued
        assert issued is not None  # the parser requires dct:issued with elapsedTime

        def test_elapsed(r: Request) -> Tri:
            return None if r.time is None else compare(r.time - issued)

        return test_elapsed, lambda r: format_duration(r.time - issued) if r.time else ""
    if operand.kind is Kind.COUNT:
        compare = _ordered(op, right)

        def test_count(r: Request) -> Tri:
            n = r.count_so_far
            return None if n is None else compare(n + 1)

        return test_count, lambda r: str((r.count_so_far or 0) + 1)
    if operand.kind is Kind.MONEY:
        assert isinstance(right, Decimal)
        compare = _ordered(op, int(right * 100))

        def test_money(r: Request) -> Tri:
            v = r.pay_amount
            return None if v is None else compare(v)

        return test_money, lambda r: f"{Decimal(r.pay_amount or 0) / 100:.2f}"
    fields = _field_test(op, right, banned=banned)

    def test_fields(r: Request) -> Tri:
        v = r.fields
        return None if v is None else fields(v)

    return test_fields, lambda r: ", ".join(sorted(r.fields or ()))


class _LogicalCheck:
    """A compiled and/or/xone over plain constraints, in three-valued logic."""

    __slots__ = ("members", "operand", "rule")

    def __init__(
        self, c: LogicalConstraint, policy: Policy, rules: PolicyRules, *, banned: bool = False
    ) -> None:
        self.operand = c.operand
        self.members = tuple(_Check(m, policy, rules, banned=banned) for m in c.constraints)
        self.rule = rules.rule_id("logical")

    def test(self, request: Request) -> Tri:
        results = [m.test(request) for m in self.members]
        if self.operand is Logical.AND:
            return False if False in results else (None if None in results else True)
        if self.operand is Logical.OR:
            return True if True in results else (None if None in results else False)
        trues = results.count(True)
        if trues > 1:
            return False
        return None if None in results else trues == 1

    def explain(self, request: Request, result: Tri) -> Reason:
        parts = [m.explain(request, m.test(request)) for m in self.members]
        en_head, zh_head = {
            Logical.AND: ("all of these must hold", "须同时满足"),
            Logical.OR: ("at least one of these must hold", "须至少满足其一"),
            Logical.XONE: ("exactly one of these must hold", "须恰好满足其一"),
        }[self.operand]
        verdict_en = {True: "met", False: "not met", None: "cannot be checked"}[result]
        verdict_zh = {True: "已满足", False: "未满足", None: "无法核验"}[result]
        return Reason(
            self.rule,
            f"{en_head} ({verdict_en}): " + "; ".join(p.en for p in parts),
            f"{zh_head}（{verdict_zh}）：" + "；".join(p.zh for p in parts),
        )


_AnyCheck = _Check | _LogicalCheck


def _label(kind: str, index: int, uid: str | None) -> tuple[str, str]:
    zh_kind = {"permission": "许可", "prohibition": "禁止"}[kind]
    if uid:
        return f"{kind} '{uid}'", f"{zh_kind}“{uid}”"
    return f"{kind} {index + 1}", f"第{index + 1}项{zh_kind}"


class _CompiledRule:
    __slots__ = (
        "action",
        "actions",
        "assignee",
        "checks",
        "duties",
        "label",
        "limits",
        "permit_ids",
        "target",
        "uid",
    )

    def __init__(
        self,
        kind: str,
        index: int,
        rule: Permission | Prohibition,
        policy: Policy,
        rules: PolicyRules,
    ) -> None:
        self.action = rule.action.name
        # A rule covers the requested action when that action is the rule's or included in it
        # (ODRL 2.2 §2.4 includedIn), for permissions and prohibitions alike.
        self.actions: frozenset[str] = INCLUDES[self.action]
        self.target = rule.target
        self.assignee = rule.assignee
        self.uid = rule.uid or f"{kind}[{index}]"
        self.label = _label(kind, index, rule.uid)
        checks: list[_AnyCheck] = []
        limits: list[Limit] = []
        banned = kind == "prohibition"
        for c in (*rule.action.refinements, *rule.constraints):
            if isinstance(c, LogicalConstraint):
                checks.append(_LogicalCheck(c, policy, rules, banned=banned))
            elif OPERANDS[c.left].kind is Kind.LIMIT:
                assert isinstance(c.right, int | Decimal)
                limits.append(Limit(c.left, c.operator.value, c.right))
            else:
                checks.append(_Check(c, policy, rules, banned=banned))
        self.checks = tuple(checks)
        self.limits = tuple(limits)
        self.duties = rule.duties if isinstance(rule, Permission) else ()
        ids = [rules.rule_id("permission"), rules.rule_id("action")]
        if self.target is not None:
            ids.append(rules.rule_id("target"))
        if self.assignee is not None:
            ids.append(rules.rule_id("assignee"))
        ids += [c.rule for c in self.checks]
        if self.duties:
            ids.append(rules.rule_id("duty"))
        if self.limits:
            ids.append(rules.rule_id("output_limits"))
        self.permit_ids = _dedupe(ids)


def _dedupe(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _action_text(action: str) -> tuple[str, str]:
    label = ACTION_LABELS.get(action, {"en": action, "zh": action})
    return label["en"], label["zh"]


class CompiledPolicy:
    """A policy prepared for deciding: call ``decide(request)`` as often as needed."""

    __slots__ = ("_obligations", "_permissions", "_prohibitions", "_r", "policy")

    def __init__(self, policy: Policy, rules: PolicyRules | None = None) -> None:
        rules = rules or load_policy_rules()
        self.policy = policy
        self._permissions = tuple(
            _CompiledRule("permission", i, p, policy, rules)
            for i, p in enumerate(policy.permissions)
        )
        self._prohibitions = tuple(
            _CompiledRule("prohibition", i, p, policy, rules)
            for i, p in enumerate(policy.prohibitions)
        )
        self._obligations = policy.obligations
        self._r = {
            key: rules.rule_id(key)
            for key in (
                "deny_default",
                "permission",
                "prohibition",
                "action",
                "target",
                "assignee",
                "missing_operand",
                "duty",
                "output_limits",
            )
        }

    def decide(self, request: Request | Mapping[str, Any]) -> Decision:
        """Permit or deny ``request`` (a ``Request`` or its JSON form) under this policy."""
        req = request if isinstance(request, Request) else parse_request(request)
        banned = self._prohibited(req)
        if banned is not None:
            return banned
        candidates: list[tuple[_CompiledRule, list[Reason]]] = []
        for rule in self._permissions:
            if req.action not in rule.actions:
                continue
            failures = self._unmet(rule, req)
            if not failures:
                return self._permit(rule, req)
            candidates.append((rule, failures))
        return self._deny(req, candidates)

    # prohibitions: a veto when no constraint of theirs is unsatisfied
    def _prohibited(self, req: Request) -> Decision | None:
        r = self._r
        reasons: list[Reason] = []
        ids: list[str] = []
        for rule in self._prohibitions:
            if req.action not in rule.actions:
                continue
            if rule.target is not None and req.target is not None and req.target != rule.target:
                continue
            if (
                rule.assignee is not None
                and req.assignee is not None
                and req.assignee != rule.assignee
            ):
                continue
            results = [(c, c.test(req)) for c in rule.checks]
            if any(res is False for _, res in results):
                continue
            act_en, act_zh = _action_text(rule.action)
            on_en = f" on '{rule.target}'" if rule.target else ""
            on_zh = f"（对象“{rule.target}”）" if rule.target else ""
            reasons.append(
                Reason(
                    r["prohibition"],
                    f"{rule.label[0]} forbids '{act_en}'{on_en}, which covers the action "
                    f"'{_action_text(req.action)[0]}' requested; a prohibition beats any "
                    "permission",
                    f"{rule.label[1]}禁止“{act_zh}”{on_zh}，涵盖所请求的“{_action_text(req.action)[1]}”；"
                    "禁止优先于许可",
                )
            )
            ids += [r["prohibition"], r["action"]]
            for check, res in results:
                reason = check.explain(req, res)
                reasons.append(reason)
                ids.append(reason.rule)
        if not reasons:
            return None
        return Decision("deny", tuple(reasons), rules=_dedupe(ids))

    def _unmet(self, rule: _CompiledRule, req: Request) -> list[Reason]:
        r = self._r
        failures: list[Reason] = []
        for key, wanted, given in (
            ("target", rule.target, req.target),
            ("assignee", rule.assignee, req.assignee),
        ):
            if wanted is None or wanted == given:
                continue
            noun_en = "asset" if key == "target" else "party"
            noun_zh = "数据对象" if key == "target" else "被许可方"
            if given is None:
                failures.append(
                    Reason(
                        r["missing_operand"],
                        f"the request does not name the {noun_en}; {rule.label[0]} is for "
                        f"'{wanted}' only",
                        f"请求未说明{noun_zh}；{rule.label[1]}仅适用于“{wanted}”",
                    )
                )
            else:
                failures.append(
                    Reason(
                        r[key],
                        f"{rule.label[0]} is for the {noun_en} '{wanted}', not '{given}'",
                        f"{rule.label[1]}仅适用于{noun_zh}“{wanted}”，而非“{given}”",
                    )
                )
        for check in rule.checks:
            res = check.test(req)
            if res is not True:
                failures.append(check.explain(req, res))
        return failures

    def _permit(self, rule: _CompiledRule, req: Request) -> Decision:
        obligations = self._obligations
        duties = rule.duties
        if obligations:
            duties += tuple(
                d for d in obligations if dict(d.parties).get("assignee") in (None, req.assignee)
            )
        ids = rule.permit_ids
        if duties and self._r["duty"] not in ids:
            ids = _dedupe((*ids, self._r["duty"]))
        return Decision(
            "permit",
            None,
            duties=duties,
            rules=ids,
            limits=rule.limits,
            permission=rule.uid,
            explain=lambda: self._permit_reasons(rule, req, duties),
        )

    def _permit_reasons(
        self, rule: _CompiledRule, req: Request, duties: tuple[Duty, ...]
    ) -> tuple[Reason, ...]:
        r = self._r
        act_en, act_zh = _action_text(rule.action)
        req_en, req_zh = _action_text(req.action)
        on_en = f" on '{rule.target}'" if rule.target else ""
        on_zh = f"（对象“{rule.target}”）" if rule.target else ""
        reasons = [
            Reason(
                r["permission"],
                f"{rule.label[0]} permits '{act_en}'{on_en}, which covers '{req_en}', and all "
                "its conditions hold",
                f"{rule.label[1]}允许“{act_zh}”{on_zh}，涵盖“{req_zh}”，且其全部条件均已满足",
            )
        ]
        reasons += [check.explain(req, True) for check in rule.checks]
        if duties:
            names_en = ", ".join(_action_text(d.action.name)[0] for d in duties)
            names_zh = "、".join(_action_text(d.action.name)[1] for d in duties)
            reasons.append(
                Reason(
                    r["duty"],
                    f"the grantee must now fulfil these duties: {names_en}",
                    f"被许可方须履行以下义务：{names_zh}",
                )
            )
        if rule.limits:
            en = "; ".join(
                f"{OPERANDS[lim.operand].label['en']} {lim.operator} {lim.value}"
                for lim in rule.limits
            )
            zh = "；".join(
                f"{OPERANDS[lim.operand].label['zh']} {lim.operator} {lim.value}"
                for lim in rule.limits
            )
            reasons.append(
                Reason(
                    r["output_limits"],
                    f"results must respect these output limits: {en}",
                    f"输出结果须遵守以下限制：{zh}",
                )
            )
        return tuple(reasons)

    def _deny(self, req: Request, candidates: list[tuple[_CompiledRule, list[Reason]]]) -> Decision:
        r = self._r
        reasons: list[Reason] = []
        ids: list[str] = []
        req_en, req_zh = _action_text(req.action)
        if not candidates:
            reasons.append(
                Reason(
                    r["action"],
                    f"no permission of the policy covers the action '{req_en}'",
                    f"策略中没有涵盖“{req_zh}”这一动作的许可",
                )
            )
            ids.append(r["action"])
        for rule, failures in candidates:
            for failure in failures:
                reasons.append(
                    Reason(
                        failure.rule,
                        f"{rule.label[0]}: {failure.en}",
                        f"{rule.label[1]}：{failure.zh}",
                    )
                )
                ids.append(failure.rule)
        reasons.append(
            Reason(
                r["deny_default"],
                "no permission applies, so the request is denied (deny by default)",
                "没有适用的许可，请求被拒绝（默认拒绝）",
            )
        )
        ids.append(r["deny_default"])
        return Decision("deny", tuple(reasons), rules=_dedupe(ids))


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Prepare ``policy`` for fast repeated decisions."""
    return CompiledPolicy(policy)


def decide(policy: Policy | CompiledPolicy, request: Request | Mapping[str, Any]) -> Decision:
    """Permit or deny ``request`` under ``policy`` (compiling it first if needed)."""
    compiled = policy if isinstance(policy, CompiledPolicy) else CompiledPolicy(policy)
    return compiled.decide(request)
