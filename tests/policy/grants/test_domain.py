"""The rules of authorisations without a database: the state machine (hypothesis), the scope a
policy could allow in the registry's terms, its count and time bounds, and the checks."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafactor.policy import parse_policy
from datafactor.policy.editor import EditorValues, build_document
from datafactor.policy.grants import (
    FINAL_STATES,
    GrantAction,
    GrantRole,
    GrantState,
    policy_ends,
    policy_max_uses,
    policy_scope,
)
from datafactor.policy.grants.domain import (
    TRANSITIONS,
    Mandate,
    Regime,
    check_public_channels,
    check_scope_within,
    check_term,
    check_term_within,
    prepare_policy,
    transition,
)
from datafactor.policy.grants.errors import (
    GrantInvalid,
    GrantStateConflict,
    NotGrantor,
    PublicDataDownload,
    ScopeExceedsGrantor,
    TermExceedsGrantor,
)
from datafactor.policy.templates import load_template


def doc(**kw):
    return build_document(EditorValues(**kw))


def rule(permission, **extra):
    return {
        "@context": "http://www.w3.org/ns/odrl.jsonld",
        "@type": "Set",
        "uid": "https://example.test/p",
        "permission": permission,
        **extra,
    }


# --- the state machine ---------------------------------------------------------------------


def test_the_happy_path_and_who_may_take_each_step():
    state = transition(None, GrantAction.REQUEST, GrantRole.GRANTEE)
    assert state is GrantState.REQUESTED
    with pytest.raises(NotGrantor) as refused:
        transition(state, GrantAction.APPROVE, GrantRole.GRANTEE)
    assert refused.value.rule == "GRT-ACTOR"
    state = transition(state, GrantAction.APPROVE, GrantRole.GRANTOR)
    assert state is GrantState.APPROVED
    with pytest.raises(NotGrantor):  # only the registry's certification activates
        transition(state, GrantAction.ACTIVATE, GrantRole.GRANTOR)
    state = transition(state, GrantAction.ACTIVATE, GrantRole.SYSTEM)
    state = transition(state, GrantAction.SUSPEND, GrantRole.GRANTOR)
    state = transition(state, GrantAction.RESUME, GrantRole.GRANTOR)
    assert transition(state, GrantAction.REVOKE, GrantRole.REGULATOR) is GrantState.REVOKED
    with pytest.raises(GrantStateConflict) as out_of_order:
        transition(GrantState.ACTIVE, GrantAction.WITHDRAW, GrantRole.GRANTEE)
    assert out_of_order.value.rule == "GRT-TRANSITION"
    # Once approved, only the registry refuses (the licence); the grantor revokes instead.
    with pytest.raises(GrantStateConflict, match="Revoke it instead"):
        transition(GrantState.APPROVED, GrantAction.REFUSE, GrantRole.GRANTOR)
    assert transition(GrantState.APPROVED, GrantAction.REFUSE, GrantRole.SYSTEM) is (
        GrantState.REFUSED
    )
    assert transition(GrantState.APPROVED, GrantAction.REVOKE, GrantRole.GRANTOR) is (
        GrantState.REVOKED
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(list(GrantAction)), st.sampled_from(list(GrantRole))),
        max_size=12,
    )
)
def test_any_sequence_follows_the_table_and_a_final_state_is_final(steps):
    state: GrantState | None = None
    for action, role in steps:
        step = TRANSITIONS[action]
        try:
            after = transition(state, action, role)
        except (GrantStateConflict, NotGrantor):
            assert state in FINAL_STATES or not step.allows(state, role)
            continue
        assert state not in FINAL_STATES
        assert step.allows(state, role) and after is step.target
        state = after


# --- what a policy could allow --------------------------------------------------------------


def test_the_templates_in_registry_terms():
    welfare = policy_scope(load_template("public-welfare"))
    assert welfare["purposes"] == ["public_governance", "public_welfare", "research"]
    assert welfare["delivery_modes"] == ["api", "sandbox"] and welfare["regions"] is None
    paid = load_template("industry-paid")
    scope = policy_scope(paid)
    # The registry compares purposes as a flat list: the class stands for itself.
    assert scope["purposes"] == ["industry"]
    assert "consumption_kwh" in scope["fields"]
    assert policy_max_uses(paid) == 1000
    assert policy_ends(paid).isoformat() == "2027-12-31T23:59:59.999999+08:00"
    asean = policy_scope(load_template("asean-cross-border"))
    assert {"CN", "VN", "SG", "TL"} <= set(asean["regions"])


def test_purposes_places_and_channels_map_to_the_registry():
    scope = policy_scope(doc(purposes=["marketing", "research"], regions=["CN-GX", "VN"]))
    assert scope["purposes"] == ["industry", "research"]  # marketing → its known ancestor
    assert scope["regions"] == ["450000", "VN"]
    everything = policy_scope(rule([{"action": "use"}]))
    assert everything == {
        "purposes": None,
        "fields": None,
        "regions": None,
        "delivery_modes": ["api", "download", "sandbox"],
    }
    # A prohibition of download narrows the channels; a conditional one does not.
    narrowed = policy_scope(
        rule(
            [{"action": "use"}],
            prohibition=[
                {
                    "action": "use",
                    "constraint": [
                        {
                            "leftOperand": "deliveryChannel",
                            "operator": "eq",
                            "rightOperand": "download",
                        }
                    ],
                }
            ],
        )
    )
    assert narrowed["delivery_modes"] == ["api", "sandbox"]
    conditional = policy_scope(
        rule(
            [{"action": "use"}],
            prohibition=[
                {
                    "action": "use",
                    "constraint": [
                        {
                            "leftOperand": "deliveryChannel",
                            "operator": "eq",
                            "rightOperand": "download",
                        },
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "marketing"},
                    ],
                }
            ],
        )
    )
    assert conditional["delivery_modes"] == ["api", "download", "sandbox"]
    # isNoneOf leaves the dimension open; a logical or unions its members.
    open_ = policy_scope(
        rule(
            [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "leftOperand": "purpose",
                            "operator": "isNoneOf",
                            "rightOperand": ["marketing"],
                        }
                    ],
                }
            ]
        )
    )
    assert open_["purposes"] is None
    either = policy_scope(
        rule(
            [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "or": [
                                {
                                    "leftOperand": "deliveryChannel",
                                    "operator": "eq",
                                    "rightOperand": "api",
                                },
                                {
                                    "leftOperand": "deliveryChannel",
                                    "operator": "eq",
                                    "rightOperand": "sandbox",
                                },
                            ]
                        }
                    ],
                }
            ]
        )
    )
    assert either["delivery_modes"] == ["api", "sandbox"]
    assert policy_max_uses(parse_policy(rule([{"action": "use"}]))) is None


PURPOSES = ["public_governance", "research", "industry", "marketing", "credit_finance"]


@given(
    st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True),
    st.lists(st.sampled_from(["api", "sandbox", "download"]), min_size=1, unique=True),
    st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True),
)
def test_adding_a_constraint_never_widens_the_scope(purposes, channels, narrower):
    """Narrowing a policy (another purpose constraint ANDed in) never lets the licence's scope
    grow: every purpose the narrower policy could allow is, or is a kind of, one the wider could
    (``credit_finance`` lies within ``industry``); channels compare as they are."""
    from datafactor.policy import load_policy_rules

    wide = rule(
        [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": purposes},
                    {
                        "leftOperand": "deliveryChannel",
                        "operator": "isAnyOf",
                        "rightOperand": channels,
                    },
                ],
            }
        ]
    )
    narrow = rule(
        [
            {
                "action": "use",
                "constraint": [
                    *wide["permission"][0]["constraint"],
                    {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": narrower},
                ],
            }
        ]
    )
    try:
        narrow_scope = policy_scope(narrow)
    except Exception:  # contradictory purposes: the parser refuses, nothing is allowed
        return
    if any(v == [] for v in narrow_scope.values()):
        return
    wide_scope = policy_scope(wide)
    kinds = load_policy_rules().purposes_of
    assert all(kinds(p) & set(wide_scope["purposes"]) for p in narrow_scope["purposes"])
    assert set(narrow_scope["delivery_modes"]) <= set(wide_scope["delivery_modes"])


# --- the checks ------------------------------------------------------------------------------


def test_a_scope_beyond_the_grantor_names_the_dimension_and_values():
    limit = {
        "purposes": ["industry"],
        "fields": None,
        "regions": ["450000"],
        "delivery_modes": ["api", "sandbox"],
    }
    check_scope_within(
        policy_scope(doc(purposes=["industry"], regions=["CN-GX"], channels=["api"])),
        limit,
        whose="x",
        rule="R",
    )
    with pytest.raises(ScopeExceedsGrantor) as beyond:
        check_scope_within(
            policy_scope(doc(purposes=["industry"], regions=["CN"], channels=["api"])),
            limit,
            whose="x",
            rule="R",
        )
    assert beyond.value.field == "policy.regions" and "CN" in str(beyond.value)
    with pytest.raises(ScopeExceedsGrantor) as unrestricted:
        check_scope_within(
            policy_scope(doc(regions=["CN-GX"], channels=["api"])), limit, whose="x", rule="R"
        )
    assert unrestricted.value.field == "policy.purposes"


def test_terms_and_public_data():
    check_term(date(2026, 3, 2), date(2027, 3, 1), today=date(2026, 3, 2))
    with pytest.raises(GrantInvalid, match="GRT-TERM"):
        check_term(date(2026, 3, 2), date(2026, 3, 1), today=date(2026, 3, 2))
    with pytest.raises(TermExceedsGrantor, match="2026-03-02"):
        check_term_within(
            date(2026, 1, 1), date(2026, 6, 1), date(2026, 3, 2), None, whose="x", rule="R"
        )
    with pytest.raises(PublicDataDownload) as raw:
        check_public_channels(policy_scope(rule([{"action": "use"}])), asset="公交数据")
    assert raw.value.rule == "GRT-PUBLIC-NO-DOWNLOAD" and "download" in str(raw.value)
    check_public_channels(policy_scope(doc(channels=["api", "sandbox"])), asset="公交数据")


def test_the_policy_must_name_this_asset_and_grantee():
    filled = prepare_policy(doc(channels=["api"]), asset_id="a1", grantee_id="p1")
    assert {p.target for p in filled.permissions} == {"a1"}
    assert {p.assignee for p in filled.permissions} == {"p1"}
    with pytest.raises(GrantInvalid) as other:
        prepare_policy({**doc(channels=["api"]), "target": "a2"}, asset_id="a1", grantee_id="p1")
    assert other.value.rule == "GRT-POLICY-PARTIES"
    from datafactor.policy import PolicyError

    with pytest.raises(PolicyError) as unknown:
        prepare_policy(rule([{"action": "fly"}]), asset_id="a1", grantee_id="p1")
    assert unknown.value.rule == "POL-UNKNOWN-TERM"


def test_a_mandate_round_trips():
    mandate = Mandate(
        Regime.OPERATION,
        "agr-1",
        "op",
        "dept",
        frozenset({"a1"}),
        {"purposes": ["industry"], "fields": None, "regions": None, "delivery_modes": ["api"]},
        date(2026, 1, 1),
        date(2030, 12, 31),
        frozenset({"api", "sandbox"}),
    )
    assert Mandate.from_dict(mandate.as_dict()) == mandate
