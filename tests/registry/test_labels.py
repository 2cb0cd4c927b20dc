"""What a person reads: the registry's labels are its own (not another domain's "Cancelled"),
and a refusal never shows a raw code such as ``withdrawn`` or ``transfer`` — in the web layer's
rendering of a ``DomainError`` and in a stored formal-review reason alike. No database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest

from datafactor import context
from datafactor.discovery.workflow import STATUS_LABELS as SCAN_STATUS_LABELS
from datafactor.identity.domain import STATUS_LABELS as PARTY_STATUS_LABELS
from datafactor.registry import (
    CERTIFICATE_STATUS_LABELS,
    CODED_PARAMS,
    RIGHT_STATUS_LABELS,
    Action,
    ActorRole,
    CertificateStatus,
    DataClass,
    RegistrationType,
    RightStatus,
    TransitionNotAllowed,
    advance,
    render_message,
    submit,
)
from datafactor.web.problems import domain_error_text

MONDAY = date(2026, 3, 2)


@contextmanager
def locale(name: str) -> Iterator[None]:
    token = context.locale.set(name)
    try:
        yield
    finally:
        context.locale.reset(token)


def test_the_registry_has_its_own_cancelled_and_suspended() -> None:
    # A deregistered right (已注销) is not a cancelled scan (已取消); a right in suspension
    # (已中止) is not a suspended party (已暂停): each needs its own msgid.
    others = set(SCAN_STATUS_LABELS.values()) | set(PARTY_STATUS_LABELS.values())
    for labels in (RIGHT_STATUS_LABELS, CERTIFICATE_STATUS_LABELS):
        assert labels[RightStatus.CANCELLED] not in others
        assert labels[RightStatus.SUSPENDED] not in others
    assert CERTIFICATE_STATUS_LABELS[CertificateStatus.CANCELLED] == "Deregistered"


def test_every_code_has_a_label() -> None:
    from datafactor.registry import (
        Origin,
        RegistrationState,
        RightKind,
        Track,
    )

    enums = {
        "type": RegistrationType,
        "action": Action,
        "state": RegistrationState,
        "role": ActorRole,
        "status": RightStatus,
        "kind": RightKind,
        "origin": Origin,
        "track": Track,
    }
    for key, enum in enums.items():
        assert set(CODED_PARAMS[key]) >= {e.value for e in enum}, key


def withdrawn() -> TransitionNotAllowed:
    step = submit(
        "A1",
        RegistrationType.TRANSFER,
        applicant_id="p",
        asset_id="a",
        data_class=DataClass.ENTERPRISE,
        on=MONDAY,
    )
    app = advance(step.application, Action.WITHDRAW, ActorRole.APPLICANT, on=MONDAY).application
    with pytest.raises(TransitionNotAllowed) as refused:
        advance(app, Action.ACCEPT, ActorRole.REGISTRAR, on=MONDAY)
    return refused.value


def test_a_refusal_shows_labels_in_the_readers_language() -> None:
    error = withdrawn()
    assert error.params["state"] == "withdrawn"  # the code stays what the API sends
    with locale("en"):
        assert "already Withdrawn" in domain_error_text(error)
    with locale("zh_CN"):
        text = domain_error_text(error)
    assert "已撤回" in text and "withdrawn" not in text


def test_a_stored_reason_renders_its_codes_as_labels() -> None:
    from datafactor.registry.rights import MSG_ENDED

    revoked = {"right": "R1", "status": "revoked", "rule": "REG-CASCADE"}
    cancelled = {**revoked, "status": "cancelled"}
    assert "(status: Deregistered)" in render_message(MSG_ENDED, cancelled, "en")
    chinese = render_message(MSG_ENDED, revoked, "zh_CN")
    assert "已撤销" in chinese and "revoked" not in chinese
