"""The registry's rule file: every rule has its source, the periods RULES.md names are the ones
applied, unverified rules are marked, and a bad edit is refused at load time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datafactor.registry import (
    FINAL_STATES,
    ActorRole,
    DataClass,
    RegistrationState,
    RegistrationType,
    load_registry_rules,
)
from datafactor.registry.rulebook import RULE_KEYS

RULES_FILE = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "datafactor"
    / "registry"
    / "rules"
    / "registry.yaml"
)
SRC = Path(__file__).resolve().parents[2] / "src" / "datafactor" / "registry"


def test_every_rule_has_an_id_title_source_and_mark() -> None:
    rules = load_registry_rules()
    assert set(RULE_KEYS) <= set(rules.refs)
    for ref in rules.refs.values():
        assert ref.id and ref.source and ref.section  # the file's "article"
        assert ref.title["zh"] and ref.title["en"]
        assert isinstance(ref.verified, bool)
        assert ref.version == rules.version


def test_the_periods_are_those_of_rules_md() -> None:
    rules = load_registry_rules()
    assert rules.notice_days[DataClass.PUBLIC] == 10
    assert rules.notice_days[DataClass.ENTERPRISE] == 3
    assert rules.target_days == 10
    assert RegistrationState.OBJECTION in rules.target_excludes
    assert rules.default_validity_years == 3
    assert all(t.validity_years == 3 for t in rules.types.values())
    assert rules.reminder_days == 30
    assert rules.certificate_prefix == "GX-DR"
    assert rules.sublicensing_allowed is False


def test_unverified_rules_are_marked() -> None:
    rules = load_registry_rules()
    # RULES.md marks the 10-working-day public-data notice [U].
    assert rules.by_id("REG-NOTICE-PERIOD").verified is False
    # Read in the named sources ([S]).
    assert rules.by_id("DSL-33-SOURCE-STATEMENT").verified is True
    assert rules.by_id("REG-TARGET-10WD").verified is True


def test_every_type_and_non_final_state_is_configured() -> None:
    rules = load_registry_rules()
    assert set(rules.types) == set(RegistrationType)
    assert set(rules.states) == set(RegistrationState) - FINAL_STATES
    assert rules.states[RegistrationState.RETURNED].owner is ActorRole.APPLICANT
    # Public data registration (发改数据规〔2025〕26号) knows initial, change, correction and
    # cancellation; every one of those types exists.
    for name in ("initial", "change", "correction", "cancellation"):
        assert RegistrationType(name) in rules.types


def test_every_rule_id_the_code_names_is_in_the_file() -> None:
    """Rule ids appear in code only through registry.yaml keys; no id is hard-coded."""
    rules = load_registry_rules()
    ids = {ref.id for ref in rules.refs.values()}
    for path in SRC.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for rule_id in ids:
            assert f'"{rule_id}"' not in text, (path.name, rule_id)


def _edited(tmp_path: Path, edit: object) -> Path:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    edit(data)  # type: ignore[operator]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["rules"].pop("pledge_lock"), "rules missing"),
        (lambda d: d["rules"]["core_data"].pop("source"), "missing source"),
        (lambda d: d["rules"]["core_data"].update(verified="yes"), "true or false"),
        (lambda d: d["rules"]["holder"].update(id="REG-REFUSE-CORE-DATA"), "duplicate rule ids"),
        (lambda d: d["registration_types"].pop("renewal"), "registration_types missing"),
        (lambda d: d["registration_types"]["initial"].update(applicant="anyone"), "unknown"),
        (lambda d: d["states"].pop("objection"), "owner and period"),
        (lambda d: d["states"]["submitted"].update(working_days=0), "whole number"),
        (lambda d: d["states"].update(certified={"owner": "registrar"}), "final state"),
        (lambda d: d["public_notice"]["working_days"].pop("public"), "every class"),
        (lambda d: d["certificates"].update(number_prefix="gx dr"), "number_prefix"),
        (lambda d: d["scope"].update(purposes={}), "at least one"),
    ],
)
def test_a_bad_edit_is_refused_at_load_time(tmp_path: Path, edit: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        load_registry_rules(_edited(tmp_path, edit))


def test_an_operator_may_change_a_period(tmp_path: Path) -> None:
    path = _edited(tmp_path, lambda d: d["public_notice"]["working_days"].update(public=15))
    assert load_registry_rules(path).notice_days[DataClass.PUBLIC] == 15
