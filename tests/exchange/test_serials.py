"""The exchange's numbers (``exchange.serials``), on both databases: each year's serials start
at 1 and increase; concurrent takers never get the same number; a year numbered by row
counters before the sequences keeps counting on; on PostgreSQL a rolled-back step leaves a gap
(nothing waits on a lock through another step's commit), on SQLite it does not."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from datafactor.db import Database
from datafactor.exchange import serials
from datafactor.exchange.models import ExchangeSerial


def _take(db: Database, kind: str, year: int) -> int:
    with db.write() as s:
        return serials.take(s, kind, year)


def test_each_year_counts_from_one(db):
    assert [_take(db, "C", 2026) for _ in range(3)] == [1, 2, 3]
    assert _take(db, "O", 2026) == 1  # kinds count apart
    assert [_take(db, "C", 2027) for _ in range(2)] == [1, 2]
    # A late step of the old year goes on above its numbers (on PostgreSQL past the values the
    # new year drew from the kind's sequence meanwhile).
    assert _take(db, "C", 2026) == (4 if db.is_sqlite else 6)


def test_several_kinds_drawn_together_count_as_taken_apart(db):
    def many(*wanted: tuple[str, int]) -> list[int]:
        with db.write() as s:
            return serials.take_many(s, list(wanted))

    # The first of a year for either kind: its row is made, and it starts at one.
    assert many(("C", 2030), ("O", 2030)) == [1, 1]
    assert many(("C", 2030), ("O", 2030)) == [2, 2]
    assert _take(db, "C", 2030) == 3
    assert many(("O", 2030), ("C", 2030)) == [3, 4]
    assert many(("C", 2031), ("O", 2030)) == [1, 4]  # one kind's year new, the other's not


def test_concurrent_takers_get_distinct_numbers(db):
    racing = Database(db.url, pool_size=12)
    barrier = threading.Barrier(12)

    def one(n: int) -> list[int]:
        barrier.wait()
        return [_take(racing, "O", 2026 + n % 2) for _ in range(5)]

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            taken = list(pool.map(one, range(12)))
    finally:
        racing.dispose()
    for year in (0, 1):
        numbers = [x for n, got in enumerate(taken) if n % 2 == year for x in got]
        assert len(set(numbers)) == len(numbers) == 30
        assert min(numbers) >= 1


def test_a_year_numbered_before_the_sequences_goes_on(db):
    with db.write() as s:
        s.add(ExchangeSerial(kind="C", year=2026, last_serial=41, sequence_base=None))
    assert [_take(db, "C", 2026), _take(db, "C", 2026)] == [42, 43]


def test_a_rolled_back_number_is_a_gap_only_on_postgresql(db):
    assert _take(db, "A", 2026) == 1

    class Refused(Exception):
        pass

    try:
        with db.write() as s:
            serials.take(s, "A", 2026)
            raise Refused
    except Refused:
        pass
    assert _take(db, "A", 2026) == (2 if db.is_sqlite else 3)
    with db.read() as s:
        row = s.scalars(select(ExchangeSerial).where(ExchangeSerial.kind == "A")).one()
    assert (row.sequence_base is None) == db.is_sqlite
