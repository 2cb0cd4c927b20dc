"""The sandbox's use cases: profiles, sandbox grants, budgets, queries and their review.

* **Profiles** (``declare_profile``, ``get_profile``): the holder of a registered asset says how
  it may be computed on — the data-plane version (by default the asset's registered one), the
  table name grantees write, each column's role and, for measures, the clamping bounds; ``large``
  runs it on Spark. Without a profile every query over the asset is refused (SBX-GRT-PROFILE).
* **Sandbox grants** (``list_sandbox_grants``, ``sandbox_grant``): a policy grant
  (``datafactor.policy.grants``) whose policy permits the ``sandbox`` channel, or an active
  exchange contract delivered by sandbox (``datafactor.exchange.sandbox_contract``). k comes from
  the decision's ``df:minGroupSize`` limit (else the rules' default), the total ε from
  ``df:epsilon`` (none: no noise, k only), the review duty from ``df:outputReview``. The catalog
  is the profile's columns, those outside the policy's ``df:fields`` made ``forbidden``.
* **Queries** (``run_query``, ``preview_query``): check → decide → charge ε under the budget's
  row lock in its own committed transaction → run in the worker outside any transaction →
  release → record; a failure refunds. Every query, refused ones too, is a ``SandboxQuery`` row,
  an audit event for the grantee's and the holder's party, and a ledger entry (hashes and
  figures, never data). ``list_queries``/``get_query``: the grantee's party, the holder's party
  and regulators (``SANDBOX_QUERY_READ_ALL``) see them; others get 404.
* **Review** (``review_query``): the holder's administrator releases or withholds a held result;
  the grantee is told through the inbox.
* **Pilot offers** (``offer_file``): a CSV or Parquet file registered as the holder's data set and
  asset, profiled, and granted to the grantee for sandbox use — through the registry's and the
  policy's own services (see the function).

Use cases that need several transactions (``run_query``, ``offer_file``) take the ``Database``;
the others take an open ``Session`` and never commit.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, dataplane, exchange, inbox, ledger, registry
from datafactor.db import Database, utcnow
from datafactor.errors import N_, DomainError
from datafactor.permissions import Permission, Principal
from datafactor.policy import grants as policy_grants
from datafactor.sandbox import checker, dp, sources, worker
from datafactor.sandbox.domain import (
    RANK_COLUMN,
    Catalog,
    ColumnRole,
    ColumnSpec,
    Engine,
    Limits,
    Plan,
    QueryState,
    Reason,
    Released,
    TableSpec,
)
from datafactor.sandbox.errors import (
    QueryRefused,
    SandboxForbidden,
    SandboxInvalid,
    SandboxNotFound,
    SandboxStateConflict,
)
from datafactor.sandbox.models import MICRO, SandboxBudget, SandboxProfile, SandboxQuery
from datafactor.sandbox.rulebook import rule_id, section
from datafactor.settings import Settings

P = Permission

GRANT: Final = "grant"
CONTRACT: Final = "contract"
ALLOWED: Final = "allowed"
REFUSED: Final = "refused"
INBOX_KIND: Final = "sandbox.query"
LEDGER_KIND: Final = "sandbox.query"
_NUMERIC: Final = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "REAL",
    "DOUBLE",
    "DECIMAL",
)
_TABLE_NAME_MAX: Final = 64
_AUDIT_SQL: Final = 1000  # characters of a query's text its audit events carry

MSG_NOT_HOLDER = N_(
    "Only an administrator of the data's holder can declare how it may be computed on in the "
    "sandbox (rule {rule})."
)
MSG_NO_ASSET = N_("No such registered asset (rule {rule}).")
MSG_NO_VERSION = N_(
    "The asset has no data-plane version to compute on: name the version, or register the "
    "asset with one (rule {rule})."
)
MSG_BAD_VERSION = N_(
    "Version {version} is not a version of the asset's data set: name one of its versions "
    "(rule {rule})."
)
MSG_TABLE_NAME = N_(
    "The table name must be 1 to 64 letters, digits or underscores, starting with a letter "
    "(rule {rule})."
)
MSG_UNKNOWN_COLUMNS = N_(
    "The data has no column named {columns}: the columns are {known} (rule {rule})."
)
MSG_BAD_ROLE = N_(
    "{column}: {role} is not a column role; use privacy_unit, identifier, group_key, measure "
    "or forbidden (rule {rule})."
)
MSG_ONE_UNIT = N_(
    "Exactly one column must be the privacy unit (the column naming the person or enterprise a "
    "row is about); this profile has {count} (rule {rule})."
)
MSG_MEASURE_TYPE = N_(
    "{column} is {type}, not a number: only numeric columns can be measures (rule {rule})."
)
MSG_MEASURE_BOUNDS = N_(
    "Measure {column} needs clamping bounds with lower < upper (given: {lower}, {upper}) "
    "(rule {rule})."
)
MSG_NO_PROFILE = N_(
    "No sandbox profile is declared for this asset: its holder has not said how it may be "
    "computed on (rule {rule})."
)
MSG_NO_GRANT = N_(
    "No sandbox grant {grant} that you hold: check the id with `datafactor sandbox grants` "
    "(rule {rule})."
)
MSG_NOT_GRANTEE = N_(
    "Only a staff member or administrator of the grantee can query under this grant (rule {rule})."
)
MSG_NO_QUERY = N_("No such sandbox query (rule {rule}).")
MSG_NOT_HELD = N_("Query {query} is {state}, not held for review (rule {rule}).")
MSG_NOT_REVIEWER = N_(
    "Only an administrator of the data's holder can release or withhold a held result "
    "(rule {rule})."
)
MSG_REVIEW_RELEASED = N_("Your sandbox query {query} was released by the data holder.")
MSG_REVIEW_WITHHELD = N_("Your sandbox query {query} was withheld by the data holder: {note}")
MSG_PARTY = N_(
    "No party {party}: name it by its id, its unified social credit code or its exact name "
    "(rule {rule})."
)
MSG_NO_ADMIN = N_("Party {party} has no active administrator to act for it (rule {rule}).")
MSG_K = N_("k, the minimum group size, must be at least 1 (rule {rule}).")
MSG_FILE = N_("{path} is not a readable CSV or Parquet file (rule {rule}).")

# Reasons worded for the grantee (both languages carried directly).
_PROFILE_REASON: Final = (
    "The data holder has not declared how this data may be computed on; ask the holder to "
    "declare its sandbox profile.",
    "数据持有方尚未声明该数据可如何在沙箱内计算；请联系数据持有方声明沙箱字段画像。",
)


def _reason(key: str, en: str, zh: str) -> Reason:
    return Reason(rule_id(key), en, zh)


def _reason_dict(r: Reason) -> dict[str, str]:
    return {"rule": r.rule, "en": r.en, "zh": r.zh}


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(p) for p in permissions):
        raise SandboxForbidden(MSG_NOT_GRANTEE, rule=rule_id("grant_visible"))


# ========================================================================= version columns


@dataclass(frozen=True, slots=True)
class VersionColumns:
    """A data-plane version's columns as the sandbox reads them: (name, DuckDB type)."""

    version_id: str
    columns: tuple[tuple[str, str], ...]

    def type_of(self, name: str) -> str | None:
        return next((t for n, t in self.columns if n == name), None)


def duckdb_type(kind: pa.DataType) -> str:
    """The DuckDB name of an Arrow type (what ``ColumnSpec.type`` holds)."""
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_int8(kind):
        return "TINYINT"
    if pa.types.is_int16(kind):
        return "SMALLINT"
    if pa.types.is_int32(kind):
        return "INTEGER"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_float32(kind):
        return "FLOAT"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision},{kind.scale})"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    return "VARCHAR"


def is_numeric(type_name: str) -> bool:
    return type_name.upper().split("(")[0] in _NUMERIC


def version_columns(session: Session, settings: Settings, version_id: str) -> VersionColumns:
    """The version's columns with the types the sandbox's engine sees (the materialised
    Parquet's schema: ``sources.materialise``)."""
    made = sources.materialise(session, settings, version_id)
    return VersionColumns(version_id, tuple((c.name, c.type) for c in made.columns))


# ================================================================================= profiles


@dataclass(frozen=True, slots=True)
class ColumnDraft:
    """One column of a profile as the holder declares it."""

    name: str
    role: str
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True, slots=True)
class ProfileDraft:
    """What the holder declares: columns not named are ``forbidden``."""

    asset_id: str
    table_name: str
    columns: tuple[ColumnDraft, ...]
    version_id: str | None = None  # default: the asset's registered version
    large: bool = False


def _profile_rule() -> str:
    return rule_id("grant_profile")


def _holder_asset(session: Session, principal: Principal, asset_id: str) -> registry.AssetFacts:
    facts = registry.asset_facts(session, asset_id)
    if facts is None:
        raise SandboxNotFound(MSG_NO_ASSET, rule=_profile_rule())
    if facts.party_id != principal.party_id or not principal.can(P.SANDBOX_PROFILE_MANAGE):
        # A registered asset is public (its certificates are); saying who may act hides nothing.
        raise SandboxForbidden(MSG_NOT_HOLDER, rule=_profile_rule())
    return facts


def check_profile(draft: ProfileDraft, available: VersionColumns) -> tuple[ColumnSpec, ...]:
    """The profile's columns, every column of the version in its order, or the refusal."""
    rule = _profile_rule()
    name = draft.table_name.strip()
    if not (
        0 < len(name) <= _TABLE_NAME_MAX
        and name[0].isascii()
        and name[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    ):
        raise SandboxInvalid(MSG_TABLE_NAME, rule=rule, field="table_name")
    known = [n for n, _ in available.columns]
    given = {c.name: c for c in draft.columns}
    unknown = [n for n in given if n not in known]
    if unknown:
        raise SandboxInvalid(
            MSG_UNKNOWN_COLUMNS,
            rule=rule,
            field="columns",
            columns=", ".join(unknown),
            known=", ".join(known),
        )
    roles = {r.value for r in ColumnRole}
    for d in draft.columns:
        if d.role not in roles:
            raise SandboxInvalid(
                MSG_BAD_ROLE, rule=rule, field="columns", column=d.name, role=d.role
            )
    units = [c for c in draft.columns if c.role == ColumnRole.PRIVACY_UNIT.value]
    if len(units) != 1:
        raise SandboxInvalid(MSG_ONE_UNIT, rule=rule, field="columns", count=str(len(units)))
    out: list[ColumnSpec] = []
    for column, kind in available.columns:
        c = given.get(column)
        role = ColumnRole(c.role) if c is not None else ColumnRole.FORBIDDEN
        if role is ColumnRole.MEASURE:
            assert c is not None
            if not is_numeric(kind):
                raise SandboxInvalid(
                    MSG_MEASURE_TYPE, rule=rule, field="columns", column=column, type=kind
                )
            lo, hi = c.lower, c.upper
            if (
                lo is None
                or hi is None
                or not (math.isfinite(lo) and math.isfinite(hi))
                or not lo < hi
            ):
                raise SandboxInvalid(
                    MSG_MEASURE_BOUNDS,
                    rule=rule,
                    field="columns",
                    column=column,
                    lower=str(lo),
                    upper=str(hi),
                )
            out.append(ColumnSpec(column, kind, role, float(lo), float(hi)))
        else:
            out.append(ColumnSpec(column, kind, role))
    return tuple(out)


def _registered_version(
    session: Session, principal: Principal, facts: registry.AssetFacts, wanted: str | None
) -> str:
    rule = _profile_rule()
    if wanted is None or wanted == facts.version_id:
        if not facts.version_id:
            raise SandboxInvalid(MSG_NO_VERSION, rule=rule, field="version_id")
        return facts.version_id
    try:
        other = dataplane.get_version(session, principal, wanted)
        registered = (
            dataplane.get_version(session, principal, facts.version_id)
            if facts.version_id
            else None
        )
    except DomainError:
        raise SandboxInvalid(
            MSG_BAD_VERSION, rule=rule, field="version_id", version=wanted
        ) from None
    if registered is not None and other.dataset_id != registered.dataset_id:
        raise SandboxInvalid(MSG_BAD_VERSION, rule=rule, field="version_id", version=wanted)
    return wanted


def declare_profile(
    session: Session, principal: Principal, draft: ProfileDraft, *, settings: Settings
) -> SandboxProfile:
    """The holder's administrator declares (or replaces) the asset's sandbox profile. Refused:
    not the holder; unknown columns; not exactly one privacy unit; a measure that is not numeric
    or whose bounds are not lower < upper. Audited."""
    facts = _holder_asset(session, principal, draft.asset_id)
    version_id = _registered_version(session, principal, facts, draft.version_id)
    columns = check_profile(draft, version_columns(session, settings, version_id))
    # Which columns are constant within a privacy unit (the checker's single-pass plan): found
    # once per profile on the file the worker will read, which this also prepares.
    level = set()
    if not draft.large and RANK_COLUMN not in _readable(columns):
        made = sources.ranked(
            session,
            settings,
            version_id,
            columns=_readable(columns),
            privacy_unit=next(c.name for c in columns if c.role is ColumnRole.PRIVACY_UNIT),
        )
        level = set(made.unit_level)
    row = session.scalar(select(SandboxProfile).where(SandboxProfile.asset_id == draft.asset_id))
    dataset_id = _dataset_of(session, principal, version_id)
    now = utcnow()
    if row is None:
        row = SandboxProfile(asset_id=draft.asset_id, created_by=principal.user_id or None)
        session.add(row)
    row.holder_id = facts.party_id
    row.dataset_id = dataset_id
    row.version_id = version_id
    row.table_name = draft.table_name.strip()
    row.columns = [
        {**c.as_dict(), **({"unit_level": True} if c.name in level else {})} for c in columns
    ]
    row.large = draft.large
    row.updated_at = now
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="sandbox:profile:declare",
        object_type="sandbox_profile",
        object_id=row.id,
        summary=f"Sandbox profile of asset {draft.asset_id}: table {row.table_name}, "
        f"{len(columns)} columns, privacy unit "
        f"{next(c.name for c in columns if c.role is ColumnRole.PRIVACY_UNIT)}",
        party_id=facts.party_id,
        reasons=[_profile_rule()],
    )
    return row


def _dataset_of(session: Session, principal: Principal, version_id: str) -> str | None:
    try:
        return str(dataplane.get_version(session, principal, version_id).dataset_id)
    except DomainError:
        return None


def get_profile(session: Session, principal: Principal, asset_id: str) -> SandboxProfile:
    """The asset's profile: for its holder, a regulator, or a party holding a sandbox grant over
    it; others get 404."""
    row = session.scalar(select(SandboxProfile).where(SandboxProfile.asset_id == asset_id))
    if row is None:
        facts = registry.asset_facts(session, asset_id)
        if facts is not None and facts.party_id == principal.party_id:
            raise SandboxNotFound(MSG_NO_PROFILE, rule=_profile_rule())
        raise SandboxNotFound(MSG_NO_ASSET, rule=_profile_rule())
    if (
        row.holder_id == principal.party_id
        or principal.can(P.SANDBOX_QUERY_READ_ALL)
        or any(
            g.asset_id == asset_id for g in list_sandbox_grants(session, principal, decide=False)
        )
    ):
        return row
    raise SandboxNotFound(MSG_NO_ASSET, rule=_profile_rule())


def profile_table(profile: SandboxProfile) -> TableSpec:
    return TableSpec(
        profile.table_name,
        tuple(
            ColumnSpec(
                str(c["name"]),
                str(c["type"]),
                ColumnRole(c["role"]),
                c.get("lower"),
                c.get("upper"),
            )
            for c in profile.columns
        ),
        large=bool(profile.large),
        unit_level=frozenset(str(c["name"]) for c in profile.columns if c.get("unit_level")),
    )


def _readable(columns: Sequence[ColumnSpec]) -> tuple[str, ...]:
    """The columns the worker's file holds: every one the profile does not forbid."""
    return tuple(c.name for c in columns if c.role is not ColumnRole.FORBIDDEN)


def profile_dict(profile: SandboxProfile) -> dict[str, Any]:
    return {
        "asset_id": profile.asset_id,
        "holder_id": profile.holder_id,
        "dataset_id": profile.dataset_id,
        "version_id": profile.version_id,
        "table": profile.table_name,
        "large": bool(profile.large),
        "columns": [dict(c) for c in profile.columns],
        "updated_at": profile.updated_at.isoformat(),
    }


# =========================================================================== sandbox grants


@dataclass(frozen=True, slots=True)
class PolicyTerms:
    """What a sandbox grant's policy asks of the output: k, the total ε (None: no noise),
    review, the fields it allows (None: every field)."""

    k: int
    epsilon_total: float | None
    review: bool
    fields: frozenset[str] | None


def _limits(decision: Any) -> PolicyTerms:
    k = int(section("output")["default_k"])
    epsilon: float | None = None
    for limit in getattr(decision, "limits", ()):
        if limit.operand == "df:minGroupSize":
            k = max(int(limit.value), 1)
        elif limit.operand == "df:epsilon":
            epsilon = float(limit.value)
    review = any(
        str(getattr(getattr(d, "action", None), "name", "")).endswith("outputReview")
        for d in decision.duties
    )
    return PolicyTerms(k, epsilon, review, None)


def _permissions(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A policy's permissions as a list (ODRL allows one object where a list is meant)."""
    permissions = document.get("permission") or []
    return [permissions] if isinstance(permissions, Mapping) else list(permissions)


def _policy_fields(document: Mapping[str, Any]) -> frozenset[str] | None:
    """The fields a policy's permissions allow (``df:fields`` isPartOf/isAnyOf/eq), or None."""
    found: set[str] | None = None
    for permission in _permissions(document):
        names: set[str] | None = None
        for c in _constraints(permission):
            if c.get("leftOperand") == "df:fields" and c.get("operator") in (
                "isPartOf",
                "isAnyOf",
                "eq",
            ):
                names = set(_atoms(c.get("rightOperand")))
        if names is None:
            return None  # a permission without a field limit: every field
        found = names if found is None else found | names
    return None if found is None else frozenset(found)


def _constraints(rule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = rule.get("constraint", [])
    items = [raw] if isinstance(raw, Mapping) else list(raw or [])
    out: list[Mapping[str, Any]] = []
    for c in items:
        if isinstance(c, Mapping):
            if "and" in c:
                out.extend(_constraints({"constraint": c["and"]}))
            else:
                out.append(c)
    return out


def _atoms(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(i.get("@value", i.get("@id"))) if isinstance(i, Mapping) else str(i) for i in items]


def _declared(document: Mapping[str, Any]) -> dict[str, str]:
    """The purpose and place a sandbox use declares: the first the policy names (a sandbox
    query declares no purpose of its own; the grant was given for this one)."""
    out: dict[str, str] = {}
    for permission in _permissions(document):
        for c in _constraints(permission):
            left, op = c.get("leftOperand"), c.get("operator")
            if op not in ("eq", "isA", "isAnyOf", "isPartOf"):
                continue
            key = {"purpose": "purpose", "spatial": "spatial", "industry": "industry"}.get(
                str(left)
            )
            if key and key not in out:
                atoms = _atoms(c.get("rightOperand"))
                if atoms:
                    out[key] = atoms[0]
    return out


def _permits_sandbox(document: Mapping[str, Any]) -> bool:
    """Whether some permission of the policy lets the sandbox channel through."""
    for permission in _permissions(document):
        channels = [
            c for c in _constraints(permission) if c.get("leftOperand") == "deliveryChannel"
        ]
        allowed = all(
            "sandbox" in _atoms(c.get("rightOperand"))
            for c in channels
            if c.get("operator") in ("eq", "isAnyOf", "isPartOf")
        )
        banned = any(
            "sandbox" in _atoms(c.get("rightOperand"))
            for c in channels
            if c.get("operator") in ("neq", "isNoneOf")
        )
        if allowed and not banned:
            return True
    return False


@dataclass(frozen=True)
class SandboxGrant:
    """A grant the sandbox computes under: a policy grant or an exchange contract."""

    id: str
    kind: str  # GRANT or CONTRACT
    number: str
    state: str
    holder_id: str
    grantee_id: str
    asset_id: str
    term_start: date
    term_end: date
    policy: Mapping[str, Any]
    profile: SandboxProfile | None
    terms: PolicyTerms | None = None  # from a dry-run decision (None: not decided)
    budget_spent_micro: int = 0
    refusal: tuple[Reason, ...] = ()  # why it cannot be used now (dry run)

    @property
    def table(self) -> TableSpec | None:
        return None if self.profile is None else profile_table(self.profile)

    def catalog(self) -> Catalog:
        """The granted table, columns outside the policy's ``df:fields`` forbidden."""
        table = self.table
        if table is None:
            return {}
        allowed = _policy_fields(self.policy)
        if allowed is not None:
            table = TableSpec(
                table.name,
                tuple(
                    c
                    if c.name in allowed or c.role is ColumnRole.FORBIDDEN
                    else ColumnSpec(c.name, c.type, ColumnRole.FORBIDDEN)
                    for c in table.columns
                ),
                large=table.large,
                unit_level=table.unit_level,
            )
            # The privacy unit stays the unit (it is what k counts), even when not allowed as a
            # field: it can never be output anyway.
            if not any(c.role is ColumnRole.PRIVACY_UNIT for c in table.columns):
                base = self.table
                assert base is not None
                table = TableSpec(
                    table.name,
                    tuple(
                        b if b.role is ColumnRole.PRIVACY_UNIT else c
                        for b, c in zip(base.columns, table.columns, strict=True)
                    ),
                    large=table.large,
                    unit_level=table.unit_level,
                )
        return {table.name.lower(): table}

    @property
    def k(self) -> int:
        return self.terms.k if self.terms else int(section("output")["default_k"])

    @property
    def epsilon_total(self) -> float | None:
        return self.terms.epsilon_total if self.terms else None

    @property
    def budget_left(self) -> float | None:
        total = self.epsilon_total
        if total is None:
            return None
        return max(dp_to_micro(total) - self.budget_spent_micro, 0) / MICRO

    def as_dict(self) -> dict[str, Any]:
        """The integrator's shape (``datafactor sandbox grants --json``)."""
        table = self.catalog()
        refusal = self._refusal_now()
        return {
            "id": self.id,
            "kind": self.kind,
            "number": self.number,
            "state": self.state,
            "holder_id": self.holder_id,
            "grantee_id": self.grantee_id,
            "asset_id": self.asset_id,
            "term_start": self.term_start.isoformat(),
            "term_end": self.term_end.isoformat(),
            "tables": [
                {"name": t.name, "columns": [c.as_dict() for c in t.columns]}
                for t in table.values()
            ],
            "k": self.k,
            "epsilon_total": self.epsilon_total,
            "budget_left": self.budget_left,
            "review": bool(self.terms and self.terms.review),
            "usable": not refusal and self.profile is not None,
            "reasons": [_reason_dict(r) for r in refusal],
        }

    def _refusal_now(self) -> tuple[Reason, ...]:
        """Why no query can run under the grant now: the policy's dry-run refusal, or a
        differential-privacy budget with nothing left (every query under it spends ε)."""
        if self.refusal or self.budget_left is None or self.budget_left > 0:
            return self.refusal
        try:
            dp.charge(None, default=1.0, cap=1.0, left_micro=0)
        except QueryRefused as spent:
            return tuple(spent.reasons)
        return ()


def dp_to_micro(epsilon: float) -> int:
    """ε in whole micro-ε (rounded to the nearest)."""
    return dp.to_micro(epsilon)


def _profile_of(session: Session, asset_id: str) -> SandboxProfile | None:
    return session.scalar(select(SandboxProfile).where(SandboxProfile.asset_id == asset_id))


def _spent(session: Session, ref: str, asset_id: str) -> int:
    spent = session.scalar(
        select(SandboxBudget.spent_micro).where(
            SandboxBudget.grant_ref == ref, SandboxBudget.asset_id == asset_id
        )
    )
    return int(spent or 0)


def _dry_terms(
    session: Session, principal: Principal, g: SandboxGrant, now: datetime | None
) -> tuple[PolicyTerms | None, tuple[Reason, ...]]:
    """The grant's output terms and, if it cannot be used now, why (a dry run: nothing
    counted, nothing audited)."""
    request: dict[str, Any] = {"action": "aggregate", "channel": "sandbox", **_declared(g.policy)}
    allowed = _policy_fields(g.policy)
    if allowed is not None:  # a policy with df:fields asks every use which fields it reads
        request["fields"] = sorted(allowed)
    if g.kind == GRANT:
        try:
            outcome = policy_grants.use_grant(
                session, principal, g.id, request, dry_run=True, now=now
            )
        except DomainError:
            return None, ()
        decision = outcome.decision
    else:
        decided = exchange.decide_sandbox_contract(
            session, g.id, declared=_declared(g.policy), fields=None, now=now or utcnow()
        )
        if decided.refusal or decided.decision is None:
            return None, tuple(Reason(r["rule"], r["en"], r["zh"]) for r in decided.refusal)
        decision = decided.decision
    if not decision.permitted:
        return None, tuple(decision.reasons)
    return _limits(decision), ()


def _from_policy_grant(session: Session, grant: Any) -> SandboxGrant:
    return SandboxGrant(
        id=str(grant.id),
        kind=GRANT,
        number=str(grant.number),
        state=str(grant.state),
        holder_id=str(grant.holder_id),
        grantee_id=str(grant.grantee_id),
        asset_id=str(grant.asset_id),
        term_start=grant.term_start,
        term_end=grant.term_end,
        policy=grant.policy,
        profile=_profile_of(session, str(grant.asset_id)),
        budget_spent_micro=_spent(session, str(grant.id), str(grant.asset_id)),
    )


def _from_contract(session: Session, c: exchange.SandboxContract) -> SandboxGrant:
    return SandboxGrant(
        id=c.id,
        kind=CONTRACT,
        number=c.number,
        state=c.state,
        holder_id=c.seller_id,
        grantee_id=c.buyer_id,
        asset_id=c.asset_id,
        term_start=c.term_start,
        term_end=c.term_end,
        policy=c.policy,
        profile=_profile_of(session, c.asset_id),
        budget_spent_micro=_spent(session, c.id, c.asset_id),
    )


def _with_terms(
    session: Session, principal: Principal, g: SandboxGrant, now: datetime | None
) -> SandboxGrant:
    terms, refusal = _dry_terms(session, principal, g, now)
    return SandboxGrant(
        **{
            **{f: getattr(g, f) for f in SandboxGrant.__dataclass_fields__},
            "terms": terms,
            "refusal": refusal,
        }
    )


def list_sandbox_grants(
    session: Session, principal: Principal, *, now: datetime | None = None, decide: bool = True
) -> list[SandboxGrant]:
    """The sandbox grants the principal's party holds as grantee: active policy grants whose
    policy permits the sandbox channel, and active exchange contracts delivered by sandbox.
    With ``decide`` each carries its k, ε and review from a dry-run decision (nothing counted)."""
    if not principal.can(P.SANDBOX_QUERY_READ):
        return []
    out: list[SandboxGrant] = []
    if principal.can(P.POLICY_GRANT_READ) or principal.can(P.POLICY_GRANT_READ_ALL):
        rows = policy_grants.list_grants(
            session, principal, state=policy_grants.GrantState.ACTIVE.value, role="grantee"
        )
        out.extend(
            _from_policy_grant(session, g)
            for g in rows
            if g.grantee_id == principal.party_id and _permits_sandbox(g.policy)
        )
    covered = {g.id for g in out}
    for c in exchange.sandbox_contracts(session, principal.party_id):
        if c.id not in covered and c.grant_id not in covered:
            out.append(_from_contract(session, c))
    if decide:
        out = [_with_terms(session, principal, g, now) for g in out]
    return out


def sandbox_grant(
    session: Session,
    principal: Principal,
    grant_id: str,
    *,
    now: datetime | None = None,
    decide: bool = True,
) -> SandboxGrant:
    """One sandbox grant the principal's party holds as grantee (any state: a query under an
    ended grant is refused with the policy's reason), else 404."""
    rule = rule_id("grant_active")
    found: SandboxGrant | None = None
    try:
        grant = policy_grants.get_grant(session, principal, grant_id)
    except DomainError:
        grant = None
    if grant is not None and grant.grantee_id == principal.party_id:
        found = _from_policy_grant(session, grant)
    else:
        contract = exchange.sandbox_contract(session, grant_id)
        if contract is not None and contract.buyer_id == principal.party_id:
            found = _from_contract(session, contract)
    if found is None:
        raise SandboxNotFound(MSG_NO_GRANT, rule=rule, grant=grant_id)
    return _with_terms(session, principal, found, now) if decide else found


# ================================================================================== queries


@dataclass
class QueryAnswer:
    """What the grantee is answered (``as_dict``: the integrator's shape)."""

    decision: str  # ALLOWED | REFUSED
    reasons: list[dict[str, str]]
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    epsilon_spent: float = 0.0
    id: str | None = None
    state: str | None = None
    k: int | None = None
    held: bool = False
    engine: str | None = None
    result_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": self.reasons,
            "columns": self.columns,
            "rows": self.rows,
            "epsilon_spent": self.epsilon_spent,
            "id": self.id,
            "state": self.state,
            "k": self.k,
            "held": self.held,
            "engine": self.engine,
            "result_hash": self.result_hash,
        }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def sql_hash(sql: str, salt: str | None) -> str:
    """SHA-256 over the canonical JSON (RFC 8785) of ``{"salt", "sql"}`` — the query text's
    commitment on the ledger (the salt, 128 random bits kept with the query, is shown with the
    text to whoever may read it); the bare hash of the text for a row without a salt."""
    if salt is None:
        return hashlib.sha256(sql.encode("utf-8")).hexdigest()
    return hashlib.sha256(ledger.canonical_json({"salt": salt, "sql": sql})).hexdigest()


def result_hash(columns: Sequence[str], rows: Sequence[Sequence[Any]], salt: str) -> str:
    """SHA-256 over the canonical JSON (RFC 8785) of ``{"columns", "rows", "salt"}``.

    The salt (128 random bits, kept with the result) makes the hash a commitment: the ledger is
    public, and a bare hash of a small result (one count, a few groups) is found by trying the
    candidates — a held or withheld result, or anyone's result, read off the public log. Those
    who may see the result also get the salt, and can check it against the ledger."""
    body = {"columns": list(columns), "rows": [list(r) for r in rows], "salt": salt}
    return hashlib.sha256(ledger.canonical_json(body)).hexdigest()


def _query_fields(plan: Plan, catalog: Catalog) -> list[str]:
    """The granted columns a plan reads (what the policy's ``df:fields`` is asked about)."""
    names: dict[str, None] = {}
    columns = {c.name.casefold(): c.name for t in catalog.values() for c in t.columns}
    for a in plan.aggregates:
        if a.column and a.column.casefold() in columns:
            names[columns[a.column.casefold()]] = None
    for key in plan.group_keys:
        if key.casefold() in columns:
            names[columns[key.casefold()]] = None
    return list(names)


class _Refused(Exception):
    def __init__(self, reasons: Sequence[Reason]) -> None:
        super().__init__("refused")
        self.reasons = list(reasons)


@dataclass
class _Checked:
    """A query checked and decided (dry run): what running it needs."""

    grant: SandboxGrant
    plan: Plan | None
    refusal: list[Reason]
    epsilon: float | None  # per-query ε asked (None: no DP)
    cost_micro: int
    fields: list[str]


def _check(
    session: Session,
    principal: Principal,
    grant_id: str,
    sql: str,
    epsilon: float | None,
    now: datetime | None,
) -> _Checked:
    """Check and dry-run decide a query; ``refusal`` lists why it may not run."""
    if not principal.can(P.SANDBOX_QUERY_RUN):
        raise SandboxForbidden(MSG_NOT_GRANTEE, rule=rule_id("grant_visible"))
    g = sandbox_grant(session, principal, grant_id, now=now)
    if g.profile is None:
        return _Checked(g, None, [_reason("grant_profile", *_PROFILE_REASON)], None, 0, [])
    if g.refusal:
        return _Checked(g, None, list(g.refusal), None, 0, [])
    if g.terms is None:
        reason = _reason(
            "grant_active",
            "The grant cannot be used now; check its state and term with the data holder.",
            "该授权当前不可使用；请与数据持有方核对授权的状态和期限。",
        )
        return _Checked(g, None, [reason], None, 0, [])
    dp_on = g.terms.epsilon_total is not None
    catalog = g.catalog()
    try:
        plan = checker.check_query(sql, catalog, dp=dp_on)
    except QueryRefused as refused:
        return _Checked(g, None, list(refused.reasons), None, 0, [])
    fields = _query_fields(plan, catalog)
    if not dp_on:
        if epsilon is not None:  # asked for noise the grant does not add: say so, run nothing
            reason = _reason(
                "budget_query_cap",
                "This grant answers with a minimum group size only, without differential "
                "privacy, so a query spends no privacy budget; run it again without ε.",
                "该授权仅以最小分组规模保护结果，不使用差分隐私，查询不消耗隐私预算；"
                "请不指定 ε 重新运行。",
            )
            return _Checked(g, plan, [reason], None, 0, fields)
        return _Checked(g, plan, [], None, 0, fields)
    total = dp_to_micro(g.terms.epsilon_total or 0.0)
    budget = section("budget")
    try:
        cost = dp.charge(
            epsilon,
            default=float(budget["default_epsilon_per_query"]),
            cap=float(budget["max_epsilon_per_query"]),
            left_micro=max(total - g.budget_spent_micro, 0),
        )
    except QueryRefused as refused:
        return _Checked(g, plan, list(refused.reasons), None, 0, fields)
    per_query = dp.from_micro(cost)
    return _Checked(g, plan, [], per_query, cost, fields)


def preview_query(
    session: Session,
    principal: Principal,
    grant_id: str,
    sql: str,
    *,
    epsilon: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The cost preview: whether the query would run, why not, the ε it would spend and its
    output columns. Nothing is counted, charged or recorded."""
    checked = _check(session, principal, grant_id, sql, epsilon, now)
    plan = checked.plan
    allowed = not checked.refusal
    return {
        "decision": ALLOWED if allowed else REFUSED,
        "reasons": [_reason_dict(r) for r in checked.refusal],
        "columns": list(plan.columns) if plan is not None and allowed else [],
        "epsilon": checked.cost_micro / MICRO if allowed else 0.0,
        "epsilon_left": checked.grant.budget_left,
        "k": checked.grant.k,
        "review": bool(checked.grant.terms and checked.grant.terms.review),
    }


def _record(
    session: Session,
    principal: Principal,
    g: SandboxGrant,
    sql: str,
    *,
    state: QueryState,
    reasons: Sequence[Reason],
    rules: Iterable[str] = (),
    epsilon_micro: int = 0,
    refunded: bool = False,
    k: int | None = None,
    engine: str | None = None,
    columns: Sequence[str] = (),
    rows: Sequence[Sequence[Any]] = (),
    duration_ms: int | None = None,
    row: SandboxQuery | None = None,
) -> SandboxQuery:
    """Write (or finish) the query's row, its audit events and its ledger entry."""
    ran = state in (QueryState.RELEASED, QueryState.HELD)
    salt = secrets.token_hex(16)
    digest = result_hash(columns, rows, salt) if ran else None
    rule_ids = list(dict.fromkeys([*(r.rule for r in reasons), *rules, rule_id("record")]))
    if row is None:
        row = SandboxQuery(
            grant_ref=g.id,
            grant_kind=g.kind,
            grantee_id=g.grantee_id,
            holder_id=g.holder_id,
            asset_ids=[g.asset_id],
            user_id=principal.user_id or None,
            username=principal.username,
            sql=sql,
            sql_salt=secrets.token_hex(16),
        )
        session.add(row)
    now = utcnow()
    row.state = state.value
    row.reasons = [_reason_dict(r) for r in reasons]
    row.rules = rule_ids
    row.epsilon_micro = epsilon_micro
    row.refunded = refunded
    row.k = k
    row.engine = engine
    row.result_hash = digest
    row.result = (
        {"columns": list(columns), "rows": [list(r) for r in rows], "salt": salt} if ran else None
    )
    row.row_count = len(rows) if ran else None
    row.duration_ms = duration_ms
    row.updated_at = now
    session.flush()
    decision = ALLOWED if ran else REFUSED
    sql_digest = sql_hash(row.sql, row.sql_salt)
    payload = {
        "query": row.id,
        "grant": g.id,
        "grant_kind": g.kind,
        "asset": g.asset_id,
        "grantee": g.grantee_id,
        "holder": g.holder_id,
        "sql_sha256": sql_digest,
        "decision": decision,
        "state": state.value,
        "epsilon_micro": str(epsilon_micro),
        "refunded": refunded,
        "result_sha256": digest,
        "rules": rule_ids,
    }
    row.ledger_index = ledger.append_event(session, LEDGER_KIND, payload)
    # The audit trail carries what the issue asks of every record — text, decision, ε, result
    # hash — so that it answers on its own; the SQL is cut at _AUDIT_SQL (its hash is whole).
    text = sql if len(sql) <= _AUDIT_SQL else sql[:_AUDIT_SQL] + "…"
    summary = (
        f"Sandbox query under {g.kind} {g.number}: {state.value}"
        f" (ε {epsilon_micro / MICRO:g}{', refunded' if refunded else ''});"
        f" result sha256 {digest or '—'}; SQL sha256 {sql_digest}: {text}"
    )
    for party in dict.fromkeys((g.grantee_id, g.holder_id)):
        audit.record(
            session,
            actor=principal,
            action="sandbox:query",
            object_type="sandbox_query",
            object_id=row.id,
            summary=summary,
            party_id=party,
            reasons=rule_ids,
        )
    return row


def _refused_answer(row: SandboxQuery, reasons: Sequence[Reason], k: int | None) -> QueryAnswer:
    return QueryAnswer(REFUSED, [_reason_dict(r) for r in reasons], id=row.id, state=row.state, k=k)


def _ensure_budget(db: Database, g: SandboxGrant, total_micro: int) -> None:
    """Open the grant's budget account if it has none, in a transaction of its own: two first
    queries racing both try, the loser's unique-key conflict is ignored, and both then charge
    the one row under its lock."""
    with db.read() as session:
        if _spent_row(session, g) is not None:
            return
    try:
        with db.write() as session:
            if _spent_row(session, g) is None:
                session.add(
                    SandboxBudget(
                        grant_ref=g.id,
                        grant_kind=g.kind,
                        grantee_id=g.grantee_id,
                        holder_id=g.holder_id,
                        asset_id=g.asset_id,
                        total_micro=total_micro,
                        spent_micro=0,
                    )
                )
    except IntegrityError:
        pass


def _spent_row(session: Session, g: SandboxGrant) -> str | None:
    return session.scalar(
        select(SandboxBudget.id).where(
            SandboxBudget.grant_ref == g.id, SandboxBudget.asset_id == g.asset_id
        )
    )


def _charge(session: Session, g: SandboxGrant, total_micro: int, cost_micro: int) -> None:
    """Take ``cost_micro`` from the grant's budget under its row lock (``QueryRefused`` with
    SBX-BUD-TOTAL when it no longer fits: another query spent it meanwhile)."""
    budget = session.scalar(
        select(SandboxBudget)
        .where(SandboxBudget.grant_ref == g.id, SandboxBudget.asset_id == g.asset_id)
        .with_for_update()
    )
    if budget is None:
        budget = SandboxBudget(
            grant_ref=g.id,
            grant_kind=g.kind,
            grantee_id=g.grantee_id,
            holder_id=g.holder_id,
            asset_id=g.asset_id,
            total_micro=total_micro,
            spent_micro=0,
        )
        session.add(budget)
    budget.total_micro = total_micro  # the policy's ε as it stands at this use
    left = max(budget.total_micro - (budget.spent_micro or 0), 0)
    cap = float(section("budget")["max_epsilon_per_query"])
    dp.charge(dp.from_micro(cost_micro), default=cap, cap=cap, left_micro=left)
    budget.spent_micro = (budget.spent_micro or 0) + cost_micro
    budget.updated_at = utcnow()
    session.flush()


def _refund(session: Session, g: SandboxGrant, cost_micro: int) -> None:
    budget = session.scalar(
        select(SandboxBudget)
        .where(SandboxBudget.grant_ref == g.id, SandboxBudget.asset_id == g.asset_id)
        .with_for_update()
    )
    if budget is not None:
        budget.spent_micro = max(budget.spent_micro - cost_micro, 0)
        budget.updated_at = utcnow()
        session.flush()


def _decide_use(
    session: Session,
    principal: Principal,
    g: SandboxGrant,
    fields: list[str],
    now: datetime | None,
) -> tuple[bool, tuple[Reason, ...], tuple[str, ...]]:
    """The decision that counts: the grant's policy (a use, counted and audited) or the
    contract's."""
    declared = _declared(g.policy)
    if g.kind == GRANT:
        request = {"action": "aggregate", "channel": "sandbox", "fields": fields, **declared}
        outcome = policy_grants.use_grant(session, principal, g.id, request, now=now)
        d = outcome.decision
        return d.permitted, tuple(d.reasons), tuple(d.rules)
    decided = exchange.decide_sandbox_contract(
        session, g.id, declared=declared, fields=fields, now=now or utcnow()
    )
    if decided.refusal or decided.decision is None:
        reasons = tuple(Reason(r["rule"], r["en"], r["zh"]) for r in decided.refusal)
        return False, reasons, tuple(r.rule for r in reasons)
    d = decided.decision
    return d.permitted, tuple(d.reasons), tuple(d.rules)


def worker_limits() -> Limits:
    return worker.default_limits()


def _execute(
    db: Database, settings: Settings, g: SandboxGrant, plan: Plan, epsilon: float | None
) -> tuple[Released, str]:
    """Run the plan in the worker (no database transaction held while it runs)."""
    assert g.profile is not None
    table = profile_table(g.profile)
    # The grant's catalog, not the profile: a column outside the policy's df:fields is not in
    # the worker's file either (SBX-EXE-ISOLATE: the worker reads only the granted data).
    granted = next(iter(g.catalog().values()), table)
    readable = _readable(granted.columns)
    with db.read() as session:
        if plan.ranked:
            ranked = sources.ranked(
                session,
                settings,
                g.profile.version_id,
                columns=readable,
                privacy_unit=table.privacy_unit,
            )
            path, names = ranked.path, ranked.columns
        else:
            made = sources.materialise(session, settings, g.profile.version_id, columns=readable)
            path, names = made.path, readable
    engine = Engine.SPARK if table.large else Engine.DUCKDB
    staged = worker.run_staged(
        checker.with_min_units(plan.staged_sql, g.k),
        [worker.TableSource(table.name, str(path), names)],
        limits=worker_limits(),
        engine=engine,
        spark_master=settings.spark_master,
        spark_driver_memory=settings.spark_driver_memory,
        spark_remote=settings.spark_remote or None,
    )
    released = dp.release(plan, staged, k=g.k, epsilon=epsilon)
    return released, engine.value


def run_query(
    db: Database,
    settings: Settings,
    principal: Principal,
    grant_id: str,
    sql: str,
    *,
    epsilon: float | None = None,
    now: datetime | None = None,
) -> QueryAnswer:
    """Run a query under a sandbox grant (see the module docstring). A refusal is an answer
    (``decision: refused``, its reasons with rule ids — an ε out of range or over the budget
    left too), recorded, with nothing charged or counted; an unknown grant is 404 and nothing
    is recorded for it."""
    started = time.monotonic()
    with db.read() as session:
        checked = _check(session, principal, grant_id, sql, epsilon, now)
    g = checked.grant
    if checked.refusal or checked.plan is None:
        with db.write() as session:
            row = _record(
                session, principal, g, sql, state=QueryState.REFUSED, reasons=checked.refusal, k=g.k
            )
            return _refused_answer(row, checked.refusal, g.k)
    plan = checked.plan
    total = dp_to_micro(g.epsilon_total) if g.epsilon_total is not None else None
    # 1. Charge and decide (counted) in one committed transaction, before anything runs; a
    #    refusal rolls both back (nothing spent) and is recorded on its own.
    if total is not None:
        _ensure_budget(db, g, total)
    try:
        with db.write() as session:
            if total is not None:
                try:
                    _charge(session, g, total, checked.cost_micro)
                except QueryRefused as refused:
                    raise _Refused(refused.reasons) from None
            permitted, reasons, _rules = _decide_use(session, principal, g, checked.fields, now)
            if not permitted:
                raise _Refused(
                    list(reasons)
                    or [
                        _reason(
                            "grant_policy",
                            "The grant's policy does not allow this use.",
                            "授权策略不允许本次使用。",
                        )
                    ]
                )
    except _Refused as refused:
        with db.write() as session:
            row = _record(
                session,
                principal,
                g,
                sql,
                state=QueryState.REFUSED,
                reasons=refused.reasons,
                rules=[rule_id("grant_policy")],
                k=g.k,
            )
            return _refused_answer(row, refused.reasons, g.k)
    cost = checked.cost_micro
    # 2. Run outside any transaction.
    try:
        released, engine = _execute(db, settings, g, plan, checked.epsilon)
    except QueryRefused as refused:
        failure: list[Reason] = list(refused.reasons)
    except Exception:
        failure = [
            _reason(
                "exec_errors",
                "The query failed while running and nothing was released; simplify it or try "
                "again later.",
                "查询执行失败，未输出任何结果；请简化查询或稍后重试。",
            )
        ]
    else:
        failure = []
    duration = int((time.monotonic() - started) * 1000)
    with db.write() as session:
        if failure:
            failed_reasons = list(failure)
            if cost > 0:  # a grant without differential privacy charged nothing to refund
                _refund(session, g, cost)
                failed_reasons.append(
                    _reason(
                        "budget_refund",
                        f"The ε {cost / MICRO:g} charged for it was refunded.",
                        f"已退还为其预扣的 ε {cost / MICRO:g}。",
                    )
                )
            failed = _record(
                session,
                principal,
                g,
                sql,
                state=QueryState.FAILED,
                reasons=failed_reasons,
                epsilon_micro=cost,
                refunded=cost > 0,
                k=g.k,
                duration_ms=duration,
            )
            return QueryAnswer(
                REFUSED,
                [_reason_dict(r) for r in failed_reasons],
                id=failed.id,
                state=QueryState.FAILED.value,
                k=g.k,
            )
        held = bool(g.terms and g.terms.review)
        columns = list(released.columns)
        rows = [[_jsonable(v) for v in r] for r in released.rows]
        notes = list(released.notes)
        if held:
            notes.append(
                _reason(
                    "out_review",
                    "The result is held until the data holder reviews it; you will be notified "
                    "when it is released.",
                    "结果在数据持有方审核放行前暂存；放行后将通知您。",
                )
            )
        state = QueryState.HELD if held else QueryState.RELEASED
        rec = _record(
            session,
            principal,
            g,
            sql,
            state=state,
            reasons=notes,
            rules=[rule_id("grant_policy")],
            epsilon_micro=cost,
            k=g.k,
            engine=engine,
            columns=columns,
            rows=rows,
            duration_ms=duration,
        )
        query_id = rec.id
        if g.kind == CONTRACT:  # a computation under a contract is one of its deliveries
            exchange.record_sandbox_delivery(
                session,
                g.id,
                rows=len(rows),
                result_hash=rec.result_hash,
                fields=checked.fields,
                actor_user_id=principal.user_id or None,
                now=now or utcnow(),
            )
        if held:
            inbox.notify(
                session,
                [g.holder_id],
                kind=INBOX_KIND,
                message=N_("A sandbox query under {number} waits for your review."),
                params={"number": g.number},
                link=f"/sandbox/queries/{query_id}",
            )
        return QueryAnswer(
            ALLOWED,
            [_reason_dict(r) for r in notes],
            columns=columns if not held else [],
            rows=rows if not held else [],
            epsilon_spent=cost / MICRO,
            id=query_id,
            state=state.value,
            k=g.k,
            held=held,
            engine=engine,
            result_hash=rec.result_hash,
        )


# ============================================================================ reading, review


def _visible(principal: Principal, row: SandboxQuery) -> bool:
    if principal.can(P.SANDBOX_QUERY_READ_ALL):
        return True
    return principal.can(P.SANDBOX_QUERY_READ) and principal.party_id in (
        row.grantee_id,
        row.holder_id,
    )


def get_query(session: Session, principal: Principal, query_id: str) -> SandboxQuery:
    """A query its grantee's party, its holder's party or a regulator may see; else 404."""
    row = session.get(SandboxQuery, query_id)
    if row is None or not _visible(principal, row):
        raise SandboxNotFound(MSG_NO_QUERY, rule=rule_id("grant_visible"))
    return row


def list_queries(
    session: Session,
    principal: Principal,
    *,
    grant_id: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SandboxQuery], int]:
    """The queries the principal may see (newest first) and how many there are."""
    stmt = select(SandboxQuery)
    if not principal.can(P.SANDBOX_QUERY_READ_ALL):
        if not principal.can(P.SANDBOX_QUERY_READ):
            return [], 0
        stmt = stmt.where(
            or_(
                SandboxQuery.grantee_id == principal.party_id,
                SandboxQuery.holder_id == principal.party_id,
            )
        )
    if grant_id:
        stmt = stmt.where(SandboxQuery.grant_ref == grant_id)
    if state:
        stmt = stmt.where(SandboxQuery.state == state)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = session.scalars(
        stmt.order_by(SandboxQuery.created_at.desc(), SandboxQuery.id).limit(limit).offset(offset)
    )
    return list(rows), total


def query_dict(row: SandboxQuery, viewer: Principal) -> dict[str, Any]:
    """A recorded query as the viewer may see it: the result only once released (the holder
    and regulators see a held one too)."""
    held = row.state == QueryState.HELD.value
    ran = row.state in (QueryState.RELEASED.value, QueryState.HELD.value, "withheld")
    shows = row.result is not None and (
        row.state == QueryState.RELEASED.value
        or (held and viewer.party_id != row.grantee_id)
        or (row.state == QueryState.WITHHELD.value and viewer.party_id != row.grantee_id)
    )
    result = row.result or {}
    return {
        "id": row.id,
        "grant_id": row.grant_ref,
        "grant_kind": row.grant_kind,
        "grantee_id": row.grantee_id,
        "holder_id": row.holder_id,
        "asset_ids": list(row.asset_ids or []),
        "username": row.username,
        "sql": row.sql,
        "sql_sha256": sql_hash(row.sql, row.sql_salt),
        "sql_salt": row.sql_salt,
        "decision": ALLOWED if ran else REFUSED,
        "state": row.state,
        "reasons": list(row.reasons or []),
        "rules": list(row.rules or []),
        "epsilon_spent": 0.0 if row.refunded else row.epsilon_micro / MICRO,
        "refunded": bool(row.refunded),
        "k": row.k,
        "engine": row.engine,
        "held": held,
        "result_hash": row.result_hash,
        "columns": list(result.get("columns", [])) if shows else [],
        "rows": list(result.get("rows", [])) if shows else [],
        "result_salt": result.get("salt") if shows else None,
        # how many groups a held or withheld result has is part of it
        "row_count": row.row_count if shows or viewer.party_id != row.grantee_id else None,
        "duration_ms": row.duration_ms,
        "ledger_index": row.ledger_index,
        "review_note": row.review_note,
        "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
        "created_at": row.created_at.isoformat(),
    }


def review_query(
    session: Session, principal: Principal, query_id: str, *, release: bool, note: str = ""
) -> SandboxQuery:
    """The holder's administrator releases or withholds a held result (audited; the grantee is
    told through the inbox). The ε stays spent either way: the computation happened."""
    rule = rule_id("out_review")
    row = session.scalar(select(SandboxQuery).where(SandboxQuery.id == query_id).with_for_update())
    if row is None or not _visible(principal, row):
        raise SandboxNotFound(MSG_NO_QUERY, rule=rule)
    if row.holder_id != principal.party_id or not principal.can(P.SANDBOX_QUERY_REVIEW):
        raise SandboxForbidden(MSG_NOT_REVIEWER, rule=rule)
    if row.state != QueryState.HELD.value:
        raise SandboxStateConflict(MSG_NOT_HELD, rule=rule, query=row.id, state=row.state)
    now = utcnow()
    row.state = (QueryState.RELEASED if release else QueryState.WITHHELD).value
    row.reviewed_by = principal.user_id or None
    row.review_note = note.strip()
    row.reviewed_at = now
    row.updated_at = now
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="sandbox:query:review",
        object_type="sandbox_query",
        object_id=row.id,
        summary=f"Sandbox query {row.id} {row.state} by the data holder",
        party_id=row.holder_id,
        reasons=[rule],
    )
    ledger.append_event(
        session,
        "sandbox.query.review",
        {"query": row.id, "state": row.state, "result_sha256": row.result_hash, "rules": [rule]},
    )
    inbox.notify(
        session,
        [row.grantee_id],
        kind=INBOX_KIND,
        message=MSG_REVIEW_RELEASED if release else MSG_REVIEW_WITHHELD,
        params={"query": row.id, "note": row.review_note or "—"},
        link=f"/sandbox/queries/{row.id}",
    )
    return row


# ============================================================================ pilot offers


@dataclass(frozen=True)
class OfferOutcome:
    grant_id: str
    asset_id: str
    dataset_id: str
    version_id: str
    table: str
    holder_id: str
    grantee_id: str
    state: str
    k: int
    epsilon: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id,
            "asset_id": self.asset_id,
            "dataset_id": self.dataset_id,
            "version_id": self.version_id,
            "table": self.table,
            "holder_id": self.holder_id,
            "grantee_id": self.grantee_id,
            "state": self.state,
            "k": self.k,
            "epsilon": self.epsilon,
        }


def parse_columns(text: str) -> tuple[ColumnDraft, ...]:
    """``COL:ROLE[:LOWER:UPPER],…`` (``--columns``): bounds only for measures."""
    out: list[ColumnDraft] = []
    for part in text.replace("，", ",").split(","):
        if not part.strip():
            continue
        bits = [b.strip() for b in part.split(":")]
        if len(bits) not in (2, 4) or not bits[0]:
            raise SandboxInvalid(
                N_(
                    "{part}: write each column as COL:ROLE, or COL:measure:LOWER:UPPER (rule "
                    "{rule})."
                ),
                rule=_profile_rule(),
                field="columns",
                part=part.strip(),
            )
        lo = hi = None
        if len(bits) == 4:
            try:
                lo, hi = float(bits[2]), float(bits[3])
            except ValueError:
                raise SandboxInvalid(
                    MSG_MEASURE_BOUNDS,
                    rule=_profile_rule(),
                    field="columns",
                    column=bits[0],
                    lower=bits[2],
                    upper=bits[3],
                ) from None
        out.append(ColumnDraft(bits[0], bits[1], lo, hi))
    return tuple(out)


def offer_path_check(path: Path) -> str:
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in (".csv", ".parquet", ".pq", ".tsv"):
        raise SandboxInvalid(MSG_FILE, rule=_profile_rule(), field="file", path=str(path))
    return suffix


_OPERATOR: Final = Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset(
        {
            P.IDENTITY_PARTY_READ,
            P.IDENTITY_PARTY_READ_ALL,
            P.IDENTITY_USER_READ,
            P.IDENTITY_USER_READ_ALL,
        }
    ),
    via="cli",
)


def resolve_party(session: Session, text: str) -> tuple[str, str]:
    """A party named by its id, its unified social credit code or its exact name (or a unique
    part of its name): (id, name)."""
    from datafactor import identity

    rule = rule_id("grant_active")
    wanted = text.strip()
    try:
        party = identity.get_party(session, _OPERATOR, wanted)
        return str(party.id), str(party.name)
    except DomainError:
        pass
    rows, _ = identity.list_parties(
        session, _OPERATOR, identity.PartyQuery(q=wanted), limit=50, offset=0
    )
    exact = [p for p in rows if wanted in (p.code, p.name, p.name_en)]
    found = exact or (rows if len(rows) == 1 else [])
    if len(found) != 1:
        raise SandboxNotFound(MSG_PARTY, rule=rule, party=wanted)
    return str(found[0].id), str(found[0].name)


def party_admin(session: Session, party_id: str, *, can: Permission | None = None) -> Principal:
    """An active administrator of the party (optionally one whose login can ``can``)."""
    from datafactor import identity

    users, _ = identity.list_users(session, _OPERATOR, party_id=party_id, limit=500, offset=0)
    for user in users:
        if user.is_active and "admin" in (user.roles or []):
            principal = identity.principal_for_username(session, user.username)
            if can is None or principal.can(can):
                return principal
    raise SandboxNotFound(MSG_NO_ADMIN, rule=rule_id("grant_active"), party=party_id)


def find_registrar(session: Session, username: str | None) -> Principal:
    """The registrar user the pilot tool acts as: the one named, else the first user of an
    exchange operator who may review registry applications."""
    from datafactor import identity

    if username:
        return identity.principal_for_username(session, username)
    parties, _ = identity.list_parties(
        session, _OPERATOR, identity.PartyQuery(kind="exchange_operator"), limit=50, offset=0
    )
    for party in parties:
        users, _ = identity.list_users(session, _OPERATOR, party_id=party.id, limit=500, offset=0)
        for user in users:
            if user.is_active:
                who = identity.principal_for_username(session, user.username)
                if who.can(P.REGISTRY_APPLICATION_REVIEW):
                    return who
    raise SandboxNotFound(MSG_NO_ADMIN, rule=rule_id("grant_active"), party="registrar")


def _certify(
    db: Database, registrar: Principal, application_id: str, issuer: Any, on: date
) -> date:
    """Take a registry application through the registrar's steps to its certificate: the
    substantive review approved (to its public notice where the type has one), the notice closed
    on the working day after it ends — the registry's own calendar and checks. The day it was
    certified."""
    day = on
    for _ in range(6):
        with db.read() as session:
            row = registry.get_application(session, registrar, application_id)
            state, ends = row.state, row.notice_ends
        if state == "certified":
            return day
        with db.write() as session:
            if state in ("formal_review", "substantive_review"):
                try:
                    registry.act(
                        session,
                        registrar,
                        application_id,
                        registry.Action.APPROVE_TO_NOTICE,
                        issuer=issuer,
                        today=day,
                    )
                except DomainError:
                    registry.act(
                        session,
                        registrar,
                        application_id,
                        registry.Action.APPROVE,
                        issuer=issuer,
                        today=day,
                    )
            elif state == "public_notice" and ends is not None:
                day = registry.add_working_days(ends, 1)
                registry.act(
                    session,
                    registrar,
                    application_id,
                    registry.Action.CLOSE_NOTICE,
                    issuer=issuer,
                    today=day,
                )
            else:
                break
    raise SandboxStateConflict(
        N_(
            "The registry application {application} stopped at {state}: see it in the registry "
            "console (rule {rule})."
        ),
        rule=rule_id("grant_active"),
        application=application_id,
        state=state,
    )


def offer_file(
    db: Database,
    settings: Settings,
    path: Path,
    *,
    table: str,
    holder: str,
    grantee: str,
    privacy_unit: str,
    columns: Sequence[ColumnDraft],
    k: int,
    epsilon: float | None = None,
    registrar: str | None = None,
    review: bool = False,
    term_days: int = 365,
    today: date | None = None,
) -> OfferOutcome:
    """The pilot's offer: ``path`` (CSV or Parquet) becomes the holder's data set (uploaded and
    scanned like any upload), a registered asset with its holding right certified, a sandbox
    profile (``privacy_unit`` and ``columns``; the rest forbidden), and a direct grant to the
    grantee for sandbox use only under a policy from the editor (k → ``df:minGroupSize``, ε →
    ``df:epsilon``, no download, no re-identification; with ``review`` a ``df:outputReview``
    duty: each result held for the holder's release), its licence certified — every step
    through the registry's and the policy's own services, as the holder's administrator and
    the registrar. The registrar closes each public notice on the working day after it ends (the
    registry's calendar), so the grant is active when the command returns."""
    from datafactor import discovery
    from datafactor.policy.editor import EditorValues, build_document

    suffix = offer_path_check(path)
    if k < 1:
        raise SandboxInvalid(MSG_K, rule=rule_id("out_k"), field="k")
    on = today or _today_cn()
    issuer = registry.issuer_for(settings)
    with db.read() as session:
        holder_id, holder_name = resolve_party(session, holder)
        grantee_id, _ = resolve_party(session, grantee)
        owner = party_admin(session, holder_id, can=P.SANDBOX_PROFILE_MANAGE)
        clerk = find_registrar(session, registrar)
    drafts = [c for c in columns if c.name != privacy_unit]
    drafts.append(ColumnDraft(privacy_unit, ColumnRole.PRIVACY_UNIT.value))
    store = dataplane.blob_store(settings)
    with db.write() as session:
        dataset = dataplane.create_dataset(
            session,
            owner,
            dataplane.DatasetDraft(name=f"{table}（沙箱）"[:64], domain="other"),
        )
        dataset_id = str(dataset.id)
    with path.open("rb") as handle:
        blob = store.put_stream(handle, max_bytes=settings.upload_max_bytes)
    with db.write() as session:
        version = dataplane.add_file_version(
            session, owner, dataset_id, blob=blob, filename=f"{table}{suffix}"
        )
        version_id = str(version.id)
        discovery.request_scan(session, owner, version_id, "sample")
    discovery.run_pending(db, settings, store)
    with db.read() as session:
        names = [n for n, _ in version_columns(session, settings, version_id).columns]
    scope = {"purposes": None, "fields": None, "regions": None, "delivery_modes": ["sandbox"]}
    with db.write() as session:
        asset = registry.create_asset(
            session,
            owner,
            registry.AssetDraft(
                kind=registry.AssetKind.RESOURCE,
                name=f"{table}（沙箱数据）",
                name_en=f"{table} (sandbox data)",
                data_class=registry.DataClass.ENTERPRISE,
                description=f"{holder_name} 以沙箱方式提供的数据（{path.name}）",
                domain="other",
                source_statement="数据持有方自行提供（试点工具登记）",
                collection_method="数据持有方提供",
                update_frequency="irregular",
                coverage=path.name,
                region="450000",
                volume=f"{len(names)} 列",
                delivery_mode="sandbox",
                field_schema=tuple({"name": n} for n in names),
                version_id=version_id,
            ),
        )
        asset_id, fingerprint = str(asset.id), asset.fingerprint
    with db.write() as session:
        application = registry.submit_application(
            session,
            owner,
            registry.ApplicationDraft(
                type=registry.RegistrationType.INITIAL,
                asset_id=asset_id,
                scope=scope,
                term_start=on,
                term_end=None,
                fingerprint=fingerprint,
            ),
            issuer=issuer,
            today=on,
        )
        application_id = str(application.id)
    _certify(db, clerk, application_id, issuer, on)
    with db.write() as session:
        declare_profile(
            session,
            owner,
            ProfileDraft(asset_id=asset_id, table_name=table, columns=tuple(drafts)),
            settings=settings,
        )
    end = on.replace(year=on.year + 1) if term_days == 365 else on + _days(term_days)
    values = EditorValues(
        channels=["sandbox"],
        term_end=end,
        min_group_size=k,
        epsilon=None if epsilon is None else Decimal(str(epsilon)),
        prohibit_download=True,
        prohibit_reidentification=True,
    )
    with db.write() as session:
        grant = policy_grants.offer_grant(
            session,
            owner,
            policy_grants.GrantDraft(
                asset_id=asset_id,
                grantee_id=grantee_id,
                policy=_with_review(build_document(values)) if review else build_document(values),
                term_start=on,
                term_end=end,
                purpose_note="沙箱内聚合计算（可用不可见）",
            ),
            issuer=issuer,
            today=on,
        )
        grant_id, licence = str(grant.id), grant.licence_application_id
    if licence is not None:
        _certify(db, clerk, str(licence), issuer, on)
    with db.read() as session:
        state = policy_grants.get_grant(session, owner, grant_id).state
    return OfferOutcome(
        grant_id, asset_id, dataset_id, version_id, table, holder_id, grantee_id, state, k, epsilon
    )


def _with_review(document: dict[str, Any]) -> dict[str, Any]:
    """The editor's policy with an output-review duty on its permission (the editor's form has
    no such box; the ``sandbox-aggregates`` template carries the same duty)."""
    for permission in document.get("permission", []):
        permission.setdefault("duty", []).append({"action": "df:outputReview"})
    return document


def _today_cn() -> date:
    from datafactor.db import today_cn

    return today_cn()


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)
