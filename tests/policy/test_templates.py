"""The four built-in templates and the form-based editor: each policy parses, round-trips, and
decides the requests its title promises."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from datafactor.errors import InvalidInput, NotFound
from datafactor.policy.editor import (
    EditorValues,
    build_document,
    request_from_form,
    values_from_document,
    values_from_form,
)
from datafactor.policy.engine import decide
from datafactor.policy.errors import PolicyError
from datafactor.policy.odrl import parse_policy
from datafactor.policy.templates import TEMPLATE_DIR, TEMPLATES, get_template, load_template

AT = "2026-12-01T10:00:00+08:00"


def test_every_template_file_is_listed_parses_and_round_trips():
    files = {p.stem for p in TEMPLATE_DIR.glob("*.jsonld")}
    assert (
        files
        == set(TEMPLATES)
        == {
            "public-welfare",
            "industry-paid",
            "sandbox-aggregates",
            "asean-cross-border",
        }
    )
    for name in TEMPLATES:
        policy = load_template(name)
        assert parse_policy(policy.to_jsonld()) == policy
        assert parse_policy(json.loads((TEMPLATE_DIR / f"{name}.jsonld").read_text())) == policy


def test_documents_are_copies_and_unknown_names_are_refused():
    doc = get_template("public-welfare").document()
    doc["permission"] = []
    assert get_template("public-welfare").document()["permission"]
    with pytest.raises(NotFound) as refused:
        load_template("everything-free")
    assert "industry-paid" in str(refused.value)


def ask(name, **request):
    return decide(load_template(name), {"action": "read", "time": AT, **request})


def test_public_welfare_is_free_for_research_by_api_but_not_for_business_or_download():
    ok = ask("public-welfare", purpose="research", channel="api")
    assert ok.decision == "permit"
    assert [d.action.name for d in ok.duties] == ["attribute"]
    assert ask("public-welfare", purpose="marketing", channel="api").decision == "deny"
    assert ask("public-welfare", purpose="research", channel="download").decision == "deny"
    late = ask(
        "public-welfare", purpose="research", channel="api", time="2028-01-01T00:00:00+08:00"
    )
    assert late.decision == "deny"
    assert (
        ask("public-welfare", purpose="research", channel="api", action="distribute").decision
        == "deny"
    )
    # 'use' in general is what the template grants; onward transfer stays forbidden.
    assert ask("public-welfare", purpose="research", channel="api", action="use").decision == (
        "permit"
    )


def test_industry_paid_use_needs_the_fee_and_owes_compensation():
    base = {"purpose": "product_development", "channel": "sandbox", "count_so_far": 0,
            "fields": ["region", "month"]}  # fmt: skip
    paid = ask("industry-paid", pay_amount=50_000, **base)
    assert paid.decision == "permit"
    assert "compensate" in [d.action.name for d in paid.duties]
    assert ask("industry-paid", pay_amount=49_999, **base).decision == "deny"
    assert (
        ask("industry-paid", pay_amount=50_000, **{**base, "count_so_far": 1000}).decision == "deny"
    )
    extra = {**base, "fields": ["region", "id_number"]}
    assert ask("industry-paid", pay_amount=50_000, **extra).decision == "deny"


def test_sandbox_aggregates_only_in_the_sandbox_with_output_limits():
    ok = decide(
        load_template("sandbox-aggregates"),
        {"action": "aggregate", "channel": "sandbox", "time": AT},
    )
    assert ok.decision == "permit"
    assert [d.action.name for d in ok.duties] == ["df:outputReview"]
    limits = {limit.operand: limit.value for limit in ok.limits}
    assert limits == {"df:minGroupSize": 10, "df:epsilon": Decimal("1.0")}
    api = decide(
        load_template("sandbox-aggregates"), {"action": "aggregate", "channel": "api", "time": AT}
    )
    assert api.decision == "deny"
    reid = decide(
        load_template("sandbox-aggregates"),
        {"action": "df:reidentify", "channel": "sandbox", "time": AT},
    )
    assert reid.decision == "deny"


def test_asean_cross_border_use_inside_the_region_and_never_onward():
    base = {"purpose": "trade_logistics", "channel": "api"}
    assert ask("asean-cross-border", spatial="VN", **base).decision == "permit"
    assert ask("asean-cross-border", spatial="CN-GX", **base).decision == "permit"
    assert ask("asean-cross-border", spatial="US", **base).decision == "deny"
    assert ask("asean-cross-border", spatial="VN", action="distribute", **base).decision == "deny"


# --- the editor -------------------------------------------------------------------------------


FORM = {
    "purposes": "research\npublic_welfare",
    "channels": "api\nsandbox",
    "regions": "CN-GX",
    "term_end": "2027-06-30",
    "max_uses": "20",
    "fields": "region, month，industry_code",
    "pay_amount": "12.50",
    "min_group_size": "5",
    "epsilon": "0.5",
    "prohibit_download": "1",
    "prohibit_onward_transfer": "1",
    "prohibit_reidentification": "1",
}


def test_the_editor_writes_a_policy_the_parser_accepts_and_reads_it_back():
    values = values_from_form(FORM)
    assert values.fields == ["region", "month", "industry_code"]
    assert values.pay_amount == Decimal("12.50")
    document = build_document(values)
    policy = parse_policy(document)
    assert len(policy.permissions) == 1 and len(policy.prohibitions) == 3
    assert values_from_document(document) == values
    request = request_from_form({
        "action": "read", "purpose": "research", "channel": "api", "spatial": "CN-GX",
        "time": "2027-01-05T09:00", "count_so_far": "3", "request_pay_amount": "12.50",
        "request_fields": "region, month",
    })  # fmt: skip
    assert request["pay_amount"] == 1250
    assert request["time"] == "2027-01-05T09:00:00+08:00"
    assert decide(policy, request).decision == "permit"
    assert decide(policy, {**request, "channel": "download"}).decision == "deny"
    assert decide(policy, {**request, "count_so_far": 20}).decision == "deny"


def test_the_templates_read_back_into_the_editor():
    paid = values_from_document(get_template("industry-paid").document())
    assert paid.max_uses == 1000 and paid.pay_amount == Decimal("500.00")
    assert "product_development" in paid.purposes and "research" not in paid.purposes
    assert paid.prohibit_download and paid.prohibit_onward_transfer
    sandbox = values_from_document(get_template("sandbox-aggregates").document())
    assert (sandbox.min_group_size, sandbox.epsilon) == (10, Decimal("1.0"))
    assert sandbox.term_end == date(2027, 12, 31)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_uses", "0"), ("max_uses", "ten"), ("pay_amount", "1.234"), ("epsilon", "-1"),
     ("term_end", "31/12/2027"), ("min_group_size", "1")],
)  # fmt: skip
def test_the_editor_refuses_values_it_cannot_read_naming_the_field(field, value):
    with pytest.raises(InvalidInput) as refused:
        values_from_form({**FORM, field: value})
    assert refused.value.field == field


def test_an_empty_editor_form_builds_a_policy_that_permits_use_unconditionally():
    policy = parse_policy(build_document(EditorValues()))
    assert decide(policy, {"action": "use"}).decision == "permit"
    assert decide(policy, {"action": "df:reidentify"}).decision == "deny"


def test_contradictions_from_the_editor_are_refused_by_the_parser():
    document = build_document(values_from_form({**FORM, "min_group_size": "2"}))
    document["permission"][0]["constraint"].append(
        {"leftOperand": "count", "operator": "lt", "rightOperand": 0}
    )
    with pytest.raises(PolicyError):
        parse_policy(document)
