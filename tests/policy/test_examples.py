"""The W3C ODRL Information Model 2.2 examples (tests/policy/examples, numbered as in the
Recommendation of 2018-02-15): those using supported terms round-trip and decide as the
Recommendation describes; those using terms we do not support are refused, naming the term."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datafactor.policy import PolicyError, decide, parse_policy

EXAMPLES = Path(__file__).parent / "examples"
SUPPORTED = sorted(EXAMPLES.glob("example*.json"))
REFUSED = sorted(EXAMPLES.glob("refused*.json"))


def load(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def test_the_examples_are_there():
    assert len(SUPPORTED) == 17
    assert len(REFUSED) == 4


@pytest.mark.parametrize("path", SUPPORTED, ids=lambda p: p.stem)
def test_supported_examples_round_trip(path):
    policy = parse_policy(json.loads(path.read_text(encoding="utf-8")))
    exported = json.loads(json.dumps(policy.to_jsonld()))
    assert parse_policy(exported) == policy
    assert exported["uid"] == policy.uid


@pytest.mark.parametrize(
    ("name", "term"),
    [
        ("refused05.json", "summary"),
        ("refused14.json", "resolution"),
        ("refused19.json", "perm"),
        ("refused22.json", "event"),
    ],
)
def test_examples_with_unsupported_terms_are_refused_naming_the_term(name, term):
    with pytest.raises(PolicyError) as refused:
        parse_policy(load(name))
    assert refused.value.term == term


def test_example_26_expands_to_the_atomic_rules_of_example_27():
    assert parse_policy(load("example26.json")) == parse_policy(load("example27.json"))


def test_example_28_compact_policy_expands_to_example_29():
    assert parse_policy(load("example28.json")) == parse_policy(load("example29.json"))


def test_example_13_distribute_until_2018():
    policy = parse_policy(load("example13.json"))
    asked = {"action": "distribute", "target": "http://example.com/document:1234"}
    assert decide(policy, {**asked, "time": "2017-12-31T23:59:00+08:00"}).decision == "permit"
    assert decide(policy, {**asked, "time": "2018-01-01T00:00:00+08:00"}).decision == "deny"
    assert decide(policy, {**asked, "action": "sell", "time": "2017-06-01T00:00:00Z"}).decision == (
        "deny"
    )


def test_example_18_play_until_the_end_of_2017():
    policy = parse_policy(load("example18.json"))
    asked = {"action": "play", "target": "http://example.com/game:9090"}
    assert decide(policy, {**asked, "time": "2017-12-31T23:00:00+08:00"}).decision == "permit"
    assert decide(policy, {**asked, "time": "2018-01-01T00:00:00+08:00"}).decision == "deny"


def test_example_3_agreement_is_for_its_assignee_only():
    policy = parse_policy(load("example03.json"))
    asked = {"action": "play", "target": "http://example.com/asset:9898.movie"}
    billie = "http://example.com/party:person:billie"
    assert decide(policy, {**asked, "assignee": billie}).decision == "permit"
    assert decide(policy, {**asked, "assignee": "http://example.com/other"}).decision == "deny"


def test_example_23_permit_carries_the_attribute_duty():
    policy = parse_policy(load("example23.json"))
    decision = decide(
        policy,
        {
            "action": "distribute",
            "target": "http://example.com/data:77",
            "assignee": "http://example.com/person:88",
        },
    )
    assert decision.as_dict()["duties"] == ["attribute"]
    duty = decision.duties[0]
    assert duty.parties == (("attributedParty", "http://australia.gov.au/"),)
    assert duty.consequences[0].action.name == "acceptTracking"


def test_example_24_prohibits_indexing():
    policy = parse_policy(load("example24.json"))
    decision = decide(
        policy,
        {
            "action": "index",
            "target": "http://example.com/data:77",
            "assignee": "http://example.com/org:99",
        },
    )
    assert decision.decision == "deny"
    assert "POL-PROHIBITION" in decision.rules
