"""The three rights and their rules, example by example: each operation, and each refusal with
its rule id (registering data you do not hold, an expired parent, a pledged right ...)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from datafactor.errors import DomainError
from datafactor.registry import (
    BrokenChainOfTitle,
    DuplicateRight,
    HoldingRight,
    InvalidRegistration,
    InvalidScope,
    InvalidTerm,
    LicenceNotAllowed,
    LineageNotCovered,
    NotPledged,
    NotRightHolder,
    Origin,
    ProcessingUseRight,
    ProductOperationRight,
    RightKind,
    RightNotInForce,
    RightPledged,
    RightsBook,
    RightStatus,
    Scope,
    ScopeExceedsParent,
    Term,
    TermExceedsParent,
    TransitionNotAllowed,
    UnknownRight,
    amend,
    audit_book,
    cancel,
    chain_of_title,
    check_scope,
    derive_product_operation,
    descendants,
    expire,
    grant_holding,
    license,
    load_registry_rules,
    pledge,
    region_covers,
    reinstate,
    release_pledge,
    renew,
    revoke,
    right_from_dict,
    suspend,
    transfer,
)

ON = date(2026, 3, 2)
START = date(2026, 1, 1)
END = date(2028, 12, 31)
RESEARCH = Scope(purposes={"research"}, regions={"450100"}, delivery_modes={"sandbox"})


def with_holding(
    book: RightsBook | None = None,
    right_id: str = "H1",
    holder: str = "alice",
    asset: str = "R1",
    scope: Scope | None = None,
    term: Term | None = None,
) -> RightsBook:
    book = book if book is not None else RightsBook()
    change = grant_holding(
        book,
        right_id=right_id,
        holder_id=holder,
        asset_id=asset,
        scope=scope or Scope(),
        term=term or Term(START),
        on=ON,
    )
    return change.apply(book)


def with_licence(
    book: RightsBook,
    parent: str = "H1",
    right_id: str = "P1",
    licensor: str = "alice",
    licensee: str = "bob",
    scope: Scope = RESEARCH,
    term: Term | None = None,
    on: date = ON,
) -> RightsBook:
    change = license(
        book,
        parent,
        right_id=right_id,
        licensor_id=licensor,
        licensee_id=licensee,
        scope=scope,
        term=term or Term(ON, date(2027, 3, 1)),
        on=on,
    )
    return change.apply(book)


def with_product(
    book: RightsBook,
    holder: str = "bob",
    product: str = "X1",
    lineage: dict[str, list[str]] | None = None,
    right_id: str = "O1",
    scope: Scope | None = None,
    term: Term | None = None,
) -> RightsBook:
    change = derive_product_operation(
        book,
        right_id=right_id,
        holder_id=holder,
        product_id=product,
        lineage=lineage or {product: ["R1"]},
        scope=scope or Scope(purposes={"research"}, regions={"450102"}, delivery_modes={"sandbox"}),
        term=term or Term(ON, date(2027, 1, 1)),
        on=ON,
    )
    return change.apply(book)


def rule(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return str(getattr(exc.value, "rule", ""))


# --- scope and term ---------------------------------------------------------------------------


def test_unrestricted_contains_everything_and_nothing_contains_unrestricted() -> None:
    assert RESEARCH.within(Scope.unrestricted())
    assert not Scope.unrestricted().within(RESEARCH)
    assert Scope.unrestricted().excess(RESEARCH) == {
        "purposes": ("*",),
        "regions": ("*",),
        "delivery_modes": ("*",),
    }


def test_regions_nest_by_division_code() -> None:
    assert region_covers("CN", "450102")
    assert region_covers("450000", "450102")
    assert region_covers("450100", "450102")
    assert not region_covers("450100", "450200")
    assert not region_covers("450102", "450100")
    assert not region_covers("CN", "VN")
    assert Scope(regions={"450102"}).within(Scope(regions={"450000"}))
    assert Scope(regions={"450102", "VN"}).excess(Scope(regions={"CN"})) == {"regions": ("VN",)}


def test_a_bare_string_is_one_value() -> None:
    assert Scope(purposes="research").purposes == frozenset({"research"})


def test_scope_round_trips_through_json() -> None:
    assert Scope.from_dict(RESEARCH.as_dict()) == RESEARCH
    assert Scope.from_dict(Scope().as_dict()) == Scope()


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        (Scope(purposes=set()), "scope.purposes"),
        (Scope(purposes={"gambling"}), "scope.purposes"),
        (Scope(delivery_modes={"fax"}), "scope.delivery_modes"),
        (Scope(regions={"4501"}), "scope.regions"),
        (Scope(regions={"gx"}), "scope.regions"),
        (Scope(fields={" "}), "scope.fields"),
    ],
)
def test_bad_scopes_are_refused_naming_the_dimension(scope: Scope, field: str) -> None:
    with pytest.raises(InvalidScope) as exc:
        check_scope(scope)
    assert exc.value.field == field
    assert exc.value.rule == "REG-SCOPE-WITHIN"


def test_a_term_cannot_end_before_it_starts() -> None:
    with pytest.raises(InvalidTerm):
        Term(date(2026, 5, 1), date(2026, 4, 30))


def test_term_within() -> None:
    assert Term(date(2026, 2, 1), date(2026, 3, 1)).within(Term(START))
    assert not Term(START).within(Term(START, END))
    assert not Term(date(2025, 12, 31), date(2026, 3, 1)).within(Term(START, END))


def test_records_are_checked_when_built() -> None:
    with pytest.raises(InvalidRegistration, match="needs an end date"):
        ProcessingUseRight("P", "b", "R", Scope(), Term(START), Origin.LICENSED, "H")
    with pytest.raises(InvalidRegistration, match="cannot have origin"):
        HoldingRight("H", "a", "R", Scope(), Term(START), Origin.LICENSED, "X")
    with pytest.raises(InvalidRegistration, match="pledge"):
        HoldingRight(
            "H", "a", "R", Scope(), Term(START), Origin.ORIGINAL, status=RightStatus.PLEDGED
        )
    with pytest.raises(InvalidRegistration, match="basis"):
        ProductOperationRight("O", "b", "X", Scope(), Term(START, END), Origin.DERIVED)


def test_rights_round_trip_through_json() -> None:
    book = with_product(with_licence(with_holding()))
    book = pledge(book, "O1", holder_id="bob", pledgee_id="bank", on=ON).apply(book)
    for right in book.values():
        assert right_from_dict(right.as_dict()) == right
        assert type(right_from_dict(right.as_dict())) is type(right)


# --- grant and licence ------------------------------------------------------------------------


def test_an_original_holding_right_is_its_own_chain() -> None:
    book = with_holding()
    chain = chain_of_title("H1", book)
    assert [r.id for r in chain.links] == ["H1"]
    assert chain.roots == (book["H1"],)


def test_a_second_holding_claim_on_the_same_data_is_refused() -> None:
    book = with_holding()
    with pytest.raises(DuplicateRight) as exc:
        with_holding(book, right_id="H2", holder="mallory")
    assert rule(exc) == "REG-HOLDING-UNIQUE"
    assert "title dispute" in str(exc.value)


def test_a_licence_within_its_parent() -> None:
    book = with_licence(with_holding())
    right = book["P1"]
    assert right.kind is RightKind.PROCESSING_USE
    assert right.origin is Origin.LICENSED
    assert right.parent_id == "H1"
    assert [r.id for r in chain_of_title("P1", book).links] == ["P1", "H1"]


def test_licensing_data_you_do_not_hold_is_refused() -> None:
    book = with_holding()
    with pytest.raises(NotRightHolder) as exc:
        with_licence(book, licensor="mallory")
    assert rule(exc) == "REG-HOLDER"
    assert exc.value.status == 403
    assert "does not hold right H1" in str(exc.value)


def test_a_licence_wider_than_its_parent_is_refused() -> None:
    book = with_holding(scope=Scope(purposes={"research"}, regions={"450000"}))
    with pytest.raises(ScopeExceedsParent) as exc:
        with_licence(book, scope=Scope(purposes={"research", "industry"}, regions={"450100"}))
    assert rule(exc) == "REG-SCOPE-WITHIN"
    assert "purposes industry" in str(exc.value)
    with pytest.raises(ScopeExceedsParent, match="regions"):
        with_licence(book, scope=Scope(purposes={"research"}))  # unrestricted regions


def test_a_licence_longer_than_its_parent_is_refused() -> None:
    book = with_holding(term=Term(START, date(2026, 12, 31)))
    with pytest.raises(TermExceedsParent) as exc:
        with_licence(book, term=Term(ON, date(2027, 1, 1)))
    assert rule(exc) == "REG-TERM-WITHIN"


def test_a_licence_needs_an_end_and_cannot_be_over_already() -> None:
    book = with_holding()
    with pytest.raises(InvalidTerm, match="needs an end date"):
        with_licence(book, term=Term(ON))
    with pytest.raises(InvalidTerm, match="already over"):
        with_licence(book, term=Term(START, date(2026, 2, 1)))


def test_licensing_from_an_expired_parent_is_refused() -> None:
    # Registered while in force; its term has ended by the time of the licence.
    book = RightsBook(
        [
            HoldingRight(
                "H1", "alice", "R1", Scope(), Term(START, date(2026, 2, 28)), Origin.ORIGINAL
            )
        ]
    )
    with pytest.raises(RightNotInForce) as exc:
        with_licence(book, term=Term(ON, date(2026, 4, 1)))
    assert rule(exc) == "REG-PARENT-IN-FORCE"
    assert "2026-02-28" in str(exc.value)


def test_sub_licensing_is_off_by_default_and_can_be_switched_on() -> None:
    book = with_licence(with_holding())
    with pytest.raises(LicenceNotAllowed) as exc:
        with_licence(book, parent="P1", right_id="P2", licensor="bob", licensee="carol")
    assert rule(exc) == "REG-PU-PARENT"
    rules = dataclasses.replace(load_registry_rules(), sublicensing_allowed=True)
    change = license(
        book,
        "P1",
        right_id="P2",
        licensor_id="bob",
        licensee_id="carol",
        scope=RESEARCH,
        term=Term(ON, date(2026, 12, 1)),
        on=ON,
        rules=rules,
    )
    book = change.apply(book)
    chain = chain_of_title("P2", book, rules=rules)
    assert [r.id for r in chain.links] == ["P2", "P1", "H1"]
    # ... and the chain is refused under the default rules.
    with pytest.raises(BrokenChainOfTitle):
        chain_of_title("P2", book)


def test_a_holder_does_not_license_itself() -> None:
    with pytest.raises(LicenceNotAllowed):
        with_licence(with_holding(), licensee="alice")


def test_a_product_right_cannot_license() -> None:
    book = with_product(with_licence(with_holding()))
    with pytest.raises(LicenceNotAllowed):
        with_licence(book, parent="O1", right_id="P9", licensor="bob", licensee="carol")


def test_unknown_rights_are_not_found() -> None:
    with pytest.raises(UnknownRight) as exc:
        with_licence(RightsBook(), parent="H404")
    assert exc.value.status == 404


# --- products ---------------------------------------------------------------------------------


def test_a_product_right_rests_on_rights_over_every_source() -> None:
    book = with_holding(asset="R2", right_id="H2", holder="bob")
    book = with_licence(with_holding(book))
    book = with_product(book, lineage={"X1": ["R1", "R2"]})
    right = book["O1"]
    assert right.basis_ids == frozenset({"P1", "H2"})
    chain = chain_of_title("O1", book)
    assert {r.id for r in chain.roots} == {"H1", "H2"}
    assert set(chain.right_ids()) == {"O1", "P1", "H1", "H2"}


def test_lineage_is_followed_through_intermediate_products() -> None:
    book = with_licence(with_holding())
    book = with_product(book, lineage={"X1": ["X0"], "X0": ["R1"]})
    assert book["O1"].basis_ids == frozenset({"P1"})


def test_a_product_built_on_data_you_do_not_hold_is_refused() -> None:
    book = with_licence(with_holding())
    book = with_holding(book, right_id="H2", holder="carol", asset="R2")
    with pytest.raises(LineageNotCovered) as exc:
        with_product(book, lineage={"X1": ["R1", "R2"]})
    assert rule(exc) == "REG-PO-LINEAGE"
    assert "derived from R2" in str(exc.value)
    with pytest.raises(LineageNotCovered, match="no recorded lineage"):
        with_product(book, lineage={"X2": ["R1"]})


def test_a_product_lineage_that_loops_is_refused() -> None:
    book = with_licence(with_holding())
    with pytest.raises(LineageNotCovered, match="loops"):
        with_product(book, lineage={"X1": ["X0"], "X0": ["X1"]})


def test_a_product_wider_than_its_basis_is_refused() -> None:
    book = with_licence(with_holding())
    with pytest.raises(ScopeExceedsParent):
        with_product(
            book, scope=Scope(purposes={"industry"}, regions={"450102"}, delivery_modes={"sandbox"})
        )
    with pytest.raises(TermExceedsParent):
        with_product(book, term=Term(ON, date(2027, 6, 1)))


def test_the_product_fields_are_its_own() -> None:
    book = with_licence(with_holding())
    scope = Scope(
        purposes={"research"}, regions={"450102"}, delivery_modes={"sandbox"}, fields={"score"}
    )
    book = with_product(book, scope=scope)
    assert book["O1"].scope.fields == frozenset({"score"})


def test_a_product_has_one_operation_right() -> None:
    book = with_product(with_licence(with_holding()))
    with pytest.raises(DuplicateRight) as exc:
        with_product(book, right_id="O2")
    assert rule(exc) == "REG-PO-UNIQUE"


def test_a_suspended_licence_is_no_basis() -> None:
    book = with_licence(with_holding())
    book = suspend(book, "P1").apply(book)
    with pytest.raises(LineageNotCovered):
        with_product(book)


# --- transfer ---------------------------------------------------------------------------------


def test_a_transfer_ends_the_old_right_and_creates_the_new_one() -> None:
    book = with_licence(with_holding(term=Term(START, END)))
    change = transfer(
        book, "H1", new_right_id="H2", from_party="alice", to_party="carol", on=date(2026, 6, 1)
    )
    (ended,) = change.updated
    (successor,) = change.created
    assert ended.id == "H1" and ended.status is RightStatus.TRANSFERRED
    assert successor.holder_id == "carol"
    assert successor.origin is Origin.TRANSFERRED and successor.parent_id == "H1"
    assert successor.scope == ended.scope
    assert successor.term == Term(date(2026, 6, 1), END)
    assert type(successor) is HoldingRight
    assert change.notify == {"carol", "bob"}  # the new holder, and the licensee of H1
    book = change.apply(book)
    assert book.current("H1").id == "H2"
    # The licence granted before the transfer keeps its title, now carried by H2.
    assert [r.id for r in chain_of_title("P1", book).links] == ["P1", "H1"]
    assert audit_book(book) == ()


def test_transferring_a_right_you_do_not_hold_is_refused() -> None:
    with pytest.raises(NotRightHolder):
        transfer(with_holding(), "H1", new_right_id="H2", from_party="bob", to_party="carol", on=ON)


def test_transferring_to_yourself_is_refused() -> None:
    with pytest.raises(InvalidRegistration):
        transfer(
            with_holding(), "H1", new_right_id="H2", from_party="alice", to_party="alice", on=ON
        )


def test_a_transferred_right_cannot_be_transferred_again() -> None:
    book = with_holding()
    book = transfer(
        book, "H1", new_right_id="H2", from_party="alice", to_party="carol", on=ON
    ).apply(book)
    with pytest.raises(RightNotInForce, match="ended"):
        transfer(book, "H1", new_right_id="H3", from_party="alice", to_party="dave", on=ON)


def test_a_licence_can_be_transferred_with_its_scope() -> None:
    book = with_licence(with_holding())
    book = transfer(book, "P1", new_right_id="P2", from_party="bob", to_party="carol", on=ON).apply(
        book
    )
    assert [r.id for r in chain_of_title("P2", book).links] == ["P2", "P1", "H1"]
    assert book["P2"].scope == RESEARCH


# --- pledge -----------------------------------------------------------------------------------


def pledged_book() -> RightsBook:
    book = with_licence(with_holding())
    return pledge(book, "H1", holder_id="alice", pledgee_id="bank", on=ON).apply(book)


def test_a_pledge_marks_the_right_and_tells_the_pledgee() -> None:
    book = with_holding()
    change = pledge(book, "H1", holder_id="alice", pledgee_id="bank", on=ON, registration_id="A1")
    right = change.right
    assert right.status is RightStatus.PLEDGED
    assert right.pledge is not None and right.pledge.pledgee_id == "bank"
    assert change.notify == {"bank"}


def test_transferring_a_pledged_right_is_refused() -> None:
    with pytest.raises(RightPledged) as exc:
        transfer(
            pledged_book(), "H1", new_right_id="H2", from_party="alice", to_party="carol", on=ON
        )
    assert rule(exc) == "REG-PLEDGE-LOCK"
    assert exc.value.status == 409
    assert "pledged to bank" in str(exc.value)
    assert "release" in str(exc.value)


def test_licensing_from_or_cancelling_a_pledged_right_is_refused() -> None:
    book = pledged_book()
    with pytest.raises(RightPledged):
        with_licence(book, right_id="P2", licensee="carol")
    with pytest.raises(RightPledged):
        cancel(book, "H1", by="alice")


def test_a_pledged_right_may_still_be_used_for_a_product() -> None:
    book = with_licence(with_holding())
    book = pledge(book, "P1", holder_id="bob", pledgee_id="bank", on=ON).apply(book)
    book = with_product(book)
    assert book["O1"].basis_ids == {"P1"}


def test_a_right_carries_one_pledge_at_a_time() -> None:
    with pytest.raises(RightPledged) as exc:
        pledge(pledged_book(), "H1", holder_id="alice", pledgee_id="other-bank", on=ON)
    assert rule(exc) == "REG-PLEDGE-ONCE"


def test_only_the_pledgee_or_the_registrar_releases() -> None:
    book = pledged_book()
    with pytest.raises(NotRightHolder):
        release_pledge(book, "H1", by="alice")
    released = release_pledge(book, "H1", by="bank").right
    assert released.status is RightStatus.ACTIVE and released.pledge is None
    assert release_pledge(book, "H1", by="alice", authority=True).right.pledge is None
    with pytest.raises(NotPledged):
        release_pledge(with_holding(), "H1", by="bank")


def test_after_release_the_right_can_be_transferred() -> None:
    book = pledged_book()
    book = release_pledge(book, "H1", by="bank").apply(book)
    transfer(book, "H1", new_right_id="H2", from_party="alice", to_party="carol", on=ON)


def test_a_pledged_right_can_be_extended_but_not_narrowed() -> None:
    book = with_holding(term=Term(START, END))
    book = pledge(book, "H1", holder_id="alice", pledgee_id="bank", on=ON).apply(book)
    with pytest.raises(RightPledged):
        amend(book, "H1", by="alice", on=ON, term=Term(START, date(2027, 1, 1)))
    with pytest.raises(RightPledged):
        amend(book, "H1", by="alice", on=ON, scope=RESEARCH)
    renewed = renew(book, "H1", by="alice", new_end=date(2030, 12, 31), on=ON).right
    assert renewed.term.end == date(2030, 12, 31)
    assert renewed.status is RightStatus.PLEDGED


# --- cancel, revoke, suspend, reinstate -------------------------------------------------------


def test_cancelling_suspends_everything_derived_and_names_whom_to_tell() -> None:
    book = with_product(with_licence(with_holding()))
    book = with_licence(book, right_id="P2", licensee="carol", scope=RESEARCH)
    book = pledge(book, "P2", holder_id="carol", pledgee_id="bank", on=ON).apply(book)
    change = cancel(book, "H1", by="alice")
    states = {r.id: r for r in change.updated}
    assert states["H1"].status is RightStatus.CANCELLED
    for right_id in ("P1", "P2", "O1"):
        assert states[right_id].status is RightStatus.SUSPENDED
        assert states[right_id].suspended_by == "H1"
    assert states["P2"].pledge is not None  # the pledge stays on record
    assert change.notify == {"bob", "carol", "bank"}
    assert {r.id for r in change.suspended} == {"P1", "P2", "O1"}
    book = change.apply(book)
    assert audit_book(book) == ()
    with pytest.raises(BrokenChainOfTitle) as exc:
        chain_of_title("O1", book)
    assert "broken at O1" in str(exc.value)
    assert "P1, which is suspended because right H1" in str(exc.value)
    assert exc.value.rule == "REG-CHAIN-OF-TITLE"


def test_cancelling_after_a_transfer_reaches_the_predecessors_licences() -> None:
    book = with_licence(with_holding())
    book = transfer(
        book, "H1", new_right_id="H2", from_party="alice", to_party="carol", on=ON
    ).apply(book)
    change = cancel(book, "H2", by="carol")
    assert {r.id for r in change.suspended} == {"P1"}
    assert change.notify == {"bob"}


def test_only_the_holder_cancels_and_only_once() -> None:
    book = with_holding()
    with pytest.raises(NotRightHolder):
        cancel(book, "H1", by="mallory")
    book = cancel(book, "H1", by="alice").apply(book)
    with pytest.raises(RightNotInForce):
        cancel(book, "H1", by="alice")


def test_revocation_is_not_blocked_by_a_pledge_and_tells_the_pledgee() -> None:
    change = revoke(pledged_book(), "H1")
    assert change.right.status is RightStatus.REVOKED
    assert change.notify == {"alice", "bank", "bob"}


def test_suspend_and_reinstate_together_with_what_derives() -> None:
    book = with_product(with_licence(with_holding()))
    book = suspend(book, "H1").apply(book)
    assert {book[i].status for i in ("H1", "P1", "O1")} == {RightStatus.SUSPENDED}
    with pytest.raises(TransitionNotAllowed, match="reinstated with H1"):
        reinstate(book, "P1", on=ON)
    change = reinstate(book, "H1", on=ON)
    book = change.apply(book)
    assert {book[i].status for i in ("H1", "P1", "O1")} == {RightStatus.ACTIVE}
    assert change.notify == {"alice", "bob"}


def test_reinstating_does_not_revive_what_another_cancellation_broke() -> None:
    book = with_holding(asset="R2", right_id="H2", holder="bob")
    book = with_licence(with_holding(book))
    book = with_product(book, lineage={"X1": ["R1", "R2"]})
    book = suspend(book, "H1").apply(book)  # suspends P1 and O1
    book = cancel(book, "H2", by="bob").apply(book)  # O1 also rests on H2
    book = reinstate(book, "H1", on=ON).apply(book)
    assert book["P1"].status is RightStatus.ACTIVE
    assert book["O1"].status is RightStatus.SUSPENDED
    assert audit_book(book) == ()


def test_expiry_ends_rights_past_their_term() -> None:
    book = with_licence(with_holding(term=Term(START, date(2027, 3, 1))))
    assert expire(book, date(2027, 3, 1)) is None
    change = expire(book, date(2027, 3, 2))
    assert change is not None
    assert {r.id: r.status for r in change.updated} == {
        "H1": RightStatus.EXPIRED,
        "P1": RightStatus.EXPIRED,
    }


# --- amend ------------------------------------------------------------------------------------


def test_a_change_cannot_orphan_a_licence() -> None:
    book = with_licence(with_holding())
    with pytest.raises(InvalidScope, match="no longer contain right P1"):
        amend(book, "H1", by="alice", on=ON, scope=Scope(purposes={"industry"}))
    with pytest.raises(InvalidScope, match="P1"):
        amend(book, "H1", by="alice", on=ON, term=Term(START, date(2026, 12, 31)))
    narrowed = amend(book, "H1", by="alice", on=ON, scope=Scope(purposes={"research"})).right
    assert narrowed.scope.purposes == frozenset({"research"})


def test_a_licence_cannot_be_renewed_past_its_parent() -> None:
    book = with_licence(with_holding(term=Term(START, date(2027, 6, 30))))
    with pytest.raises(TermExceedsParent):
        renew(book, "P1", by="bob", new_end=date(2027, 12, 31), on=ON)
    assert renew(book, "P1", by="bob", new_end=date(2027, 6, 30), on=ON).right.term.end == date(
        2027, 6, 30
    )


def test_a_transferred_holding_right_can_be_renewed_beyond_its_predecessor() -> None:
    book = with_holding(term=Term(START, date(2027, 1, 1)))
    book = transfer(
        book, "H1", new_right_id="H2", from_party="alice", to_party="carol", on=ON
    ).apply(book)
    book = renew(book, "H2", by="carol", new_end=date(2030, 1, 1), on=ON).apply(book)
    assert audit_book(book) == ()


def test_a_change_with_nothing_to_change_is_refused() -> None:
    with pytest.raises(InvalidRegistration):
        amend(with_holding(), "H1", by="alice", on=ON)


# --- chain breaks in loaded data --------------------------------------------------------------


def test_a_missing_parent_breaks_the_chain_naming_it() -> None:
    orphan = ProcessingUseRight("P1", "bob", "R1", Scope(), Term(ON, END), Origin.LICENSED, "H404")
    with pytest.raises(BrokenChainOfTitle) as exc:
        chain_of_title("P1", RightsBook([orphan]))
    assert "H404" in str(exc.value) and "not registered" in str(exc.value)


def test_a_forged_wider_licence_breaks_the_chain() -> None:
    book = with_licence(with_holding(scope=RESEARCH))
    forged = dataclasses.replace(book["P1"], scope=Scope())
    book = RightsBook([book["H1"], forged])
    with pytest.raises(BrokenChainOfTitle, match="scope"):
        chain_of_title("P1", book)
    assert [p.right_id for p in audit_book(book)] == ["P1"]


def test_a_fake_successor_breaks_the_chain() -> None:
    book = with_holding()
    fake = HoldingRight("H2", "mallory", "R1", Scope(), Term(ON), Origin.TRANSFERRED, "H1")
    book = RightsBook([*book.values(), fake])
    with pytest.raises(BrokenChainOfTitle, match="not transferred to it"):
        chain_of_title("H2", book)


def test_a_cycle_breaks_the_chain() -> None:
    a = ProcessingUseRight("A", "x", "R", Scope(), Term(ON, END), Origin.TRANSFERRED, "B")
    b = ProcessingUseRight("B", "y", "R", Scope(), Term(ON, END), Origin.TRANSFERRED, "A")
    with pytest.raises(BrokenChainOfTitle):
        chain_of_title("A", RightsBook([a, b]))


def test_descendants_are_transitive() -> None:
    book = with_product(with_licence(with_holding()))
    assert {r.id for r in descendants(book, "H1")} == {"P1", "O1"}
    assert descendants(book, "O1") == ()


def test_refusals_are_domain_errors_with_a_rule_in_the_message() -> None:
    with pytest.raises(DomainError) as exc:
        transfer(
            pledged_book(), "H1", new_right_id="H2", from_party="alice", to_party="carol", on=ON
        )
    assert "{rule}" in exc.value.message
    assert exc.value.params["rule"] == "REG-PLEDGE-LOCK"
    assert "(rule REG-PLEDGE-LOCK)" in str(exc.value)


def test_a_successor_carrying_an_older_licence_can_still_be_renewed() -> None:
    """Found by the state machine: the licence starts before its licensor's successor does."""
    book = with_licence(with_holding(term=Term(START, date(2027, 12, 31))))
    book = transfer(
        book, "H1", new_right_id="H2", from_party="alice", to_party="carol", on=date(2026, 6, 1)
    ).apply(book)
    book = renew(book, "H2", by="carol", new_end=date(2029, 12, 31), on=date(2026, 6, 2)).apply(
        book
    )
    assert audit_book(book) == ()
    # ... but not shortened below the licence it carries.
    with pytest.raises(InvalidScope, match="P1"):
        renew(book, "H2", by="carol", new_end=date(2026, 12, 31), on=date(2026, 6, 2))


def test_narrowing_through_transfers_keeps_the_chain_whole() -> None:
    """Found by the state machine: the chain compares titles as they are now."""
    wide = Scope(purposes={"research", "industry"})
    book = with_licence(with_holding(scope=wide), scope=wide)
    book = transfer(book, "P1", new_right_id="P2", from_party="bob", to_party="carol", on=ON).apply(
        book
    )
    book = amend(book, "P2", by="carol", on=ON, scope=Scope(purposes={"research"})).apply(book)
    book = amend(book, "H1", by="alice", on=ON, scope=Scope(purposes={"research"})).apply(book)
    assert [r.id for r in chain_of_title("P2", book).links] == ["P2", "P1", "H1"]
    assert audit_book(book) == ()
    with pytest.raises(InvalidScope, match="P2"):
        amend(book, "H1", by="alice", on=ON, scope=Scope(purposes={"industry"}))
