"""Reading and writing ODRL 2.2 JSON-LD: terms in every accepted form, refusals with the term
named, contradictions refused, and the round trip ``parse_policy(p.to_jsonld()) == p``."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from policy_support import ASSET, CONTEXT, constraint, policy

from datafactor.policy import (
    DF_PROFILE,
    ContradictoryConstraints,
    MalformedPolicy,
    Operator,
    PolicyError,
    PolicyType,
    UnknownTerm,
    parse_policy,
)


def roundtrip(p):  # type: ignore[no-untyped-def]
    exported = json.loads(json.dumps(p.to_jsonld()))
    assert parse_policy(exported) == p
    return exported


@pytest.mark.parametrize(
    "action",
    ["read", "odrl:read", "http://www.w3.org/ns/odrl/2/read", {"@id": "odrl:read"}],
)
def test_actions_are_read_in_compact_prefixed_or_full_form(action):
    p = policy(action=action)
    assert p.permissions[0].action.name == "read"


def test_profile_terms_in_full_form_become_df_terms_and_declare_the_profile():
    p = policy(
        constraint("https://datafactor.gx.cn/odrl/profile#fields", "isPartOf", ["a", "b"]),
        action="https://datafactor.gx.cn/odrl/profile#onwardTransfer",
    )
    assert p.permissions[0].action.name == "df:onwardTransfer"
    assert p.permissions[0].constraints[0].left == "df:fields"
    assert DF_PROFILE in p.profiles
    roundtrip(p)


def test_keys_may_use_the_odrl_prefix():
    p = parse_policy(
        {
            "@context": CONTEXT,
            "uid": "urn:p",
            "odrl:permission": [{"odrl:target": ASSET, "odrl:action": "use"}],
        }
    )
    assert p.permissions[0].target == ASSET


@pytest.mark.parametrize(
    ("data", "term"),
    [
        ({"permission": [{"target": ASSET, "action": "teleport"}]}, "teleport"),
        ({"permission": [{"target": ASSET, "action": "use", "colour": "red"}]}, "colour"),
        (
            {
                "permission": [
                    {
                        "target": ASSET,
                        "action": "use",
                        "constraint": [constraint("mood", "eq", "happy")],
                    }
                ]
            },
            "mood",
        ),
        (
            {
                "permission": [
                    {
                        "target": ASSET,
                        "action": "use",
                        "constraint": [constraint("purpose", "approx", "x")],
                    }
                ]
            },
            "approx",
        ),
        (
            {
                "permission": [
                    {
                        "target": ASSET,
                        "action": "use",
                        "constraint": [constraint("deliveryChannel", "eq", "fax")],
                    }
                ]
            },
            "fax",
        ),
        (
            {
                "permission": [
                    {
                        "target": ASSET,
                        "action": "use",
                        "constraint": [constraint("spatial", "eq", "Atlantis")],
                    }
                ]
            },
            "Atlantis",
        ),
        ({"comment": "hi", "permission": []}, "comment"),
        ({"@type": "Ticket"}, "Ticket"),
        ({"conflict": "perm"}, "perm"),
        (
            {"permission": [{"target": ASSET, "action": "use", "duty": [{"action": "dance"}]}]},
            "dance",
        ),
    ],
)
def test_unknown_terms_are_refused_with_the_term_named(data, term):
    with pytest.raises(UnknownTerm) as refused:
        parse_policy({"@context": CONTEXT, "uid": "urn:p", **data})
    assert refused.value.term == term
    assert term in str(refused.value)
    assert refused.value.rule.startswith("POL-")


def test_an_operator_the_operand_does_not_take_is_refused():
    with pytest.raises(UnknownTerm) as refused:
        policy(constraint("dateTime", "isAnyOf", ["2026-01-01"]))
    assert refused.value.term == "isAnyOf"
    assert "dateTime" in str(refused.value)


def test_a_foreign_context_is_refused():
    with pytest.raises(UnknownTerm, match=r"example\.org"):
        parse_policy({"@context": "https://example.org/ctx", "uid": "urn:p"})
    with pytest.raises(UnknownTerm, match="use"):
        parse_policy({"@context": [CONTEXT, {"use": "urn:other"}], "uid": "urn:p"})


@pytest.mark.parametrize(
    "data",
    [
        {"permission": [{"target": ASSET}]},  # no action
        {"permission": [{"target": ASSET, "action": "use", "constraint": ["purpose"]}]},
        {
            "permission": [
                {
                    "target": ASSET,
                    "action": "use",
                    "constraint": [{"leftOperand": "purpose", "operator": "eq"}],
                }
            ]
        },
        {
            "permission": [
                {
                    "target": ASSET,
                    "action": "use",
                    "constraint": [constraint("count", "lteq", "ten")],
                }
            ]
        },
        {
            "permission": [
                {
                    "target": ASSET,
                    "action": "use",
                    "constraint": [constraint("dateTime", "lt", "2026-01-01T00:00:00")],
                }
            ]
        },
        {"permission": "use"},
        {"uid": 42},
    ],
)
def test_malformed_policies_are_refused(data):
    with pytest.raises(PolicyError) as refused:
        parse_policy({"@context": CONTEXT, "uid": "urn:p", **data})
    assert isinstance(refused.value, MalformedPolicy | UnknownTerm)


def test_a_policy_without_uid_is_refused():
    with pytest.raises(MalformedPolicy, match="uid"):
        parse_policy({"@context": CONTEXT, "permission": []})


@pytest.mark.parametrize(
    ("constraints", "reason"),
    [
        ([constraint("count", "lt", 0)], "count"),
        ([constraint("count", "lt", 1)], "count"),
        ([constraint("count", "lteq", 0)], "count"),
        ([constraint("count", "gt", 10), constraint("count", "lt", 5)], "count"),
        (
            [
                constraint("dateTime", "gt", "2027-01-01T00:00:00+08:00"),
                constraint("dateTime", "lt", "2026-01-01T00:00:00+08:00"),
            ],
            "dateTime",
        ),
        (
            [
                constraint("dateTime", "gteq", "2026-06-01T00:00:00+08:00"),
                constraint("dateTime", "lt", "2026-06-01T00:00:00+08:00"),
            ],
            "dateTime",
        ),
        (
            [
                constraint("dateTime", "gt", {"@value": "2026-06-01", "@type": "xsd:date"}),
                constraint("dateTime", "lteq", {"@value": "2026-06-01", "@type": "xsd:date"}),
            ],
            "dateTime",
        ),
        ([constraint("purpose", "isAnyOf", [])], "isAnyOf"),
        (
            [constraint("purpose", "eq", "research"), constraint("purpose", "neq", "research")],
            "purpose",
        ),
        (
            [
                constraint("deliveryChannel", "isAnyOf", ["api"]),
                constraint("deliveryChannel", "eq", "download"),
            ],
            "deliveryChannel",
        ),
        (
            [
                constraint("df:fields", "isPartOf", ["a", "b"]),
                constraint("df:fields", "isAllOf", ["c"]),
            ],
            "df:fields",
        ),
        ([constraint("payAmount", "lt", 0)], "payAmount"),
        ([constraint("df:epsilon", "lteq", 0)], "df:epsilon"),
        ([constraint("df:minGroupSize", "gteq", 1)], "1"),
    ],
)
def test_contradictory_constraints_are_refused_with_the_reason(constraints, reason):
    with pytest.raises(ContradictoryConstraints) as refused:
        policy(*constraints)
    assert refused.value.rule == "POL-CONTRADICTION"
    assert refused.value.term == reason


def test_a_window_that_is_open_is_accepted():
    p = policy(
        constraint("dateTime", "gteq", {"@value": "2026-06-01", "@type": "xsd:date"}),
        constraint("dateTime", "lteq", {"@value": "2026-06-01", "@type": "xsd:date"}),
        constraint("count", "lt", 2),
    )
    assert len(p.permissions[0].constraints) == 3


def test_right_operands_are_typed():
    p = policy(
        constraint("dateTime", "lt", {"@value": "2027-01-01", "@type": "xsd:date"}),
        constraint("dateTime", "gt", "2026-01-01T08:00:00+08:00"),
        constraint("count", "lteq", {"@value": "10", "@type": "xsd:integer"}),
        constraint("payAmount", "gteq", {"@value": "12.50", "@type": "xsd:decimal"}, unit="CNY"),
        constraint("spatial", "isPartOf", "cn-gx"),
        constraint("df:epsilon", "lteq", "0.5"),
        constraint("elapsedTime", "lteq", {"@value": "P30D", "@type": "xsd:duration"}),
        **{"dct:issued": "2026-01-01T00:00:00+08:00"},
    )
    rights = [c.right for c in p.permissions[0].constraints]
    assert rights[0] == date(2027, 1, 1)
    assert isinstance(rights[1], datetime) and rights[1].utcoffset() == timedelta(hours=8)
    assert rights[2] == 10
    assert rights[3] == Decimal("12.50")
    assert rights[4] == "CN-GX"
    assert rights[5] == Decimal("0.5")
    assert rights[6] == timedelta(days=30)
    roundtrip(p)


def test_elapsed_time_needs_the_issue_date():
    with pytest.raises(MalformedPolicy, match="issued"):
        policy(constraint("elapsedTime", "lteq", "P30D"))


def test_months_and_years_are_refused_in_durations():
    with pytest.raises(MalformedPolicy):
        policy(constraint("elapsedTime", "lteq", "P1M"), **{"dct:issued": "2026-01-01T00:00:00Z"})


def test_pay_amount_compared_with_a_request_must_be_in_cny():
    with pytest.raises(UnknownTerm) as refused:
        policy(constraint("payAmount", "lteq", "5.00", unit="http://dbpedia.org/resource/Euro"))
    assert "Euro" in refused.value.term
    with pytest.raises(MalformedPolicy):
        policy(constraint("payAmount", "lteq", "5.001"))


def test_output_limits_are_refused_in_prohibitions():
    with pytest.raises(UnknownTerm) as refused:
        policy(
            prohibitions=[
                {
                    "target": ASSET,
                    "action": "use",
                    "constraint": [constraint("df:minGroupSize", "gteq", 10)],
                }
            ]
        )
    assert refused.value.term == "df:minGroupSize"


def test_logical_constraints_round_trip_and_refuse_nesting():
    p = policy(
        {"or": [constraint("purpose", "eq", "research"), constraint("spatial", "eq", "CN")]},
        {
            "xone": {
                "@list": [
                    constraint("deliveryChannel", "eq", "api"),
                    constraint("deliveryChannel", "eq", "sandbox"),
                ]
            }
        },
    )
    assert [c.operand.value for c in p.permissions[0].constraints] == ["or", "xone"]
    roundtrip(p)
    with pytest.raises(UnknownTerm):
        policy({"and": [{"or": [constraint("purpose", "eq", "x")]}]})
    with pytest.raises(UnknownTerm, match="andSequence"):
        policy({"andSequence": [constraint("purpose", "eq", "x")]})


def test_compact_policy_is_expanded_into_atomic_rules():
    p = parse_policy(
        {
            "@context": CONTEXT,
            "uid": "urn:p",
            "target": [ASSET, "urn:df:asset:2"],
            "action": ["read", "display"],
            "permission": [{}],
            "prohibition": [{"action": "distribute"}],
        }
    )
    assert [(x.target, x.action.name) for x in p.permissions] == [
        (ASSET, "read"),
        (ASSET, "display"),
        ("urn:df:asset:2", "read"),
        ("urn:df:asset:2", "display"),
    ]
    assert [x.target for x in p.prohibitions] == [ASSET, "urn:df:asset:2"]
    roundtrip(p)


def test_offers_and_agreements_name_their_parties():
    with pytest.raises(MalformedPolicy, match="assigner"):
        parse_policy(
            {
                "@context": CONTEXT,
                "@type": "Offer",
                "uid": "urn:p",
                "permission": [{"target": ASSET, "action": "use"}],
            }
        )
    with pytest.raises(MalformedPolicy, match="assignee"):
        parse_policy(
            {
                "@context": CONTEXT,
                "@type": "Agreement",
                "uid": "urn:p",
                "assigner": "urn:a",
                "permission": [{"target": ASSET, "action": "use"}],
            }
        )
    p = parse_policy(
        {
            "@context": CONTEXT,
            "@type": "Agreement",
            "uid": "urn:p",
            "assigner": "urn:a",
            "assignee": "urn:b",
            "permission": [{"target": ASSET, "action": "use"}],
        }
    )
    assert p.type is PolicyType.AGREEMENT
    assert p.permissions[0].assignee == "urn:b"


def test_a_full_policy_round_trips():
    p = policy(
        constraint("purpose", "isA", "public_interest"),
        constraint("recipient", "isNoneOf", ["urn:bad"]),
        constraint("industry", "isAnyOf", ["I65", "M73"]),
        constraint("deliveryChannel", "neq", "download"),
        constraint("df:fields", "isNoneOf", ["id_number"]),
        constraint("df:minGroupSize", "gteq", 10),
        action="aggregate",
        duties=[
            {"action": "df:outputReview"},
            {
                "action": [
                    {
                        "rdf:value": {"@id": "odrl:compensate"},
                        "refinement": [
                            constraint(
                                "payAmount",
                                "eq",
                                {"@value": "500.00", "@type": "xsd:decimal"},
                                unit="CNY",
                            )
                        ],
                    }
                ],
                "compensatedParty": "urn:df:party:operator",
            },
        ],
        prohibitions=[
            {"target": ASSET, "action": "df:reidentify", "remedy": [{"action": "delete"}]}
        ],
        obligation=[{"action": "inform", "informedParty": "urn:df:party:bureau"}],
        conflict="prohibit",
        **{"dct:title": "测试", "dct:issued": "2026-11-25T10:00:00+08:00"},
    )
    exported = roundtrip(p)
    assert exported["permission"][0]["constraint"][0]["operator"] == Operator.IS_A.value
    assert p.obligations[0].parties == (("informedParty", "urn:df:party:bureau"),)


def test_a_policy_that_expands_into_too_many_rules_is_refused():
    """Lists of targets, parties and actions expand into one rule each (§2.7); a small document
    must not become millions of rules."""
    import pytest

    from datafactor.policy import MalformedPolicy, parse_policy

    many = [f"urn:df:party:{i}" for i in range(40)]
    doc = {
        "@context": "http://www.w3.org/ns/odrl.jsonld",
        "@type": "Set",
        "uid": "urn:df:policy:big",
        "permission": [
            {
                "target": [f"urn:df:asset:{i}" for i in range(40)],
                "assigner": many,
                "assignee": many,
                "action": ["read", "use"],
            }
        ],
    }
    with pytest.raises(MalformedPolicy, match="at most 1000 rules"):
        parse_policy(doc)
