"""Public data authorised operation's use cases: sign and end agreements, set caps and rates,
publish fees, grant and decide uses, record costs, generate and file the annual report.

Each function is one use case in the caller's transaction (``db.write()``): it gathers the facts
(parties, registry assets and rights, the agreement, caps, fees), applies ``domain`` and writes the
result with its audit events — all or nothing. Signing appends the agreement to the ledger and
makes the implementing body grant the operator the agreement's licence over each data set through
the grants core (``offer_grant`` under an OPERATION mandate whose agent is the body itself), so a
body that holds no registered right over a data set cannot sign for it; a use is a grant the
operator makes (or approves) under the agreement's mandate, priced here first. Suspending,
terminating or the expiry of an agreement ends the grants under it in the same transaction.

Dates: every use case takes ``today`` (Asia/Shanghai by default) so tests and the demo run on a
fixed clock.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox, ledger, registry
from datafactor.db import new_id, today_cn, utcnow
from datafactor.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from datafactor.permissions import Permission, Principal
from datafactor.policy.editor import EditorValues, build_document
from datafactor.policy.grants import (
    GrantAction,
    GrantDraft,
    GrantState,
    Mandate,
    MandateLapse,
    PolicyGrant,
    Regime,
    change_grants_under,
    decide_grant,
    end_grants_under,
    grants_under,
    offer_grant,
    register_mandate_check,
    request_grant,
)
from datafactor.policy.operation.domain import (
    LIVE_STATES,
    OPERATOR_KIND,
    AgreementFacts,
    AgreementState,
    AgreementTerms,
    AssetFacts,
    CapVersion,
    FeeVersion,
    LiveAgreement,
    Named,
    OperationConflict,
    OperationInvalid,
    OperationRules,
    PeriodInput,
    PeriodRevenue,
    RateVersion,
    Selection,
    UseFacts,
    UsePrice,
    agreement_not_live,
    check_agreement,
    check_cap,
    check_cost,
    check_day,
    check_fee,
    check_rate,
    check_transition,
    check_use,
    check_year,
    effective_state,
    in_force,
    lapse_texts,
    load_operation_rules,
    revenue_chain,
    what_named,
    yuan_text,
)
from datafactor.policy.operation.models import (
    OperationAgreement,
    OperationAgreementAsset,
    OperationCost,
    OperationFee,
    OperationFeeCap,
    OperationProfitRate,
    OperationReport,
    OperationUse,
)

P = Permission

AGREEMENT_EVENT: Final = "operation.agreement.signed"
AGREEMENT_STATE_EVENT: Final = "operation.agreement.state"
REPORT_EVENT: Final = "operation.report.filed"
RECORD_FORMAT: Final = "datafactor-operation-agreement/v1"
REPORT_FORMAT: Final = "datafactor-operation-report/v1"
POLICY_BASE: Final = "https://datafactor.gx.cn/odrl/policies/operation/"
KIND: Final = "policy.operation"  # the inbox kind of every message about operation

MSG_NOT_ALLOWED: Final = N_("Your account is not allowed to do this ({permission}).")
MSG_NO_AGREEMENT: Final = N_("No such authorisation agreement.")
MSG_NO_USE: Final = N_("No such use.")
MSG_NO_OPERATOR: Final = N_("No such public-data operator.")
MSG_NOT_BODY_OF: Final = N_(
    "Only the implementing body that signed agreement {number} can suspend or resume it; it or "
    "the operator can terminate it."
)
MSG_NOT_OPERATOR_OF: Final = N_(
    "Only the operator of agreement {number} can grant or decide uses under it."
)
MSG_NUMBER_TAKEN: Final = N_(
    "You already signed an agreement numbered {number}: give the number of this agreement."
)
MSG_REASON: Final = N_("Give a reason, so that the other party knows why.")
MSG_PAST_DATE: Final = N_(
    "A new {what} takes effect from today ({today}) or a later day: what was in force before is "
    "kept as it was (rule {rule})."
)
MSG_REPORT_FILED: Final = N_(
    "The annual report for {year} is already filed: its records are closed. Record the cost in "
    "the year it belongs to, or in the current year as a correction (rule {rule})."
)
MSG_YEAR_CLOSED: Final = N_(
    "The annual report for {filed} is filed: {year} and the years before it are closed. Record "
    "the cost in the current year as a correction (rule {rule})."
)
MSG_REPORT_TWICE: Final = N_("The annual report for {year} was filed on {on}: it is filed once.")
MSG_FILE_IN_ORDER: Final = N_(
    "File the annual report for {missing} first: reports are filed year by year, each carrying "
    "its excess income into the next, so {year} is filed after it (rule {rule})."
)
MSG_NOT_FILED: Final = N_(
    "The operator has not filed its annual report for {year} yet: implementing bodies read "
    "the reports once they are filed."
)
MSG_YEAR_OPEN: Final = N_(
    "The year {year} has not ended: its annual report is filed after 31 December (rule {rule})."
)
MSG_NO_RIGHT_SCOPE: Final = N_(
    "The data sets' registered rights allow different regions ({regions}): state the regions "
    "the agreement covers (rule {rule})."
)
MSG_NOT_DECIDABLE: Final = N_("Use {number} is {outcome}: only a requested use is decided.")
MSG_AGREEMENT_USE: Final = N_("Name the agreement the use is made under, and one of its data sets.")

# Inbox messages (msgids with text parameters; ``*_label`` parameters are msgids too).
MSG_SIGNED: Final = N_(
    "{body} signed authorisation agreement {number} with you: {count} public data sets, until "
    "{end}. Uses are made by API or in the sandbox only."
)
MSG_AGREEMENT_STATE: Final = N_("Authorisation agreement {number} is now “{state_label}”. {reason}")
MSG_REPORT_FILED_NOTE: Final = N_("{operator} filed its annual report for {year}.")
WHY_EXPIRED: Final = N_("The agreement's term ended on {end}.")
WHY_ENDED_SUSPENDED: Final = N_("Its term ended while agreement {number} was suspended.")

EVENT_LABELS: Final[Mapping[str, str]] = {
    "policy:operation:sign": N_("Authorisation agreement signed"),
    "policy:operation:suspend": N_("Authorisation agreement suspended"),
    "policy:operation:resume": N_("Authorisation agreement resumed"),
    "policy:operation:terminate": N_("Authorisation agreement terminated"),
    "policy:operation:expire": N_("Authorisation agreement expired"),
    "policy:operation:cap": N_("Service-fee cap set"),
    "policy:operation:rate": N_("Reasonable-profit rate set"),
    "policy:operation:fee": N_("Service fee published"),
    "policy:operation:use-offer": N_("Public data use granted"),
    "policy:operation:use-request": N_("Public data use requested"),
    "policy:operation:use-decide": N_("Public data use decided"),
    "policy:operation:cost": N_("Operating cost recorded"),
    "policy:operation:report": N_("Annual report filed"),
}
STATE_MSGIDS: Final[Mapping[str, str]] = {
    "active": N_("Active"),
    "suspended": N_("Suspended"),
    "terminated": N_("Terminated"),
    "expired": N_("Expired"),
}
# Grants whose fee counts as paid-use income: decided in the operator's favour and not refused
# afterwards by the registry (a grant revoked or ended later was still paid for).
INCOME_STATES: Final = frozenset(
    {
        GrantState.APPROVED,
        GrantState.ACTIVE,
        GrantState.SUSPENDED,
        GrantState.REVOKED,
        GrantState.EXPIRED,
    }
)


# ------------------------------------------------------------------------------------ plumbing


def _rules() -> OperationRules:
    return load_operation_rules()


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(p) for p in permissions):
        raise Forbidden(MSG_NOT_ALLOWED, permission=permissions[0].value)


def _supervisor(principal: Principal) -> bool:
    """The bureau, the exchange and regulators read every agreement, use, cost and report."""
    return principal.can(P.POLICY_GRANT_READ_ALL)


def _directory() -> Principal:
    """The service looking parties up (kind, status, name): operators and implementing bodies
    are public market participants; read only."""
    return Principal(
        user_id="",
        username="operation",
        party_id="",
        party_kind="",
        roles=frozenset(),
        permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
        via="cli",
    )


@dataclass(frozen=True)
class PartyCard:
    """A party as operation shows it: id, name, kind, verified."""

    id: str
    name: str
    kind: str
    verified: bool


def party_card(session: Session, party_id: str) -> PartyCard | None:
    try:
        party = identity.get_party(session, _directory(), party_id)
    except NotFound:
        return None
    verified = str(party.status) == identity.PartyStatus.VERIFIED.value
    return PartyCard(party.id, party.name, str(party.kind), verified)


def operators(session: Session) -> list[PartyCard]:
    """The verified public-data operators (the list a body chooses from)."""
    rows, _ = identity.list_parties(
        session,
        _directory(),
        identity.PartyQuery(status=identity.PartyStatus.VERIFIED.value, kind=OPERATOR_KIND),
        limit=500,
        offset=0,
    )
    return sorted((PartyCard(p.id, p.name, str(p.kind), True) for p in rows), key=lambda c: c.name)


def _bureaus(session: Session) -> list[str]:
    rows, _ = identity.list_parties(
        session,
        _directory(),
        identity.PartyQuery(status=identity.PartyStatus.VERIFIED.value, kind="bigdata_bureau"),
        limit=50,
        offset=0,
    )
    return [p.id for p in rows]


def _audit(
    session: Session,
    principal: Principal | None,
    action: str,
    object_type: str,
    object_id: str,
    summary: str,
    parties: Iterable[str],
    reasons: Sequence[str] = (),
) -> None:
    for party in sorted(set(parties)):
        audit.record(
            session,
            actor=principal,
            action=action,
            object_type=object_type,
            object_id=object_id,
            summary=summary,
            party_id=party,
            reasons=[r for r in reasons if r],
            actor_name=None if principal else "operation",
        )


def _on(today: date | None) -> date:
    return today or today_cn()


# ---------------------------------------------------------------------------------- agreements


@dataclass(frozen=True)
class AgreementDraft:
    """What an implementing body signs: the operator, the agreement's number, the selection
    procedure, the data sets (registry asset ids), the term (default: from signing, the rules
    file's years) and the scope limits (None: the registered rights' own)."""

    operator_id: str
    number: str
    selection: Selection | None
    asset_ids: tuple[str, ...]
    signed_on: date | None = None
    term_start: date | None = None
    term_end: date | None = None
    purposes: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None


def _asset_ids(session: Session, agreement_id: str) -> list[OperationAgreementAsset]:
    return list(
        session.scalars(
            select(OperationAgreementAsset)
            .where(OperationAgreementAsset.agreement_id == agreement_id)
            .order_by(OperationAgreementAsset.asset_name, OperationAgreementAsset.asset_id)
        )
    )


def agreement_assets(session: Session, agreement_id: str) -> list[tuple[str, str]]:
    """The data sets an agreement covers: (asset id, name)."""
    return [(a.asset_id, a.asset_name) for a in _asset_ids(session, agreement_id)]


def _live_of(session: Session, operator_id: str, today: date) -> list[LiveAgreement]:
    rows = session.scalars(
        select(OperationAgreement).where(
            OperationAgreement.operator_id == operator_id,
            OperationAgreement.state.in_([s.value for s in LIVE_STATES]),
        )
    )
    out = []
    for row in rows:
        if effective_state(row.state, row.term_end, today) not in LIVE_STATES:
            continue
        ids = frozenset(a.asset_id for a in _asset_ids(session, row.id))
        out.append(LiveAgreement(row.number, ids, row.term_start, row.term_end))
    return out


def _holding_scopes(session: Session, asset_ids: Iterable[str], body_id: str) -> list[Any]:
    """The scopes of the body's holding rights in force over the assets (for the defaults)."""
    scopes = []
    for asset_id in asset_ids:
        for right in registry.rights_on_asset(session, asset_id):
            if (
                right.holder_id == body_id
                and right.kind is registry.RightKind.HOLDING
                and right.status in registry.LIVE_STATUSES
            ):
                scopes.append(right.scope)
                break
    return scopes


def _default_limits(
    session: Session, draft: AgreementDraft, body_id: str, rules: OperationRules
) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """The agreement's purposes and regions when the body does not state them: what every data
    set's registered holding right allows (purposes: their intersection with the use classes'
    purposes; regions: the same codes on every right, else the body must state them)."""
    purposes = frozenset(draft.purposes) if draft.purposes is not None else None
    regions = frozenset(draft.regions) if draft.regions is not None else None
    scopes = _holding_scopes(session, draft.asset_ids, body_id)
    if purposes is None:
        allowed = set(rules.purposes)
        for scope in scopes:
            if scope.purposes is not None:
                allowed &= set(scope.purposes)
        purposes = frozenset(allowed)
    if regions is None:
        found = {scope.regions for scope in scopes}
        if len(found) > 1:
            shown = "; ".join(sorted(", ".join(sorted(r)) if r else "*" for r in found))
            raise OperationInvalid(
                MSG_NO_RIGHT_SCOPE,
                rule=rules.rule_id("use_scope"),
                field="regions",
                regions=shown,
            )
        regions = next(iter(found)) if found else None
    return purposes, regions


def agreement_policy(
    uid: str,
    *,
    purposes: Iterable[str],
    channels: Iterable[str],
    regions: Iterable[str] | None,
    term_end: date,
    max_uses: int | None = None,
    onward_transfer: bool = True,
) -> dict[str, Any]:
    """The ODRL policy of a grant under an agreement (the operator's licence, or a use): use for
    the purposes, by the channels, in the regions, until the term's end; download and
    re-identification prohibited — and, for a user's use, onward transfer (giving, selling,
    distributing) and reproducing the data too: a user uses public data, it never passes it
    on (OPS-USE-POLICY, OPS-IN-DOMAIN)."""
    document = build_document(
        EditorValues(
            purposes=sorted(purposes),
            channels=sorted(channels),
            regions=sorted(regions) if regions else [],
            term_end=term_end,
            max_uses=max_uses,
            prohibit_download=True,
            prohibit_onward_transfer=not onward_transfer,
            prohibit_reidentification=True,
        ),
        uid=uid,
    )
    if not onward_transfer:
        document["prohibition"].append({"uid": f"{uid}#no-reproduce", "action": "reproduce"})
    return document


def mandate_of(agreement: OperationAgreement, session: Session, *, agent_id: str) -> Mandate:
    """The agreement as the grants core's mandate (``agent_id``: the operator for uses, the body
    itself for the operator's own licence)."""
    return Mandate(
        regime=Regime.OPERATION,
        reference_id=agreement.id,
        agent_id=agent_id,
        holder_id=agreement.body_id,
        asset_ids=frozenset(a.asset_id for a in _asset_ids(session, agreement.id)),
        scope=dict(agreement.scope),
        term_start=agreement.term_start,
        term_end=agreement.term_end,
        allowed_channels=frozenset(agreement.channels),
    )


def sign_agreement(
    session: Session,
    principal: Principal,
    draft: AgreementDraft,
    *,
    issuer: registry.Issuer,
    today: date | None = None,
) -> OperationAgreement:
    """The implementing body signs an agreement with an operator, after a recorded selection:
    checked, stored with its data sets, appended to the ledger, and the body's licence to the
    operator granted over each data set (licence applications filed) — in one transaction."""
    _require(principal, P.POLICY_OPERATION_AUTHORISE)
    rules = _rules()
    on = _on(today)
    signed_on = draft.signed_on or on
    body = party_card(session, principal.party_id)
    operator = party_card(session, draft.operator_id) if draft.operator_id else None
    assets: list[AssetFacts] = []
    missing: list[str] = []
    for asset_id in dict.fromkeys(draft.asset_ids):
        found = registry.asset_facts(session, asset_id)
        if found is None or found.party_id != principal.party_id:
            missing.append(asset_id)
        else:
            assets.append(AssetFacts(found.id, found.party_id, found.data_class, found.name))
    purposes, regions = (None, None)
    if not missing and assets and all(a.data_class == "public" for a in assets):
        purposes, regions = _default_limits(session, draft, principal.party_id, rules)
    facts = AgreementFacts(
        body_id=principal.party_id,
        body_kind=principal.party_kind,
        operator_id=operator.id if operator and operator.verified else None,
        operator_kind=operator.kind if operator and operator.verified else None,
        number=draft.number.strip(),
        signed_on=signed_on,
        selection=draft.selection,
        assets=tuple(assets),
        missing_assets=tuple(missing),
        term_start=draft.term_start,
        term_end=draft.term_end,
        purposes=purposes,
        regions=regions,
        live=tuple(_live_of(session, draft.operator_id, on)) if operator else (),
    )
    plan = check_agreement(facts, rules)
    # check_agreement refused a missing operator, selection or body kind above.
    assert operator is not None
    assert draft.selection is not None
    assert body is not None
    taken = session.scalar(
        select(func.count())
        .select_from(OperationAgreement)
        .where(
            OperationAgreement.body_id == principal.party_id,
            OperationAgreement.number == facts.number,
        )
    )
    if taken:
        raise Conflict(MSG_NUMBER_TAKEN, field="number", number=facts.number)
    agreement = OperationAgreement(
        id=new_id(),
        number=facts.number,
        body_id=principal.party_id,
        body_name=body.name,
        operator_id=operator.id,
        operator_name=operator.name,
        procedure=draft.selection.procedure,
        procedure_reference=draft.selection.reference.strip(),
        selected_on=draft.selection.decided_on,
        selection_record=draft.selection.record.strip(),
        signed_on=signed_on,
        term_start=plan.term_start,
        term_end=plan.term_end,
        scope=dict(plan.scope),
        channels=sorted(plan.channels),
        state=AgreementState.ACTIVE.value,
        state_since=on,
        state_reason="",
        rules=list(plan.rules),
        created_by=principal.user_id or None,
    )
    session.add(agreement)
    session.flush()
    for asset in assets:
        session.add(
            OperationAgreementAsset(
                agreement_id=agreement.id, asset_id=asset.id, asset_name=asset.name
            )
        )
    session.flush()
    agreement.ledger_index = ledger.append_event(
        session, AGREEMENT_EVENT, _agreement_record(session, agreement, rules)
    )
    mandate = mandate_of(agreement, session, agent_id=agreement.body_id)
    scope = agreement.scope
    for asset in assets:
        offer_grant(
            session,
            principal,
            GrantDraft(
                asset_id=asset.id,
                grantee_id=operator.id,
                policy=agreement_policy(
                    f"{POLICY_BASE}{agreement.id}/licence/{asset.id}",
                    purposes=scope["purposes"] or (),
                    channels=agreement.channels,
                    regions=scope.get("regions"),
                    term_end=agreement.term_end,
                ),
                term_start=agreement.term_start,
                term_end=agreement.term_end,
                purpose_note=f"授权运营协议 {agreement.number} / authorisation agreement",
            ),
            mandate=mandate,
            issuer=issuer,
            today=on,
            backdated=True,  # the agreement's own licence runs from its signing day
        )
    _audit(
        session,
        principal,
        "policy:operation:sign",
        "policy_operation_agreement",
        agreement.id,
        f"Authorisation agreement {agreement.number} signed with {operator.name} "
        f"({len(assets)} data sets, {agreement.term_start} to {agreement.term_end}; "
        f"ledger entry {agreement.ledger_index})",
        (agreement.body_id, agreement.operator_id),
        plan.rules,
    )
    inbox.notify(
        session,
        [agreement.operator_id],
        kind=KIND,
        message=MSG_SIGNED,
        params={
            "body": body.name,
            "number": agreement.number,
            "count": str(len(assets)),
            "end": agreement.term_end.isoformat(),
        },
        link=f"/operation/agreements/{agreement.id}",
    )
    return agreement


def _agreement_record(
    session: Session, agreement: OperationAgreement, rules: OperationRules
) -> dict[str, Any]:
    """The signed agreement as the ledger keeps it: ids, dates, scope and rules only (a ledger
    entry is public forever: no names, no free text)."""
    return {
        "format": RECORD_FORMAT,
        "agreement_id": agreement.id,
        "number": agreement.number,
        "body_id": agreement.body_id,
        "operator_id": agreement.operator_id,
        "asset_ids": sorted(a.asset_id for a in _asset_ids(session, agreement.id)),
        "procedure": agreement.procedure,
        "procedure_reference": agreement.procedure_reference,
        "selected_on": agreement.selected_on.isoformat(),
        "signed_on": agreement.signed_on.isoformat(),
        "term": {"start": agreement.term_start.isoformat(), "end": agreement.term_end.isoformat()},
        "scope": agreement.scope,
        "channels": list(agreement.channels),
        "rules": list(agreement.rules),
        "rules_version": rules.version,
    }


def _visible(principal: Principal, agreement: OperationAgreement) -> bool:
    if principal.party_id in (agreement.body_id, agreement.operator_id):
        return principal.can(P.POLICY_OPERATION_READ) or _supervisor(principal)
    return _supervisor(principal)


def _published(agreement: OperationAgreement, on: date) -> bool:
    """Whether the agreement is in the published catalogue on ``on`` (active, in its term)."""
    return (
        agreement.state == AgreementState.ACTIVE.value
        and agreement.term_start <= on <= agreement.term_end
    )


def get_agreement(session: Session, principal: Principal, agreement_id: str) -> OperationAgreement:
    """An agreement its body or operator (or a supervisor) may see; others: not found."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    row = session.get(OperationAgreement, agreement_id)
    if row is None or not _visible(principal, row):
        raise NotFound(MSG_NO_AGREEMENT)
    return row


def list_agreements(
    session: Session,
    principal: Principal,
    *,
    state: str | None = None,
    operator_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[OperationAgreement], int]:
    """The agreements the principal's party signed or operates (every one for a supervisor),
    newest first."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    stmt = select(OperationAgreement)
    if not _supervisor(principal):
        party = principal.party_id
        stmt = stmt.where(
            (OperationAgreement.body_id == party) | (OperationAgreement.operator_id == party)
        )
    if state:
        stmt = stmt.where(OperationAgreement.state == state)
    if operator_id:
        stmt = stmt.where(OperationAgreement.operator_id == operator_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(OperationAgreement.created_at.desc(), OperationAgreement.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def _locked_agreement(
    session: Session, principal: Principal, agreement_id: str
) -> OperationAgreement:
    row = session.execute(
        select(OperationAgreement)
        .where(OperationAgreement.id == agreement_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None or not _visible(principal, row):
        raise NotFound(MSG_NO_AGREEMENT)
    return row


def _move(
    session: Session,
    agreement: OperationAgreement,
    target: AgreementState,
    principal: Principal | None,
    *,
    on: date,
    reason: str,
    reason_params: Mapping[str, str] | None = None,
) -> OperationAgreement:
    """Record the state change with its ledger entry, audit events and messages."""
    rules = _rules()
    source = AgreementState(agreement.state)
    check_transition(agreement.number, source, target, rules)
    agreement.state = target.value
    agreement.state_since = on
    agreement.state_reason = reason.format(**reason_params) if reason_params else reason
    agreement.updated_at = utcnow()
    applied = [rules.rule_id("transition"), rules.rule_id("agreement_end")]
    index = ledger.append_event(
        session,
        AGREEMENT_STATE_EVENT,
        {
            "agreement_id": agreement.id,
            "number": agreement.number,
            "state": target.value,
            "on": on.isoformat(),
            "rules": applied,
        },
    )
    action = {
        AgreementState.SUSPENDED: "suspend",
        AgreementState.ACTIVE: "resume",
        AgreementState.TERMINATED: "terminate",
        AgreementState.EXPIRED: "expire",
    }[target]
    _audit(
        session,
        principal,
        f"policy:operation:{action}",
        "policy_operation_agreement",
        agreement.id,
        f"Authorisation agreement {agreement.number}: {source.value} -> {target.value} "
        f"(ledger entry {index})",
        (agreement.body_id, agreement.operator_id),
        [agreement.state_reason, *applied],
    )
    inbox.notify(
        session,
        [agreement.body_id, agreement.operator_id],
        kind=KIND,
        message=MSG_AGREEMENT_STATE,
        params={
            "number": agreement.number,
            "state_label": STATE_MSGIDS[target.value],
            "reason": agreement.state_reason,
        },
        link=f"/operation/agreements/{agreement.id}",
    )
    return agreement


def change_agreement(
    session: Session,
    principal: Principal,
    agreement_id: str,
    target: AgreementState,
    *,
    reason: str,
    today: date | None = None,
) -> OperationAgreement:
    """The body suspends, resumes or terminates its agreement; the operator may terminate it
    (it refuses an agreement recorded in its name, or withdraws from one). Suspension suspends
    the grants under it that are in effect; grants approved whose licence is still being
    registered, and requests awaiting the operator, are held as they are: while the agreement
    is suspended nothing is approved, offered, resumed or used under it (the grants core asks
    ``_agreement_lapse``). Resuming resumes the grants the suspension suspended — those whose
    term ended meanwhile are expired instead, those whose licence the registry no longer keeps
    in force are left to the grants monitor. Termination revokes every grant under it."""
    _require(principal, P.POLICY_OPERATION_AUTHORISE, P.POLICY_OPERATION_OPERATE)
    on = _on(today)
    agreement = _locked_agreement(session, principal, agreement_id)
    as_body = agreement.body_id == principal.party_id and principal.can(
        P.POLICY_OPERATION_AUTHORISE
    )
    as_operator = (
        agreement.operator_id == principal.party_id
        and principal.can(P.POLICY_OPERATION_OPERATE)
        and target is AgreementState.TERMINATED
    )
    if not (as_body or as_operator):
        raise Forbidden(MSG_NOT_BODY_OF, number=agreement.number)
    if not reason.strip():
        raise InvalidInput(MSG_REASON, field="reason")
    reason = reason.strip()
    # An agreement whose term is over is expired, whether or not the sweep has recorded it.
    current = effective_state(agreement.state, agreement.term_end, on)
    check_transition(agreement.number, current, target, _rules())
    _move(session, agreement, target, principal, on=on, reason=reason)
    # The body acts on the grants under its agreement through the agreement (the grants core
    # lets only the agreement's agent act on them one by one).
    if target is AgreementState.SUSPENDED:
        held = change_grants_under(
            session,
            Regime.OPERATION,
            agreement.id,
            GrantAction.SUSPEND,
            states=(GrantState.ACTIVE,),
            reason=reason,
            actor=principal,
            today=on,
        )
        agreement.suspended_grants = [g.id for g in held]
    elif target is AgreementState.ACTIVE:
        _resume_held(session, agreement, principal, reason, on)
        agreement.suspended_grants = []
    else:
        end_grants_under(
            session,
            Regime.OPERATION,
            agreement.id,
            state=GrantState.REVOKED,
            reason=reason,
            actor=principal,
            today=on,
        )
    _settle_requests(session, [agreement.id])
    return agreement


def _resume_held(
    session: Session, agreement: OperationAgreement, principal: Principal, reason: str, on: date
) -> None:
    """Resume the grants the suspension suspended: those whose term ended while it lasted are
    expired; those whose registered licence is not in force are left as they are (the grants
    monitor follows the registry); the rest resume."""
    held = set(agreement.suspended_grants or ())
    ended: list[str] = []
    resumable: list[str] = []
    for grant in grants_under(session, Regime.OPERATION, agreement.id):
        if grant.id not in held or grant.state != GrantState.SUSPENDED.value:
            continue
        right = (
            registry.right_of(session, grant.licence_right_id) if grant.licence_right_id else None
        )
        if grant.term_end < on:
            ended.append(grant.id)
        elif right is None or right.status in registry.LIVE_STATUSES:
            resumable.append(grant.id)
    for action, ids, why in (
        (GrantAction.EXPIRE, ended, WHY_ENDED_SUSPENDED.format(number=agreement.number)),
        (GrantAction.RESUME, resumable, reason),
    ):
        if ids:
            change_grants_under(
                session,
                Regime.OPERATION,
                agreement.id,
                action,
                states=(GrantState.SUSPENDED,),
                grant_ids=ids,
                reason=why,
                actor=principal,
                today=on,
            )


def _agreement_lapse(session: Session, agreement_id: str, on: date) -> MandateLapse | None:
    """The grants core's question (``register_mandate_check``): may grants be made, approved,
    resumed and used under this agreement on ``on``? Only while it is active (OPS-AGREEMENT-LIVE)
    — not suspended, terminated, or past its term. An id that is no agreement: no opinion."""
    agreement = session.get(OperationAgreement, agreement_id)
    if agreement is None:
        return None
    state = effective_state(agreement.state, agreement.term_end, on)
    if state is AgreementState.ACTIVE:
        return None
    rules = _rules()
    en, zh = lapse_texts(agreement.number, state)
    return MandateLapse(
        error=agreement_not_live(agreement.number, state, rules),
        rule=rules.rule_id("agreement_live"),
        en=en,
        zh=zh,
    )


register_mandate_check(Regime.OPERATION, _agreement_lapse)


def _expire(session: Session, agreement: OperationAgreement, on: date) -> None:
    params = {"end": agreement.term_end.isoformat()}
    _move(
        session,
        agreement,
        AgreementState.EXPIRED,
        None,
        on=on,
        reason=WHY_EXPIRED,
        reason_params=params,
    )
    end_grants_under(
        session,
        Regime.OPERATION,
        agreement.id,
        state=GrantState.EXPIRED,
        reason=WHY_EXPIRED.format(**params),
        actor=None,
        today=on,
    )
    _settle_requests(session, [agreement.id])


def sweep(session: Session, *, today: date | None = None) -> list[str]:
    """Expire every live agreement whose term has ended (and the grants under it), and record
    how the requests that ended before the operator decided them ended (withdrawn by the user,
    revoked, expired); the numbers of the agreements expired. A second run on the same day
    changes nothing."""
    on = _on(today)
    due = session.scalars(
        select(OperationAgreement)
        .where(
            OperationAgreement.state.in_([s.value for s in LIVE_STATES]),
            OperationAgreement.term_end < on,
        )
        .order_by(OperationAgreement.term_end, OperationAgreement.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    done = []
    for agreement in list(due):
        _expire(session, agreement, on)
        done.append(agreement.number)
    waiting = session.scalars(
        select(OperationUse.agreement_id).where(OperationUse.outcome == "requested").distinct()
    )
    _settle_requests(session, list(waiting))
    return done


# -------------------------------------------------------------------- caps, rates and fees


def _versions_of_caps(session: Session) -> list[CapVersion]:
    rows = session.scalars(
        select(OperationFeeCap).order_by(OperationFeeCap.created_at, OperationFeeCap.id)
    )
    return [CapVersion(r.effective_from, n, r.unit, r.amount_fen) for n, r in enumerate(rows)]


def _versions_of_rates(session: Session) -> list[RateVersion]:
    rows = session.scalars(
        select(OperationProfitRate).order_by(OperationProfitRate.created_at, OperationProfitRate.id)
    )
    return [RateVersion(r.effective_from, n, r.rate_bp) for n, r in enumerate(rows)]


def _versions_of_fees(session: Session, operator_id: str) -> list[FeeVersion]:
    rows = session.scalars(
        select(OperationFee)
        .where(OperationFee.operator_id == operator_id)
        .order_by(OperationFee.created_at, OperationFee.id)
    )
    return [
        FeeVersion(r.effective_from, n, r.asset_id, r.unit, r.amount_fen)
        for n, r in enumerate(rows)
    ]


def _not_past(effective_from: date, on: date, what: str, rules: OperationRules) -> None:
    check_day(effective_from, rules, field="effective_from")
    if effective_from < on:
        raise OperationInvalid(
            MSG_PAST_DATE,
            rule=rules.rule_id("cap_setting"),
            field="effective_from",
            what=what_named(what),
            today=on.isoformat(),
        )


def set_cap(
    session: Session,
    principal: Principal,
    *,
    unit: str,
    amount_fen: object,
    effective_from: date,
    source_document: str,
    note: str = "",
    today: date | None = None,
) -> OperationFeeCap:
    """The bureau sets the service-fee cap of a fee unit from a day on (history kept)."""
    _require(principal, P.POLICY_OPERATION_FEE_CAP)
    rules = _rules()
    on = _on(today)
    amount = check_cap(unit, amount_fen, source_document, rules)
    _not_past(effective_from, on, "cap", rules)
    row = OperationFeeCap(
        id=new_id(),
        unit=unit,
        amount_fen=amount,
        effective_from=effective_from,
        source_document=source_document.strip(),
        note=note.strip(),
        set_by_party_id=principal.party_id,
        set_by=principal.user_id or None,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        principal,
        "policy:operation:cap",
        "policy_operation_fee_cap",
        row.id,
        f"Service-fee cap {unit} = {yuan_text(amount)} yuan from {effective_from} "
        f"({row.source_document})",
        [principal.party_id],
        [rules.rule_id("fee_cap"), rules.rule_id("cap_setting")],
    )
    return row


def set_profit_rate(
    session: Session,
    principal: Principal,
    *,
    rate_bp: object,
    effective_from: date,
    source_document: str,
    note: str = "",
    today: date | None = None,
) -> OperationProfitRate:
    """The bureau sets the reasonable-profit rate (basis points) from a day on (history kept)."""
    _require(principal, P.POLICY_OPERATION_FEE_CAP)
    rules = _rules()
    on = _on(today)
    rate = check_rate(rate_bp, source_document, rules)
    _not_past(effective_from, on, "rate", rules)
    row = OperationProfitRate(
        id=new_id(),
        rate_bp=rate,
        effective_from=effective_from,
        source_document=source_document.strip(),
        note=note.strip(),
        set_by_party_id=principal.party_id,
        set_by=principal.user_id or None,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        principal,
        "policy:operation:rate",
        "policy_operation_profit_rate",
        row.id,
        f"Reasonable-profit rate {rate} bp from {effective_from} ({row.source_document})",
        [principal.party_id],
        [rules.rule_id("allowed_revenue"), rules.rule_id("cap_setting")],
    )
    return row


def list_caps(session: Session, principal: Principal) -> list[OperationFeeCap]:
    """Every cap ever set (the government-guided prices are public), newest effective first."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    return list(
        session.scalars(
            select(OperationFeeCap).order_by(
                OperationFeeCap.effective_from.desc(), OperationFeeCap.created_at.desc()
            )
        )
    )


def list_rates(session: Session, principal: Principal) -> list[OperationProfitRate]:
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    return list(
        session.scalars(
            select(OperationProfitRate).order_by(
                OperationProfitRate.effective_from.desc(), OperationProfitRate.created_at.desc()
            )
        )
    )


def caps_in_force(session: Session, on: date) -> dict[str, CapVersion]:
    """The cap in force on ``on`` for each fee unit that has one."""
    versions = _versions_of_caps(session)
    out = {}
    for unit in sorted({v.unit for v in versions}):
        found = in_force([v for v in versions if v.unit == unit], on)
        if found is not None:
            out[unit] = found
    return out


def in_force_ids(rows: Sequence[Any], on: date, key: str = "unit") -> set[str]:
    """The ids of the rows in force on ``on``, per ``key`` (caps per unit; ``key=""``: one for
    all, as the profit rate): the latest effective on or before it, the later set on a tie."""
    best: dict[str, Any] = {}
    for row in rows:
        group = getattr(row, key) if key else ""
        found = best.get(group)
        if row.effective_from <= on and (
            found is None
            or (row.effective_from, row.created_at) > (found.effective_from, found.created_at)
        ):
            best[group] = row
    return {row.id for row in best.values()}


def rate_in_force(session: Session, on: date) -> RateVersion | None:
    return in_force(_versions_of_rates(session), on)


def _agreement_covering(
    session: Session, operator_id: str, asset_id: str, on: date
) -> OperationAgreement | None:
    """The operator's agreement in effect on ``on`` that covers ``asset_id`` (one at most: live
    agreements of one operator never overlap on a data set)."""
    rows = session.scalars(
        select(OperationAgreement)
        .join(
            OperationAgreementAsset,
            OperationAgreementAsset.agreement_id == OperationAgreement.id,
        )
        .where(
            OperationAgreement.operator_id == operator_id,
            OperationAgreementAsset.asset_id == asset_id,
            OperationAgreement.state == AgreementState.ACTIVE.value,
            OperationAgreement.term_start <= on,
            OperationAgreement.term_end >= on,
        )
    )
    return next(iter(rows), None)


def publish_fee(
    session: Session,
    principal: Principal,
    *,
    asset_id: str,
    unit: str,
    amount_fen: object,
    effective_from: date,
    note: str = "",
    today: date | None = None,
) -> OperationFee:
    """The operator publishes its fee for a data set it operates and a fee unit, from a day on:
    never above the cap in force that day (history kept)."""
    _require(principal, P.POLICY_OPERATION_OPERATE)
    rules = _rules()
    on = _on(today)
    _not_past(effective_from, on, "fee", rules)
    covering = _agreement_covering(session, principal.party_id, asset_id, effective_from)
    amount, cap = check_fee(
        unit,
        amount_fen,
        effective_from,
        covered=covering is not None,
        asset_label=asset_id,
        caps=_versions_of_caps(session),
        rules=rules,
    )
    assert covering is not None
    name = next(
        (a.asset_name for a in _asset_ids(session, covering.id) if a.asset_id == asset_id), asset_id
    )
    row = OperationFee(
        id=new_id(),
        operator_id=principal.party_id,
        operator_name=covering.operator_name,
        asset_id=asset_id,
        asset_name=name,
        unit=unit,
        amount_fen=amount,
        effective_from=effective_from,
        cap_fen=cap.amount_fen,
        note=note.strip(),
        published_by=principal.user_id or None,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        principal,
        "policy:operation:fee",
        "policy_operation_fee",
        row.id,
        f"Fee published for {name}: {yuan_text(amount)} yuan {unit} from {effective_from} "
        f"(cap {yuan_text(cap.amount_fen)})",
        [principal.party_id, covering.body_id],
        [rules.rule_id("paid_use"), rules.rule_id("fee_cap")],
    )
    return row


@dataclass(frozen=True)
class FeeRow:
    """A published fee with the cap in force on the day asked, and the agreement covering it."""

    fee: OperationFee
    in_force: bool
    cap_fen: int | None
    agreement_id: str | None
    agreement_number: str | None

    @property
    def within_cap(self) -> bool:
        return self.cap_fen is not None and self.fee.amount_fen <= self.cap_fen


def list_fees(
    session: Session,
    principal: Principal,
    *,
    operator_id: str | None = None,
    asset_id: str | None = None,
    on: date | None = None,
    history: bool = False,
) -> list[FeeRow]:
    """The published fees (收费公示), readable by every logged-in user: those in force on ``on``
    (today by default), or every version with ``history``."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    day = _on(on)
    stmt = select(OperationFee)
    if operator_id:
        stmt = stmt.where(OperationFee.operator_id == operator_id)
    if asset_id:
        stmt = stmt.where(OperationFee.asset_id == asset_id)
    rows = list(session.scalars(stmt.order_by(OperationFee.created_at, OperationFee.id)))
    current: dict[tuple[str, str, str], tuple[FeeVersion, OperationFee]] = {}
    for n, row in enumerate(rows):
        version = FeeVersion(row.effective_from, n, row.asset_id, row.unit, row.amount_fen)
        key = (row.operator_id, row.asset_id, row.unit)
        best = current.get(key)
        if row.effective_from <= day and (
            best is None
            or (version.effective_from, version.seq) > (best[0].effective_from, best[0].seq)
        ):
            current[key] = (version, row)
    in_force_ids = {row.id for _, row in current.values()}
    caps = caps_in_force(session, day)
    out = []
    for row in rows if history else [r for _, r in current.values()]:
        covering = _agreement_covering(session, row.operator_id, row.asset_id, day)
        cap = caps.get(row.unit)
        out.append(
            FeeRow(
                fee=row,
                in_force=row.id in in_force_ids,
                cap_fen=cap.amount_fen if cap else None,
                agreement_id=covering.id if covering else None,
                agreement_number=covering.number if covering else None,
            )
        )
    out.sort(
        key=lambda f: (f.fee.operator_name, f.fee.asset_name, f.fee.unit, f.fee.effective_from)
    )
    return out


@dataclass(frozen=True)
class CatalogueEntry:
    """A data set operated under an agreement in effect (published: who operates what, for
    which purposes, until when) — what a user needs to ask for a use."""

    agreement_id: str
    agreement_number: str
    body_name: str
    operator_id: str
    operator_name: str
    asset_id: str
    asset_name: str
    purposes: tuple[str, ...]
    regions: tuple[str, ...] | None
    term_end: date


def catalogue(
    session: Session, principal: Principal, *, today: date | None = None
) -> list[CatalogueEntry]:
    """Every data set under an agreement in effect today: public, like the fees."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    on = _on(today)
    rows = session.execute(
        select(OperationAgreement, OperationAgreementAsset)
        .join(
            OperationAgreementAsset,
            OperationAgreementAsset.agreement_id == OperationAgreement.id,
        )
        .where(
            OperationAgreement.state == AgreementState.ACTIVE.value,
            OperationAgreement.term_start <= on,
            OperationAgreement.term_end >= on,
        )
        .order_by(OperationAgreement.operator_name, OperationAgreementAsset.asset_name)
    )
    out = []
    for agreement, asset in rows:
        regions = agreement.scope.get("regions")
        out.append(
            CatalogueEntry(
                agreement_id=agreement.id,
                agreement_number=agreement.number,
                body_name=agreement.body_name,
                operator_id=agreement.operator_id,
                operator_name=agreement.operator_name,
                asset_id=asset.asset_id,
                asset_name=asset.asset_name,
                purposes=tuple(agreement.scope.get("purposes") or ()),
                regions=tuple(regions) if regions is not None else None,
                term_end=agreement.term_end,
            )
        )
    return out


# --------------------------------------------------------------------------------------- uses


@dataclass(frozen=True)
class UseDraft:
    """A use asked or granted under an agreement. ``grantee_id`` is the user's party (for a
    request: the requester's own); ``unit``/``quantity`` what a paid use buys;
    ``unit_fee_fen`` the fee per unit if the caller states one (checked against the published
    fee and the cap); ``channels`` the delivery channels (default: the fee unit's, or the
    agreement's for a free use). The use's ODRL policy is written from these (OPS-USE-POLICY):
    no caller supplies one."""

    agreement_id: str
    asset_id: str
    use_class: str
    purpose: str
    term_start: date
    term_end: date
    grantee_id: str | None = None
    regions: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    unit: str | None = None
    quantity: int = 1
    unit_fee_fen: object = None
    purpose_note: str = ""


def _terms(session: Session, agreement: OperationAgreement) -> AgreementTerms:
    scope = agreement.scope
    regions = scope.get("regions")
    purposes = scope.get("purposes")
    return AgreementTerms(
        id=agreement.id,
        number=agreement.number,
        state=agreement.state,
        body_id=agreement.body_id,
        operator_id=agreement.operator_id,
        term_start=agreement.term_start,
        term_end=agreement.term_end,
        asset_ids=frozenset(a.asset_id for a in _asset_ids(session, agreement.id)),
        purposes=frozenset(purposes) if purposes is not None else None,
        regions=frozenset(regions) if regions is not None else None,
        channels=frozenset(agreement.channels),
    )


def _priced(
    session: Session,
    agreement: OperationAgreement,
    draft: UseDraft,
    on: date,
    rules: OperationRules,
) -> tuple[UsePrice, dict[str, Any]]:
    """The use checked and priced by the rules, and the policy it is granted under — written
    from the use, never taken from the caller (OPS-USE-POLICY): the declared purpose only, the
    channels the fee unit allows, the regions, until the use's term ends, as many uses as were
    bought (counted units); download, onward transfer and re-identification prohibited. No fee
    or payment duty is written into it: the fee is the operator's, recorded with the use."""
    terms = _terms(session, agreement)
    name = next(
        (a.asset_name for a in _asset_ids(session, agreement.id) if a.asset_id == draft.asset_id),
        draft.asset_id,
    )
    price = check_use(
        UseFacts(
            agreement=terms,
            asset_id=draft.asset_id,
            asset_name=name,
            use_class=draft.use_class,
            purpose=draft.purpose,
            term_start=draft.term_start,
            term_end=draft.term_end,
            today=on,
            channels=frozenset(draft.channels) if draft.channels else None,
            regions=frozenset(draft.regions) if draft.regions is not None else None,
            unit=draft.unit,
            quantity=draft.quantity,
            stated_unit_fee=draft.unit_fee_fen,
            fees=_versions_of_fees(session, agreement.operator_id),
            caps=_versions_of_caps(session),
        ),
        rules,
    )
    document = agreement_policy(
        f"{POLICY_BASE}{agreement.id}/use/{new_id()}",
        purposes=[draft.purpose],
        channels=price.channels,
        regions=price.regions,
        term_end=draft.term_end,
        max_uses=price.max_uses,
        onward_transfer=False,
    )
    return price, document


def _use_row(
    agreement: OperationAgreement,
    draft: UseDraft,
    price: UsePrice,
    grant: Any,
    grantee_name: str,
    asset_name: str,
    principal: Principal,
    *,
    outcome: str,
    decided_on: date | None,
) -> OperationUse:
    return OperationUse(
        id=new_id(),
        grant_id=grant.id,
        grant_number=grant.number,
        agreement_id=agreement.id,
        operator_id=agreement.operator_id,
        body_id=agreement.body_id,
        grantee_id=grant.grantee_id,
        grantee_name=grantee_name,
        asset_id=draft.asset_id,
        asset_name=asset_name,
        use_class=price.use_class,
        purpose=draft.purpose,
        regions=sorted(price.regions) if price.regions is not None else None,
        channels=sorted(price.channels),
        unit=price.unit,
        quantity=price.quantity,
        unit_fee_fen=price.unit_fee_fen,
        fee_fen=price.fee_fen,
        cap_fen=price.cap_fen,
        term_start=draft.term_start,
        term_end=draft.term_end,
        purpose_note=draft.purpose_note.strip(),
        outcome=outcome,
        reason="",
        rules=list(price.rules),
        requested_by=principal.user_id or None,
        decided_by=principal.user_id if decided_on else None,
        decided_on=decided_on,
    )


def _grant_draft(
    draft: UseDraft, grantee_id: str, price: UsePrice, document: Mapping[str, Any]
) -> GrantDraft:
    return GrantDraft(
        asset_id=draft.asset_id,
        grantee_id=grantee_id,
        policy=document,
        term_start=draft.term_start,
        term_end=draft.term_end,
        purpose_note=draft.purpose_note.strip(),
        use_class=price.use_class,
        fee_fen=price.fee_fen,
    )


def make_use(
    session: Session,
    principal: Principal,
    draft: UseDraft,
    *,
    issuer: registry.Issuer,
    today: date | None = None,
) -> tuple[OperationUse, Any]:
    """A use under an agreement: the operator grants it at once (``offer_grant``: approved, the
    licence filed) to ``draft.grantee_id``; anyone else asks for it for its own party
    (``request_grant``: the operator decides). Classed and priced first; returns the use and
    the grant it became."""
    rules = _rules()
    on = _on(today)
    if not draft.agreement_id or not draft.asset_id:
        raise InvalidInput(MSG_AGREEMENT_USE, field="agreement_id")
    agreement = session.get(OperationAgreement, draft.agreement_id)
    if agreement is None or not (_visible(principal, agreement) or _published(agreement, on)):
        # A user asks under an agreement of the published catalogue; any other agreement is
        # not named to it, nor its state (L1).
        raise NotFound(MSG_NO_AGREEMENT)
    offering = principal.party_id == agreement.operator_id
    if offering:
        _require(principal, P.POLICY_OPERATION_OPERATE)
        grantee_id = draft.grantee_id or ""
    else:
        _require(principal, P.POLICY_GRANT_REQUEST)
        grantee_id = principal.party_id
    price, document = _priced(session, agreement, draft, on, rules)
    mandate = mandate_of(agreement, session, agent_id=agreement.operator_id)
    grant_draft = _grant_draft(draft, grantee_id, price, document)
    if offering:
        grant = offer_grant(
            session, principal, grant_draft, mandate=mandate, issuer=issuer, today=on
        )
    else:
        grant = request_grant(session, principal, grant_draft, mandate=mandate, today=on)
    names = identity.counterparty_names(session, principal, [grantee_id])
    asset_name = next(
        (a.asset_name for a in _asset_ids(session, agreement.id) if a.asset_id == draft.asset_id),
        draft.asset_id,
    )
    row = _use_row(
        agreement,
        draft,
        price,
        grant,
        names.get(grantee_id, grantee_id[:8]),
        asset_name,
        principal,
        outcome="approved" if offering else "requested",
        decided_on=on if offering else None,
    )
    session.add(row)
    session.flush()
    fee = f"{yuan_text(price.fee_fen)} yuan" if price.paid else "free"
    _audit(
        session,
        principal,
        "policy:operation:use-offer" if offering else "policy:operation:use-request",
        "policy_operation_use",
        row.id,
        f"Use {grant.number} of {asset_name} under agreement {agreement.number}: "
        f"{price.use_class}, {fee}",
        (agreement.operator_id, agreement.body_id, grantee_id),
        price.rules,
    )
    return row, grant


# How a request can end before the operator decides it: its grant withdrawn by the user, revoked
# (the agreement terminated, a regulator), expired (the agreement or the term ended), refused.
USE_ENDINGS: Final = frozenset(
    {GrantState.WITHDRAWN, GrantState.REVOKED, GrantState.EXPIRED, GrantState.REFUSED}
)
OUTCOME_NAMES: Final[Mapping[str, Mapping[str, str]]] = {
    "requested": {"zh": "待运营机构决定", "en": "awaiting the operator's decision"},
    "approved": {"zh": "已批准", "en": "approved"},
    "refused": {"zh": "未获批准", "en": "refused"},
    "withdrawn": {"zh": "已由用户撤回", "en": "withdrawn by the user"},
    "revoked": {"zh": "已撤销", "en": "revoked"},
    "expired": {"zh": "已终止", "en": "ended"},
}


def use_outcome(use: OperationUse, grant_state: str | None) -> str:
    """The use's outcome as its parties read it: the operator's decision (requested, approved,
    refused) — or, for a request whose grant ended before the operator decided it, how it
    ended (withdrawn, revoked, expired, refused), whether or not that is recorded yet."""
    if use.outcome == "requested" and grant_state in USE_ENDINGS:
        return str(grant_state)
    return use.outcome


def outcome_named(outcome: str) -> Named:
    return Named(outcome, OUTCOME_NAMES.get(outcome))


def _settle_requests(session: Session, agreement_ids: Iterable[str]) -> int:
    """Record how the requests under the agreements ended when their grants ended before the
    operator decided them (the user withdrew, the agreement was terminated or expired, a
    regulator revoked): the number of uses recorded."""
    changed = 0
    for agreement_id in sorted(set(agreement_ids)):
        states = grant_states(session, [agreement_id])
        rows = session.scalars(
            select(OperationUse)
            .where(OperationUse.agreement_id == agreement_id, OperationUse.outcome == "requested")
            .order_by(OperationUse.id)
            .with_for_update()
        )
        for row in rows:
            outcome = use_outcome(row, states.get(row.grant_id))
            if outcome != row.outcome:
                row.outcome = outcome
                changed += 1
    if changed:
        session.flush()
    return changed


def _visible_use(principal: Principal, use: OperationUse) -> bool:
    if principal.party_id in (use.operator_id, use.body_id, use.grantee_id):
        return principal.can(P.POLICY_OPERATION_READ) or _supervisor(principal)
    return _supervisor(principal)


def get_use(session: Session, principal: Principal, use_id: str) -> OperationUse:
    """A use its operator, body or user (or a supervisor) may see; others: not found."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    row = session.get(OperationUse, use_id)
    if row is None or not _visible_use(principal, row):
        raise NotFound(MSG_NO_USE)
    return row


def decide_use(
    session: Session,
    principal: Principal,
    use_id: str,
    *,
    approve: bool,
    reason: str = "",
    issuer: registry.Issuer,
    today: date | None = None,
) -> tuple[OperationUse, Any]:
    """The operator approves a requested use (checked again on the day: the agreement still in
    effect, the fee still the published one under the cap) or refuses it with a reason."""
    _require(principal, P.POLICY_OPERATION_OPERATE)
    rules = _rules()
    on = _on(today)
    row = session.execute(
        select(OperationUse)
        .where(OperationUse.id == use_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None or not _visible_use(principal, row):
        raise NotFound(MSG_NO_USE)
    agreement = session.get(OperationAgreement, row.agreement_id)
    assert agreement is not None
    if principal.party_id != agreement.operator_id:
        raise Forbidden(MSG_NOT_OPERATOR_OF, number=agreement.number)
    # A request the user withdrew (or that was revoked or ended) before the operator decided
    # has nothing left to decide: it reads as such (use_outcome), and is recorded so below.
    outcome = use_outcome(row, grant_states(session, [row.agreement_id]).get(row.grant_id))
    if outcome != "requested":
        raise Conflict(MSG_NOT_DECIDABLE, number=row.grant_number, outcome=outcome_named(outcome))
    mandate = mandate_of(agreement, session, agent_id=agreement.operator_id)
    if approve:
        draft = UseDraft(
            agreement_id=row.agreement_id,
            asset_id=row.asset_id,
            use_class=row.use_class,
            purpose=row.purpose,
            term_start=row.term_start,
            term_end=row.term_end,
            grantee_id=row.grantee_id,
            regions=tuple(row.regions) if row.regions is not None else None,
            channels=tuple(row.channels) if row.channels else None,
            unit=row.unit,
            quantity=row.quantity,
            unit_fee_fen=row.unit_fee_fen if row.unit is not None else None,
        )
        price, _ = _priced(session, agreement, draft, on, rules)
        grant = decide_grant(
            session,
            principal,
            row.grant_id,
            approve=True,
            reason=reason,
            mandate=mandate,
            issuer=issuer,
            today=on,
        )
        row.outcome = "approved"
        row.rules = list(price.rules)
    else:
        if not reason.strip():
            raise InvalidInput(MSG_REASON, field="reason")
        grant = decide_grant(
            session,
            principal,
            row.grant_id,
            approve=False,
            reason=reason.strip(),
            mandate=mandate,
            issuer=issuer,
            today=on,
        )
        row.outcome = "refused"
    row.reason = reason.strip()
    row.decided_by = principal.user_id or None
    row.decided_on = on
    session.flush()
    _audit(
        session,
        principal,
        "policy:operation:use-decide",
        "policy_operation_use",
        row.id,
        f"Use {row.grant_number} {row.outcome}" + (f": {row.reason}" if row.reason else ""),
        (row.operator_id, row.body_id, row.grantee_id),
        row.rules,
    )
    return row, grant


def list_uses(
    session: Session,
    principal: Principal,
    *,
    agreement_id: str | None = None,
    operator_id: str | None = None,
    outcome: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[OperationUse], int]:
    """The uses the principal's party operates, authorised, or made (every one for a
    supervisor), newest first."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    stmt = select(OperationUse)
    if not _supervisor(principal):
        party = principal.party_id
        stmt = stmt.where(
            (OperationUse.operator_id == party)
            | (OperationUse.body_id == party)
            | (OperationUse.grantee_id == party)
        )
    if agreement_id:
        stmt = stmt.where(OperationUse.agreement_id == agreement_id)
    if operator_id:
        stmt = stmt.where(OperationUse.operator_id == operator_id)
    if outcome:
        # As its parties read it (use_outcome): a request whose grant ended undecided is how
        # it ended, not "requested".
        ended = [s.value for s in USE_ENDINGS]
        requested = OperationUse.outcome == "requested"
        stmt = stmt.join(PolicyGrant, PolicyGrant.id == OperationUse.grant_id)
        if outcome == "requested":
            stmt = stmt.where(requested, PolicyGrant.state.notin_(ended))
        elif outcome in ended:
            stmt = stmt.where(
                (OperationUse.outcome == outcome) | (requested & (PolicyGrant.state == outcome))
            )
        else:
            stmt = stmt.where(OperationUse.outcome == outcome)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(OperationUse.created_at.desc(), OperationUse.id).limit(limit).offset(offset)
    )
    return list(rows), total


def grant_states(session: Session, agreement_ids: Iterable[str]) -> dict[str, str]:
    """The state of every grant made under the agreements, by grant id."""
    return {g.id: g.state for g in _grants_by_id(session, agreement_ids).values()}


def _grants_by_id(session: Session, agreement_ids: Iterable[str]) -> dict[str, PolicyGrant]:
    out: dict[str, PolicyGrant] = {}
    for agreement_id in sorted(set(agreement_ids)):
        for grant in grants_under(session, Regime.OPERATION, agreement_id):
            out[grant.id] = grant
    return out


# -------------------------------------------------------------------------------------- costs


def _filed(session: Session, operator_id: str, year: int) -> OperationReport | None:
    return session.scalar(
        select(OperationReport).where(
            OperationReport.operator_id == operator_id, OperationReport.year == year
        )
    )


def _last_filed(
    session: Session, operator_id: str, before: int | None = None
) -> OperationReport | None:
    """The operator's latest filed report (before ``before``, if given)."""
    stmt = select(OperationReport).where(OperationReport.operator_id == operator_id)
    if before is not None:
        stmt = stmt.where(OperationReport.year < before)
    return session.scalar(stmt.order_by(OperationReport.year.desc()).limit(1))


def record_cost(
    session: Session,
    principal: Principal,
    *,
    year: object,
    category: str,
    amount_fen: object,
    note: str = "",
) -> OperationCost:
    """The operator records a cost of a year (whole non-negative fen, a known category). Every
    year up to its latest filed report is closed: its figures are the filed ones."""
    _require(principal, P.POLICY_OPERATION_OPERATE)
    rules = _rules()
    checked_year, amount = check_cost(year, category, amount_fen, rules)
    closed = _last_filed(session, principal.party_id)
    if closed is not None and checked_year <= closed.year:
        raise OperationConflict(
            MSG_REPORT_FILED if checked_year == closed.year else MSG_YEAR_CLOSED,
            rule=rules.rule_id("annual_report"),
            field="year",
            year=checked_year,
            filed=closed.year,
        )
    row = OperationCost(
        id=new_id(),
        operator_id=principal.party_id,
        year=checked_year,
        category=category,
        amount_fen=amount,
        note=note.strip(),
        recorded_by=principal.user_id or None,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        principal,
        "policy:operation:cost",
        "policy_operation_cost",
        row.id,
        f"Cost {checked_year} {category}: {yuan_text(amount)} yuan",
        [principal.party_id],
        [rules.rule_id("allowed_revenue"), rules.rule_id("money")],
    )
    return row


def _bodies_of(session: Session, operator_id: str) -> set[str]:
    """The implementing bodies that signed an agreement with the operator."""
    return set(
        session.scalars(
            select(OperationAgreement.body_id).where(OperationAgreement.operator_id == operator_id)
        )
    )


def list_costs(
    session: Session,
    principal: Principal,
    *,
    operator_id: str | None = None,
    year: int | None = None,
) -> list[OperationCost]:
    """An operator's costs (its own; any operator's for a supervisor), by year and category."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    operator_id = operator_id or principal.party_id
    if operator_id != principal.party_id and not _supervisor(principal):
        raise NotFound(MSG_NO_OPERATOR)
    stmt = select(OperationCost).where(OperationCost.operator_id == operator_id)
    if year is not None:
        stmt = stmt.where(OperationCost.year == check_year(year))
    return list(
        session.scalars(
            stmt.order_by(OperationCost.year, OperationCost.category, OperationCost.created_at)
        )
    )


# ------------------------------------------------------------------------------------ reports


def _counts_as_income(grant: PolicyGrant | None) -> bool:
    """Whether a paid use's fee counts as income: from the operator's approval on, unless its
    grant ended without ever taking effect — refused by the registry, or revoked or ended
    before its licence was registered (a grant that took effect has its licence right)."""
    if grant is None:
        return False
    state = GrantState(grant.state)
    if state in (GrantState.APPROVED, GrantState.ACTIVE, GrantState.SUSPENDED):
        return True
    return state in (GrantState.REVOKED, GrantState.EXPIRED) and bool(grant.licence_right_id)


def _counted_uses(session: Session, operator_id: str) -> list[tuple[OperationUse, date]]:
    """The operator's uses that count (approved by it, their grant not ended without taking
    effect), each with the day the operator approved it."""
    uses = list(
        session.scalars(
            select(OperationUse)
            .where(OperationUse.operator_id == operator_id, OperationUse.outcome == "approved")
            .order_by(OperationUse.created_at, OperationUse.id)
        )
    )
    grants = _grants_by_id(session, {u.agreement_id for u in uses})
    return [
        (use, use.decided_on)
        for use in uses
        if use.decided_on is not None and _counts_as_income(grants.get(use.grant_id))
    ]


def _income_by_year(session: Session, operator_id: str) -> dict[int, int]:
    income: dict[int, int] = defaultdict(int)
    for use, day in _counted_uses(session, operator_id):
        income[day.year] += use.fee_fen
    return dict(income)


@dataclass(frozen=True)
class Chain:
    """An operator's revenue up to a year: the filed years as they were filed (frozen dicts),
    then the later years computed from the records; ``current`` is the year asked for."""

    filed: tuple[dict[str, Any], ...]
    computed: tuple[PeriodRevenue, ...]

    @property
    def current(self) -> PeriodRevenue:
        return self.computed[-1]

    def history(self) -> list[dict[str, Any]]:
        return [*self.filed, *(p.as_dict() for p in self.computed[:-1])]


def _periods(session: Session, operator_id: str, year: int) -> Chain:
    """The operator's revenue chain up to ``year`` (not filed itself): the years up to its
    latest filed report as filed, then each later year from the records, the first of them
    deducting the filed year's frozen excess (OPS-CARRY-OVER, OPS-ANNUAL-REPORT)."""
    last = _last_filed(session, operator_id, before=year)
    frozen: tuple[dict[str, Any], ...] = ()
    carry, after = 0, None
    if last is not None:
        content = last.content
        own = {k: v for k, v in content["revenue"].items() if k != "rate_set"}
        frozen = (*content.get("history", ()), own)
        carry, after = int(content["revenue"]["excess_fen"]), last.year
    costs: dict[int, int] = defaultdict(int)
    stmt = (
        select(OperationCost.year, func.sum(OperationCost.amount_fen))
        .where(OperationCost.operator_id == operator_id, OperationCost.year <= year)
        .group_by(OperationCost.year)
    )
    if after is not None:
        stmt = stmt.where(OperationCost.year > after)
    for y, amount in session.execute(stmt):
        costs[int(y)] = int(amount or 0)
    income = {
        y: fen
        for y, fen in _income_by_year(session, operator_id).items()
        if y <= year and (after is None or y > after)
    }
    years = {*costs, *income, year}
    rates = _versions_of_rates(session)
    inputs = []
    for y in sorted(years):
        rate = in_force(rates, date(y, 12, 31))
        inputs.append(
            PeriodInput(y, costs.get(y, 0), rate.rate_bp if rate else 0, income.get(y, 0))
        )
    start = after + 1 if after is not None else None
    return Chain(frozen, revenue_chain(inputs, carry_in=carry, start=start))


def _reads_in_full(principal: Principal, operator_id: str) -> bool:
    """The operator itself and the supervisors (the bureau, regulators) read its reports in
    full, drafts included; an implementing body reads the filed reports, its own part only."""
    return (
        principal.party_id == operator_id and principal.can(P.POLICY_OPERATION_READ)
    ) or _supervisor(principal)


def build_report(
    session: Session,
    principal: Principal,
    operator_id: str,
    year: object,
    *,
    today: date | None = None,
) -> dict[str, Any]:
    """The operator's annual report for ``year``, generated from the records — or, once filed,
    the report as filed (with the filing). JSON-ready; amounts in whole fen. The operator and
    the supervisors read all of it, drafts included; a body that signed with the operator
    reads the filed report only, and only its own agreements and their uses (``body_view``);
    anyone else: not found."""
    checked_year = check_year(year)
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    full = _reads_in_full(principal, operator_id)
    if not full and principal.party_id not in _bodies_of(session, operator_id):
        raise NotFound(MSG_NO_OPERATOR)
    filed = _filed(session, operator_id, checked_year)
    if filed is not None:
        found = {
            **filed.content,
            "filed": {
                "on": filed.filed_on.isoformat(),
                "by": filed.filed_by_name,
                "digest": filed.digest,
                "ledger_index": filed.ledger_index,
            },
        }
        return found if full else body_view(found, principal.party_id)
    if not full:
        raise NotFound(MSG_NOT_FILED, year=checked_year)
    operator = party_card(session, operator_id)
    if operator is None or operator.kind != OPERATOR_KIND:
        raise NotFound(MSG_NO_OPERATOR)
    return {**_generate(session, operator, checked_year, _on(today)), "filed": None}


def _by_class(uses: Sequence[OperationUse], rules: OperationRules) -> list[dict[str, Any]]:
    out = []
    for code, klass in rules.use_classes.items():
        mine = [u for u in uses if u.use_class == code]
        out.append(
            {
                "use_class": code,
                "paid": klass.paid,
                "count": len(mine),
                "grantees": len({u.grantee_id for u in mine}),
                "grantee_ids": sorted({u.grantee_id for u in mine}),
                "grantee_names": sorted({u.grantee_name for u in mine}),
                "income_fen": sum(u.fee_fen for u in mine),
            }
        )
    return out


def _generate(session: Session, operator: PartyCard, year: int, on: date) -> dict[str, Any]:
    rules = _rules()
    start, end = date(year, 1, 1), date(year, 12, 31)
    as_of = min(end, max(on, start))
    agreements = list(
        session.scalars(
            select(OperationAgreement)
            .where(
                OperationAgreement.operator_id == operator.id,
                OperationAgreement.term_start <= end,
                OperationAgreement.term_end >= start,
                OperationAgreement.signed_on <= end,
            )
            .order_by(OperationAgreement.signed_on, OperationAgreement.number)
        )
    )
    year_uses = [u for u, day in _counted_uses(session, operator.id) if day.year == year]
    costs = list(
        session.scalars(
            select(OperationCost).where(
                OperationCost.operator_id == operator.id, OperationCost.year == year
            )
        )
    )
    by_category: dict[str, int] = defaultdict(int)
    for cost in costs:
        by_category[cost.category] += cost.amount_fen
    chain = _periods(session, operator.id, year)
    current = chain.current
    rate = in_force(_versions_of_rates(session), end)
    caps = caps_in_force(session, as_of)
    fees = []
    for row in list_fees(session, _directory_reader(), operator_id=operator.id, on=as_of):
        cap = caps.get(row.fee.unit)
        fees.append(
            {
                "asset_id": row.fee.asset_id,
                "asset_name": row.fee.asset_name,
                "unit": row.fee.unit,
                "fee_fen": row.fee.amount_fen,
                "effective_from": row.fee.effective_from.isoformat(),
                "cap_fen": cap.amount_fen if cap else None,
                "within_cap": cap is not None and row.fee.amount_fen <= cap.amount_fen,
            }
        )
    cap_rows = session.scalars(
        select(OperationFeeCap).where(OperationFeeCap.effective_from <= as_of)
    )
    cap_docs = {(c.unit, c.effective_from): c.source_document for c in cap_rows}
    return {
        "format": REPORT_FORMAT,
        "scope": "operator",
        "operator": {"id": operator.id, "name": operator.name},
        "year": year,
        "generated_on": on.isoformat(),
        "as_of": as_of.isoformat(),
        "rules_version": rules.version,
        "agreements": [
            {
                "id": a.id,
                "number": a.number,
                "body_id": a.body_id,
                "body_name": a.body_name,
                "state": effective_state(a.state, a.term_end, as_of).value,
                "signed_on": a.signed_on.isoformat(),
                "term_start": a.term_start.isoformat(),
                "term_end": a.term_end.isoformat(),
                "procedure": a.procedure,
                "procedure_reference": a.procedure_reference,
                "data_sets": [
                    {"id": asset_id, "name": name}
                    for asset_id, name in agreement_assets(session, a.id)
                ],
                "uses": sum(1 for u in year_uses if u.agreement_id == a.id),
                "by_class": _by_class([u for u in year_uses if u.agreement_id == a.id], rules),
                "income_fen": sum(u.fee_fen for u in year_uses if u.agreement_id == a.id),
            }
            for a in agreements
        ],
        "uses": {
            "by_class": _by_class(year_uses, rules),
            "total": len(year_uses),
            "grantees": len({u.grantee_id for u in year_uses}),
        },
        "income_fen": current.income_fen,
        "costs": {
            "by_category": [
                {"category": code, "amount_fen": by_category.get(code, 0)}
                for code in rules.cost_categories
            ],
            "total_fen": current.cost_fen,
        },
        "revenue": {**current.as_dict(), "rate_set": rate is not None},
        "history": chain.history(),
        "fees": fees,
        "caps": [
            {
                "unit": unit,
                "amount_fen": cap.amount_fen,
                "effective_from": cap.effective_from.isoformat(),
                "source_document": cap_docs.get((unit, cap.effective_from), ""),
            }
            for unit, cap in caps.items()
        ],
        "treasury_fen": current.income_fen,
        "rules": [
            rules.rule_id(k)
            for k in ("annual_report", "allowed_revenue", "carry_over", "fee_cap", "treasury")
        ],
    }


def body_view(report: Mapping[str, Any], body_id: str) -> dict[str, Any]:
    """The part of a filed report an implementing body reads: its own agreements, their data
    sets and uses (by class, with their users), the paid-use income from them and the fees of
    its data sets — no other body's agreements, no other users, no costs, no revenue chain."""
    rules = _rules()
    own = [a for a in report.get("agreements", ()) if a.get("body_id") == body_id]
    classes: dict[str, dict[str, Any]] = {}
    for code, klass in rules.use_classes.items():
        mine = [c for a in own for c in a.get("by_class", ()) if c["use_class"] == code]
        ids = sorted({i for c in mine for i in c["grantee_ids"]})
        classes[code] = {
            "use_class": code,
            "paid": klass.paid,
            "count": sum(c["count"] for c in mine),
            "grantees": len(ids),
            "grantee_ids": ids,
            "grantee_names": sorted({n for c in mine for n in c["grantee_names"]}),
            "income_fen": sum(c["income_fen"] for c in mine),
        }
    asset_ids = {d["id"] for a in own for d in a.get("data_sets", ())}
    income = sum(int(a.get("income_fen", 0)) for a in own)
    return {
        "format": report["format"],
        "scope": "body",
        "body_id": body_id,
        "operator": report["operator"],
        "year": report["year"],
        "generated_on": report["generated_on"],
        "as_of": report["as_of"],
        "rules_version": report["rules_version"],
        "agreements": own,
        "uses": {
            "by_class": list(classes.values()),
            "total": sum(c["count"] for c in classes.values()),
            "grantees": len({i for c in classes.values() for i in c["grantee_ids"]}),
        },
        "income_fen": income,
        "treasury_fen": income,
        "fees": [f for f in report.get("fees", ()) if f["asset_id"] in asset_ids],
        "caps": report.get("caps", []),
        "rules": report.get("rules", []),
        "filed": report.get("filed"),
    }


def _directory_reader() -> Principal:
    """Reads the published fees for a report (they are public)."""
    return Principal(
        user_id="",
        username="operation",
        party_id="",
        party_kind="",
        roles=frozenset(),
        permissions=frozenset({P.POLICY_OPERATION_READ}),
        via="cli",
    )


def _unfiled_before(session: Session, operator_id: str, year: int) -> int | None:
    """The earliest year before ``year`` that needs a report — an agreement of the operator in
    force in it, or a cost recorded for it — and has none filed."""
    filed = set(
        session.scalars(
            select(OperationReport.year).where(OperationReport.operator_id == operator_id)
        )
    )
    needed: set[int] = set(
        session.scalars(
            select(OperationCost.year).where(
                OperationCost.operator_id == operator_id, OperationCost.year < year
            )
        )
    )
    for a in session.scalars(
        select(OperationAgreement).where(OperationAgreement.operator_id == operator_id)
    ):
        first = max(a.signed_on, a.term_start)
        ended = a.state in (AgreementState.TERMINATED.value, AgreementState.EXPIRED.value)
        last = min(a.term_end, a.state_since) if ended else a.term_end
        needed |= set(range(first.year, min(last.year, year - 1) + 1))
    missing = sorted(y for y in needed if y < year and y not in filed)
    return missing[0] if missing else None


def file_report(
    session: Session, principal: Principal, year: object, *, today: date | None = None
) -> OperationReport:
    """The operator files its annual report for a year that has ended, the years before it
    first (each carries its excess into the next): generated from the records, frozen with its
    digest, appended to the ledger; the bodies it operates for and the bureau are told. Filed
    once; the year and those before it are then closed."""
    _require(principal, P.POLICY_OPERATION_OPERATE)
    rules = _rules()
    on = _on(today)
    checked_year = check_year(year)
    if on <= date(checked_year, 12, 31):
        raise OperationConflict(
            MSG_YEAR_OPEN, rule=rules.rule_id("annual_report"), field="year", year=checked_year
        )
    found = _filed(session, principal.party_id, checked_year)
    if found is not None:
        raise Conflict(
            MSG_REPORT_TWICE, field="year", year=checked_year, on=found.filed_on.isoformat()
        )
    missing = _unfiled_before(session, principal.party_id, checked_year)
    if missing is not None:
        raise OperationConflict(
            MSG_FILE_IN_ORDER,
            rule=rules.rule_id("annual_report"),
            field="year",
            year=checked_year,
            missing=missing,
        )
    operator = party_card(session, principal.party_id)
    if operator is None or operator.kind != OPERATOR_KIND:
        raise NotFound(MSG_NO_OPERATOR)
    content = _generate(session, operator, checked_year, on)
    digest = hashlib.sha256(ledger.canonical_json(content)).hexdigest()
    row = OperationReport(
        id=new_id(),
        operator_id=operator.id,
        year=checked_year,
        content=content,
        digest=digest,
        filed_on=on,
        filed_by=principal.user_id or None,
        filed_by_name=principal.username,
    )
    session.add(row)
    session.flush()
    row.ledger_index = ledger.append_event(
        session,
        REPORT_EVENT,
        {
            "operator_id": operator.id,
            "year": checked_year,
            "digest": digest,
            "filed_on": on.isoformat(),
            "rules": [rules.rule_id("annual_report")],
        },
    )
    bodies = {a["body_id"] for a in content["agreements"]}
    _audit(
        session,
        principal,
        "policy:operation:report",
        "policy_operation_report",
        row.id,
        f"Annual report {checked_year} filed (sha256 {digest[:16]}…, ledger entry {row.ledger_index})",
        [operator.id, *bodies],
        [rules.rule_id("annual_report")],
    )
    inbox.notify(
        session,
        [*bodies, *_bureaus(session)],
        kind=KIND,
        message=MSG_REPORT_FILED_NOTE,
        params={"operator": operator.name, "year": str(checked_year)},
        link=f"/operation/reports/{operator.id}/{checked_year}",
    )
    return row


def list_reports(session: Session, principal: Principal) -> list[OperationReport]:
    """Filed reports the principal may read: its own, those of its operators, or every one."""
    _require(principal, P.POLICY_OPERATION_READ, P.POLICY_GRANT_READ_ALL)
    stmt = select(OperationReport)
    if not _supervisor(principal):
        operators_of_body = select(OperationAgreement.operator_id).where(
            OperationAgreement.body_id == principal.party_id
        )
        stmt = stmt.where(
            (OperationReport.operator_id == principal.party_id)
            | OperationReport.operator_id.in_(operators_of_body)
        )
    return list(
        session.scalars(stmt.order_by(OperationReport.year.desc(), OperationReport.filed_on.desc()))
    )


CSV_HEADER: Final = (
    "section / 部分",
    "item / 项目",
    "detail / 说明",
    "amount_fen / 金额（分）",
    "amount_yuan / 金额（元）",
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_AMOUNT: Final = re.compile(r"-?[0-9][0-9,]*(\.[0-9]+)?")


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet reads as text, never as a formula: text that starts with = + -
    @, a tab or a carriage return (an agreement number, a name typed by a party) is prefixed
    with ' — a plain amount such as -1,000.00 is left as it is."""
    if (
        isinstance(value, str)
        and value.startswith(_FORMULA_START)
        and not _PLAIN_AMOUNT.fullmatch(value)
    ):
        return "'" + value
    return value


def report_csv(report: Mapping[str, Any]) -> str:
    """The report as CSV rows (bilingual header): one row per figure, amounts in fen and yuan.
    A body's part of a report (``body_view``) has no costs and no revenue chain."""
    rules = _rules()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")

    def row(*cells: object) -> None:
        writer.writerow([csv_cell(c) for c in cells])

    def money(section: str, item: str, detail: str, fen: int | None) -> None:
        row(
            section,
            item,
            detail,
            "" if fen is None else fen,
            "" if fen is None else yuan_text(fen),
        )

    row(*CSV_HEADER)
    operator = report["operator"]
    row("report", "operator", operator["name"], "", "")
    row("report", "year", report["year"], "", "")
    row("report", "generated_on", report["generated_on"], "", "")
    filed = report.get("filed")
    row("report", "filed", filed["on"] if filed else "not filed", "", "")
    if report.get("scope") == "body":
        row("report", "scope", "the implementing body's own agreements", "", "")
    for a in report["agreements"]:
        names = "; ".join(d["name"] for d in a["data_sets"])
        row(
            "agreement",
            a["number"],
            f"{a['body_name']} | {a['state']} | {a['term_start']}–{a['term_end']} | {names}",
            "",
            "",
        )
    for c in report["uses"]["by_class"]:
        label = (
            rules.use_classes[c["use_class"]].names["zh"]
            if c["use_class"] in rules.use_classes
            else c["use_class"]
        )
        money(
            "uses",
            c["use_class"],
            f"{label}: {c['count']} uses, {c['grantees']} grantees",
            c["income_fen"],
        )
    money("revenue", "income", "paid-use income", report["income_fen"])
    if "costs" in report:
        for c in report["costs"]["by_category"]:
            money(
                "costs",
                c["category"],
                rules.cost_categories.get(c["category"], {}).get("zh", ""),
                c["amount_fen"],
            )
    if "revenue" in report:
        r = report["revenue"]
        money("revenue", "cost", "", r["cost_fen"])
        money("revenue", "profit", f"rate {r['rate_bp']} bp", r["profit_fen"])
        money("revenue", "allowed", "cost + profit", r["allowed_fen"])
        money("revenue", "deduction", "excess carried in", r["deduction_fen"])
        money("revenue", "net_allowed", "allowed − deduction", r["net_allowed_fen"])
        money("revenue", "excess", "carried into the next period", r["excess_fen"])
    for f in report["fees"]:
        cap = "" if f["cap_fen"] is None else yuan_text(f["cap_fen"])
        money(
            "fees",
            f"{f['asset_name']} / {f['unit']}",
            f"cap {cap}; within cap: {f['within_cap']}",
            f["fee_fen"],
        )
    money("treasury", "non-tax revenue", "paid-use income to the treasury", report["treasury_fen"])
    return out.getvalue()
