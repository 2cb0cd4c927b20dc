"""De-identification: each technique on real values, policies and their refusals, trustee keys,
streaming, files in and out, the blob store and the command."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import random
import re
import stat
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from datafactor.dataplane import BlobStore, Table, open_table
from datafactor.discovery.corpus import generate_value
from datafactor.discovery.deidentification import (
    ColumnRule,
    DeidentificationCancelled,
    DeidentificationPolicy,
    DeidentificationReport,
    Technique,
    deidentify,
    deidentify_to_store,
    load_deidentification_profiles,
    policy_from_profile,
    technique_basis,
)
from datafactor.discovery.recognizers import ENTITY_TYPES, classify_value
from datafactor.discovery.scan import scan_source
from datafactor.discovery.tokens import (
    KeyFileRefused,
    TrusteeKeys,
    detokenise,
    require_trustee,
    token_key_id,
    tokenise,
)
from datafactor.errors import Forbidden, InvalidInput, NotFound
from datafactor.identity.codes import make_resident_id

SALT = b"s" * 32


class ArrowTable(Table):
    """An in-memory table from record batches (or a function that makes them lazily)."""

    format = "arrow"

    def __init__(self, schema: pa.Schema, make: Any, name: str = "people.csv") -> None:
        super().__init__(name)
        self._schema = schema
        self._make = make

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from self._make(batch_size)


def table_of(columns: dict[str, list[Any]], name: str = "people.csv") -> ArrowTable:
    batch = pa.record_batch(columns)
    return ArrowTable(batch.schema, lambda size: iter([batch]), name)


def run(
    columns: dict[str, list[Any]],
    rules: dict[str, Any],
    *,
    salt: bytes = SALT,
    trustee: str | None = None,
    **options: Any,
) -> tuple[dict[str, list[Any]], DeidentificationReport]:
    """De-identify a one-batch table to Parquet in memory and read it back."""
    document: dict[str, Any] = {"name": "test", "columns": rules}
    if trustee is not None:
        document["trustee"] = trustee
    policy = DeidentificationPolicy.from_dict(document)
    sink = io.BytesIO()
    report = deidentify(table_of(columns), policy, out=sink, salt=salt, **options)
    sink.seek(0)
    return pq.read_table(sink).to_pydict(), report


def values(entity_type: str, n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [generate_value(entity_type, rng) for _ in range(n)]


# --- mask ----------------------------------------------------------------------------------------


def test_mask_keeps_the_format_of_resident_ids_mobiles_and_names() -> None:
    ids = [v for v in values("cn_resident_id", 200) if len(v) == 18]
    mobiles = values("cn_mobile", len(ids), seed=2)
    names = values("person_name", len(ids), seed=3)
    out, report = run(
        {"rid": ids, "mobile": mobiles, "name": names},
        {
            "rid": {"technique": "mask", "entity_type": "cn_resident_id"},
            "mobile": {"technique": "mask", "entity_type": "cn_mobile"},
            "name": {"technique": "mask", "entity_type": "person_name"},
        },
    )
    for original, masked in zip(ids, out["rid"], strict=True):
        assert masked == original[:3] + "*" * 11 + original[-4:]
    for original, masked in zip(mobiles, out["mobile"], strict=True):
        assert len(masked) == len(original)
        if original.isdigit():  # the bare number: 138****5678
            assert masked == original[:3] + "****" + original[-4:]
        # Separators stay where they were ("+86 138 1234 5678" -> "+86 *** **** 5678").
        assert [c for c in masked if not c.isalnum() and c != "*"] == [
            c for c in original if not c.isalnum()
        ]
    for original, masked in zip(names, out["name"], strict=True):
        assert len(masked) == len(original)
        assert masked[0] == original[0]
        assert set(masked[1:]) <= {"*", "·"}
    assert report.columns[0].processed == len(ids)


def test_mask_examples_short_values_email_and_blanks() -> None:
    out, _ = run(
        {
            "rid": ["110105199003071234", "", None],
            "mobile": ["13812345678", "1", "12"],
            "name": ["张三", "欧阳娜娜", "张"],
            "email": ["zhangsan@example.com", "li@mail.gxzf.gov.cn", "noat"],
        },
        {
            "rid": {"technique": "mask", "keep_first": 3, "keep_last": 4},
            "mobile": {"technique": "mask", "entity_type": "cn_mobile"},
            "name": {"technique": "mask", "entity_type": "person_name", "char": "#"},
            "email": {"technique": "mask", "entity_type": "email"},
        },
    )
    assert out["rid"] == ["110***********1234", None, None]
    assert out["mobile"] == ["138****5678", "*", "1*"]
    assert out["name"] == ["张#", "欧###", "#"]
    assert out["email"] == ["z*******@example.com", "l*@mail.gxzf.gov.cn", "n***"]


# --- hash ----------------------------------------------------------------------------------------


def test_hash_is_stable_within_a_run_and_differs_across_salts() -> None:
    mobiles = values("cn_mobile", 50)
    column = [*mobiles, *mobiles]  # every value twice
    rules = {"a": {"technique": "hash"}, "b": {"technique": "hash", "encoding": "base32"}}
    first, _ = run({"a": column, "b": column}, rules, salt=b"1" * 32)
    again, _ = run({"a": column, "b": column}, rules, salt=b"1" * 32)
    other, _ = run({"a": column, "b": column}, rules, salt=b"2" * 32)
    assert first == again
    assert first["a"][:50] == first["a"][50:]
    assert len(set(first["a"])) == len(set(mobiles))
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in first["a"])
    assert all(re.fullmatch(r"[A-Z2-7]{13}", h) for h in first["b"])
    assert not set(first["a"]) & set(other["a"])
    # HMAC-SHA-256 keyed by the salt, truncated: anyone holding the salt could test a guess,
    # which is why the salt is never kept.
    assert first["a"][0] == hmac.digest(b"1" * 32, mobiles[0].encode(), "sha256").hex()[:16]


def test_each_run_draws_a_fresh_salt_that_the_report_does_not_hold() -> None:
    table = table_of({"m": values("cn_mobile", 20)})
    policy = DeidentificationPolicy.from_dict({"name": "p", "columns": {"m": "hash"}})
    outputs, reports = [], []
    for _ in range(2):
        sink = io.BytesIO()
        reports.append(deidentify(table, policy, out=sink, format="csv"))
        outputs.append(sink.getvalue())
    assert outputs[0] != outputs[1]
    assert "salt" not in json.dumps(reports[0].as_dict())


def test_short_hashes_of_many_values_warn_of_collisions() -> None:
    column = [str(i) for i in range(5000)]
    _, report = run({"n": column}, {"n": {"technique": "hash", "length": 8}})
    assert [w.code for w in report.warnings] == ["hash-collisions"]
    assert report.warnings[0].params["bits"] == 32
    _, report = run({"n": column}, {"n": {"technique": "hash", "length": 32}})
    assert report.warnings == ()


# --- generalise ----------------------------------------------------------------------------------


def test_generalise_resident_ids_to_region_and_birth_year() -> None:
    import datetime as dt

    ids = [
        make_resident_id("450102", dt.date(1990, 5, 17), 123),
        make_resident_id("110105", dt.date(2001, 1, 2), 7),
        "450102851201002",  # legacy 15 digits: born 1985
        "12345",
        "",
    ]
    x_ids = [
        v
        for v in (make_resident_id("450102", dt.date(1980, 1, 1), s) for s in range(100))
        if v.endswith("X")
    ]
    out, report = run(
        {"a": [*ids, x_ids[0].lower()], "b": [*ids, x_ids[0]], "c": [*ids, x_ids[0]]},
        {
            "a": {"technique": "generalise", "entity_type": "cn_resident_id"},
            "b": {"technique": "generalise", "kind": "resident_id", "region_digits": 4},
            "c": {"technique": "generalise", "kind": "resident_id", "region_digits": 0},
        },
    )
    assert out["a"] == ["45****1990", "11****2001", "45****1985", None, None, "45****1980"]
    assert out["b"] == ["4501**1990", "1101**2001", "4501**1985", None, None, "4501**1980"]
    assert out["c"] == ["1990", "2001", "1985", None, None, "1980"]
    outcome = report.columns[0]
    assert (outcome.processed, outcome.failed) == (5, 1)
    assert [(w.code, w.params["column"], w.params["count"]) for w in report.warnings] == [
        ("not-generalised", "a", 1),
        ("not-generalised", "b", 1),
        ("not-generalised", "c", 1),
    ]


def test_generalise_dates_written_every_way_and_as_arrow_dates() -> None:
    import datetime as dt

    texts = ["1990-05-17", "1990/5/17", "19900517", "1990年5月17日", "17/05/1990", "1990.05.17"]
    texts += ["1990-05-17 08:30:00", "1990", "2023-13-01", "不详", ""]
    out, report = run(
        {"y": texts, "ym": texts},
        {
            "y": {"technique": "generalise", "entity_type": "date_of_birth"},
            "ym": {"technique": "generalise", "kind": "date", "to": "year_month"},
        },
    )
    assert out["y"] == ["1990"] * 8 + [None, None, None]
    assert out["ym"] == ["1990-05"] * 7 + ["1990", None, None, None]
    assert report.columns[0].failed == 2
    dates = [dt.date(1990, 5, 17), None, dt.date(2001, 12, 1)]
    out, _ = run(
        {"d": pa.array(dates, pa.date32())},
        {"d": {"technique": "generalise", "to": "year_month"}},  # kind from the Arrow type
    )
    assert out["d"] == ["1990-05", None, "2001-12"]


def test_generalise_numbers_to_ranges_with_top_and_bottom_coding() -> None:
    out, report = run(
        {
            "age": ["35", "0", " 9 ", "94", "101.5", "abc", "", "-3"],
            "n": [35, 0, 9, 94, 100, None, 1, 17],
        },
        {
            "age": {"technique": "generalise", "kind": "number", "width": 10, "top": 90},
            "n": {"technique": "generalise", "width": 5, "bottom": 5},
        },
    )
    assert out["age"] == ["30-39", "0-9", "0-9", ">=90", ">=90", None, None, "-10--1"]
    assert out["n"] == ["35-39", "<5", "5-9", "90-94", "100-104", None, "<5", "15-19"]
    assert report.columns[0].failed == 1


def test_generalise_addresses_to_province_or_city() -> None:
    addresses = [
        "广西壮族自治区南宁市青秀区民族大道100号",
        "广西南宁市西乡塘区大学东路",
        "南宁市青秀区金湖路",
        "青秀区金湖路1号",
        "北京市朝阳区建国路",
        "上海市南宁路1号",
        "北京路100号",
        "浙江省杭州市西湖区",
        "No. 5 Orchard Road",
    ]
    addresses += values("address", 100)
    out, report = run(
        {"city": addresses, "province": addresses},
        {
            "city": {"technique": "generalise", "entity_type": "address"},
            "province": {"technique": "generalise", "kind": "address", "level": "province"},
        },
    )
    assert out["city"][:9] == [
        "广西壮族自治区南宁市",
        "广西壮族自治区南宁市",
        "广西壮族自治区南宁市",
        "广西壮族自治区南宁市",
        "北京市",
        "上海市",
        None,
        "浙江省杭州市",
        None,
    ]
    assert out["province"][:9] == [
        "广西壮族自治区",
        "广西壮族自治区",
        "广西壮族自治区",
        "广西壮族自治区",
        "北京市",
        "上海市",
        None,
        "浙江省",
        None,
    ]
    # Generated addresses: Chinese ones start with a province, city or county and generalise;
    # the English ones do not.
    for original, city in zip(addresses[9:], out["city"][9:], strict=True):
        chinese = bool(re.match(r"[\u4e00-\u9fff]", original))
        assert (city is not None) == chinese or original.startswith(("林逢", "平马", "那坡"))
        if city is not None:
            assert city.endswith(("省", "市", "区")) and "路" not in city
    assert report.warnings[0].code == "not-generalised"


def test_generalise_coordinates_to_fewer_decimals() -> None:
    out, _ = run(
        {
            "pair": ["22.817002,108.366543", "(22.8149, 108.3661)", "-0.001", "north", None],
            "lat": [22.817002, -22.8149, None, 1.0, 2.0],
        },
        {
            "pair": {"technique": "generalise", "entity_type": "geo_coordinate"},
            "lat": {"technique": "generalise", "kind": "geo", "decimals": 1},
        },
    )
    assert out["pair"] == ["22.82,108.37", "22.81, 108.37", "0.00", None, None]
    assert out["lat"] == [22.8, -22.8, None, 1.0, 2.0]


# --- tokenise and the trustee key store ----------------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> TrusteeKeys:
    return TrusteeKeys(tmp_path / "trustee_keys")


def test_tokens_round_trip_and_equal_values_give_equal_tokens(keys: TrusteeKeys) -> None:
    ids = values("cn_resident_id", 100)
    column = [*ids, *ids[:10], None]
    out, report = run(
        {"rid": column, "rid2": column},
        {"rid": "tokenise", "rid2": {"technique": "tokenise", "context": "other"}},
        tokens=keys,
        trustee="party-a",
    )
    tokens = out["rid"]
    assert tokens[:10] == tokens[100:110]
    assert len(set(tokens[:100])) == len(set(ids))
    assert all(t.startswith(f"tk1.{report.columns[0].key_id}.") for t in tokens[:-1])
    assert tokens[-1] is None
    assert not any(i in t for i, t in zip(ids, tokens, strict=False))
    assert detokenise(tokens, trustee="party-a", keys=keys) == column
    # A context separates token domains: same value, other token, reversible in its context only.
    assert out["rid2"][0] != tokens[0]
    assert detokenise(out["rid2"], trustee="party-a", keys=keys, context="other") == column
    with pytest.raises(InvalidInput):
        detokenise(out["rid2"][:1], trustee="party-a", keys=keys)
    # Joins across runs work: the same key makes the same token.
    again, _ = run({"rid": ids[:5]}, {"rid": "tokenise"}, tokens=keys, trustee="party-a")
    assert again["rid"] == tokens[:5]


def test_only_the_trustee_can_detokenise(keys: TrusteeKeys) -> None:
    key = keys.current("party-a")
    tokens = tokenise(["13812345678", None], key=key)

    class Principal:
        def __init__(self, party_id: str) -> None:
            self.party_id = party_id

    require_trustee(Principal("party-a"), "party-a")
    with pytest.raises(Forbidden) as refused:
        require_trustee(Principal("party-b"), "party-a")
    assert refused.value.params["trustee"] == "party-a"
    with pytest.raises(Forbidden) as wrong:
        detokenise(tokens, trustee="party-b", keys=keys)
    assert wrong.value.params == {"position": 1, "trustee": "party-b"}
    # Another store holding another key under the same party id cannot read them either.
    with pytest.raises(Forbidden):
        detokenise(tokens, trustee="party-a", keys=TrusteeKeys(keys.directory.parent / "other"))


def test_a_tampered_token_is_refused(keys: TrusteeKeys) -> None:
    key = keys.current("party-a")
    (token,) = tokenise(["450102199005171234"], key=key)
    assert token is not None
    prefix, body = token.rsplit(".", 1)
    flipped = body[:5] + ("A" if body[5] != "A" else "B") + body[6:]
    for bad in (f"{prefix}.{flipped}", token[:-3], "450102199005171234", "tk1.zz.abc"):
        with pytest.raises(InvalidInput) as refused:
            detokenise([token, bad], trustee="party-a", keys=keys)
        assert refused.value.params["position"] == 2
    assert detokenise([token], trustee="party-a", keys=keys) == ["450102199005171234"]


def test_key_files_are_private_and_refused_when_others_can_read(keys: TrusteeKeys) -> None:
    key = keys.current("party-a")
    path = keys.path_of("party-a", key.key_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert keys.current("party-a") == key  # created once, then read
    assert key.secret.hex() not in repr(key) and str(key.secret) not in repr(key)
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileRefused) as refused:
        TrusteeKeys(keys.directory).current("party-a")
    assert "chmod 600" in str(refused.value)
    os.chmod(path, 0o600)
    assert TrusteeKeys(keys.directory).current("party-a") == key
    path.rename(path.with_suffix(".gone"))
    with pytest.raises(KeyFileRefused, match="missing"):
        TrusteeKeys(keys.directory).current("party-a")


def test_rotation_keeps_old_keys_for_old_tokens(keys: TrusteeKeys) -> None:
    old_key = keys.current("party-a")
    (old_token,) = tokenise(["13812345678"], key=old_key)
    old, new = keys.rotate("party-a")
    assert old == old_key and new.key_id != old.key_id
    assert keys.current("party-a") == new
    assert keys.key_ids("party-a") == sorted([old.key_id, new.key_id])
    (new_token,) = tokenise(["13812345678"], key=keys.current("party-a"))
    assert old_token is not None and new_token is not None
    assert token_key_id(old_token) == old.key_id and token_key_id(new_token) == new.key_id
    assert detokenise([old_token, new_token], trustee="party-a", keys=keys) == ["13812345678"] * 2
    # The rotated store, reopened by another process, agrees.
    assert TrusteeKeys(keys.directory).current("party-a") == new


def test_trustee_ids_cannot_walk_out_of_the_key_folder(keys: TrusteeKeys) -> None:
    for bad in ("../x", "..", "a/b", "", "x" * 200):
        with pytest.raises(InvalidInput):
            keys.current(bad)


# --- policies ------------------------------------------------------------------------------------


def example_policy() -> dict[str, Any]:
    return {
        "name": "open-data-2026",
        "description": "Residents' service records for the open-data portal.",
        "unlisted": "drop",
        "trustee": "party-trustee",
        "columns": {
            "身份证号": {"technique": "generalise", "kind": "resident_id", "region_digits": 2},
            "手机号": {"technique": "mask", "keep_first": 3, "keep_last": 4},
            "姓名": {"technique": "tokenise"},
            "出生日期": {"technique": "generalise", "kind": "date", "to": "year"},
            "年龄": {"technique": "generalise", "kind": "number", "width": 10, "top": 90},
            "邮箱": {"technique": "hash", "encoding": "hex", "length": 16},
            "备注": "drop",
            "办理事项": "keep",
        },
        "entity_types": {"cn_mobile": {"technique": "mask"}},
    }


def test_policies_round_trip_through_json_and_yaml(tmp_path: Path) -> None:
    policy = DeidentificationPolicy.from_dict(example_policy())
    assert DeidentificationPolicy.from_json(policy.to_json()) == policy
    assert DeidentificationPolicy.from_yaml(policy.to_yaml()) == policy
    for name in ("p.json", "p.yaml"):
        policy.dump(tmp_path / name)
        assert DeidentificationPolicy.load(tmp_path / name) == policy
    assert policy.as_dict()["columns"]["备注"] == {"technique": "drop"}
    assert policy.digest == DeidentificationPolicy.from_yaml(policy.to_yaml()).digest
    changed = example_policy()
    changed["columns"]["年龄"]["width"] = 5
    assert DeidentificationPolicy.from_dict(changed).digest != policy.digest


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"手机号": {"technique": "scramble"}}, "columns.手机号.technique", ["scramble", "mask"]),
        (
            {"手机号": {"technique": "mask", "keep_first": 99}},
            "columns.手机号.keep_first",
            ["0", "64"],
        ),
        (
            {"手机号": {"technique": "mask", "keep_start": 3}},
            "columns.手机号.keep_start",
            ["keep_first"],
        ),
        ({"手机号": {"technique": "mask", "char": "x"}}, "columns.手机号.char", ["x"]),
        ({"邮箱": {"technique": "hash", "length": 70}}, "columns.邮箱.length", ["64"]),
        (
            {"邮箱": {"technique": "hash", "encoding": "base32", "length": 60}},
            "columns.邮箱.length",
            ["52"],
        ),
        (
            {"年龄": {"technique": "generalise", "kind": "number", "width": 0}},
            "columns.年龄.width",
            ["1"],
        ),
        (
            {"年龄": {"technique": "generalise", "kind": "number", "level": "city"}},
            "columns.年龄.level",
            ["width"],
        ),
        (
            {"年龄": {"technique": "generalise", "bottom": 90, "top": 10}},
            "columns.年龄.bottom",
            ["90"],
        ),
        (
            {"出生日期": {"technique": "generalise", "kind": "date", "to": "day"}},
            "columns.出生日期.to",
            ["year_month"],
        ),
        (
            {"姓名": {"technique": "tokenise", "trustee": "../etc"}},
            "columns.姓名.trustee",
            ["../etc"],
        ),
        (
            {"姓名": {"technique": "mask", "entity_type": "nickname"}},
            "columns.姓名.entity_type",
            ["nickname"],
        ),
        ({"姓名": 42}, "columns.姓名", ["technique"]),
    ],
)
def test_bad_rules_are_refused_naming_the_column_and_the_fix(
    change: dict[str, Any], field: str, words: list[str]
) -> None:
    data = example_policy()
    data["columns"].update(change)
    with pytest.raises(InvalidInput) as refused:
        DeidentificationPolicy.from_dict(data)
    column = next(iter(change))
    assert refused.value.field == field
    message = str(refused.value)
    assert column in message
    for word in words:
        assert word in message


def test_bad_policy_documents_are_refused() -> None:
    for data, field in [
        ({**example_policy(), "colums": {}}, "colums"),
        ({**example_policy(), "unlisted": "mask"}, "unlisted"),
        ({**example_policy(), "name": ""}, "name"),
        ({**example_policy(), "columns": ["a"]}, "columns"),
        ({**example_policy(), "entity_types": {"phone": "drop"}}, "columns.<phone>"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            DeidentificationPolicy.from_dict(data)
        assert refused.value.field == field
    with pytest.raises(InvalidInput, match="JSON"):
        DeidentificationPolicy.from_json("{not json")
    with pytest.raises(InvalidInput, match="YAML"):
        DeidentificationPolicy.from_yaml("columns: [unclosed")


def test_a_policy_naming_an_unknown_column_is_refused_before_reading() -> None:
    read: list[int] = []

    def batches(size: int) -> Iterator[pa.RecordBatch]:
        read.append(size)
        yield pa.record_batch({"手机号": ["13812345678"]})

    table = ArrowTable(pa.schema([("手机号", pa.string())]), batches)
    policy = DeidentificationPolicy.from_dict(
        {"name": "p", "columns": {"手机号": "mask", "身份证号码": "drop"}}
    )
    with pytest.raises(InvalidInput) as refused:
        deidentify(table, policy, out=io.BytesIO())
    assert refused.value.code == "unknown-column"
    assert refused.value.field == "columns.身份证号码"
    assert "身份证号码" in str(refused.value) and "手机号" in str(refused.value)
    assert read == []


def test_plan_needs_findings_a_trustee_keys_and_something_to_write() -> None:
    table = table_of({"手机号": ["13812345678"], "生日": ["1990-01-01"], "x": ["a"]})
    sink = io.BytesIO()
    by_type = DeidentificationPolicy.from_dict({"name": "p", "entity_types": {"cn_mobile": "mask"}})
    with pytest.raises(InvalidInput, match="scan"):
        deidentify(table, by_type, out=sink)
    with pytest.raises(InvalidInput, match="nothing"):
        deidentify(table, by_type, out=sink, findings={"手机号": ["date_of_birth"]})
    tokenised = DeidentificationPolicy.from_dict({"name": "p", "columns": {"手机号": "tokenise"}})
    with pytest.raises(InvalidInput, match="trustee"):
        deidentify(table, tokenised, out=sink)
    tokenised = DeidentificationPolicy.from_dict(
        {"name": "p", "trustee": "party-a", "columns": {"手机号": "tokenise"}}
    )
    with pytest.raises(InvalidInput, match="key store"):
        deidentify(table, tokenised, out=sink)
    unknown_kind = DeidentificationPolicy.from_dict({"name": "p", "columns": {"x": "generalise"}})
    with pytest.raises(InvalidInput) as refused:
        deidentify(table, unknown_kind, out=sink)
    assert refused.value.field == "columns.x.kind"
    with pytest.raises(InvalidInput, match="parquet or csv"):
        deidentify(table, by_type, out=sink, format="xlsx", findings={"手机号": ["cn_mobile"]})


def test_entity_type_rules_and_unlisted_columns() -> None:
    mobiles = values("cn_mobile", 5)
    table = table_of({"联系方式": mobiles, "备注": ["a"] * 5, "金额": ["1"] * 5})
    findings = {"联系方式": ["cn_mobile"], "备注": [], "金额": []}
    for unlisted, expected in (
        ("drop", ["联系方式", "金额"]),
        ("keep", ["联系方式", "备注", "金额"]),
    ):
        policy = DeidentificationPolicy.from_dict(
            {
                "name": "p",
                "unlisted": unlisted,
                "entity_types": {"cn_mobile": "mask"},
                "columns": {"金额": "keep"},
            }
        )
        sink = io.BytesIO()
        report = deidentify(table, policy, out=sink, findings=findings)
        sink.seek(0)
        out = pq.read_table(sink)
        assert out.column_names == expected
        assert out.column("联系方式").to_pylist()[0] == mobiles[0][:3] + "****" + mobiles[0][-4:]
        origins = {c.name: c.origin for c in report.columns}
        assert origins == {"联系方式": "entity_type", "备注": "unlisted", "金额": "column"}


# --- profiles ------------------------------------------------------------------------------------


def people_table(rows: int = 300) -> ArrowTable:
    rng = random.Random(5)
    columns = {
        "姓名": [generate_value("person_name", rng) for _ in range(rows)],
        "身份证号": [generate_value("cn_resident_id", rng) for _ in range(rows)],
        "手机号": [generate_value("cn_mobile", rng) for _ in range(rows)],
        "家庭住址": [generate_value("address", rng) for _ in range(rows)],
        "出生日期": [
            f"19{rng.randrange(50, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(9)}"
            for _ in range(rows)
        ],
        "办理事项": [rng.choice(["社保查询", "公积金提取", "户籍迁移"]) for _ in range(rows)],
    }
    return table_of(columns)


def test_profiles_load_with_their_sources() -> None:
    profiles = load_deidentification_profiles()
    assert {"publish", "share-with-trustee", "display"} <= set(profiles)
    for profile in profiles.values():
        assert set(profile.types) <= set(ENTITY_TYPES)
        assert profile.label["zh"] and profile.label["en"]
    for technique in ("drop", "mask", "hash", "generalise", "tokenise"):
        assert technique_basis(technique), technique
        assert all(
            "GB/T" in b["title"] or "个人信息保护法" in b["title"]
            for b in technique_basis(technique)
        )


def test_a_policy_from_a_scan_and_a_profile() -> None:
    table = people_table()
    findings = scan_source(table).columns
    shared = policy_from_profile(findings, "share-with-trustee", trustee="party-trustee")
    rules = {name: rule.technique for name, rule in shared.columns.items()}
    assert rules == {
        "姓名": Technique.TOKENISE,
        "身份证号": Technique.TOKENISE,
        "手机号": Technique.TOKENISE,
        "家庭住址": Technique.GENERALISE,
        "出生日期": Technique.GENERALISE,
        "办理事项": Technique.KEEP,
    }
    published = policy_from_profile(findings, "publish")
    assert {n: r.technique for n, r in published.columns.items()} == {
        "姓名": Technique.DROP,
        "身份证号": Technique.GENERALISE,
        "手机号": Technique.DROP,
        "家庭住址": Technique.GENERALISE,
        "出生日期": Technique.GENERALISE,
        "办理事项": Technique.KEEP,
    }
    sink = io.BytesIO()
    report = deidentify(table, published, out=sink, findings=findings)
    sink.seek(0)
    out = pq.read_table(sink).to_pydict()
    assert list(out) == ["身份证号", "家庭住址", "出生日期", "办理事项"]
    assert all(re.fullmatch(r"\d\d\*{4}(19|20)\d\d", v) for v in out["身份证号"])
    assert all(re.fullmatch(r"19\d\d", v) for v in out["出生日期"])
    assert report.rows == 300
    # Nothing left in the published file is a personal identifier the recognisers know.
    for column in ("身份证号", "出生日期"):
        assert not any(classify_value(v) for v in out[column])
    with pytest.raises(InvalidInput, match="trustee"):
        policy_from_profile(findings, "share-with-trustee")
    with pytest.raises(NotFound, match="publish"):
        policy_from_profile(findings, "secret-sauce")
    # A profile's policy is an ordinary document a person can read and edit.
    assert DeidentificationPolicy.from_json(shared.to_json()) == shared


def test_display_profile_masks_with_the_presets() -> None:
    table = people_table(50)
    findings = scan_source(table).columns
    sink = io.BytesIO()
    deidentify(table, policy_from_profile(findings, "display"), out=sink, findings=findings)
    sink.seek(0)
    out = pq.read_table(sink).to_pydict()
    assert all(re.fullmatch(r"\d{3}\*+[\dX]{4}", v) for v in out["身份证号"])
    assert all(v[0] != "*" and set(v[1:]) <= {"*", "·"} for v in out["姓名"])


# --- streaming, files and the blob store ---------------------------------------------------------


def test_a_large_table_streams_batch_by_batch() -> None:
    rows, size = 200_000, 1_000
    alive: list[weakref.ref[pa.RecordBatch]] = []
    most_alive = 0
    written_before_last: list[int] = []
    sink = io.BytesIO()
    schema = pa.schema([("id", pa.string()), ("mobile", pa.string()), ("age", pa.int64())])

    def batches(batch_size: int) -> Iterator[pa.RecordBatch]:
        nonlocal most_alive
        assert batch_size == size
        for start in range(0, rows, size):
            live = sum(1 for r in alive if r() is not None)
            most_alive = max(most_alive, live)
            if start == rows - size:
                written_before_last.append(sink.tell())
            n = range(start, start + size)
            batch = pa.record_batch(
                [
                    pa.array([f"{i:018d}" for i in n]),
                    pa.array([f"138{i:08d}" for i in n]),
                    pa.array([i % 100 for i in n], pa.int64()),
                ],
                schema=schema,
            )
            alive.append(weakref.ref(batch))
            yield batch

    table = ArrowTable(schema, batches)
    policy = DeidentificationPolicy.from_dict(
        {
            "name": "big",
            "columns": {
                "id": {"technique": "hash"},
                "mobile": {"technique": "mask", "keep_first": 3, "keep_last": 4},
                "age": {"technique": "generalise", "width": 10},
            },
        }
    )
    calls: list[tuple[int, int | None]] = []
    report = deidentify(
        table,
        policy,
        out=sink,
        format="csv",
        batch_size=size,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.rows == rows
    assert len(calls) == rows // size and calls[-1] == (rows, None)
    # Earlier batches were released as the run went on, and output was written before the last
    # batch was even made.
    assert most_alive <= 3
    assert written_before_last and written_before_last[0] > 0
    sink.seek(0)
    lines = sink.getvalue().decode().splitlines()
    assert len(lines) == rows + 1
    assert lines[1].split(",")[1:] == ['"138****0000"', '"0-9"']


def test_cancelling_stops_and_removes_the_file(tmp_path: Path) -> None:
    table = ArrowTable(
        pa.schema([("m", pa.string())]),
        lambda size: (pa.record_batch({"m": ["13812345678"] * size}) for _ in range(10)),
    )
    policy = DeidentificationPolicy.from_dict({"name": "p", "columns": {"m": "mask"}})
    out = tmp_path / "out.parquet"
    seen: list[int] = []
    with pytest.raises(DeidentificationCancelled) as cancelled:
        deidentify(
            table,
            policy,
            out=out,
            batch_size=10,
            progress=lambda done, total: seen.append(done),
            should_cancel=lambda: len(seen) >= 2,
        )
    assert cancelled.value.params["rows"] == 20
    assert not out.exists()


def test_a_gbk_csv_de_identified_to_parquet_and_read_back(tmp_path: Path) -> None:
    rng = random.Random(9)
    rows = [
        [
            generate_value("person_name", rng),
            generate_value("cn_resident_id", rng),
            generate_value("cn_mobile", rng),
            "广西壮族自治区南宁市青秀区民族大道" + str(rng.randrange(1, 999)) + "号",
            f"{rng.randrange(18, 95)}",
        ]
        for _ in range(500)
    ]
    source = tmp_path / "居民.csv"
    with source.open("w", newline="", encoding="gbk") as handle:
        writer = csv.writer(handle)
        writer.writerow(["姓名", "身份证号", "手机号", "地址", "年龄"])
        writer.writerows(rows)
    table = open_table(source)
    assert table.encoding == "gb18030"
    policy = DeidentificationPolicy.from_dict(
        {
            "name": "gbk",
            "columns": {
                "姓名": {"technique": "mask", "entity_type": "person_name"},
                "身份证号": {"technique": "generalise", "entity_type": "cn_resident_id"},
                "手机号": {"technique": "mask", "entity_type": "cn_mobile"},
                "地址": {"technique": "generalise", "entity_type": "address"},
                "年龄": {"technique": "generalise", "kind": "number", "width": 10},
            },
        }
    )
    out = tmp_path / "居民.parquet"
    report = deidentify(table, policy, out=out)
    back = open_table(out)
    data = pq.read_table(out).to_pydict()
    assert report.rows == back.row_count == 500
    assert back.schema.names == ["姓名", "身份证号", "手机号", "地址", "年龄"]
    for original, name, rid, mobile, address, age in zip(
        rows,
        data["姓名"],
        data["身份证号"],
        data["手机号"],
        data["地址"],
        data["年龄"],
        strict=True,
    ):
        assert name[0] == original[0][0] and len(name) == len(original[0])
        year = original[1][6:10] if len(original[1]) == 18 else "19" + original[1][6:8]
        assert rid == original[1][:2] + "****" + year
        assert mobile.endswith(original[2][-4:]) and "****" in mobile
        assert address == "广西壮族自治区南宁市"
        low = int(original[4]) // 10 * 10
        assert age == f"{low}-{low + 9}"


def test_de_identified_into_the_blob_store(tmp_path: Path, keys: TrusteeKeys) -> None:
    store = BlobStore(tmp_path / "storage")
    table = people_table(100)
    findings = scan_source(table).columns
    policy = policy_from_profile(findings, "share-with-trustee", trustee="party-trustee")
    result = deidentify_to_store(
        table, policy, store, max_bytes=10 << 20, tokens=keys, findings=findings
    )
    assert result.filename == "people.deidentified.parquet"
    assert result.format == "parquet" and result.rows == 100
    stored = store.path_for(result.digest).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == result.digest and len(stored) == result.size
    back = open_table(lambda: store.open(result.digest), format="parquet")
    data = pa.Table.from_batches(list(back.batches())).to_pydict()
    originals = pa.Table.from_batches(list(table.batches())).to_pydict()
    assert detokenise(data["身份证号"], trustee="party-trustee", keys=keys) == originals["身份证号"]
    assert data["办理事项"] == originals["办理事项"]
    assert json.loads(json.dumps(result.report.as_dict())) == result.report.as_dict()
    assert (
        DeidentificationReport.from_dict(result.report.as_dict()).columns == result.report.columns
    )
    assert not list((tmp_path / "storage" / "tmp").iterdir())


def test_the_store_refuses_output_past_its_limit(tmp_path: Path) -> None:
    from datafactor.dataplane import BlobTooLarge

    store = BlobStore(tmp_path / "storage")
    policy = DeidentificationPolicy.from_dict({"name": "p", "unlisted": "keep"})
    with pytest.raises(BlobTooLarge):
        deidentify_to_store(people_table(100), policy, store, max_bytes=100, format="csv")


def test_column_rule_documents() -> None:
    assert ColumnRule.parse("drop", "x") == ColumnRule(Technique.DROP)
    rule = ColumnRule.parse({"technique": "mask", "entity_type": "cn_mobile", "keep_last": 4}, "x")
    assert rule.as_dict() == {"technique": "mask", "entity_type": "cn_mobile", "keep_last": 4}


# --- the command ---------------------------------------------------------------------------------


def cli() -> typer.Typer:
    from datafactor.discovery.cli import deidentify_cmd

    app = typer.Typer()
    app.command("deidentify")(deidentify_cmd)
    app.command("other")(lambda: None)  # two commands: "deidentify" is then a sub-command name
    return app


def test_the_command_with_a_profile_and_with_a_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datafactor.settings import Settings

    monkeypatch.setattr(
        "datafactor.settings.get_settings", lambda: Settings(var_dir=tmp_path / "var")
    )
    source = tmp_path / "people.csv"
    table = people_table(60)
    pa_table = pa.Table.from_batches(list(table.batches()))
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa_table, source)
    out = tmp_path / "shared.parquet"
    saved = tmp_path / "policy.yaml"
    result = CliRunner().invoke(
        cli(),
        [
            "deidentify",
            str(source),
            "--out",
            str(out),
            "--profile",
            "share-with-trustee",
            "--trustee",
            "party-trustee",
            "--save-policy",
            str(saved),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 60
    assert (tmp_path / "var" / "trustee_keys" / "party-trustee").is_dir()
    policy = DeidentificationPolicy.load(saved)
    assert policy.columns["身份证号"].technique is Technique.TOKENISE
    # The same policy, edited by a person: a misspelt column is refused, naming it.
    policy_data = policy.as_dict()
    policy_data["columns"]["身份证"] = policy_data["columns"].pop("身份证号")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(policy_data, ensure_ascii=False), encoding="utf-8")
    refused = CliRunner().invoke(
        cli(), ["deidentify", str(source), "-o", str(tmp_path / "x.csv"), "--policy", str(bad)]
    )
    assert refused.exit_code == 2
    assert "身份证" in refused.output and "身份证号" in refused.output
    assert not (tmp_path / "x.csv").exists()
    again = CliRunner().invoke(
        cli(), ["deidentify", str(source), "-o", str(out), "--profile", "publish"]
    )
    assert again.exit_code == 2 and str(out) in again.output
