"""The census's rules without a database: request checks, the run state machine's timeouts,
progress, and how figures add up to the province."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datafactor.census.domain import (
    CensusStatus,
    DepartmentTotals,
    RunClock,
    RunTimeouts,
    SweepAction,
    Totals,
    check_reason,
    check_sample_rows,
    check_schema,
    overran,
    progress_percent,
    roll_up,
    sweep_action,
    table_pi_types,
)
from datafactor.errors import InvalidInput

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
LIMITS = RunTimeouts(
    heartbeat_stale=timedelta(seconds=60),
    queue_timeout=timedelta(hours=24),
    max_run=timedelta(hours=24),
    max_attempts=3,
)


def clock(
    status: str,
    *,
    queued: int = 0,
    started: int | None = None,
    beat: int | None = None,
    cancel: bool = False,
    attempts: int = 1,
) -> RunClock:
    """Times given as seconds before NOW."""

    def ago(seconds: int | None) -> datetime | None:
        return None if seconds is None else NOW - timedelta(seconds=seconds)

    return RunClock(
        status, NOW - timedelta(seconds=queued), ago(started), ago(beat), cancel, attempts
    )


def test_sample_rows_default_and_bounds():
    assert check_sample_rows(None, 10_000) == 10_000
    assert check_sample_rows(5, 10_000) == 5
    for bad in (0, -1, 1_000_001, True):
        with pytest.raises(InvalidInput) as caught:
            check_sample_rows(bad, 10_000)  # type: ignore[arg-type]
        assert caught.value.field == "sample_rows"


def test_schema_filter_is_trimmed_and_checked():
    assert check_schema("  ") is None
    assert check_schema(None) is None
    assert check_schema(" public ") == "public"
    for bad in ("x" * 129, "a\x00b", "tab\there"):
        with pytest.raises(InvalidInput):
            check_schema(bad)


def test_reason_is_required():
    assert check_reason("  卡住了  很久 ") == "卡住了 很久"
    with pytest.raises(InvalidInput):
        check_reason("   ")


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (clock("queued", queued=60), None),
        (clock("queued", queued=25 * 3600), SweepAction.EXPIRE),
        (clock("running", started=600, beat=10), None),
        (clock("running", started=600, beat=120), SweepAction.REQUEUE),
        (clock("running", started=600, beat=120, cancel=True), SweepAction.CANCEL),
        (clock("running", started=600, beat=120, attempts=3), SweepAction.GIVE_UP),
        (clock("running", started=25 * 3600, beat=5), SweepAction.TIME_OUT),
        (clock("succeeded", queued=10**6), None),
        (clock("failed", queued=10**6), None),
        (clock("cancelled", queued=10**6), None),
    ],
)
def test_every_non_final_state_has_a_timeout(run, expected):
    assert sweep_action(run, NOW, LIMITS) == expected


def test_overran():
    assert not overran(None, NOW, LIMITS)
    assert not overran(NOW - timedelta(hours=1), NOW, LIMITS)
    assert overran(NOW - timedelta(hours=25), NOW, LIMITS)


def test_progress_is_tables_read_of_tables_listed():
    assert progress_percent(0, None, CensusStatus.QUEUED) is None
    assert progress_percent(0, 0, CensusStatus.RUNNING) == 0
    assert progress_percent(3, 4, CensusStatus.RUNNING) == 75
    assert progress_percent(3, 4, CensusStatus.SUCCEEDED) == 100
    assert progress_percent(9, 4, CensusStatus.RUNNING) == 100


def test_pi_types_are_personal_types_in_column_order():
    columns = [
        {"name": "a", "entity_types": ["cn_mobile"]},
        {"name": "b", "entity_types": ["cn_uscc"]},
        {"name": "c", "entity_types": ["cn_resident_id", "cn_mobile"]},
        {"name": "d"},
    ]
    personal = {"cn_mobile", "cn_resident_id"}
    assert table_pi_types(columns, personal) == ("cn_mobile", "cn_resident_id")


def totals(
    tables: int,
    rows: int,
    *,
    pi: int = 0,
    sensitive: int = 0,
    failed: int = 0,
    important: int = 0,
    quality: float | None = None,
) -> Totals:
    t = Totals()
    read = tables - failed
    t.add_group(
        tables=tables - important,
        tables_read=read - important,
        tables_failed=failed,
        rows=rows,
        columns=tables * 3,
        pi_tables=pi,
        sensitive_tables=sensitive,
        grade="general",
        quality_sum=None if quality is None else quality * read,
        quality_count=0 if quality is None else read,
    )
    if important:
        t.add_group(
            tables=important,
            tables_read=important,
            tables_failed=0,
            rows=None,
            columns=None,
            pi_tables=0,
            sensitive_tables=0,
            grade="important",
            quality_sum=None,
            quality_count=0,
        )
    return t


def test_totals_roll_up_to_the_province():
    a = DepartmentTotals("a", "民政局", NOW, 1, totals(5, 1000, pi=2, sensitive=1, quality=90.0))
    b = DepartmentTotals("b", "交通运输局", NOW, 2, totals(8, 50, failed=1, important=2))
    c = DepartmentTotals("c", "卫健委", None, 1, totals(5, 7, pi=5, sensitive=5, quality=70.0))
    rollup = roll_up([c, a, b])
    assert [d.party_id for d in rollup.departments] == ["b", "c", "a"]  # most tables, then name
    p = rollup.province
    assert (p.tables, p.tables_read, p.tables_failed) == (18, 17, 1)
    assert p.rows == 1057
    assert p.columns == 15 + 24 + 15
    assert (p.pi_tables, p.sensitive_tables) == (7, 6)
    assert p.grades == {"general": 15, "important": 2, "core": 0}
    assert p.quality_average == 80.0  # (90 × 5 + 70 × 5) / 10
    assert p.as_dict()["grades"]["important"] == 2


def test_empty_rollup():
    rollup = roll_up([])
    assert rollup.departments == ()
    assert rollup.province.tables == 0
    assert rollup.province.quality_average is None
