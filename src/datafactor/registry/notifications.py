"""What the registry tells parties, through the platform inbox, and in which words.

A rights change (``RightsChange``) names the parties to notify; ``rights_changed`` stores one
message for each right of theirs the change touched — the right acted on, or a right suspended by
the cascade, naming the right that caused it — and, for a party named without a right of its own
among the changes (the holder of a licence carried by a transferred right), one about the right
acted on. An objection's decision tells the objector and the applicant. The daily sweep's expiry
reminders and overdue notices (``maintenance``) use the helpers here too, with a ``dedupe_key``
so each is sent once.

Messages are msgids with text parameters; codes travel as ``*_label`` parameters holding their
label's msgid (``RIGHT_KIND_LABELS``, ``RIGHT_STATUS_LABELS`` …), translated when read.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.orm import Session

from datafactor import inbox
from datafactor.errors import N_
from datafactor.registry.domain import (
    RIGHT_KIND_LABELS,
    RIGHT_STATUS_LABELS,
    STATE_LABELS,
    EventTag,
    Right,
    RightsChange,
    RightStatus,
)
from datafactor.registry.models import RegistryAsset

KIND_RIGHTS: Final = "registry.rights"
KIND_OBJECTION: Final = "registry.objection"
KIND_REMINDER: Final = "registry.expiry"
KIND_OVERDUE: Final = "registry.overdue"

EVENT_LABELS: Final[dict[str, str]] = {
    EventTag.RIGHT_GRANT: N_("Holding right registered"),
    EventTag.RIGHT_LICENSE: N_("Licence registered"),
    EventTag.RIGHT_DERIVE: N_("Product operation right registered"),
    EventTag.RIGHT_TRANSFER: N_("Right transferred"),
    EventTag.RIGHT_AMEND: N_("Right changed"),
    EventTag.RIGHT_PLEDGE: N_("Right pledged"),
    EventTag.RIGHT_RELEASE: N_("Pledge released"),
    EventTag.RIGHT_CANCEL: N_("Right deregistered"),
    EventTag.RIGHT_REVOKE: N_("Right revoked"),
    EventTag.RIGHT_SUSPEND: N_("Right suspended"),
    EventTag.RIGHT_REINSTATE: N_("Right reinstated"),
    EventTag.RIGHT_EXPIRE: N_("Term ended"),
}

MSG_RIGHT_CHANGED: Final = N_(
    "{event_label}: {kind_label} {right} on “{asset}” is now {status_label} (rule {rule})."
)
MSG_RIGHT_CASCADE: Final = N_(
    "{kind_label} {right} on “{asset}” is suspended because right {cause}, on which its title "
    "rests, is now {cause_status_label} (rule {rule}). It comes back if that right is "
    "reinstated; a deregistration or revocation is final."
)
MSG_OBJECTION_UPHELD: Final = N_(
    "The objection to registration application {application} (“{asset}”) was upheld and the "
    "application refused. Reason: {reason}"
)
MSG_OBJECTION_DISMISSED: Final = N_(
    "The objection to registration application {application} (“{asset}”) was dismissed. "
    "Reason: {reason}"
)
MSG_CERTIFICATE_EXPIRING: Final = N_(
    "Certificate {number} for “{asset}” is valid until {until}: apply for renewal before then "
    "if the right is to stay registered (rule {rule})."
)
MSG_RIGHT_EXPIRING: Final = N_(
    "{kind_label} {right} on “{asset}” ends on {until}: apply for renewal before then if it is "
    "to continue (rule {rule})."
)
MSG_OVERDUE: Final = N_(
    "Registration application {application} (“{asset}”) is overdue in “{state_label}”: it was "
    "due on {due}. Please act on it."
)


def _asset_name(session: Session, asset_id: str) -> str:
    asset = session.get(RegistryAsset, asset_id)
    return asset.name if asset is not None else asset_id


def _concerns(right: Right, party_id: str) -> bool:
    return right.holder_id == party_id or (
        right.pledge is not None and right.pledge.pledgee_id == party_id
    )


def _right_params(session: Session, right: Right, rule: str) -> dict[str, str]:
    return {
        "right": right.id,
        "kind_label": RIGHT_KIND_LABELS.get(right.kind, right.kind.value),
        "asset": _asset_name(session, right.asset_id),
        "status_label": RIGHT_STATUS_LABELS.get(right.status, right.status.value),
        "rule": rule,
    }


def rights_changed(session: Session, change: RightsChange) -> None:
    """Tell ``change.notify`` what happened to their rights (see the module docstring)."""
    if not change.notify:
        return
    subject = change.right
    touched = (*change.created, *change.updated)
    event_label = EVENT_LABELS.get(change.event, change.event.value)
    for party_id in sorted(change.notify):
        mine = [r for r in touched if _concerns(r, party_id)] or [subject]
        for right in mine:
            params = _right_params(session, right, change.rule)
            cascaded = (
                right.id != subject.id
                and right.status is RightStatus.SUSPENDED
                and right.suspended_by not in (None, right.id)
            )
            if cascaded:
                params["cause"] = subject.id
                params["cause_status_label"] = RIGHT_STATUS_LABELS.get(
                    subject.status, subject.status.value
                )
                message = MSG_RIGHT_CASCADE
            else:
                params["event_label"] = event_label
                message = MSG_RIGHT_CHANGED
            inbox.notify(session, [party_id], kind=KIND_RIGHTS, message=message, params=params)


def objection_decided(
    session: Session,
    party_ids: frozenset[str] | set[str],
    *,
    application_id: str,
    asset_id: str,
    upheld: bool,
    reason: str,
) -> None:
    """Tell the objector and the applicant how the registrar decided an objection."""
    inbox.notify(
        session,
        party_ids,
        kind=KIND_OBJECTION,
        message=MSG_OBJECTION_UPHELD if upheld else MSG_OBJECTION_DISMISSED,
        params={
            "application": application_id,
            "asset": _asset_name(session, asset_id),
            "reason": reason,
        },
    )


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)
