"""ODRL 2.2 policies in JSON-LD: the typed model, ``parse_policy`` and ``Policy.to_jsonld``.

A policy is read into frozen dataclasses (``Policy`` → ``Permission`` / ``Prohibition`` / ``Duty``
→ ``Action`` / ``Constraint`` / ``LogicalConstraint``) in the ODRL Information Model's *atomic*
form (§2.7): policy-level ``target``/``assigner``/``assignee``/``action`` are copied into every
rule that lacks them (§2.7.1) and a rule naming several targets, parties or actions becomes one
rule per combination. Terms are accepted as compact terms of the standard context
(``use``), ``odrl:`` compact IRIs or full IRIs, and our profile's as ``df:…`` or full IRIs; they
are kept in compact form. Right operands are typed on the way in (dates, durations, money in
CNY, place codes), so the engine never parses text.

Nothing is ignored: an unknown key, action, left operand, operator, place, channel or context
entry is refused with the term named (``UnknownTerm``); a value of the wrong shape is
``MalformedPolicy``; constraints that no request could satisfy (``count lt 1``, an empty
``isAnyOf``, a time window that closes before it opens) are ``ContradictoryConstraints``.
``parse_policy(p.to_jsonld()) == p`` for every policy ``p`` (the round trip is tested).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import Any, Final, TypeAlias

from datafactor.errors import N_
from datafactor.policy.errors import (
    ContradictoryConstraints,
    MalformedPolicy,
    PolicyError,
    UnknownTerm,
)
from datafactor.policy.rulebook import load_policy_rules
from datafactor.policy.vocabulary import (
    ACTION_PARENTS,
    DCT_NS,
    DF_NS,
    DF_PROFILE,
    DUTY_ACTIONS,
    FUNCTIONS,
    ODRL_CONTEXT,
    ODRL_NS,
    OPERANDS,
    XSD_NS,
    Channel,
    Kind,
    Logical,
    Operand,
    Operator,
    PolicyType,
    region_code,
)

M_UNKNOWN: Final = N_("Unknown {kind} “{term}” at {path}: use one of {known} (rule {rule}).")
M_MALFORMED: Final = N_("At {path} the policy needs {expected} (rule {rule}).")
M_OPERATOR: Final = N_(
    "The operator “{term}” cannot be used with {operand} at {path}: use one of {known} "
    "(rule {rule})."
)
M_UNSUPPORTED: Final = N_("“{term}” at {path} is not supported: {hint} (rule {rule}).")
M_CONTRADICTION: Final = N_(
    "The constraints at {path} can never be satisfied: {reason}. Correct or remove one of them "
    "(rule {rule})."
)

# China Standard Time: a date without a time (xsd:date) is read as that whole day in UTC+08:00.
CST: Final = timezone(timedelta(hours=8), "CST")
# Rules one policy may hold once multiple targets, parties and actions are expanded into one rule
# each (§2.7): a few lists of a few dozen values would otherwise make millions.
MAX_RULES: Final = 1000
TOO_MANY_RULES: Final = (
    f"at most {MAX_RULES} rules once its targets, parties and actions are expanded"
)
CNY_UNITS: Final = frozenset(
    {
        "CNY",
        "http://dbpedia.org/resource/Renminbi",
        "http://dbpedia.org/resource/Chinese_yuan",
        "https://www.iso.org/iso-4217-currency-codes.html#CNY",
    }
)

RightValue: TypeAlias = str | int | Decimal | datetime | date | timedelta | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Constraint:
    """ODRL 2.2 §2.5.1: ``left`` compared with ``right`` by ``operator``.

    ``right`` is typed by the operand: str codes, tuple[str, ...] for lists, int counts and
    group sizes, Decimal yuan (payAmount) and ε, aware datetime or date (dateTime), timedelta
    (elapsedTime)."""

    left: str
    operator: Operator
    right: RightValue
    unit: str | None = None
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class LogicalConstraint:
    """ODRL 2.2 §2.5.2: ``and`` / ``or`` / ``xone`` over plain constraints."""

    operand: Logical
    constraints: tuple[Constraint, ...]
    uid: str | None = None


AnyConstraint: TypeAlias = Constraint | LogicalConstraint


@dataclass(frozen=True, slots=True)
class Action:
    """An action term with its refinements (§2.5.4)."""

    name: str
    refinements: tuple[AnyConstraint, ...] = ()


@dataclass(frozen=True, slots=True)
class Duty:
    """A duty of a permission, an obligation of the policy, a remedy or a consequence (§2.6.3)."""

    action: Action
    target: str | None = None
    parties: tuple[tuple[str, str], ...] = ()  # (function, party uid), sorted
    constraints: tuple[AnyConstraint, ...] = ()
    consequences: tuple[Duty, ...] = ()
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Permission:
    """§2.6.1: allows ``action`` on ``target`` when every constraint is satisfied."""

    action: Action
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None
    constraints: tuple[AnyConstraint, ...] = ()
    duties: tuple[Duty, ...] = ()
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Prohibition:
    """§2.6.2: disallows ``action`` on ``target`` when every constraint is satisfied."""

    action: Action
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None
    constraints: tuple[AnyConstraint, ...] = ()
    remedies: tuple[Duty, ...] = ()
    uid: str | None = None


Rule: TypeAlias = Permission | Prohibition


@dataclass(frozen=True, slots=True)
class Policy:
    """An ODRL policy in atomic form. An empty policy is valid and permits nothing."""

    uid: str
    type: PolicyType = PolicyType.SET
    permissions: tuple[Permission, ...] = ()
    prohibitions: tuple[Prohibition, ...] = ()
    obligations: tuple[Duty, ...] = ()
    profiles: tuple[str, ...] = ()
    conflict: str | None = None  # "prohibit" or "invalid" (both deny on conflict)
    issued: datetime | None = None  # dct:issued, from which elapsedTime counts
    title: str | None = None
    description: str | None = None
    creator: str | None = None

    def to_jsonld(self) -> dict[str, Any]:
        """The policy as ODRL JSON-LD (compact terms, the standard context plus ``df``/``dct``)."""
        out: dict[str, Any] = {
            "@context": [ODRL_CONTEXT, {"df": DF_NS, "dct": DCT_NS}],
            "@type": self.type.value,
            "uid": self.uid,
        }
        if self.profiles:
            out["profile"] = list(self.profiles)
        if self.conflict:
            out["conflict"] = self.conflict
        for key, value in (
            ("dct:title", self.title),
            ("dct:description", self.description),
            ("dct:creator", self.creator),
        ):
            if value is not None:
                out[key] = value
        if self.issued is not None:
            out["dct:issued"] = {"@value": self.issued.isoformat(), "@type": "xsd:dateTime"}
        if self.permissions:
            out["permission"] = [_export_rule(p) for p in self.permissions]
        if self.prohibitions:
            out["prohibition"] = [_export_rule(p) for p in self.prohibitions]
        if self.obligations:
            out["obligation"] = [_export_duty(d) for d in self.obligations]
        return out


# --- export --------------------------------------------------------------------------------


def _export_action(action: Action) -> Any:
    if not action.refinements:
        return action.name
    iri = action.name if action.name.startswith("df:") else f"odrl:{action.name}"
    return [
        {
            "rdf:value": {"@id": iri},
            "refinement": [_export_constraint(c) for c in action.refinements],
        }
    ]


def _export_right(value: RightValue) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, bool):  # pragma: no cover - never stored
        raise TypeError(value)
    if isinstance(value, int | str):
        return value
    if isinstance(value, Decimal):
        return {"@value": str(value), "@type": "xsd:decimal"}
    if isinstance(value, datetime):
        return {"@value": value.isoformat(), "@type": "xsd:dateTime"}
    if isinstance(value, date):
        return {"@value": value.isoformat(), "@type": "xsd:date"}
    return {"@value": format_duration(value), "@type": "xsd:duration"}


def _export_constraint(c: AnyConstraint) -> dict[str, Any]:
    if isinstance(c, LogicalConstraint):
        out: dict[str, Any] = {c.operand.value: [_export_constraint(m) for m in c.constraints]}
    else:
        out = {
            "leftOperand": c.left,
            "operator": c.operator.value,
            "rightOperand": _export_right(c.right),
        }
        if c.unit is not None:
            out["unit"] = c.unit
    if c.uid is not None:
        out["uid"] = c.uid
    return out


def _export_duty(d: Duty) -> dict[str, Any]:
    out: dict[str, Any] = {"action": _export_action(d.action)}
    if d.uid is not None:
        out["uid"] = d.uid
    if d.target is not None:
        out["target"] = d.target
    for function, party in d.parties:
        out[function] = party
    if d.constraints:
        out["constraint"] = [_export_constraint(c) for c in d.constraints]
    if d.consequences:
        out["consequence"] = [_export_duty(c) for c in d.consequences]
    return out


def _export_rule(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"action": _export_action(r.action)}
    if r.uid is not None:
        out["uid"] = r.uid
    for key in ("target", "assigner", "assignee"):
        value = getattr(r, key)
        if value is not None:
            out[key] = value
    if r.constraints:
        out["constraint"] = [_export_constraint(c) for c in r.constraints]
    if isinstance(r, Permission) and r.duties:
        out["duty"] = [_export_duty(d) for d in r.duties]
    if isinstance(r, Prohibition) and r.remedies:
        out["remedy"] = [_export_duty(d) for d in r.remedies]
    return out


# --- durations -----------------------------------------------------------------------------

_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?"
)


def parse_duration(text: str) -> timedelta | None:
    """An xsd:duration in weeks, days, hours, minutes and seconds (``P30D``, ``PT12H``), or None.

    Years and months are refused: their length varies, so a limit in them is ambiguous."""
    match = _DURATION.fullmatch(text.strip())
    if not match or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        return None
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def format_duration(value: timedelta) -> str:
    """``value`` as an xsd:duration (``P30D``, ``P1DT2H``, ``PT0S``)."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    text = "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
    return text if text != "P" else "PT0S"


# --- parsing -------------------------------------------------------------------------------


class _Parser:
    """One parse: the rule ids in use, and the checks that need the whole policy."""

    def __init__(self) -> None:
        rules = load_policy_rules()
        self.r_unknown = rules.rule_id("unknown_term")
        self.r_malformed = rules.rule_id("malformed")
        self.r_contra = rules.rule_id("contradiction")
        self.r_conflict = rules.rule_id("conflict")
        self.uses_df = False
        self.elapsed_at: str | None = None

    # errors
    def unknown(self, kind: str, term: Any, path: str, known: Iterable[str]) -> PolicyError:
        return UnknownTerm(
            M_UNKNOWN,
            rule=self.r_unknown,
            term=str(term),
            path=path,
            kind=kind,
            known=", ".join(sorted(known)),
        )

    def malformed(self, path: str, expected: str, term: Any = "") -> PolicyError:
        return MalformedPolicy(
            M_MALFORMED, rule=self.r_malformed, term=str(term), path=path, expected=expected
        )

    def unsupported(self, term: str, path: str, hint: str) -> PolicyError:
        return UnknownTerm(M_UNSUPPORTED, rule=self.r_unknown, term=term, path=path, hint=hint)

    def contradiction(self, path: str, reason: str, term: str) -> PolicyError:
        return ContradictoryConstraints(
            M_CONTRADICTION, rule=self.r_contra, term=term, path=path, reason=reason
        )

    # terms
    def term(self, value: Any, path: str) -> str:
        """A term in compact form: ``odrl:use`` / full IRI → ``use``; our profile → ``df:…``."""
        if isinstance(value, Mapping):
            if set(value) != {"@id"}:
                raise self.malformed(path, 'a term or {"@id": term}', value)
            value = value["@id"]
        if not isinstance(value, str) or not value.strip():
            raise self.malformed(path, "a term (text)", value)
        text = value.strip()
        if text.startswith(ODRL_NS):
            return text[len(ODRL_NS) :]
        if text.startswith("odrl:"):
            return text[5:]
        if text.startswith(DF_NS):
            self.uses_df = True
            return "df:" + text[len(DF_NS) :]
        if text.startswith("df:"):
            self.uses_df = True
        return text

    def key(self, key: str) -> str:
        if key.startswith(ODRL_NS):
            return key[len(ODRL_NS) :]
        if key.startswith("odrl:"):
            return key[5:]
        if key.startswith(DCT_NS):
            return "dct:" + key[len(DCT_NS) :]
        if key.startswith("dc:"):
            return "dct:" + key[3:]
        return key

    def keys(self, obj: Any, path: str, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(obj, Mapping):
            raise self.malformed(path, "an object", type(obj).__name__)
        out: dict[str, Any] = {}
        for raw, value in obj.items():
            if not isinstance(raw, str):
                raise self.malformed(path, "text keys", raw)
            k = self.key(raw)
            if k not in allowed:
                raise self.unknown("key", raw, path, allowed)
            if k in out:
                raise self.malformed(f"{path}.{k}", "the key only once", raw)
            out[k] = value
        return out

    def iri(self, value: Any, path: str) -> str:
        """An identifier: a string, ``{"@id": …}`` or ``{"uid": …, "@type": …}`` (Asset/Party)."""
        if isinstance(value, Mapping):
            if "@id" in value and set(value) == {"@id"}:
                value = value["@id"]
            else:
                obj = self.keys(value, path, frozenset({"uid", "@id", "@type"}))
                kind = obj.get("@type")
                kinds = {"Asset", "AssetCollection", "Party", "PartyCollection"}
                if kind is not None and (
                    not isinstance(kind, str) or self.term(kind, path) not in kinds
                ):
                    raise self.unknown("type", kind, f"{path}.@type", kinds)
                value = obj.get("uid", obj.get("@id"))
        if not isinstance(value, str) or not value.strip():
            raise self.malformed(path, "an identifier (IRI text)", value)
        return value.strip()

    def many(self, value: Any) -> list[Any]:
        if isinstance(value, Mapping) and set(value) == {"@list"}:
            value = value["@list"]
        return list(value) if isinstance(value, list) else [value]

    # context
    def context(self, value: Any) -> None:
        allowed = {
            "odrl": ODRL_NS,
            "df": DF_NS,
            "dct": DCT_NS,
            "dc": DCT_NS,
            "xsd": XSD_NS,
            "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        }
        seen_odrl = False
        for i, entry in enumerate(self.many(value)):
            where = f"@context[{i}]"
            if isinstance(entry, str):
                if entry.rstrip("/") != ODRL_CONTEXT:
                    raise self.unknown("context", entry, where, [ODRL_CONTEXT])
                seen_odrl = True
                continue
            if not isinstance(entry, Mapping):
                raise self.malformed(where, "the ODRL context or prefix definitions", entry)
            for prefix, iri in entry.items():
                if prefix not in allowed or iri != allowed[prefix]:
                    raise self.unknown(
                        "context entry",
                        f"{prefix}: {iri}",
                        where,
                        [f"{k}: {v}" for k, v in allowed.items()],
                    )
        if not seen_odrl:
            raise self.malformed("@context", f"the ODRL context {ODRL_CONTEXT}")

    # actions
    def action(self, value: Any, path: str, *, duty: bool, allow_limits: bool) -> list[Action]:
        out = []
        for i, item in enumerate(self.many(value)):
            where = f"{path}[{i}]" if isinstance(value, list) else path
            refinements: tuple[AnyConstraint, ...] = ()
            if isinstance(item, Mapping) and "@id" not in item:
                obj = self.keys(item, where, frozenset({"rdf:value", "refinement"}))
                if "rdf:value" not in obj:
                    raise self.malformed(where, "rdf:value naming the action")
                name = self.term(obj["rdf:value"], f"{where}.rdf:value")
                refinements = self.constraints(
                    obj.get("refinement", []),
                    f"{where}.refinement",
                    evaluated=not duty,
                    allow_limits=allow_limits,
                )
            else:
                name = self.term(item, where)
            known = DUTY_ACTIONS if duty else frozenset(ACTION_PARENTS)
            if name not in known:
                raise self.unknown("duty action" if duty else "action", name, where, known)
            out.append(Action(name, refinements))
        if not out:
            raise self.malformed(path, "an action")
        return out

    # constraints
    def constraints(
        self, value: Any, path: str, *, evaluated: bool, allow_limits: bool
    ) -> tuple[AnyConstraint, ...]:
        items = self.many(value)
        found: list[AnyConstraint] = []
        for i, item in enumerate(items):
            where = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                raise self.malformed(where, "a constraint object", item)
            logical = [k for k in item if self.key(str(k)) in {"and", "or", "xone", "andSequence"}]
            if logical:
                found.append(self.logical(item, where, evaluated=evaluated))
            else:
                found.append(
                    self.constraint(item, where, evaluated=evaluated, allow_limits=allow_limits)
                )
        if evaluated:
            self.satisfiable(found, path)
        return tuple(found)

    def logical(self, item: Mapping[str, Any], path: str, *, evaluated: bool) -> LogicalConstraint:
        obj = self.keys(item, path, frozenset({"and", "or", "xone", "andSequence", "uid", "@type"}))
        ops = [k for k in obj if k in {"and", "or", "xone", "andSequence"}]
        if len(ops) != 1:
            raise self.malformed(path, "exactly one of and, or, xone")
        op = ops[0]
        if op == "andSequence":
            raise self.unsupported(op, path, "use and (the engine checks one request at a time)")
        members: list[Constraint] = []
        for i, raw in enumerate(self.many(obj[op])):
            where = f"{path}.{op}[{i}]"
            if isinstance(raw, Mapping) and set(raw) == {"@id"}:
                raise self.unsupported(
                    str(raw["@id"]), where, "write the constraint inline instead of referring to it"
                )
            if isinstance(raw, Mapping) and any(
                self.key(str(k)) in {"and", "or", "xone", "andSequence"} for k in raw
            ):
                raise self.unsupported(op, where, "logical constraints take plain constraints")
            members.append(self.constraint(raw, where, evaluated=evaluated, allow_limits=False))
        if not members:
            raise self.malformed(f"{path}.{op}", "at least one constraint")
        uid = self.iri(obj["uid"], f"{path}.uid") if "uid" in obj else None
        return LogicalConstraint(Logical(op), tuple(members), uid)

    def constraint(
        self, item: Any, path: str, *, evaluated: bool, allow_limits: bool
    ) -> Constraint:
        obj = self.keys(
            item,
            path,
            frozenset(
                {
                    "leftOperand",
                    "operator",
                    "rightOperand",
                    "rightOperandReference",
                    "unit",
                    "dataType",
                    "uid",
                    "@type",
                    "status",
                }
            ),
        )
        if "@type" in obj and self.term(obj["@type"], f"{path}.@type") != "Constraint":
            raise self.unknown("type", obj["@type"], f"{path}.@type", ["Constraint"])
        for key in ("rightOperandReference", "status"):
            if key in obj:
                hint = (
                    "give the value itself in rightOperand"
                    if key == "rightOperandReference"
                    else "the request's count_so_far carries the uses already made"
                )
                raise self.unsupported(key, f"{path}.{key}", hint)
        for key in ("leftOperand", "operator", "rightOperand"):
            if key not in obj:
                raise self.malformed(f"{path}.{key}", f"a {key}")
        left = self.term(obj["leftOperand"], f"{path}.leftOperand")
        operand = OPERANDS.get(left)
        if operand is None:
            raise self.unknown("left operand", left, f"{path}.leftOperand", OPERANDS)
        if operand.kind is Kind.LIMIT and not allow_limits:
            raise self.unsupported(
                left,
                f"{path}.leftOperand",
                "output limits belong on a permission (its constraint or its action's refinement),"
                " not in a prohibition or a logical constraint",
            )
        op_text = self.term(obj["operator"], f"{path}.operator")
        try:
            operator = Operator(op_text)
        except ValueError:
            raise self.unknown(
                "operator", op_text, f"{path}.operator", [o.value for o in Operator]
            ) from None
        if operator not in operand.operators:
            raise UnknownTerm(
                M_OPERATOR,
                rule=self.r_unknown,
                term=op_text,
                path=f"{path}.operator",
                operand=left,
                known=", ".join(sorted(o.value for o in operand.operators)),
            )
        unit = None
        if "unit" in obj:
            unit = self.iri(obj["unit"], f"{path}.unit")
            if operand.kind is not Kind.MONEY:
                raise self.unsupported("unit", f"{path}.unit", f"{left} takes no unit")
            if evaluated and unit not in CNY_UNITS:
                raise self.unknown("currency", unit, f"{path}.unit", CNY_UNITS)
        if "dataType" in obj:
            self.term(obj["dataType"], f"{path}.dataType")  # the value's own type decides
        right = self.right(operand, operator, obj["rightOperand"], f"{path}.rightOperand")
        if operand.term == "elapsedTime" and evaluated and self.elapsed_at is None:
            self.elapsed_at = path
        uid = self.iri(obj["uid"], f"{path}.uid") if "uid" in obj else None
        return Constraint(left, operator, right, unit, uid)

    def literal(self, value: Any, path: str) -> tuple[Any, str | None]:
        """A right operand atom: (value, xsd type or None)."""
        if isinstance(value, Mapping):
            if set(value) == {"@id"}:
                return self.term(value, path), None
            obj = self.keys(value, path, frozenset({"@value", "@type"}))
            if "@value" not in obj:
                raise self.malformed(path, "@value")
            kind = obj.get("@type")
            if kind is not None:
                kind = self.term(kind, f"{path}.@type")
                if kind.startswith(XSD_NS):
                    kind = "xsd:" + kind[len(XSD_NS) :]
            return obj["@value"], kind
        return value, None

    def right(self, operand: Operand, operator: Operator, raw: Any, path: str) -> RightValue:
        kind = operand.kind
        listed = operator in {Operator.IS_ANY_OF, Operator.IS_ALL_OF, Operator.IS_NONE_OF} or (
            kind is Kind.FIELDS
        )
        if listed:
            atoms = self.many(raw)
            if not atoms:
                raise self.contradiction(
                    path, f"an empty list for {operator.value} permits nothing", operator.value
                )
            values: list[str] = []
            for i, atom in enumerate(atoms):
                text = self.code(operand, self.literal(atom, f"{path}[{i}]")[0], f"{path}[{i}]")
                if text not in values:
                    values.append(text)
            return tuple(values)
        if isinstance(raw, list) or (isinstance(raw, Mapping) and "@list" in raw):
            raise self.malformed(path, f"one value for {operator.value}")
        value, xsd = self.literal(raw, path)
        if kind in (Kind.CODE, Kind.TAXONOMY, Kind.PLACE):
            return self.code(operand, value, path)
        if kind is Kind.TIME:
            return self.instant(value, xsd, path)
        if kind is Kind.DURATION:
            duration = parse_duration(value) if isinstance(value, str) else None
            if duration is None:
                raise self.malformed(path, "an xsd:duration in weeks, days or hours (P30D)", value)
            return duration
        if kind is Kind.COUNT or operand.term == "df:minGroupSize":
            number = self.whole(value, path)
            smallest = number + 1 if operator is Operator.GT else number
            if operand.term == "df:minGroupSize" and smallest < 2:
                raise self.contradiction(
                    path, "a group of fewer than two people is not an aggregate", str(number)
                )
            return number
        amount = self.decimal(value, path)
        if kind is Kind.MONEY and amount != amount.quantize(Decimal("0.01")):
            raise self.malformed(path, "an amount in yuan with at most two decimals", value)
        return amount

    def code(self, operand: Operand, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.malformed(path, f"a {operand.label['en']} code (text)", value)
        text = value.strip()
        if operand.kind is Kind.PLACE:
            place = region_code(text)
            if place is None:
                raise self.unknown(
                    "place",
                    text,
                    path,
                    ["ISO 3166 codes (CN, CN-GX, VN)", "GB/T 2260 codes", "ASEAN"],
                )
            return place
        if operand.term == "deliveryChannel":
            channel = self.term(text, path)
            channel = channel[3:] if channel.startswith("df:") else channel
            if channel not in {c.value for c in Channel}:
                raise self.unknown("delivery channel", text, path, [c.value for c in Channel])
            return channel
        return text

    def instant(self, value: Any, xsd: str | None, path: str) -> datetime | date:
        if not isinstance(value, str):
            raise self.malformed(path, "an ISO 8601 date or date-time with offset", value)
        text = value.strip()
        try:
            if xsd == "xsd:date" or (xsd is None and len(text) == 10):
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.malformed(path, "an ISO 8601 date or date-time with offset", value) from None
        if moment.tzinfo is None:
            raise self.malformed(path, "a date-time with its UTC offset (+08:00)", value)
        return moment

    def whole(self, value: Any, path: str) -> int:
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.malformed(path, "a whole number", value)
        if value < 0:
            raise self.contradiction(path, "a negative number can never be reached", str(value))
        return value

    def decimal(self, value: Any, path: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.malformed(path, "a decimal number", value)
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.malformed(path, "a decimal number", value) from None
        if not amount.is_finite() or amount < 0:
            raise self.malformed(path, "a decimal number ≥ 0", value)
        return amount

    # contradictions (top-level conjunction, ``and`` members included)
    def satisfiable(self, found: Sequence[AnyConstraint], path: str) -> None:
        flat: list[Constraint] = []
        for c in found:
            if isinstance(c, Constraint):
                flat.append(c)
            elif c.operand is Logical.AND:
                flat.extend(c.constraints)
        by_left: dict[str, list[Constraint]] = {}
        for c in flat:
            by_left.setdefault(c.left, []).append(c)
        for left, group in by_left.items():
            kind = OPERANDS[left].kind
            if kind in (Kind.COUNT, Kind.MONEY, Kind.DURATION, Kind.TIME) or left == "df:epsilon":
                self.interval(left, group, path)
            elif kind in (Kind.CODE, Kind.TAXONOMY):  # places nest: no exact-set reasoning
                self.choices(left, group, path)
            elif kind is Kind.FIELDS:
                self.field_sets(group, path)

    def interval(self, left: str, group: list[Constraint], path: str) -> None:
        # Bounds as (value, inclusive). Dates become the CST day they name.
        low: tuple[Any, bool] | None = None
        high: tuple[Any, bool] | None = None
        floor: dict[str, Any] = {
            "count": 1,  # the requested use itself counts
            "payAmount": Decimal(0),
            "elapsedTime": timedelta(0),
            "df:epsilon": Decimal(0),
        }
        if left in floor:
            low = (floor[left], left != "df:epsilon")

        def tighter_low(b: tuple[Any, bool]) -> None:
            nonlocal low
            if low is None or b[0] > low[0] or (b[0] == low[0] and not b[1]):
                low = b

        def tighter_high(b: tuple[Any, bool]) -> None:
            nonlocal high
            if high is None or b[0] < high[0] or (b[0] == high[0] and not b[1]):
                high = b

        for c in group:
            start, end = _bounds(c.right)
            op = c.operator
            if op is Operator.EQ:
                tighter_low((start, True))
                tighter_high((end, True))
            elif op is Operator.LT:
                tighter_high((start, False))
            elif op is Operator.LTEQ:
                tighter_high((end, True))
            elif op is Operator.GT:
                tighter_low((end, False))
            elif op is Operator.GTEQ:
                tighter_low((start, True))
        if low is not None and high is not None:
            (lv, li), (hv, hi) = low, high
            if lv > hv or (lv == hv and not (li and hi)):
                raise self.contradiction(
                    path, f"no value of {left} meets all of its constraints together", left
                )

    def choices(self, left: str, group: list[Constraint], path: str) -> None:
        allowed: set[str] | None = None
        excluded: set[str] = set()
        for c in group:
            values = set(c.right) if isinstance(c.right, tuple) else {str(c.right)}
            if c.operator in (Operator.EQ, Operator.IS_ANY_OF):
                allowed = values if allowed is None else allowed & values
            elif c.operator in (Operator.NEQ, Operator.IS_NONE_OF):
                excluded |= values
        if allowed is not None and not (allowed - excluded):
            raise self.contradiction(path, f"no {left} is both allowed and not excluded", left)

    def field_sets(self, group: list[Constraint], path: str) -> None:
        within: set[str] | None = None
        required: set[str] = set()
        excluded: set[str] = set()
        for c in group:
            values = set(c.right) if isinstance(c.right, tuple) else {str(c.right)}
            if c.operator in (Operator.IS_PART_OF, Operator.IS_ANY_OF, Operator.EQ):
                within = values if within is None else within & values
            if c.operator in (Operator.IS_ALL_OF, Operator.EQ):
                required |= values
            if c.operator is Operator.IS_NONE_OF:
                excluded |= values
        if (within is not None and not required <= within) or required & excluded:
            raise self.contradiction(
                path, "the fields required are not all among the fields allowed", "df:fields"
            )

    # rules
    def parties(self, obj: Mapping[str, Any], path: str) -> tuple[tuple[str, str], ...]:
        found = []
        for function in sorted(FUNCTIONS):
            if function in obj:
                found.append((function, self.iri(obj[function], f"{path}.{function}")))
        return tuple(found)

    def duty(self, item: Any, path: str, *, consequences: bool) -> Duty:
        allowed = {"uid", "action", "target", "constraint", "@type"} | FUNCTIONS
        if consequences:
            allowed.add("consequence")
        obj = self.keys(item, path, frozenset(allowed))
        if "action" not in obj:
            raise self.malformed(f"{path}.action", "an action")
        actions = self.action(obj["action"], f"{path}.action", duty=True, allow_limits=True)
        if len(actions) != 1:
            raise self.malformed(f"{path}.action", "one action per duty")
        return Duty(
            action=actions[0],
            target=self.iri(obj["target"], f"{path}.target") if "target" in obj else None,
            parties=self.parties(obj, path),
            constraints=self.constraints(
                obj.get("constraint", []), f"{path}.constraint", evaluated=False, allow_limits=True
            ),
            consequences=tuple(
                self.duty(c, f"{path}.consequence[{i}]", consequences=False)
                for i, c in enumerate(self.many(obj.get("consequence", [])))
            ),
            uid=self.iri(obj["uid"], f"{path}.uid") if "uid" in obj else None,
        )

    def rules(
        self, items: Any, path: str, kind: str, shared: Mapping[str, Any]
    ) -> list[Permission] | list[Prohibition] | list[Duty]:
        out: list[Any] = []
        extra = {"permission": "duty", "prohibition": "remedy", "obligation": "consequence"}[kind]
        allowed = frozenset(
            {"uid", "action", "target", "assigner", "assignee", "constraint", "@type", extra}
            | (FUNCTIONS if kind == "obligation" else frozenset())
        )
        for i, item in enumerate(self.many(items)):
            where = f"{path}[{i}]"
            obj = dict(shared)
            obj.update(self.keys(item, where, allowed))
            if "@type" in obj:
                expected = {
                    "permission": "Permission",
                    "prohibition": "Prohibition",
                    "obligation": "Duty",
                }[kind]
                if self.term(obj.pop("@type"), f"{where}.@type") != expected:
                    raise self.unknown("type", item.get("@type"), f"{where}.@type", [expected])
            if "action" not in obj:
                raise self.malformed(f"{where}.action", "an action")
            if kind == "obligation":
                # Expand multiple targets/assignees (§2.7) into one obligation each.
                for combo in self.combinations(obj, where, ("target", "assigner", "assignee")):
                    out.append(self.duty(combo, where, consequences=True))
                if len(out) > MAX_RULES:
                    raise self.malformed(where, TOO_MANY_RULES)
                continue
            actions = self.action(
                obj["action"], f"{where}.action", duty=False, allow_limits=kind == "permission"
            )
            constraints = self.constraints(
                obj.get("constraint", []),
                f"{where}.constraint",
                evaluated=True,
                allow_limits=kind == "permission",
            )
            duties = tuple(
                self.duty(d, f"{where}.{extra}[{j}]", consequences=kind == "permission")
                for j, d in enumerate(self.many(obj.get(extra, [])))
            )
            uid = self.iri(obj["uid"], f"{where}.uid") if "uid" in obj else None
            for combo in self.combinations(obj, where, ("target", "assigner", "assignee")):
                if len(out) + len(actions) > MAX_RULES:
                    raise self.malformed(where, TOO_MANY_RULES)
                for act in actions:
                    target = combo.get("target")
                    assigner = combo.get("assigner")
                    assignee = combo.get("assignee")
                    if kind == "permission":
                        out.append(
                            Permission(act, target, assigner, assignee, constraints, duties, uid)
                        )
                    else:
                        out.append(
                            Prohibition(act, target, assigner, assignee, constraints, duties, uid)
                        )
        return out

    def combinations(
        self, obj: Mapping[str, Any], path: str, keys: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        options: list[list[Any]] = []
        for key in keys:
            if key in obj:
                values = self.many(obj[key])
                if not values:
                    raise self.malformed(f"{path}.{key}", f"a {key}")
                options.append([self.iri(v, f"{path}.{key}") for v in values])
            else:
                options.append([None])
        size = 1
        for values in options:
            size *= len(values)
        if size > MAX_RULES:
            raise self.malformed(path, TOO_MANY_RULES)
        found = []
        for combo in product(*options):
            base = dict(obj)
            for key, value in zip(keys, combo, strict=True):
                if value is None:
                    base.pop(key, None)
                else:
                    base[key] = value
            found.append(base)
        return found


def _bounds(value: RightValue) -> tuple[Any, Any]:
    """The smallest and largest instant/number a right operand names (a date is a CST day)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        start = datetime.combine(value, time(0), CST)
        return start, start + timedelta(days=1) - timedelta(microseconds=1)
    return value, value


_POLICY_KEYS: Final = frozenset(
    {
        "@context",
        "@type",
        "uid",
        "@id",
        "profile",
        "conflict",
        "inheritFrom",
        "permission",
        "prohibition",
        "obligation",
        "target",
        "assigner",
        "assignee",
        "action",
        "dct:title",
        "dct:description",
        "dct:creator",
        "dct:issued",
    }
)


def parse_policy(data: Mapping[str, Any]) -> Policy:
    """Read an ODRL 2.2 JSON-LD policy; refuse anything unknown, malformed or contradictory."""
    p = _Parser()
    obj = p.keys(data, "policy", _POLICY_KEYS)
    if "@context" in obj:
        p.context(obj["@context"])
    type_text = p.term(obj.get("@type", "Set"), "@type")
    if type_text == "Policy":
        type_text = "Set"
    try:
        policy_type = PolicyType(type_text)
    except ValueError:
        raise p.unknown(
            "policy type", type_text, "@type", [t.value for t in PolicyType] + ["Policy"]
        ) from None
    if "uid" in obj and "@id" in obj:
        raise p.malformed("uid", "one uid (not both uid and @id)")
    if "uid" not in obj and "@id" not in obj:
        raise p.malformed("uid", "a uid (an IRI naming the policy)")
    uid = p.iri(obj.get("uid", obj.get("@id")), "uid")
    if "inheritFrom" in obj:
        raise p.unsupported("inheritFrom", "inheritFrom", "write the inherited rules out in full")
    conflict = None
    if "conflict" in obj:
        conflict = p.term(obj["conflict"], "conflict")
        if conflict not in ("prohibit", "invalid"):
            raise UnknownTerm(
                M_UNKNOWN,
                rule=p.r_conflict,
                term=conflict,
                path="conflict",
                kind="conflict strategy",
                known="prohibit, invalid",
            )
    profiles = [p.iri(v, f"profile[{i}]") for i, v in enumerate(p.many(obj.get("profile", [])))]
    shared: dict[str, Any] = {
        k: obj[k] for k in ("target", "assigner", "assignee", "action") if k in obj
    }
    permissions = p.rules(obj.get("permission", []), "permission", "permission", shared)
    prohibitions = p.rules(obj.get("prohibition", []), "prohibition", "prohibition", shared)
    obligations = p.rules(obj.get("obligation", []), "obligation", "obligation", shared)
    issued = None
    if "dct:issued" in obj:
        value, _ = p.literal(obj["dct:issued"], "dct:issued")
        moment = p.instant(value, "xsd:dateTime", "dct:issued")
        assert isinstance(moment, datetime)
        issued = moment
    if p.elapsed_at is not None and issued is None:
        raise p.malformed(
            "dct:issued", "its issue date (dct:issued): elapsedTime counts from it", "elapsedTime"
        )
    texts: dict[str, str | None] = {}
    for key in ("dct:title", "dct:description", "dct:creator"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise p.malformed(key, "text", value)
        texts[key] = value
    if p.uses_df and DF_PROFILE not in profiles:
        profiles.append(DF_PROFILE)  # ODRL §2.1: a policy using a profile's terms names it
    policy = Policy(
        uid=uid,
        type=policy_type,
        permissions=tuple(x for x in permissions if isinstance(x, Permission)),
        prohibitions=tuple(x for x in prohibitions if isinstance(x, Prohibition)),
        obligations=tuple(x for x in obligations if isinstance(x, Duty)),
        profiles=tuple(profiles),
        conflict=conflict,
        issued=issued,
        title=texts["dct:title"],
        description=texts["dct:description"],
        creator=texts["dct:creator"],
    )
    _check_parties(p, policy)
    return policy


def _check_parties(p: _Parser, policy: Policy) -> None:
    """ODRL §2.1.2/2.1.3: an Offer names its assigner; an Agreement its assigner and assignee."""
    needed = {
        PolicyType.SET: (),
        PolicyType.OFFER: ("assigner",),
        PolicyType.AGREEMENT: ("assigner", "assignee"),
    }[policy.type]
    for kind, rules in (("permission", policy.permissions), ("prohibition", policy.prohibitions)):
        for i, rule in enumerate(rules):
            for role in needed:
                if getattr(rule, role) is None:
                    raise p.malformed(
                        f"{kind}[{i}].{role}", f"an {role} (every rule of an {policy.type} has one)"
                    )


__all__ = [
    "CST",
    "Action",
    "AnyConstraint",
    "Constraint",
    "Duty",
    "LogicalConstraint",
    "Permission",
    "Policy",
    "Prohibition",
    "RightValue",
    "Rule",
    "format_duration",
    "parse_duration",
    "parse_policy",
]
