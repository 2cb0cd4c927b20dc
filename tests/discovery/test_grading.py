"""Grading under GB/T 43697-2024: thresholds, catalogues, impacts, reasons with rule ids in zh and en."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from datafactor.discovery import (
    ColumnFinding,
    Grade,
    GradeDecision,
    GradingMetadata,
    Impact,
    distinct_individuals,
    grade,
    load_grading_rules,
    load_pii_rules,
)
from datafactor.discovery.grading import GradeReason
from datafactor.errors import InvalidInput

RULES_DIR = Path(__file__).resolve().parents[2] / "src" / "datafactor" / "discovery" / "rules"


def finding(name: str, *types: str, distinct: int | None = None) -> ColumnFinding:
    """A column finding as the recognisers would report it for ``types``."""
    pii = load_pii_rules()
    identifying = any(pii[t].identifying for t in types)
    return ColumnFinding(
        name=name,
        types=types,
        match_ratio=1.0 if types else 0.0,
        confidence=0.99 if types else 0.0,
        sensitive=any(pii[t].sensitive for t in types),
        distinct_values=distinct if identifying else None,
        total=distinct or 100,
        non_empty=distinct or 100,
    )


def reason(decision: GradeDecision, rule: str) -> GradeReason:
    matches = [r for r in decision.reasons if r.rule == rule]
    assert matches, f"{rule} not among {decision.rules}"
    return matches[0]


# --- personal-information volume (network data security regulation) ------------------------------


def test_the_volume_threshold_comes_from_the_rule_file() -> None:
    rules = load_grading_rules()
    assert rules.pi_volume.id == "NDSR-28-pi-volume"
    assert rules.pi_volume_min_individuals == 10_000_000
    assert rules.pi_volume.verified


def test_one_person_short_of_ten_million_stays_general() -> None:
    decision = grade([finding("手机号", "cn_mobile", distinct=9_999_999)])
    assert decision.grade is Grade.GENERAL
    note = reason(decision, "NDSR-28-pi-volume")
    assert note.grade is None  # evaluated, did not raise the grade
    assert "9,999,999" in note.text("en")
    assert decision.rules[0] == "GBT43697-6.1-general"


def test_ten_million_individuals_make_the_data_set_important() -> None:
    decision = grade([finding("手机号", "cn_mobile", distinct=10_000_000)])
    assert decision.grade is Grade.IMPORTANT
    raised = reason(decision, "NDSR-28-pi-volume")
    assert raised.grade is Grade.IMPORTANT
    assert "10,000,000" in raised.text("en")
    assert decision.rules == ("GBT43697-6.6-highest", "NDSR-28-pi-volume")


def test_individuals_are_the_largest_identifying_column_not_the_sum() -> None:
    findings = [
        finding("身份证号", "cn_resident_id", distinct=6_000_000),
        finding("手机号", "cn_mobile", distinct=5_000_000),
        finding("姓名", "person_name"),  # not identifying: no count
        finding("备注"),
    ]
    assert distinct_individuals(findings) == 6_000_000
    assert grade(findings).grade is Grade.GENERAL
    assert distinct_individuals([finding("姓名", "person_name"), finding("x")]) is None


def test_an_estimated_distinct_count_never_exceeds_the_filled_cells() -> None:
    estimate = finding("手机号", "cn_mobile", distinct=200_592)
    capped = dataclasses.replace(estimate, non_empty=200_000, total=200_000)
    assert distinct_individuals([capped]) == 200_000


def test_a_declared_number_of_individuals_counts_when_larger() -> None:
    findings = [finding("手机号", "cn_mobile", distinct=1_000)]
    decision = grade(findings, GradingMetadata(individuals=12_000_000))
    assert decision.grade is Grade.IMPORTANT
    assert reason(decision, "NDSR-28-pi-volume").params["individuals"] == 12_000_000
    # A smaller declaration does not lower the count.
    low = grade([finding("m", "cn_mobile", distinct=10_000_000)], GradingMetadata(individuals=5))
    assert low.grade is Grade.IMPORTANT


def test_an_operator_rule_file_changes_the_threshold(tmp_path: Path) -> None:
    data = yaml.safe_load((RULES_DIR / "grading.yaml").read_text(encoding="utf-8"))
    data["rules"]["pi_volume"]["min_individuals"] = 500
    custom = tmp_path / "grading.yaml"
    custom.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rules = load_grading_rules(custom)
    findings = [finding("手机号", "cn_mobile", distinct=500)]
    assert grade(findings, rules=rules).grade is Grade.IMPORTANT
    assert grade(findings).grade is Grade.GENERAL


# --- sensitive personal information --------------------------------------------------------------


def test_sensitive_information_alone_keeps_the_grade_general_and_says_why() -> None:
    findings = [
        finding("身份证号", "cn_resident_id", distinct=300),
        finding("银行卡号", "bank_card", distinct=300),
        finding("手机号", "cn_mobile", distinct=300),
    ]
    decision = grade(findings)
    assert decision.grade is Grade.GENERAL
    assert decision.sensitive
    note = reason(decision, "PIPL-28-sensitive-pi")
    assert note.grade is None
    assert note.params["columns"] == "身份证号, 银行卡号"
    assert note.params["types"] == "cn_resident_id, bank_card"
    assert "does not make data important" in note.text("en")
    assert "第二十八条" in note.article
    assert not grade([finding("手机号", "cn_mobile", distinct=3)]).sensitive


# --- important-data catalogues -------------------------------------------------------------------


def test_financial_accounts_at_scale_match_the_finance_catalogue() -> None:
    cards = [finding("卡号", "bank_card", distinct=1_000_000)]
    decision = grade(cards, GradingMetadata(domain="finance"))
    assert decision.grade is Grade.IMPORTANT
    entry = reason(decision, "IMP-FIN-accounts-at-scale")
    assert entry.grade is Grade.IMPORTANT
    assert not entry.verified  # an example catalogue: an operator confirms it
    # One account fewer, another domain, or no card column: no match.
    smaller = grade(
        [finding("卡号", "bank_card", distinct=999_999)], GradingMetadata(domain="finance")
    )
    assert "IMP-FIN-accounts-at-scale" not in smaller.rules
    assert "IMP-FIN-accounts-at-scale" not in grade(cards, GradingMetadata(domain="health")).rules
    phones = [finding("手机号", "cn_mobile", distinct=2_000_000)]
    assert grade(phones, GradingMetadata(domain="finance")).grade is Grade.GENERAL


def test_automotive_personal_information_of_more_than_100000_people() -> None:
    meta = GradingMetadata(domain="automotive")
    assert grade([finding("车牌", "license_plate", distinct=100_000)], meta).grade is Grade.GENERAL
    decision = grade([finding("车牌", "license_plate", distinct=100_001)], meta)
    assert decision.grade is Grade.IMPORTANT
    assert "IMP-AUTO-pi-100k" in decision.rules


@pytest.mark.parametrize(
    ("precision_m", "expected"),
    [(0.3, Grade.IMPORTANT), (0.5, Grade.IMPORTANT), (2.0, Grade.GENERAL), (None, Grade.GENERAL)],
)
def test_geographic_information_at_high_precision(
    precision_m: float | None, expected: Grade
) -> None:
    meta = GradingMetadata(
        domain="natural_resources",
        categories=frozenset({"remote_sensing_imagery"}),
        precision_m=precision_m,
    )
    assert grade([], meta).grade is expected


@pytest.mark.parametrize(
    ("region", "expected", "rules"),
    [
        ("prefecture", Grade.GENERAL, set()),
        ("province", Grade.IMPORTANT, {"IMP-EN-grid-operation"}),
        ("national", Grade.CORE, {"IMP-EN-grid-operation", "CORE-EN-grid-national"}),
    ],
)
def test_power_grid_operation_data_by_region(region: str, expected: Grade, rules: set[str]) -> None:
    meta = GradingMetadata(domain="energy", categories=frozenset({"grid_operation"}), region=region)
    decision = grade([], meta)
    assert decision.grade is expected
    assert {r for r in decision.rules if "-EN-" in r} == rules


def test_a_core_catalogue_entry_makes_core_data_and_is_listed_first() -> None:
    meta = GradingMetadata(
        domain="natural_resources", categories=frozenset({"sensitive_area_geography"})
    )
    decision = grade([finding("手机号", "cn_mobile", distinct=10_000_000)], meta)
    assert decision.grade is Grade.CORE
    assert decision.rules[:3] == (
        "GBT43697-6.6-highest",
        "CORE-NR-sensitive-area-geo",
        "NDSR-28-pi-volume",
    )


def test_catalogue_entries_need_their_domain() -> None:
    meta = GradingMetadata(categories=frozenset({"grid_operation"}), region="national")
    assert grade([], meta).grade is Grade.GENERAL


# --- impact analysis (6.4, 6.5) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("impact", "degree", "expected"),
    [
        ("national_security", "especially_serious", Grade.CORE),
        ("national_security", "serious", Grade.CORE),
        ("national_security", "general", Grade.IMPORTANT),
        ("economy", "especially_serious", Grade.CORE),
        ("economy", "serious", Grade.IMPORTANT),
        ("economy", "general", Grade.GENERAL),
        ("social_order", "serious", Grade.IMPORTANT),
        ("public_interest", "especially_serious", Grade.CORE),
        ("public_interest", "general", Grade.GENERAL),
        ("organisation", "especially_serious", Grade.GENERAL),
        ("individual", "especially_serious", Grade.GENERAL),
    ],
)
def test_impact_object_and_degree_map_to_a_grade(impact: str, degree: str, expected: Grade) -> None:
    decision = grade([], GradingMetadata(impacts=(Impact(impact, degree),)))
    assert decision.grade is expected
    assert f"GBT43697-6.5-impact/{impact}/{degree}" in decision.rules


def test_the_data_set_takes_its_highest_item_grade() -> None:
    impacts = (Impact("economy", "serious"), Impact("national_security", "serious"))
    decision = grade([], GradingMetadata(impacts=impacts))
    assert decision.grade is Grade.CORE
    assert [r.grade for r in decision.reasons] == [Grade.CORE, Grade.CORE, Grade.IMPORTANT]
    assert decision.reasons[0].rule == "GBT43697-6.6-highest"


# --- reasons -------------------------------------------------------------------------------------


def test_every_reason_has_a_rule_id_a_source_and_both_languages() -> None:
    meta = GradingMetadata(
        domain="health",
        categories=frozenset({"population_health"}),
        impacts=(Impact("public_interest", "serious"),),
    )
    findings = [finding("身份证号", "cn_resident_id", distinct=20)]
    decision = grade(findings, meta)
    assert decision.grade is Grade.IMPORTANT
    for item in decision.as_dict()["grade_reasons"]:
        assert item["rule"] in decision.rules
        assert item["source"] and item["article"] and item["version"]
        assert item["en"] and item["zh"]
        assert "{" not in item["en"] and "{" not in item["zh"]
    head = decision.reasons[0]
    assert head.text("en").endswith("important data.")
    assert "重要数据" in head.text("zh_CN")
    entry = reason(decision, "IMP-HL-population-health")
    assert "传染病监测" in entry.text("zh_CN")
    assert "infectious disease surveillance" in entry.text("en")


def test_a_decision_survives_json() -> None:
    meta = GradingMetadata(domain="finance", individuals=1_000_000)
    decision = grade([finding("卡号", "bank_card", distinct=10)], meta)
    back = GradeDecision.from_dict(json.loads(json.dumps(decision.as_dict())))
    assert back == decision
    assert back.as_dict() == decision.as_dict()
    assert GradingMetadata.from_dict(json.loads(json.dumps(meta.as_dict()))) == meta


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [
        GradingMetadata(domain="banking"),
        GradingMetadata(domain="energy", categories=frozenset({"grid_operations"})),
        GradingMetadata(region="city"),
        GradingMetadata(impacts=(Impact("economy", "catastrophic"),)),
        GradingMetadata(precision_m=0),
        GradingMetadata(individuals=-1),
    ],
)
def test_unknown_or_impossible_metadata_is_refused(meta: GradingMetadata) -> None:
    with pytest.raises(InvalidInput):
        grade([], meta)


def test_unknown_domain_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="finance") as caught:
        grade([], GradingMetadata(domain="banking"))
    assert caught.value.params["value"] == "banking"


def test_every_shipped_rule_has_its_source_article_and_mark() -> None:
    rules = load_grading_rules()
    refs = [rules.default, rules.highest, rules.pi_volume, rules.sensitive_pi, rules.impact]
    refs += [e.rule for e in rules.catalogue]
    for ref in refs:
        assert ref.id and ref.source and ref.article and ref.version
        assert isinstance(ref.verified, bool)
    assert len(rules.catalogue) >= 10
    assert {e.grade for e in rules.catalogue} == {Grade.IMPORTANT, Grade.CORE}
    for entry in rules.catalogue:
        assert entry.description["zh"] and entry.description["en"]
    for path in (RULES_DIR / "important_data").glob("*.yaml"):
        assert yaml.safe_load(path.read_text(encoding="utf-8"))["version"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"when": {}}, "at least one condition"),
        ({"when": {"min_people": 5}}, "unknown conditions"),
        ({"grade": "general"}, "not allowed"),
        ({"when": {"entity_types": ["phone"]}}, "unknown entity types"),
        ({"when": {"min_region": "city"}}, "unknown region"),
        ({"description": {"zh": "只有中文"}}, "needs zh and en"),
        ({"source": None, "verified": "yes"}, "verified must be true or false"),
    ],
)
def test_a_broken_catalogue_is_refused_when_loaded(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    entry: dict[str, object] = {
        "id": "IMP-TEST",
        "description": {"zh": "测试", "en": "test"},
        "when": {"categories": ["x"]},
        "grade": "important",
        "source": "test",
        "article": "1",
        "verified": False,
    }
    entry.update(change)
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"version": "1", "domain": "finance", "entries": [entry]}), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=message):
        load_grading_rules(catalogue_dir=tmp_path)


def test_rule_ids_are_unique(tmp_path: Path) -> None:
    entry = {
        "id": "NDSR-28-pi-volume",
        "description": {"zh": "测试", "en": "test"},
        "when": {"categories": ["x"]},
        "grade": "important",
        "source": "test",
        "article": "1",
        "verified": False,
    }
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"version": "1", "domain": "any", "entries": [entry]}), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="duplicate rule ids"):
        load_grading_rules(catalogue_dir=tmp_path)
