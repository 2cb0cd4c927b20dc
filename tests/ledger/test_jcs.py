"""RFC 8785 canonical JSON: the RFC's own examples, its number table and property checks."""

from __future__ import annotations

import enum
import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datafactor.ledger import canonical_json, serialize_number


def _double(bits: str) -> float:
    return float(struct.unpack(">d", bytes.fromhex(bits))[0])


# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical spelling.
RFC_8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC_8785_NUMBERS)
def test_rfc8785_number_table(bits: str, expected: str) -> None:
    assert serialize_number(_double(bits)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e30, "1e+30"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (1e-7, "1e-7"),
        (-0.0, "0"),
        (333333333.33333329, "333333333.3333333"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-27, "1e-27"),
        (1e-6, "0.000001"),
        (123e-20, "1.23e-18"),
        (-1.5, "-1.5"),
        (100.0, "100"),
        (0.1, "0.1"),
    ],
)
def test_ecmascript_number_layout(value: float, expected: str) -> None:
    assert serialize_number(value) == expected


def test_rfc8785_section_3_2_2_sample() -> None:
    # The input object of RFC 8785 §3.2.2, as a JSON parser would hand it over.
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],'
        '"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(source)) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_property_sorting() -> None:
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    values = [v for v in json.loads(canonical_json(source)).values()]
    # UTF-16 order puts the emoji (surrogates D83D DE00) before U+FB33, unlike code point order.
    assert values == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


def test_string_escaping() -> None:
    text = '\b\t\n\f\r\x00\x1f\x7f"\\/\u2028é😀'
    assert canonical_json(text) == ('"\\b\\t\\n\\f\\r\\u0000\\u001f\x7f\\"\\\\/\u2028é😀"').encode()


def test_nesting_and_literals() -> None:
    value = {"b": [1, {"d": None, "c": True}], "a": (False, -7, "x")}
    assert canonical_json(value) == b'{"a":[false,-7,"x"],"b":[1,{"c":true,"d":null}]}'


def test_number_subclasses_print_as_numbers() -> None:
    class Code(enum.IntEnum):
        OK = 200

    class Loud(float):
        def __repr__(self) -> str:
            return "LOUD"

    assert canonical_json([Code.OK, Loud(2.5)]) == b"[200,2.5]"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, [1, math.nan], {"a": math.inf}])
def test_refuses_non_finite_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="JSON"):
        canonical_json(bad)


@pytest.mark.parametrize("bad", [2**53 + 1, -(2**53) - 1, 10**30 + 1, 10**400])
def test_refuses_integers_that_would_round(bad: int) -> None:
    with pytest.raises(ValueError, match="not exactly representable"):
        canonical_json(bad)


def test_integers_that_are_exact_doubles_print_like_ecmascript() -> None:
    assert canonical_json([2**53, -(2**53)]) == b"[9007199254740992,-9007199254740992]"
    # Same bytes as the equal double would get, as RFC 8785 treats every number as a double.
    assert canonical_json([2**53 + 2, 10**21, 2**70]) == canonical_json(
        [float(2**53 + 2), 1e21, float(2**70)]
    )
    assert canonical_json(10**21) == b"1e+21"


@pytest.mark.parametrize("bad", ["\ud800", {"\udfff": 1}])
def test_refuses_lone_surrogates(bad: object) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        canonical_json(bad)


@pytest.mark.parametrize("bad", [{1: "a"}, {None: 1}, b"bytes", {1, 2}, object()])
def test_refuses_non_json_types(bad: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(bad)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | finite_floats
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(finite_floats)
def test_numbers_round_trip_exactly(value: float) -> None:
    assert float(serialize_number(value)) == value


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_form_is_a_fixed_point_and_valid_json(value: object) -> None:
    encoded = canonical_json(value)
    # Parse numbers the way RFC 8785 sees them, as doubles: a large double such as 5.6926e16 is
    # written as plain digits that Python would otherwise read back as a (different) int.
    reparsed = json.loads(encoded, parse_int=_parse_json_int)
    assert canonical_json(reparsed) == encoded


def _parse_json_int(text: str) -> int | float:
    number = int(text)
    return number if abs(number) <= 2**53 else float(text)
