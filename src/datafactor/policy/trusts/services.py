"""The use cases of data trusts: draft, sign, accept, amend and end deeds; grant uses of the
trust property; record income and split it; record misuse; read deeds as each party may.

Each function is one use case in the caller's transaction (``db.write()``): it locks the deed
row, gathers the facts (the registry's assets and rights, the parties named), applies the pure
rules of ``trusts.domain``, writes the rows, its history step with the rule ids applied, the
audit event and — for signing, acceptance, amendments and the end of a deed — a ledger entry,
and stores the inbox messages, all in that one transaction: a refusal writes nothing.

Grants under a deed are the grants core's (``datafactor.policy.grants``): the trustee offers (or
decides requests for) grants under a ``Mandate`` built from the deed, and the core refuses a
grant beyond the deed's assets, scope or term; ending a deed ends its grants
(``end_grants_under``) in the same transaction.

Names and verification of the parties a deed names are read with a read-only lookup (``_LOOKUP``,
the one identity permission it needs): a party named in a contract is identified to its
counterparties. Visibility (rule TRUST-VISIBILITY): the settlor's and trustee's users and
supervisors (``POLICY_TRUST_READ_ALL``) see everything; a beneficiary's users see the deed's
terms, the trust's total income, its own share and its own distribution lines — never the other
beneficiaries, their shares or amounts, nor the trust's grants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox, ledger, registry, settlement
from datafactor.db import today_cn, utcnow
from datafactor.errors import N_, DomainError, NotFound
from datafactor.permissions import Permission, Principal
from datafactor.policy.trusts.domain import (
    STATE_LABELS,
    Actor,
    AssetFacts,
    DeedAction,
    DeedState,
    DeedStateConflict,
    HoldingFacts,
    IncomeSource,
    InvalidDeed,
    Label,
    LineRole,
    PartyFacts,
    PayStatus,
    Share,
    SplitVersion,
    TrustRules,
    WrongParty,
    allowed_actions,
    check_amendment_date,
    check_fee,
    check_income,
    check_parties,
    check_property,
    check_shares,
    check_term,
    check_text,
    format_deed_number,
    load_trust_rules,
    parse_scope,
    split_in_force,
    split_income,
    transition,
    yuan,
)
from datafactor.policy.trusts.models import (
    PolicyTrustAsset,
    PolicyTrustDeed,
    PolicyTrustDistribution,
    PolicyTrustEvent,
    PolicyTrustIncome,
    PolicyTrustMisuse,
    PolicyTrustSerial,
    PolicyTrustShare,
    PolicyTrustSplit,
)

P = Permission
S = DeedState
A = DeedAction

NOTIFY_KIND: Final = "policy.trust"
LEDGER_KINDS: Final[dict[str, str]] = {
    A.SIGN: "policy.trust.signed",
    A.ACCEPT: "policy.trust.accepted",
    A.AMEND: "policy.trust.amended",
    A.AGREE_TERMINATION: "policy.trust.terminated",
    A.ORDER_TERMINATION: "policy.trust.terminated",
    A.EXPIRE: "policy.trust.expired",
}

MSG_NOT_ALLOWED: Final = N_("Your account is not allowed to do this ({permission}).")
MSG_NO_DEED: Final = N_("No such trust deed.")
MSG_NO_GRANT: Final = N_("Grant {grant} is not a grant under trust deed {deed} (rule {rule}).")
MSG_REASON: Final = N_("Give a reason of 1 to 2000 characters (rule {rule}).")
MSG_ORDER_REFERENCE: Final = N_(
    "A regulator's order to end a trust names the order's reference number (rule {rule})."
)
MSG_ALREADY_PROPOSED: Final = N_(
    "You have already proposed ending trust deed {deed}: the other party is to agree (rule {rule})."
)
MSG_NOT_STARTED: Final = N_(
    "Trust deed {deed} is {state_label}: the trustee grants uses of its data only while it is "
    "in effect (rule {rule})."
)
MSG_GRANT_ASSET: Final = N_(
    "Asset {asset} is not trust property of deed {deed}: grant uses only of the deed's data "
    "(rule {rule})."
)
MSG_DESCRIPTION: Final = N_("Describe the misuse found (1 to 4000 characters) (rule {rule}).")
MSG_SELF_DEALING: Final = N_(
    "The trustee of deed {deed} cannot be granted the trust's data: a trustee does not deal "
    "with the trust property for itself. Name another grantee (rule {rule})."
)
MSG_EDIT_SETTLOR: Final = N_(
    "Only the settlor's administrators edit trust deed {deed}, and only while it is a draft "
    "(rule {rule})."
)

# Inbox messages (msgids; parameters are text, ``*_label`` ones translated when read).
MSG_N_SIGNED: Final = N_(
    "{settlor} signed trust deed {deed} “{title}” naming you as trustee: accept or decline it."
)
MSG_N_WITHDRAWN: Final = N_("{settlor} withdrew trust deed {deed} “{title}”.")
MSG_N_DECLINED: Final = N_(
    "{trustee} declined trust deed {deed} “{title}”: it is a draft again. Reason: {reason}"
)
MSG_N_ACCEPTED: Final = N_(
    "Trust deed {deed} “{title}” is established: {trustee} accepted it. It takes effect on {start}."
)
MSG_N_ACTIVE: Final = N_("Trust deed {deed} “{title}” is in effect from {start} to {end}.")
MSG_N_BENEFICIARY: Final = N_(
    "You are a beneficiary of trust deed {deed} “{title}” with a share of {share} basis "
    "points from {effective}."
)
MSG_N_AMENDED: Final = N_(
    "The beneficiaries of trust deed {deed} “{title}” were amended (version {version}, in "
    "force from {effective}). Reason: {reason}"
)
MSG_N_REMOVED: Final = N_(
    "From {effective} you are no longer a beneficiary of trust deed {deed} “{title}” "
    "(version {version}). Income received before then is distributed as before."
)
MSG_N_PROPOSED: Final = N_(
    "{party} proposes ending trust deed {deed} “{title}” early. Reason: {reason}. Agree to end "
    "it, or discuss it with them."
)
MSG_N_ENDED: Final = N_(
    "Trust deed {deed} “{title}” ended ({state_label}) on {on}: its grants have ended. "
    "Reason: {reason}"
)
MSG_N_INCOME: Final = N_(
    "Trust income of {amount} yuan received on {received} under trust deed {deed}: your "
    "distribution is {share} yuan, to be paid by settlement."
)
MSG_N_MISUSE: Final = N_(
    "The trustee of trust deed {deed} recorded data misuse under grant {grant} and suspended "
    "it: {description}"
)

_REGULATOR_KIND: Final = "regulator"
# Reads party names and verification for the deed's checks and pages (see the docstring).
_LOOKUP: Final = Principal(
    user_id="",
    username="trusts",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
    via="cli",
)


def _rules() -> TrustRules:
    return load_trust_rules()


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(p) for p in permissions):
        raise WrongParty(
            MSG_NOT_ALLOWED, rule=_rules().rule_id("actor"), permission=permissions[0].value
        )


# ------------------------------------------------------------------------------------ facts


def party_facts(session: Session, party_ids: Iterable[str]) -> dict[str, PartyFacts]:
    """The parties among ``party_ids`` that exist: name, kind, whether verified."""
    found: dict[str, PartyFacts] = {}
    for party_id in set(party_ids):
        try:
            party = identity.get_party(session, _LOOKUP, party_id)
        except DomainError:
            continue
        found[party_id] = PartyFacts(
            party.id, party.name, party.kind, party.status == identity.PartyStatus.VERIFIED
        )
    return found


def party_names(session: Session, party_ids: Iterable[str]) -> dict[str, str]:
    return {k: v.name for k, v in party_facts(session, party_ids).items()}


def party_codes(session: Session, party_ids: Iterable[str]) -> dict[str, str]:
    """The identifiers (unified social credit code, resident ID) the deed's forms show for the
    parties it names — to the settlor, who named them."""
    found: dict[str, str] = {}
    for party_id in set(party_ids):
        try:
            found[party_id] = identity.get_party(session, _LOOKUP, party_id).code
        except DomainError:
            continue
    return found


def find_party(session: Session, text: str) -> str | None:
    """A party named in a form by its identifier (credit code or resident ID) or its id."""
    cleaned = "".join(text.split())
    for code_type in ("uscc", "resident_id"):
        found = identity.find_party_id(session, code_type, "CN", cleaned.upper())
        if found is not None:
            return found
    return cleaned if cleaned and cleaned in party_facts(session, [cleaned]) else None


def property_choices(session: Session, principal: Principal) -> list[AssetFacts]:
    """The principal's party's registered assets it may put in trust: an active holding right,
    not public data, not in another trust (what the draft form offers; the checks still run on
    submission)."""
    if not principal.can(P.REGISTRY_ASSET_READ):
        return []
    rows, _ = registry.list_assets(session, principal, limit=500, offset=0)
    own = [a.id for a in rows if a.party_id == principal.party_id]
    facts = asset_facts(session, principal.party_id, own)
    return sorted(
        (
            f
            for f in facts.values()
            if f.holding is not None
            and f.holding.status == "active"
            and f.data_class != "public"
            and f.held_by is None
        ),
        key=lambda f: f.name,
    )


def _holding(session: Session, settlor_id: str, asset_id: str) -> HoldingFacts | None:
    """The settlor's holding right on the asset: the live one (active or pledged) if any, else
    the latest (so a suspended or ended right is named in the refusal)."""
    mine = [
        r
        for r in registry.rights_on_asset(session, asset_id)
        if r.holder_id == settlor_id and r.kind == registry.RightKind.HOLDING
    ]
    if not mine:
        return None
    live = [r for r in mine if r.status in registry.LIVE_STATUSES]
    right = (live or mine)[-1]
    return HoldingFacts(right.id, right.status.value, right.scope, right.term.start, right.term.end)


# A deed holds its property from the settlor's signature until it ends (withdrawn, terminated,
# expired): no second deed may name it (TRUST-PROPERTY-HELD). Once established, its grants are
# the only grants of the data (the grants core's GRT-ASSET-HELD, registered below).
_HOLDING_STATES: Final = (S.SIGNED.value, S.ACCEPTED.value, S.ACTIVE.value)
_ESTABLISHED_STATES: Final = (S.ACCEPTED.value, S.ACTIVE.value)


def _deeds_holding(
    session: Session, asset_id: str, states: Sequence[str], *, besides: str | None = None
) -> list[PolicyTrustDeed]:
    stmt = (
        select(PolicyTrustDeed)
        .join(PolicyTrustAsset, PolicyTrustAsset.deed_id == PolicyTrustDeed.id)
        .where(PolicyTrustAsset.asset_id == asset_id, PolicyTrustDeed.state.in_(states))
        .order_by(PolicyTrustDeed.number)
    )
    if besides is not None:
        stmt = stmt.where(PolicyTrustDeed.id != besides)
    return list(session.scalars(stmt))


def asset_facts(
    session: Session, settlor_id: str, asset_ids: Iterable[str], *, deed_id: str | None = None
) -> dict[str, AssetFacts]:
    """The registry's facts on each asset, the settlor's holding right on it, and whether a
    deed other than ``deed_id`` holds it already."""
    found: dict[str, AssetFacts] = {}
    for asset_id in set(asset_ids):
        facts = registry.asset_facts(session, asset_id)
        if facts is None:
            continue
        mine = facts.party_id == settlor_id
        holding = _deeds_holding(session, asset_id, _HOLDING_STATES, besides=deed_id)
        found[asset_id] = AssetFacts(
            id=facts.id,
            name=facts.name,
            party_id=facts.party_id,
            data_class=facts.data_class,
            grade=facts.grade,
            holding=_holding(session, settlor_id, asset_id) if mine else None,
            # Another party's asset is refused as unknown: its deeds are not shown.
            held_by=holding[0].number if mine and holding else None,
        )
    return found


def _asset_holds(session: Session, asset_id: str) -> list[Any]:
    """The grants core's check (``grants.register_asset_hold``): the established deeds whose
    property the asset is — only their trustee's grants under them may license it."""
    from datafactor.policy import grants

    return [
        grants.AssetHold(grants.Regime.TRUST, deed.id, deed.number)
        for deed in _deeds_holding(session, asset_id, _ESTABLISHED_STATES)
    ]


# ------------------------------------------------------------------------------------ deeds


@dataclass(frozen=True)
class DeedDraft:
    """What a settlor writes in a deed. ``scope`` is the registry's ``Scope.as_dict()`` form
    (``None`` for a dimension: unrestricted); ``beneficiaries`` their shares in basis points of
    the income left after the trustee's fee."""

    title: str
    purpose: str
    trustee_id: str
    asset_ids: tuple[str, ...]
    scope: Mapping[str, Any]
    term_start: date
    term_end: date
    trustee_fee_bp: int
    beneficiaries: tuple[Share, ...]


@dataclass(frozen=True)
class Checked:
    """A deed draft that passed every check: the facts read and the rule ids applied."""

    scope: dict[str, list[str] | None]
    assets: dict[str, AssetFacts]
    parties: dict[str, PartyFacts]
    rules: tuple[str, ...]


def check_draft(
    session: Session,
    settlor_id: str,
    draft: DeedDraft,
    *,
    today: date,
    deed_id: str | None = None,
) -> Checked:
    """Every rule a deed must pass, in the order a person fixes them; refused naming the rule.
    ``deed_id``: the deed being checked again (its own property is not "held by another")."""
    rules = _rules()
    applied = [check_text(draft.title, draft.purpose, rules)]
    ids = {settlor_id, draft.trustee_id, *(s.party_id for s in draft.beneficiaries)}
    parties = party_facts(session, ids)
    applied.append(check_parties(settlor_id, draft.trustee_id, parties, rules))
    applied.append(check_fee(draft.trustee_fee_bp, rules))
    applied.append(check_term(draft.term_start, draft.term_end, today, rules))
    scope = parse_scope(draft.scope)
    assets = asset_facts(session, settlor_id, draft.asset_ids, deed_id=deed_id)
    applied += check_property(
        settlor_id,
        list(draft.asset_ids),
        assets,
        scope,
        draft.term_start,
        draft.term_end,
        rules,
    )
    applied += check_shares(list(draft.beneficiaries), draft.trustee_id, parties, rules)
    return Checked(scope.as_dict(), assets, parties, tuple(dict.fromkeys(applied)))


def _next_number(session: Session, year: int) -> str:
    """The next deed number of ``year``, from the row-locked per-year counter."""
    stmt = select(PolicyTrustSerial).where(PolicyTrustSerial.year == year).with_for_update()
    counter = session.execute(stmt).scalar_one_or_none()
    if counter is None:
        # First deed of the year: a concurrent creator wins the insert and we lock its row.
        try:
            with session.begin_nested():
                session.add(PolicyTrustSerial(year=year, last_serial=0))
        except IntegrityError:
            pass
        counter = session.execute(stmt).scalar_one()
    counter.last_serial += 1
    session.flush()
    return format_deed_number(_rules().number_prefix, year, counter.last_serial)


def _write_terms(
    session: Session, deed: PolicyTrustDeed, draft: DeedDraft, checked: Checked
) -> None:
    """The deed's property and its first split (replacing a draft's)."""
    for model in (PolicyTrustAsset, PolicyTrustShare, PolicyTrustSplit):
        for row in session.scalars(select(model).where(model.deed_id == deed.id)):
            session.delete(row)
    session.flush()
    for asset_id in draft.asset_ids:
        facts = checked.assets[asset_id]
        assert facts.holding is not None
        session.add(
            PolicyTrustAsset(
                deed_id=deed.id,
                asset_id=asset_id,
                right_id=facts.holding.right_id,
                asset_name=facts.name,
            )
        )
    session.add(
        PolicyTrustSplit(
            deed_id=deed.id, version=1, effective_on=draft.term_start, created_by=deed.created_by
        )
    )
    for share in draft.beneficiaries:
        session.add(
            PolicyTrustShare(
                deed_id=deed.id, version=1, beneficiary_id=share.party_id, share_bp=share.share_bp
            )
        )
    session.flush()


def _actor_name(principal: Principal | None) -> str:
    return principal.username if principal else "system"


def _step(
    session: Session,
    deed: PolicyTrustDeed,
    action: DeedAction,
    actor: Actor,
    principal: Principal | None,
    *,
    source: DeedState | None,
    target: DeedState,
    on: date,
    rules: Sequence[str],
    reason: str = "",
    ledger_index: int | None = None,
) -> PolicyTrustEvent:
    """Record one step of the deed's history and its audit event."""
    event = PolicyTrustEvent(
        deed_id=deed.id,
        action=action.value,
        source=source.value if source else None,
        target=target.value,
        actor=actor.value,
        actor_party_id=principal.party_id if principal else None,
        actor_user_id=principal.user_id if principal else None,
        actor_name=_actor_name(principal),
        reason=reason,
        rules=list(rules),
        ledger_index=ledger_index,
        on=on,
    )
    session.add(event)
    for party_id in _audited(deed):
        audit.record(
            session,
            actor=principal,
            action=f"policy:trust:{action.value}",
            object_type="policy_trust_deed",
            object_id=deed.id,
            summary=f"Trust deed {deed.number}: {action.value} ({target.value})",
            party_id=party_id,
            reasons=[r for r in (reason, *rules) if r],
            actor_name=None if principal else "system",
        )
    session.flush()
    return event


def _audited(deed: PolicyTrustDeed) -> list[str]:
    """Whose audit trail records a step on the deed: its settlor's and its trustee's, whoever
    acts (a regulator reads every trail; beneficiaries see their own lines, not the trail)."""
    return sorted({deed.settlor_id, deed.trustee_id})


def _shares(session: Session, deed_id: str, version: int) -> list[Share]:
    rows = session.scalars(
        select(PolicyTrustShare)
        .where(PolicyTrustShare.deed_id == deed_id, PolicyTrustShare.version == version)
        .order_by(PolicyTrustShare.beneficiary_id)
    )
    return [Share(r.beneficiary_id, r.share_bp) for r in rows]


def _versions(session: Session, deed_id: str) -> list[SplitVersion]:
    splits = session.scalars(
        select(PolicyTrustSplit)
        .where(PolicyTrustSplit.deed_id == deed_id)
        .order_by(PolicyTrustSplit.version)
    )
    return [
        SplitVersion(s.version, s.effective_on, tuple(_shares(session, deed_id, s.version)))
        for s in splits
    ]


def _asset_ids(session: Session, deed_id: str) -> list[str]:
    return list(
        session.scalars(
            select(PolicyTrustAsset.asset_id)
            .where(PolicyTrustAsset.deed_id == deed_id)
            .order_by(PolicyTrustAsset.asset_id)
        )
    )


def _split_digest(version: SplitVersion, fee_bp: int) -> str:
    """SHA-256 of the canonical split: the ledger proves the terms without publishing who the
    beneficiaries are (some are private persons)."""
    material = {
        "version": version.version,
        "effective_on": version.effective_on.isoformat(),
        "trustee_fee_bp": fee_bp,
        "shares": [
            [s.party_id, s.share_bp] for s in sorted(version.shares, key=lambda s: s.party_id)
        ],
    }
    return hashlib.sha256(ledger.canonical_json(material)).hexdigest()


def _ledger(
    session: Session, deed: PolicyTrustDeed, action: DeedAction, on: date, **extra: Any
) -> int:
    versions = _versions(session, deed.id)
    payload = {
        "deed": deed.number,
        "deed_id": deed.id,
        "settlor_id": deed.settlor_id,
        "trustee_id": deed.trustee_id,
        "asset_ids": _asset_ids(session, deed.id),
        "term": [deed.term_start.isoformat(), deed.term_end.isoformat()],
        "state": deed.state,
        "on": on.isoformat(),
        "split": _split_digest(versions[-1], deed.trustee_fee_bp),
        "rules_version": _rules().version,
        **extra,
    }
    return ledger.append_event(session, LEDGER_KINDS[action], payload)


def _notify(
    session: Session,
    deed: PolicyTrustDeed,
    party_ids: Iterable[str],
    message: str,
    **params: str,
) -> None:
    targets = sorted(set(party_ids))
    if targets:
        inbox.notify(
            session,
            targets,
            kind=NOTIFY_KIND,
            message=message,
            params={"deed": deed.number, "title": deed.title, **params},
            link=f"/trusts/{deed.id}",
        )


def _load_for_update(session: Session, deed_id: str) -> PolicyTrustDeed:
    deed = session.get(PolicyTrustDeed, deed_id, with_for_update=True)
    if deed is None:
        raise NotFound(MSG_NO_DEED)
    return deed


def _role(deed: PolicyTrustDeed, principal: Principal) -> Actor | None:
    """The principal's part in acting on the deed (a party's administrator acts for it)."""
    if not principal.can(P.POLICY_TRUST_MANAGE):
        return None
    if principal.party_id == deed.settlor_id:
        return Actor.SETTLOR
    if principal.party_id == deed.trustee_id:
        return Actor.TRUSTEE
    if principal.party_kind == _REGULATOR_KIND:
        return Actor.REGULATOR
    return None


def _acting(session: Session, principal: Principal, deed_id: str) -> tuple[PolicyTrustDeed, Actor]:
    """The deed, locked, and the principal's part in it. A party that may not see the deed is
    told it does not exist; one that sees it but has no part in acting is refused by rule."""
    deed = _load_for_update(session, deed_id)
    if not visible_roles(session, deed, principal):
        raise NotFound(MSG_NO_DEED)
    actor = _role(deed, principal)
    if actor is None:
        _require(principal, P.POLICY_TRUST_MANAGE)
        raise WrongParty(
            MSG_NOT_ALLOWED,
            rule=_rules().rule_id("actor"),
            permission=P.POLICY_TRUST_MANAGE.value,
        )
    return deed, actor


def _move(
    session: Session,
    deed: PolicyTrustDeed,
    action: DeedAction,
    actor: Actor,
    principal: Principal | None,
    *,
    today: date,
    rules: Sequence[str] = (),
    reason: str = "",
    ledger_extra: Mapping[str, Any] | None = None,
) -> PolicyTrustEvent:
    """Apply one transition: the state machine decides, then the row, history and audit."""
    trust_rules = _rules()
    source = DeedState(deed.state)
    target = transition(deed.number, source, action, actor, trust_rules)
    applied = [trust_rules.rule_id("lifecycle"), *rules]
    if target != source:
        deed.state = target.value
        deed.state_since = today
    deed.updated_at = utcnow()
    session.flush()
    index = None
    if action in LEDGER_KINDS:
        index = _ledger(session, deed, action, today, **dict(ledger_extra or {}))
    return _step(
        session,
        deed,
        action,
        actor,
        principal,
        source=source,
        target=target,
        on=today,
        rules=tuple(dict.fromkeys(applied)),
        reason=reason,
        ledger_index=index,
    )


def draft_deed(
    session: Session, principal: Principal, draft: DeedDraft, *, today: date | None = None
) -> PolicyTrustDeed:
    """The settlor (the principal's party) drafts a deed; every rule is checked at once."""
    _require(principal, P.POLICY_TRUST_MANAGE)
    today = today or today_cn()
    checked = check_draft(session, principal.party_id, draft, today=today)
    deed = PolicyTrustDeed(
        number=_next_number(session, today.year),
        title=draft.title.strip(),
        purpose=draft.purpose.strip(),
        settlor_id=principal.party_id,
        trustee_id=draft.trustee_id,
        scope=checked.scope,
        term_start=draft.term_start,
        term_end=draft.term_end,
        trustee_fee_bp=draft.trustee_fee_bp,
        state=S.DRAFT.value,
        state_since=today,
        version=1,
        rules_version=_rules().version,
        created_by=principal.user_id,
    )
    session.add(deed)
    session.flush()
    _write_terms(session, deed, draft, checked)
    _step(
        session,
        deed,
        A.DRAFT,
        Actor.SETTLOR,
        principal,
        source=None,
        target=S.DRAFT,
        on=today,
        rules=checked.rules,
    )
    return deed


def edit_deed(
    session: Session,
    principal: Principal,
    deed_id: str,
    draft: DeedDraft,
    *,
    today: date | None = None,
) -> PolicyTrustDeed:
    """The settlor rewrites a draft (property, scope, term, fee, beneficiaries and shares)."""
    today = today or today_cn()
    deed, actor = _acting(session, principal, deed_id)
    transition(deed.number, DeedState(deed.state), A.EDIT, actor, _rules())
    checked = check_draft(session, deed.settlor_id, draft, today=today, deed_id=deed.id)
    deed.title, deed.purpose = draft.title.strip(), draft.purpose.strip()
    deed.trustee_id = draft.trustee_id
    deed.scope = checked.scope
    deed.term_start, deed.term_end = draft.term_start, draft.term_end
    deed.trustee_fee_bp = draft.trustee_fee_bp
    _write_terms(session, deed, draft, checked)
    _move(session, deed, A.EDIT, actor, principal, today=today, rules=checked.rules)
    return deed


def _recheck(session: Session, deed: PolicyTrustDeed, *, today: date) -> tuple[str, ...]:
    """The draft's checks again, on today's facts (a right may have been pledged since)."""
    versions = _versions(session, deed.id)
    draft = DeedDraft(
        title=deed.title,
        purpose=deed.purpose,
        trustee_id=deed.trustee_id,
        asset_ids=tuple(_asset_ids(session, deed.id)),
        scope=deed.scope,
        term_start=deed.term_start,
        term_end=deed.term_end,
        trustee_fee_bp=deed.trustee_fee_bp,
        beneficiaries=versions[-1].shares,
    )
    return check_draft(session, deed.settlor_id, draft, today=today, deed_id=deed.id).rules


def sign_deed(
    session: Session, principal: Principal, deed_id: str, *, today: date | None = None
) -> PolicyTrustDeed:
    """The settlor signs its draft (checked again on today's facts); the trustee is asked."""
    today = today or today_cn()
    deed, actor = _acting(session, principal, deed_id)
    transition(deed.number, DeedState(deed.state), A.SIGN, actor, _rules())
    applied = _recheck(session, deed, today=today)
    deed.signed_on = today
    _move(session, deed, A.SIGN, actor, principal, today=today, rules=applied)
    names = party_names(session, [deed.settlor_id])
    _notify(session, deed, [deed.trustee_id], MSG_N_SIGNED, settlor=names.get(deed.settlor_id, ""))
    return deed


def withdraw_deed(
    session: Session,
    principal: Principal,
    deed_id: str,
    *,
    reason: str = "",
    today: date | None = None,
) -> PolicyTrustDeed:
    """The settlor withdraws a draft or a signed deed the trustee has not accepted."""
    today = today or today_cn()
    deed, actor = _acting(session, principal, deed_id)
    was = deed.state
    _move(session, deed, A.WITHDRAW, actor, principal, today=today, reason=reason.strip())
    deed.ended_on, deed.end_reason = today, reason.strip()
    if was == S.SIGNED.value:
        names = party_names(session, [deed.settlor_id])
        _notify(
            session,
            deed,
            [deed.trustee_id],
            MSG_N_WITHDRAWN,
            settlor=names.get(deed.settlor_id, ""),
        )
    return deed


def _check_reason(reason: str, key: str = "lifecycle") -> str:
    text = reason.strip()
    if not text or len(text) > 2000:
        raise InvalidDeed(MSG_REASON, rule=_rules().rule_id(key), field="reason")
    return text


def decline_deed(
    session: Session, principal: Principal, deed_id: str, *, reason: str, today: date | None = None
) -> PolicyTrustDeed:
    """The trustee declines a signed deed, with a reason: it is the settlor's draft again."""
    today = today or today_cn()
    deed, actor = _acting(session, principal, deed_id)
    text = _check_reason(reason)
    _move(session, deed, A.DECLINE, actor, principal, today=today, reason=text)
    deed.signed_on = None
    names = party_names(session, [deed.trustee_id])
    _notify(
        session,
        deed,
        [deed.settlor_id],
        MSG_N_DECLINED,
        trustee=names.get(deed.trustee_id, ""),
        reason=text,
    )
    return deed


def _activate(
    session: Session, deed: PolicyTrustDeed, *, today: date, principal: Principal | None = None
) -> None:
    """The deed takes effect (its start date has come): the platform's step."""
    _move(session, deed, A.ACTIVATE, Actor.SYSTEM, None, today=today)
    deed.activated_on = today
    versions = _versions(session, deed.id)
    parties = {deed.settlor_id, deed.trustee_id} | {s.party_id for s in versions[-1].shares}
    _notify(
        session,
        deed,
        parties,
        MSG_N_ACTIVE,
        start=deed.term_start.isoformat(),
        end=deed.term_end.isoformat(),
    )


def accept_deed(
    session: Session, principal: Principal, deed_id: str, *, today: date | None = None
) -> PolicyTrustDeed:
    """The trustee accepts (countersigns) a signed deed: the trust is established (信托成立),
    and takes effect at once if its term has started. The beneficiaries are told their shares."""
    today = today or today_cn()
    deed, actor = _acting(session, principal, deed_id)
    transition(deed.number, DeedState(deed.state), A.ACCEPT, actor, _rules())
    applied = _recheck(session, deed, today=today)
    deed.accepted_on = today
    _move(session, deed, A.ACCEPT, actor, principal, today=today, rules=applied)
    names = party_names(session, [deed.trustee_id])
    _notify(
        session,
        deed,
        [deed.settlor_id],
        MSG_N_ACCEPTED,
        trustee=names.get(deed.trustee_id, ""),
        start=deed.term_start.isoformat(),
    )
    first = _versions(session, deed.id)[0]
    for share in first.shares:
        _notify(
            session,
            deed,
            [share.party_id],
            MSG_N_BENEFICIARY,
            share=str(share.share_bp),
            effective=first.effective_on.isoformat(),
        )
    if deed.term_start <= today:
        _activate(session, deed, today=today)
    return deed


def amend_deed(
    session: Session,
    principal: Principal,
    deed_id: str,
    beneficiaries: Sequence[Share],
    *,
    reason: str,
    effective_on: date | None = None,
    today: date | None = None,
) -> PolicyTrustSplit:
    """The settlor records an amendment of the beneficiaries and their shares on an established
    deed (信托法 第五十一条): a new version of the split, in force from ``effective_on``
    (today by default), never backdated before income already received."""
    today = today or today_cn()
    rules = _rules()
    deed, actor = _acting(session, principal, deed_id)
    transition(deed.number, DeedState(deed.state), A.AMEND, actor, rules)
    text = _check_reason(reason, "amendment")
    parties = party_facts(session, [s.party_id for s in beneficiaries])
    applied = list(check_shares(list(beneficiaries), deed.trustee_id, parties, rules))
    versions = _versions(session, deed.id)
    last_income = session.scalar(
        select(func.max(PolicyTrustIncome.received_on)).where(PolicyTrustIncome.deed_id == deed.id)
    )
    effective = effective_on or max(today, deed.term_start)
    applied.append(
        check_amendment_date(
            effective,
            today=today,
            term_start=deed.term_start,
            term_end=deed.term_end,
            last_version_on=versions[-1].effective_on,
            last_income_on=last_income,
            rules=rules,
        )
    )
    version = versions[-1].version + 1
    split = PolicyTrustSplit(
        deed_id=deed.id,
        version=version,
        effective_on=effective,
        reason=text,
        created_by=principal.user_id,
    )
    session.add(split)
    for share in beneficiaries:
        session.add(
            PolicyTrustShare(
                deed_id=deed.id,
                version=version,
                beneficiary_id=share.party_id,
                share_bp=share.share_bp,
            )
        )
    deed.version = version
    session.flush()
    event = _move(
        session,
        deed,
        A.AMEND,
        actor,
        principal,
        today=today,
        rules=applied,
        reason=text,
        ledger_extra={"version": version, "effective_on": effective.isoformat()},
    )
    split.ledger_index = event.ledger_index
    before = {s.party_id for s in versions[-1].shares}
    after = {s.party_id for s in beneficiaries}
    _notify(
        session,
        deed,
        {deed.trustee_id},
        MSG_N_AMENDED,
        version=str(version),
        effective=effective.isoformat(),
        reason=text,
    )
    for share in beneficiaries:
        _notify(
            session,
            deed,
            [share.party_id],
            MSG_N_BENEFICIARY,
            share=str(share.share_bp),
            effective=effective.isoformat(),
        )
    _notify(
        session,
        deed,
        before - after,
        MSG_N_REMOVED,
        version=str(version),
        effective=effective.isoformat(),
    )
    return split


def _end_grants(
    session: Session,
    deed: PolicyTrustDeed,
    *,
    expired: bool,
    reason: str,
    principal: Principal | None,
    today: date,
) -> None:
    from datafactor.policy import grants

    grants.end_grants_under(
        session,
        grants.Regime.TRUST,
        deed.id,
        state=grants.GrantState.EXPIRED if expired else grants.GrantState.REVOKED,
        reason=reason,
        actor=principal,
        today=today,
    )


def _ended(
    session: Session,
    deed: PolicyTrustDeed,
    *,
    reason: str,
    principal: Principal | None,
    today: date,
) -> None:
    expired = deed.state == S.EXPIRED.value
    deed.ended_on, deed.end_reason = today, reason
    deed.termination_proposed_by = None
    _end_grants(session, deed, expired=expired, reason=reason, principal=principal, today=today)
    versions = _versions(session, deed.id)
    parties = {deed.settlor_id, deed.trustee_id}
    for version in versions:
        parties |= {s.party_id for s in version.shares}
    _notify(
        session,
        deed,
        parties,
        MSG_N_ENDED,
        state_label=N_("Expired") if expired else N_("Terminated"),
        on=today.isoformat(),
        reason=reason,
    )


def terminate_deed(
    session: Session,
    principal: Principal,
    deed_id: str,
    *,
    reason: str,
    order_reference: str = "",
    today: date | None = None,
) -> PolicyTrustDeed:
    """End a deed early. The settlor or trustee proposes; the other agrees, and the deed is
    terminated (信托法 第五十三条第(四)项). A regulator orders it ended at once, naming its
    order. Ending it ends (revokes) every grant under it, in this transaction."""
    today = today or today_cn()
    rules = _rules()
    deed, actor = _acting(session, principal, deed_id)
    state = DeedState(deed.state)
    if actor is Actor.REGULATOR:
        text = _check_reason(reason, "regulator_order")
        reference = order_reference.strip()
        if not reference or len(reference) > 128:
            raise InvalidDeed(
                MSG_ORDER_REFERENCE, rule=rules.rule_id("regulator_order"), field="order_reference"
            )
        _move(
            session,
            deed,
            A.ORDER_TERMINATION,
            actor,
            principal,
            today=today,
            rules=[rules.rule_id("regulator_order")],
            reason=text,
            ledger_extra={"order_reference": reference},
        )
        deed.order_reference = reference
        _ended(session, deed, reason=text, principal=principal, today=today)
        return deed
    proposed = deed.termination_proposed_by
    if proposed is None or proposed == principal.party_id:
        transition(deed.number, state, A.PROPOSE_TERMINATION, actor, rules)
        if proposed == principal.party_id:
            raise DeedStateConflict(
                MSG_ALREADY_PROPOSED, rule=rules.rule_id("termination"), deed=deed.number
            )
        text = _check_reason(reason, "termination")
        deed.termination_proposed_by = principal.party_id
        deed.termination_reason = text
        _move(
            session,
            deed,
            A.PROPOSE_TERMINATION,
            actor,
            principal,
            today=today,
            rules=[rules.rule_id("termination")],
            reason=text,
        )
        other = deed.trustee_id if actor is Actor.SETTLOR else deed.settlor_id
        names = party_names(session, [principal.party_id])
        _notify(
            session,
            deed,
            [other],
            MSG_N_PROPOSED,
            party=names.get(principal.party_id, ""),
            reason=text,
        )
        return deed
    text = reason.strip() or deed.termination_reason
    _move(
        session,
        deed,
        A.AGREE_TERMINATION,
        actor,
        principal,
        today=today,
        rules=[rules.rule_id("termination")],
        reason=text,
    )
    _ended(session, deed, reason=text, principal=principal, today=today)
    return deed


@dataclass
class SweepReport:
    """What the daily sweep did: deeds taking effect and deeds whose term ended."""

    activated: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.activated or self.expired)

    def as_dict(self) -> dict[str, list[str]]:
        return {"activated": self.activated, "expired": self.expired}


def sweep(session: Session, *, today: date | None = None) -> SweepReport:
    """The platform's clock on deeds: an accepted deed whose term has started takes effect; an
    established deed whose term has ended expires (and its grants with it). Idempotent."""
    today = today or today_cn()
    report = SweepReport()
    due = session.scalars(
        select(PolicyTrustDeed)
        .where(
            or_(
                (PolicyTrustDeed.state == S.ACCEPTED.value) & (PolicyTrustDeed.term_start <= today),
                (PolicyTrustDeed.state.in_([S.ACCEPTED.value, S.ACTIVE.value]))
                & (PolicyTrustDeed.term_end < today),
            )
        )
        .order_by(PolicyTrustDeed.number)
        .with_for_update()
    ).all()
    for deed in due:
        if deed.term_end < today:
            rule = _rules().rule_id("termination")
            _move(session, deed, A.EXPIRE, Actor.SYSTEM, None, today=today, rules=[rule])
            _ended(session, deed, reason="term ended", principal=None, today=today)
            report.expired.append(deed.number)
        else:
            _activate(session, deed, today=today)
            report.activated.append(deed.number)
    return report


# ------------------------------------------------------------------------------- visibility


def _beneficiary_of(session: Session, deed_id: str, party_id: str) -> bool:
    return bool(
        session.scalar(
            select(func.count()).where(
                PolicyTrustShare.deed_id == deed_id, PolicyTrustShare.beneficiary_id == party_id
            )
        )
    )


def visible_roles(session: Session, deed: PolicyTrustDeed, principal: Principal) -> frozenset[str]:
    """How the principal sees the deed: ``settlor``, ``trustee``, ``beneficiary``,
    ``supervisor`` (any of them), or not at all (empty)."""
    roles: set[str] = set()
    if principal.can(P.POLICY_TRUST_READ_ALL):
        roles.add("supervisor")
    if principal.can(P.POLICY_TRUST_READ) or principal.can(P.POLICY_TRUST_MANAGE):
        if principal.party_id == deed.settlor_id:
            roles.add("settlor")
        if principal.party_id == deed.trustee_id:
            roles.add("trustee")
        if _beneficiary_of(session, deed.id, principal.party_id):
            roles.add("beneficiary")
    # A beneficiary learns of a deed once it is established (the trustee has accepted).
    if roles == {"beneficiary"} and deed.state in (
        S.DRAFT.value,
        S.SIGNED.value,
        S.WITHDRAWN.value,
    ):
        return frozenset()
    return frozenset(roles)


def sees_everything(roles: frozenset[str]) -> bool:
    return bool(roles & {"settlor", "trustee", "supervisor"})


def deed_for_edit(session: Session, principal: Principal, deed_id: str) -> PolicyTrustDeed:
    """The settlor's draft, for its edit form (which shows every beneficiary's identifier and
    share): a deed the principal cannot see is not found; one it sees but may not edit — it is
    not the settlor's administrator, or the deed is no longer a draft — is refused."""
    deed = get_deed(session, principal, deed_id)
    if _role(deed, principal) is not Actor.SETTLOR:
        raise WrongParty(MSG_EDIT_SETTLOR, rule=_rules().rule_id("actor"), deed=deed.number)
    transition(deed.number, DeedState(deed.state), A.EDIT, Actor.SETTLOR, _rules())
    return deed


def get_deed(session: Session, principal: Principal, deed_id: str) -> PolicyTrustDeed:
    """A deed the principal may see; any other id is 'not found'."""
    _require(principal, P.POLICY_TRUST_READ, P.POLICY_TRUST_READ_ALL)
    deed = session.get(PolicyTrustDeed, deed_id)
    if deed is None or not visible_roles(session, deed, principal):
        raise NotFound(MSG_NO_DEED)
    return deed


@dataclass(frozen=True)
class DeedQuery:
    state: str | None = None
    role: str | None = None  # settlor | trustee | beneficiary


def list_deeds(
    session: Session, principal: Principal, query: DeedQuery, *, limit: int, offset: int
) -> tuple[list[PolicyTrustDeed], int]:
    """Deeds the principal's party is in (as ``query.role``, or any role), or every deed for
    supervisors; newest first."""
    _require(principal, P.POLICY_TRUST_READ, P.POLICY_TRUST_READ_ALL)
    me = principal.party_id
    benefits = select(PolicyTrustShare.deed_id).where(PolicyTrustShare.beneficiary_id == me)
    established = PolicyTrustDeed.state.notin_([S.DRAFT.value, S.SIGNED.value, S.WITHDRAWN.value])
    as_role = {
        "settlor": PolicyTrustDeed.settlor_id == me,
        "trustee": PolicyTrustDeed.trustee_id == me,
        "beneficiary": PolicyTrustDeed.id.in_(benefits) & established,
    }
    stmt = select(PolicyTrustDeed)
    if query.role in as_role:
        stmt = stmt.where(as_role[query.role])
    elif not principal.can(P.POLICY_TRUST_READ_ALL):
        stmt = stmt.where(or_(*as_role.values()))
    if query.state:
        stmt = stmt.where(PolicyTrustDeed.state == query.state)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(PolicyTrustDeed.created_at.desc(), PolicyTrustDeed.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def deed_assets(session: Session, deed_id: str) -> list[PolicyTrustAsset]:
    return list(
        session.scalars(
            select(PolicyTrustAsset)
            .where(PolicyTrustAsset.deed_id == deed_id)
            .order_by(PolicyTrustAsset.asset_name, PolicyTrustAsset.asset_id)
        )
    )


def deed_events(session: Session, deed_id: str) -> list[PolicyTrustEvent]:
    return list(
        session.scalars(
            select(PolicyTrustEvent)
            .where(PolicyTrustEvent.deed_id == deed_id)
            .order_by(PolicyTrustEvent.at, PolicyTrustEvent.id)
        )
    )


@dataclass(frozen=True)
class VersionView:
    """A version of the split as the viewer may see it (a beneficiary: only its own share)."""

    version: int
    effective_on: date
    reason: str
    shares: tuple[Share, ...]
    ledger_index: int | None


def deed_versions(
    session: Session, deed: PolicyTrustDeed, principal: Principal, roles: frozenset[str]
) -> list[VersionView]:
    rows = session.scalars(
        select(PolicyTrustSplit)
        .where(PolicyTrustSplit.deed_id == deed.id)
        .order_by(PolicyTrustSplit.version)
    )
    everything = sees_everything(roles)
    out = []
    for row in rows:
        shares = _shares(session, deed.id, row.version)
        if not everything:
            shares = [s for s in shares if s.party_id == principal.party_id]
        out.append(
            VersionView(row.version, row.effective_on, row.reason, tuple(shares), row.ledger_index)
        )
    return out


def allowed(deed: PolicyTrustDeed, principal: Principal) -> frozenset[DeedAction]:
    """The steps the principal may take on the deed now (what the pages offer)."""
    actor = _role(deed, principal)
    if actor is None:
        return frozenset()
    return allowed_actions(DeedState(deed.state), actor)


# ---------------------------------------------------------------------------------- income


@dataclass(frozen=True)
class IncomeDraft:
    amount_fen: int
    received_on: date
    source: IncomeSource
    grant_id: str | None = None
    description: str = ""


def record_income(
    session: Session,
    principal: Principal,
    deed_id: str,
    draft: IncomeDraft,
    *,
    today: date | None = None,
) -> PolicyTrustIncome:
    """The trustee records income of the trust; it is split at once, by the shares in force on
    the day it was received and the deed's fee, into distribution lines in whole fen (pending
    until the exchange's settlement pays them)."""
    today = today or today_cn()
    rules = _rules()
    deed, actor = _acting(session, principal, deed_id)
    if actor is not Actor.TRUSTEE:
        raise WrongParty(
            MSG_NOT_ALLOWED, rule=rules.rule_id("actor"), permission=P.POLICY_TRUST_MANAGE.value
        )
    applied = [
        check_income(
            deed.number,
            DeedState(deed.state),
            draft.amount_fen,
            draft.received_on,
            term_start=deed.term_start,
            term_end=deed.term_end,
            today=today,
            rules=rules,
        )
    ]
    source = IncomeSource(draft.source)
    description = draft.description.strip()
    grant_id = None
    if source is IncomeSource.GRANT_FEE:
        if not draft.grant_id:
            raise InvalidDeed(
                N_("Name the grant under this deed whose fee the income is (rule {rule})."),
                rule=rules.rule_id("income"),
                field="grant_id",
            )
        grant_id = _grant_under(session, deed, draft.grant_id).id
    elif not description or len(description) > 2000:
        raise InvalidDeed(
            N_(
                "Describe where income from another source comes from (1 to 2000 characters) "
                "(rule {rule})."
            ),
            rule=rules.rule_id("income"),
            field="description",
        )
    version = split_in_force(_versions(session, deed.id), draft.received_on)
    lines = split_income(
        draft.amount_fen, deed.trustee_fee_bp, version.shares, deed.trustee_id, rules.total_bp
    )
    applied.append(rules.rule_id("distribution"))
    income = PolicyTrustIncome(
        deed_id=deed.id,
        amount_fen=draft.amount_fen,
        received_on=draft.received_on,
        source=source.value,
        grant_id=grant_id,
        description=description[:2000],
        version=version.version,
        trustee_fee_bp=deed.trustee_fee_bp,
        recorded_by=principal.user_id,
    )
    session.add(income)
    session.flush()
    for line in lines:
        session.add(
            PolicyTrustDistribution(
                income_id=income.id,
                deed_id=deed.id,
                party_id=line.party_id,
                role=line.role.value,
                share_bp=line.share_bp,
                amount_fen=line.amount_fen,
                status=PayStatus.PENDING.value,
            )
        )
    session.flush()
    for party_id in _audited(deed):
        audit.record(
            session,
            actor=principal,
            action="policy:trust:income",
            object_type="policy_trust_income",
            object_id=income.id,
            summary=(
                f"Trust deed {deed.number}: income of {draft.amount_fen} fen received "
                f"{draft.received_on.isoformat()}, split by version {version.version}"
            ),
            party_id=party_id,
            reasons=applied,
        )
    for line in lines:
        if line.role is LineRole.BENEFICIARY:
            _notify(
                session,
                deed,
                [line.party_id],
                MSG_N_INCOME,
                amount=yuan(draft.amount_fen),
                received=draft.received_on.isoformat(),
                share=yuan(line.amount_fen),
            )
    return income


MSG_NO_INCOME: Final = N_("No such trust income.")
MSG_N_PAID: Final = N_(
    "Your distribution of {share} yuan from trust income received on {received} under trust "
    "deed {deed} was paid to your available funds."
)


def pay_income(
    session: Session,
    principal: Principal,
    income_id: str,
    *,
    now: datetime | None = None,
) -> PolicyTrustIncome:
    """The trustee pays an income's pending distribution lines through settlement: the amount
    is frozen on the trustee's available funds (where the income was received) and captured at
    once to the trustee's fee (a payout to the trustee) and each beneficiary's line (a revenue
    share to its available funds), one journal each, keyed by the income
    (``trust-income:{id}:freeze`` / ``:pay``), so paying twice pays once. Refused, nothing
    written, when the trustee's available funds do not cover it (SET-FUNDS: deposit the income
    first). The lines become ``paid`` with the capture journal as their settlement reference."""
    rules = _rules()
    row = session.get(PolicyTrustIncome, income_id)
    if row is None:
        raise NotFound(MSG_NO_INCOME)
    deed, actor = _acting(session, principal, row.deed_id)
    if actor is not Actor.TRUSTEE:
        raise WrongParty(
            MSG_NOT_ALLOWED, rule=rules.rule_id("actor"), permission=P.POLICY_TRUST_MANAGE.value
        )
    lines = list(
        session.scalars(
            select(PolicyTrustDistribution)
            .where(PolicyTrustDistribution.income_id == row.id)
            .order_by(PolicyTrustDistribution.role.desc(), PolicyTrustDistribution.party_id)
            .with_for_update()
        )
    )
    pending = [x for x in lines if x.status == PayStatus.PENDING.value]
    if not pending:
        return row
    now = now or utcnow()
    total = sum(x.amount_fen for x in pending)
    journal_id: str | None = None
    if total > 0:
        hold = settlement.freeze(
            session,
            deed.trustee_id,
            total,
            f"trust_income:{row.id}",
            key=f"trust-income:{row.id}:freeze",
            actor=principal,
            memo=deed.number,
            now=now,
        ).hold_id
        assert hold is not None
        posted = settlement.capture(
            session,
            hold,
            [
                settlement.Payout(
                    settlement.LineKind.PAYOUT
                    if x.role == LineRole.TRUSTEE_FEE.value
                    else settlement.LineKind.SHARE,
                    x.amount_fen,
                    x.party_id,
                )
                for x in pending
                if x.amount_fen > 0
            ],
            key=f"trust-income:{row.id}:pay",
            actor=principal,
            memo=deed.number,
            now=now,
        )
        journal_id = posted.journal.id
    for x in pending:
        x.status = PayStatus.PAID.value
        x.paid_at = now
        x.settlement_reference = journal_id
    session.flush()
    for party_id in _audited(deed):
        audit.record(
            session,
            actor=principal,
            action="policy:trust:pay",
            object_type="policy_trust_income",
            object_id=row.id,
            summary=f"Trust deed {deed.number}: {total} fen of income received "
            f"{row.received_on.isoformat()} paid out (journal {journal_id or '-'})",
            party_id=party_id,
            reasons=[rules.rule_id("distribution")],
        )
    for x in pending:
        if x.role == LineRole.BENEFICIARY.value and x.amount_fen > 0:
            _notify(
                session,
                deed,
                [x.party_id],
                MSG_N_PAID,
                share=yuan(x.amount_fen),
                received=row.received_on.isoformat(),
            )
    return row


@dataclass(frozen=True)
class IncomeView:
    """An income and the distribution lines the viewer may see."""

    income: PolicyTrustIncome
    lines: tuple[PolicyTrustDistribution, ...]


def list_income(session: Session, principal: Principal, deed_id: str) -> list[IncomeView]:
    """The deed's income, newest first, each with its lines (a beneficiary: only its own)."""
    deed = get_deed(session, principal, deed_id)
    roles = visible_roles(session, deed, principal)
    incomes = session.scalars(
        select(PolicyTrustIncome)
        .where(PolicyTrustIncome.deed_id == deed.id)
        .order_by(PolicyTrustIncome.received_on.desc(), PolicyTrustIncome.created_at.desc())
    ).all()
    lines: dict[str, list[PolicyTrustDistribution]] = {}
    stmt = select(PolicyTrustDistribution).where(PolicyTrustDistribution.deed_id == deed.id)
    if not sees_everything(roles):
        stmt = stmt.where(PolicyTrustDistribution.party_id == principal.party_id)
    for line in session.scalars(
        stmt.order_by(PolicyTrustDistribution.role, PolicyTrustDistribution.party_id)
    ):
        lines.setdefault(line.income_id, []).append(line)
    return [IncomeView(i, tuple(lines.get(i.id, ()))) for i in incomes]


@dataclass(frozen=True)
class Total:
    """What one party receives from a deed: pending and paid, in fen."""

    party_id: str
    role: str
    pending_fen: int
    paid_fen: int

    @property
    def total_fen(self) -> int:
        return self.pending_fen + self.paid_fen


def deed_totals(session: Session, principal: Principal, deed_id: str) -> tuple[int, list[Total]]:
    """The deed's total income and the totals per party (a beneficiary: only its own)."""
    deed = get_deed(session, principal, deed_id)
    roles = visible_roles(session, deed, principal)
    income = session.scalar(
        select(func.coalesce(func.sum(PolicyTrustIncome.amount_fen), 0)).where(
            PolicyTrustIncome.deed_id == deed.id
        )
    )
    stmt = (
        select(
            PolicyTrustDistribution.party_id,
            PolicyTrustDistribution.role,
            PolicyTrustDistribution.status,
            func.sum(PolicyTrustDistribution.amount_fen),
        )
        .where(PolicyTrustDistribution.deed_id == deed.id)
        .group_by(
            PolicyTrustDistribution.party_id,
            PolicyTrustDistribution.role,
            PolicyTrustDistribution.status,
        )
    )
    if not sees_everything(roles):
        stmt = stmt.where(PolicyTrustDistribution.party_id == principal.party_id)
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for party_id, role, status, amount in session.execute(stmt):
        sums.setdefault((party_id, role), {})[status] = int(amount or 0)
    totals = [
        Total(party, role, s.get(PayStatus.PENDING.value, 0), s.get(PayStatus.PAID.value, 0))
        for (party, role), s in sorted(
            sums.items(), key=lambda kv: (kv[0][1] != LineRole.TRUSTEE_FEE, kv[0][0])
        )
    ]
    return int(income or 0), totals


@dataclass(frozen=True)
class BenefitRow:
    """A deed the viewer's party benefits from, with what it has received from it."""

    deed: PolicyTrustDeed
    share_bp: int | None  # in the version in force today (None: no longer a beneficiary)
    pending_fen: int
    paid_fen: int


def my_benefits(
    session: Session, principal: Principal, *, today: date | None = None
) -> list[BenefitRow]:
    """The deeds the principal's party is a beneficiary of (established ones), with its share
    in force today and its distributions' totals."""
    _require(principal, P.POLICY_TRUST_READ)
    today = today or today_cn()
    deeds, _ = list_deeds(session, principal, DeedQuery(role="beneficiary"), limit=500, offset=0)
    out = []
    for deed in deeds:
        version = split_in_force(_versions(session, deed.id), today)
        share = next((s.share_bp for s in version.shares if s.party_id == principal.party_id), None)
        sums = dict(
            session.execute(
                select(PolicyTrustDistribution.status, func.sum(PolicyTrustDistribution.amount_fen))
                .where(
                    PolicyTrustDistribution.deed_id == deed.id,
                    PolicyTrustDistribution.party_id == principal.party_id,
                    PolicyTrustDistribution.role == LineRole.BENEFICIARY.value,
                )
                .group_by(PolicyTrustDistribution.status)
            ).all()
        )
        out.append(
            BenefitRow(
                deed,
                share,
                int(sums.get(PayStatus.PENDING.value) or 0),
                int(sums.get(PayStatus.PAID.value) or 0),
            )
        )
    return out


def list_distributions(
    session: Session, principal: Principal, *, deed_id: str | None = None
) -> list[PolicyTrustDistribution]:
    """Distribution lines: of one deed (all of them for its settlor, trustee and supervisors;
    a beneficiary's own), or, without a deed, the principal's party's own lines everywhere."""
    _require(principal, P.POLICY_TRUST_READ, P.POLICY_TRUST_READ_ALL)
    stmt = select(PolicyTrustDistribution)
    if deed_id is not None:
        deed = get_deed(session, principal, deed_id)
        stmt = stmt.where(PolicyTrustDistribution.deed_id == deed.id)
        if not sees_everything(visible_roles(session, deed, principal)):
            stmt = stmt.where(PolicyTrustDistribution.party_id == principal.party_id)
    else:
        stmt = stmt.where(PolicyTrustDistribution.party_id == principal.party_id)
    return list(
        session.scalars(
            stmt.order_by(
                PolicyTrustDistribution.deed_id,
                PolicyTrustDistribution.income_id,
                PolicyTrustDistribution.role,
                PolicyTrustDistribution.party_id,
            )
        )
    )


def incomes_by_id(session: Session, ids: Iterable[str]) -> dict[str, PolicyTrustIncome]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(PolicyTrustIncome).where(PolicyTrustIncome.id.in_(wanted)))
    return {r.id: r for r in rows}


# ----------------------------------------------------------------------------------- grants


def mandate_of(session: Session, deed: PolicyTrustDeed) -> Any:
    """The authority the deed gives its trustee (``grants.Mandate``, regime TRUST): the deed's
    assets, scope and term, the settlor's rights licensed by the trustee."""
    from datafactor.policy import grants

    return grants.Mandate(
        regime=grants.Regime.TRUST,
        reference_id=deed.id,
        agent_id=deed.trustee_id,
        holder_id=deed.settlor_id,
        asset_ids=frozenset(_asset_ids(session, deed.id)),
        scope=dict(deed.scope),
        term_start=deed.term_start,
        term_end=deed.term_end,
    )


def _in_effect(deed: PolicyTrustDeed, today: date) -> None:
    if deed.state != S.ACTIVE.value or today > deed.term_end:
        shown = S.EXPIRED if deed.state == S.ACTIVE.value else DeedState(deed.state)
        raise DeedStateConflict(
            MSG_NOT_STARTED,
            rule=_rules().rule_id("grant"),
            deed=deed.number,
            state_label=Label(STATE_LABELS[shown]),
        )


def _check_asset(session: Session, deed: PolicyTrustDeed, asset_id: str) -> None:
    if asset_id not in _asset_ids(session, deed.id):
        raise InvalidDeed(
            MSG_GRANT_ASSET,
            rule=_rules().rule_id("grant"),
            field="asset_id",
            asset=asset_id,
            deed=deed.number,
        )


def grant_use(
    session: Session,
    principal: Principal,
    deed_id: str,
    draft: Any,
    *,
    issuer: Any,
    today: date | None = None,
) -> Any:
    """The trustee grants a use of the trust property (``grants.offer_grant`` under the deed's
    mandate): the grants core refuses a grant beyond the deed's assets, scope or term."""
    from datafactor.policy import grants

    today = today or today_cn()
    deed, actor = _acting(session, principal, deed_id)
    if actor is not Actor.TRUSTEE:
        raise WrongParty(
            MSG_NOT_ALLOWED,
            rule=_rules().rule_id("grant"),
            permission=P.POLICY_TRUST_MANAGE.value,
        )
    _in_effect(deed, today)
    _check_asset(session, deed, draft.asset_id)
    _not_to_trustee(deed, draft.grantee_id)
    return grants.offer_grant(
        session, principal, draft, mandate=mandate_of(session, deed), issuer=issuer, today=today
    )


def _not_to_trustee(deed: PolicyTrustDeed, grantee_id: str) -> None:
    """No self-dealing (信托法 第二十八条): the trustee never licenses the trust's data to itself."""
    if grantee_id == deed.trustee_id:
        raise InvalidDeed(
            MSG_SELF_DEALING,
            rule=_rules().rule_id("self_dealing"),
            field="grantee_id",
            deed=deed.number,
        )


def request_use(
    session: Session,
    principal: Principal,
    deed_id: str,
    draft: Any,
    *,
    today: date | None = None,
) -> Any:
    """A party asks the trustee for a use of the trust property (``grants.request_grant``).
    Any verified party may ask while the deed is in effect; a deed not in effect is not found
    (unless the asker may see the deed: then it is told the deed's state). The deed is locked,
    so a request never slips in while the deed is being ended."""
    from datafactor.policy import grants

    _require(principal, P.POLICY_GRANT_REQUEST)
    today = today or today_cn()
    deed = _load_for_update(session, deed_id)
    if deed.state != S.ACTIVE.value or today > deed.term_end:
        if not visible_roles(session, deed, principal):
            raise NotFound(MSG_NO_DEED)
        _in_effect(deed, today)
    _check_asset(session, deed, draft.asset_id)
    _not_to_trustee(deed, principal.party_id)
    return grants.request_grant(
        session, principal, draft, mandate=mandate_of(session, deed), today=today
    )


def decide_use(
    session: Session,
    principal: Principal,
    deed_id: str,
    grant_id: str,
    *,
    approve: bool,
    reason: str = "",
    issuer: Any,
    today: date | None = None,
) -> Any:
    """The trustee decides a request for a use under the deed."""
    from datafactor.policy import grants

    today = today or today_cn()
    deed, actor = _acting(session, principal, deed_id)
    if actor is not Actor.TRUSTEE:
        raise WrongParty(
            MSG_NOT_ALLOWED, rule=_rules().rule_id("grant"), permission=P.POLICY_TRUST_MANAGE.value
        )
    _grant_under(session, deed, grant_id)
    if approve:
        _in_effect(deed, today)
    return grants.decide_grant(
        session,
        principal,
        grant_id,
        approve=approve,
        reason=reason,
        mandate=mandate_of(session, deed),
        issuer=issuer,
        today=today,
    )


def deed_grants(session: Session, deed_id: str) -> list[Any]:
    """Every grant under the deed (for the pages of those who see everything)."""
    from datafactor.policy import grants

    return list(grants.grants_under(session, grants.Regime.TRUST, deed_id))


def _grant_under(session: Session, deed: PolicyTrustDeed, grant_id: str) -> Any:
    found = next((g for g in deed_grants(session, deed.id) if g.id == grant_id), None)
    if found is None:
        raise InvalidDeed(
            MSG_NO_GRANT,
            rule=_rules().rule_id("grant"),
            field="grant_id",
            grant=grant_id,
            deed=deed.number,
        )
    return found


def record_misuse(
    session: Session,
    principal: Principal,
    deed_id: str,
    grant_id: str,
    *,
    description: str,
    today: date | None = None,
) -> PolicyTrustMisuse:
    """The trustee records data misuse it found under a grant of the deed: the grant is
    suspended (through the grants core) and the record kept for the credit system."""
    from datafactor.policy import grants

    today = today or today_cn()
    rules = _rules()
    deed, actor = _acting(session, principal, deed_id)
    if actor is not Actor.TRUSTEE:
        raise WrongParty(
            MSG_NOT_ALLOWED, rule=rules.rule_id("misuse"), permission=P.POLICY_TRUST_MANAGE.value
        )
    text = description.strip()
    if not text or len(text) > 4000:
        raise InvalidDeed(MSG_DESCRIPTION, rule=rules.rule_id("misuse"), field="description")
    grant = _grant_under(session, deed, grant_id)
    grants.suspend_grant(
        session,
        principal,
        grant.id,
        reason=f"{rules.rule_id('misuse')}: {text}"[:2000],
        today=today,
    )
    record = PolicyTrustMisuse(
        deed_id=deed.id,
        grant_id=grant.id,
        grantee_id=grant.grantee_id,
        description=text,
        found_on=today,
        recorded_by=principal.user_id,
    )
    session.add(record)
    session.flush()
    for party_id in _audited(deed):
        audit.record(
            session,
            actor=principal,
            action="policy:trust:misuse",
            object_type="policy_trust_misuse",
            object_id=record.id,
            summary=f"Trust deed {deed.number}: data misuse under grant {grant.number}",
            party_id=party_id,
            reasons=[rules.rule_id("misuse"), text],
        )
    _notify(
        session,
        deed,
        [deed.settlor_id, grant.grantee_id],
        MSG_N_MISUSE,
        grant=str(grant.number),
        description=text,
    )
    return record


def list_misuse(session: Session, principal: Principal, deed_id: str) -> list[PolicyTrustMisuse]:
    deed = get_deed(session, principal, deed_id)
    if not sees_everything(visible_roles(session, deed, principal)):
        return []
    return list(
        session.scalars(
            select(PolicyTrustMisuse)
            .where(PolicyTrustMisuse.deed_id == deed.id)
            .order_by(PolicyTrustMisuse.created_at)
        )
    )


def split_for(session: Session, deed: PolicyTrustDeed, on: date) -> SplitVersion:
    return split_in_force(_versions(session, deed.id), on)


def _register_asset_holds() -> None:
    from datafactor.policy import grants

    grants.register_asset_hold(_asset_holds)


_register_asset_holds()
