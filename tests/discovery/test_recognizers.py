"""Recognisers: known samples per entity type, property tests, column context, evaluation targets."""

from __future__ import annotations

import csv
import datetime
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from datafactor.discovery import (
    CHECK_DIGIT_TYPES,
    ENTITY_TYPES,
    RECOGNIZERS,
    ColumnScanner,
    classify_value,
    load_pii_rules,
    scan_column,
    scan_table,
)
from datafactor.discovery import recognizers as rec
from datafactor.discovery.corpus import (
    NEGATIVE_KINDS,
    generate_corpus,
    generate_value,
    write_csv,
)
from datafactor.discovery.evaluate import Metrics, evaluate, format_report
from datafactor.identity.codes import (
    USCC_ALPHABET,
    InvalidCode,
    make_resident_id,
    make_uscc,
    validate_resident_id,
    validate_uscc,
)

RID = make_resident_id("450102", datetime.date(1990, 5, 17), 123)  # 450102199005171232
USCC = make_uscc("9", "1", "450100", "MA5KXXX1")  # 91450100MA5KXXX129

VALID: dict[str, list[str]] = {
    "cn_resident_id": [
        RID,
        "45010219900517123X".replace("X", RID[17]),
        "110101500101123",
        make_resident_id("620102", datetime.date(1985, 2, 28), 7),
    ],
    "cn_mobile": [
        "13800138000",
        "+86 138 0013 8000",
        "138-0013-8000",
        "+8619912345678",
        "１３８００１３８０００",
    ],
    "cn_landline": [
        "0771-5551234",
        "(0771)5551234",
        "010-62345678",
        "0771 5551234",
        "+86 771 5551234",
        "0771-5551234-801",
    ],
    "bank_card": [
        "4111111111111111",
        "6222021234567890128",
        "4111 1111 1111 1111",
        "378282246310005",
    ],
    "email": ["wei.xiaobao@qq.com", "li_ming2024@gxzf.gov.cn", "a+b@example.co.th"],
    "cn_uscc": [USCC, make_uscc("5", "1", "450102", "12345678")],
    "passport": ["E12345678", "EA1234567", "G12345678"],
    "hk_macao_taiwan_permit": ["C12345678", "CA1234567", "L12345678", "H12345678", "M1234567890"],
    "license_plate": ["桂A12345", "桂AD12345", "粤B·12345", "桂A12345D", "京A1234学"],
    "vin": ["1HGCM82633A004352", "LSVAG2185E2100412"],
    "ip_address": ["192.168.1.10", "8.8.8.8", "2001:db8::1", "fe80::1"],
    "geo_coordinate": ["22.817002,108.366543", "108.366543, 22.817002", "22°49′01″N"],
    "person_name": ["韦小宝", "覃海", "蒙丽娟", "欧阳娜娜", "买买提·艾力"],
    "address": [
        "广西壮族自治区南宁市青秀区民族大道123号",
        "广西百色市田东县林逢镇东养村那板屯",
        "南宁市西乡塘区安吉大道16号阳光小区3栋1201室",
        "No. 12 Minzu Avenue, Qingxiu District, Nanning",
    ],
    "vn_citizen_id": ["001090123456", "079203001234"],
    "th_national_id": ["1101700230708", "1-1017-00230-70-8"],
    "sg_nric": ["S1234567D", "T0123456G", "F1234567N", "G1234567X", "M1234567K"],
    "my_mykad": ["900101-14-5678", "900101145678", "000117-13-1390"],
    "id_nik": ["3201234501900001", "3171015710850002"],
}

INVALID: dict[str, list[str]] = {
    "cn_resident_id": [
        RID[:17] + ("0" if RID[17] != "0" else "1"),
        "991234199005171232",
        "450102199013171232",
        "450102" + "21000101" + "1234",
    ],
    "cn_mobile": ["23800138000", "12012345678", "1380013800", "03800138000"],
    "cn_landline": ["07715551234", "0771-0551234", "010-1234567"],
    "bank_card": ["4111111111111112", "1234567812345670", "6222021234567890129"],
    "email": ["wei@", "@qq.com", "wei@qq", "wei..x@qq.com"],
    "cn_uscc": [USCC[:17] + ("0" if USCC[17] != "0" else "1"), "I1450100MA5KXXX129"],
    "passport": ["E1234567", "X12345678", "EI1234567"],
    "hk_macao_taiwan_permit": ["C1234567", "Z12345678"],
    "license_plate": ["桂I12345", "X桂12345", "桂A1234"],
    "vin": ["1HGCM82634A004352", "1HGCM82633A00435", "IHGCM82633A004352", "LSVAG2185U2100412"],
    "ip_address": ["256.1.1.1", "192.168.01.1", "1.2.3", "12:30:45"],
    "geo_coordinate": ["1234.56,78.90", "95.123456,200.123456"],
    "person_name": ["黄色", "高兴", "电脑", "市场部"],
    "address": ["南宁市人民政府", "广西北部湾大数据交易中心有限公司", "苹果"],
    "vn_citizen_id": ["003090123456", "001990123456"],
    "th_national_id": ["1101700230705", "9101700230708"],
    "sg_nric": ["S1234567A", "A1234567D"],
    "my_mykad": ["901301-14-5678", "900101-00-5678"],
    "id_nik": ["3201234501900000", "3201233201900001"],
}


def _thai_reference(first12: str) -> str:
    return str((11 - sum(int(d) * (13 - i) for i, d in enumerate(first12)) % 11) % 10)


# --- samples -------------------------------------------------------------------------------------


def test_entity_types_are_the_twenty_names_of_the_issue() -> None:
    assert ENTITY_TYPES == (
        "cn_resident_id",
        "cn_mobile",
        "cn_landline",
        "bank_card",
        "email",
        "cn_uscc",
        "passport",
        "hk_macao_taiwan_permit",
        "license_plate",
        "vin",
        "ip_address",
        "geo_coordinate",
        "date_of_birth",
        "person_name",
        "address",
        "vn_citizen_id",
        "th_national_id",
        "sg_nric",
        "my_mykad",
        "id_nik",
    )
    assert set(RECOGNIZERS) == set(ENTITY_TYPES)
    assert {name for name, r in RECOGNIZERS.items() if r.check_digit} == CHECK_DIGIT_TYPES


@pytest.mark.parametrize(("entity", "value"), [(e, v) for e, vs in VALID.items() for v in vs])
def test_valid_samples_are_recognised(entity: str, value: str) -> None:
    assert entity in classify_value(value)
    assert RECOGNIZERS[entity].matches(value)


@pytest.mark.parametrize(("entity", "value"), [(e, v) for e, vs in INVALID.items() for v in vs])
def test_invalid_samples_are_not(entity: str, value: str) -> None:
    assert entity not in classify_value(value)


@pytest.mark.parametrize(
    ("value", "column", "expected"),
    [
        ("1990-05-17", "出生日期", ["date_of_birth"]),
        ("1990-05-17", "下单日期", []),
        ("1990年5月17日", "生日", ["date_of_birth"]),
        ("19900517", "dob", ["date_of_birth"]),
        ("17/05/1990", "DateOfBirth", ["date_of_birth"]),
        ("22.817002", "纬度", ["geo_coordinate"]),
        ("22.817002", "amount", []),
        ("Nguyen Van An", "full_name", ["person_name"]),
        ("Nguyen Van An", "description", []),
        ("450103", "行政区划代码", ["address"]),
        ("450103", "订单金额", []),
    ],
)
def test_look_alike_shapes_need_a_column_that_names_them(
    value: str, column: str, expected: list[str]
) -> None:
    assert classify_value(value) == []
    assert classify_value(value, column) == expected


def test_a_value_valid_as_two_types_takes_its_columns_type() -> None:
    # An Indonesian NIK (Bali, 51…) that also passes Luhn under a Mastercard prefix.
    both = next(
        value
        for seq in range(1, 100)
        if classify_value(value := f"510101010190{seq:04d}") == ["bank_card", "id_nik"]
    )
    assert classify_value(both, "nik") == ["id_nik"]
    assert classify_value(both, "字段3", column_types=("bank_card",)) == ["bank_card"]
    assert classify_value(both, "字段3") == ["bank_card", "id_nik"]


# --- agreement with datafactor.identity.codes ----------------------------------------------------


@settings(max_examples=300)
@given(
    st.sampled_from(["450102", "110101", "620102", "810000", "710000", "990000"]),
    st.dates(datetime.date(1900, 1, 1), datetime.date.today()),
    st.integers(0, 999),
    st.integers(0, 17),
    st.sampled_from("0123456789X"),
)
def test_resident_id_check_agrees_with_validate_resident_id(
    division: str, birth: datetime.date, seq: int, position: int, char: str
) -> None:
    first17 = f"{division}{birth:%Y%m%d}{seq:03d}"
    from datafactor.identity.codes import resident_id_check_char

    value = first17 + resident_id_check_char(first17)
    value = value[:position] + char + value[position + 1 :]
    try:
        validate_resident_id(value)
        expected = True
    except InvalidCode:
        expected = False
    assert ("cn_resident_id" in classify_value(value)) == expected


@settings(max_examples=300)
@given(
    st.sampled_from([("9", "1"), ("9", "2"), ("1", "1"), ("5", "3"), ("N", "2"), ("Y", "1")]),
    st.text(USCC_ALPHABET, min_size=8, max_size=8),
    st.integers(0, 17),
    st.sampled_from(USCC_ALPHABET),
)
def test_credit_code_check_agrees_with_validate_uscc(
    head: tuple[str, str], body: str, position: int, char: str
) -> None:
    value = make_uscc(head[0], head[1], "450100", body)
    value = value[:position] + char + value[position + 1 :]
    try:
        validate_uscc(value)
        expected = value[:2] == "".join(head)  # the recogniser also checks authority+category
    except InvalidCode:
        expected = False
    types = classify_value(value)
    assert ("cn_uscc" in types) == expected or (expected and "cn_resident_id" in types)


# --- properties ----------------------------------------------------------------------------------

# Names are judged by the column-level F2 on the corpus (the targets above), not value by value:
# the generator deliberately draws some given names from rare characters (姚彧), which the value
# recogniser leaves alone so that two-character words that start with a surname (高兴) do not
# count as names.
SELF_EVIDENT = [t for t in ENTITY_TYPES if t not in ("date_of_birth", "person_name")]


@settings(max_examples=60)
@given(st.sampled_from(SELF_EVIDENT), st.integers(0, 2**32))
def test_generated_valid_values_are_recognised(entity: str, seed: int) -> None:
    value = generate_value(entity, random.Random(seed))
    assert entity in classify_value(value), value


@settings(max_examples=60)
@given(st.integers(0, 2**32))
def test_generated_birth_dates_are_recognised_in_a_birth_date_column(seed: int) -> None:
    value = generate_value("date_of_birth", random.Random(seed))
    assert classify_value(value, "出生日期") == ["date_of_birth"], value


def _digit_positions(value: str) -> list[int]:
    return [i for i, ch in enumerate(value) if ch.isdigit()]


@settings(max_examples=400)
@given(
    st.sampled_from(sorted(CHECK_DIGIT_TYPES)),
    st.integers(0, 2**32),
    st.integers(0, 10**6),
    st.integers(1, 9),
)
def test_single_character_corruptions_of_check_digit_values_are_rejected(
    entity: str, seed: int, pick: int, shift: int
) -> None:
    value = generate_value(entity, random.Random(seed)).replace(" ", "").replace("-", "")
    if entity == "cn_resident_id":
        assume(len(value) == 18)  # first-generation 15-digit numbers carry no check digit
    positions = _digit_positions(value)
    i = positions[pick % len(positions)]
    corrupted = value[:i] + str((int(value[i]) + shift) % 10) + value[i + 1 :]
    if entity == "th_national_id" and _thai_reference(corrupted[:12]) == corrupted[12]:
        return  # mod 11 then mod 10: remainders 0 and 10 share the digit 1, a known blind spot
    assert entity not in classify_value(corrupted), (value, corrupted)


@settings(max_examples=100)
@given(
    st.lists(st.sampled_from(sorted(NEGATIVE_KINDS) + list(ENTITY_TYPES)), min_size=1, max_size=4),
    st.integers(0, 2**32),
    st.integers(1, 3000),
)
def test_batch_classification_equals_cell_by_cell(kinds: list[str], seed: int, size: int) -> None:
    rng = random.Random(seed)
    cells = []
    for _ in range(size):
        kind = rng.choice(kinds)
        cells.append(
            NEGATIVE_KINDS[kind][0](rng) if kind in NEGATIVE_KINDS else generate_value(kind, rng)
        )
    counts, identifying = rec._classify_many(cells)
    assert counts == Counter(map(rec._classify, cells))
    assert sorted(identifying) == sorted(v for v in cells if rec._classify(v).identifying)


# --- columns -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["code", "year", "编码", "年份", "卡号", "card_no", "银行卡号"])
def test_a_column_name_never_makes_years_card_numbers(name: str) -> None:
    years = [str(y) for y in range(1990, 2026)] * 10
    assert scan_column(name, years).types == ()


@pytest.mark.parametrize("name", ["身份证号", "银行卡号", "统一社会信用代码", "VIN", "nric"])
def test_context_never_creates_a_check_digit_match(name: str) -> None:
    rng = random.Random(7)
    numbers: list[str] = []
    while len(numbers) < 300:
        value = "".join(rng.choice("0123456789") for _ in range(18))
        if not classify_value(value):
            numbers.append(value)
    assert scan_column(name, numbers).types == ()


def test_context_boosts_narrowly() -> None:
    rng = random.Random(1)
    # 40% mobiles among other numbers: not a mobile column by value alone, but one in "手机".
    cells = [generate_value("cn_mobile", rng) if i % 5 < 2 else f"2{i:010d}" for i in range(500)]
    assert scan_column("字段1", cells).types == ()
    assert scan_column("手机", cells).types == ("cn_mobile",)
    assert scan_column("mobile_phone", cells).types == ("cn_mobile",)
    assert scan_column("iphone_model", cells).types == ()


def test_contradicting_names_raise_the_bar() -> None:
    rng = random.Random(2)
    names = [generate_value("person_name", rng) for _ in range(70)] + ["电脑"] * 30
    assert scan_column("客户", names).types == ("person_name",)
    assert scan_column("产品名称", names).types == ()


def test_column_finding_figures() -> None:
    rng = random.Random(3)
    ids = [generate_value("cn_resident_id", rng) for _ in range(95)]
    cells: list[str | None] = [*ids, *ids[:5], "", None, "  ", "不详", "不详"]
    finding = scan_column("证件号码", cells)
    assert finding.types == ("cn_resident_id",)
    assert finding.total == 105 and finding.non_empty == 102
    assert finding.match_ratio == pytest.approx(100 / 102)
    assert 0.9 < finding.confidence <= 1.0
    assert finding.sensitive is True
    assert finding.distinct_values == 95
    assert finding.as_dict()["types"] == ["cn_resident_id"]

    names = scan_column("姓名", [generate_value("person_name", rng) for _ in range(50)])
    assert names.types == ("person_name",) and not names.sensitive
    assert names.distinct_values is None

    empty = scan_column("空", [None, ""])
    assert empty.types == () and empty.match_ratio == 0.0 and empty.confidence == 0.0


def test_distinct_values_are_estimated_beyond_the_exact_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rec, "_DISTINCT_MAX", 1000)
    scanner = ColumnScanner("mobile")
    mobiles = [f"138{n:08d}" for n in range(20_000)]
    for start in range(0, len(mobiles), 2000):
        scanner.update(mobiles[start : start + 2000])
    estimate = scanner.finding().distinct_values
    assert estimate is not None and 16_000 <= estimate <= 24_000


def test_scan_table_handles_ragged_rows() -> None:
    rows = [["韦小宝", "13800138000"], ["覃海"], ["蒙丽娟", "13900139000", "extra"]]
    findings = scan_table(["姓名", "手机"], rows)
    assert [f.types for f in findings] == [("person_name",), ("cn_mobile",)]
    assert findings[1].total == 3 and findings[1].non_empty == 2


def test_sensitive_types_come_from_the_rule_file() -> None:
    rules = load_pii_rules()
    assert set(rules) == set(ENTITY_TYPES)
    assert all(rule.source and rule.article for rule in rules.values())
    sensitive = {name for name, rule in rules.items() if rule.sensitive}
    assert {"cn_resident_id", "bank_card", "passport", "sg_nric", "geo_coordinate"} <= sensitive
    assert not {"cn_mobile", "email", "person_name", "cn_uscc"} & sensitive
    assert rules["cn_uscc"].personal is False


# --- corpus and evaluation -----------------------------------------------------------------------


def test_corpus_is_deterministic_and_covers_every_type() -> None:
    first = generate_corpus(11, columns_per_type=2, negatives_per_kind=1, rows=20)
    again = generate_corpus(11, columns_per_type=2, negatives_per_kind=1, rows=20)
    assert first == again
    labels = Counter(c.label for table in first for c in table.columns)
    assert all(labels[t] == 2 for t in ENTITY_TYPES)
    assert labels[None] == len(NEGATIVE_KINDS)


@pytest.mark.parametrize("layout", ["register", "identifiers"])
def test_write_csv(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "mixed.csv"
    columns = write_csv(path, 60, 40, seed=3, layout=layout)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 61 and all(len(row) == 40 for row in rows)
    assert rows[0] == [name for name, _ in columns]
    assert len(set(rows[0])) == 40
    findings = scan_table(rows[0], rows[1:])
    for (_, label), finding in zip(columns, findings, strict=True):
        assert finding.types == ((label,) if label else ()), finding


def test_metrics() -> None:
    m = Metrics(tp=9, fp=1, fn=3)
    assert m.precision == pytest.approx(0.9) and m.recall == pytest.approx(0.75)
    assert m.f2 == pytest.approx(5 * 0.9 * 0.75 / (4 * 0.9 + 0.75))
    assert Metrics().precision == 1.0 and Metrics().recall == 1.0


def test_evaluation_meets_the_quality_targets() -> None:
    tables = generate_corpus(2026, columns_per_type=10, negatives_per_kind=6, rows=150)
    evaluation = evaluate(tables)
    report = format_report(evaluation)
    for entity in CHECK_DIGIT_TYPES:
        column = evaluation.columns[entity]
        assert column.recall >= 0.99 and column.precision >= 0.99, report
        cell = evaluation.cells[entity]
        assert cell.recall >= 0.99 and cell.precision >= 0.99, report
    for entity in ("person_name", "address"):
        assert evaluation.columns[entity].f2 >= 0.90, report
    # Every other type is held to the same column-level bar on this corpus.
    assert all(m.f2 >= 0.9 for m in evaluation.columns.values()), report
