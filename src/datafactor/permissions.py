"""Who may do what: the permission vocabulary and the grants of roles and party kinds.

Permissions are ``scope:resource:action`` strings kept alphabetical. A user's effective
permissions are the union of what their roles grant inside their own party and what their party's
kind adds (an exchange operator verifies parties; a regulator reads across parties). A party that is
not verified gets only what it needs to see and fix its own application. An API token narrows this
further to its scopes. Everything starts from nothing: no role, no grant (deny by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Permission(StrEnum):
    AUDIT_EVENT_READ = "audit:event:read"
    AUDIT_EVENT_READ_ALL = "audit:event:read-all"
    CENSUS_INVENTORY_READ = "census:inventory:read"
    CENSUS_INVENTORY_READ_ALL = "census:inventory:read-all"
    CENSUS_RUN_FORCE = "census:run:force"
    CENSUS_RUN_FORCE_ALL = "census:run:force-all"
    CENSUS_RUN_START = "census:run:start"
    CENSUS_RUN_START_ANY = "census:run:start-any"
    DATAPLANE_DATASET_READ = "dataplane:dataset:read"
    DATAPLANE_DATASET_READ_ALL = "dataplane:dataset:read-all"
    DATAPLANE_DATASET_WRITE = "dataplane:dataset:write"
    DISCOVERY_DEIDENTIFICATION_RUN = "discovery:deidentification:run"
    DISCOVERY_DETECTION_REVIEW = "discovery:detection:review"
    DISCOVERY_SCAN_FORCE = "discovery:scan:force"
    DISCOVERY_SCAN_FORCE_ALL = "discovery:scan:force-all"
    DISCOVERY_SCAN_RUN = "discovery:scan:run"
    DISCOVERY_TOKEN_REVERSE = "discovery:token:reverse"
    EXCHANGE_CONTRACT_ARBITRATE = "exchange:contract:arbitrate"
    EXCHANGE_CONTRACT_READ = "exchange:contract:read"
    EXCHANGE_CONTRACT_READ_ALL = "exchange:contract:read-all"
    EXCHANGE_CONTRACT_SIGN = "exchange:contract:sign"
    EXCHANGE_DELIVERY_RECEIVE = "exchange:delivery:receive"
    EXCHANGE_LISTING_ASSESS = "exchange:listing:assess"
    EXCHANGE_LISTING_READ = "exchange:listing:read"
    EXCHANGE_LISTING_REVIEW = "exchange:listing:review"
    EXCHANGE_LISTING_WRITE = "exchange:listing:write"
    EXCHANGE_SETTLEMENT_RUN = "exchange:settlement:run"
    EXCHANGE_TRADE_BROKER = "exchange:trade:broker"
    EXCHANGE_TRADE_PLACE = "exchange:trade:place"
    IDENTITY_PARTY_READ = "identity:party:read"
    IDENTITY_PARTY_READ_ALL = "identity:party:read-all"
    IDENTITY_PARTY_UPDATE = "identity:party:update"
    IDENTITY_PARTY_VERIFY = "identity:party:verify"
    IDENTITY_TOKEN_MANAGE = "identity:token:manage"
    IDENTITY_USER_MANAGE = "identity:user:manage"
    IDENTITY_USER_READ = "identity:user:read"
    IDENTITY_USER_READ_ALL = "identity:user:read-all"
    POLICY_GRANT_DECIDE = "policy:grant:decide"
    POLICY_GRANT_READ = "policy:grant:read"
    POLICY_GRANT_READ_ALL = "policy:grant:read-all"
    POLICY_GRANT_REQUEST = "policy:grant:request"
    POLICY_GRANT_REVOKE_ANY = "policy:grant:revoke-any"
    POLICY_OPERATION_AUTHORISE = "policy:operation:authorise"
    POLICY_OPERATION_FEE_CAP = "policy:operation:fee-cap"
    POLICY_OPERATION_OPERATE = "policy:operation:operate"
    POLICY_OPERATION_READ = "policy:operation:read"
    POLICY_TRUST_MANAGE = "policy:trust:manage"
    POLICY_TRUST_READ = "policy:trust:read"
    POLICY_TRUST_READ_ALL = "policy:trust:read-all"
    REGISTRY_APPLICATION_FORCE = "registry:application:force"
    REGISTRY_APPLICATION_READ = "registry:application:read"
    REGISTRY_APPLICATION_READ_ALL = "registry:application:read-all"
    REGISTRY_APPLICATION_REVIEW = "registry:application:review"
    REGISTRY_APPLICATION_SUBMIT = "registry:application:submit"
    REGISTRY_ASSET_READ = "registry:asset:read"
    REGISTRY_ASSET_READ_ALL = "registry:asset:read-all"
    REGISTRY_ASSET_WRITE = "registry:asset:write"
    REGISTRY_CALENDAR_MANAGE = "registry:calendar:manage"
    REGISTRY_NOTICE_READ = "registry:notice:read"
    REGISTRY_OBJECTION_LODGE = "registry:objection:lodge"
    SANDBOX_PROFILE_MANAGE = "sandbox:profile:manage"
    SANDBOX_QUERY_READ = "sandbox:query:read"
    SANDBOX_QUERY_READ_ALL = "sandbox:query:read-all"
    SANDBOX_QUERY_REVIEW = "sandbox:query:review"
    SANDBOX_QUERY_RUN = "sandbox:query:run"
    SETTLEMENT_ACCOUNT_READ = "settlement:account:read"
    SETTLEMENT_ACCOUNT_READ_ALL = "settlement:account:read-all"
    SETTLEMENT_BOOKS_RECONCILE = "settlement:books:reconcile"
    SETTLEMENT_FUNDS_MOVE = "settlement:funds:move"


class Role(StrEnum):
    """Roles a user holds inside their own party."""

    ADMIN = "admin"  # manages the party's profile, users and tokens
    AUDITOR = "auditor"  # reads the party's audit trail
    STAFF = "staff"  # works in the party's name


P = Permission

# A party registers its own data and rights, reads the public notice board and may object to
# another party's application during its notice (the registry's "applicant" and "objector").
_REGISTRY_APPLICANT = frozenset(
    {
        P.REGISTRY_APPLICATION_READ,
        P.REGISTRY_APPLICATION_SUBMIT,
        P.REGISTRY_ASSET_READ,
        P.REGISTRY_ASSET_WRITE,
        P.REGISTRY_NOTICE_READ,
        P.REGISTRY_OBJECTION_LODGE,
    }
)
# Authorisations (授权): any working user requests grants and reads its party's grants, the
# published public-data operation agreements and fees, and the trusts its party is in; deciding a
# grant over the party's data, and settling or managing a trust deed, is the administrator's.
_GRANTS_USER = frozenset(
    {P.POLICY_GRANT_READ, P.POLICY_GRANT_REQUEST, P.POLICY_OPERATION_READ, P.POLICY_TRUST_READ}
)
_GRANTS_ADMIN = _GRANTS_USER | {P.POLICY_GRANT_DECIDE, P.POLICY_TRUST_MANAGE}
_GRANTS_READER = frozenset({P.POLICY_GRANT_READ, P.POLICY_OPERATION_READ, P.POLICY_TRUST_READ})
# Settlement (结算): every user reads its party's accounts and statements; moving the party's money
# in and out (deposits, withdrawals) is the administrator's; the exchange's staff read every book
# and reconcile it, regulators read every book.
_BOOKS_SUPERVISOR = frozenset({P.SETTLEMENT_ACCOUNT_READ_ALL, P.SETTLEMENT_BOOKS_RECONCILE})
# The exchange (数据交易): every verified user browses listings and reads its party's contracts;
# staff prepare listings, place orders and bids, receive deliveries; signing a listing's
# declaration or a contract binds the party and is the administrator's. The exchange operator's
# staff review listings and settle; its administrator also arbitrates disputes; regulators read
# every contract. Compliance assessors (law firms) sign listing assessments and brokers co-sign
# agreement trades (service firms; the service checks the firm's service role).
_TRADER = frozenset(
    {
        P.EXCHANGE_CONTRACT_READ,
        P.EXCHANGE_DELIVERY_RECEIVE,
        P.EXCHANGE_LISTING_READ,
        P.EXCHANGE_LISTING_WRITE,
        P.EXCHANGE_TRADE_PLACE,
    }
)
_TRADER_ADMIN = _TRADER | {P.EXCHANGE_CONTRACT_SIGN}
# The sandbox (隐私计算沙箱): staff run queries under their party's grants and read its query
# records (as grantee and as data holder); declaring a data set's sandbox profile and releasing or
# withholding results held for review bind the holder and are the administrator's; regulators and
# the exchange's auditors read every query record.
_SANDBOX_USER = frozenset({P.SANDBOX_QUERY_READ, P.SANDBOX_QUERY_RUN})
_SANDBOX_ADMIN = _SANDBOX_USER | {P.SANDBOX_PROFILE_MANAGE, P.SANDBOX_QUERY_REVIEW}
_TRADE_READER = frozenset({P.EXCHANGE_CONTRACT_READ, P.EXCHANGE_LISTING_READ})
_EXCHANGE_STAFF = frozenset(
    {
        P.EXCHANGE_CONTRACT_READ_ALL,
        P.EXCHANGE_LISTING_READ,
        P.EXCHANGE_LISTING_REVIEW,
        P.EXCHANGE_SETTLEMENT_RUN,
    }
)
_GRANTS_SUPERVISOR = frozenset(
    {P.POLICY_GRANT_READ_ALL, P.POLICY_OPERATION_READ, P.POLICY_TRUST_READ_ALL}
)
# The exchange operator is the registration authority (登记机构): its staff are registrars, its
# administrator also force-transitions stuck applications and edits the working-day calendar.
_REGISTRAR = frozenset(
    {
        P.REGISTRY_APPLICATION_READ_ALL,
        P.REGISTRY_APPLICATION_REVIEW,
        P.REGISTRY_ASSET_READ_ALL,
        P.REGISTRY_NOTICE_READ,
    }
)

_ROLE_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.STAFF: frozenset(
        {
            P.DATAPLANE_DATASET_READ,
            P.DATAPLANE_DATASET_WRITE,
            P.DISCOVERY_DEIDENTIFICATION_RUN,
            P.DISCOVERY_SCAN_RUN,
            P.DISCOVERY_TOKEN_REVERSE,
            P.IDENTITY_PARTY_READ,
            P.IDENTITY_TOKEN_MANAGE,
            P.IDENTITY_USER_READ,
            *_REGISTRY_APPLICANT,
            *_GRANTS_USER,
            *_TRADER,
            *_SANDBOX_USER,
            P.SETTLEMENT_ACCOUNT_READ,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            P.AUDIT_EVENT_READ,
            P.DATAPLANE_DATASET_READ,
            P.IDENTITY_PARTY_READ,
            P.IDENTITY_TOKEN_MANAGE,
            P.IDENTITY_USER_READ,
            P.REGISTRY_APPLICATION_READ,
            P.REGISTRY_ASSET_READ,
            P.REGISTRY_NOTICE_READ,
            *_GRANTS_READER,
            *_TRADE_READER,
            P.SANDBOX_QUERY_READ,
            P.SETTLEMENT_ACCOUNT_READ,
        }
    ),
    # The admin is also the party's reviewer of discovery results, and may force-cancel its scans.
    # Reversing tokens is granted to staff and admin of every kind: whether a user may reverse a
    # given token is decided by the token itself (only the trustee party named in the policy
    # holds its key), not by the role.
    Role.ADMIN: frozenset(
        {
            P.AUDIT_EVENT_READ,
            P.DATAPLANE_DATASET_READ,
            P.DATAPLANE_DATASET_WRITE,
            P.DISCOVERY_DEIDENTIFICATION_RUN,
            P.DISCOVERY_DETECTION_REVIEW,
            P.DISCOVERY_SCAN_FORCE,
            P.DISCOVERY_SCAN_RUN,
            P.DISCOVERY_TOKEN_REVERSE,
            P.IDENTITY_PARTY_READ,
            P.IDENTITY_PARTY_UPDATE,
            P.IDENTITY_TOKEN_MANAGE,
            P.IDENTITY_USER_MANAGE,
            P.IDENTITY_USER_READ,
            *_REGISTRY_APPLICANT,
            *_GRANTS_ADMIN,
            *_TRADER_ADMIN,
            *_SANDBOX_ADMIN,
            P.SETTLEMENT_ACCOUNT_READ,
            P.SETTLEMENT_FUNDS_MOVE,
        }
    ),
}
# An enterprise's administrator may sign as implementing body for the public data of its public
# services (a public enterprise such as the power grid); the service refuses an agreement over
# anything but the party's own registered public data (OPS-BODY-DATA).
_PUBLIC_ENTERPRISE = frozenset({P.POLICY_OPERATION_AUTHORISE})

# What a party's kind adds, per role. Keys are PartyKind values (kept as strings so this module
# stays free of domain imports).
_SUPERVISORY_READ = frozenset(
    {
        P.AUDIT_EVENT_READ_ALL,
        P.DATAPLANE_DATASET_READ_ALL,
        P.IDENTITY_PARTY_READ_ALL,
        P.IDENTITY_USER_READ_ALL,
    }
)
_KIND_GRANTS: dict[str, dict[Role, frozenset[Permission]]] = {
    "exchange_operator": {
        # The platform's administrator: may force-cancel any party's stuck scan.
        Role.ADMIN: _SUPERVISORY_READ
        | _REGISTRAR
        | _GRANTS_SUPERVISOR
        | _BOOKS_SUPERVISOR
        | _EXCHANGE_STAFF
        | {
            P.DISCOVERY_SCAN_FORCE_ALL,
            P.EXCHANGE_CONTRACT_ARBITRATE,
            P.IDENTITY_PARTY_VERIFY,
            P.REGISTRY_APPLICATION_FORCE,
            P.REGISTRY_CALENDAR_MANAGE,
        },
        Role.STAFF: _REGISTRAR
        | _GRANTS_SUPERVISOR
        | _BOOKS_SUPERVISOR
        | _EXCHANGE_STAFF
        | {P.IDENTITY_PARTY_READ_ALL, P.IDENTITY_PARTY_VERIFY},
        Role.AUDITOR: _SUPERVISORY_READ
        | _GRANTS_SUPERVISOR
        | _BOOKS_SUPERVISOR
        | {P.EXCHANGE_CONTRACT_READ_ALL, P.SANDBOX_QUERY_READ_ALL}
        | {P.REGISTRY_APPLICATION_READ_ALL, P.REGISTRY_ASSET_READ_ALL},
    },
    # A regulator's administrator may revoke any authorisation (its staff and auditors read).
    "regulator": {
        role: _SUPERVISORY_READ
        | _GRANTS_SUPERVISOR
        | {P.SETTLEMENT_ACCOUNT_READ_ALL, P.EXCHANGE_CONTRACT_READ_ALL, P.SANDBOX_QUERY_READ_ALL}
        | {
            P.CENSUS_INVENTORY_READ_ALL,
            P.REGISTRY_APPLICATION_READ_ALL,
            P.REGISTRY_ASSET_READ_ALL,
            P.REGISTRY_NOTICE_READ,
        }
        | ({P.POLICY_GRANT_REVOKE_ANY} if role is Role.ADMIN else set())
        for role in Role
    },
    # The big-data bureau organises the government data census: it reads every department's
    # inventory and the province's roll-up, starts a census for any department, and its admin
    # may force-cancel any census run.
    # It also sets the public-data operation service-fee caps (发改价格〔2025〕65号) and oversees
    # every authorisation made under public-data operation.
    "bigdata_bureau": {
        Role.ADMIN: _SUPERVISORY_READ
        | _GRANTS_SUPERVISOR
        | {
            P.CENSUS_INVENTORY_READ_ALL,
            P.CENSUS_RUN_FORCE_ALL,
            P.CENSUS_RUN_START_ANY,
            P.POLICY_OPERATION_FEE_CAP,
        },
        Role.STAFF: _SUPERVISORY_READ
        | _GRANTS_SUPERVISOR
        | {P.CENSUS_INVENTORY_READ_ALL, P.CENSUS_RUN_START_ANY, P.POLICY_OPERATION_FEE_CAP},
        Role.AUDITOR: _SUPERVISORY_READ | _GRANTS_SUPERVISOR | {P.CENSUS_INVENTORY_READ_ALL},
    },
    # A government department takes its own census (政务数据资产普查) and reads its inventory.
    # As an implementing body (实施机构) its administrator selects public-data operators and signs
    # their authorisation agreements.
    "government_department": {
        Role.ADMIN: frozenset(
            {
                P.CENSUS_INVENTORY_READ,
                P.CENSUS_RUN_FORCE,
                P.CENSUS_RUN_START,
                P.POLICY_OPERATION_AUTHORISE,
            }
        ),
        Role.STAFF: frozenset({P.CENSUS_INVENTORY_READ, P.CENSUS_RUN_START}),
        Role.AUDITOR: frozenset({P.CENSUS_INVENTORY_READ}),
    },
    # A public-data operator (公共数据运营机构) approves uses of the public data its agreements
    # cover, sets its fees under the cap, records its costs and files its annual report.
    "enterprise": {Role.ADMIN: _PUBLIC_ENTERPRISE},
    # Third-party service firms: a compliance assessor (law firm) signs listing assessments, a
    # broker co-signs agreement trades and lists for the holders who authorised it; which of the
    # two a firm is, is its service role (checked by the exchange).
    "service_firm": {
        Role.ADMIN: frozenset({P.EXCHANGE_LISTING_ASSESS, P.EXCHANGE_TRADE_BROKER}),
        Role.STAFF: frozenset({P.EXCHANGE_LISTING_ASSESS, P.EXCHANGE_TRADE_BROKER}),
    },
    "public_data_operator": {
        Role.ADMIN: frozenset({P.POLICY_OPERATION_OPERATE}),
        Role.STAFF: frozenset({P.POLICY_OPERATION_OPERATE}),
    },
}

# An applicant whose party is not yet verified may only look at and correct its application.
_UNVERIFIED = frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_UPDATE})


def effective_permissions(
    party_kind: str, party_verified: bool, roles: frozenset[Role] | set[Role]
) -> frozenset[Permission]:
    """The permissions a user with ``roles`` in a party of ``party_kind`` holds."""
    granted: set[Permission] = set()
    for role in roles:
        granted |= _ROLE_GRANTS.get(role, frozenset())
        granted |= _KIND_GRANTS.get(party_kind, {}).get(role, frozenset())
    if not party_verified:
        granted &= _UNVERIFIED if Role.ADMIN in roles else frozenset({P.IDENTITY_PARTY_READ})
    return frozenset(granted)


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user of a party, through a web session or an API token."""

    user_id: str
    username: str
    party_id: str
    party_kind: str
    roles: frozenset[Role]
    permissions: frozenset[Permission]
    via: str = "session"  # "session" | "token" | "cli"
    token_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def can_see_party(self, party_id: str) -> bool:
        return party_id == self.party_id or self.can(P.IDENTITY_PARTY_READ_ALL)
