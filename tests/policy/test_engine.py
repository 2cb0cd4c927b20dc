"""The engine: every left operand and operator, deny by default, prohibitions, duties, limits and
the reasons a person reads (zh and en, with rule ids)."""

from __future__ import annotations

import pytest
from policy_support import ASSET, PARTY, constraint, policy

from datafactor.policy import (
    CompiledPolicy,
    Policy,
    compile_policy,
    decide,
    load_policy_rules,
    parse_request,
)

T = "2026-11-25T10:00:00+08:00"


def verdict(p: Policy, **request: object) -> str:
    request.setdefault("action", "use")
    request.setdefault("target", ASSET)
    return decide(p, parse_request(request)).decision


def cases(p: Policy, allowed: list[dict[str, object]], denied: list[dict[str, object]]) -> None:
    for r in allowed:
        assert verdict(p, **r) == "permit", r
    for r in denied:
        assert verdict(p, **r) == "deny", r


# --- every left operand, every operator -----------------------------------------------------


def test_purpose_eq_neq_isanyof_isnoneof_isa():
    cases(
        policy(constraint("purpose", "eq", "research")),
        [{"purpose": "research"}],
        [{"purpose": "marketing"}, {}],
    )
    cases(
        policy(constraint("purpose", "neq", "marketing")),
        [{"purpose": "research"}],
        [{"purpose": "marketing"}, {}],
    )
    cases(
        policy(constraint("purpose", "isAnyOf", ["research", "public_welfare"])),
        [{"purpose": "research"}, {"purpose": "public_welfare"}],
        [{"purpose": "marketing"}],
    )
    cases(
        policy(constraint("purpose", "isNoneOf", ["industry"])),
        [{"purpose": "research"}],
        [{"purpose": "marketing"}, {"purpose": "industry"}],
    )
    cases(
        policy(constraint("purpose", "isA", "public_interest")),
        [{"purpose": "public_governance"}, {"purpose": "research"}, {"purpose": "public_interest"}],
        [{"purpose": "credit_finance"}, {"purpose": "unlisted"}],
    )


def test_datetime_lt_lteq_gt_gteq_eq_with_dates_and_instants():
    day = {"@value": "2026-11-25", "@type": "xsd:date"}
    before, during, after = "2026-11-24T23:59:59+08:00", T, "2026-11-26T00:00:00+08:00"
    cases(policy(constraint("dateTime", "lt", day)), [{"time": before}], [{"time": during}, {}])
    cases(
        policy(constraint("dateTime", "lteq", day)),
        [{"time": before}, {"time": during}],
        [{"time": after}],
    )
    cases(
        policy(constraint("dateTime", "gt", day)),
        [{"time": after}],
        [{"time": during}, {"time": before}],
    )
    cases(
        policy(constraint("dateTime", "gteq", day)),
        [{"time": during}, {"time": after}],
        [{"time": before}],
    )
    cases(
        policy(constraint("dateTime", "eq", day)),
        [{"time": during}],
        [{"time": before}, {"time": after}],
    )
    # An instant compares across offsets: 02:00Z is 10:00 in Beijing.
    cases(
        policy(constraint("dateTime", "gteq", T)),
        [{"time": "2026-11-25T02:00:00+00:00"}],
        [{"time": "2026-11-25T01:59:59Z"}],
    )
    # A date is the day in China Standard Time: 2026-11-24T16:00Z is already the 25th there.
    cases(policy(constraint("dateTime", "eq", day)), [{"time": "2026-11-24T16:00:00Z"}], [])


def test_count_bounds_the_uses_including_the_one_requested():
    p = policy(constraint("count", "lteq", 10))
    cases(p, [{"count_so_far": 0}, {"count_so_far": 9}], [{"count_so_far": 10}, {}])
    cases(policy(constraint("count", "lt", 10)), [{"count_so_far": 8}], [{"count_so_far": 9}])
    cases(policy(constraint("count", "eq", 1)), [{"count_so_far": 0}], [{"count_so_far": 1}])
    cases(policy(constraint("count", "neq", 1)), [{"count_so_far": 1}], [{"count_so_far": 0}])
    cases(policy(constraint("count", "gt", 2)), [{"count_so_far": 2}], [{"count_so_far": 1}])
    cases(policy(constraint("count", "gteq", 2)), [{"count_so_far": 1}], [{"count_so_far": 0}])


def test_spatial_places_lie_within_regions():
    p = policy(constraint("spatial", "isPartOf", "CN-GX"))
    cases(
        p,
        [{"spatial": "CN-GX"}, {"spatial": "450100"}, {"spatial": "450102"}],
        [{"spatial": "CN"}, {"spatial": "CN-GD"}, {"spatial": "VN"}, {}],
    )
    cases(
        policy(constraint("spatial", "eq", "CN")),
        [{"spatial": "CN-GX"}, {"spatial": "CN"}, {"spatial": "110101"}],
        [{"spatial": "VN"}],
    )
    cases(policy(constraint("spatial", "neq", "CN")), [{"spatial": "VN"}], [{"spatial": "CN-GX"}])
    cases(
        policy(constraint("spatial", "isAnyOf", ["CN-GX", "ASEAN"])),
        [{"spatial": "VN"}, {"spatial": "TH-10"}, {"spatial": "450300"}],
        [{"spatial": "CN-GD"}, {"spatial": "JP"}],
    )
    cases(
        policy(constraint("spatial", "isNoneOf", ["ASEAN"])),
        [{"spatial": "CN"}],
        [{"spatial": "SG"}, {"spatial": "VN-HN"}],
    )
    # GB/T 2260 in the policy: 450000 is Guangxi, the same region as CN-GX.
    cases(
        policy(constraint("spatial", "isPartOf", "450000")),
        [{"spatial": "CN-GX"}, {"spatial": "451000"}],
        [{"spatial": "440300"}],
    )


def test_recipient_is_the_requesting_party():
    cases(
        policy(constraint("recipient", "eq", PARTY)),
        [{"assignee": PARTY}],
        [{"assignee": "urn:other"}, {}],
    )
    cases(
        policy(constraint("recipient", "isAnyOf", [PARTY, "urn:b"])),
        [{"assignee": "urn:b"}],
        [{"assignee": "urn:c"}],
    )
    cases(
        policy(constraint("recipient", "isNoneOf", [PARTY])),
        [{"assignee": "urn:b"}],
        [{"assignee": PARTY}],
    )
    cases(
        policy(constraint("recipient", "neq", PARTY)),
        [{"assignee": "urn:b"}],
        [{"assignee": PARTY}],
    )


def test_elapsed_time_counts_from_the_issue_date():
    p = policy(
        constraint("elapsedTime", "lteq", "P30D"), **{"dct:issued": "2026-11-01T00:00:00+08:00"}
    )
    cases(p, [{"time": "2026-12-01T00:00:00+08:00"}], [{"time": "2026-12-01T00:00:01+08:00"}, {}])
    p = policy(
        constraint("elapsedTime", "lt", "PT12H"), **{"dct:issued": "2026-11-01T00:00:00+08:00"}
    )
    cases(p, [{"time": "2026-11-01T11:59:59+08:00"}], [{"time": "2026-11-01T12:00:00+08:00"}])


def test_delivery_channel():
    cases(
        policy(constraint("deliveryChannel", "isAnyOf", ["api", "sandbox"])),
        [{"channel": "api"}, {"channel": "sandbox"}],
        [{"channel": "download"}, {}],
    )
    cases(
        policy(constraint("deliveryChannel", "eq", "sandbox")),
        [{"channel": "sandbox"}],
        [{"channel": "api"}],
    )
    cases(
        policy(constraint("deliveryChannel", "neq", "download")),
        [{"channel": "api"}],
        [{"channel": "download"}],
    )
    cases(
        policy(constraint("deliveryChannel", "isNoneOf", ["download"])),
        [{"channel": "api"}],
        [{"channel": "download"}],
    )


def test_industry_codes_nest_by_prefix():
    cases(
        policy(constraint("industry", "isA", "I")),
        [{"industry": "I"}, {"industry": "I65"}, {"industry": "I6510"}],
        [{"industry": "M73"}, {}],
    )
    cases(
        policy(constraint("industry", "eq", "I65")), [{"industry": "I65"}], [{"industry": "I651"}]
    )
    cases(
        policy(constraint("industry", "isAnyOf", ["I65", "M"])),
        [{"industry": "I651"}, {"industry": "M7310"}],
        [{"industry": "C13"}],
    )
    cases(
        policy(constraint("industry", "isNoneOf", ["K"])),
        [{"industry": "I65"}],
        [{"industry": "K70"}],
    )
    cases(policy(constraint("industry", "neq", "K")), [{"industry": "I65"}], [{"industry": "K"}])


def test_pay_amount_in_fen_against_yuan():
    cases(
        policy(constraint("payAmount", "gteq", "500.00", unit="CNY")),
        [{"pay_amount": 50000}, {"pay_amount": 60000}],
        [{"pay_amount": 49999}, {}],
    )
    cases(
        policy(constraint("payAmount", "eq", "12.5")),
        [{"pay_amount": 1250}],
        [{"pay_amount": 1251}],
    )
    cases(policy(constraint("payAmount", "neq", 0)), [{"pay_amount": 1}], [{"pay_amount": 0}])
    cases(policy(constraint("payAmount", "lt", "1")), [{"pay_amount": 99}], [{"pay_amount": 100}])
    cases(
        policy(constraint("payAmount", "lteq", "1")), [{"pay_amount": 100}], [{"pay_amount": 101}]
    )
    cases(policy(constraint("payAmount", "gt", "1")), [{"pay_amount": 101}], [{"pay_amount": 100}])


def test_fields_as_sets():
    cases(
        policy(constraint("df:fields", "isPartOf", ["a", "b"])),
        [{"fields": ["a"]}, {"fields": ["a", "b"]}, {"fields": []}],
        [{"fields": ["a", "c"]}, {}],
    )
    cases(
        policy(constraint("df:fields", "isAnyOf", ["a", "b"])),
        [{"fields": ["b"]}],
        [{"fields": ["z"]}],
    )
    cases(
        policy(constraint("df:fields", "isAllOf", ["a", "b"])),
        [{"fields": ["a", "b", "c"]}],
        [{"fields": ["a"]}],
    )
    cases(
        policy(constraint("df:fields", "isNoneOf", ["id_number"])),
        [{"fields": ["a"]}],
        [{"fields": ["a", "id_number"]}],
    )
    cases(
        policy(constraint("df:fields", "eq", ["a", "b"])),
        [{"fields": ["b", "a"]}],
        [{"fields": ["a"]}],
    )


def test_logical_constraints():
    p = policy(
        {
            "or": [
                constraint("purpose", "eq", "research"),
                constraint("spatial", "isPartOf", "CN-GX"),
            ]
        }
    )
    cases(
        p,
        [{"purpose": "research"}, {"spatial": "CN-GX"}],
        [{"purpose": "marketing", "spatial": "VN"}, {"purpose": "marketing"}],
    )
    p = policy(
        {
            "xone": [
                constraint("deliveryChannel", "eq", "api"),
                constraint("purpose", "eq", "research"),
            ]
        }
    )
    cases(
        p,
        [{"channel": "api", "purpose": "marketing"}, {"channel": "sandbox", "purpose": "research"}],
        [{"channel": "api", "purpose": "research"}, {"channel": "api"}],
    )
    p = policy(
        {
            "and": [
                constraint("purpose", "eq", "research"),
                constraint("channel" if False else "deliveryChannel", "eq", "api"),
            ]
        }
    )
    cases(p, [{"purpose": "research", "channel": "api"}], [{"purpose": "research"}])


# --- actions, targets, parties ------------------------------------------------------------


def test_use_includes_the_usage_actions_but_not_transfer_or_reidentification():
    p = policy(action="use")
    for action in ("use", "read", "display", "distribute", "aggregate", "derive", "reproduce"):
        assert verdict(p, action=action) == "permit", action
    for action in ("transfer", "sell", "give", "df:reidentify", "df:onwardTransfer"):
        assert verdict(p, action=action) == "deny", action
    assert verdict(policy(action="read"), action="use") == "deny"
    assert verdict(policy(action="transfer"), action="sell") == "permit"
    assert verdict(policy(action="df:reidentify"), action="df:reidentify") == "permit"


def test_target_and_assignee_must_match():
    p = policy(assignee=PARTY)
    assert verdict(p, assignee=PARTY) == "permit"
    assert verdict(p, assignee="urn:other") == "deny"
    assert verdict(p) == "deny"  # no assignee given
    assert verdict(p, assignee=PARTY, target="urn:df:asset:2") == "deny"


def test_onward_transfer_prohibition_covers_distribute_transfer_sell_give():
    p = policy(action="use", prohibitions=[{"target": ASSET, "action": "df:onwardTransfer"}])
    assert verdict(p, action="read") == "permit"
    for action in ("distribute", "df:onwardTransfer"):
        assert verdict(p, action=action) == "deny", action
    # A request to 'use' in general is permitted; the prohibition stays a term of the grant and
    # refuses the onward transfer when that is what is requested.
    assert verdict(p, action="use") == "permit"
    # A prohibition of 'use' covers every action, as a permission of 'use' does.
    banned = policy(action="use", prohibitions=[{"target": ASSET, "action": "use"}])
    for action in ("read", "distribute", "use"):
        assert verdict(banned, action=action) == "deny", action


def test_a_prohibition_applies_when_the_request_is_silent():
    p = policy(
        prohibitions=[
            {
                "target": ASSET,
                "action": "use",
                "constraint": [constraint("purpose", "eq", "marketing")],
            }
        ]
    )
    assert verdict(p, purpose="research") == "permit"
    decision = decide(p, parse_request({"action": "read", "target": ASSET}))
    assert decision.decision == "deny"
    assert "POL-PROHIBITION" in decision.rules
    assert "POL-MISSING-OPERAND" in decision.rules


def _ban(*constraints: dict[str, object]) -> Policy:
    return policy(
        prohibitions=[{"target": ASSET, "action": "use", "constraint": list(constraints)}]
    )


def test_a_field_ban_covers_any_request_that_touches_a_banned_field():
    for operator in ("isAnyOf", "isPartOf", "eq"):
        p = _ban(constraint("df:fields", operator, ["id_number", "phone"]))
        assert verdict(p, fields=["district", "usage_kwh"]) == "permit", operator
        # One banned field among permitted ones is enough: the ban is not evaded by company.
        assert verdict(p, fields=["district", "phone"]) == "deny", operator
        assert verdict(p, fields=["id_number", "phone"]) == "deny", operator
    decision = decide(
        _ban(constraint("df:fields", "isAnyOf", ["id_number", "phone"])),
        parse_request({"action": "read", "target": ASSET, "fields": ["district", "phone"]}),
    )
    assert any("include fields it names (phone)" in r.en for r in decision.reasons)
    assert any("包含以下任一字段" in r.zh for r in decision.reasons)
    # isAllOf bans the combination: each field alone is fine, both together are not.
    combined = _ban(constraint("df:fields", "isAllOf", ["birth_date", "postcode"]))
    assert verdict(combined, fields=["birth_date", "usage_kwh"]) == "permit"
    assert verdict(combined, fields=["birth_date", "postcode", "usage_kwh"]) == "deny"


def test_a_broader_place_or_purpose_cannot_escape_a_narrower_ban():
    in_nanning = _ban(constraint("spatial", "eq", "450100"))
    assert verdict(in_nanning, spatial="450200") == "permit"
    # Guangxi contains Nanning: the request might be there, so the ban applies.
    for place in ("CN-GX", "CN"):
        decision = decide(
            in_nanning, parse_request({"action": "read", "target": ASSET, "spatial": place})
        )
        assert decision.decision == "deny", place
        assert "POL-MISSING-OPERAND" in decision.rules
        assert any("broader than" in r.en and place in r.en for r in decision.reasons)
        assert any("更宽" in r.zh for r in decision.reasons)
    to_hanoi = _ban(constraint("spatial", "isAnyOf", ["VN-HN"]))
    assert verdict(to_hanoi, spatial="TH") == "permit"
    assert verdict(to_hanoi, spatial="VN") == "deny"
    marketing = _ban(constraint("purpose", "eq", "marketing"))
    assert verdict(marketing, purpose="research") == "permit"
    assert verdict(marketing, purpose="industry") == "deny"
    # And a broader value never satisfies a permission that names a narrower one.
    research_only = policy(constraint("purpose", "isA", "research"))
    assert verdict(research_only, purpose="public_interest") == "deny"
    outside_guangxi = policy(constraint("spatial", "isNoneOf", ["CN-GX"]))
    assert verdict(outside_guangxi, spatial="CN-GD") == "permit"
    assert verdict(outside_guangxi, spatial="CN") == "deny"


# --- decisions a person reads ---------------------------------------------------------------


def test_deny_reasons_name_the_value_and_what_is_permitted_in_both_languages():
    p = policy(constraint("purpose", "isAnyOf", ["research", "public_welfare"]))
    decision = decide(p, parse_request({"action": "read", "target": ASSET, "purpose": "marketing"}))
    en = decision.as_dict("en")
    assert en["decision"] == "deny"
    assert any(
        "the purpose 'marketing' is not one of the permitted purposes: research, public_welfare"
        in text
        for text in en["reasons"]
    )
    zh = decision.as_dict("zh")
    assert any("marketing" in t and "使用目的" in t for t in zh["reasons"])
    assert en["rules"] == ["POL-PURPOSE", "POL-DENY-DEFAULT"]
    assert en["duties"] == []
    ids = {ref.id for ref in load_policy_rules().refs.values()}
    assert all(reason.rule in ids for reason in decision.reasons)


def test_missing_operand_is_said_in_the_reason():
    p = policy(constraint("dateTime", "lt", "2027-01-01T00:00:00+08:00"))
    decision = decide(p, {"action": "read", "target": ASSET})
    assert decision.decision == "deny"
    assert any("does not state the time" in r.en for r in decision.reasons)
    assert any("请求未提供" in r.zh for r in decision.reasons)


def test_no_permission_for_the_action_is_said():
    decision = decide(policy(action="read"), {"action": "sell", "target": ASSET})
    assert decision.as_dict()["rules"] == ["POL-ACTION", "POL-DENY-DEFAULT"]
    assert "sell" in decision.reasons[0].en


def test_permit_carries_duties_obligations_limits_and_rules():
    p = policy(
        constraint("df:minGroupSize", "gteq", 10),
        constraint("df:epsilon", "lteq", "1.0"),
        constraint("purpose", "eq", "research"),
        action="aggregate",
        duties=[{"action": "attribute"}, {"action": "df:outputReview"}],
        obligation=[
            {"action": "inform", "assignee": PARTY},
            {"action": "delete", "assignee": "urn:someone-else"},
        ],
    )
    decision = decide(
        p, {"action": "aggregate", "target": ASSET, "assignee": PARTY, "purpose": "research"}
    )
    out = decision.as_dict()
    assert out["decision"] == "permit"
    assert out["duties"] == ["attribute", "df:outputReview", "inform"]
    assert out["limits"] == [
        {"operand": "df:minGroupSize", "operator": "gteq", "value": 10},
        {"operand": "df:epsilon", "operator": "lteq", "value": "1.0"},
    ]
    assert out["rules"] == [
        "POL-PERMISSION",
        "POL-ACTION",
        "POL-TARGET",
        "POL-PURPOSE",
        "POL-DUTY",
        "POL-OUTPUT-LIMITS",
    ]
    assert decision.reasons[0].rule == "POL-PERMISSION"
    assert "research" in decision.reasons[1].zh


def test_the_first_applicable_permission_is_applied():
    from datafactor.policy import parse_policy

    p = parse_policy(
        {
            "@context": "http://www.w3.org/ns/odrl.jsonld",
            "uid": "urn:p",
            "permission": [
                {
                    "uid": "urn:paid",
                    "target": ASSET,
                    "action": "use",
                    "constraint": [constraint("purpose", "isA", "industry")],
                    "duty": [{"action": "compensate"}],
                },
                {
                    "uid": "urn:free",
                    "target": ASSET,
                    "action": "use",
                    "constraint": [constraint("purpose", "isA", "public_interest")],
                },
            ],
        }
    )
    paid = decide(p, {"action": "use", "target": ASSET, "purpose": "marketing"})
    free = decide(p, {"action": "use", "target": ASSET, "purpose": "research"})
    assert (paid.permission, paid.as_dict()["duties"]) == ("urn:paid", ["compensate"])
    assert (free.permission, free.as_dict()["duties"]) == ("urn:free", [])


def test_compiled_and_direct_decisions_agree():
    p = policy(constraint("purpose", "eq", "research"))
    compiled = compile_policy(p)
    assert isinstance(compiled, CompiledPolicy)
    for purpose in ("research", "marketing"):
        request = parse_request({"action": "use", "target": ASSET, "purpose": purpose})
        assert compiled.decide(request).as_dict() == decide(p, request).as_dict()
        assert decide(compiled, request).as_dict("zh") == decide(p, request).as_dict("zh")


@pytest.mark.parametrize("locale", ["en", "zh", "zh_CN"])
def test_every_reason_has_text_in_every_locale(locale):
    p = policy(constraint("count", "lteq", 3), constraint("spatial", "isPartOf", "CN"))
    for request in (
        {"action": "use", "target": ASSET, "count_so_far": 1, "spatial": "CN-GX"},
        {"action": "use", "target": ASSET, "count_so_far": 5},
    ):
        assert all(text for text in decide(p, request).as_dict(locale)["reasons"])
