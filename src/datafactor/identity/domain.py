"""Identity rules: party kinds and statuses, valid applications, passwords, lockout, scopes.

Pure Python: no web framework and no ORM, so every rule here is unit-tested without a database.
Check-digit validation of the identifiers themselves lives in ``codes.py``; this module decides
which identifier a kind of party must present and turns a bad one into a message a person can act
on (naming the wrong character).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from datafactor.errors import N_, InvalidInput
from datafactor.identity.codes import (
    InvalidCode,
    validate_foreign_registration,
    validate_resident_id,
    validate_uscc,
)
from datafactor.permissions import Permission, Role


class PartyKind(StrEnum):
    """Kinds of market participant (市场主体) the plan names."""

    BIGDATA_BUREAU = "bigdata_bureau"  # 大数据发展局
    EXCHANGE_OPERATOR = "exchange_operator"  # 数据交易场所运营机构
    REGULATOR = "regulator"  # 监管部门
    GOVERNMENT_DEPARTMENT = "government_department"  # 政府部门
    PUBLIC_DATA_OPERATOR = "public_data_operator"  # 公共数据运营机构
    ENTERPRISE = "enterprise"  # 企业
    DATA_MERCHANT = "data_merchant"  # 数商
    SERVICE_FIRM = "service_firm"  # 第三方专业服务机构
    INDIVIDUAL = "individual"  # 个人
    TREASURY = "treasury"  # 财政部门（国库）
    FOREIGN_COMPANY = "foreign_company"  # 境外（东盟）企业


class ServiceRole(StrEnum):
    """What a third-party service firm does (第三方专业服务机构类型)."""

    BROKER = "broker"  # 数据经纪
    CUSTODIAN = "custodian"  # 数据托管
    APPRAISER = "appraiser"  # 资产评估
    COMPLIANCE_ASSESSOR = "compliance_assessor"  # 合规评估
    NOTARY = "notary"  # 公证
    ARBITRATOR = "arbitrator"  # 仲裁


class PartyStatus(StrEnum):
    """Where a party's application stands; the exchange operator owns pending applications."""

    PENDING = "pending"  # 待审核
    VERIFIED = "verified"  # 已认证
    REJECTED = "rejected"  # 已驳回
    SUSPENDED = "suspended"  # 已暂停


class CodeType(StrEnum):
    USCC = "uscc"  # 统一社会信用代码 (GB 32100)
    RESIDENT_ID = "resident_id"  # 公民身份号码 (GB 11643)
    FOREIGN = "foreign"  # 境外注册号


class EventTag(StrEnum):
    """Audit action tags of this domain (``scope:resource:action``)."""

    PARTY_APPLY = "identity:party:apply"
    PARTY_RESUBMIT = "identity:party:resubmit"
    PARTY_VERIFY = "identity:party:verify"
    PARTY_REJECT = "identity:party:reject"
    PARTY_SUSPEND = "identity:party:suspend"
    PARTY_REINSTATE = "identity:party:reinstate"
    USER_CREATE = "identity:user:create"
    USER_UPDATE = "identity:user:update"
    USER_DEACTIVATE = "identity:user:deactivate"
    USER_PASSWORD = "identity:user:password"
    USER_LOGIN = "identity:user:login"
    USER_LOGIN_FAILED = "identity:user:login-failed"
    USER_LOCKED = "identity:user:locked"
    USER_LOGOUT = "identity:user:logout"
    TOKEN_CREATE = "identity:token:create"
    TOKEN_REVOKE = "identity:token:revoke"


# Kinds that are organisations registered in China present a USCC; the rest are fixed here.
KIND_CODE_TYPE: dict[PartyKind, CodeType] = {
    kind: CodeType.USCC
    for kind in PartyKind
    if kind not in (PartyKind.INDIVIDUAL, PartyKind.FOREIGN_COMPANY)
} | {PartyKind.INDIVIDUAL: CodeType.RESIDENT_ID, PartyKind.FOREIGN_COMPANY: CodeType.FOREIGN}

# Kinds anyone may apply as. Supervisory and state kinds are created by the operator (CLI / demo),
# never self-declared through the public form.
SELF_SERVICE_KINDS = frozenset(
    {
        PartyKind.ENTERPRISE,
        PartyKind.DATA_MERCHANT,
        PartyKind.SERVICE_FIRM,
        PartyKind.INDIVIDUAL,
        PartyKind.FOREIGN_COMPANY,
        PartyKind.PUBLIC_DATA_OPERATOR,
    }
)

NAME_MAX = 128
USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{2,31}$")
PASSWORD_MIN = 10
PASSWORD_MAX = 128
REASON_MAX = 500

_CODE_MESSAGES: dict[str, str] = {
    "empty": N_("The identifier is empty: enter the code printed on the licence or ID card."),
    "length": N_("The identifier has {length} characters; it must have {expected_length}."),
    "char": N_(
        "Character {position} '{char}' is not allowed here; check for the letters I, O, "
        "Z, S, V, which these codes never use."
    ),
    "division": N_("Characters 3–8 must be the six digits of an administrative division code."),
    "org_check": N_(
        "Character {position} '{char}' is wrong: the organisation code check "
        "character should be '{expected}'."
    ),
    "check": N_(
        "Character {position} '{char}' is wrong: the check character should be "
        "'{expected}'. Please re-type the code."
    ),
    "province": N_(
        "The first two digits are not a province code of a resident ID (character "
        "{position} '{char}' is wrong)."
    ),
    "birth_date": N_("Characters 7–14 are not a valid birth date."),
    "country": N_("Foreign companies must be registered in an ASEAN member state."),
}
_EXPECTED_LENGTH = {CodeType.USCC: 18, CodeType.RESIDENT_ID: 18, CodeType.FOREIGN: "3–32"}


@dataclass(frozen=True)
class PartyApplication:
    """A request to join the market as a party (入驻申请)."""

    kind: PartyKind
    name: str
    name_en: str
    code: str
    country: str = "CN"
    service_role: ServiceRole | None = None
    contact_email: str = ""


def _text(value: str, field: str, *, required: bool, max_len: int = NAME_MAX) -> str:
    value = " ".join(value.split())
    if required and not value:
        raise InvalidInput(N_("This field is required."), field=field)
    if len(value) > max_len:
        raise InvalidInput(
            N_("This field is too long: {length} characters, at most {max} allowed."),
            field=field,
            length=len(value),
            max=max_len,
        )
    return value


def normalise_code(kind: PartyKind, code: str, country: str, today: date) -> tuple[str, str]:
    """Check a party's identifier for its kind; return (code, country) or raise InvalidInput."""
    code_type = KIND_CODE_TYPE[kind]
    try:
        if code_type is CodeType.USCC:
            return validate_uscc(code), "CN"
        if code_type is CodeType.RESIDENT_ID:
            return validate_resident_id(code, today=today), "CN"
        country, number = validate_foreign_registration(country, code)
        return number, country
    except InvalidCode as exc:
        raise InvalidInput(
            _CODE_MESSAGES.get(exc.reason, _CODE_MESSAGES["check"]),
            field="country" if exc.reason == "country" else "code",
            code=f"invalid-{exc.kind}",
            position=exc.position,
            char=exc.char,
            expected=exc.expected,
            length=len(code.strip()),
            expected_length=_EXPECTED_LENGTH[code_type],
        ) from exc


def check_application(app: PartyApplication, today: date) -> PartyApplication:
    """Validate and normalise an application, or raise InvalidInput naming the field."""
    name = _text(app.name, "name", required=True)
    name_en = _text(app.name_en, "name_en", required=False)
    email = _text(app.contact_email, "contact_email", required=False, max_len=254)
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise InvalidInput(N_("This is not an e-mail address."), field="contact_email")
    if app.kind is PartyKind.SERVICE_FIRM and app.service_role is None:
        raise InvalidInput(
            N_("A service firm must say which service it provides."), field="service_role"
        )
    service_role = app.service_role if app.kind is PartyKind.SERVICE_FIRM else None
    code, country = normalise_code(app.kind, app.code, app.country, today)
    return PartyApplication(app.kind, name, name_en, code, country, service_role, email)


def check_username(username: str) -> str:
    username = username.strip().lower()
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            N_(
                "A username has 3–32 characters: lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter."
            ),
            field="username",
        )
    return username


def check_password(password: str, username: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(
            N_("The password is too short: use at least {min} characters."),
            field="password",
            min=PASSWORD_MIN,
        )
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(
            N_("The password is too long: at most {max} characters."),
            field="password",
            max=PASSWORD_MAX,
        )
    if username and username.lower() in password.lower():
        raise InvalidInput(N_("The password must not contain the username."), field="password")
    return password


def check_roles(roles: list[str] | tuple[str, ...]) -> frozenset[Role]:
    chosen: set[Role] = set()
    for role in roles:
        try:
            chosen.add(Role(role))
        except ValueError:
            raise InvalidInput(N_("Unknown role '{role}'."), field="roles", role=role) from None
    if not chosen:
        raise InvalidInput(N_("Choose at least one role."), field="roles")
    return frozenset(chosen)


def check_reason(reason: str) -> str:
    return _text(reason, "reason", required=True, max_len=REASON_MAX)


@dataclass(frozen=True)
class LockoutPolicy:
    """How wrong passwords slow down and then lock an account."""

    slowdown_after: int
    lock_after: int
    lock_minutes: int

    def delay_seconds(self, failures: int) -> float:
        """Delay before answering the ``failures``-th wrong password in a row (doubling, ≤ 4 s)."""
        if failures < self.slowdown_after:
            return 0.0
        return float(min(4.0, 0.25 * 2 ** (failures - self.slowdown_after)))

    def locked_until(self, failures: int, now: datetime) -> datetime | None:
        if failures >= self.lock_after:
            return now + timedelta(minutes=self.lock_minutes)
        return None


def check_token_request(
    name: str, scopes: list[str], days: int, held: frozenset[Permission], max_days: int
) -> tuple[str, frozenset[Permission]]:
    """A token may carry only permissions its owner holds, for at most ``max_days`` days."""
    name = _text(name, "name", required=True, max_len=64)
    if not 1 <= days <= max_days:
        raise InvalidInput(
            N_("A token is valid for 1 to {max} days."), field="expires_in_days", max=max_days
        )
    chosen: set[Permission] = set()
    for scope in scopes:
        try:
            permission = Permission(scope)
        except ValueError:
            raise InvalidInput(
                N_("Unknown scope '{scope}'."), field="scopes", scope=scope
            ) from None
        if permission not in held:
            raise InvalidInput(
                N_("You cannot grant the scope '{scope}': you do not hold it yourself."),
                field="scopes",
                scope=scope,
            )
        chosen.add(permission)
    if not chosen:
        raise InvalidInput(N_("Choose at least one scope for the token."), field="scopes")
    return name, frozenset(chosen)


# Display labels (English msgids; the catalogs carry the Chinese).
KIND_LABELS: dict[str, str] = {
    PartyKind.BIGDATA_BUREAU: N_("Big-data bureau"),
    PartyKind.EXCHANGE_OPERATOR: N_("Exchange operator"),
    PartyKind.REGULATOR: N_("Regulator"),
    PartyKind.GOVERNMENT_DEPARTMENT: N_("Government department"),
    PartyKind.PUBLIC_DATA_OPERATOR: N_("Public data operator"),
    PartyKind.ENTERPRISE: N_("Enterprise"),
    PartyKind.DATA_MERCHANT: N_("Data merchant"),
    PartyKind.SERVICE_FIRM: N_("Service firm"),
    PartyKind.INDIVIDUAL: N_("Individual"),
    PartyKind.TREASURY: N_("Treasury"),
    PartyKind.FOREIGN_COMPANY: N_("Foreign (ASEAN) company"),
}
SERVICE_ROLE_LABELS: dict[str, str] = {
    ServiceRole.BROKER: N_("Data broker"),
    ServiceRole.CUSTODIAN: N_("Data custodian"),
    ServiceRole.APPRAISER: N_("Asset appraiser"),
    ServiceRole.COMPLIANCE_ASSESSOR: N_("Compliance assessor"),
    ServiceRole.NOTARY: N_("Notary"),
    ServiceRole.ARBITRATOR: N_("Arbitrator"),
}
STATUS_LABELS: dict[str, str] = {
    PartyStatus.PENDING: N_("Pending review"),
    PartyStatus.VERIFIED: N_("Verified"),
    PartyStatus.REJECTED: N_("Rejected"),
    PartyStatus.SUSPENDED: N_("Suspended"),
}
ROLE_LABELS: dict[str, str] = {
    Role.ADMIN: N_("Administrator"),
    Role.STAFF: N_("Staff"),
    Role.AUDITOR: N_("Auditor"),
}
EVENT_LABELS: dict[str, str] = {
    EventTag.PARTY_APPLY: N_("Applied to join"),
    EventTag.PARTY_RESUBMIT: N_("Resubmitted an application"),
    EventTag.PARTY_VERIFY: N_("Verified a party"),
    EventTag.PARTY_REJECT: N_("Rejected an application"),
    EventTag.PARTY_SUSPEND: N_("Suspended a party"),
    EventTag.PARTY_REINSTATE: N_("Reinstated a party"),
    EventTag.USER_CREATE: N_("Added a user"),
    EventTag.USER_UPDATE: N_("Changed a user"),
    EventTag.USER_DEACTIVATE: N_("Deactivated a user"),
    EventTag.USER_PASSWORD: N_("Set a password"),
    EventTag.USER_LOGIN: N_("Logged in"),
    EventTag.USER_LOGIN_FAILED: N_("Wrong password"),
    EventTag.USER_LOCKED: N_("Account locked"),
    EventTag.USER_LOGOUT: N_("Logged out"),
    EventTag.TOKEN_CREATE: N_("Created an API token"),
    EventTag.TOKEN_REVOKE: N_("Revoked an API token"),
}
ASEAN_COUNTRIES: dict[str, str] = {
    "BN": N_("Brunei"),
    "KH": N_("Cambodia"),
    "ID": N_("Indonesia"),
    "LA": N_("Laos"),
    "MY": N_("Malaysia"),
    "MM": N_("Myanmar"),
    "PH": N_("Philippines"),
    "SG": N_("Singapore"),
    "TH": N_("Thailand"),
    "VN": N_("Viet Nam"),
}
