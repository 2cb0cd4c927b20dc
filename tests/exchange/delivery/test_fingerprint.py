"""The buyer fingerprint (exchange/fingerprint.py), pure: canaries embedded without touching a
real row, found again after the copy is stripped, shuffled, cut down or loses a column — and
never pinned on a buyer whose copy it is not."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from delivery_support import FIELDS, meter_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datafactor.exchange import fingerprint as fp

KEY = fp.derive_key("test-secret-key-test-secret-key-0123456789")
RULES = fp.FingerprintRules()


def text_table(rows: list[list[str]], names: tuple[str, ...] = FIELDS) -> tuple[pa.Schema, list]:
    schema = pa.schema([(n, pa.string()) for n in names])
    columns = list(zip(*rows, strict=True))
    batch = pa.RecordBatch.from_arrays([pa.array(c, pa.string()) for c in columns], schema=schema)
    cut = len(rows) // 3
    return schema, [batch.slice(0, cut), batch.slice(cut)]


def deliver(schema: pa.Schema, batches: list, mark: str | None = None):
    mark = mark or fp.new_mark()
    marked = fp.fingerprint(schema, batches, key=KEY, mark=mark, rules=RULES)
    table = pa.Table.from_batches(list(fp.embed(schema, batches, marked)), schema=schema)
    rows = [list(r) for r in zip(*(c.to_pylist() for c in table.columns), strict=True)]
    return marked, rows


def attribute(rows: list[list], buyers: dict[str, fp.Fingerprint]) -> tuple[str, ...]:
    index = fp.index_leak(rows, KEY)
    scores = {name: fp.score(index, f.record()) for name, f in buyers.items()}
    return fp.verdict(scores, examined=len(scores), rules=RULES).identified


# ---------------------------------------------------------------------------------- basics


@pytest.mark.parametrize(
    ("a", "b"),
    [("1.50", "1.5"), ("1.5e0", 1.5), (Decimal("2.000"), 2), (" 7 ", "7"), ("-0.0", "0")],
)
def test_numbers_compare_in_their_normal_form(a, b):
    assert fp.normalise(a) == fp.normalise(b)
    assert fp.digest(KEY, a) == fp.digest(KEY, b)


def test_text_is_compared_as_written_and_the_key_matters():
    assert fp.normalise("南宁") != fp.normalise("南寧")
    assert fp.digest(KEY, "站1") != fp.digest(fp.derive_key("another key"), "站1")


def test_canary_count_follows_the_rules():
    assert fp.canary_count(240, RULES) == 16  # the minimum
    assert fp.canary_count(100_000, RULES) == 256  # capped
    assert fp.canary_count(20_000, RULES) == 100  # 0.5 %
    assert fp.canary_count(40, RULES) == 4  # never more than 10 % of the rows
    assert fp.canary_count(5, RULES) == 0


def test_real_rows_are_delivered_untouched_and_in_order():
    rows = meter_rows()
    schema, batches = text_table(rows)
    marked, out = deliver(schema, batches)
    assert len(marked.canaries) == 16
    assert len(out) == len(rows) + 16
    canaries = {tuple(c.values) for c in marked.canaries}
    real = [r for r in out if tuple(r) not in canaries]
    assert real == rows


def test_every_canary_carries_a_value_found_nowhere_in_the_real_data():
    rows = meter_rows()
    schema, batches = text_table(rows)
    marked, _ = deliver(schema, batches)
    everything = {fp.normalise(v) for r in rows for v in r}
    for canary in marked.canaries:
        novel = [v for v, c in zip(canary.values, canary.cells, strict=True) if c.novel]
        assert novel
        assert all(fp.normalise(v) not in everything for v in novel)
        # it looks like the real rows: same fields, dates and stations copied from one
        assert canary.values[0] in {r[0] for r in rows}
        assert canary.values[1] in {r[1] for r in rows}


def test_canaries_look_like_their_column():
    rows = meter_rows()
    schema, batches = text_table(rows)
    marked, _ = deliver(schema, batches)
    for canary in marked.canaries:
        amount, load, temperature = canary.values[2:5]
        assert 5000 <= float(amount) <= 95000 and len(amount.split(".")[1]) == 2
        assert 0.3 <= float(load) <= 0.99 and len(load.split(".")[1]) == 3
        assert len(temperature.split(".")[1]) == 1


def test_the_stored_record_holds_digests_not_values():
    rows = meter_rows()
    schema, batches = text_table(rows)
    marked, _ = deliver(schema, batches)
    record = marked.record()
    # Only digests, bits and flags: each cell a hex digest, its bits and whether it is novel.
    assert set(record) == {"v", "rows", "canaries"} and record["canaries"]
    cells = [cell for canary in record["canaries"] for cell in canary]
    assert all(
        re.fullmatch(r"[0-9a-f]{16,}", digest) and isinstance(bits, int | float) and novel in (0, 1)
        for digest, bits, novel in cells
    )
    digests = {digest for digest, _, _ in cells}
    for canary in marked.canaries:
        for value in canary.values:
            # (Not a substring test: a short number such as "12" turns up inside a random hex
            # digest by chance.)
            assert str(value) not in digests and fp.normalise(value) not in digests


def test_the_same_mark_draws_the_same_canaries_and_another_mark_others():
    schema, batches = text_table(meter_rows())
    mark = fp.new_mark()
    first = fp.fingerprint(schema, batches, key=KEY, mark=mark, rules=RULES)
    again = fp.fingerprint(schema, batches, key=KEY, mark=mark, rules=RULES)
    other = fp.fingerprint(schema, batches, key=KEY, mark=fp.new_mark(), rules=RULES)
    assert first == again
    assert {c.values for c in first.canaries}.isdisjoint({c.values for c in other.canaries})


def test_a_table_with_nothing_to_vary_is_left_alone():
    rows = [[f"站{i % 5}", "是" if i % 2 else "否"] for i in range(200)]
    schema, batches = text_table(rows, ("站点", "在线"))
    marked, out = deliver(schema, batches)
    assert marked.canaries == ()
    assert out == rows


def test_typed_parquet_columns_get_canaries_of_their_own_type():
    r = random.Random(3)
    n = 300
    table = pa.table(
        {
            "day": pa.array([date(2025, 1, 1) + timedelta(days=i) for i in range(n)]),
            "count": pa.array([r.randint(0, 10**6) for _ in range(n)], pa.int64()),
            "price": pa.array([round(r.uniform(1, 500), 2) for _ in range(n)], pa.float64()),
            "fee": pa.array(
                [Decimal(r.randint(100, 99999)).scaleb(-2) for _ in range(n)], pa.decimal128(9, 2)
            ),
            "city": pa.array([f"城市{i % 9}" for i in range(n)]),
        }
    )
    batches = table.to_batches(max_chunksize=100)
    marked = fp.fingerprint(table.schema, batches, key=KEY, mark=fp.new_mark(), rules=RULES)
    assert marked.canaries
    out = pa.Table.from_batches(list(fp.embed(table.schema, batches, marked)))
    assert out.schema == table.schema
    assert out.num_rows == n + len(marked.canaries)
    buffer = io.BytesIO()
    pq.write_table(out, buffer)  # a copy passed around as Parquet, metadata and all
    leak = fp.read_leak(buffer.getvalue())
    assert attribute(leak.rows, {"me": marked}) == ("me",)


# ------------------------------------------------------------------------ reading a leak


def test_the_visible_mark_is_read_back_from_csv_and_parquet():
    mark = fp.new_mark()
    line = fp.header_line(mark, contract="GX-DC-2026-000001", buyer="甲公司,南宁", at="2026")
    data = ("\ufeff" + line + "\r\n日期,站点\r\n2025-01-01,站1\r\n").encode()
    leak = fp.read_leak(data)
    assert leak.declared_mark == mark
    assert leak.format == "csv"
    assert ["2025-01-01", "站1"] in leak.rows
    table = pa.table({"a": [1, 2]}).replace_schema_metadata(
        fp.parquet_metadata(mark, contract="C", buyer="B", at="T")
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    assert fp.read_leak(buffer.getvalue()).declared_mark == mark


def test_tab_separated_gbk_and_json_lines_are_read():
    tsv = "日期\t站点\n2025-01-01\t站1\n".encode("gb18030")
    assert ["2025-01-01", "站1"] in fp.read_leak(tsv).rows
    jsonl = b'{"a": "2025-01-01", "b": 1.5}\n{"a": "2025-01-02", "b": 2}\n'
    leak = fp.read_leak(jsonl)
    assert leak.format == "jsonl" and leak.rows[0] == ["2025-01-01", 1.5]


def test_a_spreadsheet_or_broken_parquet_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="CSV"):
        fp.read_leak(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="Parquet"):
        fp.read_leak(b"PAR1 not really")


# ------------------------------------------------------------------------- attribution


def three_buyers(seed: int, n: int) -> tuple[list[list[str]], dict[str, tuple]]:
    rows = meter_rows(n, seed)
    schema, batches = text_table(rows)
    return rows, {name: deliver(schema, batches) for name in ("A", "B", "C")}


def as_csv_bytes(rows: list[list], header: bool) -> bytes:
    out = io.StringIO()
    if header:
        out.write("# DataFactor delivery mark=0123456789abcdef\n")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def test_the_original_data_is_attributed_to_no_one():
    rows, copies = three_buyers(11, 240)
    assert attribute(rows, {k: v[0] for k, v in copies.items()}) == ()


@pytest.mark.parametrize("drop", [None, 0, 2, 3, 5])
@pytest.mark.parametrize("keep", [1.0, 0.5])
def test_a_stripped_shuffled_cut_copy_names_its_buyer(drop, keep):
    _, copies = three_buyers(12, 240)
    _, copy = copies["B"]
    leak = list(copy)
    random.Random(1).shuffle(leak)
    leak = leak[: int(len(leak) * keep)]
    if drop is not None:
        leak = [r[:drop] + r[drop + 1 :] for r in leak]
    read = fp.read_leak(as_csv_bytes(leak, header=False))
    assert read.declared_mark is None
    assert attribute(read.rows, {k: v[0] for k, v in copies.items()}) == ("B",)


def test_a_copy_reformatted_by_a_spreadsheet_still_names_its_buyer():
    _, copies = three_buyers(13, 240)
    _, copy = copies["A"]
    # trailing zeros dropped and columns reordered, as a spreadsheet might save it
    leak = [[r[4], r[0], fp.normalise(r[2]), fp.normalise(r[3]), r[1]] for r in copy]
    assert attribute(leak, {k: v[0] for k, v in copies.items()}) == ("A",)


def test_merged_copies_name_both_buyers_and_only_them():
    _, copies = three_buyers(14, 240)
    leak = copies["A"][1][:150] + copies["C"][1][100:]
    assert set(attribute(leak, {k: v[0] for k, v in copies.items()})) == {"A", "C"}


def test_aggregates_defeat_it_and_name_no_one():
    _, copies = three_buyers(15, 240)
    totals: dict[str, float] = {}
    for r in copies["A"][1]:
        totals[r[1]] = totals.get(r[1], 0.0) + float(r[2])
    leak = [[k, f"{v:.2f}"] for k, v in totals.items()]
    assert attribute(leak, {k: v[0] for k, v in copies.items()}) == ()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(120, 400),
    leaker=st.sampled_from(["A", "B", "C"]),
    shuffle=st.integers(0, 10**6),
    keep=st.floats(0.05, 1.0),
    drop=st.sets(st.integers(0, len(FIELDS) - 1), max_size=2),
)
def test_never_an_innocent_buyer_and_the_leaker_when_enough_survives(
    seed, n, leaker, shuffle, keep, drop
):
    _, copies = three_buyers(seed, n)
    marked, copy = copies[leaker]
    order = list(range(len(copy)))
    random.Random(shuffle).shuffle(order)
    kept = order[: max(1, int(len(order) * keep))]
    leak = [[v for i, v in enumerate(copy[j]) if i not in drop] for j in kept]
    named = attribute(leak, {k: v[0] for k, v in copies.items()})
    assert set(named) <= {leaker}  # never anyone else
    canary_rows = {tuple(c.values) for c in marked.canaries}
    survived = sum(1 for j in kept if tuple(copy[j]) in canary_rows)
    # 用电量千瓦时 (2) and 户号 (5) carry most of the evidence; the load and temperature columns
    # alone (a few hundred values each) are too coarse to name anyone — by design.
    if survived >= 3 and {2, 5} - drop:
        assert named == (leaker,)


KINDS = ("category", "name", "code", "integer", "small", "decimal", "date")


def random_column(kind: str, n: int, r: random.Random) -> list[str]:
    if kind == "category":
        return [f"类{r.randint(0, 5)}" for _ in range(n)]
    if kind == "name":
        return [
            f"{r.choice(['南宁', '柳州', '桂林', '北海'])}市{r.choice('王李张刘陈杨黄赵')}"
            f"{r.choice('吴周徐孙马朱胡郭')}{r.choice(['科技', '贸易', '物流', '农业'])}有限公司"
            for _ in range(n)
        ]
    if kind == "code":
        return [f"9145{r.randint(10**13, 10**14 - 1)}" for _ in range(n)]
    if kind == "integer":
        return [str(r.randint(0, 10**6)) for _ in range(n)]
    if kind == "small":
        return [str(r.randint(1, 12)) for _ in range(n)]
    if kind == "decimal":
        places = r.randint(1, 3)
        return [f"{r.uniform(0, 1000):.{places}f}" for _ in range(n)]
    return [(date(2024, 1, 1) + timedelta(days=r.randint(0, 700))).isoformat() for _ in range(n)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=2, max_size=6),
    n=st.integers(20, 600),
    buyers=st.integers(2, 4),
    seed=st.integers(0, 10**6),
    keep=st.floats(0.05, 1.0),
    drop=st.sets(st.integers(0, 5), max_size=4),
)
def test_never_an_innocent_buyer_whatever_the_table(kinds, n, buyers, seed, keep, drop):
    r = random.Random(seed)
    names = tuple(f"c{i}" for i in range(len(kinds)))
    rows = [list(x) for x in zip(*(random_column(k, n, r) for k in kinds), strict=True)]
    schema, batches = text_table(rows, names)
    copies = {b: deliver(schema, batches) for b in range(buyers)}
    leaker = r.randrange(buyers)
    leak = list(copies[leaker][1])
    r.shuffle(leak)
    leak = [[v for i, v in enumerate(x) if i not in drop] for x in leak[: max(1, int(n * keep))]]
    assert set(attribute(leak, {b: v[0] for b, v in copies.items()})) <= {leaker}
