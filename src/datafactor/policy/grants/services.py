"""Authorisations' use cases: request, offer, decide, suspend, resume, revoke, withdraw, use,
the monitor, and the registry's licence followed to its end.

Each function is one use case in the caller's transaction (``db.write()``): it loads the grant
(row-locked when it changes it), applies the rules of ``grants.domain``, writes the grant and its
history row, records the audit event under each party concerned, appends the decision record to
the ledger (signed with the registry's certificate key when the caller passes an ``issuer``) and
tells the parties through the inbox — all or nothing.

An approved grant files a licence application (许可登记) in the registry in the holder's name
(``registry.file_licence``); the grant is *approved* while the registry works and becomes
*active* when the licence is certified, or *refused* when the registry refuses it (or the holder
withdraws it). The registry calls ``_licence_settled`` in the transaction of that step
(``registry.on_application_settled``); the monitor catches up on any grant it missed. A grant
that ends takes its licence with it, in the same transaction (``_end_licence``: the application
withdrawn, or the licence right revoked or cancelled by the registry's own operations).

Uses (``use_grant``) are decided by the grant's policy, compiled once per policy hash and cached
per process, once the grant, its mandate and its licence right in the registry are found in
force; a permitted use is counted under the grant's row lock, so the counter never passes the
policy's ``count`` bound however many uses race.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox, ledger, registry
from datafactor.db import Database, new_id, today_cn, utcnow
from datafactor.errors import N_, DomainError, Forbidden, InvalidInput
from datafactor.permissions import Permission, Principal
from datafactor.policy import (
    CompiledPolicy,
    Decision,
    Reason,
    compile_policy,
    parse_policy,
    parse_request,
)
from datafactor.policy.grants.domain import (
    FINAL_STATES,
    LEDGER_KIND,
    MSG_POLICY_EMPTY,
    RECORD_FORMAT,
    STATE_LABELS,
    TRANSITIONS,
    GrantAction,
    GrantDraft,
    GrantRole,
    GrantRules,
    GrantState,
    Mandate,
    Msgid,
    Regime,
    check_channels,
    check_public_channels,
    check_scope_within,
    check_term,
    check_term_within,
    format_grant_number,
    load_grant_rules,
    permits_anything,
    policy_ends,
    policy_max_uses,
    policy_scope,
    prepare_policy,
    transition,
)
from datafactor.policy.grants.errors import (
    GrantInvalid,
    GrantNotFound,
    GrantStateConflict,
    NotGrantor,
)
from datafactor.policy.grants.models import PolicyGrant, PolicyGrantEvent, PolicyGrantSerial
from datafactor.policy.odrl import CST

log = logging.getLogger(__name__)

P = Permission
S = GrantState
A = GrantAction
R = GrantRole

KIND: Final = "policy.grant"  # the inbox kind of every message about a grant
SYSTEM: Final = "grants-monitor"

MSG_NOT_ALLOWED: Final = N_("Your account is not allowed to do this ({permission}).")
MSG_NO_GRANT: Final = N_("No such authorisation.")
MSG_NO_ASSET: Final = N_("No such registry asset.")
MSG_FEE_RANGE: Final = N_("The fee must be a whole number of fen from 0 to {max} (rule {rule}).")
MSG_NO_RIGHT: Final = N_(
    "The grantor holds no registered right on “{asset}” that may license it: the data must be "
    "registered (a holding right in force) before it can be authorised (rule {rule})."
)
MSG_RIGHT_NOT_HELD: Final = N_(
    "Right {right} is not held by the grantor on “{asset}”: name a right the grantor holds on "
    "this asset, or leave it out to use the holding right (rule {rule})."
)
MSG_RIGHT_ENDED: Final = N_(
    "The grantor's right {right} is {status}: only a right in force can license. Reinstate or "
    "renew it first (rule {rule})."
)
MSG_MANDATE_ASSET: Final = N_(
    "“{asset}” is not among the data sets the {regime_label} {reference} covers: a grant under "
    "it may only be over the data it names (rule {rule})."
)
MSG_MANDATE_AGENT: Final = N_(
    "Only the party the {regime_label} {reference} authorises may grant under it (rule {rule})."
)
MSG_MANDATE_MISMATCH: Final = N_(
    "This authorisation was made under {reference}; decide it under the same agreement or deed "
    "(rule {rule})."
)
MSG_GRANTEE_SELF: Final = N_(
    "The holder cannot be granted use of its own data: name another party (rule {rule})."
)
MSG_GRANTEE_UNVERIFIED: Final = N_(
    "The grantee is not a verified party: a grant can be approved only for a party whose "
    "identity the exchange has verified (rule {rule})."
)
MSG_NOT_GRANTEE: Final = N_(
    "Only the grantee's own users can ask for a grant in its name or withdraw its request "
    "(rule {rule})."
)
MSG_REASON: Final = N_("Give a reason, so that the other party knows why (rule {rule}).")
MSG_RESUME: Final = N_(
    "Authorisation {number} cannot resume: its licence right {right} is {status} (rule {rule})."
)
MSG_RESUME_TERM: Final = N_(
    "Authorisation {number} cannot resume: its term ended on {end} (rule {rule})."
)
MSG_REQUEST_KEY: Final = N_(
    "The {key} of a use is the authorisation's own ({expected}); leave it out (rule {rule})."
)
MSG_ROLE_FILTER: Final = N_("role must be grantor or grantee.")
MSG_NO_PARTY: Final = N_(
    "Your party is not a party to authorisation {number}: only its grantor, its grantee or a "
    "regulator may act on it (rule {rule})."
)
MSG_HOLDER_UNDER_MANDATE: Final = N_(
    "Authorisation {number} was made under the {regime_label} {reference}: only the party it "
    "authorises acts on the grant. Ask that party, or act on the agreement or deed itself "
    "(rule {rule})."
)
MSG_AGENT_SELF: Final = N_(
    "The party that grants under the {regime_label} {reference} cannot grant the data to "
    "itself: name another grantee (rule {rule})."
)
MSG_ASSET_HELD: Final = N_(
    "“{asset}” is held under the {regime_label} {reference}: it may be granted only under it, "
    "by the party it authorises (rule {rule})."
)
MSG_USE_CLASS: Final = N_(
    "“{use_class}” is not a use class: name one of {known}, or none (rule {rule})."
)
MSG_COUNT: Final = N_(
    "The policy allows {count} uses: an authorisation may allow at most {max}. Lower the "
    "maximum number of uses, or leave it out (rule {rule})."
)

# Inbox messages (msgids with text parameters; ``*_label`` parameters are msgids too).
MSG_STATE: Final = N_("Authorisation {number} on “{asset}” is now “{state_label}”. {reason}")
MSG_REQUESTED: Final = N_(
    "Authorisation {number}: use of “{asset}” is requested and awaits your decision."
)

# Why the system ended or changed a grant (shown in the history and the messages).
WHY_LICENCE_CERTIFIED: Final = N_("The licence is registered (certificate {certificate}).")
WHY_LICENCE_REFUSED: Final = N_("The registry did not register the licence: {reason}")
WHY_TERM: Final = N_("The authorisation's term ended on {end}.")
WHY_POLICY_TIME: Final = N_("The policy allows no use after {end}.")
WHY_EXHAUSTED: Final = N_("All {count} uses the policy allows have been made.")
WHY_LICENCE_STATUS: Final = N_("The registered licence right {right} is now {status_label}.")
WHY_LICENCE_BACK: Final = N_("The registered licence right {right} is in force again.")
WHY_MANDATE_ENDED: Final = N_("The {regime_label} {reference} ended on {end}.")

# Use refusals that the policy never sees (the grant itself does not allow use).
USE_NOT_ACTIVE: Final = (
    "authorisation {number} is {state}, not in effect: no use is allowed",
    "授权 {number} 当前状态为“{state_zh}”，尚未生效或已终止，不允许使用",
)
USE_OUTSIDE_TERM: Final = (
    "the time {time} is outside the authorisation's term {start} – {end}",
    "使用时间 {time} 不在授权期限 {start} 至 {end} 之内",
)
USE_LICENCE_ENDED: Final = (
    "the registered licence right {right} of authorisation {number} is {status}: no use is allowed",
    "授权 {number} 登记的数据加工使用权 {right} 当前状态为“{status_zh}”，不允许使用",
)
RIGHT_STATUS_ZH: Final[Mapping[str, str]] = {
    "active": "有效",
    "pledged": "已质押",
    "suspended": "已中止",
    "cancelled": "已注销",
    "revoked": "已撤销",
    "expired": "已届满",
    "transferred": "已转让",
}
STATE_ZH: Final[Mapping[str, str]] = {
    S.REQUESTED: "已申请",
    S.APPROVED: "已批准、许可登记中",
    S.ACTIVE: "有效",
    S.SUSPENDED: "已暂停",
    S.REVOKED: "已撤销",
    S.EXPIRED: "已终止",
    S.REFUSED: "未获批准",
    S.WITHDRAWN: "已撤回",
}


audit.register_action_labels(
    {
        "policy:grant:request": N_("Authorisation requested"),
        "policy:grant:offer": N_("Authorisation granted"),
        "policy:grant:approve": N_("Authorisation approved"),
        "policy:grant:refuse": N_("Authorisation refused"),
        "policy:grant:withdraw": N_("Authorisation request withdrawn"),
        "policy:grant:activate": N_("Authorisation in effect"),
        "policy:grant:suspend": N_("Authorisation suspended"),
        "policy:grant:resume": N_("Authorisation resumed"),
        "policy:grant:revoke": N_("Authorisation revoked"),
        "policy:grant:expire": N_("Authorisation ended"),
        "policy:grant:use": N_("Authorisation used"),
    }
)


def _rules() -> GrantRules:
    return load_grant_rules()


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(p) for p in permissions):
        raise Forbidden(MSG_NOT_ALLOWED, permission=permissions[0].value)


def _system_reader() -> Principal:
    """The service reading the parties of a grant (names, whether verified): read only."""
    return Principal(
        user_id="",
        username=SYSTEM,
        party_id="",
        party_kind="",
        roles=frozenset(),
        permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
        via="cli",
    )


def _verified(session: Session, party_id: str) -> bool:
    try:
        party = identity.get_party(session, _system_reader(), party_id)
    except Exception:
        return False
    return str(party.status) == identity.PartyStatus.VERIFIED.value


# ------------------------------------------------------------------------------ compiled cache


class _PolicyCache:
    """Compiled policies by policy hash (the same policy text compiles once per process)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: OrderedDict[str, CompiledPolicy] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, policy_hash: str, document: Mapping[str, Any]) -> CompiledPolicy:
        with self._lock:
            found = self._entries.get(policy_hash)
            if found is not None:
                self._entries.move_to_end(policy_hash)
                return found
        compiled = compile_policy(parse_policy(document))
        with self._lock:
            self._entries[policy_hash] = compiled
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return compiled


_CACHE: Final = _PolicyCache()


def policy_hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(ledger.canonical_json(dict(document))).hexdigest()


# ------------------------------------------------------------------------------------ checks


@dataclass(frozen=True)
class _Checked:
    """What the checks established about a grant to be made."""

    asset: registry.AssetFacts
    right: registry.Right
    holder_id: str
    agent_id: str
    policy: dict[str, Any]
    scope: dict[str, list[str] | None]
    max_uses: int | None


def _grantor_right(
    session: Session,
    asset: registry.AssetFacts,
    holder_id: str,
    right_id: str | None,
    rules: GrantRules,
) -> registry.Right:
    rule = rules.rule_id("grantor_right")
    if right_id:
        right = registry.right_of(session, right_id)
        if right is None or right.asset_id != asset.id or right.holder_id != holder_id:
            raise NotGrantor(
                MSG_RIGHT_NOT_HELD, rule=rule, field="right_id", right=right_id, asset=asset.name
            )
    else:
        held = [
            r
            for r in registry.rights_on_asset(session, asset.id)
            if r.holder_id == holder_id and r.kind is registry.RightKind.HOLDING
        ]
        # An unpledged right in force first; a pledged or ended one is refused below with the
        # registry's own reason.
        held.sort(key=lambda r: (r.status is not registry.RightStatus.ACTIVE, not r.live))
        if not held:
            raise NotGrantor(MSG_NO_RIGHT, rule=rule, field="asset_id", asset=asset.name)
        right = held[0]
    if right.status not in registry.LIVE_STATUSES:
        raise NotGrantor(
            MSG_RIGHT_ENDED,
            rule=rule,
            field="right_id",
            right=right.id,
            status=Msgid(registry.RIGHT_STATUS_LABELS[right.status]),
        )
    return right


def _current_holder(session: Session, asset: registry.AssetFacts, right_id: str | None) -> str:
    """Whom a grantee asks: the holder of the right it names, else of the asset's holding right
    in force (a transferred asset has a new holder), else the party that declared the asset."""
    if right_id:
        right = registry.right_of(session, right_id)
        if right is not None and right.asset_id == asset.id:
            return right.holder_id
    for right in registry.rights_on_asset(session, asset.id):
        if right.kind is registry.RightKind.HOLDING and right.live:
            return right.holder_id
    return asset.party_id


# -------------------------------------------------------------------------------- asset holds


@dataclass(frozen=True)
class AssetHold:
    """A mandate that holds an asset (trust property under a deed in force): the asset may be
    granted only under that mandate. ``reference`` is what the refusal shows (the deed's
    number)."""

    regime: Regime
    reference_id: str
    reference: str


AssetHoldCheck = Callable[[Session, str], Sequence[AssetHold]]
_ASSET_HOLDS: list[AssetHoldCheck] = []


def register_asset_hold(check: AssetHoldCheck) -> Callable[[], None]:
    """Let another domain say which assets it holds: ``check(session, asset_id)`` names the
    mandates holding the asset (data trusts register their deeds in force), and a grant of the
    asset not made under one of them is refused (``GRT-ASSET-HELD``). Returns a function that
    removes the check. Grants never import the domains that hold assets: they register here."""
    if check not in _ASSET_HOLDS:
        _ASSET_HOLDS.append(check)
    return lambda: _ASSET_HOLDS.remove(check) if check in _ASSET_HOLDS else None


def _holds(session: Session, asset_id: str) -> list[AssetHold]:
    return [hold for check in list(_ASSET_HOLDS) for hold in check(session, asset_id)]


@dataclass(frozen=True)
class MandateLapse:
    """Why no grant may be made, approved, resumed or used under a mandate now (its agreement
    suspended or ended, say): ``error`` is raised to whoever would make, approve or resume one;
    ``rule`` with ``en``/``zh`` is the denial of a use."""

    error: DomainError
    rule: str
    en: str
    zh: str


MandateCheck = Callable[[Session, str, date], MandateLapse | None]
_MANDATE_CHECKS: dict[str, list[MandateCheck]] = {}


def register_mandate_check(regime: Regime | str, check: MandateCheck) -> Callable[[], None]:
    """Let the domain a regime belongs to say whether a mandate of it is live:
    ``check(session, reference_id, on)`` returns None while grants may be made, approved,
    resumed and used under that agreement or deed (or when it does not know it), else the
    lapse. Asked by request, offer, approval, resumption and every use. Public-data operation
    registers its agreements' check. Returns a function that removes the check."""
    checks = _MANDATE_CHECKS.setdefault(Regime(regime).value, [])
    if check not in checks:
        checks.append(check)
    return lambda: checks.remove(check) if check in checks else None


def _lapse(
    session: Session, regime: Regime | str, reference_id: str | None, on: date
) -> MandateLapse | None:
    if reference_id is None:
        return None
    for check in list(_MANDATE_CHECKS.get(Regime(regime).value, ())):
        found = check(session, reference_id, on)
        if found is not None:
            return found
    return None


def _require_live_mandate(
    session: Session, regime: Regime | str, reference_id: str | None, on: date
) -> None:
    found = _lapse(session, regime, reference_id, on)
    if found is not None:
        raise found.error


def _sees_asset(session: Session, viewer: Principal, asset: registry.AssetFacts) -> bool:
    """Whether naming ``asset`` in a refusal tells ``viewer`` nothing it may not know: its own
    data, a supervisor's, or data registered with a right in force (its certificates are public
    and name it). Any other asset id is answered as not found, without its name."""
    if viewer.party_id == asset.party_id or viewer.can(P.REGISTRY_ASSET_READ_ALL):
        return True
    return any(r.live for r in registry.rights_on_asset(session, asset.id))


def _check(
    session: Session,
    draft: GrantDraft,
    *,
    viewer: Principal,
    grantor_id: str | None,
    mandate: Mandate | None,
    today: date,
    for_approval: bool,
    new: bool = False,
) -> _Checked:
    """Every rule a grant must meet before it is asked for or approved. ``grantor_id`` is the
    party acting as grantor (None when the grantee asks: the holder is then the asset's);
    ``viewer`` the principal acting (what a refusal may tell it); ``new``: the grant is being
    asked for or granted now (not approved later), so its term may not start in the past."""
    rules = _rules()
    fee = draft.fee_fen
    if not isinstance(fee, int) or isinstance(fee, bool) or not 0 <= fee <= rules.max_fee_fen:
        raise GrantInvalid(
            MSG_FEE_RANGE, rule=rules.rule_id("fee"), field="fee_fen", max=str(rules.max_fee_fen)
        )
    check_term(draft.term_start, draft.term_end, today=today, new=new, rules=rules)
    asset = registry.asset_facts(session, draft.asset_id)
    if asset is None or not _sees_asset(session, viewer, asset):
        raise GrantNotFound(MSG_NO_ASSET, field="asset_id")
    if draft.use_class is not None and draft.use_class not in rules.use_classes:
        raise GrantInvalid(
            MSG_USE_CLASS,
            rule=rules.rule_id("use_class"),
            field="use_class",
            use_class=draft.use_class,
            known=", ".join(sorted(rules.use_classes)),
        )
    if mandate is not None:
        regime_label = Msgid(_mandate_label(mandate.regime))
        if draft.asset_id not in mandate.asset_ids:
            raise GrantInvalid(
                MSG_MANDATE_ASSET,
                rule=rules.rule_id("mandate"),
                field="asset_id",
                asset=asset.name,
                regime_label=regime_label,
                reference=mandate.reference_id,
            )
        if grantor_id is not None and grantor_id != mandate.agent_id:
            raise NotGrantor(
                MSG_MANDATE_AGENT,
                rule=rules.rule_id("mandate"),
                regime_label=regime_label,
                reference=mandate.reference_id,
            )
        if draft.grantee_id == mandate.agent_id:
            # Self-dealing: the agent would license to itself what it manages for another.
            raise GrantInvalid(
                MSG_AGENT_SELF,
                rule=rules.rule_id("agent_self"),
                field="grantee_id",
                regime_label=regime_label,
                reference=mandate.reference_id,
            )
        holder_id, agent_id = mandate.holder_id, mandate.agent_id
    else:
        holder_id = grantor_id or _current_holder(session, asset, draft.right_id)
        agent_id = holder_id
    for hold in _holds(session, asset.id):
        if mandate is None or (Regime(mandate.regime), mandate.reference_id) != (
            hold.regime,
            hold.reference_id,
        ):
            raise GrantInvalid(
                MSG_ASSET_HELD,
                rule=rules.rule_id("asset_held"),
                field="asset_id",
                asset=asset.name,
                regime_label=Msgid(_mandate_label(hold.regime)),
                reference=hold.reference,
            )
    if draft.grantee_id == holder_id:
        raise GrantInvalid(MSG_GRANTEE_SELF, rule=rules.rule_id("grantee"), field="grantee_id")
    if for_approval and not _verified(session, draft.grantee_id):
        raise GrantInvalid(
            MSG_GRANTEE_UNVERIFIED, rule=rules.rule_id("grantee"), field="grantee_id"
        )
    parsed = prepare_policy(
        draft.policy, asset_id=asset.id, grantee_id=draft.grantee_id, rules=rules
    )
    scope = policy_scope(parsed)
    if not parsed.permissions or not permits_anything(scope):
        raise GrantInvalid(MSG_POLICY_EMPTY, rule=rules.rule_id("policy_valid"), field="policy")
    max_uses = policy_max_uses(parsed)
    if max_uses is not None and max_uses > rules.max_count:
        raise GrantInvalid(
            MSG_COUNT,
            rule=rules.rule_id("policy_valid"),
            field="policy.count",
            count=str(max_uses),
            max=str(rules.max_count),
        )
    if asset.data_class == registry.DataClass.PUBLIC.value:
        check_public_channels(scope, asset=asset.name, rules=rules)
    right = _grantor_right(session, asset, holder_id, draft.right_id, rules)
    own = Msgid(N_("the grantor's own right"))
    check_term_within(
        draft.term_start,
        draft.term_end,
        right.term.start,
        right.term.end,
        whose=own,
        rule=rules.rule_id("term_within"),
    )
    check_scope_within(scope, right.scope.as_dict(), whose=own, rule=rules.rule_id("scope_within"))
    if mandate is not None:
        whose = Msgid(_mandate_label(mandate.regime))
        check_term_within(
            draft.term_start,
            draft.term_end,
            mandate.term_start,
            mandate.term_end,
            whose=whose,
            rule=rules.rule_id("mandate"),
        )
        check_scope_within(scope, mandate.scope, whose=whose, rule=rules.rule_id("mandate"))
        if mandate.allowed_channels is not None:
            check_channels(scope, frozenset(mandate.allowed_channels), rules=rules)
    # The registry's own dry run: a pledged right, sub-licensing, a broken chain of title are
    # refused here with the registry's reason, exactly as its certification would.
    registry.check_licence(
        session,
        right_id=right.id,
        licensee_id=draft.grantee_id,
        scope=scope,
        term_start=draft.term_start,
        term_end=draft.term_end,
        on=today,
    )
    return _Checked(
        asset=asset,
        right=right,
        holder_id=holder_id,
        agent_id=agent_id,
        policy=parsed.to_jsonld(),
        scope=scope,
        max_uses=max_uses,
    )


def _mandate_label(regime: Regime | str) -> str:
    return {
        Regime.OPERATION.value: N_("public data operation agreement"),
        Regime.TRUST.value: N_("trust deed"),
    }.get(Regime(regime).value, N_("mandate"))


# ----------------------------------------------------------------------------------- writing


def _next_number(session: Session, year: int) -> str:
    """The next grant number of ``year``, from the row-locked per-year counter."""
    stmt = select(PolicyGrantSerial).where(PolicyGrantSerial.year == year).with_for_update()
    counter = session.execute(stmt).scalar_one_or_none()
    if counter is None:
        try:
            with session.begin_nested():
                session.add(PolicyGrantSerial(year=year, last_serial=0))
        except IntegrityError:
            pass  # a concurrent first grant of the year created it: lock that row instead
        counter = session.execute(stmt).scalar_one()
    counter.last_serial += 1
    session.flush()
    return format_grant_number(year, counter.last_serial)


def _parties(grant: PolicyGrant) -> list[str]:
    return sorted({grant.holder_id, grant.agent_id, grant.grantee_id})


def _asset_name(session: Session, asset_id: str) -> str:
    facts = registry.asset_facts(session, asset_id)
    return facts.name if facts is not None else asset_id


def _payload(grant: PolicyGrant, action: GrantAction, on: date, issuer_name: str) -> dict[str, Any]:
    """The decision record: ids, policy hash, scope, term and rules only (a ledger entry is
    public forever: no names, no free text)."""
    rules = _rules()
    return {
        "format": RECORD_FORMAT,
        "number": grant.number,
        "grant_id": grant.id,
        "action": action.value,
        "state": grant.state,
        "on": on.isoformat(),
        "at": datetime.now(UTC).isoformat(),
        "regime": grant.regime,
        "reference_id": grant.reference_id,
        "holder_id": grant.holder_id,
        "agent_id": grant.agent_id,
        "grantee_id": grant.grantee_id,
        "asset_id": grant.asset_id,
        "right_id": grant.right_id,
        "policy_hash": grant.policy_hash,
        "scope": grant.scope,
        "term": {"start": grant.term_start.isoformat(), "end": grant.term_end.isoformat()},
        "use_class": grant.use_class,
        "fee_fen": grant.fee_fen,
        "licence_application_id": grant.licence_application_id,
        "licence_right_id": grant.licence_right_id,
        "rules": list(grant.rules),
        "rules_version": rules.version,
        "issuer": issuer_name,
    }


_RECORDED: Final = frozenset(
    {A.OFFER, A.APPROVE, A.REFUSE, A.ACTIVATE, A.SUSPEND, A.RESUME, A.REVOKE, A.EXPIRE}
)


def _step(
    session: Session,
    grant: PolicyGrant,
    action: GrantAction,
    role: GrantRole,
    principal: Principal | None,
    *,
    on: date,
    reason: str = "",
    params: Mapping[str, str] | None = None,
    rules: Sequence[str] = (),
    issuer: registry.Issuer | None = None,
    notify: bool = True,
) -> PolicyGrant:
    """Move ``grant`` by ``action`` (refused unless the state machine allows it for ``role``),
    with its history row, audit events, ledger record and messages, in this transaction.
    ``reason`` is a person's text, or — with ``params`` — the msgid of the system's reason."""
    source = None if not grant.state else GrantState(grant.state)
    target = transition(source, action, role, number=grant.number, rules=_rules())
    applied = [*rules, _rules().rule_id("transition")]
    grant.state = target.value
    grant.state_since = on
    grant.reason = reason
    grant.reason_params = None if params is None else dict(params)
    grant.rules = list(dict.fromkeys(applied))
    grant.updated_at = utcnow()
    session.flush()
    index: int | None = None
    if action in _RECORDED:
        record = _payload(grant, action, on, issuer.name if issuer else "")
        record["rules"] = [*record["rules"], _rules().rule_id("certificate")]
        if issuer is not None:
            signature = issuer.signer.sign(ledger.canonical_json(record))
            grant.record = record
            grant.signature = base64.b64encode(signature).decode("ascii")
            grant.signing_key = issuer.signer.verifier().key_string()
        index = ledger.append_event(session, LEDGER_KIND, record)
        grant.ledger_index = index
    session.add(
        PolicyGrantEvent(
            grant_id=grant.id,
            action=action.value,
            source=None if source is None else source.value,
            target=target.value,
            role=role.value,
            actor_user_id=principal.user_id if principal else None,
            actor_name=principal.username if principal else SYSTEM,
            actor_party_id=principal.party_id if principal else None,
            reason=reason,
            reason_params=grant.reason_params,
            rules=list(grant.rules),
            on=on,
            ledger_index=index,
        )
    )
    session.flush()
    summary = (
        f"Authorisation {grant.number} {action.value}: "
        f"{source.value if source else '-'} -> {target.value}"
        + (f" (ledger entry {index})" if index is not None else "")
    )
    said = reason.format(**params) if params is not None else reason
    for party in _parties(grant):
        audit.record(
            session,
            actor=principal,
            action=f"policy:grant:{action.value}",
            object_type="policy_grant",
            object_id=grant.id,
            summary=summary,
            party_id=party,
            reasons=[r for r in (said, *grant.rules) if r],
            actor_name=None if principal else SYSTEM,
        )
    if target in FINAL_STATES and source in _LICENSED:
        _end_licence(session, grant, action, on)
    if notify:
        # A person's reason travels with the message; the system's is on the grant's page.
        _tell(session, grant, target, reason if params is None else "")
    return grant


# An approved grant has a licence application in the registry; an active or suspended one a
# licence right.
_LICENSED: Final = frozenset({S.APPROVED, S.ACTIVE, S.SUSPENDED})


def _end_licence(session: Session, grant: PolicyGrant, action: GrantAction, on: date) -> None:
    """The grant has ended: its licence ends with it, in this transaction, through the
    registry's own operations — an application still open is withdrawn in the holder's name
    (the hook then finds the grant already ended), a licence right in force is revoked with a
    revoked grant and cancelled with one that ended otherwise (so its certificate verifies as
    such and rights derived from it are suspended). When the registry itself ended it (the
    application refused or withdrawn, the right cancelled, revoked or expired), there is
    nothing left to do."""
    why = f"authorisation {grant.number} {action.value}"
    if grant.licence_right_id:
        registry.end_licence(
            session, grant.licence_right_id, revoked=action is A.REVOKE, reason=why, today=on
        )
    elif grant.licence_application_id:
        registry.withdraw_licence_application(
            session, grant.licence_application_id, reason=why, today=on
        )


def _tell(session: Session, grant: PolicyGrant, state: GrantState, reason: str) -> None:
    inbox.notify(
        session,
        _parties(grant),
        kind=KIND,
        message=MSG_STATE,
        params={
            "number": grant.number,
            "asset": _asset_name(session, grant.asset_id),
            "state_label": STATE_LABELS[state],
            "reason": reason,
        },
        link=f"/grants/{grant.id}",
    )


def _new_grant(
    session: Session,
    principal: Principal,
    draft: GrantDraft,
    checked: _Checked,
    mandate: Mandate | None,
    on: date,
) -> PolicyGrant:
    grant = PolicyGrant(
        id=new_id(),
        number=_next_number(session, on.year),
        state="",
        regime=Regime(mandate.regime if mandate else Regime.DIRECT).value,
        reference_id=mandate.reference_id if mandate else None,
        mandate=mandate.as_dict() if mandate else None,
        holder_id=checked.holder_id,
        agent_id=checked.agent_id,
        grantee_id=draft.grantee_id,
        asset_id=checked.asset.id,
        right_id=checked.right.id,
        policy=checked.policy,
        policy_hash=policy_hash(checked.policy),
        scope=checked.scope,
        term_start=draft.term_start,
        term_end=draft.term_end,
        purpose_note=draft.purpose_note,
        use_class=draft.use_class,
        fee_fen=draft.fee_fen,
        uses=0,
        max_uses=checked.max_uses,
        state_since=on,
        reason="",
        rules=[],
        created_by=principal.user_id or None,
    )
    session.add(grant)
    session.flush()
    return grant


def _rule_ids(*keys: str) -> list[str]:
    rules = _rules()
    return [rules.rule_id(k) for k in keys]


_CHECK_RULES: Final = (
    "grantor_right",
    "scope_within",
    "term_within",
    "term",
    "policy_valid",
    "policy_parties",
    "grantee",
)


# ------------------------------------------------------------------------------- use cases


def request_grant(
    session: Session,
    principal: Principal,
    draft: GrantDraft,
    *,
    mandate: Mandate | None = None,
    today: date | None = None,
) -> PolicyGrant:
    """The grantee asks for a grant (state *requested*): checked against the grantor's right
    (and the mandate) at once, so a request beyond them is refused with the reason; the grantor
    (the holder, or the mandate's agent) is told."""
    _require(principal, P.POLICY_GRANT_REQUEST)
    on = today or today_cn()
    if draft.grantee_id != principal.party_id:
        raise NotGrantor(MSG_NOT_GRANTEE, rule=_rules().rule_id("actor"), field="grantee_id")
    if mandate is not None:
        _require_live_mandate(session, mandate.regime, mandate.reference_id, on)
    checked = _check(
        session,
        draft,
        viewer=principal,
        grantor_id=None,
        mandate=mandate,
        today=on,
        for_approval=False,
        new=True,
    )
    grant = _new_grant(session, principal, draft, checked, mandate, on)
    _step(
        session,
        grant,
        A.REQUEST,
        R.GRANTEE,
        principal,
        on=on,
        rules=_rule_ids(*_CHECK_RULES),
        notify=False,
    )
    inbox.notify(
        session,
        sorted({grant.agent_id, grant.holder_id}),
        kind=KIND,
        message=MSG_REQUESTED,
        params={"number": grant.number, "asset": checked.asset.name},
        link=f"/grants/{grant.id}",
    )
    return grant


def regime_permissions(regime: Regime | str) -> tuple[Permission, ...]:
    """What the grantor's user needs to act on a grant of ``regime``: deciding its party's own
    grants (direct); operating public data — or, for the implementing body's own licence to
    its operator, authorising it (operation); managing trusts (trust)."""
    return {
        Regime.DIRECT: (P.POLICY_GRANT_DECIDE,),
        Regime.OPERATION: (P.POLICY_OPERATION_OPERATE, P.POLICY_OPERATION_AUTHORISE),
        Regime.TRUST: (P.POLICY_TRUST_MANAGE,),
    }[Regime(regime)]


def _may_decide(principal: Principal, mandate: Mandate | None) -> None:
    _require(principal, *regime_permissions(mandate.regime if mandate else Regime.DIRECT))


def offer_grant(
    session: Session,
    principal: Principal,
    draft: GrantDraft,
    *,
    mandate: Mandate | None = None,
    issuer: registry.Issuer,
    today: date | None = None,
    backdated: bool = False,
) -> PolicyGrant:
    """The grantor (the holder, or the mandate's agent) grants directly: checked, approved at
    once (signed record to the ledger) and its licence application filed in the registry.
    ``backdated`` is for the platform's own grants only (the licence of a public-data operation
    agreement from its signing day): anyone else's grant starts no earlier than today."""
    _may_decide(principal, mandate)
    on = today or today_cn()
    if mandate is not None:
        _require_live_mandate(session, mandate.regime, mandate.reference_id, on)
    checked = _check(
        session,
        draft,
        viewer=principal,
        grantor_id=principal.party_id,
        mandate=mandate,
        today=on,
        for_approval=True,
        new=not backdated,
    )
    grant = _new_grant(session, principal, draft, checked, mandate, on)
    _step(
        session,
        grant,
        A.OFFER,
        R.GRANTOR,
        principal,
        on=on,
        rules=_rule_ids(*_CHECK_RULES, "licence"),
        issuer=issuer,
    )
    _file_licence(session, principal, grant, mandate, issuer=issuer, on=on)
    return grant


def _draft_of(grant: PolicyGrant) -> GrantDraft:
    return GrantDraft(
        asset_id=grant.asset_id,
        grantee_id=grant.grantee_id,
        policy=grant.policy,
        term_start=grant.term_start,
        term_end=grant.term_end,
        right_id=grant.right_id,
        purpose_note=grant.purpose_note,
        use_class=grant.use_class,
        fee_fen=grant.fee_fen,
    )


def _mandate_of(grant: PolicyGrant, given: Mandate | None) -> Mandate | None:
    """The mandate a decision on ``grant`` is made under: the one the caller passes (the live
    agreement or deed), else the one recorded when the grant was made."""
    if grant.reference_id is None:
        return None
    if given is not None:
        if given.reference_id != grant.reference_id or Regime(given.regime).value != grant.regime:
            raise GrantInvalid(
                MSG_MANDATE_MISMATCH,
                rule=_rules().rule_id("mandate"),
                reference=grant.reference_id,
            )
        return given
    return Mandate.from_dict(grant.mandate) if grant.mandate else None


def _file_licence(
    session: Session,
    principal: Principal,
    grant: PolicyGrant,
    mandate: Mandate | None,
    *,
    issuer: registry.Issuer,
    on: date,
) -> None:
    """File the licence in the holder's name; a formal review that refuses it at once ends the
    grant as refused in this transaction."""
    application = registry.file_licence(
        session,
        principal,
        right_id=grant.right_id,
        licensee_id=grant.grantee_id,
        scope=grant.scope,
        term_start=grant.term_start,
        term_end=grant.term_end,
        issuer=issuer,
        today=on,
        mandate=None
        if mandate is None
        else {"regime": Regime(mandate.regime).value, "reference_id": mandate.reference_id},
    )
    grant.licence_application_id = application.id
    session.flush()
    outcome = registry.application_outcome(session, application.id)
    if outcome is not None:
        _follow(session, grant, outcome, on=on)


def _grantor_of(session: Session, principal: Principal, grant: PolicyGrant) -> GrantRole:
    """The role ``principal``'s party plays on ``grant``: the grantor — the holder granting on
    its own account, or under a mandate only the mandate's agent (the holder who gave the
    mandate acts on the agreement or deed, not on the grants made under it) —, the grantee, or
    a regulator whose user may revoke any grant."""
    party = principal.party_id
    if party == grant.agent_id:
        return R.GRANTOR
    if party == grant.grantee_id:
        return R.GRANTEE
    if principal.can(P.POLICY_GRANT_REVOKE_ANY):
        return R.REGULATOR
    if party == grant.holder_id and grant.reference_id is not None:
        raise NotGrantor(
            MSG_HOLDER_UNDER_MANDATE,
            rule=_rules().rule_id("mandate"),
            number=grant.number,
            regime_label=Msgid(_mandate_label(grant.regime)),
            reference=grant.reference_id,
        )
    # Anyone else — a supervisor who reads every grant included — is no party to it.
    raise NotGrantor(MSG_NO_PARTY, rule=_rules().rule_id("actor"), number=grant.number)


def _as_grantor(principal: Principal, grant: PolicyGrant, role: GrantRole) -> None:
    """A grantor's user acts only with the permission of the grant's regime (an operator's
    staff operate public data; they do not decide the party's own direct grants)."""
    if role is R.GRANTOR:
        _require(principal, *regime_permissions(grant.regime))


# Any of these lets a user try a grantor's (or a regulator's) step; which one it needs is
# settled once the grant, its regime and the user's role in it are known.
_ACTING: Final = (
    P.POLICY_GRANT_DECIDE,
    P.POLICY_OPERATION_OPERATE,
    P.POLICY_OPERATION_AUTHORISE,
    P.POLICY_TRUST_MANAGE,
)


def _locked(session: Session, principal: Principal, grant_id: str) -> PolicyGrant:
    grant = session.execute(
        select(PolicyGrant)
        .where(PolicyGrant.id == grant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if grant is None or not _visible(principal, grant):
        raise GrantNotFound(MSG_NO_GRANT)
    return grant


def decide_grant(
    session: Session,
    principal: Principal,
    grant_id: str,
    *,
    approve: bool,
    reason: str = "",
    mandate: Mandate | None = None,
    issuer: registry.Issuer,
    today: date | None = None,
) -> PolicyGrant:
    """The grantor approves (checked again, signed, licence filed) or refuses (with a reason) a
    requested grant."""
    on = today or today_cn()
    grant = _locked(session, principal, grant_id)
    if grant.reference_id is not None and mandate is None:
        # A request under an agreement or a deed is decided where that regime checks what it
        # adds (the fee published and under the cap, the deed in effect) and keeps its records,
        # never against the mandate as it stood when the request was made.
        raise GrantInvalid(
            MSG_MANDATE_MISMATCH, rule=_rules().rule_id("mandate"), reference=grant.reference_id
        )
    live = _mandate_of(grant, mandate)
    _may_decide(principal, live)
    role = _grantor_of(session, principal, grant)  # a regulator revokes; it never decides
    if not approve:
        if not reason.strip():
            raise InvalidInput(MSG_REASON, field="reason", rule=_rules().rule_id("actor"))
        return _step(
            session, grant, A.REFUSE, role, principal, on=on, reason=reason.strip(), issuer=issuer
        )
    # Refused now if the state or the role does not allow it, before anything is checked.
    transition(GrantState(grant.state), A.APPROVE, role, number=grant.number, rules=_rules())
    _require_live_mandate(session, grant.regime, grant.reference_id, on)
    _check(
        session,
        _draft_of(grant),
        viewer=principal,
        grantor_id=principal.party_id,
        mandate=live,
        today=on,
        for_approval=True,
    )
    _step(
        session,
        grant,
        A.APPROVE,
        role,
        principal,
        on=on,
        reason=reason.strip(),
        rules=_rule_ids(*_CHECK_RULES, "licence"),
        issuer=issuer,
    )
    _file_licence(session, principal, grant, live, issuer=issuer, on=on)
    return grant


def suspend_grant(
    session: Session, principal: Principal, grant_id: str, *, reason: str, today: date | None = None
) -> PolicyGrant:
    """The grantor suspends an active grant (uses are refused until it resumes)."""
    _require(principal, *_ACTING)
    on = today or today_cn()
    grant = _locked(session, principal, grant_id)
    if not reason.strip():
        raise InvalidInput(MSG_REASON, field="reason", rule=_rules().rule_id("actor"))
    role = _grantor_of(session, principal, grant)
    transition(GrantState(grant.state), A.SUSPEND, role, number=grant.number, rules=_rules())
    _as_grantor(principal, grant, role)
    return _step(session, grant, A.SUSPEND, role, principal, on=on, reason=reason.strip())


def resume_grant(
    session: Session, principal: Principal, grant_id: str, *, reason: str, today: date | None = None
) -> PolicyGrant:
    """The grantor resumes a suspended grant, provided its term has not ended and its licence
    right is in force."""
    _require(principal, *_ACTING)
    on = today or today_cn()
    grant = _locked(session, principal, grant_id)
    role = _grantor_of(session, principal, grant)
    transition(GrantState(grant.state), A.RESUME, role, number=grant.number, rules=_rules())
    _as_grantor(principal, grant, role)
    _require_live_mandate(session, grant.regime, grant.reference_id, on)
    _require_resumable(session, grant, on)
    return _step(session, grant, A.RESUME, role, principal, on=on, reason=reason.strip())


def _require_resumable(session: Session, grant: PolicyGrant, on: date) -> None:
    rule = _rules().rule_id("monitor")
    if grant.term_end < on:
        raise GrantStateConflict(
            MSG_RESUME_TERM, rule=rule, number=grant.number, end=grant.term_end.isoformat()
        )
    right = registry.right_of(session, grant.licence_right_id) if grant.licence_right_id else None
    if right is not None and right.status not in registry.LIVE_STATUSES:
        raise GrantStateConflict(
            MSG_RESUME,
            rule=rule,
            number=grant.number,
            right=right.id,
            status=Msgid(registry.RIGHT_STATUS_LABELS[right.status]),
        )


def revoke_grant(
    session: Session, principal: Principal, grant_id: str, *, reason: str, today: date | None = None
) -> PolicyGrant:
    """The grantor, or a regulator's administrator, revokes a grant that has not ended (final);
    its licence ends with it."""
    # A supervisor without the regulator administrator's permission is told that one.
    needed = (*_ACTING, P.POLICY_GRANT_REVOKE_ANY)
    if principal.can(P.POLICY_GRANT_READ_ALL):
        needed = (P.POLICY_GRANT_REVOKE_ANY, *_ACTING)
    _require(principal, *needed)
    on = today or today_cn()
    grant = _locked(session, principal, grant_id)
    if not reason.strip():
        raise InvalidInput(MSG_REASON, field="reason", rule=_rules().rule_id("actor"))
    role = _grantor_of(session, principal, grant)
    transition(GrantState(grant.state), A.REVOKE, role, number=grant.number, rules=_rules())
    _as_grantor(principal, grant, role)
    return _step(session, grant, A.REVOKE, role, principal, on=on, reason=reason.strip())


def withdraw_grant(
    session: Session, principal: Principal, grant_id: str, *, today: date | None = None
) -> PolicyGrant:
    """The grantee withdraws its request before it is decided."""
    _require(principal, P.POLICY_GRANT_REQUEST)
    on = today or today_cn()
    grant = _locked(session, principal, grant_id)
    role = R.GRANTEE if principal.party_id == grant.grantee_id else R.SYSTEM
    if role is not R.GRANTEE:
        raise NotGrantor(MSG_NOT_GRANTEE, rule=_rules().rule_id("actor"))
    return _step(session, grant, A.WITHDRAW, role, principal, on=on)


def end_grants_under(
    session: Session,
    regime: Regime,
    reference_id: str,
    *,
    state: GrantState,
    reason: str,
    actor: Principal | None,
    today: date | None = None,
) -> list[PolicyGrant]:
    """An agreement or deed has ended: every grant under it that has not ended is revoked (or
    expired), its licence with it, audited, and its parties told. Returns the grants ended."""
    if state not in (S.REVOKED, S.EXPIRED):
        raise ValueError("end_grants_under ends grants as revoked or expired")
    return change_grants_under(
        session,
        regime,
        reference_id,
        A.REVOKE if state is S.REVOKED else A.EXPIRE,
        reason=reason,
        actor=actor,
        today=today,
    )


def change_grants_under(
    session: Session,
    regime: Regime,
    reference_id: str,
    action: GrantAction,
    *,
    states: Iterable[GrantState] | None = None,
    grant_ids: Iterable[str] | None = None,
    reason: str,
    actor: Principal | None,
    today: date | None = None,
) -> list[PolicyGrant]:
    """The agreement or deed a grant was made under changed: ``action`` (suspend, resume,
    revoke, expire) every grant under it — only those in ``states`` and among ``grant_ids`` when
    given — as the system's step, recorded with the person who changed the agreement or deed
    (``actor``). The holder who gave the mandate acts on its grants only this way. Returns the
    grants changed (oldest id first)."""
    if action not in (A.SUSPEND, A.RESUME, A.REVOKE, A.EXPIRE):
        raise ValueError("change_grants_under suspends, resumes, revokes or expires")
    on = today or today_cn()
    wanted = None if states is None else [GrantState(x).value for x in states]
    ids = None if grant_ids is None else set(grant_ids)
    stmt = (
        select(PolicyGrant)
        .where(
            PolicyGrant.regime == Regime(regime).value,
            PolicyGrant.reference_id == reference_id,
            PolicyGrant.state.notin_([x.value for x in FINAL_STATES]),
        )
        .order_by(PolicyGrant.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if wanted is not None:
        stmt = stmt.where(PolicyGrant.state.in_(wanted))
    changed = []
    for grant in list(session.scalars(stmt)):
        if ids is not None and grant.id not in ids:
            continue
        if not TRANSITIONS[action].allows(GrantState(grant.state), R.SYSTEM):
            continue
        if action is A.RESUME:
            _require_resumable(session, grant, on)
        _step(
            session,
            grant,
            action,
            R.SYSTEM,
            actor,
            on=on,
            reason=reason,
            rules=_rule_ids("mandate", "monitor"),
        )
        changed.append(grant)
    return changed


# ------------------------------------------------------------------------ the registry's answer


def _follow(
    session: Session, grant: PolicyGrant, outcome: registry.ApplicationOutcome, *, on: date
) -> None:
    """Take an approved grant where its licence application went: certified → active (the
    licence right and certificate recorded); refused or withdrawn → refused (the registry's
    reason); anything else → still waiting."""
    if grant.state != S.APPROVED.value:
        return
    if outcome.state == "certified" and outcome.result_right_id:
        grant.licence_right_id = outcome.result_right_id
        grant.licence_certificate = outcome.certificate_number
        _step(
            session,
            grant,
            A.ACTIVATE,
            R.SYSTEM,
            None,
            on=on,
            reason=WHY_LICENCE_CERTIFIED,
            params={"certificate": outcome.certificate_number or "—"},
            rules=_rule_ids("licence"),
        )
    elif outcome.state in ("refused", "withdrawn"):
        why = outcome.reason or outcome.state
        _step(
            session,
            grant,
            A.REFUSE,
            R.SYSTEM,
            None,
            on=on,
            reason=WHY_LICENCE_REFUSED,
            params={"reason": why},
            rules=[*(r for r in (outcome.rule,) if r), *_rule_ids("licence")],
        )


def _licence_settled(session: Session, outcome: registry.ApplicationOutcome) -> None:
    """The registry settled an application (certified, refused, withdrawn): follow it on the
    grants that filed it, in the same transaction. A licence certified for a grant that has
    already ended (revoked or expired while the registry worked) is cancelled at once: no
    licence outlives its authorisation."""
    if outcome.type != registry.RegistrationType.LICENCE.value:
        return
    grants = session.scalars(
        select(PolicyGrant)
        .where(PolicyGrant.licence_application_id == outcome.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    on = outcome.settled_on or today_cn()
    for grant in list(grants):
        if grant.state == S.APPROVED.value:
            _follow(session, grant, outcome, on=on)
        elif (
            GrantState(grant.state) in FINAL_STATES
            and outcome.state == "certified"
            and outcome.result_right_id
        ):
            registry.end_licence(
                session,
                outcome.result_right_id,
                revoked=grant.state == S.REVOKED.value,
                reason=f"authorisation {grant.number} {grant.state}",
                today=on,
            )


registry.on_application_settled(_licence_settled)


# --------------------------------------------------------------------------------- reading


def _visible(principal: Principal, grant: PolicyGrant) -> bool:
    if principal.party_id in (grant.holder_id, grant.agent_id, grant.grantee_id):
        return principal.can(P.POLICY_GRANT_READ) or principal.can(P.POLICY_GRANT_READ_ALL)
    return principal.can(P.POLICY_GRANT_READ_ALL)


def get_grant(session: Session, principal: Principal, grant_id: str) -> PolicyGrant:
    """A grant its holder, agent or grantee (or a supervisor) may see; others: not found."""
    _require(principal, P.POLICY_GRANT_READ, P.POLICY_GRANT_READ_ALL)
    grant = session.get(PolicyGrant, grant_id)
    if grant is None or not _visible(principal, grant):
        raise GrantNotFound(MSG_NO_GRANT)
    return grant


def grant_events(session: Session, grant_id: str) -> list[PolicyGrantEvent]:
    return list(
        session.scalars(
            select(PolicyGrantEvent)
            .where(PolicyGrantEvent.grant_id == grant_id)
            .order_by(PolicyGrantEvent.at, PolicyGrantEvent.id)
        )
    )


def _query(
    principal: Principal,
    *,
    state: str | None,
    regime: str | None,
    reference_id: str | None,
    role: str | None,
    asset_id: str | None = None,
) -> Select[Any]:
    _require(principal, P.POLICY_GRANT_READ, P.POLICY_GRANT_READ_ALL)
    stmt = select(PolicyGrant)
    party = principal.party_id
    as_grantor = (PolicyGrant.agent_id == party) | (PolicyGrant.holder_id == party)
    if role == "grantor":
        stmt = stmt.where(as_grantor)
    elif role == "grantee":
        stmt = stmt.where(PolicyGrant.grantee_id == party)
    elif role not in (None, "", "all"):
        raise InvalidInput(MSG_ROLE_FILTER, field="role")
    elif not principal.can(P.POLICY_GRANT_READ_ALL):
        stmt = stmt.where(as_grantor | (PolicyGrant.grantee_id == party))
    if state:
        stmt = stmt.where(PolicyGrant.state == state)
    if regime:
        stmt = stmt.where(PolicyGrant.regime == regime)
    if reference_id:
        stmt = stmt.where(PolicyGrant.reference_id == reference_id)
    if asset_id:
        stmt = stmt.where(PolicyGrant.asset_id == asset_id)
    return stmt


def list_grants(
    session: Session,
    principal: Principal,
    *,
    state: str | None = None,
    regime: str | None = None,
    reference_id: str | None = None,
    role: str | None = None,
    asset_id: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[PolicyGrant]:
    """Grants the principal's party is in (as grantor — holder or agent — or grantee), or
    every grant for a supervisor; ``role`` narrows to one side. Newest first."""
    stmt = _query(
        principal,
        state=state,
        regime=regime,
        reference_id=reference_id,
        role=role,
        asset_id=asset_id,
    )
    rows = session.scalars(
        stmt.order_by(PolicyGrant.created_at.desc(), PolicyGrant.id).limit(limit).offset(offset)
    )
    return list(rows)


def count_grants(
    session: Session,
    principal: Principal,
    *,
    state: str | None = None,
    regime: str | None = None,
    reference_id: str | None = None,
    role: str | None = None,
    asset_id: str | None = None,
) -> int:
    stmt = _query(
        principal,
        state=state,
        regime=regime,
        reference_id=reference_id,
        role=role,
        asset_id=asset_id,
    )
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def grants_under(session: Session, regime: Regime | str, reference_id: str) -> list[PolicyGrant]:
    """Every grant made under an agreement or deed (no permission check: for the operation and
    trust services' own pages and reports), oldest first."""
    return list(
        session.scalars(
            select(PolicyGrant)
            .where(
                PolicyGrant.regime == Regime(regime).value,
                PolicyGrant.reference_id == reference_id,
            )
            .order_by(PolicyGrant.created_at, PolicyGrant.id)
        )
    )


# ------------------------------------------------------------------------------------- uses

_ENDED_RIGHT: Final = {
    registry.RightStatus.EXPIRED: A.EXPIRE,
    registry.RightStatus.CANCELLED: A.REVOKE,
    registry.RightStatus.REVOKED: A.REVOKE,
    registry.RightStatus.TRANSFERRED: A.REVOKE,
}
_USABLE_RIGHT: Final = frozenset({registry.RightStatus.ACTIVE, registry.RightStatus.PLEDGED})


@dataclass(frozen=True)
class UseOutcome:
    """The answer to a use: the policy's decision (or the grant's refusal), the grant after it,
    and whether the use was counted."""

    decision: Decision
    grant: PolicyGrant
    counted: bool = False

    @property
    def uses(self) -> int:
        return self.grant.uses

    @property
    def remaining(self) -> int | None:
        return self.grant.remaining

    def as_dict(self, locale: str = "en") -> dict[str, Any]:
        out = self.decision.as_dict(locale)
        out["uses"] = self.uses
        out["remaining"] = self.remaining
        return out


_FILLED: Final = ("target", "assignee", "count_so_far")


def _deny(rule: str, texts: tuple[str, str], **params: str) -> Decision:
    return Decision(
        "deny", (Reason(rule, texts[0].format(**params), texts[1].format(**params)),), (), (rule,)
    )


def use_grant(
    session: Session,
    principal: Principal,
    grant_id: str,
    request: Mapping[str, Any],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> UseOutcome:
    """The grantee asks to use the data under ``grant_id``: the grant must be active and within
    its term, and its policy must permit ``request`` (a policy request; the target, assignee,
    time and uses so far are the grant's). A permit that is not a dry run is counted under the
    grant's row lock. A refusal is a decision with its reasons, not an error; every use (not a
    dry run) is audited."""
    _require(principal, P.POLICY_GRANT_REQUEST)
    rules = _rules()
    moment = now or utcnow()
    grant = (
        get_grant(session, principal, grant_id)
        if dry_run
        else _locked(session, principal, grant_id)
    )
    if principal.party_id != grant.grantee_id:
        raise NotGrantor(MSG_NOT_GRANTEE, rule=rules.rule_id("actor"))
    body = dict(request)
    for key in _FILLED:
        expected: Any = {
            "target": grant.asset_id,
            "assignee": grant.grantee_id,
            "count_so_far": grant.uses,
        }[key]
        if key in body and body[key] != expected:
            raise InvalidInput(
                MSG_REQUEST_KEY,
                field=key,
                key=key,
                expected=str(expected),
                rule=rules.rule_id("use"),
            )
    body.update(
        target=grant.asset_id,
        assignee=grant.grantee_id,
        count_so_far=grant.uses,
        time=moment.astimezone(CST).isoformat(),
    )
    parsed = parse_request(body)
    rule = rules.rule_id("use")
    local_day = moment.astimezone(CST).date()
    licence = (
        registry.right_of(session, grant.licence_right_id)
        if grant.state == S.ACTIVE.value and grant.licence_right_id
        else None
    )
    if grant.state != S.ACTIVE.value:
        decision = _deny(
            rule,
            USE_NOT_ACTIVE,
            number=grant.number,
            state=grant.state,
            state_zh=STATE_ZH.get(grant.state, grant.state),
        )
    elif not grant.term_start <= local_day <= grant.term_end:
        decision = _deny(
            rule,
            USE_OUTSIDE_TERM,
            time=body["time"],
            start=grant.term_start.isoformat(),
            end=grant.term_end.isoformat(),
        )
    elif (lapse := _lapse(session, grant.regime, grant.reference_id, local_day)) is not None:
        # The agreement or deed the grant was made under is suspended or has ended.
        decision = Decision("deny", (Reason(lapse.rule, lapse.en, lapse.zh),), (), (lapse.rule,))
    elif licence is not None and licence.status not in _USABLE_RIGHT:
        # The registry ended or suspended the licence since the monitor last looked: no use,
        # and the grant follows the licence now rather than at the next hourly run.
        decision = _deny(
            rule,
            USE_LICENCE_ENDED,
            number=grant.number,
            right=licence.id,
            status=licence.status.value,
            status_zh=RIGHT_STATUS_ZH.get(licence.status.value, licence.status.value),
        )
        if dry_run:
            grant = _locked(session, principal, grant_id)
        _follow_licence_right(session, grant, licence, on=local_day)
    else:
        decision = _CACHE.get(grant.policy_hash, grant.policy).decide(parsed)
    counted = False
    if not dry_run:
        if decision.permitted:
            grant.uses += 1
            grant.updated_at = utcnow()
            counted = True
        session.flush()
        audit.record(
            session,
            actor=principal,
            action="policy:grant:use",
            object_type="policy_grant",
            object_id=grant.id,
            summary=f"Use of authorisation {grant.number}: {decision.decision}"
            f" ({parsed.action}; uses {grant.uses})",
            party_id=grant.grantee_id,
            reasons=[rule, *decision.rules],
        )
        if counted and grant.max_uses is not None and grant.uses >= grant.max_uses:
            _step(
                session,
                grant,
                A.EXPIRE,
                R.SYSTEM,
                None,
                on=local_day,
                reason=WHY_EXHAUSTED,
                params={"count": str(grant.max_uses)},
                rules=_rule_ids("monitor"),
            )
    return UseOutcome(decision, grant, counted)


# ---------------------------------------------------------------------------------- monitor


@dataclass
class MonitorReport:
    """What one run of the monitor changed (grant numbers by what happened), and the grants it
    could not check (``failed``: logged, tried again at the next run)."""

    activated: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(v for k, v in self.as_dict().items() if k != "failed")

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "activated": self.activated,
            "refused": self.refused,
            "expired": self.expired,
            "suspended": self.suspended,
            "resumed": self.resumed,
            "revoked": self.revoked,
            "failed": self.failed,
        }

    def merge(self, other: MonitorReport) -> None:
        for key, values in other.as_dict().items():
            getattr(self, key).extend(values)


def _suspended_by_system(session: Session, grant: PolicyGrant) -> bool:
    """Whether the grant's suspension is the licence's (the monitor's or a use's, made when the
    registry suspended the licence right) — not a person's, nor an agreement's."""
    last = session.scalars(
        select(PolicyGrantEvent)
        .where(PolicyGrantEvent.grant_id == grant.id)
        .order_by(PolicyGrantEvent.at.desc(), PolicyGrantEvent.id.desc())
        .limit(1)
    ).first()
    return (
        last is not None
        and last.action == A.SUSPEND.value
        and last.role == R.SYSTEM.value
        and last.reason == WHY_LICENCE_STATUS
    )


def _follow_licence_right(
    session: Session, grant: PolicyGrant, right: registry.Right, *, on: date
) -> str | None:
    """Take an active or suspended grant where its licence right in the registry went: ended
    (expired → expired; cancelled, revoked, transferred → revoked); suspended → suspended; in
    force again after a suspension this made → resumed. The action taken, if any."""
    state = GrantState(grant.state)
    params = {"right": right.id, "status_label": registry.RIGHT_STATUS_LABELS[right.status]}
    rules = _rule_ids("monitor")
    action: GrantAction | None = None
    if right.status in _ENDED_RIGHT and state in (S.ACTIVE, S.SUSPENDED):
        action = _ENDED_RIGHT[right.status]
    elif right.status is registry.RightStatus.SUSPENDED and state is S.ACTIVE:
        action = A.SUSPEND
    elif (
        right.status in registry.LIVE_STATUSES
        and state is S.SUSPENDED
        and _suspended_by_system(session, grant)
    ):
        action, params = A.RESUME, {"right": right.id}
    if action is None:
        return None
    why = WHY_LICENCE_BACK if action is A.RESUME else WHY_LICENCE_STATUS
    _step(session, grant, action, R.SYSTEM, None, on=on, reason=why, params=params, rules=rules)
    return action.value


def _check_one(
    session: Session, grant: PolicyGrant, on: date, now: datetime, report: MonitorReport
) -> None:
    monitor_rule = _rule_ids("monitor")
    if grant.state == S.APPROVED.value and grant.licence_application_id:
        outcome = registry.application_outcome(session, grant.licence_application_id)
        if outcome is not None:
            _follow(session, grant, outcome, on=on)
            if grant.state == S.ACTIVE.value:
                report.activated.append(grant.number)
            elif grant.state == S.REFUSED.value:
                report.refused.append(grant.number)
                return
    state = GrantState(grant.state)
    if state in FINAL_STATES:
        return
    ending: tuple[str, dict[str, str]] | None = None
    if grant.term_end < on:
        ending = (WHY_TERM, {"end": grant.term_end.isoformat()})
    elif grant.mandate and date.fromisoformat(grant.mandate["term_end"]) < on:
        ending = (
            WHY_MANDATE_ENDED,
            {
                "regime_label": _mandate_label(grant.regime),
                "reference": grant.reference_id or "",
                "end": grant.mandate["term_end"],
            },
        )
    elif state is S.ACTIVE and grant.max_uses is not None and grant.uses >= grant.max_uses:
        ending = (WHY_EXHAUSTED, {"count": str(grant.max_uses)})
    elif state in (S.ACTIVE, S.SUSPENDED):
        end = policy_ends(parse_policy(grant.policy))
        if end is not None and end < now:
            ending = (WHY_POLICY_TIME, {"end": end.astimezone(CST).strftime("%Y-%m-%d %H:%M")})
    if ending is not None:
        why, params = ending
        _step(
            session,
            grant,
            A.EXPIRE,
            R.SYSTEM,
            None,
            on=on,
            reason=why,
            params=params,
            rules=monitor_rule,
        )
        report.expired.append(grant.number)
        return
    if state not in (S.ACTIVE, S.SUSPENDED) or not grant.licence_right_id:
        return
    right = registry.right_of(session, grant.licence_right_id)
    if right is None:
        return
    done = _follow_licence_right(session, grant, right, on=on)
    if done is not None:
        {
            A.EXPIRE.value: report.expired,
            A.REVOKE.value: report.revoked,
            A.SUSPEND.value: report.suspended,
            A.RESUME.value: report.resumed,
        }[done].append(grant.number)


def _moment(today: date | None, now: datetime | None) -> tuple[date, datetime]:
    on = today or today_cn()
    moment = now or (
        datetime.combine(on, datetime.min.time(), CST) + timedelta(hours=12)
        if today is not None
        else utcnow()
    )
    return on, moment


def _live_ids(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(PolicyGrant.id)
            .where(PolicyGrant.state.notin_([s.value for s in FINAL_STATES]))
            .order_by(PolicyGrant.id)
        )
    )


def _monitor_grant(
    session: Session, grant_id: str, on: date, moment: datetime, report: MonitorReport
) -> None:
    """Re-check one grant under its row lock."""
    grant = session.execute(
        select(PolicyGrant)
        .where(PolicyGrant.id == grant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if grant is not None:
        _check_one(session, grant, on, moment, report)


def monitor(
    session: Session, *, today: date | None = None, now: datetime | None = None
) -> MonitorReport:
    """Re-check every grant that has not ended, in the caller's transaction: follow approved
    grants' licences; end grants whose term, mandate, policy time or uses are over; suspend,
    resume, revoke or expire active grants as their registered licence right is suspended,
    reinstated, revoked / cancelled / transferred or expired. Each grant is checked in a
    savepoint: one that cannot be checked (a policy that no longer parses, say) is logged, left
    as it is and named in ``failed`` — the others go on. A second run changes nothing."""
    on, moment = _moment(today, now)
    report = MonitorReport()
    for grant_id in _live_ids(session):
        mine = MonitorReport()
        try:
            with session.begin_nested():
                _monitor_grant(session, grant_id, on, moment, mine)
        except Exception:  # one bad grant must not stop the run
            log.exception("grants monitor: grant %s could not be checked", grant_id)
            report.failed.append(grant_id)
            continue
        report.merge(mine)
    return report


def run_monitor(db: Database, today: date | None = None) -> MonitorReport:
    """The monitor as the server's thread and ``datafactor grants monitor`` run it: one
    transaction per grant, so a run holds one grant's lock at a time and each grant's change
    commits on its own; a grant that cannot be checked is logged and skipped (``failed``)."""
    on, moment = _moment(today, None)
    with db.read() as session:
        ids = _live_ids(session)
    report = MonitorReport()
    for grant_id in ids:
        mine = MonitorReport()
        try:
            with db.write() as session:
                _monitor_grant(session, grant_id, on, moment, mine)
        except Exception:  # one bad grant must not stop the run
            log.exception("grants monitor: grant %s could not be checked", grant_id)
            report.failed.append(grant_id)
            continue
        report.merge(mine)
    return report
