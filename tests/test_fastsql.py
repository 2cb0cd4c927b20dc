"""Compiled statements on the session's connection (``fastsql``), on both databases: what a
use case sees when one of them fails inside a savepoint and it carries on in the same
transaction (the deadline sweep and the grants monitor try each item so; the settlement's
journal insert and the auction's close run in savepoints)."""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from datafactor.audit import AuditChainHead
from datafactor.fastsql import Plan, Raw

_HEAD = cast(Table, AuditChainHead.__table__)
_READ_HEAD = Plan(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1))
_ADD_HEAD = Plan(insert(_HEAD), keys=("id", "seq", "hash", "event_seq"))
_MOVE_HEAD = Plan(update(_HEAD).where(_HEAD.c.id == 1).values(seq=bindparam("seq")))
_TAKEN = {"id": 1, "seq": 0, "hash": "0" * 64, "event_seq": 0}  # the head's id is taken: refused


@pytest.mark.parametrize("raw_made", ["before", "inside"])
def test_a_savepoint_undoes_the_compiled_statements_run_in_it(db, raw_made):
    """What ran in a savepoint that failed is undone, and the unit of work carries on."""
    with db.write() as s:
        raw = Raw.of(s)
        before = raw.first(_READ_HEAD)
        assert before is not None
        savepoint = s.begin_nested()
        inner = raw if raw_made == "before" else Raw.of(s)
        inner.execute(_MOVE_HEAD, {"seq": before[0] + 99})
        with pytest.raises(IntegrityError):  # SQLAlchemy's exception, as the ORM raises it
            inner.execute(_ADD_HEAD, _TAKEN)
        savepoint.rollback()
        assert Raw.of(s).first(_READ_HEAD) == before  # the move went with the savepoint
        assert raw.all(_READ_HEAD) == [before]
    with db.read() as s:
        assert s.get(AuditChainHead, 1).seq == before[0]


def test_a_failed_statement_leaves_the_next_ones_running(db):
    with db.write() as s:
        raw = Raw.of(s)
        before = raw.first(_READ_HEAD)
        with pytest.raises(IntegrityError), s.begin_nested():
            raw.execute(_ADD_HEAD, _TAKEN)
        assert raw.first(_READ_HEAD) == before
