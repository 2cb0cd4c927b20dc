"""The registry's vocabulary: the enumerations every other registry module speaks, with labels.

Kinds of right and how a right came to be, the statuses a right passes through, registration
types, tracks and workflow states, the roles that act on an application, the classes of data and
of asset, and the status a certificate shows on the public verification page. Values are stable
strings (they are stored and appear in the ledger); labels are English gettext msgids (``N_``)
that the catalogues translate, with the Chinese term of the trade in a comment beside each value.
Pure Python: no web, no ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

from datafactor.errors import N_


class RightKind(StrEnum):
    """The three separated data property rights (数据产权结构性分置)."""

    HOLDING = "holding"  # 数据资源持有权
    PROCESSING_USE = "processing_use"  # 数据加工使用权
    PRODUCT_OPERATION = "product_operation"  # 数据产品经营权


class Origin(StrEnum):
    """How a right came to be."""

    ORIGINAL = "original"  # 原始取得: a holding right registered by the party that holds the data
    LICENSED = "licensed"  # 许可取得: a processing-use right licensed by a holder
    TRANSFERRED = "transferred"  # 转让取得: the successor of a transferred right
    DERIVED = "derived"  # 派生取得: a product-operation right on a product built from held data


class RightStatus(StrEnum):
    """Where a right stands. ``active`` and ``pledged`` are in force; the rest are not."""

    ACTIVE = "active"  # 有效
    PLEDGED = "pledged"  # 已质押 (in force, but cannot be transferred, licensed or cancelled)
    SUSPENDED = "suspended"  # 已中止 (a right it derives from was cancelled, revoked or suspended)
    CANCELLED = "cancelled"  # 已注销 (given up by its holder)
    REVOKED = "revoked"  # 已撤销 (withdrawn by the registrar)
    TRANSFERRED = "transferred"  # 已转让 (ended by a transfer; its successor carries the title)
    EXPIRED = "expired"  # 已到期


LIVE_STATUSES: Final = frozenset({RightStatus.ACTIVE, RightStatus.PLEDGED})
# A right that has ended for good: nothing brings it back.
ENDED_STATUSES: Final = frozenset(
    {
        RightStatus.CANCELLED,
        RightStatus.REVOKED,
        RightStatus.TRANSFERRED,
        RightStatus.EXPIRED,
    }
)


class DataClass(StrEnum):
    """Whose data it is: the three classes of the national data framework (数据二十条)."""

    PUBLIC = "public"  # 公共数据
    ENTERPRISE = "enterprise"  # 企业数据
    PERSONAL = "personal"  # 个人数据


class AssetKind(StrEnum):
    """Registrable objects: data resources and the Guangxi trading rules' tradable objects."""

    RESOURCE = "resource"  # 数据资源
    PRODUCT = "product"  # 数据产品
    SERVICE = "service"  # 数据服务
    TOOL = "tool"  # 数据工具


# Objects a product-operation right is held on (桂政办发〔2024〕7号: products, services, tools).
TRADABLE_KINDS: Final = frozenset({AssetKind.PRODUCT, AssetKind.SERVICE, AssetKind.TOOL})


class RegistrationType(StrEnum):
    """Registration types (深发改规〔2023〕5号, plus renewal, revocation, correction, pledge)."""

    INITIAL = "initial"  # 首次登记
    LICENCE = "licence"  # 许可登记
    TRANSFER = "transfer"  # 转移登记
    CHANGE = "change"  # 变更登记
    CORRECTION = "correction"  # 更正登记
    RENEWAL = "renewal"  # 续展登记
    PLEDGE = "pledge"  # 质押登记
    PLEDGE_RELEASE = "pledge_release"  # 质押注销登记
    CANCELLATION = "cancellation"  # 注销登记
    REVOCATION = "revocation"  # 撤销登记
    OBJECTION = "objection"  # 异议登记


class Track(StrEnum):
    """Standard track, or the fast track (public data; non-public data under 承诺制)."""

    STANDARD = "standard"  # 普通程序
    FAST = "fast"  # 快速登记


class RegistrationState(StrEnum):
    """States of a registration application (see ``workflow.py`` for the transitions)."""

    SUBMITTED = "submitted"  # 已提交
    FORMAL_REVIEW = "formal_review"  # 形式审查
    SUBSTANTIVE_REVIEW = "substantive_review"  # 实质审查
    PUBLIC_NOTICE = "public_notice"  # 公示中
    OBJECTION = "objection"  # 异议处理中
    RETURNED = "returned"  # 已退回补正
    CERTIFIED = "certified"  # 已登记发证
    REFUSED = "refused"  # 不予登记
    WITHDRAWN = "withdrawn"  # 已撤回


FINAL_STATES: Final = frozenset(
    {RegistrationState.CERTIFIED, RegistrationState.REFUSED, RegistrationState.WITHDRAWN}
)


class ActorRole(StrEnum):
    """Who acts on an application. ``system`` is the platform's automatic checks."""

    APPLICANT = "applicant"  # 申请人
    REGISTRAR = "registrar"  # 登记审核员
    SYSTEM = "system"  # 系统自动
    OBJECTOR = "objector"  # 异议人 (any logged-in party other than the applicant)
    ADMINISTRATOR = "administrator"  # 管理员 (force-transitions, audited)


class Action(StrEnum):
    """What an actor does to an application: each is one row of ``workflow.TRANSITIONS``."""

    SUBMIT = "submit"  # 提交申请
    ACCEPT = "accept"  # 受理
    PASS_FORMAL = "pass_formal"  # 形式审查通过 → 实质审查
    FAST_TRACK_NOTICE = "fast_track_notice"  # 快速登记：形式审查通过 → 公示
    FAST_TRACK_REGISTER = "fast_track_register"  # 快速登记：形式审查通过 → 登记 (无公示的类型)
    RETURN_FORMAL = "return_formal"  # 形式审查退回补正
    REFUSE_FORMAL = "refuse_formal"  # 形式审查不予登记
    APPROVE_TO_NOTICE = "approve_to_notice"  # 实质审查通过 → 公示
    APPROVE = "approve"  # 实质审查通过 → 登记 (无公示的类型)
    RETURN = "return"  # 实质审查退回补正
    REFUSE = "refuse"  # 实质审查不予登记
    RESUBMIT = "resubmit"  # 补正后重新提交
    LODGE_OBJECTION = "lodge_objection"  # 提出异议
    DISMISS_OBJECTIONS = "dismiss_objections"  # 异议不成立 → 继续公示
    UPHOLD_OBJECTION = "uphold_objection"  # 异议成立 → 不予登记
    CLOSE_NOTICE = "close_notice"  # 公示期满无异议 → 登记发证
    WITHDRAW = "withdraw"  # 申请人撤回
    FORCE = "force"  # 管理员强制流转 (须说明理由)


class CertificateStatus(StrEnum):
    """What the public verification page shows for a certificate."""

    ACTIVE = "active"  # 有效
    EXPIRED = "expired"  # 已过期
    PLEDGED = "pledged"  # 已质押
    SUSPENDED = "suspended"  # 已中止
    REVOKED = "revoked"  # 已撤销
    CANCELLED = "cancelled"  # 已注销
    TRANSFERRED = "transferred"  # 已转让 (the successor's certificate carries the title)
    SUPERSEDED = "superseded"  # 已换发 (a change, correction or renewal issued a newer one)


class EventTag(StrEnum):
    """Audit action tags of the registry (``scope:resource:action``)."""

    APPLICATION_SUBMIT = "registry:application:submit"
    APPLICATION_TRANSITION = "registry:application:transition"
    APPLICATION_FORCE = "registry:application:force"
    OBJECTION_LODGE = "registry:objection:lodge"
    OBJECTION_DECIDE = "registry:objection:decide"
    RIGHT_GRANT = "registry:right:grant"
    RIGHT_LICENSE = "registry:right:license"
    RIGHT_DERIVE = "registry:right:derive"
    RIGHT_TRANSFER = "registry:right:transfer"
    RIGHT_AMEND = "registry:right:amend"
    RIGHT_PLEDGE = "registry:right:pledge"
    RIGHT_RELEASE = "registry:right:release"
    RIGHT_CANCEL = "registry:right:cancel"
    RIGHT_REVOKE = "registry:right:revoke"
    RIGHT_SUSPEND = "registry:right:suspend"
    RIGHT_REINSTATE = "registry:right:reinstate"
    RIGHT_EXPIRE = "registry:right:expire"
    RIGHT_OBJECTION = "registry:right:objection"
    OBJECTION_RECORD_CLOSE = "registry:objection-record:close"
    OBJECTION_RECORD_LAWSUIT = "registry:objection-record:lawsuit"
    PLEDGE_CONSENT = "registry:pledge:consent"
    CERTIFICATE_ISSUE = "registry:certificate:issue"


class ObjectionRecordStatus(StrEnum):
    """Where a certified objection registration (异议登记) stands on the right it names."""

    IN_FORCE = "in_force"  # 异议登记有效 (the right is under objection)
    LAPSED = "lapsed"  # 已失效 (no lawsuit or decision within the period)
    LIFTED = "lifted"  # 已注销 (the registrar found it unsubstantiated)
    SUBSTANTIATED = "substantiated"  # 异议成立 (the right is to be corrected or revoked)
    RESOLVED = "resolved"  # 已处理 (the right was corrected or revoked)


# Statuses in which an objection registration keeps the right under dispute.
DISPUTING_STATUSES: Final = frozenset(
    {ObjectionRecordStatus.IN_FORCE, ObjectionRecordStatus.SUBSTANTIATED}
)


# Display labels (English msgids; the catalogues carry the Chinese).
RIGHT_KIND_LABELS: Final[dict[str, str]] = {
    RightKind.HOLDING: N_("Data resource holding right"),
    RightKind.PROCESSING_USE: N_("Data processing and use right"),
    RightKind.PRODUCT_OPERATION: N_("Data product operation right"),
}
ORIGIN_LABELS: Final[dict[str, str]] = {
    Origin.ORIGINAL: N_("Original"),
    Origin.LICENSED: N_("Licensed"),
    Origin.TRANSFERRED: N_("Transferred"),
    Origin.DERIVED: N_("Derived"),
}
RIGHT_STATUS_LABELS: Final[dict[str, str]] = {
    RightStatus.ACTIVE: N_("Active"),
    RightStatus.PLEDGED: N_("Pledged"),
    # The registry's own msgids: "Cancelled" / "Suspended" elsewhere mean a cancelled scan (已取消)
    # or a suspended party (已暂停); a right is deregistered (已注销) or in suspension (已中止).
    RightStatus.SUSPENDED: N_("In suspension"),
    RightStatus.CANCELLED: N_("Deregistered"),
    RightStatus.REVOKED: N_("Revoked"),
    RightStatus.TRANSFERRED: N_("Transferred"),
    RightStatus.EXPIRED: N_("Expired"),
}
STATE_LABELS: Final[dict[str, str]] = {
    RegistrationState.SUBMITTED: N_("Submitted"),
    RegistrationState.FORMAL_REVIEW: N_("Formal review"),
    RegistrationState.SUBSTANTIVE_REVIEW: N_("Substantive review"),
    RegistrationState.PUBLIC_NOTICE: N_("Public notice"),
    RegistrationState.OBJECTION: N_("Objection under review"),
    RegistrationState.RETURNED: N_("Returned for correction"),
    RegistrationState.CERTIFIED: N_("Registered"),
    RegistrationState.REFUSED: N_("Refused"),
    RegistrationState.WITHDRAWN: N_("Withdrawn"),
}
TRACK_LABELS: Final[dict[str, str]] = {
    Track.STANDARD: N_("Standard track"),
    Track.FAST: N_("Fast track"),
}
CERTIFICATE_STATUS_LABELS: Final[dict[str, str]] = {
    CertificateStatus.ACTIVE: N_("Valid"),
    CertificateStatus.EXPIRED: N_("Expired"),
    CertificateStatus.PLEDGED: N_("Pledged"),
    CertificateStatus.SUSPENDED: N_("In suspension"),
    CertificateStatus.REVOKED: N_("Revoked"),
    CertificateStatus.CANCELLED: N_("Deregistered"),
    CertificateStatus.TRANSFERRED: N_("Transferred"),
    CertificateStatus.SUPERSEDED: N_("Superseded"),
}
REGISTRATION_TYPE_LABELS: Final[dict[str, str]] = {
    RegistrationType.INITIAL: N_("Initial registration"),
    RegistrationType.LICENCE: N_("Licence registration"),
    RegistrationType.TRANSFER: N_("Transfer registration"),
    RegistrationType.CHANGE: N_("Change registration"),
    RegistrationType.CORRECTION: N_("Correction registration"),
    RegistrationType.RENEWAL: N_("Renewal registration"),
    RegistrationType.PLEDGE: N_("Pledge registration"),
    RegistrationType.PLEDGE_RELEASE: N_("Pledge release registration"),
    RegistrationType.CANCELLATION: N_("Cancellation registration"),
    RegistrationType.REVOCATION: N_("Revocation registration"),
    RegistrationType.OBJECTION: N_("Objection registration"),
}
ACTION_LABELS: Final[dict[str, str]] = {
    Action.SUBMIT: N_("Submit"),
    Action.ACCEPT: N_("Accept"),
    Action.PASS_FORMAL: N_("Pass the formal review"),
    Action.FAST_TRACK_NOTICE: N_("Fast track to public notice"),
    Action.FAST_TRACK_REGISTER: N_("Fast track to registration"),
    Action.RETURN_FORMAL: N_("Return after formal review"),
    Action.REFUSE_FORMAL: N_("Refuse after formal review"),
    Action.APPROVE_TO_NOTICE: N_("Approve for public notice"),
    Action.APPROVE: N_("Approve and register"),
    Action.RETURN: N_("Return for correction"),
    Action.REFUSE: N_("Refuse registration"),
    Action.RESUBMIT: N_("Resubmit"),
    Action.LODGE_OBJECTION: N_("Lodge an objection"),
    Action.DISMISS_OBJECTIONS: N_("Dismiss the objections"),
    Action.UPHOLD_OBJECTION: N_("Uphold the objection"),
    Action.CLOSE_NOTICE: N_("Close the notice and register"),
    Action.WITHDRAW: N_("Withdraw"),
    Action.FORCE: N_("Force a transition"),
}
ROLE_LABELS: Final[dict[str, str]] = {
    ActorRole.APPLICANT: N_("Applicant"),
    ActorRole.REGISTRAR: N_("Registrar"),
    ActorRole.SYSTEM: N_("System"),
    ActorRole.OBJECTOR: N_("Objector"),
    ActorRole.ADMINISTRATOR: N_("Administrator"),
}
# The formal review's outcomes (``checks.Outcome`` values; "none" before any review).
OUTCOME_LABELS: Final[dict[str, str]] = {
    "pass": N_("Passed"),
    "pending": N_("Pending"),
    "return": N_("Returned for correction"),
    "refuse": N_("Refused"),
    "none": N_("No decision yet"),
}
OBJECTION_RECORD_LABELS: Final[dict[str, str]] = {
    ObjectionRecordStatus.IN_FORCE: N_("Under objection"),
    ObjectionRecordStatus.LAPSED: N_("Objection lapsed"),
    ObjectionRecordStatus.LIFTED: N_("Objection lifted"),
    ObjectionRecordStatus.SUBSTANTIATED: N_("Objection substantiated"),
    ObjectionRecordStatus.RESOLVED: N_("Objection resolved"),
}

# Message parameters that carry a code, and the labels they are shown through: a registry
# message never shows a user "transfer" or "public_notice", always the label in their language.
# ``RegistryError`` wraps these parameters in ``Label`` and ``checks.render_message`` maps them.
CODED_PARAMS: Final[Mapping[str, Mapping[str, str]]] = {
    "type": REGISTRATION_TYPE_LABELS,
    "action": ACTION_LABELS,
    "allowed": ACTION_LABELS,
    "state": STATE_LABELS,
    "target": STATE_LABELS,
    "role": ROLE_LABELS,
    "roles": ROLE_LABELS,
    "status": RIGHT_STATUS_LABELS,
    "kind": RIGHT_KIND_LABELS,
    "parent_kind": RIGHT_KIND_LABELS,
    "origin": ORIGIN_LABELS,
    "track": TRACK_LABELS,
    "outcome": OUTCOME_LABELS,
    "needed": OUTCOME_LABELS,
    "record_status": OBJECTION_RECORD_LABELS,
}
LIST_SEPARATOR: Final = ", "


def translate(message: str, locale: str | None = None) -> str:
    """``message`` (a msgid) in ``locale``, or in the current request's locale when None."""
    # Imported here: the catalogues belong to the web layer, and only rendering needs them.
    from datafactor import context
    from datafactor.web.i18n import translations

    return translations(locale or context.locale.get()).gettext(message)


def label_text(key: str, value: Any, locale: str | None = None) -> Any:
    """``value`` of parameter ``key`` as users read it: a code (or a comma-separated list of
    codes) shown through its label in ``locale`` (the current request's when None); any other
    value unchanged."""
    labels = CODED_PARAMS.get(key)
    if labels is None or not isinstance(value, str):
        return value
    codes = [c.strip() for c in str.__str__(value).split(LIST_SEPARATOR)]
    if not all(c in labels for c in codes):
        return value
    return LIST_SEPARATOR.join(translate(labels[c], locale) for c in codes)


class Label(str):
    """A coded message parameter: its value is the code (stored, compared, sent in JSON), but
    formatted into a message it is the label in the current locale, so ``gettext(message,
    **params)`` in the web layer shows a Chinese user "公示中", not ``public_notice``."""

    key: str

    def __new__(cls, key: str, value: str) -> Label:
        made = super().__new__(cls, value)
        made.key = key
        return made

    def __format__(self, spec: str) -> str:
        return format(str(label_text(self.key, str.__str__(self))), spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Label, (self.key, str.__str__(self)))


def coded(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every coded parameter (``CODED_PARAMS``) wrapped in ``Label``."""
    return {
        k: Label(k, v)
        if k in CODED_PARAMS and isinstance(v, str) and not isinstance(v, Label)
        else v
        for k, v in params.items()
    }


def labelled(codes: Iterable[str]) -> str:
    """Several codes as one parameter value (shown as their labels, comma-separated)."""
    return LIST_SEPARATOR.join(codes)
