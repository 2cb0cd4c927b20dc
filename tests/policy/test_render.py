"""Plain-language rendering: one sentence per rule, in Chinese and English, every term shown."""

from __future__ import annotations

import pytest

from datafactor.policy.odrl import parse_policy
from datafactor.policy.render import describe
from datafactor.policy.templates import TEMPLATES, load_template

CTX = ["http://www.w3.org/ns/odrl.jsonld", {"df": "https://datafactor.gx.cn/odrl/profile#"}]


def policy(**rules):
    return parse_policy({"@context": CTX, "uid": "https://example.org/p/1", **rules})


def test_a_permission_reads_as_one_sentence_with_its_conditions_and_duties():
    p = policy(
        permission=[
            {
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "purpose",
                        "operator": "isAnyOf",
                        "rightOperand": ["research", "public_welfare"],
                    },
                    {
                        "leftOperand": "dateTime",
                        "operator": "lteq",
                        "rightOperand": {"@value": "2027-12-31", "@type": "xsd:date"},
                    },
                ],
                "duty": [{"action": "attribute"}],
            }
        ]
    )
    zh = describe(p, "zh_CN")
    en = describe(p, "en")
    assert zh == ["允许 使用，使用目的为科学研究或公益事业，期限至 2027-12-31，须 注明来源。"]
    assert en == [
        "Permitted: use for research or public welfare, until 2027-12-31; "
        "the grantee must attribute the source."
    ]


def test_one_sentence_per_rule_permissions_then_prohibitions_then_obligations():
    p = policy(
        permission=[{"action": "use"}, {"action": "aggregate"}],
        prohibition=[{"action": "df:onwardTransfer"}, {"action": "df:reidentify"}],
        obligation=[{"action": "inform", "assignee": "https://example.org/party/a"}],
    )
    en = describe(p, "en")
    assert len(en) == 5
    assert en[0].startswith("Permitted: use")
    assert en[1].startswith("Permitted: aggregate")
    assert en[2] == "Prohibited: onward transfer to a third party."
    assert en[3] == "Prohibited: re-identify people."
    assert en[4].startswith("Required: inform")
    zh = describe(p, "zh")
    assert zh[2] == "禁止 向第三方再提供。"
    assert zh[4].startswith("须 告知")


def test_the_paid_use_template_names_its_fee_uses_and_fields():
    zh, *_ = describe(load_template("industry-paid"), "zh_CN")
    assert "属于产业发展类" in zh
    assert "最多使用 1,000 次" in zh
    assert "仅限字段 region、month" in zh
    assert "须 支付对价 500.00 元" in zh
    en, *_ = describe(load_template("industry-paid"), "en")
    assert "at most 1,000 uses" in en
    assert "the grantee must pay CNY 500.00" in en


def test_sandbox_limits_and_places_are_spelled_out():
    en = describe(load_template("sandbox-aggregates"), "en")
    assert "groups of at least 10 people" in en[0]
    assert "privacy budget ε of at most 1.0" in en[0]
    assert "Prohibited: use when delivered by file download." in en
    zh = describe(load_template("asean-cross-border"), "zh_CN")
    assert "越南 (VN)" in zh[0] and "中国 (CN)" in zh[0]


def test_any_other_constraint_falls_back_to_operand_operator_value():
    p = policy(
        permission=[
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "industry", "operator": "isNoneOf", "rightOperand": ["K"]},
                    {
                        "or": [
                            {"leftOperand": "spatial", "operator": "eq", "rightOperand": "VN"},
                            {"leftOperand": "spatial", "operator": "eq", "rightOperand": "TH"},
                        ]
                    },
                ],
            }
        ]
    )
    en = describe(p, "en")[0]
    assert "the industry is none of K" in en
    assert "(in Vietnam (VN) or in Thailand (TH))" in en
    zh = describe(p, "zh")[0]
    assert "行业不为其中任何一个K" in zh


def test_a_policy_without_permissions_says_it_permits_nothing():
    p = policy(prohibition=[{"action": "use"}])
    assert describe(p, "en")[-1].startswith("This policy has no permission")
    assert "默认拒绝" in describe(p, "zh_CN")[-1]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_renders_in_both_languages(name):
    p = load_template(name)
    rules = len(p.permissions) + len(p.prohibitions) + len(p.obligations)
    assert len(describe(p, "zh_CN")) == rules == len(describe(p, "en"))
