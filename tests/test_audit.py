"""The audit trail: one event per change, a hash chain that names the first broken event."""

from __future__ import annotations

import threading

from factories import bearer, make_actor
from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner

from datafactor import audit
from datafactor.identity import PartyKind


def chain(db):
    with db.read() as s:
        return audit.verify_chain(s)


def count(db):
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(audit.AuditEvent))


def named_after_losing(db, seq):
    """The event a check names once event ``seq`` is gone or forged: the next one in its chain
    (its link breaks), or ``seq`` itself when it was its chain's last (its head says more)."""
    with db.read() as s:
        event = s.get(audit.AuditEvent, seq)
        after = s.scalar(
            select(audit.AuditEvent.seq).where(
                audit.AuditEvent.chain == event.chain,
                audit.AuditEvent.chain_seq == event.chain_seq + 1,
            )
        )
    return seq if after is None else after


def test_each_change_writes_exactly_one_event_with_the_request_id(client, db, enterprise):
    headers = bearer(client, enterprise)
    before = count(db)
    r = client.post(
        "/api/v1/tokens",
        headers={**headers, "X-Request-ID": "req-abc-123"},
        json={"name": "one", "expires_in_days": 1},
    )
    assert r.status_code == 201
    assert count(db) == before + 1
    with db.read() as s:
        last = s.scalar(select(audit.AuditEvent).order_by(audit.AuditEvent.seq.desc()).limit(1))
    assert (last.action, last.request_id, last.party_id) == (
        "identity:token:create",
        "req-abc-123",
        enterprise.party_id,
    )
    assert last.actor_username == enterprise.username
    # A refused change writes nothing.
    r = client.post("/api/v1/tokens", headers=headers, json={"name": "", "expires_in_days": 1})
    assert r.status_code == 422
    assert count(db) == before + 1


def test_chain_verifies_and_names_the_altered_event(db):
    for _ in range(3):
        make_actor(db)
    report = chain(db)
    assert report.ok and report.events == count(db) >= 6
    with db.write() as s:
        s.execute(
            update(audit.AuditEvent)
            .where(audit.AuditEvent.seq == 3)
            .values(summary="nothing to see here")
        )
    report = chain(db)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "altered" in report.problem


def test_deleted_event_in_the_middle_is_named(db):
    for _ in range(3):
        make_actor(db)
    named = named_after_losing(db, 2)
    with db.write() as s:
        s.execute(delete(audit.AuditEvent).where(audit.AuditEvent.seq == 2))
    report = chain(db)
    assert (report.ok, report.broken_seq) == (False, named)
    assert "missing" in report.problem or "removed from the end" in report.problem


def test_truncated_tail_is_detected(db):
    for _ in range(2):
        make_actor(db)
    last = count(db)
    with db.write() as s:
        s.execute(delete(audit.AuditEvent).where(audit.AuditEvent.seq == last))
    report = chain(db)
    assert not report.ok and report.broken_seq == last


def test_rehashed_forgery_is_caught_by_the_next_link(db):
    for _ in range(2):
        make_actor(db)
    named = named_after_losing(db, 2)
    with db.write() as s:
        event = s.get(audit.AuditEvent, 2)
        event.summary = "forged"
        event.hash = audit.event_hash(audit._hashed_fields(event))
    report = chain(db)
    assert (report.ok, report.broken_seq) == (False, named)


def test_concurrent_writers_never_fork_the_chain(db):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                make_actor(db)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = chain(db)
    assert report.ok and report.events == 4 * 3 * 2


def test_cli_verify_names_the_first_broken_event(db, db_url, monkeypatch):
    from datafactor.cli import app as cli
    from datafactor.settings import get_settings

    make_actor(db)
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        ok = CliRunner().invoke(cli, ["audit", "verify"])
        assert ok.exit_code == 0, ok.output
        assert "OK" in ok.output
        with db.write() as s:
            s.execute(
                update(audit.AuditEvent)
                .where(audit.AuditEvent.seq == 1)
                .values(actor_username="mallory")
            )
        bad = CliRunner().invoke(cli, ["audit", "verify"])
        assert bad.exit_code == 1
        assert "event 1" in bad.output
    finally:
        get_settings.cache_clear()


def test_audit_visibility(client, db, enterprise, other_enterprise, regulator):
    mine = client.get("/api/v1/audit/events", headers=bearer(client, enterprise)).json()
    assert mine["total"] >= 1
    assert {e["party_id"] for e in mine["items"]} == {enterprise.party_id}
    everything = client.get("/api/v1/audit/events", headers=bearer(client, regulator)).json()
    assert {enterprise.party_id, other_enterprise.party_id} <= {
        e["party_id"] for e in everything["items"]
    }
    filtered = client.get(
        f"/api/v1/audit/events?party_id={other_enterprise.party_id}&action=identity:user",
        headers=bearer(client, regulator),
    ).json()
    assert filtered["total"] >= 1
    assert all(e["action"].startswith("identity:user") for e in filtered["items"])
    staff = make_actor(db, PartyKind.ENTERPRISE, roles=("staff",))
    r = client.get("/api/v1/audit/events", headers=bearer(client, staff))
    assert r.status_code == 403


def test_a_large_batch_of_events_makes_one_unbroken_chain(db):
    """``record_many`` takes any number of events in one go (a sweep's): all written, chained,
    and the head moved to the last one — PostgreSQL's limit of parameters per statement
    notwithstanding."""
    before = count(db)
    with db.write() as s:
        events = audit.record_many(
            s,
            [
                {
                    "actor": None,
                    "action": "test:batch",
                    "object_type": "test",
                    "object_id": str(i),
                    "summary": f"event {i}",
                    "party_id": None,
                    "reasons": ["T-1"],
                }
                for i in range(5_100)
            ],
        )
    assert [e.object_id for e in events[:2]] == ["0", "1"]
    assert count(db) == before + 5_100
    report = chain(db)
    assert report.ok and report.head_seq == count(db), report
    # One transaction's events are one run of one chain.
    assert len({e.chain for e in events}) == 1
    assert [e.chain_seq for e in events] == list(
        range(events[0].chain_seq, events[0].chain_seq + 5_100)
    )


def test_postgresql_writers_spread_over_chains_each_checked(db):
    """SQLite writes one chain; on PostgreSQL each transaction picks one of several (writers on
    different chains do not wait for each other), and the check walks every one of them."""
    for _ in range(12):
        make_actor(db)
    with db.read() as s:
        chains = dict(
            s.execute(
                select(audit.AuditEvent.chain, func.max(audit.AuditEvent.seq)).group_by(
                    audit.AuditEvent.chain
                )
            ).all()
        )
    if db.is_sqlite:
        assert set(chains) == {1}
    else:  # 12 transactions all on one of 8 chains: 8**-11
        assert len(chains) > 1 and set(chains) <= set(range(1, audit.CHAINS + 1))
    report = chain(db)
    assert report.ok and report.events == count(db) == report.head_seq
    with db.read() as s:
        assert report.head_hash == audit.heads_digest(audit.chain_heads(s))
    victim_chain = max(chains)
    with db.write() as s:
        s.execute(
            update(audit.AuditEvent)
            .where(audit.AuditEvent.seq == chains[victim_chain])
            .values(summary="rewritten")
        )
    report = chain(db)
    assert (report.ok, report.chain, report.broken_seq) == (
        False,
        victim_chain,
        chains[victim_chain],
    )
