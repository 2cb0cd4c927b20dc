"""Quality profile: indicators, scoring, rules from YAML, merging and persistence of the state."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import datasketches as ds
import numpy as np
import pyarrow as pa
import pytest
import yaml

from datafactor.discovery import scan_column
from datafactor.discovery.corpus import generate_value
from datafactor.discovery.quality import (
    HLL_LG_K,
    QualityProfiler,
    QualityRules,
    _Column,
    _murmur3,
    _RowSample,
    load_quality_rules,
    profile_batches,
    rate,
)

RULES_FILE = Path(__file__).resolve().parents[2] / "src/datafactor/discovery/rules/quality.yaml"
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def _ids(n: int, seed: int = 7) -> list[str]:
    """Valid 18-character resident IDs from the corpus generator."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        value = generate_value("cn_resident_id", rng)
        if len(value) == 18:
            out.append(value)
    return out


def _birth(rid: str) -> str:
    return f"{rid[6:10]}-{rid[10:12]}-{rid[12:14]}"


def _profile(table: pa.Table, chunk: int = 1000, **options: object) -> QualityProfiler:
    profiler = QualityProfiler(table.schema, now=NOW, **options)  # type: ignore[arg-type]
    for batch in table.to_batches(max_chunksize=chunk):
        profiler.update(batch)
    return profiler


def _mixed_table(n: int = 3000, seed: int = 3) -> pa.Table:
    rng = random.Random(seed)
    ids = _ids(n, seed)
    phones = [generate_value("cn_mobile", rng) for _ in range(n)]
    for i in range(0, n, 97):
        phones[i] = None  # type: ignore[call-overload]
    rows = {
        "身份证号": ids,
        "出生日期": [_birth(r) for r in ids],
        "手机号": phones,
        "城市": [rng.choice(["南宁", "柳州", "桂林", "无", ""]) for _ in range(n)],
        "金额": [round(rng.uniform(0, 1000), 2) if i % 50 else None for i in range(n)],
        "数量": [rng.randrange(1, 5) for _ in range(n)],
        "单价": [f"{rng.randrange(1, 500)}.{rng.randrange(100):02d}" for _ in range(n)],
        "下单日期": [dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(300)) for _ in range(n)],
    }
    table = pa.table(rows)
    # Some repeated rows.
    index = list(range(n))
    for i in range(100, n, 211):
        index[i] = i - 1
    return table.take(pa.array(index))


# --- completeness --------------------------------------------------------------------------------


def test_nulls_blanks_and_placeholders_are_missing_cells() -> None:
    values = ["a1", None, "", "   ", "NULL", "无", "n/a", "b2", "c3", "d4"]
    table = pa.table({"备注": values, "数量": list(range(10))})
    result = _profile(table).result()
    column = result.columns[0]
    assert (column.nulls, column.blanks, column.placeholders) == (1, 2, 3)
    assert column.filled_rate == pytest.approx(0.4)
    filled = result.indicators["filled_cells"]
    assert filled.value == pytest.approx(1 - 6 / 20)
    assert result.indicators["complete_records"].value == pytest.approx(0.4)


# --- normativity ---------------------------------------------------------------------------------


def test_pattern_conformance_is_the_share_of_dominant_patterns() -> None:
    rng = random.Random(1)
    phones = ["138" + "".join(rng.choice("0123456789") for _ in range(8)) for _ in range(95)]
    phones += ["abc", "12-34", "xyz!", "0", "not a phone"]
    result = _profile(pa.table({"手机号": phones})).result()
    column = result.columns[0]
    assert column.pattern_level == "fine"
    assert column.conformance == pytest.approx(0.95)
    assert column.patterns[0] == ("99999999999", pytest.approx(0.95))
    assert result.indicators["pattern_conformance"].value == pytest.approx(0.95)


def test_declared_format_in_field_metadata_is_checked_instead() -> None:
    field = pa.field("编码", pa.string(), metadata={"format": r"SKU-\d{4}"})
    values = [f"SKU-{i:04d}" for i in range(18)] + ["SKU-12", "sku-0001"]
    table = pa.table([pa.array(values)], schema=pa.schema([field]))
    column = _profile(table).result().columns[0]
    assert column.pattern_level == "declared"
    assert column.conformance == pytest.approx(0.9)


def test_numbers_written_as_text_get_quantiles() -> None:
    prices = [f"{i}.50" for i in range(1, 101)] + ["n/a", "12.5.1"]
    column = _profile(pa.table({"单价": prices})).result().columns[0]
    assert column.quantiles is not None
    assert column.quantiles["from_text"] is True
    assert (column.quantiles["min"], column.quantiles["max"]) == (1.5, 100.5)
    assert column.quantiles["n"] == 100
    phones = [generate_value("cn_mobile", random.Random(i)) for i in range(50)]
    phones = [p for p in phones if p.isdigit()]
    finding = scan_column("手机号", phones)
    profiled = _profile(pa.table({"手机号": phones})).result([finding]).columns[0]
    assert profiled.quantiles is None  # a phone number is not a quantity


def test_free_text_has_no_pattern_to_conform_to() -> None:
    rng = random.Random(2)
    words = ["备注", "please", "call", "周末", "ok", "请送货", "x"]
    text = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 6))) for _ in range(200)]
    result = _profile(pa.table({"备注": text})).result()
    assert result.columns[0].conformance is None
    assert "pattern_conformance" in result.not_assessed


# --- accuracy ------------------------------------------------------------------------------------


def test_check_digit_validity_comes_from_the_findings() -> None:
    ids = _ids(200)
    broken = [r[:17] + ("0" if r[17] != "0" else "1") for r in ids[:10]]
    values = broken + ids[10:]
    table = pa.table({"身份证号": values})
    finding = scan_column("身份证号", values)
    assert "cn_resident_id" in finding.types
    result = _profile(table).result([finding])
    indicator = result.indicators["check_digit_validity"]
    assert indicator.value == pytest.approx(finding.ratios["cn_resident_id"])
    assert indicator.value == pytest.approx(0.95)
    assert result.columns[0].check_digit_validity == pytest.approx(0.95)


def test_check_digits_not_assessed_without_findings_or_check_digit_columns() -> None:
    table = pa.table({"城市": ["南宁"] * 20})
    profiler = _profile(table)
    assert profiler.result().indicators["check_digit_validity"].reason.code == "no-findings"  # type: ignore[union-attr]
    finding = scan_column("城市", ["南宁"] * 20)
    reason = profiler.result([finding]).indicators["check_digit_validity"].reason
    assert reason is not None
    assert reason.code == "no-check-digit-columns"


# --- consistency ---------------------------------------------------------------------------------


def test_duplicate_rows_are_counted() -> None:
    base = [{"a": i, "b": f"x{i}"} for i in range(90)]
    rows = base + base[:10]
    table = pa.Table.from_pylist(rows)
    indicator = _profile(table, chunk=33).result().indicators["distinct_rows"]
    assert indicator.value == pytest.approx(0.9)
    assert indicator.details["exact"] is True
    assert indicator.details["estimated_duplicate_rows"] == 10


def test_duplicate_sample_estimates_and_merges_exactly() -> None:
    gen = np.random.default_rng(5)
    hashes = gen.integers(0, 2**63, 20_000, dtype=np.uint64) * np.uint64(2)
    rows = np.concatenate([hashes, hashes[:2_000]])  # 2,000 duplicates of 22,000 rows
    whole = _RowSample(cap=2048)
    whole.update(rows)
    rate_, _, _ = whole.duplicate_rate()
    assert not whole.exact
    assert rate_ == pytest.approx(2_000 / 22_000, abs=0.02)
    left, right = _RowSample(cap=2048), _RowSample(cap=2048)
    left.update(rows[:7_777])
    right.update(rows[7_777:])
    left.merge(right)
    assert left.theta == whole.theta
    assert np.array_equal(left.hashes, whole.hashes)
    assert np.array_equal(left.counts, whole.counts)


def test_birth_date_in_resident_id_must_match_the_birth_date_column() -> None:
    ids = _ids(50)
    births = [_birth(r) for r in ids]
    births[7] = "1901-01-01" if births[7] != "1901-01-01" else "1902-02-02"
    table = pa.table({"身份证号": ids, "出生日期": births})
    indicator = _profile(table).result().indicators["cross_field_rules"]
    [rule] = indicator.details["rules"]
    assert (rule["rule"], rule["checked"], rule["failed"]) == ("id_birth_date", 50, 1)
    assert indicator.value == pytest.approx(49 / 50)


def test_cross_field_rules_find_id_columns_by_content_and_dates_as_dates() -> None:
    ids = _ids(40)
    births = [dt.date(int(r[6:10]), int(r[10:12]), int(r[12:14])) for r in ids]
    births[0] = dt.date(1900, 1, 2)
    sexes = ["男" if int(r[16]) % 2 else "女" for r in ids]
    sexes[1] = "女" if sexes[1] == "男" else "男"
    rng = random.Random(4)
    orders = ["20" + "".join(rng.choice("0123456789") for _ in range(16)) for _ in ids]
    table = pa.table({"col_a": ids, "订单号": orders, "birthday": births, "性别": sexes})
    details = _profile(table).result().indicators["cross_field_rules"].details
    found = {(r["rule"], r["columns"][0], r["failed"]) for r in details["rules"]}
    # The order numbers have the shape of IDs but not their check digits: no rule pairs them.
    assert found == {("id_birth_date", "col_a", 1), ("id_gender", "col_a", 1)}


def test_findings_that_deny_resident_ids_drop_the_id_rules() -> None:
    ids = _ids(30)
    table = pa.table({"身份证号": ids, "出生日期": [_birth(r) for r in ids]})
    profiler = _profile(table)
    finding = scan_column("身份证号", ["x"] * 30)
    reason = profiler.result([finding]).indicators["cross_field_rules"].reason
    assert reason is not None
    assert reason.code == "no-cross-field-rule"


def test_start_date_after_end_date_fails_the_order_rule() -> None:
    starts = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    ends = [s + dt.timedelta(days=30) for s in starts]
    ends[3] = starts[3] - dt.timedelta(days=1)
    table = pa.table({"开始日期": starts, "结束日期": ends})
    [rule] = _profile(table).result().indicators["cross_field_rules"].details["rules"]
    assert (rule["rule"], rule["checked"], rule["failed"]) == ("date_order", 20, 1)


# --- timeliness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "lag", "value"),
    [
        ("daily", dt.timedelta(days=10), 0.0),
        ("每日", dt.timedelta(hours=12), 1.0),
        ("weekly", dt.timedelta(days=10), 1 - (10 / 7 - 1) / 2),
        ("P1D", dt.timedelta(days=2), 0.5),
    ],
)
def test_update_lag_against_the_declared_frequency(
    frequency: str, lag: dt.timedelta, value: float
) -> None:
    table = pa.table({"a": [1, 2, 3]})
    profiler = _profile(table, declared_frequency=frequency, last_updated=NOW - lag)
    indicator = profiler.result().indicators["update_lag"]
    assert indicator.value == pytest.approx(value)
    assert indicator.details["lag_hours"] == pytest.approx(lag.total_seconds() / 3600)


def test_daily_data_ten_days_late() -> None:
    profiler = _profile(
        pa.table({"a": [1]}), declared_frequency="daily", last_updated=NOW - dt.timedelta(days=10)
    )
    result = profiler.result()
    lag = result.indicators["update_lag"]
    assert lag.score == 0.0
    assert lag.details["lag_periods"] == pytest.approx(10.0)
    assert lag.details["on_time"] is False
    assert result.dimension("timeliness").score == 0.0


def test_timeliness_not_assessed_without_inputs_or_with_an_unknown_frequency() -> None:
    table = pa.table({"a": [1]})
    codes = [
        _profile(table, **kwargs).result().indicators["update_lag"].reason.code  # type: ignore[union-attr,arg-type]
        for kwargs in (
            {},
            {"declared_frequency": "daily"},
            {"declared_frequency": "fortnightly-ish", "last_updated": NOW},
        )
    ]
    assert codes == ["no-frequency", "no-last-update", "unknown-frequency"]


# --- accessibility -------------------------------------------------------------------------------


def test_accessibility_from_schema_names_types_and_warnings() -> None:
    table = pa.table({"col_1": [1, 2], "姓名": ["a", "b"], "blob": pa.array([b"x", b"y"])})
    result = _profile(table).result(warnings=0)
    assert result.indicators["schema_present"].value == pytest.approx(2 / 3)
    assert result.indicators["readable_format"].value == pytest.approx(2 / 3)
    assert result.indicators["read_warnings"].value == 1.0
    worse = _profile(table).result(warnings=1)
    assert worse.indicators["read_warnings"].value == 0.0  # 1 warning in 3 rows: over 1 %


# --- scoring -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level"),
    [(100, 5), (90, 5), (89.99, 4), (80, 4), (79.99, 3), (70, 3), (60, 2), (59.99, 1), (0, 1)],
)
def test_rating_bands_at_their_boundaries(score: float, level: int) -> None:
    assert rate(score).level == level


def test_score_renormalises_over_what_was_assessed() -> None:
    table = _mixed_table(300)
    result = _profile(table).result()
    assert set(result.not_assessed) == {"check_digit_validity", "update_lag"}
    assert result.dimension("accuracy").score is None
    assert result.dimension("timeliness").score is None
    assessed = [d.score for d in result.dimensions if d.score is not None]
    assert len(assessed) == 4
    assert result.score == pytest.approx(sum(assessed) / 4, abs=0.01)
    assert result.coverage == pytest.approx(4 / 6)
    assert result.rating == rate(result.score).level
    consistency = result.dimension("consistency")
    expected = sum(i.score for i in consistency.indicators if i.score is not None) / 2
    assert consistency.score == pytest.approx(expected, abs=0.01)


def test_changing_a_weight_in_the_yaml_changes_the_score(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 1, 2, None], "col_2": ["x", "x", "y", "z"]})
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    base = _profile(table, rules=QualityRules.from_mapping(data)).result()
    data["dimensions"]["completeness"]["weight"] = 5.0
    path = tmp_path / "quality.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    heavier = _profile(table, rules=load_quality_rules(path)).result()
    assert heavier.score != base.score
    dims = {d.id: d for d in heavier.dimensions if d.score is not None}
    expected = sum(d.weight * d.score for d in dims.values()) / sum(  # type: ignore[operator]
        d.weight for d in dims.values()
    )
    assert heavier.score == pytest.approx(expected, abs=0.01)


def test_rules_file_is_checked() -> None:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    data["dimensions"]["accuracy"]["indicators"]["made_up"] = {"weight": 1}
    with pytest.raises(ValueError, match="made_up"):
        QualityRules.from_mapping(data)
    assert load_quality_rules().version == str(yaml.safe_load(RULES_FILE.read_text())["version"])


# --- sketches, merging, persistence --------------------------------------------------------------


def test_our_murmur3_is_the_hash_datasketches_uses() -> None:
    for key in (0, 1, 12345, 2**40 + 7, 2**63 - 1):
        sketch = ds.hll_sketch(HLL_LG_K, ds.HLL_8)
        sketch.update(key)
        coupon = int.from_bytes(sketch.serialize_compact()[8:12], "little")
        h1, h2 = _murmur3(np.array([key], dtype=np.uint64))
        leading = 64 - int(h2[0]).bit_length()
        assert coupon & ((1 << 26) - 1) == int(h1[0]) & ((1 << 26) - 1)
        assert coupon >> 26 == min(leading, 62) + 1


def test_feeding_only_improving_keys_gives_the_registers_of_feeding_all() -> None:
    gen = np.random.default_rng(9)
    keys = gen.integers(0, 2**63, 50_000, dtype=np.uint64)
    column = _Column("x", pa.string(), None)
    for part in np.array_split(keys, 7):
        column.feed_keys(part)
    everything = ds.hll_sketch(HLL_LG_K, ds.HLL_8)
    for key in keys.view(np.int64).tolist():
        everything.update(key)
    header = 40  # HLL_8 updatable form: header, then one byte per register
    assert column.hll.serialize_updatable()[header:] == everything.serialize_updatable()[header:]
    estimate, low, high = column.distinct()  # type: ignore[misc]
    assert low <= 50_000 <= high
    assert estimate == pytest.approx(50_000, rel=0.05)


def _comparable(profiler: QualityProfiler) -> dict[str, object]:
    result = profiler.result().as_dict()
    for column in result["columns"]:
        column.pop("quantiles")
    return result


@pytest.mark.parametrize("split", [1000, 1234])
def test_merge_of_halves_equals_the_whole(split: int) -> None:
    table = _mixed_table()
    whole = _profile(table)
    left = _profile(table.slice(0, split))
    right = _profile(table.slice(split))
    left.merge(right)
    assert _comparable(left) == _comparable(whole)
    for mine, theirs in zip(left.result().columns, whole.result().columns, strict=True):
        if mine.quantiles is None:
            continue
        assert mine.quantiles["n"] == theirs.quantiles["n"]  # type: ignore[index]
        assert mine.quantiles["min"] == theirs.quantiles["min"]  # type: ignore[index]
        assert mine.quantiles["max"] == theirs.quantiles["max"]  # type: ignore[index]
    amounts = next(c for c in whole.columns if c.name == "金额")
    merged = next(c for c in left.columns if c.name == "金额")
    assert merged.kll is not None and amounts.kll is not None
    error = amounts.kll.normalized_rank_error(False)
    median = merged.kll.get_quantile(0.5)
    assert abs(amounts.kll.get_rank(median) - 0.5) <= 2 * error


def test_merge_through_to_bytes_equals_the_whole() -> None:
    table = _mixed_table()
    whole = _profile(table)
    left = QualityProfiler.from_bytes(_profile(table.slice(0, 1500)).to_bytes())
    right = QualityProfiler.from_bytes(_profile(table.slice(1500)).to_bytes())
    left.merge(right)
    assert _comparable(left) == _comparable(whole)


def test_to_bytes_round_trip_and_refusals() -> None:
    table = _mixed_table(500)
    profiler = _profile(table, declared_frequency="daily", last_updated=NOW)
    again = QualityProfiler.from_bytes(profiler.to_bytes())
    assert again.result().as_dict() == profiler.result().as_dict()
    # The restored state goes on taking batches.
    more = table.slice(0, 100).to_batches()[0]
    profiler.update(more)
    again.update(more)
    assert _comparable(again) == _comparable(profiler)  # KLL compaction flips coins
    for damaged in (b"", b"nonsense", profiler.to_bytes()[:-3]):
        with pytest.raises(ValueError, match="quality profile state"):
            QualityProfiler.from_bytes(damaged)


def test_merge_refuses_other_schemas_and_rules() -> None:
    a = _profile(pa.table({"a": [1]}))
    with pytest.raises(ValueError, match="schemas"):
        a.merge(_profile(pa.table({"b": [1]})))
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    data["version"] = "other"
    with pytest.raises(ValueError, match="rules"):
        a.merge(_profile(pa.table({"a": [1]}), rules=QualityRules.from_mapping(data)))
    with pytest.raises(ValueError, match="schema"):
        a.update(pa.record_batch({"b": [1]}))


def test_profile_is_json_and_profile_batches_reads_ahead() -> None:
    table = _mixed_table(400)
    profiler = profile_batches(table.schema, table.to_batches(max_chunksize=64), now=NOW)
    assert profiler.rows == 400
    assert _comparable(profiler) == _comparable(_profile(table, chunk=64))
    text = json.dumps(profiler.result().as_dict(), ensure_ascii=False)
    assert '"rating"' in text

    def failing() -> object:
        yield table.to_batches()[0]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        profile_batches(table.schema, failing())  # type: ignore[arg-type]


def test_empty_table_is_scored_from_metadata_only() -> None:
    profiler = QualityProfiler(pa.schema([("姓名", pa.string())]), now=NOW)
    result = profiler.result()
    assert result.rows == 0
    assert "filled_cells" in result.not_assessed
    assert result.dimension("accessibility").score == 100.0
    assert 1 <= result.rating <= 5
