"""The formal review's automatic checks: each refusal rule with its rule id and reason, returns
for what can be fixed, waiting for the scan, and the choice of track."""

from __future__ import annotations

import dataclasses
import json
from datetime import date

import pytest

from datafactor.registry import (
    ApplicationFacts,
    AssetKind,
    DataClass,
    Decision,
    Effect,
    Grounds,
    HoldingRight,
    ObjectionNotAdmissible,
    Origin,
    Outcome,
    RegistrationType,
    RightsBook,
    Scope,
    Term,
    Track,
    check_grounds,
    formal_checks,
    grant_holding,
    license,
    pledge,
)

ON = date(2026, 3, 2)
FP = "a" * 64
RESOURCE_METADATA = frozenset(
    {
        "name_zh",
        "description",
        "industry_domain",
        "collection_method",
        "update_frequency",
        "time_coverage",
        "region",
        "volume",
        "field_schema",
    }
)


def initial(**changes: object) -> ApplicationFacts:
    """A clean initial registration of an enterprise's data resource."""
    facts = ApplicationFacts(
        registration_type=RegistrationType.INITIAL,
        applicant_id="alice",
        asset_id="R1",
        asset_kind=AssetKind.RESOURCE,
        data_class=DataClass.ENTERPRISE,
        asset_holder_id="alice",
        metadata_present=RESOURCE_METADATA,
        source_statement="Collected from our own meters under contract 2025-17.",
        grade="general",
        declared_fingerprint=FP,
        stored_fingerprint=f"sha256:{FP.upper()}",
        requested_scope=Scope(),
        requested_term=Term(date(2026, 1, 1)),
    )
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def a_book() -> RightsBook:
    book = RightsBook()
    book = grant_holding(
        book,
        right_id="H1",
        holder_id="alice",
        asset_id="R1",
        scope=Scope(),
        term=Term(date(2026, 1, 1), date(2028, 12, 31)),
        on=ON,
    ).apply(book)
    return book


def licence(**changes: object) -> ApplicationFacts:
    """A clean licence of H1 to bob (a_book)."""
    base: dict[str, object] = {
        "registration_type": RegistrationType.LICENCE,
        "right_id": "H1",
        "counterparty_id": "bob",
        "requested_scope": Scope(purposes={"research"}),
        "requested_term": Term(ON, date(2027, 3, 1)),
        "declared_fingerprint": None,
    }
    return initial(**(base | changes))


def rules_of(decision: Decision, effect: Effect) -> list[str]:
    return [r.rule for r in decision.reasons if r.effect is effect]


def test_a_clean_application_passes_on_the_standard_track() -> None:
    decision = formal_checks(initial(), on=ON)
    assert decision.outcome is Outcome.PASS
    assert decision.allowed
    assert decision.track is Track.STANDARD
    assert decision.texts() == ["Every automatic check passed."]
    for rule in (
        "REG-COMPLETE",
        "DSL-33-SOURCE-STATEMENT",
        "REG-SCAN-GRADE",
        "REG-REFUSE-CORE-DATA",
        "REG-REFUSE-RAW-RECORDS",
        "REG-FINGERPRINT",
        "REG-REFUSE-OPEN-DISPUTE",
        "REG-HOLDER",
    ):
        assert rule in decision.rules


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"grade": "core"}, "REG-REFUSE-CORE-DATA"),
        ({"source_statement": "  "}, "DSL-33-SOURCE-STATEMENT"),
        ({"source_statement": None}, "DSL-33-SOURCE-STATEMENT"),
        ({"open_disputes": ("D-7",)}, "REG-REFUSE-OPEN-DISPUTE"),
        ({"raw_single_records": True}, "REG-REFUSE-RAW-RECORDS"),
        ({"stored_fingerprint": "b" * 64}, "REG-FINGERPRINT"),
        ({"asset_holder_id": "carol"}, "REG-HOLDER"),
    ],
)
def test_each_refusal_rule_refuses_with_its_rule(changes: dict[str, object], rule: str) -> None:
    decision = formal_checks(initial(**changes), on=ON)
    assert decision.outcome is Outcome.REFUSE
    assert decision.refusing_rules == (rule,)
    reason = decision.reasons[0]
    assert reason.rule == rule and reason.effect is Effect.REFUSE
    assert reason.title["zh"] and reason.title["en"]
    assert reason.source and reason.article


def test_the_source_statement_reason_cites_article_33() -> None:
    decision = formal_checks(initial(source_statement=None), on=ON)
    reason = decision.reasons[0]
    assert "第三十三条" in reason.article
    assert "art. 33" in reason.text("en")
    assert reason.title["zh"] == "须提供数据来源说明"


def test_registering_data_you_do_not_hold_says_what_to_do() -> None:
    decision = formal_checks(initial(asset_holder_id="carol", applicant_id="mallory"), on=ON)
    text = decision.reasons[0].text("en")
    assert "held by party carol" in text
    assert "register a product built from it" in text


def test_a_second_claim_to_registered_data_is_refused_as_a_title_dispute() -> None:
    decision = formal_checks(
        initial(applicant_id="carol", asset_holder_id="carol"), book=a_book(), on=ON
    )
    assert decision.refusing_rules == ("REG-HOLDING-UNIQUE",)


def test_every_refusal_is_reported_not_just_the_first() -> None:
    decision = formal_checks(
        initial(grade="core", source_statement=None, raw_single_records=True), on=ON
    )
    assert set(decision.refusing_rules) == {
        "REG-REFUSE-CORE-DATA",
        "DSL-33-SOURCE-STATEMENT",
        "REG-REFUSE-RAW-RECORDS",
    }


def test_missing_metadata_returns_the_application_naming_the_fields() -> None:
    decision = formal_checks(
        initial(metadata_present=RESOURCE_METADATA - {"volume", "region"}), on=ON
    )
    assert decision.outcome is Outcome.RETURN
    assert rules_of(decision, Effect.RETURN) == ["REG-COMPLETE"]
    assert "region, volume" in decision.reasons[0].text("en")


def test_a_missing_fingerprint_returns_the_application() -> None:
    decision = formal_checks(initial(stored_fingerprint=None), on=ON)
    assert decision.outcome is Outcome.RETURN


def test_the_review_waits_for_the_scan() -> None:
    decision = formal_checks(initial(grade=None), on=ON)
    assert decision.outcome is Outcome.PENDING
    assert rules_of(decision, Effect.PENDING) == ["REG-SCAN-GRADE"]


def test_a_refusal_outranks_a_return_and_a_wait() -> None:
    decision = formal_checks(
        initial(grade=None, metadata_present=frozenset(), raw_single_records=True), on=ON
    )
    assert decision.outcome is Outcome.REFUSE
    assert [r.effect for r in decision.reasons] == [Effect.REFUSE, Effect.RETURN, Effect.PENDING]


# --- tracks -------------------------------------------------------------------------------------


def test_public_data_takes_the_fast_track() -> None:
    decision = formal_checks(initial(data_class=DataClass.PUBLIC), on=ON)
    assert decision.track is Track.FAST
    assert "Public data" in decision.texts()[0]


def test_self_commitment_takes_the_fast_track_for_non_public_data() -> None:
    decision = formal_checks(initial(self_commitment=True), on=ON)
    assert decision.track is Track.FAST
    assert "self-commitment" in decision.texts()[0]


def test_important_data_never_takes_the_fast_track() -> None:
    decision = formal_checks(initial(grade="important", self_commitment=True), on=ON)
    assert decision.outcome is Outcome.PASS
    assert decision.track is Track.STANDARD
    assert rules_of(decision, Effect.NOTE) == ["REG-IMPORTANT-DATA-REVIEW"]


def test_a_type_without_the_fast_track_stays_standard() -> None:
    book = a_book()
    facts = initial(
        registration_type=RegistrationType.TRANSFER,
        right_id="H1",
        counterparty_id="carol",
        declared_fingerprint=None,
        data_class=DataClass.PUBLIC,
    )
    decision = formal_checks(facts, book=book, on=ON)
    assert decision.outcome is Outcome.PASS
    assert decision.track is Track.STANDARD


def test_a_failed_check_never_takes_the_fast_track() -> None:
    decision = formal_checks(initial(data_class=DataClass.PUBLIC, grade=None), on=ON)
    assert decision.track is Track.STANDARD


# --- rights rules via the dry run ---------------------------------------------------------------


def test_a_licence_within_the_holding_passes() -> None:
    assert formal_checks(licence(), book=a_book(), on=ON).allowed


def test_licensing_a_right_you_do_not_hold_is_refused() -> None:
    decision = formal_checks(licence(applicant_id="mallory"), book=a_book(), on=ON)
    assert decision.refusing_rules == ("REG-HOLDER",)
    assert "does not hold right H1" in decision.reasons[0].text("en")


def test_licensing_from_an_expired_parent_is_refused() -> None:
    expired = RightsBook(
        [
            HoldingRight(
                "H1",
                "alice",
                "R1",
                Scope(),
                Term(date(2025, 1, 1), date(2026, 2, 1)),
                Origin.ORIGINAL,
            )
        ]
    )
    decision = formal_checks(licence(), book=expired, on=ON)
    assert decision.refusing_rules == ("REG-PARENT-IN-FORCE",)
    assert "2026-02-01" in decision.reasons[0].text("en")


def test_licensing_from_a_pledged_right_is_refused() -> None:
    book = a_book()
    book = pledge(book, "H1", holder_id="alice", pledgee_id="bank", on=ON).apply(book)
    decision = formal_checks(licence(), book=book, on=ON)
    assert decision.refusing_rules == ("REG-PLEDGE-LOCK",)


def test_transferring_a_pledged_right_is_refused() -> None:
    book = a_book()
    book = pledge(book, "H1", holder_id="alice", pledgee_id="bank", on=ON).apply(book)
    facts = licence(registration_type=RegistrationType.TRANSFER, counterparty_id="carol")
    decision = formal_checks(facts, book=book, on=ON)
    assert decision.refusing_rules == ("REG-PLEDGE-LOCK",)
    assert "pledged to bank" in decision.reasons[0].text("en")


def test_a_licence_wider_than_its_parent_is_returned_for_correction() -> None:
    book = RightsBook(
        [
            HoldingRight(
                "H1",
                "alice",
                "R1",
                Scope(purposes={"research"}),
                Term(date(2026, 1, 1)),
                Origin.ORIGINAL,
            )
        ]
    )
    decision = formal_checks(
        licence(requested_scope=Scope(purposes={"industry"})), book=book, on=ON
    )
    assert decision.outcome is Outcome.RETURN
    assert rules_of(decision, Effect.RETURN) == ["REG-SCOPE-WITHIN"]


def test_a_missing_right_number_or_counterparty_is_returned() -> None:
    assert formal_checks(licence(right_id=None), book=a_book(), on=ON).outcome is Outcome.RETURN
    assert (
        formal_checks(licence(counterparty_id=None), book=a_book(), on=ON).outcome is Outcome.RETURN
    )
    decision = formal_checks(licence(right_id="H404"), book=a_book(), on=ON)
    assert decision.outcome is Outcome.RETURN


def test_a_product_on_data_you_hold_no_right_on_is_refused() -> None:
    book = a_book()
    facts = initial(
        asset_id="X1",
        asset_kind=AssetKind.PRODUCT,
        applicant_id="bob",
        asset_holder_id="bob",
        metadata_present=frozenset(
            {"name_zh", "description", "industry_domain", "update_frequency", "region"}
            | {"field_schema", "sample", "lineage"}
        ),
        lineage={"X1": ["R1"]},
        requested_scope=Scope(purposes={"research"}, regions={"CN"}, delivery_modes={"api"}),
        requested_term=Term(ON, date(2027, 1, 1)),
    )
    decision = formal_checks(facts, book=book, on=ON)
    assert decision.refusing_rules == ("REG-PO-LINEAGE",)
    book = license(
        book,
        "H1",
        right_id="P1",
        licensor_id="alice",
        licensee_id="bob",
        scope=Scope(purposes={"research"}),
        term=Term(ON, date(2027, 3, 1)),
        on=ON,
    ).apply(book)
    assert formal_checks(facts, book=book, on=ON).allowed


def test_only_the_pledgee_releases_a_pledge() -> None:
    """A holder releasing its own pledge would free the right without the pledgee's consent."""
    book = a_book()
    book = pledge(book, "H1", holder_id="alice", pledgee_id="bank", on=ON).apply(book)
    release = licence(registration_type=RegistrationType.PLEDGE_RELEASE, counterparty_id=None)
    assert formal_checks(
        dataclasses.replace(release, applicant_id="bank"), book=book, on=ON
    ).allowed
    assert not formal_checks(release, book=book, on=ON).allowed  # alice, the holder
    decision = formal_checks(dataclasses.replace(release, applicant_id="mallory"), book=book, on=ON)
    assert decision.refusing_rules == ("REG-HOLDER",)


def test_only_an_authority_applies_for_revocation() -> None:
    facts = licence(registration_type=RegistrationType.REVOCATION, applicant_id="registrar-1")
    assert formal_checks(facts, book=a_book(), on=ON).refusing_rules == ("REG-HOLDER",)
    assert formal_checks(dataclasses.replace(facts, authority=True), book=a_book(), on=ON).allowed


# --- objections ---------------------------------------------------------------------------------

GOOD_GROUNDS = Grounds(
    frozenset({"title_dispute"}), "We collected these records; see our 2024 contract.", ("ev-1",)
)


def test_an_objection_registration_needs_grounds() -> None:
    facts = licence(
        registration_type=RegistrationType.OBJECTION, applicant_id="carol", grounds=None
    )
    decision = formal_checks(facts, book=a_book(), on=ON)
    assert decision.refusing_rules == ("REG-OBJECTION-GROUNDS",)
    assert "must give its grounds" in decision.reasons[0].text("en")
    grounded = dataclasses.replace(facts, grounds=GOOD_GROUNDS)
    assert formal_checks(grounded, book=a_book(), on=ON).allowed
    own = dataclasses.replace(grounded, applicant_id="alice")
    assert formal_checks(own, book=a_book(), on=ON).refusing_rules == ("REG-HOLDER",)


@pytest.mark.parametrize(
    ("grounds", "field"),
    [
        (Grounds(frozenset(), "A long enough statement.", ("ev",)), "grounds"),
        (Grounds(frozenset({" "}), "A long enough statement.", ("ev",)), "grounds"),
        (Grounds(frozenset({"vibes"}), "A long enough statement.", ("ev",)), "grounds"),
        (Grounds(frozenset({"other"}), "   short ", ("ev",)), "statement"),
        (Grounds(frozenset({"other"}), "A long enough statement.", ()), "evidence"),
        (Grounds(frozenset({"other"}), "A long enough statement.", (" ",)), "evidence"),
    ],
)
def test_an_objection_without_grounds_is_not_admissible(grounds: Grounds, field: str) -> None:
    with pytest.raises(ObjectionNotAdmissible) as exc:
        check_grounds(grounds)
    assert exc.value.field == field
    assert exc.value.rule == "REG-OBJECTION-GROUNDS"


def test_grounds_are_normalised() -> None:
    grounds = check_grounds(
        Grounds(frozenset({"other"}), "  two   words  and more ", ("ev-1", "ev-1", " ev-2 "))
    )
    assert grounds.statement == "two words and more"
    assert grounds.evidence == ("ev-1", "ev-2")


# --- storage ------------------------------------------------------------------------------------


def test_a_decision_round_trips_through_json_with_both_languages() -> None:
    decision = formal_checks(initial(grade="core", source_statement=None), on=ON)
    data = json.loads(json.dumps(decision.as_dict(), ensure_ascii=False))
    assert Decision.from_dict(data) == decision
    first = data["reasons"][0]
    assert {"rule", "effect", "title", "zh", "en", "source", "article", "verified"} <= set(first)
    assert first["title"]["zh"]
    assert first["zh"]  # rendered (English until the catalogue has the translation)


def test_someone_elses_product_cannot_be_registered_even_with_licences() -> None:
    book = license(
        a_book(),
        "H1",
        right_id="P1",
        licensor_id="alice",
        licensee_id="mallory",
        scope=Scope(purposes={"research"}),
        term=Term(ON, date(2027, 3, 1)),
        on=ON,
    ).apply(a_book())
    facts = initial(
        asset_id="X1",
        asset_kind=AssetKind.PRODUCT,
        applicant_id="mallory",
        asset_holder_id="bob",
        metadata_present=frozenset(
            {"name_zh", "description", "industry_domain", "update_frequency", "region"}
            | {"field_schema", "sample", "lineage"}
        ),
        lineage={"X1": ["R1"]},
        requested_scope=Scope(purposes={"research"}, regions={"CN"}, delivery_modes={"api"}),
        requested_term=Term(ON, date(2027, 1, 1)),
    )
    assert formal_checks(facts, book=book, on=ON).refusing_rules == ("REG-HOLDER",)


def test_an_unknown_grade_fails_loudly() -> None:
    with pytest.raises(ValueError, match="unknown discovery grade"):
        formal_checks(initial(grade="Core"), on=ON)


def test_a_right_on_another_asset_is_returned() -> None:
    decision = formal_checks(licence(asset_id="R9"), book=a_book(), on=ON)
    assert decision.outcome is Outcome.RETURN
    assert "is on asset R1" in decision.reasons[0].text("en")
