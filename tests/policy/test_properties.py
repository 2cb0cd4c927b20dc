"""Properties of the engine over generated policies and requests (hypothesis):

* deny by default — a policy without permissions denies every request;
* prohibition precedence — adding a prohibition that covers a request denies it, whatever the
  permissions say;
* monotonic narrowing — adding a constraint to a permission, adding a prohibition, or shrinking a
  permitted list never turns a deny into a permit;
* the JSON-LD round trip holds for every generated policy.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from datafactor.policy import (
    ACTION_PARENTS,
    Action,
    Channel,
    Constraint,
    Logical,
    LogicalConstraint,
    Operator,
    Permission,
    Policy,
    Prohibition,
    Request,
    decide,
    parse_policy,
)

ASSETS = ("urn:a:1", "urn:a:2")
PARTIES = ("urn:p:1", "urn:p:2")
PURPOSES = (
    "research",
    "public_welfare",
    "public_governance",
    "marketing",
    "credit_finance",
    "public_interest",
    "industry",
)
PLACES = ("CN", "CN-GX", "CN-GD", "450100", "VN", "SG", "JP")
REGIONS = (*PLACES, "ASEAN")
FIELDS = ("a", "b", "c", "id_number")
INDUSTRIES = ("I", "I65", "I6510", "M73", "K")
ACTIONS = tuple(sorted(ACTION_PARENTS))
# Rules are mostly broad and requests mostly usage, so that many generated requests are
# permitted and narrowing has something to take away.
RULE_ACTIONS = st.sampled_from(("use",) * 6 + ("read", "aggregate")) | st.sampled_from(ACTIONS)
REQUEST_ACTIONS = st.sampled_from(("read", "aggregate", "use")) | st.sampled_from(ACTIONS)
BASE = datetime(2026, 1, 1, tzinfo=UTC)

times = st.integers(0, 400).map(lambda d: BASE + timedelta(days=d))


def _list(values: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True).map(tuple)


def _codes(left: str, values: tuple[str, ...], extra: tuple[Operator, ...] = ()):  # type: ignore[no-untyped-def]
    single = st.builds(
        Constraint,
        st.just(left),
        st.sampled_from((Operator.EQ, Operator.NEQ, *extra)),
        st.sampled_from(values),
    )
    listed = st.builds(
        Constraint,
        st.just(left),
        st.sampled_from((Operator.IS_ANY_OF, Operator.IS_NONE_OF)),
        _list(values),
    )
    return single | listed


constraints = st.one_of(
    _codes("purpose", PURPOSES, (Operator.IS_A,)),
    _codes("industry", INDUSTRIES, (Operator.IS_A,)),
    _codes("recipient", PARTIES),
    _codes("deliveryChannel", tuple(c.value for c in Channel)),
    st.builds(
        Constraint,
        st.just("spatial"),
        st.sampled_from((Operator.EQ, Operator.NEQ, Operator.IS_PART_OF)),
        st.sampled_from(REGIONS),
    ),
    st.builds(
        Constraint,
        st.just("spatial"),
        st.sampled_from((Operator.IS_ANY_OF, Operator.IS_NONE_OF)),
        _list(REGIONS),
    ),
    st.builds(
        Constraint,
        st.just("dateTime"),
        st.sampled_from((Operator.LT, Operator.LTEQ, Operator.GT, Operator.GTEQ)),
        times,
    ),
    st.builds(
        Constraint,
        st.just("count"),
        st.sampled_from((Operator.LTEQ, Operator.GTEQ)),
        st.integers(1, 20),
    ),
    st.builds(
        Constraint,
        st.just("payAmount"),
        st.sampled_from((Operator.LTEQ, Operator.GTEQ)),
        st.integers(0, 1000).map(Decimal),
    ),
    st.builds(
        Constraint,
        st.just("df:fields"),
        st.sampled_from((Operator.IS_PART_OF, Operator.IS_ALL_OF, Operator.IS_NONE_OF)),
        _list(FIELDS),
    ),
)
logical = st.builds(
    LogicalConstraint,
    st.sampled_from(list(Logical)),
    st.lists(constraints, min_size=1, max_size=3).map(tuple),
)
any_constraint = constraints | logical
rule_parts = {
    "action": RULE_ACTIONS.map(Action),
    "target": st.none() | st.none() | st.sampled_from(ASSETS),
    "assignee": st.none() | st.none() | st.sampled_from(PARTIES),
    "constraints": st.lists(any_constraint, max_size=2).map(tuple),
}
permissions = st.builds(Permission, **rule_parts)
prohibitions = st.builds(Prohibition, **rule_parts)
policies = st.builds(
    Policy,
    uid=st.just("urn:policy:gen"),
    permissions=st.lists(permissions, min_size=1, max_size=4).map(tuple),
    prohibitions=st.lists(prohibitions, max_size=1).map(tuple),
)


def _mostly(values):  # type: ignore[no-untyped-def]
    """Usually a value, sometimes None (a request silent on it)."""
    return st.one_of(values, values, values, st.none())


requests = st.builds(
    Request,
    action=REQUEST_ACTIONS,
    target=st.none() | st.sampled_from(ASSETS),
    assignee=st.none() | st.sampled_from(PARTIES),
    purpose=_mostly(st.sampled_from(PURPOSES)),
    time=_mostly(times),
    spatial=_mostly(st.sampled_from(PLACES)),
    channel=_mostly(st.sampled_from([c.value for c in Channel])),
    count_so_far=_mostly(st.integers(0, 25)),
    industry=_mostly(st.sampled_from(INDUSTRIES)),
    pay_amount=_mostly(st.integers(0, 150000)),
    fields=_mostly(st.frozensets(st.sampled_from(FIELDS), max_size=4)),
)


@settings(max_examples=300)
@given(st.lists(prohibitions, max_size=3).map(tuple), requests)
def test_a_policy_without_permissions_denies_everything(banned, request):
    decision = decide(Policy("urn:empty", prohibitions=banned), request)
    assert decision.decision == "deny"
    assert decision.reasons


@settings(max_examples=300)
@given(policies, requests)
def test_a_prohibition_covering_the_request_beats_any_permission(policy, request):
    ban = Prohibition(Action(request.action), target=request.target)
    narrowed = dataclasses.replace(policy, prohibitions=(*policy.prohibitions, ban))
    decision = decide(narrowed, request)
    assert decision.decision == "deny"
    assert "POL-PROHIBITION" in decision.rules


@settings(max_examples=300)
@given(policies, requests, st.data())
def test_adding_a_constraint_never_permits_more(policy, request, data):
    if not policy.permissions:
        return
    i = data.draw(st.integers(0, len(policy.permissions) - 1))
    extra = data.draw(any_constraint)
    rule = policy.permissions[i]
    narrower = dataclasses.replace(rule, constraints=(*rule.constraints, extra))
    perms = list(policy.permissions)
    perms[i] = narrower
    narrowed = dataclasses.replace(policy, permissions=tuple(perms))
    if decide(policy, request).decision == "deny":
        assert decide(narrowed, request).decision == "deny"


@settings(max_examples=300)
@given(policies, requests, prohibitions)
def test_adding_a_prohibition_never_permits_more(policy, request, ban):
    narrowed = dataclasses.replace(policy, prohibitions=(*policy.prohibitions, ban))
    if decide(policy, request).decision == "deny":
        assert decide(narrowed, request).decision == "deny"


@settings(max_examples=300)
@given(policies, requests, st.data())
def test_shrinking_a_permitted_list_never_permits_more(policy, request, data):
    listed = [
        (i, j)
        for i, p in enumerate(policy.permissions)
        for j, c in enumerate(p.constraints)
        if isinstance(c, Constraint)
        and c.operator in (Operator.IS_ANY_OF, Operator.IS_PART_OF)
        and isinstance(c.right, tuple)
        and len(c.right) > 1
    ]
    if not listed:
        return
    i, j = data.draw(st.sampled_from(listed))
    rule = policy.permissions[i]
    c = rule.constraints[j]
    assert isinstance(c.right, tuple)
    smaller = dataclasses.replace(c, right=c.right[1:])
    cons = list(rule.constraints)
    cons[j] = smaller
    perms = list(policy.permissions)
    perms[i] = dataclasses.replace(rule, constraints=tuple(cons))
    narrowed = dataclasses.replace(policy, permissions=tuple(perms))
    if decide(policy, request).decision == "deny":
        assert decide(narrowed, request).decision == "deny"


@settings(max_examples=300)
@given(policies)
def test_generated_policies_round_trip_or_are_refused_as_contradictory(policy):
    from datafactor.policy import ContradictoryConstraints

    try:
        parsed = parse_policy(json.loads(json.dumps(policy.to_jsonld())))
    except ContradictoryConstraints:
        return  # generated constraints may well contradict each other
    assert parse_policy(json.loads(json.dumps(parsed.to_jsonld()))) == parsed
