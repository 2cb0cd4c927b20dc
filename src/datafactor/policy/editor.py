"""The form-based policy editor: plain choices in, ODRL JSON-LD out — no ODRL knowledge needed.

``EditorValues`` holds what a holder decides (purposes, channels, regions, the term's end, the
maximum number of uses, the allowed fields, the fee per use, k and ε for aggregates, and the
prohibitions of download, onward transfer and re-identification); ``build_document`` writes the
policy those choices mean, which ``odrl.parse_policy`` then checks like any other policy (so the
editor can never produce a policy the engine would refuse, and its contradictions are refused with
the same messages). ``values_from_document`` reads the choices back from a policy shaped like the
editor's (the built-in templates are), best effort: a constraint the form has no field for is
simply not shown. ``request_from_form`` turns the "try a request" form into a request. Money is
typed in yuan and kept in fen (分) in requests, in yuan in ODRL ``payAmount`` (the profile's unit).
Pure Python: no web, no ORM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from datafactor.errors import N_, InvalidInput
from datafactor.policy.odrl import CST
from datafactor.policy.render import PLACE_NAMES, language
from datafactor.policy.rulebook import load_policy_rules
from datafactor.policy.vocabulary import (
    ACTION_LABELS,
    ACTION_PARENTS,
    CHANNEL_LABELS,
    DCT_NS,
    DF_NS,
    DF_PROFILE,
    ODRL_CONTEXT,
    REGION_GROUPS,
)

DRAFT_UID: Final = "https://datafactor.gx.cn/odrl/policies/draft"
REGION_CHOICES: Final = ("CN", "CN-GX", "ASEAN", *sorted(REGION_GROUPS["ASEAN"]))
REQUEST_ACTIONS: Final = ("use", "read", "aggregate", "derive", "distribute", "transfer",
                          "df:onwardTransfer", "df:reidentify")  # fmt: skip
DEFAULT_REQUEST: Final[Mapping[str, str]] = {
    "action": "read",
    "purpose": "",
    "channel": "api",
    "spatial": "CN-GX",
    "time": "",
    "count_so_far": "0",
    "pay_amount": "",
    "industry": "",
    "fields": "",
}


@dataclass
class EditorValues:
    """What the editor's form holds."""

    purposes: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    term_end: date | None = None
    max_uses: int | None = None
    fields: list[str] = field(default_factory=list)
    pay_amount: Decimal | None = None  # yuan
    min_group_size: int | None = None
    epsilon: Decimal | None = None
    prohibit_download: bool = False
    prohibit_onward_transfer: bool = False
    prohibit_reidentification: bool = False

    @property
    def pay_amount_yuan(self) -> str:
        return "" if self.pay_amount is None else f"{self.pay_amount:.2f}"


def choices(locale: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """The editor's options as (value, label) in ``locale``'s language (default: the request's)."""
    lang = language(locale or _current_locale())
    purposes = load_policy_rules().purposes
    return {
        "purposes": [(code, names[lang]) for code, names in purposes.items()],
        "channels": [(str(c), names[lang]) for c, names in CHANNEL_LABELS.items()],
        "regions": [(code, PLACE_NAMES[code][0 if lang == "zh" else 1]) for code in REGION_CHOICES],
    }


def request_choices(locale: str | None = None) -> dict[str, list[tuple[str, str]]]:
    lang = language(locale or _current_locale())
    base = choices(locale)
    return {
        "actions": [(a, ACTION_LABELS[a][lang]) for a in REQUEST_ACTIONS],
        "purposes": base["purposes"],
        "channels": base["channels"],
    }


def _current_locale() -> str:
    from datafactor import context

    return context.locale.get()


# --- form → values -----------------------------------------------------------------------


def _list(form: Mapping[str, str], key: str) -> list[str]:
    return [v.strip() for v in form.get(key, "").split("\n") if v.strip()]


def _split(text: str) -> list[str]:
    out: list[str] = []
    for part in text.replace("，", ",").replace("、", ",").replace("\n", ",").split(","):
        if part.strip() and part.strip() not in out:
            out.append(part.strip())
    return out


MESSAGES: Final[Mapping[str, str]] = {
    "max_uses": N_("The maximum number of uses must be a whole number of at least 1."),
    "min_group_size": N_("The minimum group size (k) must be a whole number of at least 2."),
    "pay_amount": N_(
        "The fee must be an amount in yuan greater than 0 with at most two decimals, like 12.50."
    ),
    "epsilon": N_("The privacy budget (ε) must be a number greater than 0, like 0.5."),
    "term_end": N_("The term's end must be a date like 2027-12-31."),
    "request_pay_amount": N_(
        "The payment must be an amount in yuan with at most two decimals, like 12.50."
    ),
}


def _whole(form: Mapping[str, str], key: str, least: int, lenient: bool) -> int | None:
    text = form.get(key, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < least:
        if lenient:
            return None
        raise InvalidInput(MESSAGES[key], field=key)
    return value


def _decimal(
    form: Mapping[str, str], key: str, places: int, lenient: bool, *, zero: bool = False
) -> Decimal | None:
    text = form.get(key, "").strip()
    if not text:
        return None
    try:
        value: Decimal | None = Decimal(text)
    except InvalidOperation:
        value = None
    if (
        value is None
        or not value.is_finite()
        or value < 0
        or (value == 0 and not zero)
        or value != value.quantize(Decimal(1).scaleb(-places))
    ):
        if lenient:
            return None
        raise InvalidInput(MESSAGES[key], field=key)
    return value


def values_from_form(form: Mapping[str, str], *, lenient: bool = False) -> EditorValues:
    """The editor's form read and checked (``lenient``: drop what cannot be read, to redisplay)."""
    known = choices("en")
    purposes = [p for p in _list(form, "purposes") if p in dict(known["purposes"])]
    channels = [c for c in _list(form, "channels") if c in dict(known["channels"])]
    regions = [r for r in _list(form, "regions") if r in REGION_CHOICES]
    term_end = None
    if form.get("term_end", "").strip():
        try:
            term_end = date.fromisoformat(form["term_end"].strip())
        except ValueError:
            if not lenient:
                raise InvalidInput(MESSAGES["term_end"], field="term_end") from None
    return EditorValues(
        purposes=purposes,
        channels=channels,
        regions=regions,
        term_end=term_end,
        max_uses=_whole(form, "max_uses", 1, lenient),
        fields=_split(form.get("fields", "")),
        pay_amount=_decimal(form, "pay_amount", 2, lenient),
        min_group_size=_whole(form, "min_group_size", 2, lenient),
        epsilon=_decimal(form, "epsilon", 6, lenient),
        prohibit_download=bool(form.get("prohibit_download")),
        prohibit_onward_transfer=bool(form.get("prohibit_onward_transfer")),
        prohibit_reidentification=bool(form.get("prohibit_reidentification")),
    )


# --- values → JSON-LD ----------------------------------------------------------------------


def _c(left: str, operator: str, right: Any, **extra: Any) -> dict[str, Any]:
    return {"leftOperand": left, "operator": operator, "rightOperand": right, **extra}


def build_document(values: EditorValues, uid: str = DRAFT_UID) -> dict[str, Any]:
    """The ODRL policy (JSON-LD) the editor's choices mean: one permission to use under every
    chosen condition (with a compensate duty when there is a fee), and one prohibition each for
    download, onward transfer and re-identification when ticked. Parse it before trusting it."""
    constraints: list[dict[str, Any]] = []
    if values.purposes:
        constraints.append(_c("purpose", "isAnyOf", list(values.purposes)))
    if values.channels:
        constraints.append(_c("deliveryChannel", "isAnyOf", list(values.channels)))
    if values.regions:
        constraints.append(_c("spatial", "isAnyOf", list(values.regions)))
    if values.term_end is not None:
        constraints.append(
            _c("dateTime", "lteq", {"@value": values.term_end.isoformat(), "@type": "xsd:date"})
        )
    if values.max_uses is not None:
        constraints.append(_c("count", "lteq", values.max_uses))
    if values.fields:
        constraints.append(_c("df:fields", "isPartOf", list(values.fields)))
    if values.min_group_size is not None:
        constraints.append(_c("df:minGroupSize", "gteq", values.min_group_size))
    if values.epsilon is not None:
        constraints.append(
            _c("df:epsilon", "lteq", {"@value": str(values.epsilon), "@type": "xsd:decimal"})
        )
    permission: dict[str, Any] = {"uid": f"{uid}#use", "action": "use"}
    duties: list[dict[str, Any]] = []
    if values.pay_amount is not None:
        fee = {"@value": f"{values.pay_amount:.2f}", "@type": "xsd:decimal"}
        constraints.append(_c("payAmount", "gteq", fee, unit="CNY"))
        duties.append({"action": "compensate", "constraint": [_c("payAmount", "eq", fee,
                                                                     unit="CNY")]})  # fmt: skip
    if constraints:
        permission["constraint"] = constraints
    if duties:
        permission["duty"] = duties
    prohibitions: list[dict[str, Any]] = []
    if values.prohibit_download:
        prohibitions.append(
            {
                "uid": f"{uid}#no-download",
                "action": "use",
                "constraint": [_c("deliveryChannel", "eq", "download")],
            }
        )
    if values.prohibit_onward_transfer:
        prohibitions.append({"uid": f"{uid}#no-onward-transfer", "action": "df:onwardTransfer"})
    if values.prohibit_reidentification:
        prohibitions.append({"uid": f"{uid}#no-reidentify", "action": "df:reidentify"})
    document: dict[str, Any] = {
        "@context": [ODRL_CONTEXT, {"df": DF_NS, "dct": DCT_NS}],
        "@type": "Set",
        "uid": uid,
        "profile": DF_PROFILE,
        "conflict": "prohibit",
        "permission": [permission],
    }
    if prohibitions:
        document["prohibition"] = prohibitions
    return document


# --- JSON-LD → values (best effort) --------------------------------------------------------


def _atoms(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [i.get("@value", i.get("@id")) if isinstance(i, Mapping) else i for i in items]


def values_from_document(document: Mapping[str, Any]) -> EditorValues:
    """The editor's choices read back from a policy shaped like the editor's output."""
    values = EditorValues()
    purposes = dict(choices("en")["purposes"])
    permissions = document.get("permission") or []
    first = permissions[0] if isinstance(permissions, list) and permissions else {}
    for c in first.get("constraint", []) if isinstance(first, Mapping) else []:
        if not isinstance(c, Mapping):
            continue
        left, op, right = c.get("leftOperand"), c.get("operator"), c.get("rightOperand")
        atoms = _atoms(right)
        try:
            if left == "purpose" and op == "isAnyOf":
                values.purposes = [str(a) for a in atoms]
            elif left == "purpose" and op == "isA":
                parent = str(atoms[0])
                rules = load_policy_rules()
                values.purposes = [p for p in purposes if parent in rules.purposes_of(p)]
            elif left == "deliveryChannel" and op in ("isAnyOf", "eq"):
                values.channels = [str(a) for a in atoms]
            elif left == "spatial" and op in ("isAnyOf", "eq", "isPartOf"):
                values.regions = [str(a) for a in atoms]
            elif left == "dateTime" and op in ("lteq", "lt"):
                values.term_end = date.fromisoformat(str(atoms[0])[:10])
            elif left == "count" and op == "lteq":
                values.max_uses = int(atoms[0])
            elif left == "df:fields" and op == "isPartOf":
                values.fields = [str(a) for a in atoms]
            elif left == "payAmount" and op == "gteq":
                values.pay_amount = Decimal(str(atoms[0]))
            elif left == "df:minGroupSize" and op == "gteq":
                values.min_group_size = int(atoms[0])
            elif left == "df:epsilon" and op == "lteq":
                values.epsilon = Decimal(str(atoms[0]))
        except (ValueError, IndexError, InvalidOperation):
            continue
    for p in document.get("prohibition") or []:
        if not isinstance(p, Mapping):
            continue
        action = p.get("action")
        if action == "df:onwardTransfer":
            values.prohibit_onward_transfer = True
        elif action == "df:reidentify":
            values.prohibit_reidentification = True
        elif any(
            isinstance(c, Mapping)
            and c.get("leftOperand") == "deliveryChannel"
            and "download" in _atoms(c.get("rightOperand"))
            for c in p.get("constraint", [])
        ):
            values.prohibit_download = True
    return values


# --- the "try a request" form --------------------------------------------------------------

_REQUEST_FIELDS: Final = {
    "action": "action",
    "purpose": "purpose",
    "channel": "channel",
    "spatial": "spatial",
    "time": "time",
    "count_so_far": "count_so_far",
    "pay_amount": "request_pay_amount",
    "industry": "industry",
    "fields": "request_fields",
}


def request_form_values(form: Mapping[str, str]) -> dict[str, str]:
    """The try-out form's fields as typed, to show them again."""
    return {key: form.get(name, "").strip() for key, name in _REQUEST_FIELDS.items()}


def request_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The try-out form as a request (``request.parse_request`` checks it): the time typed in
    China time, the payment in yuan turned into fen, the fields split on commas."""
    typed = request_form_values(form)
    out: dict[str, Any] = {"action": typed["action"] or "use"}
    if out["action"] not in ACTION_PARENTS:
        out["action"] = typed["action"]  # parse_request names the unknown action
    for key in ("purpose", "channel", "spatial", "industry"):
        if typed[key]:
            out[key] = typed[key]
    if typed["time"]:
        try:
            moment = datetime.fromisoformat(typed["time"])
        except ValueError:
            out["time"] = typed["time"]  # parse_request refuses it with the key named
        else:
            out["time"] = (moment if moment.tzinfo else moment.replace(tzinfo=CST)).isoformat()
    if typed["count_so_far"]:
        try:
            out["count_so_far"] = int(typed["count_so_far"])
        except ValueError:
            out["count_so_far"] = typed["count_so_far"]
    if typed["pay_amount"]:
        amount = _decimal(form, "request_pay_amount", 2, lenient=False, zero=True)
        assert amount is not None
        out["pay_amount"] = int(amount * 100)
    if typed["fields"]:
        out["fields"] = _split(typed["fields"])
    return out


def require_document(text: str) -> dict[str, Any]:
    """The JSON-LD typed on the page as an object, or a refusal saying it is not JSON."""
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(
            N_("The policy is not valid JSON (line {line}, column {column}): {reason}."),
            field="policy",
            line=getattr(exc, "lineno", 0),
            column=getattr(exc, "colno", 0),
            reason=getattr(exc, "msg", str(exc)),
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(N_("The policy must be a JSON object."), field="policy")
    return data
