"""Public data authorised operation (公共数据授权运营): implementing bodies authorise operators by
agreement after a recorded selection; the big-data bureau caps the service fees and sets the
reasonable-profit rate; operators publish fees, grant uses (public governance and welfare free,
industry and sector development paid at the published fee under the cap), record costs and file
their annual report, in which income above the allowed revenue is carried into the next period's
deduction. Raw public data never leaves the domain: API and sandbox only. See
``docs/public-data-operation.md``.

Other domains (the demo loader) use the surface below: the use cases and their drafts, the
rules and the refusals. The tables and the entry points are operation's own.
"""

from datafactor import audit as _audit
from datafactor.policy.operation.domain import (
    AgreementState,
    OperationConflict,
    OperationError,
    OperationForbidden,
    OperationInvalid,
    OperationRules,
    Selection,
    load_operation_rules,
    revenue_chain,
)
from datafactor.policy.operation.services import EVENT_LABELS as _EVENT_LABELS
from datafactor.policy.operation.services import (
    AgreementDraft,
    UseDraft,
    build_report,
    catalogue,
    change_agreement,
    decide_use,
    file_report,
    get_agreement,
    list_agreements,
    list_caps,
    list_costs,
    list_fees,
    list_rates,
    list_uses,
    make_use,
    publish_fee,
    record_cost,
    report_csv,
    set_cap,
    set_profit_rate,
    sign_agreement,
    sweep,
)

_audit.register_action_labels(dict(_EVENT_LABELS))

__all__ = [
    "AgreementDraft",
    "AgreementState",
    "OperationConflict",
    "OperationError",
    "OperationForbidden",
    "OperationInvalid",
    "OperationRules",
    "Selection",
    "UseDraft",
    "build_report",
    "catalogue",
    "change_agreement",
    "decide_use",
    "file_report",
    "get_agreement",
    "list_agreements",
    "list_caps",
    "list_costs",
    "list_fees",
    "list_rates",
    "list_uses",
    "load_operation_rules",
    "make_use",
    "publish_fee",
    "record_cost",
    "report_csv",
    "revenue_chain",
    "set_cap",
    "set_profit_rate",
    "sign_agreement",
    "sweep",
]
