"""Delivery (交付) of a contract's data: download tokens, the API pull, the policy decision at
every delivery, the delivery log, and tracing a leaked copy (docs/exchange.md, "Delivery").

What is delivered is the listed asset's current data (the registry asset's version in the data
plane), restricted to what the contract's policy permits at that moment: every attempt asks the
policy engine (``datafactor.policy``) with the channel's action (a download ``reproduce``s, an
API pull ``read``s — rules file), the channel, the purpose (and place, industry) the buyer
declared when it took the token, the buyer as assignee, the time, the deliveries so far and the
fields. Fields the policy forbids are left out; a refusal is recorded with its reasons and rule
ids and answered 403 or 409. Nothing is delivered unless the contract is active and within its
term, through a channel it names, to a user of its buyer.

* **Download**: the buyer's user takes a short-lived, counted token (``issue_token``; only its
  SHA-256 is stored, the secret is shown once). ``begin_download`` decides and counts a use
  under the token's row lock and records the attempt; the entry point then reads the data twice
  to draw the buyer fingerprint (``plan_fingerprint``; stored before a byte leaves,
  ``store_fingerprint``), streams it (``encode``: CSV with the visible mark as its first line,
  or Parquet with the mark in its metadata) and records rows, bytes and the SHA-256 of what was
  sent (``finish_delivery``; the first delivery starts the contract's acceptance period).
* **API pull**: a token bound to a contract whose channels include ``api`` (``Authorization:
  Bearer``, not a user login). ``begin_pull`` rate-limits per token (calls per minute; a window
  counted from the recorded calls under the token's lock, so every server process agrees),
  decides and records the call; the page is read outside the transaction (``read_page``) and
  the call finished like a download. A metered contract is charged per allowed pull: the
  settlement of contracts counts ``ExchangeDelivery`` rows of the contract with ``channel =
  'api'`` and ``decision = 'allowed'`` (``allowed_calls``).
* **Trace**: ``trace`` reads a file, matches it against every fingerprinted delivery and names
  the buyer only on strong evidence (``fingerprint.verdict``).

The decision of each attempt is a value (``Refusal`` or an allowed row), so a refusal is
committed with its record before the entry point answers it. Service functions get an open
Session and never commit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

import pyarrow as pa
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from datafactor import audit, context, dataplane, inbox, ledger, registry
from datafactor.db import CHINA, utcnow
from datafactor.errors import N_, InvalidInput, Unauthenticated
from datafactor.exchange import contracts
from datafactor.exchange import fingerprint as fp
from datafactor.exchange.domain import Channel, ContractState, PriceModel
from datafactor.exchange.errors import (
    ExchangeError,
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.models import ExchangeContract, ExchangeDelivery, ExchangeDeliveryToken
from datafactor.exchange.rulebook import exchange_rules
from datafactor.permissions import Permission, Principal
from datafactor.policy import (
    CompiledPolicy,
    Decision,
    PolicyError,
    Reason,
    compile_policy,
    parse_policy,
    parse_request,
)

P = Permission

DOWNLOAD_PREFIX: Final = "dfx_dl_"
PULL_PREFIX: Final = "dfx_api_"
ALLOWED: Final = "allowed"
REFUSED: Final = "refused"
FAILED: Final = "failed"  # allowed, but the data could not be read: nothing was sent
KIND: Final = "exchange.delivery"  # inbox kind
CHUNK: Final = 64 * 1024
TRACE_PAGE: Final = 1000
DECLARED_KEYS: Final = ("purpose", "spatial", "industry")
_CODE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

MSG_NOT_FOUND: Final = N_("No such delivery or token (rule {rule}).")
MSG_NO_LINK: Final = N_(
    "This download link is not valid: it may be mistyped, or meant for another channel. Take a "
    "new one on the contract's page (rule {rule})."
)
MSG_NOT_RECEIVER: Final = N_(
    "Only a staff member or administrator of the buyer of contract {number} can receive its "
    "data (rule {rule})."
)
MSG_NOT_ACTIVE: Final = N_(
    "Contract {number} is {state}: data is delivered only while a contract is in performance "
    "(rule {rule})."
)
MSG_OUTSIDE_TERM: Final = N_(
    "Contract {number} runs from {start} to {end}: nothing is delivered outside its term "
    "(rule {rule})."
)
MSG_CHANNEL: Final = N_(
    "Contract {number} is delivered by {channels}, not by {channel} (rule {rule})."
)
MSG_SANDBOX: Final = N_(
    "Contract {number} is delivered through the privacy-computing sandbox (usable, not "
    "visible): there is no file or API token for it (rule {rule})."
)
MSG_TOKEN_USED_UP: Final = N_(
    "This download link was used {uses} of {max_uses} times and cannot be used again: take a "
    "new one on the contract's page (rule {rule})."
)
MSG_TOKEN_EXPIRED: Final = N_(
    "This link expired at {expires}: take a new one on the contract's page (rule {rule})."
)
MSG_TOKEN_REVOKED: Final = N_(
    "This token was revoked at {revoked}: take a new one on the contract's page (rule {rule})."
)
MSG_TOO_MANY_TOKENS: Final = N_(
    "Contract {number} already has {count} tokens in use: revoke one before taking another "
    "(rule {rule})."
)
MSG_PURPOSE: Final = N_(
    "Say for which purpose the data will be used (for example industry or research): the "
    "contract's policy is asked for that purpose at every delivery (rule {rule})."
)
MSG_DECLARED: Final = N_("The declared use is not valid: {detail} (rule {rule}).")
MSG_POLICY_DENIED: Final = N_(
    "The contract's policy does not permit this delivery now: {reasons} (rule {rule})."
)
MSG_POLICY_BROKEN: Final = N_(
    "The policy of contract {number} cannot be read, so nothing is delivered under it: "
    "{detail}. Tell the exchange (rule {rule})."
)
MSG_NO_DATA: Final = N_(
    "There is no data to deliver for contract {number}: its asset has no data version in the "
    "data plane. Ask the seller (rule {rule})."
)
MSG_UNREADABLE: Final = N_(
    "The data of contract {number} cannot be read just now ({detail}); nothing was delivered "
    "and the use was not counted. Try again later or tell the seller (rule {rule})."
)
MSG_FORMAT: Final = N_("Choose a format among {formats} (rule {rule}).")
MSG_FIELDS: Final = N_(
    "Unknown field(s): {names}. The data has these fields: {fields} (rule {rule})."
)
MSG_RATE: Final = N_(
    "Too many calls: this token allows {limit} calls a minute. Try again in {seconds} "
    "seconds (rule {rule})."
)
MSG_NOT_PULL_TOKEN: Final = N_(
    "Send the contract's API pull token in the header 'Authorization: Bearer <token>' (take one "
    "on the contract's page; a login token does not work here) (rule {rule})."
)
MSG_QUOTA: Final = N_(
    "The {calls} calls paid for under contract {number} are used up: no more data is pulled "
    "under it (rule {rule})."
)
MSG_FIRST_DELIVERY: Final = N_(
    "The data of contract {number} ({title}) was delivered for the first time at {at}: the "
    "buyer's acceptance period has started."
)
WHY_LEFT_OUT: Final = (
    "the fields {fields} are left out: the contract's policy does not permit them",
    "字段 {fields} 未交付：合同策略不允许",
)


# ------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class DeliveryRules:
    """The delivery values of the rules file (section ``delivery``)."""

    download_minutes: int
    download_uses: int
    api_days: int
    rate_per_minute: int
    live_tokens: int
    page_rows: int
    max_page_rows: int
    actions: Mapping[str, str]
    formats: tuple[str, ...]
    fingerprint: fp.FingerprintRules


def delivery_rules() -> DeliveryRules:
    data = exchange_rules().data["delivery"]
    return DeliveryRules(
        download_minutes=int(data["download_token_minutes"]),
        download_uses=int(data["download_token_uses"]),
        api_days=int(data["api_token_days"]),
        rate_per_minute=int(data["api_rate_per_minute"]),
        live_tokens=int(data["live_tokens_per_contract"]),
        page_rows=int(data["page_rows"]),
        max_page_rows=int(data["max_page_rows"]),
        actions=dict(data["actions"]),
        formats=tuple(data["formats"]),
        fingerprint=fp.FingerprintRules.of(data["fingerprint"]),
    )


def rule_id(key: str) -> str:
    return str(exchange_rules().rule_id(f"delivery_{key}"))


# ---------------------------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refusal:
    """A delivery refused: the status the entry point answers, the message (msgid + params),
    the rule that refused, every rule id applied and the reasons ({"rule", "en", "zh"})."""

    status: int
    code: str
    message: str
    params: Mapping[str, str]
    rule: str
    rules: tuple[str, ...]
    reasons: tuple[Mapping[str, str], ...] = ()
    retry_after: int | None = None

    def error(self) -> ExchangeError:
        kind: type[ExchangeError] = {
            403: ExchangeForbidden,
            404: ExchangeNotFound,
            409: ExchangeStateConflict,
        }.get(self.status, ExchangeInvalid)
        params = {k: v for k, v in self.params.items() if k not in ("rule", "reasons_zh")}
        if "reasons_zh" in self.params and context.locale.get().lower().startswith("zh"):
            params["reasons"] = self.params["reasons_zh"]
        err = kind(self.message, rule=self.rule, code=self.code, **params)
        err.status = self.status
        return err


def _reason_dict(reason: Reason) -> dict[str, str]:
    return {"rule": reason.rule, "en": reason.en, "zh": reason.zh}


def reason_text(reason: Mapping[str, str], locale: str) -> str:
    return str(reason.get("zh") if locale.lower().startswith("zh") else reason.get("en"))


def _refusal(
    status: int,
    key: str,
    message: str,
    *,
    en: str,
    zh: str,
    code: str = "delivery-refused",
    **params: str,
) -> Refusal:
    rule = rule_id(key)
    return Refusal(
        status,
        code,
        message,
        {**params, "rule": rule},
        rule,
        (rule,),
        ({"rule": rule, "en": en, "zh": zh},),
    )


# ----------------------------------------------------------------------------- data access


@dataclass(frozen=True)
class DataAccess:
    """How the delivery reaches the data plane: the blob store and the key sealed URLs and the
    fingerprint key derive from (the entry point builds it from the settings)."""

    store: dataplane.BlobStore
    secret_key: str

    @property
    def fingerprint_key(self) -> bytes:
        return fp.derive_key(self.secret_key)


def data_access(settings: Any) -> DataAccess:
    return DataAccess(dataplane.blob_store(settings), str(settings.secret_key))


@dataclass(frozen=True)
class Source:
    """The data version a delivery reads and the fields it delivers."""

    version: dataplane.VersionSource
    fields: tuple[str, ...]

    def open(self, access: DataAccess) -> dataplane.Table:
        return dataplane.open_version(access.store, self.version)


def _version_of(session: Session, contract: ExchangeContract, access: DataAccess) -> Any:
    facts = registry.asset_facts(session, contract.asset_id)
    version_id = facts.version_id if facts is not None else None
    if not version_id:
        return None
    return dataplane.version_source(session, version_id, secret_key=access.secret_key)


def _columns(access: DataAccess, version: dataplane.VersionSource) -> list[str]:
    table = dataplane.open_version(access.store, version)
    try:
        return [f.name for f in table.schema]
    finally:
        close = getattr(table, "close", None)
        if callable(close):
            close()


def batches(access: DataAccess, source: Source) -> Iterator[pa.RecordBatch]:
    """The version's rows, only the delivered fields, streaming from the data plane."""
    table = source.open(access)
    try:
        names = [f.name for f in table.schema]
        keep = [names.index(name) for name in source.fields]
        for batch in table.batches():
            yield batch.select(keep)
    finally:
        close = getattr(table, "close", None)
        if callable(close):
            close()


def schema_of(access: DataAccess, source: Source) -> pa.Schema:
    table = source.open(access)
    try:
        full = table.schema
        return pa.schema([full.field(name) for name in source.fields])
    finally:
        close = getattr(table, "close", None)
        if callable(close):
            close()


# -------------------------------------------------------------------------- policy decision


class _PolicyCache:
    """Compiled contract policies by the hash of their canonical JSON (per process)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[str, CompiledPolicy] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, document: Mapping[str, Any]) -> CompiledPolicy:
        digest = hashlib.sha256(ledger.canonical_json(dict(document))).hexdigest()
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._entries.move_to_end(digest)
                return found
        compiled = compile_policy(parse_policy(document))
        with self._lock:
            self._entries[digest] = compiled
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return compiled


_CACHE: Final = _PolicyCache()


def _named(document: Mapping[str, Any], key: str) -> set[str]:
    """Every value ``key`` takes in the policy (its top level and each rule)."""
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, Mapping):
            for k in ("uid", "@id"):
                if isinstance(value.get(k), str):
                    found.add(value[k])
        elif isinstance(value, list):
            for v in value:
                add(v)

    add(document.get(key))
    for part in ("permission", "prohibition", "obligation"):
        rules = document.get(part)
        for rule in rules if isinstance(rules, list) else [rules] if rules else []:
            if isinstance(rule, Mapping):
                add(rule.get(key))
    return found


def _uid(document: Mapping[str, Any], key: str, plain: str, urn: str) -> str:
    """The asset's (or party's) uid as the policy names it: its id, or the platform's URN."""
    named = _named(document, key)
    return urn if urn in named and plain not in named else plain


@dataclass(frozen=True)
class Decided:
    """A policy decision at one delivery and the fields it lets through."""

    decision: Decision
    fields: tuple[str, ...]
    omitted: tuple[str, ...]

    @property
    def permitted(self) -> bool:
        return self.decision.permitted

    def reasons(self) -> list[dict[str, str]]:
        out = [_reason_dict(r) for r in self.decision.reasons]
        if self.permitted and self.omitted:
            names = ", ".join(self.omitted)
            rule = rule_id("policy")
            out.append(
                {
                    "rule": rule,
                    "en": WHY_LEFT_OUT[0].format(fields=names),
                    "zh": WHY_LEFT_OUT[1].format(fields=names),
                }
            )
        return out


def decide_delivery(
    contract: ExchangeContract,
    *,
    channel: str,
    declared: Mapping[str, Any],
    available: Sequence[str],
    requested: Sequence[str] | None,
    count_so_far: int,
    now: datetime,
) -> Decided:
    """Ask the contract's policy whether ``channel`` may deliver now, and which fields.

    With ``requested`` fields the policy decides exactly those; without, the whole table is
    asked for and, if that is denied, each field alone: the fields permitted alone are asked
    for together, and delivered if that is permitted (so a field the policy forbids is left out
    rather than refusing the delivery). Raises ``PolicyError`` when the policy cannot be read."""
    compiled = _CACHE.get(contract.policy)
    action = delivery_rules().actions[channel]
    base: dict[str, Any] = {
        "action": action,
        "target": _uid(
            contract.policy,
            "target",
            contract.asset_id,
            f"urn:datafactor:asset:{contract.asset_id}",
        ),
        "assignee": _uid(
            contract.policy,
            "assignee",
            contract.buyer_id,
            f"urn:datafactor:party:{contract.buyer_id}",
        ),
        "time": now.astimezone(CHINA).isoformat(),
        "channel": channel,
        "count_so_far": count_so_far,
        **{k: v for k, v in declared.items() if k in DECLARED_KEYS and v},
    }

    def ask(names: Sequence[str]) -> Decision:
        return compiled.decide(parse_request({**base, "fields": list(names)}))

    if requested is not None:
        return Decided(ask(requested), tuple(requested), ())
    whole = ask(available)
    if whole.permitted:
        return Decided(whole, tuple(available), ())
    alone = [name for name in available if ask([name]).permitted]
    if alone and len(alone) < len(available):
        together = ask(alone)
        if together.permitted:
            left = tuple(n for n in available if n not in alone)
            return Decided(together, tuple(alone), left)
    if not alone:
        # No field can be had on its own: the refusal is about something else (the purpose,
        # the time, the count …) — say that, not which fields the whole table touched.
        bare = ask([])
        if not bare.permitted:
            return Decided(bare, (), ())
    return Decided(whole, (), ())


# ------------------------------------------------------------------------------------ checks


def china_day(moment: datetime) -> Any:
    return moment.astimezone(CHINA).date()


def _contract_refusal(contract: ExchangeContract, channel: str, now: datetime) -> Refusal | None:
    """Why ``contract`` cannot deliver by ``channel`` now, or None."""
    if contract.state != ContractState.ACTIVE.value:
        return _refusal(
            409,
            "active",
            MSG_NOT_ACTIVE,
            en=f"contract {contract.number} is {contract.state}, not in performance",
            zh=f"合同 {contract.number} 状态为 {contract.state}，不在履行中",
            code="contract-not-active",
            number=contract.number,
            state=contract.state,
        )
    day = china_day(now)
    if not contract.term_start <= day <= contract.term_end:
        return _refusal(
            409,
            "active",
            MSG_OUTSIDE_TERM,
            en=f"{day} is outside the term {contract.term_start} – {contract.term_end}",
            zh=f"{day} 不在合同期限 {contract.term_start} 至 {contract.term_end} 内",
            code="contract-outside-term",
            number=contract.number,
            start=contract.term_start.isoformat(),
            end=contract.term_end.isoformat(),
        )
    if channel not in contract.channels:
        return _refusal(
            409,
            "channel",
            MSG_CHANNEL,
            en=f"the contract's channels are {', '.join(contract.channels)}, not {channel}",
            zh=f"合同约定的交付方式为 {'、'.join(contract.channels)}，不含 {channel}",
            code="channel-not-contracted",
            number=contract.number,
            channels=", ".join(contract.channels),
            channel=channel,
        )
    return None


def _require_receiver(principal: Principal, contract: ExchangeContract) -> None:
    if principal.party_id != contract.buyer_id or not principal.can(P.EXCHANGE_DELIVERY_RECEIVE):
        raise ExchangeForbidden(MSG_NOT_RECEIVER, rule=rule_id("buyer"), number=contract.number)


def check_declared(raw: Mapping[str, Any]) -> dict[str, str]:
    """The use a buyer declares for a token: a purpose (required), a place and an industry
    (optional), each checked as the policy engine checks a request's values."""
    declared: dict[str, str] = {}
    for key in DECLARED_KEYS:
        value = str(raw.get(key) or "").strip()
        if value:
            if not _CODE.fullmatch(value):
                raise ExchangeInvalid(
                    MSG_DECLARED, rule=rule_id("policy"), field=key, detail=f"{key}: {value!r}"
                )
            declared[key] = value
    if "purpose" not in declared:
        raise ExchangeInvalid(MSG_PURPOSE, rule=rule_id("policy"), field="purpose")
    try:
        parse_request({"action": "use", **declared})
    except PolicyError as exc:
        raise ExchangeInvalid(
            MSG_DECLARED, rule=rule_id("policy"), field=exc.field, detail=str(exc)
        ) from exc
    return declared


def deliveries_so_far(session: Session, contract_id: str) -> int:
    """Allowed deliveries of a contract so far, every channel (the policy's ``count``)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(ExchangeDelivery)
            .where(
                ExchangeDelivery.contract_id == contract_id, ExchangeDelivery.decision == ALLOWED
            )
        )
        or 0
    )


def allowed_calls(session: Session, contract_id: str) -> int:
    """Allowed API pulls of a contract: what a metered contract is charged for (calls ×
    price; the settlement of contracts counts the same rows)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(ExchangeDelivery)
            .where(
                ExchangeDelivery.contract_id == contract_id,
                ExchangeDelivery.channel == Channel.API.value,
                ExchangeDelivery.decision == ALLOWED,
            )
        )
        or 0
    )


# ------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class Issued:
    """A token just issued and its secret (shown once, never stored)."""

    token: ExchangeDeliveryToken
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _live(token: ExchangeDeliveryToken, now: datetime) -> bool:
    return (
        token.revoked_at is None
        and token.expires_at > now
        and (token.max_uses is None or token.uses < token.max_uses)
    )


def token_status(token: ExchangeDeliveryToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= now:
        return "expired"
    if token.max_uses is not None and token.uses >= token.max_uses:
        return "used_up"
    return "live"


def _audit(
    session: Session,
    principal: Principal | None,
    action: str,
    contract: ExchangeContract,
    object_type: str,
    object_id: str,
    summary: str,
    reasons: Sequence[str],
) -> None:
    audit.record(
        session,
        actor=principal,
        action=f"exchange:delivery:{action}",
        object_type=object_type,
        object_id=object_id,
        summary=summary,
        party_id=contract.buyer_id,
        reasons=list(reasons),
        actor_name=None if principal else "exchange-delivery",
    )


def issue_token(
    session: Session,
    principal: Principal,
    contract_id: str,
    *,
    channel: str,
    declared: Mapping[str, Any],
    access: DataAccess,
    now: datetime,
) -> Issued:
    """The buyer takes a download or API pull token for an active contract (see the module
    docstring). The declared use is tried against the policy at once, so a token that could
    never deliver is not issued."""
    contract = contracts.get_contract(session, principal, contract_id, lock=True)
    _require_receiver(principal, contract)
    rules = delivery_rules()
    if channel == Channel.SANDBOX.value:
        raise ExchangeStateConflict(MSG_SANDBOX, rule=rule_id("sandbox"), number=contract.number)
    if channel not in (Channel.DOWNLOAD.value, Channel.API.value):
        raise ExchangeInvalid(
            MSG_CHANNEL,
            rule=rule_id("channel"),
            field="channel",
            number=contract.number,
            channels=", ".join(contract.channels),
            channel=channel,
        )
    refusal = _contract_refusal(contract, channel, now)
    if refusal is not None:
        raise refusal.error()
    clean = check_declared(declared)
    live = [
        t
        for t in session.scalars(
            select(ExchangeDeliveryToken).where(
                ExchangeDeliveryToken.contract_id == contract.id,
                ExchangeDeliveryToken.revoked_at.is_(None),
                ExchangeDeliveryToken.expires_at > now,
            )
        )
        if _live(t, now)
    ]
    if len(live) >= rules.live_tokens:
        raise ExchangeStateConflict(
            MSG_TOO_MANY_TOKENS,
            rule=rule_id("token"),
            number=contract.number,
            count=str(len(live)),
        )
    version = _version_of(session, contract, access)
    if version is None:
        raise ExchangeStateConflict(MSG_NO_DATA, rule=rule_id("source"), number=contract.number)
    decided = _decide(session, contract, channel, clean, access, version, None, now)
    if not decided.permitted:
        raise _denied(decided).error()
    if channel == Channel.DOWNLOAD.value:
        prefix, max_uses = DOWNLOAD_PREFIX, rules.download_uses
        expires = now + timedelta(minutes=rules.download_minutes)
        key = "token"
    else:
        prefix, max_uses = PULL_PREFIX, None
        last = datetime.combine(contract.term_end + timedelta(days=1), time.min, CHINA)
        expires = min(now + timedelta(days=rules.api_days), last.astimezone(UTC))
        key = "api_token"
    secret = prefix + secrets.token_urlsafe(32)
    token = ExchangeDeliveryToken(
        contract_id=contract.id,
        buyer_id=contract.buyer_id,
        channel=channel,
        secret_hash=_hash(secret),
        max_uses=max_uses,
        uses=0,
        expires_at=expires,
        declared=clean,
        created_by=principal.user_id,
        created_at=now,
    )
    session.add(token)
    session.flush()
    _audit(
        session,
        principal,
        "token-issue",
        contract,
        "exchange_delivery_token",
        token.id,
        f"{channel} token issued for contract {contract.number}",
        [rule_id(key), rule_id("buyer")],
    )
    return Issued(token, secret)


def _visible_token(
    session: Session, principal: Principal, token_id: str, *, lock: bool = False
) -> tuple[ExchangeDeliveryToken, ExchangeContract]:
    stmt = select(ExchangeDeliveryToken).where(ExchangeDeliveryToken.id == token_id)
    if lock:
        stmt = stmt.with_for_update()
    token = session.execute(stmt).scalar_one_or_none()
    if token is None or token.buyer_id != principal.party_id:
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=rule_id("buyer"))
    contract = session.get(ExchangeContract, token.contract_id)
    assert contract is not None
    if not principal.can(P.EXCHANGE_DELIVERY_RECEIVE):
        raise ExchangeForbidden(MSG_NOT_RECEIVER, rule=rule_id("buyer"), number=contract.number)
    return token, contract


def get_token(session: Session, principal: Principal, token_id: str) -> ExchangeDeliveryToken:
    """One of the caller's party's tokens (never its secret)."""
    return _visible_token(session, principal, token_id)[0]


def revoke_token(
    session: Session, principal: Principal, token_id: str, *, now: datetime
) -> ExchangeDeliveryToken:
    """The buyer revokes a token at once (idempotent)."""
    token, contract = _visible_token(session, principal, token_id, lock=True)
    if token.revoked_at is None:
        token.revoked_at = now
        session.flush()
        _audit(
            session,
            principal,
            "token-revoke",
            contract,
            "exchange_delivery_token",
            token.id,
            f"{token.channel} token revoked for contract {contract.number}",
            [rule_id("token")],
        )
    return token


def list_tokens(
    session: Session, principal: Principal, contract_id: str
) -> list[ExchangeDeliveryToken]:
    """The tokens of a contract, newest first: the buyer's only (the seller sees none)."""
    contract = contracts.get_contract(session, principal, contract_id)
    if contract.buyer_id != principal.party_id:
        return []
    return list(
        session.scalars(
            select(ExchangeDeliveryToken)
            .where(ExchangeDeliveryToken.contract_id == contract.id)
            .order_by(ExchangeDeliveryToken.created_at.desc(), ExchangeDeliveryToken.id)
        )
    )


# ------------------------------------------------------------------------------ deliveries


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as decided: its recorded row, and either the refusal to answer or
    the source to read (allowed)."""

    delivery: ExchangeDelivery | None
    refusal: Refusal | None
    source: Source | None = None
    contract_number: str = ""
    buyer_name: str = ""
    omitted: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def _record(
    session: Session,
    contract: ExchangeContract,
    token: ExchangeDeliveryToken | None,
    channel: str,
    *,
    principal: Principal | None,
    decision: str,
    reasons: Iterable[Mapping[str, str]],
    rules: Iterable[str],
    now: datetime,
    fields: Sequence[str] = (),
    fmt: str | None = None,
    mark: str | None = None,
) -> ExchangeDelivery:
    ids = list(dict.fromkeys([rule_id("record"), *rules]))
    row = ExchangeDelivery(
        contract_id=contract.id,
        buyer_id=contract.buyer_id,
        channel=channel,
        token_id=token.id if token else None,
        decision=decision,
        reasons=[dict(r) for r in reasons],
        rules=ids,
        mark=mark,
        fields=list(fields),
        format=fmt,
        actor_user_id=principal.user_id if principal and principal.user_id else None,
        at=now,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        principal,
        channel,
        contract,
        "exchange_delivery",
        row.id,
        f"Delivery by {channel} under contract {contract.number}: {decision}",
        ids,
    )
    return row


def _refused(
    session: Session,
    contract: ExchangeContract,
    token: ExchangeDeliveryToken | None,
    channel: str,
    refusal: Refusal,
    *,
    principal: Principal | None,
    now: datetime,
) -> Attempt:
    row = _record(
        session,
        contract,
        token,
        channel,
        principal=principal,
        decision=REFUSED,
        reasons=refusal.reasons,
        rules=refusal.rules,
        now=now,
    )
    return Attempt(row, refusal, contract_number=contract.number)


def _denied(decided: Decided) -> Refusal:
    reasons = tuple(decided.reasons())
    rule = rule_id("policy")
    texts = "; ".join(r["en"] for r in reasons) or "no permission applies"
    texts_zh = "；".join(r["zh"] for r in reasons) or "没有可适用的许可"
    return Refusal(
        403,
        "policy-denied",
        MSG_POLICY_DENIED,
        {"reasons": texts, "reasons_zh": texts_zh, "rule": rule},
        rule,
        tuple(dict.fromkeys([rule, *decided.decision.rules])),
        reasons,
    )


def _decide(
    session: Session,
    contract: ExchangeContract,
    channel: str,
    declared: Mapping[str, Any],
    access: DataAccess,
    version: dataplane.VersionSource,
    requested: Sequence[str] | None,
    now: datetime,
) -> Decided:
    available = _columns(access, version)
    if requested is not None:
        unknown = [n for n in requested if n not in available]
        if unknown:
            raise ExchangeInvalid(
                MSG_FIELDS,
                rule=rule_id("policy"),
                field="fields",
                names=", ".join(unknown),
                fields=", ".join(available),
            )
    try:
        return decide_delivery(
            contract,
            channel=channel,
            declared=declared,
            available=available,
            requested=requested,
            count_so_far=deliveries_so_far(session, contract.id),
            now=now,
        )
    except PolicyError as exc:
        raise ExchangeStateConflict(
            MSG_POLICY_BROKEN, rule=rule_id("policy"), number=contract.number, detail=str(exc)
        ) from exc


def _buyer_name(contract: ExchangeContract) -> str:
    card = (contract.document or {}).get("parties", {}).get("buyer") or {}
    return str(card.get("name") or contract.buyer_id)


def _token_refusal(token: ExchangeDeliveryToken, now: datetime) -> Refusal | None:
    if token.revoked_at is not None:
        return _refusal(
            409,
            "token",
            MSG_TOKEN_REVOKED,
            en="the token was revoked",
            zh="凭证已撤销",
            code="token-revoked",
            revoked=contracts.show_time(token.revoked_at),
        )
    if token.expires_at <= now:
        return _refusal(
            409,
            "token" if token.channel == Channel.DOWNLOAD.value else "api_token",
            MSG_TOKEN_EXPIRED,
            en="the token expired",
            zh="凭证已过期",
            code="token-expired",
            expires=contracts.show_time(token.expires_at),
        )
    if token.max_uses is not None and token.uses >= token.max_uses:
        return _refusal(
            409,
            "token",
            MSG_TOKEN_USED_UP,
            en=f"the token was used {token.uses} of {token.max_uses} times",
            zh=f"凭证已使用 {token.uses}/{token.max_uses} 次",
            code="token-used-up",
            uses=str(token.uses),
            max_uses=str(token.max_uses),
        )
    return None


def _token_by_secret(session: Session, secret: str) -> ExchangeDeliveryToken | None:
    if not secret or len(secret) > 200:
        return None
    return session.execute(
        select(ExchangeDeliveryToken)
        .where(ExchangeDeliveryToken.secret_hash == _hash(secret))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def begin_download(
    session: Session,
    principal: Principal,
    secret: str,
    *,
    fmt: str,
    access: DataAccess,
    now: datetime,
) -> Attempt:
    """Decide a download with the token ``secret`` (under its row lock) and record it; an
    allowed one has counted a use and carries a fresh mark. An unknown secret is 'not found'
    (nothing to record it against)."""
    rules = delivery_rules()
    if fmt not in rules.formats:
        raise ExchangeInvalid(
            MSG_FORMAT, rule=rule_id("record"), field="format", formats=", ".join(rules.formats)
        )
    token = _token_by_secret(session, secret)
    if token is None or token.channel != Channel.DOWNLOAD.value:
        raise ExchangeNotFound(MSG_NO_LINK, rule=rule_id("token"))
    contract = session.get(ExchangeContract, token.contract_id)
    assert contract is not None
    channel = Channel.DOWNLOAD.value
    if principal.party_id != token.buyer_id or not principal.can(P.EXCHANGE_DELIVERY_RECEIVE):
        # Another party holding the buyer's link: refused as 'not found', and the buyer's log
        # shows the attempt (its link went astray).
        refusal = _refusal(
            404,
            "buyer",
            MSG_NO_LINK,
            en="the link was used by someone who is not the contract's buyer",
            zh="非合同买方使用了该下载链接",
            code="not-the-buyer",
        )
        return _refused(session, contract, token, channel, refusal, principal=principal, now=now)
    stop = _token_refusal(token, now) or _contract_refusal(contract, channel, now)
    if stop is not None:
        return _refused(session, contract, token, channel, stop, principal=principal, now=now)
    return _allow(session, principal, contract, token, channel, access, None, now, fmt=fmt)


def _allow(
    session: Session,
    principal: Principal | None,
    contract: ExchangeContract,
    token: ExchangeDeliveryToken,
    channel: str,
    access: DataAccess,
    requested: Sequence[str] | None,
    now: datetime,
    *,
    fmt: str | None = None,
) -> Attempt:
    version = _version_of(session, contract, access)
    if version is None:
        refusal = _refusal(
            409,
            "source",
            MSG_NO_DATA,
            en="the asset has no data version",
            zh="该资产没有数据版本",
            code="no-data",
            number=contract.number,
        )
        return _refused(session, contract, token, channel, refusal, principal=principal, now=now)
    try:
        decided = _decide(
            session, contract, channel, token.declared or {}, access, version, requested, now
        )
    except (dataplane.UnreadableSource, dataplane.SourceUnavailable, dataplane.BlobNotFound) as e:
        refusal = _refusal(
            409,
            "source",
            MSG_UNREADABLE,
            en=f"the data cannot be read: {e}",
            zh=f"数据无法读取：{e}",
            code="data-unreadable",
            number=contract.number,
            detail=str(e),
        )
        return _refused(session, contract, token, channel, refusal, principal=principal, now=now)
    if not decided.permitted:
        refusal = _denied(decided)
        return _refused(session, contract, token, channel, refusal, principal=principal, now=now)
    token.uses += 1
    mark = fp.new_mark() if channel == Channel.DOWNLOAD.value else None
    row = _record(
        session,
        contract,
        token,
        channel,
        principal=principal,
        decision=ALLOWED,
        reasons=decided.reasons(),
        rules=[rule_id("policy"), *decided.decision.rules]
        + ([rule_id("fingerprint")] if mark else []),
        now=now,
        fields=decided.fields,
        fmt=fmt,
        mark=mark,
    )
    return Attempt(
        row,
        None,
        Source(version, decided.fields),
        contract.number,
        _buyer_name(contract),
        decided.omitted,
    )


def store_fingerprint(session: Session, delivery_id: str, record: Mapping[str, Any]) -> None:
    """Keep the fingerprint's stored half with the delivery, before any byte is sent."""
    row = session.get(ExchangeDelivery, delivery_id)
    assert row is not None
    row.fingerprint = dict(record)
    session.flush()


def fail_delivery(session: Session, delivery_id: str, detail: str, *, now: datetime) -> None:
    """An allowed delivery whose data could not be read before anything was sent: recorded as
    failed with the reason, and the token's use given back."""
    row = session.get(ExchangeDelivery, delivery_id, with_for_update=True)
    assert row is not None
    if row.decision != ALLOWED:
        return
    row.decision = FAILED
    rule = rule_id("source")
    row.reasons = [
        *row.reasons,
        {
            "rule": rule,
            "en": f"the data could not be read: {detail}",
            "zh": f"数据无法读取：{detail}",
        },
    ]
    row.rules = list(dict.fromkeys([*row.rules, rule]))
    if row.token_id:
        token = session.get(ExchangeDeliveryToken, row.token_id, with_for_update=True)
        if token is not None and token.uses > 0:
            token.uses -= 1
    session.flush()


def finish_delivery(
    session: Session,
    delivery_id: str,
    *,
    rows: int,
    size: int,
    content_hash: str,
    now: datetime,
) -> bool:
    """What was sent (rows, bytes, SHA-256); the contract's first delivery starts its
    acceptance period and both parties are told. Returns whether it was the first."""
    row = session.get(ExchangeDelivery, delivery_id)
    assert row is not None
    row.rows, row.bytes, row.content_hash = rows, size, content_hash
    contract = session.execute(
        select(ExchangeContract)
        .where(ExchangeContract.id == row.contract_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    first = contracts.mark_delivered(session, contract, actor=None, now=now)
    if first:
        listing_title = str((contract.document or {}).get("object", {}).get("title") or "")
        inbox.notify(
            session,
            contracts.parties(contract),
            kind=KIND,
            message=MSG_FIRST_DELIVERY,
            params={
                "number": contract.number,
                "title": listing_title,
                "at": contracts.show_time(now),
            },
            link=f"/exchange/contracts/{contract.id}",
            dedupe_key=f"exchange:delivered:{contract.id}",
        )
    session.flush()
    return first


# ---------------------------------------------------------------------- download: the bytes


def plan_fingerprint(access: DataAccess, attempt: Attempt) -> fp.Fingerprint:
    """Passes one and two over the delivered fields: the canaries of this delivery."""
    assert attempt.source is not None
    assert attempt.delivery is not None
    assert attempt.delivery.mark is not None
    source = attempt.source
    return fp.fingerprint(
        schema_of(access, source),
        lambda: batches(access, source),
        key=access.fingerprint_key,
        mark=attempt.delivery.mark,
        rules=delivery_rules().fingerprint,
    )


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return fp.normalise(value)


@dataclass
class Sent:
    """What an encoder produced so far (rows, bytes, SHA-256), read when it is exhausted."""

    rows: int = 0
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        self.digest.update(chunk)
        return chunk


def file_name(attempt: Attempt, fmt: str) -> str:
    assert attempt.delivery is not None
    return f"{attempt.contract_number}-{attempt.delivery.mark or attempt.delivery.id[:8]}.{fmt}"


def encode(
    access: DataAccess,
    attempt: Attempt,
    marked: fp.Fingerprint,
    fmt: str,
    sent: Sent,
) -> Iterator[bytes]:
    """Pass three: the delivered file's bytes, canaries embedded, the visible mark included;
    ``sent`` counts rows (canaries included), bytes and the digest as they go."""
    assert attempt.source is not None
    assert attempt.delivery is not None
    assert attempt.delivery.mark is not None
    source = attempt.source
    schema = schema_of(access, source)
    at = attempt.delivery.at.astimezone(CHINA).isoformat()
    mark = attempt.delivery.mark
    labels = {"contract": attempt.contract_number, "buyer": attempt.buyer_name, "at": at}
    rows = fp.embed(schema, batches(access, source), marked)
    if fmt == "parquet":
        yield from _parquet(schema, rows, fp.parquet_metadata(mark, **labels), sent)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff" + fp.header_line(mark, **labels) + "\r\n")
    writer.writerow(schema.names)
    for batch in rows:
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for values in zip(*columns, strict=True):
            writer.writerow([_cell_text(v) for v in values])
        sent.rows += batch.num_rows
        if buffer.tell() >= CHUNK:
            yield sent.add(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield sent.add(buffer.getvalue().encode("utf-8"))


def _parquet(
    schema: pa.Schema,
    rows: Iterable[pa.RecordBatch],
    metadata: Mapping[bytes, bytes],
    sent: Sent,
) -> Iterator[bytes]:
    import pyarrow.parquet as pq

    with tempfile.TemporaryFile() as spool:
        with pq.ParquetWriter(spool, schema.with_metadata(dict(metadata))) as writer:
            for batch in rows:
                writer.write_batch(batch)
                sent.rows += batch.num_rows
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield sent.add(chunk)


# -------------------------------------------------------------------------------- API pull


def begin_pull(
    session: Session,
    secret: str,
    *,
    requested: Sequence[str] | None,
    access: DataAccess,
    now: datetime,
) -> Attempt:
    """Decide one API pull with the pull token ``secret`` (under its row lock): rate limit,
    contract, policy; recorded unless rate-limited (a 429 is the transport's answer, not a
    delivery)."""
    token = _token_by_secret(session, secret)
    if token is None or token.channel != Channel.API.value:
        raise Unauthenticated(
            MSG_NOT_PULL_TOKEN, code="invalid-pull-token", rule=rule_id("api_token")
        )
    contract = session.get(ExchangeContract, token.contract_id)
    assert contract is not None
    channel = Channel.API.value
    refusal = _token_refusal(token, now)
    if refusal is not None:
        return _refused(session, contract, token, channel, refusal, principal=None, now=now)
    rules = delivery_rules()
    window = now - timedelta(seconds=60)
    recent = list(
        session.scalars(
            select(ExchangeDelivery.at)
            .where(
                ExchangeDelivery.contract_id == contract.id,
                ExchangeDelivery.token_id == token.id,
                ExchangeDelivery.at > window,
            )
            .order_by(ExchangeDelivery.at)
        )
    )
    if len(recent) >= rules.rate_per_minute:
        wait = max(1, int((recent[0] + timedelta(seconds=60) - now).total_seconds() + 0.999))
        limited = _refusal(
            429,
            "rate",
            MSG_RATE,
            en=f"more than {rules.rate_per_minute} calls a minute",
            zh=f"每分钟调用超过 {rules.rate_per_minute} 次",
            code="rate-limited",
            limit=str(rules.rate_per_minute),
            seconds=str(wait),
        )
        return Attempt(None, _with_retry(limited, wait), contract_number=contract.number)
    refusal = _contract_refusal(contract, channel, now) or _quota_refusal(session, contract)
    if refusal is not None:
        return _refused(session, contract, token, channel, refusal, principal=None, now=now)
    return _allow(session, None, contract, token, channel, access, requested, now)


def _quota_refusal(session: Session, contract: ExchangeContract) -> Refusal | None:
    """A metered contract's prepaid calls (its quantity) used up: no more pulls."""
    model = (contract.document or {}).get("object", {}).get("price_model")
    if model != PriceModel.METERED.value:
        return None
    used = allowed_calls(session, contract.id)
    if used < contract.quantity:
        return None
    return _refusal(
        409,
        "quota",
        MSG_QUOTA,
        en=f"the {contract.quantity} prepaid calls are used up",
        zh=f"预付的 {contract.quantity} 次调用已用尽",
        code="calls-used-up",
        number=contract.number,
        calls=str(contract.quantity),
    )


def _with_retry(refusal: Refusal, seconds: int) -> Refusal:
    return Refusal(
        refusal.status,
        refusal.code,
        refusal.message,
        refusal.params,
        refusal.rule,
        refusal.rules,
        refusal.reasons,
        retry_after=seconds,
    )


def page_limit(limit: int | None) -> int:
    rules = delivery_rules()
    if limit is None:
        return rules.page_rows
    if not 1 <= limit <= rules.max_page_rows:
        raise InvalidInput(
            N_("limit must be between 1 and {most}."), field="limit", most=rules.max_page_rows
        )
    return limit


def json_value(value: Any) -> Any:
    """A cell as JSON: text, whole numbers and finite floats as they are, the rest as text."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    return fp.normalise(value)


def read_page(
    access: DataAccess, source: Source, *, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Rows ``offset`` … ``offset + limit`` of the delivered fields, and the total when the
    source knows it without reading everything."""
    table = source.open(access)
    try:
        total = table.row_count
        names = [f.name for f in table.schema]
        keep = [names.index(n) for n in source.fields]
        out: list[dict[str, Any]] = []
        seen = 0
        for batch in table.batches():
            if seen + batch.num_rows <= offset:
                seen += batch.num_rows
                continue
            start = max(0, offset - seen)
            part = batch.select(keep).slice(start, limit - len(out))
            columns = [part.column(i).to_pylist() for i in range(part.num_columns)]
            for values in zip(*columns, strict=True):
                out.append({n: json_value(v) for n, v in zip(source.fields, values, strict=True)})
            seen += batch.num_rows
            if len(out) >= limit:
                break
        return out, total
    finally:
        close = getattr(table, "close", None)
        if callable(close):
            close()


# --------------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class DeliveryQuery:
    contract_id: str | None = None
    channel: str | None = None
    decision: str | None = None


def _may_read_all(principal: Principal) -> bool:
    return principal.can(P.EXCHANGE_CONTRACT_READ_ALL)


def may_see_mark(principal: Principal, contract: ExchangeContract) -> bool:
    """The mark identifies a copy: its buyer and the exchange see it, the seller does not (a
    seller who knew a buyer's mark could write it into a file of its own)."""
    return _may_read_all(principal) or principal.party_id == contract.buyer_id


def list_deliveries(
    session: Session,
    principal: Principal,
    query: DeliveryQuery,
    *,
    limit: int,
    offset: int,
) -> tuple[list[tuple[ExchangeDelivery, ExchangeContract]], int]:
    """The delivery log the caller may read (its contracts as buyer, seller or broker; every
    contract for the exchange and regulators), newest first."""
    if not (principal.can(P.EXCHANGE_CONTRACT_READ) or _may_read_all(principal)):
        raise ExchangeForbidden(
            contracts.MSG_NOT_ALLOWED,
            rule=rule_id("record"),
            permission=P.EXCHANGE_CONTRACT_READ.value,
        )
    stmt = select(ExchangeDelivery, ExchangeContract).join(
        ExchangeContract, ExchangeContract.id == ExchangeDelivery.contract_id
    )
    if not _may_read_all(principal):
        me = principal.party_id
        stmt = stmt.where(
            or_(
                ExchangeContract.buyer_id == me,
                ExchangeContract.seller_id == me,
                ExchangeContract.broker_id == me,
            )
        )
    if query.contract_id:
        contracts.get_contract(session, principal, query.contract_id)
        stmt = stmt.where(ExchangeDelivery.contract_id == query.contract_id)
    if query.channel:
        stmt = stmt.where(ExchangeDelivery.channel == query.channel)
    if query.decision:
        stmt = stmt.where(ExchangeDelivery.decision == query.decision)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(
        stmt.order_by(ExchangeDelivery.at.desc(), ExchangeDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [(d, c) for d, c in rows], int(total)


def delivery_dict(
    row: ExchangeDelivery, contract: ExchangeContract, principal: Principal, locale: str
) -> dict[str, Any]:
    """A delivery as the API and the CLI print it (reasons in ``locale``; the mark and the
    token only for those who may see them)."""
    return {
        "id": row.id,
        "contract_id": row.contract_id,
        "contract_number": contract.number,
        "buyer_id": row.buyer_id,
        "channel": row.channel,
        "token_id": row.token_id if principal.party_id == row.buyer_id else None,
        "decision": row.decision,
        "reasons": [reason_text(r, locale) for r in row.reasons or []],
        "rules": list(row.rules or []),
        "fields": list(row.fields or []),
        "format": row.format,
        "mark": row.mark if may_see_mark(principal, contract) else None,
        "rows": row.rows,
        "bytes": row.bytes,
        "content_hash": row.content_hash,
        "at": row.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def get_delivery(
    session: Session, principal: Principal, delivery_id: str
) -> tuple[ExchangeDelivery, ExchangeContract]:
    row = session.get(ExchangeDelivery, delivery_id)
    if row is not None:
        try:
            contract = contracts.get_contract(session, principal, row.contract_id)
        except ExchangeNotFound:
            contract = None
        if contract is not None:
            return row, contract
    raise ExchangeNotFound(MSG_NOT_FOUND, rule=rule_id("record"))


# ---------------------------------------------------------------------------------- trace


@dataclass(frozen=True)
class TraceMatch:
    """A delivery a leaked file is attributed to."""

    delivery_id: str
    mark: str
    contract_id: str
    contract_number: str
    buyer_id: str
    buyer_name: str
    delivered_at: datetime
    found: int
    total: int
    log10_p: float
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "mark": self.mark,
            "contract_id": self.contract_id,
            "contract_number": self.contract_number,
            "buyer_id": self.buyer_id,
            "buyer_name": self.buyer_name,
            "delivered_at": self.delivered_at.astimezone(UTC).isoformat(),
            "canaries_found": self.found,
            "canaries_total": self.total,
            "log10_p": round(self.log10_p, 2) if self.log10_p > -1e9 else None,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class TraceReport:
    """What ``trace`` found: the file read, the deliveries examined, the buyer(s) named on the
    fingerprint's evidence, and the mark the file declares (its visible header) if any."""

    format: str
    rows: int
    examined: int
    identified: tuple[TraceMatch, ...]
    declared: TraceMatch | None
    declared_mark: str | None

    @property
    def verdict(self) -> str:
        if self.identified:
            return "identified"
        if self.declared is not None:
            return "declared"
        return "inconclusive" if self.examined else "none"

    def as_dict(self) -> dict[str, Any]:
        declared = self.declared.as_dict() if self.declared else None
        if declared is not None:
            declared["matches_content"] = any(
                m.delivery_id == declared["delivery_id"] for m in self.identified
            )
        return {
            "verdict": self.verdict,
            "file": {"format": self.format, "rows": self.rows},
            "examined": self.examined,
            "identified": [m.as_dict() for m in self.identified],
            "declared_mark": self.declared_mark,
            "declared": declared,
        }


def _match(
    row: ExchangeDelivery, contract: ExchangeContract, score: fp.Score | None, confidence: float
) -> TraceMatch:
    return TraceMatch(
        row.id,
        row.mark or "",
        contract.id,
        contract.number,
        contract.buyer_id,
        _buyer_name(contract),
        row.at,
        score.found if score else 0,
        score.total if score else 0,
        score.log10_p if score else 0.0,
        confidence,
    )


def trace(session: Session, data: bytes, *, key: bytes) -> TraceReport:
    """Match a file someone found against every fingerprinted delivery (see module docstring).
    Raises ``ValueError`` for a file that cannot be read."""
    leak = fp.read_leak(data)
    index = fp.index_leak(leak.rows, key)
    rules = delivery_rules().fingerprint
    scores: dict[str, fp.Score] = {}
    last = ""
    while True:  # keyset pages: the fingerprints never all sit in memory at once
        page = session.execute(
            select(ExchangeDelivery.id, ExchangeDelivery.fingerprint)
            .where(
                ExchangeDelivery.fingerprint.is_not(None),
                ExchangeDelivery.mark.is_not(None),
                ExchangeDelivery.id > last,
            )
            .order_by(ExchangeDelivery.id)
            .limit(TRACE_PAGE)
        ).all()
        for delivery_id, record in page:
            if isinstance(record, Mapping):
                scores[delivery_id] = fp.score(index, record)
        if len(page) < TRACE_PAGE:
            break
        last = page[-1][0]
    examined = len(scores)
    found = fp.verdict(scores, examined=examined, rules=rules)
    identified = []
    for delivery_id in found.identified:
        row = session.get(ExchangeDelivery, delivery_id)
        assert row is not None
        contract = session.get(ExchangeContract, row.contract_id)
        assert contract is not None
        identified.append(_match(row, contract, scores[delivery_id], found.confidence[delivery_id]))
    declared = None
    if leak.declared_mark:
        row = session.scalar(
            select(ExchangeDelivery).where(ExchangeDelivery.mark == leak.declared_mark).limit(1)
        )
        if row is not None:
            contract = session.get(ExchangeContract, row.contract_id)
            assert contract is not None
            score = scores.get(row.id)
            declared = _match(row, contract, score, found.confidence.get(row.id, 0.0))
    return TraceReport(
        leak.format, len(leak.rows), examined, tuple(identified), declared, leak.declared_mark
    )


def now_utc() -> datetime:
    return utcnow()


__all__ = [
    "ALLOWED",
    "FAILED",
    "REFUSED",
    "Attempt",
    "DataAccess",
    "DeliveryQuery",
    "Issued",
    "Refusal",
    "Sent",
    "TraceReport",
    "begin_download",
    "begin_pull",
    "data_access",
    "encode",
    "finish_delivery",
    "issue_token",
    "list_deliveries",
    "list_tokens",
    "plan_fingerprint",
    "read_page",
    "record_sandbox_delivery",
    "revoke_token",
    "store_fingerprint",
    "trace",
]


# ------------------------------------------------------------------------- sandbox contracts
# The sandbox (``datafactor.sandbox``) computes under contracts delivered by sandbox: it reads
# them through these three functions only (exported from ``datafactor.exchange``), never the
# exchange's models.


@dataclass(frozen=True)
class SandboxContract:
    """What the sandbox may know of a contract delivered by sandbox."""

    id: str
    number: str
    state: str
    seller_id: str
    buyer_id: str
    asset_id: str
    term_start: Any
    term_end: Any
    policy: Mapping[str, Any]
    grant_id: str | None


@dataclass(frozen=True)
class SandboxDecision:
    """The contract's answer to one sandbox use: a refusal by the contract itself (not active,
    outside its term, not by sandbox: ``refusal`` reasons) or its policy's ``decision``."""

    decision: Decision | None
    refusal: tuple[Mapping[str, str], ...] = ()


def _sandbox_view(c: ExchangeContract) -> SandboxContract:
    return SandboxContract(
        str(c.id),
        c.number,
        c.state,
        c.seller_id,
        c.buyer_id,
        c.asset_id,
        c.term_start,
        c.term_end,
        c.policy,
        c.grant_id,
    )


def sandbox_contracts(session: Session, buyer_id: str) -> list[SandboxContract]:
    """The buyer's active contracts whose channels include the sandbox (the sandbox lists them
    as the buyer's sandbox grants)."""
    rows = session.scalars(
        select(ExchangeContract)
        .where(
            ExchangeContract.buyer_id == buyer_id,
            ExchangeContract.state == ContractState.ACTIVE.value,
        )
        .order_by(ExchangeContract.created_at.desc(), ExchangeContract.id)
    )
    return [_sandbox_view(c) for c in rows if Channel.SANDBOX.value in (c.channels or [])]


def sandbox_contract(session: Session, contract_id: str) -> SandboxContract | None:
    """A contract delivered by sandbox (any state), or None (the sandbox checks the buyer)."""
    c = session.get(ExchangeContract, contract_id)
    if c is None or Channel.SANDBOX.value not in (c.channels or []):
        return None
    return _sandbox_view(c)


def decide_sandbox_contract(
    session: Session,
    contract_id: str,
    *,
    declared: Mapping[str, Any],
    fields: Sequence[str] | None,
    now: datetime,
) -> SandboxDecision:
    """Whether the contract lets the sandbox compute now: active, within its term, by sandbox,
    and its policy's permit for an ``aggregate`` over ``fields`` in the ``sandbox`` channel
    (the sandbox reads k and ε from the decision's limits)."""
    c = session.get(ExchangeContract, contract_id)
    if c is None:
        return SandboxDecision(None, ({"rule": rule_id("channel"), "en": "no such contract",
                                       "zh": "无此合同"},))  # fmt: skip
    refusal = _contract_refusal(c, Channel.SANDBOX.value, now)
    if refusal is not None:
        return SandboxDecision(None, refusal.reasons)
    compiled = _CACHE.get(c.policy)
    body: dict[str, Any] = {
        "action": "aggregate",
        "target": _uid(c.policy, "target", c.asset_id, f"urn:datafactor:asset:{c.asset_id}"),
        "assignee": _uid(c.policy, "assignee", c.buyer_id, f"urn:datafactor:party:{c.buyer_id}"),
        "time": now.astimezone(CHINA).isoformat(),
        "channel": Channel.SANDBOX.value,
        **{k: v for k, v in declared.items() if k in DECLARED_KEYS and v},
    }
    if fields is not None:
        body["fields"] = list(fields)
    return SandboxDecision(compiled.decide(parse_request(body)))


def record_sandbox_delivery(
    session: Session,
    contract_id: str,
    *,
    rows: int,
    result_hash: str | None,
    fields: Sequence[str],
    actor_user_id: str | None,
    now: datetime,
) -> bool:
    """A sandbox query computed under the contract is one of its deliveries (the buyer used the
    data): recorded like a download or an API pull, and the first one starts the acceptance
    period — a contract used in the sandbox is never terminated as never delivered. Returns
    whether this was the first delivery."""
    c = session.get(ExchangeContract, contract_id)
    if c is None or Channel.SANDBOX.value not in (c.channels or []):
        return False
    row = ExchangeDelivery(
        contract_id=c.id,
        buyer_id=c.buyer_id,
        channel=Channel.SANDBOX.value,
        decision="allowed",
        reasons=[],
        rules=[rule_id("sandbox")],
        rows=rows,
        bytes=0,
        content_hash=result_hash,
        fields=list(fields),
        format=Channel.SANDBOX.value,  # the query's record carries the same result hash
        actor_user_id=actor_user_id,
        at=now,
    )
    session.add(row)
    session.flush()
    return finish_delivery(
        session, row.id, rows=rows, size=0, content_hash=result_hash or "", now=now
    )
