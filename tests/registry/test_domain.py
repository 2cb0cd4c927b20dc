"""The registry's pure domain core as a whole: its surface, its purity (no web, no ORM, no
database in these tests), and one registration told end to end through the rules — a resource
registered, licensed, a product derived and certified, an objection, a pledge, a cancellation."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import datafactor.registry as registry
import datafactor.registry.domain as domain
import datafactor.registry.services as services
from datafactor.registry import (
    Action,
    ActorRole,
    ApplicationFacts,
    AssetKind,
    CertificateStatus,
    DataClass,
    Grounds,
    ObjectionOutcome,
    Outcome,
    RegistrationState,
    RegistrationType,
    RightPledged,
    RightsBook,
    RightStatus,
    Scope,
    Term,
    Track,
    advance,
    audit_book,
    cancel,
    certificate_bytes,
    certificate_payload,
    certificate_status,
    certificate_validity,
    chain_of_title,
    decide_objection,
    derive_product_operation,
    formal_checks,
    format_certificate_number,
    grant_holding,
    license,
    lodge_objection,
    pledge,
    release_pledge,
    submit,
    transfer,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "datafactor" / "registry"
FORBIDDEN = ("fastapi", "starlette", "sqlalchemy", "datafactor.db", "datafactor.web")


def test_the_surface_is_sorted_and_complete() -> None:
    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    def order(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert registry.__all__ == sorted(registry.__all__, key=order)
    # The surface is the pure domain plus the use cases other packages call.
    assert set(domain.__all__) <= set(registry.__all__)
    for name in registry.__all__:
        source = domain if name in domain.__all__ else services
        assert getattr(registry, name) is getattr(source, name), name


# The pure core may not use the ORM, the web or other domains' internals; the persistence and
# entry-point layers around it (models, services, api, views ...) may.
PURE_CORE = (
    "vocabulary.py",
    "errors.py",
    "rulebook.py",
    "calendar.py",
    "rights.py",
    "checks.py",
    "workflow.py",
    "certificates.py",
    "domain.py",
)
RULE_MODULES = [SRC / name for name in PURE_CORE]


@pytest.mark.parametrize("path", RULE_MODULES, ids=lambda p: p.name)
def test_the_rules_import_no_web_and_no_orm(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            # Rendering a message reads the translation catalogues, lazily, inside a function.
            if name == "datafactor.web.i18n" and path.name == "vocabulary.py":
                continue
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
            # Another domain only through its surface, or its pure core module; the rule-file
            # loader every domain shares (pure).
            if name.startswith("datafactor.") and not name.startswith("datafactor.registry"):
                allowed = ("datafactor.errors", "datafactor.ledger.domain", "datafactor.rulefiles")
                assert name in allowed, name


def test_every_module_says_what_it_owns() -> None:
    for path in SRC.glob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and len(doc) > 80, path.name


# --- a story ------------------------------------------------------------------------------------

GRID, LOGISTICS, BANK, RIVAL = "party-grid", "party-logistics", "party-bank", "party-rival"
MONDAY = date(2026, 3, 2)
FP = "5e" * 32


def test_a_registration_from_resource_to_certificate_and_beyond() -> None:
    book = RightsBook()

    # 1. The power grid registers its electricity data (initial registration, standard track).
    facts = ApplicationFacts(
        registration_type=RegistrationType.INITIAL,
        applicant_id=GRID,
        asset_id="res-electricity",
        asset_kind=AssetKind.RESOURCE,
        data_class=DataClass.ENTERPRISE,
        asset_holder_id=GRID,
        metadata_present=frozenset(
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
        ),
        source_statement="Metered by the grid under its supply contracts.",
        grade="general",
        declared_fingerprint=FP,
        stored_fingerprint=FP,
        requested_scope=Scope(regions={"450000"}),
        requested_term=Term(date(2026, 1, 1)),
    )
    decision = formal_checks(facts, book=book, on=MONDAY)
    assert decision.outcome is Outcome.PASS and decision.track is Track.STANDARD
    app = submit(
        "app-1",
        RegistrationType.INITIAL,
        applicant_id=GRID,
        asset_id="res-electricity",
        data_class=DataClass.ENTERPRISE,
        on=MONDAY,
    ).application
    app = advance(app, Action.ACCEPT, ActorRole.SYSTEM, on=MONDAY).application
    app = advance(
        app, Action.PASS_FORMAL, ActorRole.SYSTEM, on=MONDAY, decision=decision
    ).application
    app = advance(
        app, Action.APPROVE_TO_NOTICE, ActorRole.REGISTRAR, on=date(2026, 3, 3)
    ).application
    assert app.notice_ends == date(2026, 3, 6)

    # 2. A rival objects without grounds (refused), then with grounds (heard, dismissed).
    with pytest.raises(registry.ObjectionNotAdmissible):
        lodge_objection(
            app,
            objection_id="obj-0",
            objector_id=RIVAL,
            grounds=Grounds(frozenset(), "", ()),
            on=date(2026, 3, 4),
        )
    grounds = Grounds(frozenset({"title_dispute"}), "We metered part of this network.", ("ev-9",))
    objection, step = lodge_objection(
        app, objection_id="obj-1", objector_id=RIVAL, grounds=grounds, on=date(2026, 3, 4)
    )
    assert step is not None and step.application.state is RegistrationState.OBJECTION
    ruling = decide_objection(
        objection,
        step.application,
        substantiated=False,
        reason="The meters named belong to the grid.",
        role=ActorRole.REGISTRAR,
        on=date(2026, 3, 5),
        open_after=0,
    )
    assert ruling.outcome is ObjectionOutcome.DISMISSED and RIVAL in ruling.notify
    assert ruling.action is not None
    app = advance(
        step.application, ruling.action, ActorRole.REGISTRAR, on=date(2026, 3, 5)
    ).application
    app = advance(app, Action.CLOSE_NOTICE, ActorRole.SYSTEM, on=date(2026, 3, 9)).application
    assert app.state is RegistrationState.CERTIFIED
    assert app.excluded_days == 1  # a working day spent on the objection
    assert date(2026, 3, 9) <= app.target_on()

    # 3. At certification the service applies the rights operation and issues the certificate.
    book = grant_holding(
        book,
        right_id="H-grid",
        holder_id=GRID,
        asset_id="res-electricity",
        scope=facts.requested_scope or Scope(),
        term=facts.requested_term or Term(MONDAY),
        on=date(2026, 3, 9),
    ).apply(book)
    right = book["H-grid"]
    validity = certificate_validity(
        RegistrationType.INITIAL, issued_on=date(2026, 3, 9), right_term=right.term
    )
    number = format_certificate_number(2026, 1)
    payload = certificate_payload(
        number=number,
        registration_id=app.id,
        registration_type=app.type,
        track=app.track,
        right=right,
        chain=chain_of_title(right.id, book),
        validity=validity,
        issued_at=datetime(2026, 3, 9, 1, 0, tzinfo=UTC),
        issuer="datafactor.local/registry",
        asset_fingerprint=FP,
    )
    assert certificate_bytes(payload).startswith(b'{"asset":')
    assert payload["number"] == "GX-DR-2026-000001"

    # 4. The grid licenses the logistics firm; the firm derives a product on it.
    book = license(
        book,
        "H-grid",
        right_id="P-logistics",
        licensor_id=GRID,
        licensee_id=LOGISTICS,
        scope=Scope(purposes={"trade_logistics"}, regions={"450100"}, delivery_modes={"sandbox"}),
        term=Term(date(2026, 3, 16), date(2027, 3, 15)),
        on=date(2026, 3, 16),
    ).apply(book)
    book = derive_product_operation(
        book,
        right_id="O-route-index",
        holder_id=LOGISTICS,
        product_id="prod-route-index",
        lineage={"prod-route-index": ["res-electricity"]},
        scope=Scope(purposes={"trade_logistics"}, regions={"450102"}, delivery_modes={"sandbox"}),
        term=Term(date(2026, 4, 1), date(2027, 3, 1)),
        on=date(2026, 4, 1),
    ).apply(book)
    chain = chain_of_title("O-route-index", book)
    assert [r.id for r in chain.roots] == ["H-grid"]

    # 5. The firm pledges its licence to a bank: it cannot transfer it while pledged.
    book = pledge(
        book, "P-logistics", holder_id=LOGISTICS, pledgee_id=BANK, on=date(2026, 5, 6)
    ).apply(book)
    with pytest.raises(RightPledged):
        transfer(
            book,
            "P-logistics",
            new_right_id="P-x",
            from_party=LOGISTICS,
            to_party=RIVAL,
            on=date(2026, 5, 7),
        )
    assert (
        certificate_status(
            valid_until=date(2027, 3, 15),
            right_status=book["P-logistics"].status,
            today=date(2026, 5, 7),
        )
        is CertificateStatus.PLEDGED
    )
    book = release_pledge(book, "P-logistics", by=BANK).apply(book)

    # 6. The grid cancels its holding: the licence and the product right are suspended, and
    #    the firm is told; the book stays sound.
    change = cancel(book, "H-grid", by=GRID)
    assert change.notify == {LOGISTICS}
    book = change.apply(book)
    assert book["O-route-index"].status is RightStatus.SUSPENDED
    assert audit_book(book) == ()
    assert (
        certificate_status(
            valid_until=validity.valid_until,
            right_status=book["H-grid"].status,
            today=date(2026, 6, 1),
        )
        is CertificateStatus.CANCELLED
    )
