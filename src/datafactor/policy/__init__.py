"""Usage policies (使用策略): the ODRL 2.2 policy language, requests, and the decision engine.

What other domains may use: parse a policy (``parse_policy``) or build one (``Policy`` …),
parse a request (``parse_request``), and ``decide`` — or ``compile_policy`` once and call
``CompiledPolicy.decide`` per request. Every refusal is a ``PolicyError`` naming the term and the
rule. The vocabulary (actions, operands, operators, channels, with zh/en labels) is exported for
editors and renderers. Pure Python: no web, no ORM. See docs/policy.md.
"""

from datafactor.policy.engine import (
    CompiledPolicy,
    Decision,
    Limit,
    Reason,
    compile_policy,
    decide,
)
from datafactor.policy.errors import (
    ContradictoryConstraints,
    InvalidRequest,
    MalformedPolicy,
    PolicyError,
    UnknownTerm,
)
from datafactor.policy.odrl import (
    Action,
    Constraint,
    Duty,
    LogicalConstraint,
    Permission,
    Policy,
    Prohibition,
    parse_policy,
)
from datafactor.policy.render import describe
from datafactor.policy.request import REQUEST_KEYS, Request, parse_request
from datafactor.policy.rulebook import PolicyRules, RuleRef, load_policy_rules
from datafactor.policy.vocabulary import (
    ACTION_LABELS,
    ACTION_PARENTS,
    CHANNEL_LABELS,
    DF_NS,
    DF_PROFILE,
    DUTY_ACTIONS,
    INCLUDES,
    ODRL_CONTEXT,
    OPERANDS,
    OPERATOR_LABELS,
    Channel,
    Kind,
    Logical,
    Operand,
    Operator,
    PolicyType,
)

__all__ = [
    "ACTION_LABELS",
    "ACTION_PARENTS",
    "CHANNEL_LABELS",
    "DF_NS",
    "DF_PROFILE",
    "DUTY_ACTIONS",
    "INCLUDES",
    "ODRL_CONTEXT",
    "OPERANDS",
    "OPERATOR_LABELS",
    "REQUEST_KEYS",
    "Action",
    "Channel",
    "CompiledPolicy",
    "Constraint",
    "ContradictoryConstraints",
    "Decision",
    "Duty",
    "InvalidRequest",
    "Kind",
    "Limit",
    "Logical",
    "LogicalConstraint",
    "MalformedPolicy",
    "Operand",
    "Operator",
    "Permission",
    "Policy",
    "PolicyError",
    "PolicyRules",
    "PolicyType",
    "Prohibition",
    "Reason",
    "Request",
    "RuleRef",
    "UnknownTerm",
    "compile_policy",
    "decide",
    "describe",
    "load_policy_rules",
    "parse_policy",
    "parse_request",
]
