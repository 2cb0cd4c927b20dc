"""Identity: parties (市场主体), their users and roles, API tokens, web sessions and login.

This is the surface other domains may use; they never import this package's models or tables.
"""

from datafactor.identity.domain import (
    EventTag,
    LockoutPolicy,
    PartyApplication,
    PartyKind,
    PartyStatus,
    ServiceRole,
)
from datafactor.identity.services import (
    LoginOutcome,
    PartyQuery,
    WebIdentity,
    apply_for_party,
    authenticate,
    create_token,
    create_user,
    create_user_as_operator,
    end_web_session,
    ensure_user_password,
    find_party_id,
    get_party,
    get_token,
    get_user,
    list_parties,
    list_tokens,
    list_users,
    login_token,
    party_counts,
    register_party,
    resolve_token,
    resolve_web_session,
    resubmit_application,
    review_party,
    revoke_token,
    set_party_standing,
    set_password,
    start_web_session,
    update_user,
)

from datafactor import audit as _audit
from datafactor.identity.domain import EVENT_LABELS as _EVENT_LABELS

_audit.register_action_labels(_EVENT_LABELS)

__all__ = [
    "EventTag",
    "LockoutPolicy",
    "LoginOutcome",
    "PartyApplication",
    "PartyKind",
    "PartyQuery",
    "PartyStatus",
    "ServiceRole",
    "WebIdentity",
    "apply_for_party",
    "authenticate",
    "create_token",
    "create_user",
    "create_user_as_operator",
    "end_web_session",
    "ensure_user_password",
    "find_party_id",
    "get_party",
    "get_token",
    "get_user",
    "list_parties",
    "list_tokens",
    "list_users",
    "login_token",
    "party_counts",
    "register_party",
    "resolve_token",
    "resolve_web_session",
    "resubmit_application",
    "review_party",
    "revoke_token",
    "set_party_standing",
    "set_password",
    "start_web_session",
    "update_user",
]
