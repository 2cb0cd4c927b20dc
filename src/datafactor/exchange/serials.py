"""The exchange's numbers (``GX-<prefix>-<year>-<serial>``): the serial of a kind within a year.

SQLite runs one writer at a time, so the serial is the per-year counter row's ``last_serial``
bumped in the writer's transaction: no gaps, nothing held that another writer could wait for.

On PostgreSQL a counter row locked until commit would make every trade of the year wait for the
one before it — through that trade's commit and its WAL flush — which is what bounded the
exchange's trade rate. There each kind draws from its own sequence (``exchange_serial_<kind>``,
created by the migrations), which holds no lock: the serial is the drawn value minus the year's
``sequence_base``, the sequence's last value when the year's first number was taken. Numbers are
unique and increase within a year, but a step that rolls back after drawing (a refused trade, a
deadlock retried) leaves a gap, as a bank's transaction numbers do; the register of contracts is
their rows, not the number range.

The year's row is created by its first taker with the sequence's last value at that moment, and
every later taker reads the row before it draws (in one statement), so each value drawn for the
year is above its base: values drawn before the row existed were at most that last value, and
a concurrent first taker waits on the row's key until the other commits (or rolls back and
retries its own). A value drawn for the old year after the new year's row exists is still
unique and above the old year's base.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Select, bindparam, func, literal_column, select, update
from sqlalchemy import Sequence as SqlSequence
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor.exchange.models import ExchangeSerial
from datafactor.fastsql import Plan, Raw

# Every kind that has a number; each has its sequence on PostgreSQL (migration 0017).
KINDS: Final = ("L", "O", "C", "A", "N")


def sequence_name(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown exchange serial kind {kind!r}")
    return f"exchange_serial_{kind.lower()}"


_S = ExchangeSerial
_BUMP: Final = Plan(
    update(_S)
    .where(_S.kind == bindparam("s_kind"), _S.year == bindparam("s_year"))
    .values(last_serial=_S.last_serial + 1)
    .returning(_S.last_serial)
)


def _draw(kind: str, tag: str = "") -> Select[Any]:
    return select(SqlSequence(sequence_name(kind)).next_value() - _S.sequence_base).where(
        _S.kind == bindparam(f"s_kind{tag}"),
        _S.year == bindparam(f"s_year{tag}"),
        _S.sequence_base.is_not(None),
    )


def _base_plan(kind: str) -> Plan:
    last = func.coalesce(
        func.pg_sequence_last_value(literal_column(f"'{sequence_name(kind)}'::regclass")), 0
    )
    # A row from before the sequences keeps its numbers: its base is set below the sequence's
    # last value by the serials it already issued.
    return Plan(
        pg_insert(_S)
        .values(kind=bindparam("s_kind"), year=bindparam("s_year"), last_serial=0)
        .values(sequence_base=last)
        .on_conflict_do_update(
            index_elements=[_S.kind, _S.year],
            set_={"sequence_base": last - _S.last_serial},
            where=_S.sequence_base.is_(None),
        )
    )


_DRAW: Final = {kind: Plan(_draw(kind)) for kind in KINDS}
_BASE: Final = {kind: _base_plan(kind) for kind in KINDS}
# (kinds) → PostgreSQL's one statement drawing a serial of each (``take_many``).
_DRAW_MANY: dict[tuple[str, ...], Plan] = {}


def take(session: Session, kind: str, year: int, raw: Raw | None = None) -> int:
    """The next serial of ``kind`` in ``year`` (see the module's note: gapless on SQLite, from
    the kind's sequence on PostgreSQL). Pending ORM changes are flushed first."""
    raw = raw or Raw.of(session)
    params = {"s_kind": kind, "s_year": year}
    if raw.is_sqlite:
        bumped = raw.first(_BUMP, params)
        if bumped is None:
            try:
                with session.begin_nested():
                    session.add(ExchangeSerial(kind=kind, year=year, last_serial=0))
            except IntegrityError:
                pass  # a concurrent first one of the year created it: bump that row instead
            bumped = raw.first(_BUMP, params)
        assert bumped is not None
        return int(bumped[0])
    draw = _DRAW[kind]
    for _ in range(3):
        drawn = raw.first(draw, params)
        if drawn is not None:
            return int(drawn[0])
        # The year's first number (or a row from before the sequences, without its base): the
        # row gets the sequence's last value; a concurrent creator makes this wait for its end.
        raw.execute(_BASE[kind], params)
    raise RuntimeError(f"exchange serial {kind}/{year} has no sequence base (run the migrations)")


def take_many(
    session: Session, wanted: Sequence[tuple[str, int]], raw: Raw | None = None
) -> list[int]:
    """``take`` of each (kind, year) in ``wanted``, in order; on PostgreSQL drawn in one
    statement (a trade numbers its contract and its order: one round trip, not two)."""
    raw = raw or Raw.of(session)
    if raw.is_sqlite or len(wanted) < 2:
        return [take(session, kind, year, raw) for kind, year in wanted]
    kinds = tuple(kind for kind, _ in wanted)
    plan = _DRAW_MANY.get(kinds)
    if plan is None:
        for kind in kinds:
            sequence_name(kind)  # an unknown kind is refused before anything is built
        plan = _DRAW_MANY[kinds] = Plan(
            select(*(_draw(kind, str(i)).scalar_subquery() for i, kind in enumerate(kinds)))
        )
    params: dict[str, Any] = {}
    for i, (kind, year) in enumerate(wanted):
        params[f"s_kind{i}"], params[f"s_year{i}"] = kind, year
    drawn = raw.first(plan, params)
    assert drawn is not None  # a select without FROM: one row
    # A year without its row yet (its first number) drew nothing: ``take`` creates the row.
    return [
        int(value) if value is not None else take(session, kind, year, raw)
        for value, (kind, year) in zip(drawn, wanted, strict=True)
    ]
