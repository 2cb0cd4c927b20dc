"""Recognisers over pyarrow arrays: the same counts, matches and distinct values as cell by cell.

``ColumnScanner.update`` takes a pyarrow column too (a ``dataplane`` table's record batches), and
settles most cells with whole-array rules (``_arrow_tally``). Every test here compares that path
with ``_classify`` applied to each cell as a Python string, on corpus values and on shapes built
to sit on the edges of those rules (near-dates, near-cards, near-plates, lower case, padding).
"""

from __future__ import annotations

import csv
import datetime
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datafactor.dataplane.readers import CsvTable
from datafactor.discovery import ENTITY_TYPES, ColumnScanner, scan_column, scan_table
from datafactor.discovery import lexicon as lx
from datafactor.discovery import recognizers as rec
from datafactor.discovery.corpus import CSV_LAYOUTS, NEGATIVE_KINDS, generate_value, write_csv
from datafactor.identity.codes import USCC_ALPHABET, org_code_check_char, uscc_check_char

DIGITS = "0123456789"
EDITS = [*"A· -01+/x\u3000号路市县", "街道", "胡同"]
PREFIXES = ("45", "11", "62", "91", "35", "60", "95", "30", "36", "40", "32")
PADDING = [None, "", " ", "  x ", "\t1", "１２３", "2020-01-01 ", "x", "\u3000张三", "٣٣٣"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(n))


def _mutate(rng: random.Random, value: str) -> str:
    for _ in range(rng.choice((0, 0, 1, 2))):
        i = rng.randrange(len(value) + 1)
        value = value[:i] + rng.choice(EDITS) + value[i:]
    return value


def _near_identifier(rng: random.Random) -> str:
    entity = rng.choice(
        [
            "cn_resident_id",
            "bank_card",
            "cn_uscc",
            "vin",
            "th_national_id",
            "cn_mobile",
            "id_nik",
            "my_mykad",
            "vn_citizen_id",
        ]
    )
    value = generate_value(entity, rng).replace(" ", "").replace("-", "")
    if rng.random() < 0.5:
        i = rng.randrange(len(value))
        value = value[:i] + rng.choice(DIGITS + "XA") + value[i + 1 :]
    return value.lower() if rng.random() < 0.1 else value


def _digit_run(rng: random.Random) -> str:
    value = _digits(rng, rng.randint(1, 21))
    if len(value) >= 14 and rng.random() < 0.5:
        value = rng.choice(PREFIXES) + value[2:]
    return value


def _alnum(rng: random.Random) -> str:
    letters = DIGITS + "ABCXYZIOQUJKLMNPRTW" + ("ab" if rng.random() < 0.1 else "")
    return "".join(rng.choice(letters) for _ in range(rng.choice([17, 18, 9, 11, 5, 18])))


def _date(rng: random.Random) -> str:
    year = rng.choice([rng.randint(1890, 2030), 2026, 1900, 2025])
    month, day, sep = rng.randint(0, 13), rng.randint(0, 32), rng.choice("-/.")
    return rng.choice(
        [
            f"{year:04d}{sep}{month:02d}{sep}{day:02d}",
            f"{day:02d}{sep}{month:02d}{sep}{year:04d}",
            f"{year}{month:02d}{day:02d}",
            f"{year}{sep}{month}{sep}{day}",
            f"{day:02d}{sep}{month:02d}{rng.choice('-/.')}{year:04d}",
            f"0{day % 10}{sep}{month:02d}{sep}{year}",
            f"1{day % 10}-{month:02d}-{year}",
            f"00{sep}{month:02d}{sep}{year}",
        ]
    )


def _timestamp(rng: random.Random) -> str:
    value = (
        f"{rng.randint(1990, 2030)}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
        f"{rng.choice(' T')}{rng.randint(0, 25):02d}:{rng.randint(0, 60):02d}:"
        f"{rng.randint(0, 60):02d}"
    )
    value += rng.choice(["", "Z", ".123", "@x", "+08:00", " ", "。", "\t", " Road 5 x"])
    return value[:13] + rng.choice("-a0 ") + value[14:] if rng.random() < 0.1 else value


def _decimal(rng: random.Random) -> str:
    value = f"{_digits(rng, rng.randint(1, 4))}.{_digits(rng, rng.randint(1, 7))}"
    return rng.choice([value, value + ".1", "-" + value, value + " ", "1,2" + value])


def _chinese(rng: random.Random) -> str:
    pool = (
        "".join(sorted(lx.SINGLE_SURNAMES))[:80]
        + "".join(sorted(lx.GIVEN_NAME_CHARS))[:80]
        + "".join(sorted(lx.NON_NAME_CHARS))[:30]
        + "鱼〇㐀\u9fff\u4e00"
    )
    roll = rng.random()
    if roll < 0.3:
        return "".join(rng.choice(pool) for _ in range(rng.randint(1, 5)))
    if roll < 0.4:
        return rng.choice(sorted(lx.COMMON_WORDS)) + rng.choice(["", "", rng.choice(pool)])
    if roll < 0.5:
        tail = "".join(rng.choice(pool) for _ in range(rng.randint(0, 2)))
        return rng.choice(sorted(lx.COMPOUND_SURNAMES)) + tail
    if roll < 0.75:
        province = rng.choice([*sorted(lx.PLATE_PROVINCES), "中", "A"])
        tail = "".join(rng.choice("0123456789ABDFIOZ") for _ in range(rng.randint(4, 7)))
        separator = rng.choice(["", "", "·", "•", " ", "-", "¢"])
        return province + rng.choice("ABIO1") + separator + tail + rng.choice(["", "", "学", " "])
    return _mutate(rng, generate_value("address", rng))


def _email(rng: random.Random) -> str:
    local = "".join(rng.choice("abcXYZ019._+-!#") for _ in range(rng.choice([0, 3, 8, 70])))
    labels = [
        "".join(rng.choice("ab9-") for _ in range(rng.choice([0, 1, 5, 70])))
        for _ in range(rng.randint(1, 3))
    ]
    tld = "".join(rng.choice("comCN1") for _ in range(rng.randint(1, 4)))
    return local + rng.choice(["@", "@", "", "@@"]) + ".".join(labels) + "." + tld


def _formatted(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        number = generate_value("cn_mobile", rng)[-11:]
        value = rng.choice(
            [
                number,
                "+86" + number,
                f"+86 {number[:3]} {number[3:7]} {number[7:]}",
                f"{number[:3]}-{number[3:7]}-{number[7:]}",
                "+86" + _digits(rng, 11),
                f"{_digits(rng, 3)}{rng.choice(' -')}{_digits(rng, 4)}-{_digits(rng, 4)}",
            ]
        )
    elif roll < 0.8:
        card = generate_value("bank_card", rng).replace(" ", "")
        card = rng.choice([card, _digits(rng, 16), _digits(rng, 19), "0" + _digits(rng, 15)])
        value = rng.choice(" -").join(card[i : i + 4] for i in range(0, len(card), 4))
    else:
        value = rng.choice(
            ["SKU-000123", "GX-2019-00123", "A1X-123", "CP2019A1234", "abc_def/12", "2020-01-0A"]
        )
    return _mutate(rng, value) if rng.random() < 0.2 else value


def _address_like(rng: random.Random) -> str:
    """Text that meets some of ``_cn_address``'s conditions and not others."""
    place = rng.choice(["锡林郭勒盟", "南宁市", "广西", "某某地区", "", "北京"])
    road = rng.choice(["胡同", "大厦", "路", "单元", "广场", "公寓", "巷", "", "新村"])
    number = rng.choice(["", "12", "三", "A", "８"])
    unit = rng.choice(["", "号", "层", "队", "室"])
    value = place + rng.choice(["", "某", "林"]) + road + number + unit
    return value + rng.choice(["", "", " ", "A", "·", "）", "街"]) if value else "锡林郭勒盟胡同"


SHAPES = [
    _address_like,
    _near_identifier,
    _digit_run,
    _alnum,
    _date,
    _timestamp,
    _decimal,
    _chinese,
    _email,
    _formatted,
]
KINDS = sorted(NEGATIVE_KINDS) + list(ENTITY_TYPES)


def _cells(rng: random.Random, size: int, *, shapes: bool) -> list[str | None]:
    kinds = rng.sample(KINDS, rng.randint(1, 4))
    cells: list[str | None] = []
    for _ in range(size):
        if shapes and rng.random() < 0.6:
            cells.append(rng.choice(SHAPES)(rng))
            continue
        kind = rng.choice(kinds)
        cells.append(
            NEGATIVE_KINDS[kind][0](rng) if kind in NEGATIVE_KINDS else generate_value(kind, rng)
        )
    for _ in range(rng.choice((0, 0, 3, 20))):
        cells[rng.randrange(size)] = rng.choice(PADDING)
    return cells


def _assert_same(array: pa.Array, cells: list[str | None]) -> None:
    """The array path (and its whole-array rules alone, whatever the column repeats) gives the
    counts and the identifying values of ``_classify`` cell by cell."""
    expected = Counter(rec._classify(c or "") for c in cells)
    identifying = [c for c in cells if c and rec._classify(c).identifying]
    for tally in (rec._arrow_tally, rec._arrow_rules):
        counts, hashes = tally(array, ColumnScanner("x"))
        assert Counter({r: c for r, c in counts.items() if c}) == expected, tally.__name__
        assert set(hashes.tolist()) == set(rec._hash_strings(identifying).tolist())


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 2500), st.booleans(), st.booleans())
def test_arrow_tally_equals_cell_by_cell(seed: int, size: int, shapes: bool, large: bool) -> None:
    rng = random.Random(seed)
    cells = _cells(rng, size, shapes=shapes)
    _assert_same(pa.array(cells, type=pa.large_string() if large else pa.string()), cells)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 1500))
def test_arrow_tally_of_a_sliced_array(seed: int, size: int) -> None:
    rng = random.Random(seed)
    cells = _cells(rng, size, shapes=True)
    start = rng.randrange(size)
    stop = rng.randrange(start, size + 1)
    _assert_same(pa.array(cells, pa.string()).slice(start, stop - start), cells[start:stop])


@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
def test_each_edge_shape_alone(shape: object) -> None:
    rng = random.Random(20)
    for _ in range(20):
        cells: list[str | None] = [shape(rng) for _ in range(rng.randint(1, 800))]  # type: ignore[operator]
        _assert_same(pa.array(cells, pa.string()), cells)


def test_homogeneous_columns_take_the_whole_array_paths() -> None:
    rng = random.Random(5)
    for entity in ENTITY_TYPES:
        cells: list[str | None] = [generate_value(entity, rng) for _ in range(3000)]
        _assert_same(pa.array(cells, pa.string()), cells)
    repeated: list[str | None] = [rng.choice(["男", "女", None, "", " "]) for _ in range(3000)]
    _assert_same(pa.array(repeated, pa.string()), repeated)


def test_dates_after_the_import_date_are_judged_as_by_date_ok(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that runs past midnight has dates in neither _DATES nor the future: the array
    rules leave those to ``_classify`` (simulated: the last 40 days taken out of _DATES)."""
    cut = datetime.date.today() - datetime.timedelta(days=40)
    dates = rec._all_dates(datetime.date(1900, 1, 1), cut)
    monkeypatch.setattr(rec, "_DATES", dates)
    monkeypatch.setattr(rec, "_LAST_DATE", max(dates))
    monkeypatch.setattr(rec, "_TABLES", [])
    rng = random.Random(9)
    recent = [datetime.date.today() - datetime.timedelta(days=d) for d in range(0, 60)]
    cells: list[str | None] = []
    for day in recent * 20:
        body = f"450102{day:%Y%m%d}{_digits(rng, 3)}"
        check = rec._RID_CHECK[(2 * int(body, 13)) % 11]
        yy = f"{day:%y}"
        cells += [
            f"{day:%Y%m%d}",
            f"{day:%Y-%m-%d}",
            f"{day:%d/%m/%Y}",
            f"{day.year}/{day.month}/{day.day}",
            body + check,
            body[:17] + "X" if check == "X" else body + check,
            f"32012345{day:%d}{day:%m}{yy}0001",
        ]
    rng.shuffle(cells)
    _assert_same(pa.array(cells, pa.string()), cells)
    assert rec._TABLES and rec._TABLES[0].last_date == int(max(dates))


@pytest.mark.parametrize("layout", sorted(CSV_LAYOUTS))
def test_scan_batches_equals_scan_table(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "table.csv"
    write_csv(path, 3000, len(CSV_LAYOUTS[layout]), seed=4, layout=layout)
    table = CsvTable(path)
    by_batches = rec.scan_batches(table.schema.names, table.batches(batch_size=700))
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    by_rows = scan_table(rows[0], rows[1:])
    assert by_batches == by_rows


def test_distinct_values_agree_between_lists_and_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(8)
    ids = [generate_value("cn_resident_id", rng) for _ in range(3000)]
    cells = [*ids, *ids[:500], *(f"139{n:08d}" for n in range(500))]
    rng.shuffle(cells)
    for limit in (rec._DISTINCT_MAX, 400):
        monkeypatch.setattr(rec, "_DISTINCT_MAX", limit)
        as_list = scan_column("证件", cells)
        scanner = ColumnScanner("证件")
        for start in range(0, len(cells), 700):
            scanner.update(pa.array(cells[start : start + 700]))
        assert scanner.finding() == as_list
        if limit > len(cells):
            assert as_list.distinct_values == len(set(ids)) + 500


def test_value_hashes_do_not_collide() -> None:
    values = [f"{n:018d}" for n in range(0, 400_000, 2)] + [f"x{n}" for n in range(50_000)]
    values += ["a", "a\x00", "a\x00\x00", "", "abcdefgh", "abcdefgh\x00"]
    assert len(set(rec._hash_strings(values).tolist())) == len(values)


def test_credit_codes_with_any_characters_and_right_checks() -> None:
    """Every character of the alphabet anywhere, check characters recomputed: only the shape
    conditions of ``_uscc`` (authority and category, digits 3-8) tell them apart."""
    rng = random.Random(11)
    cells: list[str | None] = []
    for _ in range(6000):
        head = [rng.choice(USCC_ALPHABET) for _ in range(8)]
        if rng.random() < 0.7:
            head[:2] = list(rng.choice(sorted(rec._USCC_PAIRS)))
        if rng.random() < 0.7:
            head[2:8] = _digits(rng, 6)
            if rng.random() < 0.3:
                head[rng.randrange(2, 8)] = rng.choice("ABCDXY")
        org = "".join(rng.choice(USCC_ALPHABET) for _ in range(8))
        body = "".join(head) + org + org_code_check_char(org)
        code = body + uscc_check_char(body)
        cells.append(code if rng.random() < 0.9 else code.lower())
    _assert_same(pa.array(cells, pa.string()), cells)


def test_plates_and_division_codes_exhaustively() -> None:
    rng = random.Random(12)
    tails = "0123456789ABDFHJKIOZ"
    cells: list[str | None] = []
    for _ in range(8000):
        tail = "".join(rng.choice(tails) for _ in range(rng.choice((5, 6))))
        province = rng.choice([*sorted(lx.PLATE_PROVINCES), "中"])
        separator = rng.choice(["", "", "·", "¢", "•"])
        cells.append(province + rng.choice("ABIO") + separator + tail)
    codes = sorted(rec._DIV_CODES)
    cells += [rng.choice(codes) for _ in range(2000)] + [_digits(rng, 6) for _ in range(2000)]
    cells += codes
    rng.shuffle(cells)
    _assert_same(pa.array(cells, pa.string()), cells)


def test_columns_of_other_arrow_types() -> None:
    chunked = pa.chunked_array([["13800138000"], ["13900139000", None]])
    cases = [
        (pa.array([b"13800138000", None, b"\xff13900139000"], pa.binary()), ("cn_mobile",), 2),
        (pa.array(["13800138000", "x", "13800138000"]).dictionary_encode(), ("cn_mobile",), 3),
        (pa.array([13800138000, None, 13900139000]), ("cn_mobile",), 2),
        (pa.array(["13800138000"], pa.string_view()), ("cn_mobile",), 1),
        (chunked, ("cn_mobile",), 2),
        (pa.nulls(3), (), 0),
    ]
    for array, types, non_empty in cases:
        scanner = ColumnScanner("手机")
        scanner.update(array)
        finding = scanner.finding()
        assert finding.types == types, array.type
        assert finding.total == len(array) and finding.non_empty == non_empty


def test_scan_table_keeps_cells_arrow_cannot_hold() -> None:
    """A chunk that cannot be an Arrow string array (lone surrogates, from a file decoded with
    ``surrogateescape``) is scanned as Python strings, with the same findings."""
    rng = random.Random(13)
    mobiles = [generate_value("cn_mobile", rng) for _ in range(200)]
    odd = ["a\udc80b", "\udcff", *mobiles[:10]]
    rows = [[mobile, rng.choice(odd)] for mobile in mobiles]
    findings = scan_table(["手机", "备注"], rows)
    assert findings == [
        scan_column("手机", mobiles),
        scan_column("备注", [row[1] for row in rows]),
    ]
    assert findings[1].distinct_values == len({row[1] for row in rows if row[1] in mobiles})
    assert len(set(rec._hash_strings(["a\udc80", "a\udc81", "a"]).tolist())) == 3
