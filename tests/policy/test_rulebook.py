"""rules/policy.yaml: every rule the code applies is there, with zh/en titles and a source; a
bad edit is refused at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from datafactor.policy import load_policy_rules
from datafactor.policy.rulebook import RULE_KEYS

PACKAGED = Path(load_policy_rules.__code__.co_filename).parent / "rules" / "policy.yaml"


def test_every_rule_has_an_id_titles_and_a_source():
    rules = load_policy_rules()
    assert set(RULE_KEYS) <= set(rules.refs)
    for ref in rules.refs.values():
        assert ref.id.startswith("POL-")
        assert ref.title["zh"] and ref.title["en"]
        assert ref.source
        assert rules.by_id(ref.id) is ref
        assert ref.version == rules.version


def test_purposes_nest():
    rules = load_policy_rules()
    assert rules.purposes_of("public_welfare") == {"public_welfare", "public_interest"}
    assert rules.purposes_of("unlisted") == {"unlisted"}
    assert rules.purposes["marketing"]["zh"] == "营销推广"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("id: POL-COUNT", "id: POL-PURPOSE"), "duplicate"),
        (("  deny_default:", "  deny_by_default:"), "missing"),
        (("parent: industry}", "parent: commerce}"), "unknown parent"),
        (("    verified: true", "    verified: yes please"), "verified"),
    ],
)
def test_bad_edits_are_refused_at_load_time(tmp_path, edit, message):
    text = PACKAGED.read_text(encoding="utf-8")
    assert edit[0] in text
    bad = tmp_path / "policy.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_policy_rules(bad)
