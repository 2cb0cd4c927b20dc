"""The trustee's grants under a deed, through the grants core, on both databases: a grant within
the deed becomes active once its licence is certified; a grant beyond the deed is refused with
the core's reason; a request is decided by the trustee; misuse suspends a grant; ending the deed
ends its grants; a grant's fee is income of the trust."""

from __future__ import annotations

from datetime import date

import pytest
import registry_support as rs
from grants_support import certify_licence
from grants_support import state_of as grant_state
from trusts_support import IN_TERM, SCOPE, Trust, established, make_trust

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.policy.grants import GrantDraft, GrantState
from datafactor.policy.templates import get_template
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import IncomeSource, policy_within
from datafactor.registry import services as registry
from datafactor.settings import Settings

GRANT_END = date(2027, 6, 30)


@pytest.fixture
def trust(db: Database, settings: Settings) -> Trust:
    return make_trust(db, settings)


def _policy(purposes: tuple[str, ...] = ("credit_finance",), scope=SCOPE) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return policy_within(
        get_template("sandbox-aggregates").document(), scope, purposes=list(purposes)
    )


def _draft(trust: Trust, grantee: str | None = None, **kw) -> GrantDraft:  # type: ignore[no-untyped-def]
    values = {
        "asset_id": trust.asset_id,
        "grantee_id": grantee or trust.stranger.party_id,
        "policy": _policy(),
        "term_start": IN_TERM,
        "term_end": GRANT_END,
        "purpose_note": "小微企业信贷风控建模",
        "fee_fen": 2_000_000,
    }
    values.update(kw)
    return GrantDraft(**values)


def _grant(db: Database, settings: Settings, trust: Trust, deed_id: str, **kw) -> str:  # type: ignore[no-untyped-def]
    with db.write() as s:
        row = services.grant_use(
            s,
            trust.trustee,
            deed_id,
            _draft(trust, **kw),
            issuer=registry.issuer_for(settings),
            today=IN_TERM,
        )
        assert row.regime == "data_trust" and row.reference_id == deed_id
        assert row.holder_id == trust.settlor.party_id and row.agent_id == trust.trustee.party_id
        return row.id


def test_the_trustees_grant_becomes_active_when_its_licence_is_certified(
    db: Database, settings: Settings, trust: Trust
) -> None:
    deed_id = established(db, trust)
    grant_id = _grant(db, settings, trust, deed_id)
    assert grant_state(db, trust.trustee, grant_id) is GrantState.APPROVED
    registrar = rs.principal(db, trust.actors["registrar"])
    certify_licence(db, registrar, trust.trustee, grant_id, registry.issuer_for(settings), IN_TERM)
    assert grant_state(db, trust.trustee, grant_id) is GrantState.ACTIVE
    with db.read() as s:
        assert [g.id for g in services.deed_grants(s, deed_id)] == [grant_id]
    # The grant's fee is income of the trust, split at once.
    draft = services.IncomeDraft(2_000_000, IN_TERM, IncomeSource.GRANT_FEE, grant_id=grant_id)
    with db.write() as s:
        income = services.record_income(s, trust.trustee, deed_id, draft, today=IN_TERM)
        assert income.grant_id == grant_id
    # Income naming a grant that is not under the deed is refused.
    other = services.IncomeDraft(100, IN_TERM, IncomeSource.GRANT_FEE, grant_id="not-a-grant")
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.record_income(s, trust.trustee, deed_id, other, today=IN_TERM)
    assert exc.value.rule == "TRUST-GRANT"  # type: ignore[attr-defined]


def test_a_grant_beyond_the_deed_is_refused_with_the_reason(
    db: Database, settings: Settings, trust: Trust
) -> None:
    deed_id = established(db, trust)
    wide = dict(SCOPE, purposes=["credit_finance", "industry"])
    for draft in (
        # a purpose the deed does not allow
        _draft(trust, policy=_policy(("industry",), scope=wide)),
        # a term beyond the deed's
        _draft(trust, term_end=date(2029, 6, 30)),
    ):
        with pytest.raises(DomainError) as exc, db.write() as s:
            services.grant_use(
                s,
                trust.trustee,
                deed_id,
                draft,
                issuer=registry.issuer_for(settings),
                today=IN_TERM,
            )
        assert getattr(exc.value, "rule", None), exc.value  # the grants core names its rule
    # Only the trustee grants under the deed; only the deed's data.
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.grant_use(
            s,
            trust.settlor,
            deed_id,
            _draft(trust),
            issuer=registry.issuer_for(settings),
            today=IN_TERM,
        )
    assert exc.value.rule == "TRUST-GRANT"  # type: ignore[attr-defined]
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.grant_use(
            s,
            trust.trustee,
            deed_id,
            _draft(trust, asset_id="another-asset"),
            issuer=registry.issuer_for(settings),
            today=IN_TERM,
        )
    assert exc.value.rule == "TRUST-GRANT"  # type: ignore[attr-defined]
    with db.read() as s:
        assert services.deed_grants(s, deed_id) == []


def test_a_request_is_decided_by_the_trustee(
    db: Database, settings: Settings, trust: Trust
) -> None:
    deed_id = established(db, trust)
    with db.write() as s:
        requested = services.request_use(
            s,
            trust.stranger,
            deed_id,
            _draft(trust, grantee=trust.stranger.party_id),
            today=IN_TERM,
        ).id
    assert grant_state(db, trust.stranger, requested) is GrantState.REQUESTED
    with db.write() as s:
        services.decide_use(
            s,
            trust.trustee,
            deed_id,
            requested,
            approve=True,
            issuer=registry.issuer_for(settings),
            today=IN_TERM,
        )
    assert grant_state(db, trust.stranger, requested) is GrantState.APPROVED


def test_misuse_suspends_the_grant_and_ending_the_deed_ends_its_grants(
    db: Database, settings: Settings, trust: Trust
) -> None:
    deed_id = established(db, trust)
    grant_id = _grant(db, settings, trust, deed_id)
    registrar = rs.principal(db, trust.actors["registrar"])
    certify_licence(db, registrar, trust.trustee, grant_id, registry.issuer_for(settings), IN_TERM)
    with db.write() as s:
        record = services.record_misuse(
            s,
            trust.trustee,
            deed_id,
            grant_id,
            description="将聚合结果转售第三方，违反禁止转让条款",
            today=IN_TERM,
        )
        assert record.grantee_id == trust.stranger.party_id
    assert grant_state(db, trust.trustee, grant_id) is GrantState.SUSPENDED
    with db.read() as s:
        assert len(services.list_misuse(s, trust.settlor, deed_id)) == 1
        assert services.list_misuse(s, trust.beneficiary, deed_id) == []
    with db.write() as s:
        services.terminate_deed(
            s,
            trust.regulator,
            deed_id,
            reason="受托人报告数据滥用",
            order_reference="桂数监〔2026〕7号",
            today=IN_TERM,
        )
    assert grant_state(db, trust.trustee, grant_id) is GrantState.REVOKED


# --- only the trustee acts on the trust's grants; the trust property is ring-fenced ------------


def _active_grant(db: Database, settings: Settings, trust: Trust, deed_id: str) -> str:
    grant_id = _grant(db, settings, trust, deed_id)
    registrar = rs.principal(db, trust.actors["registrar"])
    certify_licence(db, registrar, trust.trustee, grant_id, registry.issuer_for(settings), IN_TERM)
    return grant_id


def test_the_settlor_does_not_act_on_the_trustees_grants(
    db: Database, settings: Settings, trust: Trust
) -> None:
    """The settlor gave the data to the trustee to manage: it neither suspends, resumes nor
    revokes the trustee's grants — not even to lift a suspension for misuse."""
    from datafactor.policy import grants

    deed_id = established(db, trust)
    grant_id = _active_grant(db, settings, trust, deed_id)
    with db.write() as s:
        services.record_misuse(
            s, trust.trustee, deed_id, grant_id, description="转售", today=IN_TERM
        )
    for act in (grants.resume_grant, grants.revoke_grant, grants.suspend_grant):
        with pytest.raises(DomainError) as exc, db.write() as s:
            act(s, trust.settlor, grant_id, reason="委托人干预", today=IN_TERM)
        assert exc.value.status == 403 and exc.value.rule == "GRT-MANDATE"  # type: ignore[attr-defined]
    assert grant_state(db, trust.trustee, grant_id) is GrantState.SUSPENDED
    with db.write() as s:  # the trustee, who suspended it, may resume it
        grants.resume_grant(s, trust.trustee, grant_id, reason="核查完毕", today=IN_TERM)
    assert grant_state(db, trust.trustee, grant_id) is GrantState.ACTIVE


def test_trust_property_is_granted_only_under_its_deed(
    db: Database, settings: Settings, trust: Trust
) -> None:
    from grants_support import policy

    from datafactor.policy import grants

    deed_id = established(db, trust)
    direct = GrantDraft(
        asset_id=trust.asset_id,
        grantee_id=trust.stranger.party_id,
        policy=policy(purposes=("industry",), channels=("api",), regions=("CN-GX",)),
        term_start=IN_TERM,
        term_end=GRANT_END,
    )
    issuer = registry.issuer_for(settings)
    with pytest.raises(DomainError) as exc, db.write() as s:
        grants.offer_grant(s, trust.settlor, direct, issuer=issuer, today=IN_TERM)
    assert exc.value.rule == "GRT-ASSET-HELD"  # type: ignore[attr-defined]
    assert "GX-XT-" in str(exc.value)  # names the deed holding it
    with pytest.raises(DomainError) as exc, db.write() as s:
        grants.request_grant(s, trust.stranger, direct, today=IN_TERM)
    assert exc.value.rule == "GRT-ASSET-HELD"  # type: ignore[attr-defined]
    # Under the deed, by its trustee: granted.
    _grant(db, settings, trust, deed_id)
    # Once the deed has ended the settlor's data is its own to grant again.
    with db.write() as s:
        services.terminate_deed(
            s,
            trust.regulator,
            deed_id,
            reason="监管责令终止",
            order_reference="桂数监〔2026〕8号",
            today=IN_TERM,
        )
    with db.write() as s:
        assert grants.offer_grant(s, trust.settlor, direct, issuer=issuer, today=IN_TERM).state == (
            "approved"
        )


def test_the_trustee_does_not_grant_the_trust_data_to_itself(
    db: Database, settings: Settings, trust: Trust
) -> None:
    from datafactor.policy import grants

    deed_id = established(db, trust)
    issuer = registry.issuer_for(settings)
    to_itself = _draft(trust, grantee=trust.trustee.party_id, fee_fen=0)
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.grant_use(s, trust.trustee, deed_id, to_itself, issuer=issuer, today=IN_TERM)
    assert exc.value.rule == "TRUST-SELF-DEALING"  # type: ignore[attr-defined]
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.request_use(s, trust.trustee, deed_id, to_itself, today=IN_TERM)
    assert exc.value.rule == "TRUST-SELF-DEALING"  # type: ignore[attr-defined]
    # The grants core refuses it under any mandate, whoever calls it.
    with db.read() as s:
        mandate = services.mandate_of(s, services.get_deed(s, trust.trustee, deed_id))
    with pytest.raises(DomainError) as exc, db.write() as s:
        grants.offer_grant(
            s, trust.trustee, to_itself, mandate=mandate, issuer=issuer, today=IN_TERM
        )
    assert exc.value.rule == "GRT-AGENT-SELF"  # type: ignore[attr-defined]
    with db.read() as s:
        assert services.deed_grants(s, deed_id) == []


def test_ending_the_deed_ends_the_licences_of_its_grants(
    db: Database, settings: Settings, trust: Trust
) -> None:
    """The deed is terminated: its active grant's licence right is revoked in the registry and
    its approved grant's licence application withdrawn — no licence outlives the deed."""
    deed_id = established(db, trust)
    active = _active_grant(db, settings, trust, deed_id)
    approved = _grant(db, settings, trust, deed_id)
    with db.write() as s:
        services.terminate_deed(
            s,
            trust.regulator,
            deed_id,
            reason="监管责令终止",
            order_reference="桂数监〔2026〕8号",
            today=IN_TERM,
        )
    from datafactor.policy import grants

    with db.read() as s:
        ended = grants.get_grant(s, trust.trustee, active)
        assert ended.state == "revoked"
        assert registry.right_of(s, ended.licence_right_id).status.value == "revoked"  # type: ignore[union-attr]
        pending = grants.get_grant(s, trust.trustee, approved)
        assert pending.state == "revoked"
        outcome = registry.application_outcome(s, pending.licence_application_id)  # type: ignore[arg-type]
        assert outcome is not None and outcome.state == "withdrawn"


def test_a_request_names_no_deed_its_asker_may_not_see(
    db: Database, settings: Settings, trust: Trust
) -> None:
    """A deed not in effect is not found for anyone who cannot see it (its number and state are
    not told); a user without the request permission is refused before anything is read."""
    from factories import make_actor
    from trusts_support import drafted

    from datafactor.identity import PartyKind

    deed_id = drafted(db, trust)
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.request_use(s, trust.stranger, deed_id, _draft(trust), today=IN_TERM)
    assert exc.value.status == 404 and "GX-XT-" not in str(exc.value)
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.request_use(s, trust.stranger, "no-such-deed", _draft(trust), today=IN_TERM)
    assert exc.value.status == 404
    auditor = rs.principal(db, make_actor(db, PartyKind.ENTERPRISE, roles=("auditor",)))
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.request_use(s, auditor, deed_id, _draft(trust), today=IN_TERM)
    assert exc.value.status == 403 and "policy:grant:request" in str(exc.value)
    # Its settlor, who sees the draft, is told why.
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.request_use(s, trust.settlor, deed_id, _draft(trust), today=IN_TERM)
    assert exc.value.status == 409 and exc.value.rule == "TRUST-GRANT"  # type: ignore[attr-defined]


def test_a_request_does_not_slip_in_while_the_deed_is_ended(
    db: Database, settings: Settings, trust: Trust
) -> None:
    """A request racing the deed's termination waits for the deed's lock and then finds the
    deed ended: no request is left under an ended deed."""
    import threading

    deed_id = established(db, trust)
    outcome: list[str] = []

    def ask() -> None:
        try:
            with db.write() as s:
                services.request_use(s, trust.stranger, deed_id, _draft(trust), today=IN_TERM)
            outcome.append("requested")
        except DomainError as exc:
            outcome.append(str(exc.status))

    with db.write() as s:
        services.terminate_deed(
            s,
            trust.regulator,
            deed_id,
            reason="监管责令终止",
            order_reference="桂数监〔2026〕8号",
            today=IN_TERM,
        )
        asker = threading.Thread(target=ask)
        asker.start()  # it blocks on the deed until this transaction commits
    asker.join()
    assert outcome == ["404"]
    with db.read() as s:
        assert services.deed_grants(s, deed_id) == []
