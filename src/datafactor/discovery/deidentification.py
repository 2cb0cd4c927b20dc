"""De-identification (去标识化) of a table by a policy, streamed batch by batch into a new file.

A ``DeidentificationPolicy`` gives each column one technique — ``keep``, ``drop``, ``mask``,
``hash``, ``generalise`` or ``tokenise`` — by column name, or by the entity type a scan found in
it (``entity_types``), and says what happens to the columns it does not name (``unlisted``:
``drop`` unless the policy says ``keep``, so a column nobody looked at is never published by
default). Policies are plain JSON or YAML documents (``from_dict`` / ``as_dict``), checked when
read and again against the table's columns, so a wrong technique, parameter or column name is
refused with the column named before any row is read. ``policy_from_profile`` builds a policy
for every column of a scan from a named starter profile in ``rules/deidentify_profiles.yaml``,
which also holds the sources (GB/T 37964-2019, GB/T 35273-2020) and the masking presets.

``deidentify(table, policy, out=...)`` reads the table's Arrow record batches once and writes
Parquet or CSV as it goes (Parquet row groups of at most ``ROW_GROUP_ROWS`` rows), so memory
holds a few batches whatever the table's size. Masking and generalising are Arrow compute
kernels over whole batches (slicing, regular-expression extraction and replacement, arithmetic);
hashing and tokenising run once per distinct value of a batch in Python, because HMAC and AES-SIV
have no Arrow kernel. ``deidentify_to_store`` writes into the ``BlobStore`` and returns what a new
data-set version needs: the blob (digest, size), a file name with the format's suffix, the row
count and the report.

Techniques, and why they are built as they are:

- ``mask`` keeps ``keep_first`` and ``keep_last`` characters and replaces the others by ``char``,
  leaving separators (spaces, ``-``, ``+``, brackets, dots…) where they were, so a masked value
  has the original's length and shape (``138****5678``, ``张*``). A value too short for both ends
  shows at most its first character (none if it is a single character). Presets per entity type
  come from the rule file.
- ``hash`` is HMAC-SHA-256 keyed with a salt drawn afresh for every run and never written
  anywhere: equal values hash equally within one run (joins inside one output still work), and
  nobody — the platform included — can recompute or test a guess afterwards. Output is hex or
  base32 truncated to ``length`` characters, i.e. ``b`` = 4 or 5 bits a character. For ``n``
  distinct values the chance that any two share a hash is at most ``n² / 2^(b+1)``: with the
  default 16 hex characters (64 bits), about 3·10⁻⁸ for a million values and 3·10⁻⁴ for a
  hundred million. The report warns when the bound for the values processed exceeds 10⁻⁶.
- ``generalise`` makes values coarser: dates to the year or year-month; numbers (ages, amounts)
  to ranges ``lo-hi`` of a whole-number ``width`` with optional ``bottom``/``top`` coding; resident
  IDs to their region prefix and birth year (``45****1990``); addresses to the province or city
  named at their start, from the GB/T 2260 division data in ``rules/gbt2260.yaml``; coordinates to
  ``decimals`` decimal places. A value that cannot be generalised is left empty and counted.
- ``tokenise`` is reversible for the trustee alone; see ``tokens``.

Empty and blank cells stay empty under every technique but ``keep``; they are not counted as
values.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import IO, Any, Final, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import yaml  # type: ignore[import-untyped]

from datafactor.dataplane import Blob, BlobStore, ReadWarning, Table
from datafactor.discovery.grading import render_message
from datafactor.discovery.recognizers import ENTITY_TYPES, division_names, load_pii_rules
from datafactor.discovery.scan import as_text
from datafactor.discovery.tokens import MSG_BAD_PARTY, Tokeniser, TrusteeKeys, valid_party_id
from datafactor.errors import N_, DomainError, InvalidInput, NotFound

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "FORMATS",
    "ROW_GROUP_ROWS",
    "ColumnOutcome",
    "ColumnRule",
    "DeidentificationCancelled",
    "DeidentificationPolicy",
    "DeidentificationProfile",
    "DeidentificationReport",
    "DeidentifiedOutput",
    "GeneraliseKind",
    "PlannedColumn",
    "Technique",
    "deidentify",
    "deidentify_to_store",
    "load_deidentification_profiles",
    "policy_from_profile",
]

DEFAULT_BATCH_ROWS: Final = 65_536
ROW_GROUP_ROWS: Final = 65_536
FORMATS: Final = ("parquet", "csv")
_RULES = Path(__file__).resolve().parent / "rules" / "deidentify_profiles.yaml"
_TOKEN_CACHE: Final = 65_536  # distinct values remembered per tokenised column across batches
_COLLISION_WARN: Final = 1e-6
_MAX_NUMBER: Final = 1e15  # beyond this a float no longer holds every whole number exactly

MSG_BAD_POLICY: Final = N_("The policy is not valid {format}: {reason}")
MSG_POLICY_SHAPE: Final = N_(
    "A policy is an object with the keys {allowed}; {key} is not one of them."
)
MSG_POLICY_NOT_OBJECT: Final = N_("A policy is an object (a mapping of keys to values).")
MSG_POLICY_NAME: Final = N_("The policy name must be text of 1 to 100 characters.")
MSG_COLUMNS_NOT_OBJECT: Final = N_(
    '{key} must map names to rules, e.g. {{"手机号": {{"technique": "mask"}}}}.'
)
MSG_UNKNOWN_TECHNIQUE: Final = N_(
    "Column {column}: {technique} is not a de-identification technique. Use one of: {allowed}."
)
MSG_RULE_SHAPE: Final = N_(
    "Column {column}: a rule is a technique name or an object with a technique, e.g. "
    '{{"technique": "mask", "keep_last": 4}}.'
)
MSG_UNKNOWN_PARAM: Final = N_(
    "Column {column}: {technique} takes no parameter {param}. It takes: {allowed}."
)
MSG_PARAM_INT: Final = N_(
    "Column {column}: {param} must be a whole number from {low} to {high}, not {value}."
)
MSG_PARAM_NUMBER: Final = N_("Column {column}: {param} must be a number, not {value}.")
MSG_PARAM_CHOICE: Final = N_("Column {column}: {param} must be one of {choices}, not {value}.")
MSG_PARAM_CHAR: Final = N_(
    "Column {column}: {param} must be one character that is not a letter, digit or backslash, "
    "not {value}."
)
MSG_PARAM_TEXT: Final = N_("Column {column}: {param} must be text of at most {high} characters.")
MSG_PARAM_TRUSTEE: Final = N_("Column {column}: {value} is not a valid party id for a trustee.")
MSG_BOTTOM_TOP: Final = N_("Column {column}: bottom ({bottom}) must be less than top ({top}).")
MSG_UNKNOWN_TYPE: Final = N_(
    "Column {column}: {entity_type} is not an entity type the recognisers know. Use one of: "
    "{types}."
)
MSG_UNLISTED: Final = N_("unlisted must be keep or drop, not {value}.")
MSG_UNKNOWN_COLUMN: Final = N_(
    "The policy names the column {column}, which the data set does not have. Its columns are: "
    "{columns}. Correct the name or remove the rule."
)
MSG_NEEDS_FINDINGS: Final = N_(
    "The policy chooses columns by entity type ({types}); scan the data set first and "
    "de-identify with the scan's findings."
)
MSG_NO_KIND: Final = N_(
    "Column {column}: say what to generalise with kind (date, number, resident_id, address or "
    "geo); it cannot be told from the column."
)
MSG_KIND_PARAM: Final = N_(
    "Column {column}: {param} does not apply when generalising {kind}; it takes: {allowed}."
)
MSG_NO_TRUSTEE: Final = N_(
    "Column {column} is tokenised but no trustee is named: set trustee to the party that will "
    "hold the key."
)
MSG_NO_KEYS: Final = N_(
    "Column {column} is tokenised for trustee {trustee}, but no trustee key store was given."
)
MSG_NOTHING_LEFT: Final = N_("The policy drops every column; there would be nothing to write.")
MSG_BAD_FORMAT: Final = N_("The output format {format} is not supported. Use parquet or csv.")
MSG_BAD_SALT: Final = N_("A hashing salt must be at least 16 bytes long.")
MSG_UNKNOWN_PROFILE: Final = N_(
    "There is no de-identification profile {profile}. Use one of: {profiles}."
)
MSG_PROFILE_TRUSTEE: Final = N_(
    "The profile {profile} tokenises column {column}: name the trustee party that will hold the "
    "key."
)
MSG_CANCELLED: Final = N_("The de-identification of {table} was cancelled after {rows:,} rows.")
MSG_NOT_GENERALISED: Final = N_(
    "{count:,} values in column {column} could not be generalised as {kind} and were left empty."
)
MSG_HASH_COLLISIONS: Final = N_(
    "Column {column}: {count:,} values hashed to {bits} bits may collide (probability up to "
    "{probability}); choose a longer length."
)
MSG_MORE_WARNINGS: Final = N_("{count:,} more warnings were not kept.")


class DeidentificationCancelled(DomainError):
    """The run was stopped on request (``should_cancel``); what was written is incomplete."""

    status = 409
    code = "deidentification-cancelled"
    title = N_("The de-identification was cancelled")


class Technique(StrEnum):
    """What happens to one column's values."""

    KEEP = "keep"
    DROP = "drop"
    MASK = "mask"
    HASH = "hash"
    GENERALISE = "generalise"
    TOKENISE = "tokenise"


class GeneraliseKind(StrEnum):
    """What ``generalise`` takes a column's values to be."""

    DATE = "date"
    NUMBER = "number"
    RESIDENT_ID = "resident_id"
    ADDRESS = "address"
    GEO = "geo"


# --- parameters ----------------------------------------------------------------------------------


def _fail(message: str, column: str, at: str | None = None, **params: Any) -> InvalidInput:
    where = f"columns.{column}" + (f".{at}" if at else "")
    return InvalidInput(message, field=where, code="bad-policy", column=column, **params)


def _int(low: int, high: int) -> Callable[[str, str, Any], int]:
    def check(column: str, param: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(MSG_PARAM_INT, column, param, param=param, low=low, high=high, value=value)
        return value

    return check


def _choice(*choices: Any) -> Callable[[str, str, Any], Any]:
    def check(column: str, param: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in choices:
            shown = ", ".join(str(c) for c in choices)
            raise _fail(MSG_PARAM_CHOICE, column, param, param=param, choices=shown, value=value)
        return value

    return check


def _number(column: str, param: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(MSG_PARAM_NUMBER, column, param, param=param, value=value)
    if abs(value) > _MAX_NUMBER:
        raise _fail(MSG_PARAM_NUMBER, column, param, param=param, value=value)
    return value


def _char(column: str, param: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1 or value.isalnum() or value == "\\":
        raise _fail(MSG_PARAM_CHAR, column, param, param=param, value=value)
    return value


def _optional_char(column: str, param: str, value: Any) -> str | None:
    return None if value is None else _char(column, param, value)


def _context(column: str, param: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise _fail(MSG_PARAM_TEXT, column, param, param=param, high=64)
    return value


def _trustee(column: str, param: str, value: Any) -> str:
    if not isinstance(value, str) or not valid_party_id(value):
        raise _fail(MSG_PARAM_TRUSTEE, column, param, value=value)
    return value


def _check_trustee(value: Any) -> str:
    if not valid_party_id(value):
        raise InvalidInput(MSG_BAD_PARTY, field="trustee", code="bad-trustee", party=value)
    return str(value)


_KIND_PARAMS: Final[Mapping[GeneraliseKind, Mapping[str, Callable[[str, str, Any], Any]]]] = {
    GeneraliseKind.DATE: {"to": _choice("year", "year_month")},
    GeneraliseKind.NUMBER: {"width": _int(1, 10**12), "bottom": _number, "top": _number},
    GeneraliseKind.RESIDENT_ID: {"region_digits": _choice(0, 2, 4, 6)},
    GeneraliseKind.ADDRESS: {"level": _choice("province", "city")},
    GeneraliseKind.GEO: {"decimals": _int(0, 6)},
}
_KIND_DEFAULTS: Final[Mapping[GeneraliseKind, Mapping[str, Any]]] = {
    GeneraliseKind.DATE: {"to": "year"},
    GeneraliseKind.NUMBER: {"width": 10},
    GeneraliseKind.RESIDENT_ID: {"region_digits": 2},
    GeneraliseKind.ADDRESS: {"level": "city"},
    GeneraliseKind.GEO: {"decimals": 2},
}
_KIND_OF_TYPE: Final[Mapping[str, GeneraliseKind]] = {
    "date_of_birth": GeneraliseKind.DATE,
    "cn_resident_id": GeneraliseKind.RESIDENT_ID,
    "address": GeneraliseKind.ADDRESS,
    "geo_coordinate": GeneraliseKind.GEO,
}
_HASH_LENGTH: Final = {"hex": (8, 64, 16), "base32": (7, 52, 13)}  # low, high, default

_PARAMS: Final[Mapping[Technique, Mapping[str, Callable[[str, str, Any], Any]]]] = {
    Technique.KEEP: {},
    Technique.DROP: {},
    Technique.MASK: {
        "keep_first": _int(0, 64),
        "keep_last": _int(0, 64),
        "char": _char,
        "keep_from": _optional_char,
    },
    Technique.HASH: {"encoding": _choice("hex", "base32"), "length": _int(7, 64)},
    Technique.GENERALISE: {
        "kind": _choice(*GeneraliseKind),
        **{name: check for params in _KIND_PARAMS.values() for name, check in params.items()},
    },
    Technique.TOKENISE: {"trustee": _trustee, "context": _context},
}


# --- rules and policies --------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRule:
    """One column's technique, its parameters as written, and optionally the entity type the
    column holds (which chooses masking presets and what ``generalise`` reads)."""

    technique: Technique
    params: Mapping[str, Any] = field(default_factory=dict)
    entity_type: str | None = None

    @classmethod
    def parse(cls, data: Any, column: str) -> ColumnRule:
        """A rule from its document form: ``"drop"`` or ``{"technique": "mask", ...}``."""
        if isinstance(data, str):
            data = {"technique": data}
        if not isinstance(data, Mapping) or "technique" not in data:
            raise _fail(MSG_RULE_SHAPE, column)
        raw = dict(data)
        name = raw.pop("technique")
        try:
            technique = Technique(name)
        except ValueError:
            allowed = ", ".join(Technique)
            raise _fail(
                MSG_UNKNOWN_TECHNIQUE, column, "technique", technique=name, allowed=allowed
            ) from None
        entity_type = raw.pop("entity_type", None)
        if entity_type is not None and entity_type not in ENTITY_TYPES:
            raise _fail(
                MSG_UNKNOWN_TYPE,
                column,
                "entity_type",
                entity_type=entity_type,
                types=", ".join(ENTITY_TYPES),
            )
        checks = _PARAMS[technique]
        params: dict[str, Any] = {}
        for param, value in raw.items():
            if param not in checks:
                allowed = ", ".join(["entity_type", *checks]) if checks else "entity_type"
                raise _fail(
                    MSG_UNKNOWN_PARAM,
                    column,
                    str(param),
                    technique=technique.value,
                    param=param,
                    allowed=allowed,
                )
            params[param] = checks[param](column, param, value)
        _check_combination(technique, params, column)
        return cls(technique, MappingProxyType(params), entity_type)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"technique": self.technique.value}
        if self.entity_type is not None:
            data["entity_type"] = self.entity_type
        data.update(self.params)
        return data


def _check_combination(technique: Technique, params: Mapping[str, Any], column: str) -> None:
    if technique is Technique.HASH and "length" in params:
        low, high, _ = _HASH_LENGTH[params.get("encoding", "hex")]
        _int(low, high)(column, "length", params["length"])
    if technique is Technique.GENERALISE:
        kind = params.get("kind")
        if kind is not None:
            _check_kind_params(GeneraliseKind(kind), params, column)
        bottom, top = params.get("bottom"), params.get("top")
        if bottom is not None and top is not None and bottom >= top:
            raise _fail(MSG_BOTTOM_TOP, column, "bottom", bottom=bottom, top=top)


def _check_kind_params(kind: GeneraliseKind, params: Mapping[str, Any], column: str) -> None:
    allowed = _KIND_PARAMS[kind]
    for param in params:
        if param != "kind" and param not in allowed:
            raise _fail(
                MSG_KIND_PARAM,
                column,
                param,
                param=param,
                kind=kind.value,
                allowed=", ".join(allowed) or "-",
            )


@dataclass(frozen=True)
class PlannedColumn:
    """What will happen to one column of a given table: the rule that applies, where it came
    from (``column``, ``entity_type`` or ``unlisted``) and its parameters with defaults filled."""

    name: str
    technique: Technique
    params: Mapping[str, Any]
    entity_type: str | None
    origin: str


class FindingLike(Protocol):
    """A column of a scan: ``ColumnFinding``, ``ScannedColumn`` or a reviewed column."""

    @property
    def name(self) -> str: ...

    @property
    def types(self) -> Sequence[str]: ...


Findings = Iterable[FindingLike] | Mapping[str, Sequence[str]]
"""A scan's findings: column objects with ``name`` and ``types``, or a name -> types mapping."""


def _types_by_column(findings: Findings) -> dict[str, tuple[str, ...]]:
    if isinstance(findings, Mapping):
        pairs: Iterable[tuple[str, Sequence[str]]] = findings.items()
    else:
        pairs = ((f.name, f.types) for f in findings)
    return {str(name): tuple(t for t in types if t in ENTITY_TYPES) for name, types in pairs}


_POLICY_KEYS: Final = ("name", "description", "unlisted", "trustee", "columns", "entity_types")


@dataclass(frozen=True)
class DeidentificationPolicy:
    """Which technique each column gets; see the module docstring. Build with ``from_dict``."""

    name: str
    columns: Mapping[str, ColumnRule] = field(default_factory=dict)
    entity_types: Mapping[str, ColumnRule] = field(default_factory=dict)
    unlisted: Technique = Technique.DROP
    trustee: str | None = None
    description: str = ""

    # ---------------------------------------------------------------------------- documents

    @classmethod
    def from_dict(cls, data: Any) -> DeidentificationPolicy:
        """A policy from its document form (see ``as_dict``); ``InvalidInput`` names the fault."""
        if not isinstance(data, Mapping):
            raise InvalidInput(MSG_POLICY_NOT_OBJECT, code="bad-policy")
        for key in data:
            if key not in _POLICY_KEYS:
                raise InvalidInput(
                    MSG_POLICY_SHAPE,
                    field=str(key),
                    code="bad-policy",
                    allowed=", ".join(_POLICY_KEYS),
                    key=key,
                )
        name = data.get("name", "policy")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
            raise InvalidInput(MSG_POLICY_NAME, field="name", code="bad-policy")
        unlisted = data.get("unlisted", Technique.DROP.value)
        if unlisted not in (Technique.KEEP.value, Technique.DROP.value):
            raise InvalidInput(MSG_UNLISTED, field="unlisted", code="bad-policy", value=unlisted)
        trustee = data.get("trustee")
        if trustee is not None:
            _check_trustee(trustee)
        columns = _rules(data.get("columns") or {}, "columns", lambda n: n)
        entity_types = _rules(data.get("entity_types") or {}, "entity_types", lambda n: f"<{n}>")
        for entity_type in entity_types:
            if entity_type not in ENTITY_TYPES:
                raise _fail(
                    MSG_UNKNOWN_TYPE,
                    f"<{entity_type}>",
                    entity_type=entity_type,
                    types=", ".join(ENTITY_TYPES),
                )
        return cls(
            name=name.strip(),
            columns=MappingProxyType(columns),
            entity_types=MappingProxyType(entity_types),
            unlisted=Technique(unlisted),
            trustee=trustee,
            description=str(data.get("description") or ""),
        )

    def as_dict(self) -> dict[str, Any]:
        """The document form: what ``from_dict`` reads back into an equal policy."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["unlisted"] = self.unlisted.value
        if self.trustee is not None:
            data["trustee"] = self.trustee
        data["columns"] = {name: rule.as_dict() for name, rule in self.columns.items()}
        if self.entity_types:
            data["entity_types"] = {t: rule.as_dict() for t, rule in self.entity_types.items()}
        return data

    @classmethod
    def from_json(cls, text: str | bytes) -> DeidentificationPolicy:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                MSG_BAD_POLICY, code="bad-policy", format="JSON", reason=str(exc)
            ) from None
        return cls.from_dict(data)

    @classmethod
    def from_yaml(cls, text: str | bytes) -> DeidentificationPolicy:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidInput(
                MSG_BAD_POLICY, code="bad-policy", format="YAML", reason=reason
            ) from None
        return cls.from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2) + "\n"

    def to_yaml(self) -> str:
        return str(yaml.safe_dump(self.as_dict(), allow_unicode=True, sort_keys=False))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeidentificationPolicy:
        """A policy file: YAML for ``.yaml``/``.yml``, JSON otherwise."""
        text = Path(path).read_bytes()  # bytes: an encoding error is the parser's refusal
        if PurePath(path).suffix.lower() in (".yaml", ".yml"):
            return cls.from_yaml(text)
        return cls.from_json(text)

    def dump(self, path: str | os.PathLike[str]) -> None:
        yaml_file = PurePath(path).suffix.lower() in (".yaml", ".yml")
        Path(path).write_text(self.to_yaml() if yaml_file else self.to_json(), encoding="utf-8")

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON: which policy a version was made with, for the audit."""
        canonical = json.dumps(
            self.as_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    # ------------------------------------------------------------------------------- planning

    def plan(
        self, schema: pa.Schema, findings: Findings | None = None
    ) -> tuple[PlannedColumn, ...]:
        """What happens to each column of ``schema``: refuses rules for columns it does not have,
        entity-type rules without findings, and parameters that do not fit the column.

        A rule naming the column wins over one for an entity type found in it; among entity
        types, the first one the scan reports (its best) that has a rule.
        """
        names = list(schema.names)
        for column in self.columns:
            if column not in names:
                shown = ", ".join(names[:30]) + (" …" if len(names) > 30 else "")
                raise InvalidInput(
                    MSG_UNKNOWN_COLUMN,
                    field=f"columns.{column}",
                    code="unknown-column",
                    column=column,
                    columns=shown,
                )
        if self.entity_types and findings is None:
            raise InvalidInput(
                MSG_NEEDS_FINDINGS,
                field="entity_types",
                code="needs-scan",
                types=", ".join(self.entity_types),
            )
        detected = _types_by_column(findings) if findings is not None else {}
        planned = []
        for item in schema:
            types = detected.get(item.name, ())
            rule, origin, matched = self.columns.get(item.name), "column", None
            if rule is None:
                matched = next((t for t in types if t in self.entity_types), None)
                if matched is not None:
                    rule, origin = self.entity_types[matched], "entity_type"
            if rule is None:
                rule, origin = ColumnRule(self.unlisted), "unlisted"
            entity_type = rule.entity_type or matched or (types[0] if types else None)
            params = _effective_params(rule, entity_type, item.type, item.name, self.trustee)
            planned.append(PlannedColumn(item.name, rule.technique, params, entity_type, origin))
        if all(p.technique is Technique.DROP for p in planned):
            raise InvalidInput(MSG_NOTHING_LEFT, code="nothing-left")
        return tuple(planned)


def _is_number(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def _is_date(kind: pa.DataType) -> bool:
    return bool(pa.types.is_date(kind) or pa.types.is_timestamp(kind))


def _rules(data: Any, key: str, where: Callable[[str], str]) -> dict[str, ColumnRule]:
    if not isinstance(data, Mapping):
        raise InvalidInput(MSG_COLUMNS_NOT_OBJECT, field=key, code="bad-policy", key=key)
    return {str(name): ColumnRule.parse(rule, where(str(name))) for name, rule in data.items()}


def _effective_params(
    rule: ColumnRule,
    entity_type: str | None,
    arrow_type: pa.DataType,
    column: str,
    trustee: str | None,
) -> Mapping[str, Any]:
    params = dict(rule.params)
    if rule.technique is Technique.MASK:
        presets = _profiles_file().mask_presets
        preset = presets.get(entity_type or "", presets["default"])
        params = {"keep_first": 1, "keep_last": 1, "char": "*", "keep_from": None, **preset}
        params.update(rule.params)
    elif rule.technique is Technique.HASH:
        encoding = params.setdefault("encoding", "hex")
        params.setdefault("length", _HASH_LENGTH[encoding][2])
    elif rule.technique is Technique.GENERALISE:
        kind = params.get("kind")
        if kind is None:
            kind = _KIND_OF_TYPE.get(entity_type or "")
        if kind is None:
            if _is_date(arrow_type):
                kind = GeneraliseKind.DATE
            elif _is_number(arrow_type):
                kind = GeneraliseKind.NUMBER
        if kind is None:
            raise _fail(MSG_NO_KIND, column, "kind")
        kind = GeneraliseKind(kind)
        _check_kind_params(kind, params, column)
        params = {**_KIND_DEFAULTS[kind], **params, "kind": kind.value}
    elif rule.technique is Technique.TOKENISE:
        params.setdefault("context", "")
        if "trustee" not in params:
            if trustee is None:
                raise _fail(MSG_NO_TRUSTEE, column, "trustee")
            params["trustee"] = trustee
    return MappingProxyType(params)


# --- profiles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeidentificationProfile:
    """A named starter policy: a rule per entity type, and fallbacks for other columns."""

    name: str
    label: Mapping[str, str]
    purpose: str
    types: Mapping[str, ColumnRule]
    sensitive: ColumnRule
    personal: ColumnRule
    other: ColumnRule


@dataclass(frozen=True)
class _ProfilesFile:
    profiles: Mapping[str, DeidentificationProfile]
    mask_presets: Mapping[str, Mapping[str, Any]]
    basis: Mapping[str, tuple[Mapping[str, str], ...]]


@functools.cache
def _profiles_file() -> _ProfilesFile:
    data = yaml.safe_load(_RULES.read_text(encoding="utf-8"))
    presets: dict[str, Mapping[str, Any]] = {}
    for entity_type, preset in data["mask_presets"].items():
        if entity_type != "default" and entity_type not in ENTITY_TYPES:
            raise ValueError(f"deidentify_profiles.yaml: unknown mask preset {entity_type}")
        presets[entity_type] = ColumnRule.parse({"technique": "mask", **preset}, entity_type).params
    profiles = {}
    for name, entry in data["profiles"].items():
        types = {t: ColumnRule.parse(rule, f"<{t}>") for t, rule in entry["types"].items()}
        unknown = set(types) - set(ENTITY_TYPES)
        if unknown:
            raise ValueError(f"deidentify_profiles.yaml: profile {name}: unknown {unknown}")
        profiles[name] = DeidentificationProfile(
            name=name,
            label=MappingProxyType(dict(entry["label"])),
            purpose=str(entry["purpose"]),
            types=MappingProxyType(types),
            sensitive=ColumnRule.parse(entry["sensitive"], "sensitive"),
            personal=ColumnRule.parse(entry["personal"], "personal"),
            other=ColumnRule.parse(entry["other"], "other"),
        )
    sources = {k: v["title"] for k, v in data["sources"].items()}
    basis = {
        technique: tuple(
            MappingProxyType({**b, "title": sources[b["source"]]}) for b in entry["basis"]
        )
        for technique, entry in data["techniques"].items()
    }
    return _ProfilesFile(
        MappingProxyType(profiles), MappingProxyType(presets), MappingProxyType(basis)
    )


def load_deidentification_profiles() -> Mapping[str, DeidentificationProfile]:
    """The named starter profiles of ``rules/deidentify_profiles.yaml``."""
    return _profiles_file().profiles


def technique_basis(technique: Technique | str) -> tuple[Mapping[str, str], ...]:
    """Where a technique comes from: source, title, article and a note, from the rule file."""
    return _profiles_file().basis.get(str(technique), ())


def policy_from_profile(
    findings: Findings,
    profile: str,
    *,
    trustee: str | None = None,
    name: str | None = None,
) -> DeidentificationPolicy:
    """A policy naming every column of a scan, each with the rule ``profile`` gives its types.

    A column takes the profile's rule for its first detected type that has one; else the
    ``sensitive`` fallback if any of its types is sensitive personal information, the
    ``personal`` fallback if any is personal information, and ``other`` when it holds none.
    """
    profiles = load_deidentification_profiles()
    chosen = profiles.get(profile)
    if chosen is None:
        raise NotFound(
            MSG_UNKNOWN_PROFILE,
            field="profile",
            code="unknown-profile",
            profile=profile,
            profiles=", ".join(profiles),
        )
    if trustee is not None:
        _check_trustee(trustee)
    pii = load_pii_rules()
    columns: dict[str, ColumnRule] = {}
    for column, types in _types_by_column(findings).items():
        matched = next((t for t in types if t in chosen.types), None)
        if matched is not None:
            rule = chosen.types[matched]
        elif any(pii[t].sensitive for t in types):
            rule = chosen.sensitive
        elif any(pii[t].personal for t in types):
            rule = chosen.personal
        else:
            rule = chosen.other
        entity_type = matched or (types[0] if types else None)
        if rule.technique is Technique.TOKENISE and trustee is None:
            raise InvalidInput(
                MSG_PROFILE_TRUSTEE,
                field="trustee",
                code="needs-trustee",
                profile=profile,
                column=column,
            )
        columns[column] = ColumnRule(rule.technique, rule.params, entity_type)
    return DeidentificationPolicy(
        name=name or profile,
        columns=MappingProxyType(columns),
        unlisted=Technique.DROP,
        trustee=trustee,
        description=chosen.purpose,
    )


# --- Arrow helpers -------------------------------------------------------------------------------

_NULL_TEXT: Final = pa.scalar(None, pa.string())
# Characters a mask leaves in place, so "+86 138-1234-5678" keeps its shape.
_MASKED: Final = r"[^\s\-+().,/:;·_@#]"
_SEPARATOR: Final = r"[\s\-+().,/:;·_@#]"


def _text(array: pa.Array) -> pa.Array:
    """Cells as text (see ``scan.as_text``), blank ones as null."""
    text = as_text(array)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if pa.types.is_large_string(text.type):
        text = text.cast(pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.if_else(blank, _NULL_TEXT, text)


def _blank_to_null(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), _NULL_TEXT, text)


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _fixed(x: pa.Array, decimals: int) -> pa.Array:
    """Numbers as text with exactly ``decimals`` decimal places, in Arrow kernels."""
    scale = 10**decimals
    scaled = pc.cast(pc.round(pc.multiply(pc.abs(x), float(scale))), pa.int64())
    whole = pc.divide(scaled, scale)
    text = pc.cast(whole, pa.string())
    if decimals:
        fraction = pc.cast(pc.subtract(scaled, pc.multiply(whole, scale)), pa.string())
        text = _join(text, ".", pc.utf8_lpad(fraction, width=decimals, padding="0"))
    negative = pc.and_(pc.less(x, 0), pc.greater(scaled, 0))
    return pc.if_else(negative, _join("-", text), text)


# --- column processors ---------------------------------------------------------------------------


class _Column:
    """Applies one planned column to each batch and counts what it did."""

    output_type: pa.DataType = pa.string()

    def __init__(self, planned: PlannedColumn, input_type: pa.DataType) -> None:
        self.planned = planned
        self.input_type = input_type
        self.processed = 0
        self.failed = 0
        self.key_id: str | None = None

    def __call__(self, array: pa.Array) -> pa.Array:
        raise NotImplementedError


class _Keep(_Column):
    def __init__(self, planned: PlannedColumn, input_type: pa.DataType) -> None:
        super().__init__(planned, input_type)
        self.output_type = input_type

    def __call__(self, array: pa.Array) -> pa.Array:
        return array


class _Mask(_Column):
    def __call__(self, array: pa.Array) -> pa.Array:
        p = self.planned.params
        text = _text(array)
        self.processed += len(text) - text.null_count
        tail: Any = ""
        if p["keep_from"]:
            mark = re.escape(p["keep_from"])
            parts = pc.extract_regex(text, rf"(?s)^(?P<head>.*?)(?P<tail>{mark}[^{mark}]*)?$")
            text, tail = pc.struct_field(parts, [0]), pc.struct_field(parts, [1])
        return _join(self._mask(text, p["keep_first"], p["keep_last"], p["char"]), tail)

    @staticmethod
    def _mask(text: pa.Array, first: int, last: int, char: str) -> pa.Array:
        # Every character but the separators hidden; one character for one, so the positions of
        # the hidden text are those of the value and both can be sliced alike.
        hidden = _hide(text, char)
        length = pc.utf8_length(text)
        head = pc.utf8_slice_codeunits(text, 0, first)
        middle = pc.utf8_slice_codeunits(hidden, first, -last if last else None)
        end: Any = pc.utf8_slice_codeunits(text, -last) if last else ""
        long = _join(head, middle, end)
        # Too short to show both ends: show at most the first character, none of a single one.
        shown = 1 if first else 0
        short = _join(
            pc.utf8_slice_codeunits(text, 0, shown), pc.utf8_slice_codeunits(hidden, shown)
        )
        return pc.if_else(
            pc.greater(length, first + last),
            long,
            pc.if_else(pc.greater_equal(length, 2), short, hidden),
        )


def _hide(text: pa.Array, char: str) -> pa.Array:
    """``char`` for every character of ``text`` but the separators, which stay in place.

    Most values (IDs, phone numbers, names) have no separator and become ``char`` repeated, in
    one kernel; a regular-expression replacement, one match per character and so much slower,
    runs only on the values that have one.
    """
    hidden = pc.binary_repeat(char, pc.utf8_length(text))
    separated = pc.fill_null(pc.match_substring_regex(text, _SEPARATOR), False)
    if pc.any(separated).as_py():
        replaced = pc.replace_substring_regex(pc.filter(text, separated), _MASKED, char)
        hidden = pc.replace_with_mask(hidden, separated, replaced)
    return hidden


class _PerValue(_Column):
    """A technique computed in Python once per distinct value of a batch."""

    def _one(self, value: str) -> str:
        raise NotImplementedError

    def __call__(self, array: pa.Array) -> pa.Array:
        text = _text(array)
        self.processed += len(text) - text.null_count
        encoded = text.dictionary_encode()
        values = encoded.dictionary.to_pylist()
        mapped = pa.array([self._one(v) for v in values], pa.string())
        return mapped.take(encoded.indices)


class _Hash(_PerValue):
    def __init__(self, planned: PlannedColumn, input_type: pa.DataType, salt: bytes) -> None:
        super().__init__(planned, input_type)
        self._salt = salt
        self._length = int(planned.params["length"])
        self._base32 = planned.params["encoding"] == "base32"
        self.bits = self._length * (5 if self._base32 else 4)

    def _one(self, value: str) -> str:
        digest = hmac.digest(self._salt, value.encode("utf-8"), "sha256")
        if self._base32:
            return base64.b32encode(digest).decode("ascii")[: self._length]
        return digest.hex()[: self._length]


class _Tokenise(_PerValue):
    def __init__(self, planned: PlannedColumn, input_type: pa.DataType, keys: TrusteeKeys) -> None:
        super().__init__(planned, input_type)
        key = keys.current(str(planned.params["trustee"]))
        self.key_id = key.key_id
        self._tokenise = Tokeniser(key, str(planned.params["context"]))
        self._cache: dict[str, str] = {}

    def _one(self, value: str) -> str:
        token = self._cache.get(value)
        if token is None:
            token = self._tokenise(value)
            if len(self._cache) < _TOKEN_CACHE:
                self._cache[value] = token
        return token


class _Generalise(_Column):
    def _generalise(self, array: pa.Array) -> pa.Array:
        raise NotImplementedError

    def _inputs(self, array: pa.Array) -> pa.Array:
        """The values ``_generalise`` reads: text by default (blank cells null)."""
        return array if pa.types.is_string(array.type) else _text(array)

    def __call__(self, array: pa.Array) -> pa.Array:
        if _is_number(array.type) or _is_date(array.type):
            given = len(array) - array.null_count
        else:
            array = _text(array)
            given = len(array) - array.null_count
        # Counted before parsing: "abc" in a column of ages is a value that failed, not a blank.
        out = self._generalise(self._inputs(array))
        self.processed += given
        self.failed += given - (len(out) - out.null_count)
        return out


_DATE: Final = (
    r"(?s)^\s*(?:"
    r"(?P<y1>\d{4})\s*[-/.年]\s*(?P<m1>\d{1,2})(?:\D.*)?"  # 1990-05-17, 1990/5/17, 1990年5月17日
    r"|(?P<y2>\d{4})(?P<m2>\d{2})\d{2}(?:\D.*)?"  # 19900517
    r"|\d{1,2}\s*[-/.]\s*(?P<m3>\d{1,2})\s*[-/.]\s*(?P<y3>\d{4})(?:\D.*)?"  # 17/05/1990
    r"|(?P<y4>\d{4})\s*年?"  # 1990
    r")\s*$"
)


class _GeneraliseDate(_Generalise):
    def _inputs(self, array: pa.Array) -> pa.Array:
        return array if _is_date(array.type) else super()._inputs(array)

    def _generalise(self, values: pa.Array) -> pa.Array:
        to_month = self.planned.params["to"] == "year_month"
        if _is_date(values.type):
            year = pc.cast(pc.year(values), pa.string())
            if not to_month:
                return year
            month = pc.utf8_lpad(pc.cast(pc.month(values), pa.string()), width=2, padding="0")
            return _join(year, "-", month)
        parts = pc.extract_regex(values, _DATE)
        fields = [_blank_to_null(pc.struct_field(parts, [i])) for i in range(7)]
        y1, m1, y2, m2, m3, y3, y4 = fields
        year = pc.coalesce(y1, y2, y3, y4)
        month_text = pc.coalesce(m1, m2, m3)
        month = pc.cast(month_text, pa.int32())
        bad_month = pc.or_(pc.less(month, 1), pc.greater(month, 12))
        year = pc.if_else(pc.fill_null(bad_month, False), _NULL_TEXT, year)
        if not to_month:
            return year
        padded = pc.utf8_lpad(pc.cast(month, pa.string()), width=2, padding="0")
        # A value that gives only a year stays a year: coarser than asked, never finer.
        return pc.coalesce(_join(year, "-", padded), year)


_DECIMAL: Final = r"^\s*-?\d+(\.\d+)?\s*$"


class _GeneraliseNumber(_Generalise):
    def _inputs(self, array: pa.Array) -> pa.Array:
        if _is_number(array.type):
            return pc.cast(array, pa.float64())
        text = super()._inputs(array)
        numeric = pc.match_substring_regex(text, _DECIMAL)
        return pc.cast(pc.utf8_trim_whitespace(pc.if_else(numeric, text, _NULL_TEXT)), pa.float64())

    def _generalise(self, x: pa.Array) -> pa.Array:
        p = self.planned.params
        width = int(p["width"])
        x = pc.if_else(pc.greater(pc.abs(x), _MAX_NUMBER), pa.scalar(None, pa.float64()), x)
        x = pc.if_else(pc.is_nan(x), pa.scalar(None, pa.float64()), x)
        low = pc.cast(pc.multiply(pc.floor(pc.divide(x, float(width))), float(width)), pa.int64())
        if width == 1:
            out = pc.cast(low, pa.string())
        else:
            high = pc.add(low, width - 1)
            out = _join(pc.cast(low, pa.string()), "-", pc.cast(high, pa.string()))
        if p.get("top") is not None:
            out = pc.if_else(pc.greater_equal(x, float(p["top"])), f">={_plain(p['top'])}", out)
        if p.get("bottom") is not None:
            out = pc.if_else(pc.less(x, float(p["bottom"])), f"<{_plain(p['bottom'])}", out)
        return out


def _plain(number: float | int) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


class _GeneraliseResidentId(_Generalise):
    def _generalise(self, values: pa.Array) -> pa.Array:
        digits = int(self.planned.params["region_digits"])
        ids = pc.utf8_upper(pc.utf8_trim_whitespace(values))
        id18 = pc.match_substring_regex(ids, r"^\d{17}[\dX]$")
        id15 = pc.match_substring_regex(ids, r"^\d{15}$")
        # GB 11643: the 18-digit number holds the birth year at 7-10; the legacy 15-digit one
        # only its last two digits, issued to people born in the 1900s.
        year = pc.if_else(
            id18,
            pc.utf8_slice_codeunits(ids, 6, 10),
            pc.if_else(id15, _join("19", pc.utf8_slice_codeunits(ids, 6, 8)), _NULL_TEXT),
        )
        if not digits:
            return year
        region = pc.utf8_slice_codeunits(ids, 0, digits)
        return _join(region, "*" * (6 - digits), year)


_GEO: Final = (
    r"^\s*\(?\s*(?P<a>-?\d{1,3}(?:\.\d+)?)\s*"
    r"(?:(?P<sep>[,，;]\s*|\s+)(?P<b>-?\d{1,3}(?:\.\d+)?))?\s*\)?\s*$"
)


class _GeneraliseGeo(_Generalise):
    def __init__(self, planned: PlannedColumn, input_type: pa.DataType) -> None:
        super().__init__(planned, input_type)
        if pa.types.is_floating(input_type) or pa.types.is_decimal(input_type):
            self.output_type = pa.float64()

    def _inputs(self, array: pa.Array) -> pa.Array:
        if self.output_type == pa.float64():
            return pc.cast(array, pa.float64())
        return super()._inputs(array)

    def _generalise(self, values: pa.Array) -> pa.Array:
        decimals = int(self.planned.params["decimals"])
        if self.output_type == pa.float64():
            return pc.round(values, decimals)
        parts = pc.extract_regex(values, _GEO)
        a = pc.cast(pc.struct_field(parts, [0]), pa.float64())
        separator = pc.struct_field(parts, [1])
        b = pc.cast(_blank_to_null(pc.struct_field(parts, [2])), pa.float64())
        first = _fixed(a, decimals)
        pair = _join(first, separator, _fixed(b, decimals))
        return pc.if_else(pc.is_null(b), first, pair)


@dataclass(frozen=True)
class _Divisions:
    """Division words (full names, and short ones for provinces) and their province/city labels."""

    pattern: str
    province_of: Mapping[str, str]  # word -> province code
    city_of: Mapping[str, str]  # word -> city-level code (prefecture, or the municipality)
    short_provinces: frozenset[str]
    names: Mapping[str, str]  # code -> full name


_MUNICIPALITIES: Final = frozenset({"11", "12", "31", "50"})
_PROVINCE_SUFFIXES: Final = (
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "省",
    "市",
)
_ROAD: Final = frozenset("路街道巷弄胡桥")


@functools.cache
def _divisions() -> _Divisions:
    names = dict(division_names())
    province_of: dict[str, str] = {}
    short: set[str] = set()
    for code, name in names.items():
        if code.endswith("0000"):
            province_of[name] = code
            for suffix in _PROVINCE_SUFFIXES:
                if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                    province_of.setdefault(name[: -len(suffix)], code)
                    short.add(name[: -len(suffix)])
                    break
    city_of: dict[str, str] = {}
    for code, name in sorted(names.items()):
        if code.endswith("0000"):
            continue
        if code[:2] in _MUNICIPALITIES:
            city = code[:2] + "0000"  # a municipality's districts: the city is the municipality
        elif code.endswith("00"):
            city = code
        else:
            city = code[:4] + "00" if code[:4] + "00" in names else code[:2] + "0000"
        city_of.setdefault(name, city)  # a name used twice keeps its first (lowest) code
    for word in list(city_of):
        # Short city names ("南宁" for "南宁市") only after a province: alone they are too often a
        # road's name ("南宁路" in Shanghai).
        if word.endswith("市") and len(word) >= 3:
            city_of.setdefault(word[:-1], city_of[word])

    def alternation(words: Iterable[str]) -> str:
        return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))

    full_cities = [w for w in city_of if w in names.values()]
    pattern = (
        r"^\s*(?:中华人民共和国|中国)?\s*(?:"
        rf"(?P<p>{alternation(province_of)})\s*(?P<c>{alternation(city_of)})?(?P<n>.?)"
        rf"|(?P<c2>{alternation(full_cities)})"
        r")"
    )
    return _Divisions(
        pattern, MappingProxyType(province_of), MappingProxyType(city_of), frozenset(short), names
    )


class _GeneraliseAddress(_Generalise):
    def _generalise(self, values: pa.Array) -> pa.Array:
        table = _divisions()
        parts = pc.extract_regex(values, table.pattern)
        # Few distinct (province, city, next character) triples in any column: resolve those in
        # Python and spread the labels back with one take.
        key = pc.binary_join_element_wise(*(pc.struct_field(parts, [i]) for i in range(4)), "\x1f")
        encoded = key.dictionary_encode()
        level_city = self.planned.params["level"] == "city"
        labels = [self._label(k, level_city) for k in encoded.dictionary.to_pylist()]
        return pa.array(labels, pa.string()).take(encoded.indices)

    @staticmethod
    def _label(key: str, level_city: bool) -> str | None:
        table = _divisions()
        province_word, city_word, after, city_alone = key.split("\x1f")
        province = table.province_of.get(province_word)
        city: str | None
        if city_alone:
            city = table.city_of[city_alone]
            province = city[:2] + "0000"
        else:
            city = table.city_of.get(city_word) if city_word else None
            if province is None:
                return None
            if city is None and province_word in table.short_provinces and after in _ROAD:
                return None  # "北京路…": a road named after a province, not the province
            if city is not None and city[:2] != province[:2]:
                city = None  # "上海市南宁路": the province is right, the "city" is a road
        name = table.names[province]
        if not level_city or city is None or city == province:
            return name
        return name + table.names[city]


_GENERALISERS: Final[Mapping[GeneraliseKind, type[_Generalise]]] = {
    GeneraliseKind.DATE: _GeneraliseDate,
    GeneraliseKind.NUMBER: _GeneraliseNumber,
    GeneraliseKind.RESIDENT_ID: _GeneraliseResidentId,
    GeneraliseKind.ADDRESS: _GeneraliseAddress,
    GeneraliseKind.GEO: _GeneraliseGeo,
}


def _processor(
    planned: PlannedColumn, input_type: pa.DataType, salt: bytes, keys: TrusteeKeys | None
) -> _Column:
    technique = planned.technique
    if technique is Technique.KEEP:
        return _Keep(planned, input_type)
    if technique is Technique.MASK:
        return _Mask(planned, input_type)
    if technique is Technique.HASH:
        return _Hash(planned, input_type, salt)
    if technique is Technique.TOKENISE:
        if keys is None:
            raise _fail(MSG_NO_KEYS, planned.name, "trustee", trustee=planned.params["trustee"])
        return _Tokenise(planned, input_type, keys)
    kind = GeneraliseKind(planned.params["kind"])
    return _GENERALISERS[kind](planned, input_type)


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnOutcome:
    """What was done to one column: technique and parameters as applied (never the salt or a
    key), how many values were processed and how many could not be generalised."""

    name: str
    technique: Technique
    entity_type: str | None
    origin: str
    params: Mapping[str, Any]
    output_type: str | None
    processed: int
    failed: int = 0
    key_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "technique": self.technique.value,
            "entity_type": self.entity_type,
            "origin": self.origin,
            "params": dict(self.params),
            "output_type": self.output_type,
            "processed": self.processed,
            "failed": self.failed,
            "key_id": self.key_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnOutcome:
        return cls(
            name=str(data["name"]),
            technique=Technique(data["technique"]),
            entity_type=data.get("entity_type"),
            origin=str(data["origin"]),
            params=MappingProxyType(dict(data.get("params") or {})),
            output_type=data.get("output_type"),
            processed=int(data["processed"]),
            failed=int(data.get("failed") or 0),
            key_id=data.get("key_id"),
        )


@dataclass(frozen=True)
class DeidentificationReport:
    """The result of ``deidentify``: rows written, per column what was done, and warnings (the
    reader's and the run's). ``as_dict`` is plain JSON, to keep with the new version."""

    policy: str
    policy_digest: str
    format: str
    rows: int
    columns: tuple[ColumnOutcome, ...]
    warnings: tuple[ReadWarning, ...] = ()

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.technique is not Technique.DROP)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "policy_digest": self.policy_digest,
            "format": self.format,
            "rows": self.rows,
            "columns": [c.as_dict() for c in self.columns],
            "warnings": [
                {
                    "code": w.code,
                    "message": w.message,
                    "params": dict(w.params),
                    "line": w.line,
                    "zh": render_message(w.message, w.params, "zh_CN"),
                    "en": render_message(w.message, w.params, "en"),
                }
                for w in self.warnings
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeidentificationReport:
        return cls(
            policy=str(data["policy"]),
            policy_digest=str(data["policy_digest"]),
            format=str(data["format"]),
            rows=int(data["rows"]),
            columns=tuple(ColumnOutcome.from_dict(c) for c in data["columns"]),
            warnings=tuple(
                ReadWarning(
                    str(w["code"]), str(w["message"]), dict(w.get("params") or {}), w.get("line")
                )
                for w in data.get("warnings") or ()
            ),
        )


@dataclass(frozen=True)
class DeidentifiedOutput:
    """A de-identified table stored as a blob: what ``add_file_version`` and the version's
    record need (``filename`` ends with the format's suffix, so the format can be read back)."""

    blob: Blob
    filename: str
    format: str
    report: DeidentificationReport

    @property
    def digest(self) -> str:
        return self.blob.digest

    @property
    def size(self) -> int:
        return self.blob.size

    @property
    def rows(self) -> int:
        return self.report.rows


# --- running -------------------------------------------------------------------------------------


class _Writer:
    """Parquet (row groups of up to ``ROW_GROUP_ROWS``) or CSV, written as batches arrive."""

    def __init__(self, sink: IO[bytes], schema: pa.Schema, fmt: str) -> None:
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._schema = schema
        self._parquet: Any = None
        self._csv: Any = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetWriter(sink, schema, compression="zstd")
        else:
            import pyarrow.csv as pacsv

            self._csv = pacsv.CSVWriter(sink, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._csv is not None:
            self._csv.write_batch(batch)
            return
        # Small input batches would make tiny row groups; a few are gathered into one.
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            table = pa.Table.from_batches(self._buffer, self._schema)
            self._parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self._buffer, self._buffered = [], 0

    def close(self) -> None:
        if self._parquet is not None:
            self._flush()
            self._parquet.close()
        else:
            self._csv.close()


@contextlib.contextmanager
def _opened(out: IO[bytes] | str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """The sink: a caller's file object as it is, or a path opened here and removed on failure."""
    if not isinstance(out, str | os.PathLike):
        yield out
        return
    path = Path(out)
    handle = path.open("wb")
    try:
        with handle:
            yield handle
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(MSG_BAD_FORMAT, field="format", code="bad-format", format=fmt)
    return fmt


def _collision_bound(count: int, bits: int) -> float:
    return min(1.0, count * (count - 1) / 2 / 2.0**bits)


def deidentify(
    table: Table,
    policy: DeidentificationPolicy,
    *,
    out: IO[bytes] | str | os.PathLike[str],
    format: str = "parquet",
    tokens: TrusteeKeys | None = None,
    findings: Findings | None = None,
    salt: bytes | None = None,
    batch_size: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> DeidentificationReport:
    """Write ``table`` de-identified by ``policy`` to ``out`` as ``format``; see the module
    docstring.

    ``findings`` (a scan's columns) let entity-type rules and presets apply. ``tokens`` is the
    trustee key store, needed when a column is tokenised. ``salt`` keys ``hash``: by default 32
    fresh random bytes, forgotten when the call returns; pass the same salt to several calls only
    to join their outputs, and never keep it with them. ``progress(rows, total)`` is called after
    every batch; ``should_cancel()`` is checked before every batch and stops the run with
    ``DeidentificationCancelled`` (a file written to a path is then removed). Everything the
    policy gets wrong is refused before the first row is read.
    """
    fmt = _check_format(format)
    if salt is None:
        salt = secrets.token_bytes(32)
    elif len(salt) < 16:
        raise InvalidInput(MSG_BAD_SALT, field="salt", code="bad-salt")
    schema = table.schema
    plan = policy.plan(schema, findings)
    processors = [
        _processor(p, schema.field(p.name).type, salt, tokens)
        for p in plan
        if p.technique is not Technique.DROP
    ]
    out_schema = pa.schema([pa.field(c.planned.name, c.output_type) for c in processors])
    indices = [schema.get_field_index(c.planned.name) for c in processors]
    total = table.row_count
    rows = 0

    def check() -> None:
        if should_cancel is not None and should_cancel():
            raise DeidentificationCancelled(MSG_CANCELLED, table=table.name, rows=rows)

    with _opened(out) as sink:
        writer = _Writer(sink, out_schema, fmt)
        try:
            check()
            batches = table.batches(batch_size)
            try:
                for batch in batches:
                    arrays = [c(batch.column(i)) for c, i in zip(processors, indices, strict=True)]
                    writer.write(pa.RecordBatch.from_arrays(arrays, schema=out_schema))
                    rows += batch.num_rows
                    if progress is not None:
                        progress(rows, total)
                    check()
            finally:
                close = getattr(batches, "close", None)
                if close is not None:
                    close()
        finally:
            writer.close()

    return _report(policy, fmt, rows, plan, processors, table)


def _report(
    policy: DeidentificationPolicy,
    fmt: str,
    rows: int,
    plan: Sequence[PlannedColumn],
    processors: Sequence[_Column],
    table: Table,
) -> DeidentificationReport:
    by_name = {c.planned.name: c for c in processors}
    warnings = list(table.warnings)
    if table.warning_count > len(warnings):
        count = table.warning_count - len(warnings)
        warnings.append(ReadWarning("more-warnings", MSG_MORE_WARNINGS, {"count": count}))
    outcomes = []
    for planned in plan:
        done = by_name.get(planned.name)
        outcomes.append(
            ColumnOutcome(
                name=planned.name,
                technique=planned.technique,
                entity_type=planned.entity_type,
                origin=planned.origin,
                params=planned.params,
                output_type=str(done.output_type) if done else None,
                processed=done.processed if done else 0,
                failed=done.failed if done else 0,
                key_id=done.key_id if done else None,
            )
        )
        if done is None:
            continue
        if done.failed:
            warnings.append(
                ReadWarning(
                    "not-generalised",
                    MSG_NOT_GENERALISED,
                    {"count": done.failed, "column": planned.name, "kind": planned.params["kind"]},
                )
            )
        if isinstance(done, _Hash):
            bound = _collision_bound(done.processed, done.bits)
            if bound > _COLLISION_WARN:
                warnings.append(
                    ReadWarning(
                        "hash-collisions",
                        MSG_HASH_COLLISIONS,
                        {
                            "column": planned.name,
                            "count": done.processed,
                            "bits": done.bits,
                            "probability": f"{bound:.1e}",
                        },
                    )
                )
    return DeidentificationReport(
        policy=policy.name,
        policy_digest=policy.digest,
        format=fmt,
        rows=rows,
        columns=tuple(outcomes),
        warnings=tuple(warnings),
    )


def deidentify_to_store(
    table: Table,
    policy: DeidentificationPolicy,
    store: BlobStore,
    *,
    max_bytes: int,
    format: str = "parquet",
    filename: str | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> DeidentifiedOutput:
    """De-identify ``table`` into ``store``; the blob, a file name and the report.

    The output is written to a private temporary file (in ``spool_dir``, default the system's)
    and then streamed into the store, which hashes it and refuses it past ``max_bytes``
    (``BlobTooLarge``); the temporary file is removed either way. ``options`` are those of
    ``deidentify``. The file name defaults to ``<table name>.deidentified.<format>``.
    """
    fmt = _check_format(format)
    fd, tmp = tempfile.mkstemp(prefix="deidentify-", suffix=f".{fmt}", dir=spool_dir)
    try:
        with os.fdopen(fd, "w+b") as handle:
            report = deidentify(table, policy, out=handle, format=fmt, **options)
            handle.flush()
            handle.seek(0)
            blob = store.put_stream(handle, max_bytes=max_bytes)
    finally:
        Path(tmp).unlink(missing_ok=True)
    stem = PurePath(table.name).stem.strip() or "data"
    return DeidentifiedOutput(
        blob=blob,
        filename=filename or f"{stem}.deidentified.{fmt}",
        format=fmt,
        report=report,
    )
