"""Data trusts (数据信托): deeds, beneficiaries, the trustee's grants and trust income.

A settlor puts registered data it holds in trust with a trustee for beneficiaries, under a deed
that states the purpose, scope, term and revenue split; the trustee grants uses of the data
under the deed (through the grants core) and records the trust's income, which is split at once
into the trustee's fee and the beneficiaries' amounts (paid by settlement later). This surface
is what other domains may use; see docs/trusts.md.
"""

from datafactor import audit as _audit
from datafactor.policy.trusts.domain import AUDIT_LABELS as _AUDIT_LABELS
from datafactor.policy.trusts.domain import (
    DeedState,
    IncomeSource,
    LineRole,
    PayStatus,
    Share,
    load_trust_rules,
    split_income,
)
from datafactor.policy.trusts.services import (
    DeedDraft,
    DeedQuery,
    IncomeDraft,
    accept_deed,
    amend_deed,
    decide_use,
    deed_grants,
    draft_deed,
    get_deed,
    grant_use,
    list_deeds,
    list_distributions,
    list_income,
    mandate_of,
    my_benefits,
    pay_income,
    record_income,
    record_misuse,
    request_use,
    sign_deed,
    sweep,
    terminate_deed,
)

_audit.register_action_labels(_AUDIT_LABELS)

__all__ = [
    "DeedDraft",
    "DeedQuery",
    "DeedState",
    "IncomeDraft",
    "IncomeSource",
    "LineRole",
    "PayStatus",
    "Share",
    "accept_deed",
    "amend_deed",
    "decide_use",
    "deed_grants",
    "draft_deed",
    "get_deed",
    "grant_use",
    "list_deeds",
    "list_distributions",
    "list_income",
    "load_trust_rules",
    "mandate_of",
    "my_benefits",
    "pay_income",
    "record_income",
    "record_misuse",
    "request_use",
    "sign_deed",
    "split_income",
    "sweep",
    "terminate_deed",
]
