"""Random sequences of rights operations keep every invariant of the registry.

A hypothesis state machine grants holding rights, licenses, derives products, transfers, pledges,
releases, amends, cancels, revokes, suspends, reinstates and lets time pass (expiring rights the
way the services' daily sweep will), on a small world of parties, resources and products with a
fixed lineage, choosing arguments freely so that many operations are refused. Whatever happens:

* every right in force has an unbroken chain of title to original holding rights;
* no licence's scope or term exceeds its parent's, no product right's its bases';
* an asset has one holding right and a product one product-operation right still claiming it;
* a pledged right never changes holder (every transfer of it is refused with REG-PLEDGE-LOCK),
  is never licensed from or cancelled;
* after a cancellation or revocation, nothing derived from the right is in force, and the
  parties told are exactly the holders and pledgees of what was suspended;
* a right a cascade suspended whose chain of title is whole again does not stay suspended;
* a refusal is always a ``RegistryError`` naming a rule of the rules file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from datafactor.registry import (
    DIMENSIONS,
    PRODUCT_DIMENSIONS,
    Origin,
    RegistryError,
    RegistryRules,
    Right,
    RightKind,
    RightPledged,
    RightsBook,
    RightsChange,
    RightStatus,
    Scope,
    Term,
    amend,
    audit_book,
    cancel,
    chain_of_title,
    derive_product_operation,
    descendants,
    expire,
    grant_holding,
    license,
    load_registry_rules,
    pledge,
    reinstate,
    release_pledge,
    revoke,
    suspend,
    transfer,
)

PARTIES = ("p0", "p1", "p2", "p3")
RESOURCES = ("R0", "R1", "R2", "R3")
LINEAGE = {"X0": ["R0"], "X1": ["R1", "R2"], "X2": ["X0", "R3"]}
PRODUCTS = tuple(LINEAGE)
VOCABULARY = {
    "purposes": ("research", "industry", "public_welfare"),
    "fields": ("a", "b", "c"),
    "regions": ("CN", "450000", "450100", "450102", "450200"),
    "delivery_modes": ("api", "sandbox", "download"),
}
BEGIN = date(2026, 1, 5)


def dimension(name: str) -> st.SearchStrategy[frozenset[str] | None]:
    return st.none() | st.frozensets(st.sampled_from(VOCABULARY[name]), min_size=1)


scopes = st.builds(
    Scope,
    purposes=dimension("purposes"),
    fields=dimension("fields"),
    regions=dimension("regions"),
    delivery_modes=dimension("delivery_modes"),
)
picks = st.integers(min_value=0, max_value=10**6)
mostly = st.sampled_from([True, True, True, False])  # arguments that usually make sense
offsets = st.integers(min_value=-20, max_value=20)
lengths = st.integers(min_value=0, max_value=900)


class RightsMachine(RuleBasedStateMachine):
    """The world, the book, and what the invariants need to remember."""

    rules_file: RegistryRules = load_registry_rules()

    def __init__(self) -> None:
        super().__init__()
        self.book = RightsBook()
        self.today = BEGIN
        self.serial = 0
        # right id -> holder when pledged (a pledged right must keep it)
        self.pledged_holder: dict[str, str] = {}

    # --- helpers ---------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def pick(self, index: int, live: bool = False, pledged: bool = False) -> Right | None:
        """A right of the book: among those in force (or pledged) when asked and there are any."""
        ids = sorted(self.book)
        if live:
            ids = sorted(i for i in ids if self.book[i].live) or ids
        if pledged:
            ids = sorted(i for i in ids if self.book[i].pledge is not None) or ids
        return self.book[ids[index % len(ids)]] if ids else None

    def term(self, offset: int, length: int | None) -> Term:
        start = self.today + timedelta(days=offset)
        return Term(start, None if length is None else start + timedelta(days=length))

    def attempt(
        self, operation: Callable[..., RightsChange | None], *args: object, **kwargs: object
    ) -> RightsChange | None:
        try:
            change = operation(*args, rules=self.rules_file, **kwargs)
        except RegistryError as exc:
            # Every refusal names a rule of the rules file.
            self.rules_file.by_id(exc.rule)
            return None
        if change is not None:
            self.book = change.apply(self.book)
        return change

    # --- operations --------------------------------------------------------------------------

    @initialize(holders=st.lists(st.sampled_from(PARTIES), min_size=4, max_size=4), scope=scopes)
    def a_world_with_holders(self, holders: list[str], scope: Scope) -> None:
        """Start from a registered world: every resource has a holder (some hold several)."""
        for asset, holder in zip(RESOURCES, holders, strict=True):
            self.attempt(
                grant_holding,
                self.book,
                right_id=self.new_id("H"),
                holder_id=holder,
                asset_id=asset,
                scope=scope,
                term=Term(self.today - timedelta(days=30)),
                on=self.today,
            )

    @rule(
        asset=st.sampled_from(RESOURCES),
        holder=st.sampled_from(PARTIES),
        scope=scopes,
        offset=offsets,
        length=st.none() | lengths,
    )
    def grant(self, asset: str, holder: str, scope: Scope, offset: int, length: int | None) -> None:
        self.attempt(
            grant_holding,
            self.book,
            right_id=self.new_id("H"),
            holder_id=holder,
            asset_id=asset,
            scope=scope,
            term=self.term(offset, length),
            on=self.today,
        )

    def narrower(self, data: st.DataObject, scope: Scope, dims: tuple[str, ...]) -> Scope:
        """A scope within ``scope`` on ``dims`` (most of the time), or any scope."""
        if not data.draw(st.booleans().map(lambda b: b or data.draw(st.booleans()))):
            return data.draw(scopes)
        chosen: dict[str, frozenset[str] | None] = {}
        for name in DIMENSIONS:
            values = scope.dimension(name)
            if values is None or name not in dims:
                chosen[name] = data.draw(dimension(name))
            else:
                chosen[name] = data.draw(st.frozensets(st.sampled_from(sorted(values)), min_size=1))
        return Scope(**chosen)

    def inner_term(self, data: st.DataObject, terms: list[Term]) -> Term:
        """A term within every one of ``terms`` starting about today (most of the time)."""
        start = max([self.today, *(t.start for t in terms)]) + timedelta(
            days=data.draw(st.integers(-3, 10))
        )
        ends = [t.end for t in terms if t.end is not None]
        limit = min(ends) if ends else start + timedelta(days=900)
        room = max((limit - start).days, 0)
        length = data.draw(st.integers(0, room + data.draw(st.sampled_from([0, 0, 0, 30]))))
        return Term(start, start + timedelta(days=length))

    @precondition(lambda self: len(self.book) > 0)
    @rule(
        index=picks,
        licensee=st.sampled_from(PARTIES),
        by_holder=mostly,
        live=mostly,
        data=st.data(),
    )
    def licence(
        self, index: int, licensee: str, by_holder: bool, live: bool, data: st.DataObject
    ) -> None:
        parent = self.pick(index, live=live)
        assert parent is not None
        licensor = parent.holder_id if by_holder else licensee
        before = self.book
        change = self.attempt(
            license,
            self.book,
            parent.id,
            right_id=self.new_id("P"),
            licensor_id=licensor,
            licensee_id=licensee,
            scope=self.narrower(data, parent.scope, DIMENSIONS),
            term=self.inner_term(data, [parent.term]),
            on=self.today,
        )
        if parent.pledge is not None:
            assert change is None, "a pledged right was licensed from"
        if change is not None:
            child = change.right
            assert child.scope.within(parent.scope)
            assert child.term.within(parent.term)
            assert before[parent.id].holder_id == licensor

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks, sensible=mostly, data=st.data())
    def derive(self, index: int, sensible: bool, data: st.DataObject) -> None:
        # Mostly a party and a product whose sources that party holds rights on, so the lineage
        # can be covered; otherwise anything.
        def leaves(product: str) -> set[str]:
            found = set(LINEAGE[product])
            while any(s in LINEAGE for s in found):
                found = {leaf for s in found for leaf in LINEAGE.get(s, [s])}
            return found

        covering = {
            party: {r.asset_id for r in self.book.values() if r.holder_id == party and r.live}
            for party in PARTIES
        }
        pairs = sorted(
            (party, product)
            for party in PARTIES
            for product in PRODUCTS
            if leaves(product) <= covering[party]
        )
        if not sensible or not pairs:
            pairs = [(party, product) for party in PARTIES for product in PRODUCTS]
        holder, product = pairs[index % len(pairs)]
        held = [
            r
            for r in self.book.values()
            if r.holder_id == holder
            and r.asset_id in leaves(product)
            and r.live
            and r.kind is not RightKind.PRODUCT_OPERATION
        ]
        base = held[0].scope if held else Scope()
        change = self.attempt(
            derive_product_operation,
            self.book,
            right_id=self.new_id("O"),
            holder_id=holder,
            product_id=product,
            lineage=LINEAGE,
            scope=self.narrower(data, base, PRODUCT_DIMENSIONS),
            term=self.inner_term(data, [r.term for r in held]),
            on=self.today,
        )
        if change is not None:
            right = change.right
            for basis_id in right.basis_ids:
                basis = self.book[basis_id]
                assert basis.holder_id == holder
                assert basis.kind in (RightKind.HOLDING, RightKind.PROCESSING_USE)
                assert right.scope.within(basis.scope, PRODUCT_DIMENSIONS)

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks, to=st.sampled_from(PARTIES), live=mostly)
    def transfer_right(self, index: int, to: str, live: bool) -> None:
        right = self.pick(index, live=live)
        assert right is not None
        change = self.attempt(
            transfer,
            self.book,
            right.id,
            new_right_id=self.new_id("T"),
            from_party=right.holder_id,
            to_party=to,
            on=self.today,
        )
        if right.pledge is not None:
            assert change is None
            with pytest.raises(RightPledged) as refused:
                transfer(
                    self.book,
                    right.id,
                    new_right_id="probe",
                    from_party=right.holder_id,
                    to_party=to,
                    on=self.today,
                    rules=self.rules_file,
                )
            assert refused.value.rule == "REG-PLEDGE-LOCK"
        if change is not None:
            (ended,) = change.updated
            (successor,) = change.created
            assert ended.status is RightStatus.TRANSFERRED
            assert successor.scope == right.scope
            assert successor.holder_id == to
            assert successor.kind is right.kind

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks, pledgee=st.sampled_from(PARTIES), live=mostly)
    def pledge_right(self, index: int, pledgee: str, live: bool) -> None:
        right = self.pick(index, live=live)
        assert right is not None
        change = self.attempt(
            pledge,
            self.book,
            right.id,
            holder_id=right.holder_id,
            pledgee_id=pledgee,
            on=self.today,
        )
        if change is not None:
            self.pledged_holder[right.id] = right.holder_id

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks, by_pledgee=mostly, pledged=mostly)
    def release(self, index: int, by_pledgee: bool, pledged: bool) -> None:
        right = self.pick(index, pledged=pledged)
        assert right is not None
        by = right.pledge.pledgee_id if right.pledge is not None and by_pledgee else right.holder_id
        change = self.attempt(release_pledge, self.book, right.id, by=by)
        if change is not None:
            assert by_pledgee
            self.pledged_holder.pop(right.id, None)

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks, length=st.none() | lengths, live=mostly, data=st.data())
    def change(self, index: int, length: int | None, live: bool, data: st.DataObject) -> None:
        right = self.pick(index, live=live)
        assert right is not None
        scope = self.narrower(data, right.scope, DIMENSIONS)
        term = Term(
            right.term.start, None if length is None else right.term.start + timedelta(days=length)
        )
        self.attempt(
            amend, self.book, right.id, by=right.holder_id, on=self.today, scope=scope, term=term
        )

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks, revoking=st.booleans(), live=mostly, pledged=st.booleans())
    def end(self, index: int, revoking: bool, live: bool, pledged: bool) -> None:
        right = self.pick(index, live=live, pledged=pledged)
        assert right is not None
        derived = descendants(self.book, right.id)
        if revoking:
            change = self.attempt(revoke, self.book, right.id)
        else:
            change = self.attempt(cancel, self.book, right.id, by=right.holder_id)
            if right.pledge is not None:
                assert change is None, "a pledged right was cancelled"
        if change is None:
            return
        ended = {RightStatus.CANCELLED, RightStatus.REVOKED}
        assert change.right.status in ended
        for d in derived:
            assert not self.book[d.id].live, f"{d.id} derives from {right.id} and is in force"
        suspended = change.suspended
        assert {r.id for r in suspended} == {d.id for d in derived if d.live}
        told = {r.holder_id for r in suspended} | {
            r.pledge.pledgee_id for r in suspended if r.pledge is not None
        }
        if revoking:
            told |= {right.holder_id} | (
                {right.pledge.pledgee_id} if right.pledge is not None else set()
            )
        assert change.notify == told

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks, live=mostly)
    def suspend_right(self, index: int, live: bool) -> None:
        right = self.pick(index, live=live)
        assert right is not None
        self.attempt(suspend, self.book, right.id)

    @precondition(lambda self: len(self.book) > 0)
    @rule(index=picks)
    def reinstate_right(self, index: int) -> None:
        right = self.pick(index)
        assert right is not None
        self.attempt(reinstate, self.book, right.id, on=self.today)

    @rule(days=st.integers(min_value=1, max_value=120))
    def time_passes(self, days: int) -> None:
        self.today += timedelta(days=days)
        change = expire(self.book, self.today, rules=self.rules_file)
        if change is not None:
            self.book = change.apply(self.book)
            assert all(r.status is RightStatus.EXPIRED for r in change.updated)

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def the_book_is_sound(self) -> None:
        assert audit_book(self.book, rules=self.rules_file) == ()

    @invariant()
    def every_right_in_force_has_a_chain_of_title(self) -> None:
        for right in self.book.values():
            if right.live:
                chain = chain_of_title(right.id, self.book, rules=self.rules_file)
                for root in chain.roots:
                    assert root.kind is RightKind.HOLDING
                    assert root.origin is Origin.ORIGINAL
                if right.term.covers(self.today):
                    chain_of_title(right.id, self.book, on=self.today, rules=self.rules_file)

    @invariant()
    def no_child_exceeds_its_parent(self) -> None:
        """Every right still claiming title lies within what it comes from: its licensor's title
        as it is now (through transfers), the right it succeeds, the bases of a product right.
        Starts are compared with the records at grant; ended rights are history."""
        claiming = {RightStatus.ACTIVE, RightStatus.PLEDGED, RightStatus.SUSPENDED}
        for right in self.book.values():
            if right.status not in claiming:
                continue
            if right.parent_id is not None:
                parent = self.book[right.parent_id]
                if right.origin is Origin.LICENSED:
                    bound = self.book.current(parent.id)
                    assert right.scope.within(bound.scope, DIMENSIONS)
                    assert right.term.ends_within(bound.term)
                    assert right.term.start >= parent.term.start
                else:
                    assert right.scope.within(parent.scope, DIMENSIONS)
                    if right.kind is not RightKind.HOLDING:
                        assert right.term.ends_within(parent.term)
            for basis_id in right.basis_ids:
                basis = self.book[basis_id]
                bound = self.book.current(basis_id)
                assert right.scope.within(bound.scope, PRODUCT_DIMENSIONS)
                assert right.term.ends_within(bound.term)
                assert right.term.start >= basis.term.start

    @invariant()
    def pledged_rights_keep_their_holder(self) -> None:
        for right_id, holder in self.pledged_holder.items():
            right = self.book[right_id]
            if right.pledge is not None:
                assert right.holder_id == holder
                assert right.status is not RightStatus.TRANSFERRED
                assert self.book.successor(right_id) is None

    @invariant()
    def nothing_derived_from_an_ended_right_is_in_force(self) -> None:
        for right in self.book.values():
            if right.status in (RightStatus.CANCELLED, RightStatus.REVOKED):
                assert not any(d.live for d in descendants(self.book, right.id))

    @invariant()
    def cascade_suspensions_last_only_while_the_chain_is_broken(self) -> None:
        for right in self.book.values():
            if (
                right.status is RightStatus.SUSPENDED
                and right.suspended_by != right.id
                and (right.term.end is None or right.term.end >= self.today)
            ):
                try:
                    chain_of_title(right.id, self.book, rules=self.rules_file)
                except RegistryError:
                    continue
                raise AssertionError(f"{right.id} is suspended with a whole chain of title")


RightsMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_rights_keep_their_invariants = RightsMachine.TestCase


class SublicensingMachine(RightsMachine):
    """The same invariants when the operator allows sub-licensing."""

    rules_file = dataclasses.replace(load_registry_rules(), sublicensing_allowed=True)


SublicensingMachine.TestCase.settings = settings(max_examples=75, stateful_step_count=40)
test_rights_keep_their_invariants_with_sublicensing = SublicensingMachine.TestCase
