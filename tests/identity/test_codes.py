"""Check-digit validation of credit codes, resident IDs and ASEAN registration numbers."""

from __future__ import annotations

import datetime
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafactor.identity import codes
from datafactor.identity.codes import (
    ASEAN_COUNTRIES,
    PROVINCE_CODES,
    USCC_ALPHABET,
    InvalidCode,
    make_resident_id,
    make_uscc,
    mask_resident_id,
    org_code_check_char,
    resident_id_check_char,
    uscc_check_char,
    validate_foreign_registration,
    validate_resident_id,
    validate_uscc,
)

TODAY = datetime.date(2025, 6, 30)

# Real-format credit codes whose both check characters are right (collected from public test
# suites and validators; GB 32100 and GB 11714 formulas both hold).
KNOWN_USCC = (
    "91350100M000100Y43",
    "91350200776049653A",
    "91350500798359476R",
    "91350503MA31DKY80A",
    "91350200MA31E12PXF",
    "91440101MA5CJQ4N59",
    "913502000728319549",
    "123502001549897397",
    "913502115628130384",
    "9135021359498494XQ",
    "91350203MA31NDF85F",
    "91350213678251743X",
    "91350200MA2YJ1XR9G",
    "91510100350611266D",
    "91350500676532779B",
    "91510100MA6BKY6U36",
    "91370100780603055K",
    "91330101589882738D",
    "91310110666007217T",
)

# The standard's own example and other widely used samples.
KNOWN_RESIDENT_IDS = (
    "11010519491231002X",
    "53010219200508011X",
    "11010119900307299X",
)

# Substitutes tried at every position: the whole credit-code alphabet, the five letters it never
# uses, punctuation and non-ASCII characters.
SUBSTITUTES = USCC_ALPHABET + "IOZSV" + "-*#.中é"


def _replace(code: str, position: int, ch: str) -> str:
    return code[: position - 1] + ch + code[position:]


# --- unified social credit code ------------------------------------------------------------------


@pytest.mark.parametrize("code", KNOWN_USCC)
def test_known_uscc_validate(code: str) -> None:
    assert validate_uscc(code) == code
    assert uscc_check_char(code[:17]) == code[17]
    assert org_code_check_char(code[8:16]) == code[16]


def test_uscc_weights_are_powers_of_three_mod_31() -> None:
    assert tuple(pow(3, i, 31) for i in range(17)) == codes._USCC_WEIGHTS


def test_uscc_is_normalised() -> None:
    assert validate_uscc(" 91350100m000100y43 ") == "91350100M000100Y43"
    assert validate_uscc("9135 0100 M000 100Y 43") == "91350100M000100Y43"
    # Full-width characters typed with a Chinese input method, an ideographic space.
    assert validate_uscc("９１３５０１００Ｍ０００１００Ｙ４３\u3000") == "91350100M000100Y43"


def test_uscc_check_failure_names_position_and_expected_char() -> None:
    with pytest.raises(InvalidCode) as info:
        validate_uscc("91350100M000100Y4X")
    err = info.value
    assert (err.kind, err.reason, err.position, err.char, err.expected) == (
        "uscc",
        "check",
        18,
        "X",
        "3",
    )
    assert err.message == "Character 18 'X' is wrong: the check character should be '3'."
    assert str(err) == err.message
    assert isinstance(err, ValueError)


def test_uscc_forbidden_letter_is_named() -> None:
    with pytest.raises(InvalidCode) as info:
        validate_uscc("9135I100M000100Y43")
    err = info.value
    assert (err.reason, err.position, err.char, err.expected) == ("char", 5, "I", None)
    assert err.message.startswith("Character 5 'I' is not allowed in a unified social credit code")


def test_uscc_org_check_failure() -> None:
    with pytest.raises(InvalidCode) as info:
        validate_uscc("91350100M000100Y53")
    err = info.value
    assert (err.reason, err.position, err.char, err.expected) == ("org_check", 17, "5", "4")
    assert "Character 17 '5'" in err.message
    assert "'4'" in err.message


def test_uscc_division_must_be_digits() -> None:
    code = make_uscc("9", "1", "450100", "DF000001")
    bad = _replace(code, 4, "A")
    with pytest.raises(InvalidCode) as info:
        validate_uscc(bad)
    assert (info.value.reason, info.value.position, info.value.char) == ("division", 4, "A")
    assert "Character 4 'A'" in info.value.message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("91350100M000100Y4", "length"),
        ("91350100M000100Y433", "length"),
    ],
)
def test_uscc_empty_and_length(raw: str, reason: str) -> None:
    with pytest.raises(InvalidCode) as info:
        validate_uscc(raw)
    assert info.value.reason == reason
    assert info.value.position is None


def test_uscc_invisible_char_is_named_by_code_point() -> None:
    with pytest.raises(InvalidCode) as info:
        validate_uscc("91350100M000100Y4\x07")
    assert info.value.position == 18
    assert "U+0007" in info.value.message


def test_known_invalid_sample_is_rejected() -> None:
    # Hard-coded as an exception in a public validator; its check character is in fact wrong.
    with pytest.raises(InvalidCode) as info:
        validate_uscc("91350203M0001QAY9B")
    assert info.value.reason == "check"
    assert info.value.expected == uscc_check_char("91350203M0001QAY9")


def _assert_uscc_blame(original: str, position: int, ch: str) -> None:
    mutated = _replace(original, position, ch)
    with pytest.raises(InvalidCode) as info:
        validate_uscc(mutated)
    err = info.value
    assert err.kind == "uscc"
    if ch not in USCC_ALPHABET:
        assert (err.reason, err.position, err.char) == ("char", position, ch)
        assert f"Character {position} " in err.message
    elif 3 <= position <= 8 and not ch.isdigit():
        assert (err.reason, err.position, err.char) == ("division", position, ch)
    elif position == 17:
        assert (err.reason, err.position, err.char, err.expected) == (
            "org_check",
            17,
            ch,
            original[16],
        )
    elif 9 <= position <= 16 and err.reason == "org_check":
        # Caught by the organisation code's own check character.
        assert (err.position, err.char) == (17, original[16])
        assert err.expected == org_code_check_char(mutated[8:16])
    else:
        assert (err.reason, err.position, err.char) == ("check", 18, mutated[17])
        assert err.expected == uscc_check_char(mutated[:17])
        if position == 18:
            assert err.expected == original[17]
    if err.reason in ("check", "org_check"):
        assert err.expected is not None
        assert f"should be '{err.expected}'" in err.message
    assert err.char is not None
    assert f"Character {err.position} '{err.char}'" in err.message


@pytest.mark.parametrize("code", ["91350100M000100Y43", "9135021359498494XQ"])
def test_every_single_substitution_of_a_known_uscc_is_rejected(code: str) -> None:
    for position in range(1, 19):
        for ch in SUBSTITUTES:
            if ch != code[position - 1]:
                _assert_uscc_blame(code, position, ch)


_alphabet_char = st.sampled_from(USCC_ALPHABET)
_digit = st.sampled_from("0123456789")


@st.composite
def _usccs(draw: st.DrawFn) -> str:
    return make_uscc(
        draw(_alphabet_char),
        draw(_alphabet_char),
        "".join(draw(st.lists(_digit, min_size=6, max_size=6))),
        "".join(draw(st.lists(_alphabet_char, min_size=8, max_size=8))),
    )


@given(code=_usccs())
def test_generated_uscc_validate(code: str) -> None:
    assert validate_uscc(code) == code
    assert validate_uscc(code.lower()) == code


@given(code=_usccs(), position=st.integers(1, 18), ch=st.sampled_from(SUBSTITUTES))
def test_any_single_substitution_of_a_uscc_is_rejected(code: str, position: int, ch: str) -> None:
    if ch != code[position - 1]:
        _assert_uscc_blame(code, position, ch)


def test_make_uscc_builds_the_known_sample() -> None:
    assert make_uscc("9", "1", "350100", "M000100Y") == "91350100M000100Y43"


@pytest.mark.parametrize(
    ("args", "reason", "position"),
    [
        (("9", "1", "35010", "M000100Y"), "length", None),
        (("9", "1", "350100", "M000100"), "length", None),
        (("9", "1", "3501A0", "M000100Y"), "division", 7),
        (("9", "1", "350100", "M0001O0Y"), "char", 14),
        (("I", "1", "350100", "M000100Y"), "char", 1),
    ],
)
def test_make_uscc_rejects_bad_parts(
    args: tuple[str, str, str, str], reason: str, position: int | None
) -> None:
    with pytest.raises(InvalidCode) as info:
        make_uscc(*args)
    assert (info.value.reason, info.value.position) == (reason, position)


def test_org_code_check_char_maps_10_and_11() -> None:
    # Values chosen so that 11 - sum % 11 is 10 ('X') and 11 ('0').
    assert org_code_check_char("59498494") == "X"
    assert org_code_check_char("00000000") == "0"
    with pytest.raises(InvalidCode):
        org_code_check_char("0000000")
    with pytest.raises(InvalidCode):
        org_code_check_char("0000000*")


def test_uscc_check_char_rejects_bad_input() -> None:
    with pytest.raises(InvalidCode):
        uscc_check_char("9135010")
    with pytest.raises(InvalidCode) as info:
        uscc_check_char("91350100M0001O0Y4")
    assert info.value.position == 14


# --- resident identity number --------------------------------------------------------------------


@pytest.mark.parametrize("code", KNOWN_RESIDENT_IDS)
def test_known_resident_ids_validate(code: str) -> None:
    assert validate_resident_id(code, today=TODAY) == code
    assert resident_id_check_char(code[:17]) == code[17]


def test_resident_weights_are_mod_11_2() -> None:
    assert tuple(pow(2, 17 - i, 11) for i in range(17)) == codes._RESIDENT_WEIGHTS


def test_lowercase_x_is_accepted_and_normalised() -> None:
    assert validate_resident_id("11010519491231002x", today=TODAY) == "11010519491231002X"
    assert validate_resident_id(" 110105 19491231 002x ", today=TODAY) == "11010519491231002X"


def _with_check(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


def _resident_error(code: str, today: datetime.date = TODAY) -> InvalidCode:
    with pytest.raises(InvalidCode) as info:
        validate_resident_id(code, today=today)
    assert info.value.kind == "resident_id"
    return info.value


def test_resident_check_failure_reports_expected() -> None:
    err = _resident_error("110105194912310021")
    assert (err.reason, err.position, err.char, err.expected) == ("check", 18, "1", "X")
    assert err.message == "Character 18 '1' is wrong: the check character should be 'X'."


@pytest.mark.parametrize(
    ("birth", "position", "char"),
    [
        ("19490230", 13, "3"),  # 30 February
        ("19490229", 14, "9"),  # 1949 is not a leap year
        ("19000229", 14, "9"),  # nor is 1900
        ("19491301", 12, "3"),
        ("19492001", 11, "2"),
        ("19490001", 12, "0"),
        ("19490100", 14, "0"),
        ("19490132", 14, "2"),
        ("19490141", 13, "4"),
        ("18991231", 8, "8"),
        ("08991231", 7, "0"),
        ("20250701", 12, "7"),  # the day after TODAY
        ("20260101", 10, "6"),
        ("30000101", 7, "3"),
    ],
)
def test_invalid_birth_dates(birth: str, position: int, char: str) -> None:
    err = _resident_error(_with_check(f"450102{birth}123"))
    assert (err.reason, err.position, err.char, err.expected) == (
        "birth_date",
        position,
        char,
        None,
    )
    assert f"Character {position} '{char}' is wrong" in err.message


def test_leap_day_and_boundaries_are_valid() -> None:
    for birth in ("20000229", "19000101", "20250630", "19960229"):
        code = _with_check(f"450102{birth}123")
        assert validate_resident_id(code, today=TODAY) == code


def test_birth_in_the_future_uses_today_by_default() -> None:
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    code = _with_check(f"450102{tomorrow:%Y%m%d}123")
    with pytest.raises(InvalidCode) as info:
        validate_resident_id(code)
    assert info.value.reason == "birth_date"
    assert validate_resident_id(code, today=tomorrow) == code


def test_standard_example_born_1880_is_refused() -> None:
    err = _resident_error("440524188001015368")
    assert (err.reason, err.position, err.char) == ("birth_date", 8, "8")


@pytest.mark.parametrize(
    ("prefix", "position", "char"),
    [
        ("19", 2, "9"),
        ("00", 1, "0"),
        ("99", 1, "9"),
        ("47", 2, "7"),
        ("72", 2, "2"),
        ("80", 2, "0"),
    ],
)
def test_bad_province(prefix: str, position: int, char: str) -> None:
    err = _resident_error(_with_check(f"{prefix}010519491231002"))
    assert (err.reason, err.position, err.char) == ("province", position, char)
    assert f"'{prefix}'" in err.message


def test_every_listed_province_is_accepted() -> None:
    assert len(PROVINCE_CODES) == 34
    for prefix in PROVINCE_CODES:
        code = _with_check(f"{prefix}010519491231002")
        assert validate_resident_id(code, today=TODAY) == code


@pytest.mark.parametrize(
    ("raw", "reason", "position", "char"),
    [
        ("", "empty", None, None),
        ("110105194912310", "length", None, None),
        ("11010519491231002X1", "length", None, None),
        ("1101051949123100X2", "char", 17, "X"),
        ("11010519491231002XX", "char", 19, "X"),
        ("1101051949I231002X", "char", 11, "I"),
        ("110105194912310021 1", "length", None, None),
    ],
)
def test_resident_shape_errors(
    raw: str, reason: str, position: int | None, char: str | None
) -> None:
    err = _resident_error(raw)
    assert (err.reason, err.position, err.char) == (reason, position, char)


def test_fifteen_digit_numbers_are_explained() -> None:
    err = _resident_error("110105491231002")
    assert err.reason == "length"
    assert "15-digit" in err.message


def _assert_resident_blame(original: str, position: int, ch: str) -> None:
    mutated = _replace(original, position, ch)
    err = _resident_error(mutated)
    if not (ch.isdigit() or (ch == "X" and position == 18)):
        assert (err.reason, err.position, err.char) == ("char", position, ch)
    elif err.reason == "check":
        assert (err.position, err.char) == (18, mutated[17])
        assert err.expected == resident_id_check_char(mutated[:17])
        if position == 18:
            assert err.expected == original[17]
    elif err.reason == "province":
        assert position in (1, 2)
        assert err.position in (1, 2)
    else:
        assert err.reason == "birth_date"
        assert 7 <= position <= 14
        assert err.position is not None
        assert 7 <= err.position <= 14
    assert err.char is not None
    assert f"Character {err.position} '{err.char}'" in err.message


@pytest.mark.parametrize("code", KNOWN_RESIDENT_IDS)
def test_every_single_substitution_of_a_known_resident_id_is_rejected(code: str) -> None:
    for position in range(1, 19):
        for ch in "0123456789XA-中":
            if ch != code[position - 1]:
                _assert_resident_blame(code, position, ch)


@st.composite
def _resident_ids(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    division = province + "".join(draw(st.lists(_digit, min_size=4, max_size=4)))
    birth = draw(st.dates(datetime.date(1900, 1, 1), TODAY))
    return make_resident_id(division, birth, draw(st.integers(0, 999)))


@given(code=_resident_ids())
def test_generated_resident_ids_validate(code: str) -> None:
    assert validate_resident_id(code, today=TODAY) == code


@given(
    code=_resident_ids(),
    position=st.integers(1, 18),
    ch=st.sampled_from("0123456789XA-中"),
)
def test_any_single_substitution_of_a_resident_id_is_rejected(
    code: str, position: int, ch: str
) -> None:
    if ch != code[position - 1]:
        _assert_resident_blame(code, position, ch)


@given(
    birth=st.dates(datetime.date(1900, 1, 1), TODAY),
    sequence=st.integers(0, 999),
)
def test_make_resident_id_encodes_birth_and_sex(birth: datetime.date, sequence: int) -> None:
    code = make_resident_id("450102", birth, sequence)
    assert code[:6] == "450102"
    assert code[6:14] == birth.strftime("%Y%m%d")
    assert int(code[14:17]) == sequence
    assert int(code[16]) % 2 == sequence % 2  # odd male, even female


def test_make_resident_id_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="sequence"):
        make_resident_id("450102", datetime.date(1990, 1, 1), 1000)
    with pytest.raises(ValueError, match="sequence"):
        make_resident_id("450102", datetime.date(1990, 1, 1), -1)
    with pytest.raises(InvalidCode) as info:
        make_resident_id("990102", datetime.date(1990, 1, 1), 1)
    assert info.value.reason == "province"
    with pytest.raises(InvalidCode) as info:
        make_resident_id("45010A", datetime.date(1990, 1, 1), 1)
    assert (info.value.reason, info.value.position) == ("char", 6)
    with pytest.raises(InvalidCode) as info:
        make_resident_id("4501", datetime.date(1990, 1, 1), 1)
    assert info.value.reason == "length"
    with pytest.raises(InvalidCode) as info:
        make_resident_id("450102", datetime.date(1899, 12, 31), 1)
    assert info.value.reason == "birth_date"


def test_mask_resident_id() -> None:
    assert mask_resident_id("11010519491231002x") == "110105********002X"
    assert mask_resident_id(" 450102 19900315 1318") == "450102********1318"
    with pytest.raises(InvalidCode) as info:
        mask_resident_id("1101051949")
    assert info.value.reason == "length"
    with pytest.raises(InvalidCode) as info:
        mask_resident_id("")
    assert info.value.reason == "empty"


# --- foreign registration ------------------------------------------------------------------------


@pytest.mark.parametrize("country", ASEAN_COUNTRIES)
def test_each_asean_country_is_accepted(country: str) -> None:
    assert validate_foreign_registration(country.lower(), "0101234567") == (country, "0101234567")


def test_foreign_registration_is_normalised() -> None:
    assert validate_foreign_registration(" sg ", "2015 12345-k") == ("SG", "201512345-K")


@pytest.mark.parametrize("country", ["CN", "US", "", "VNM", "TW"])
def test_non_asean_country_is_refused(country: str) -> None:
    with pytest.raises(InvalidCode) as info:
        validate_foreign_registration(country, "0101234567")
    assert (info.value.kind, info.value.reason) == ("foreign", "country")


@pytest.mark.parametrize(
    ("number", "reason", "position", "char"),
    [
        ("", "empty", None, None),
        ("AB", "length", None, None),
        ("A" * 33, "length", None, None),
        ("0101/234567", "char", 5, "/"),
        ("0101_234567", "char", 5, "_"),
        ("-0101234567", "char", 1, "-"),
        ("0101234567-", "char", 11, "-"),
        ("0101ä34567", "char", 5, "ä"),
    ],
)
def test_bad_foreign_numbers(
    number: str, reason: str, position: int | None, char: str | None
) -> None:
    with pytest.raises(InvalidCode) as info:
        validate_foreign_registration("VN", number)
    err = info.value
    assert (err.kind, err.reason, err.position, err.char) == ("foreign", reason, position, char)
    if position is not None:
        assert f"Character {position} '{char}'" in err.message


def test_foreign_length_bounds_are_inclusive() -> None:
    assert validate_foreign_registration("TH", "ABC")[1] == "ABC"
    assert validate_foreign_registration("TH", "A" * 32)[1] == "A" * 32


# --- the exception -------------------------------------------------------------------------------


def test_invalid_code_pickles_and_exports() -> None:
    with pytest.raises(InvalidCode) as info:
        validate_uscc("91350100M000100Y4X")
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object
    assert copy.as_dict() == info.value.as_dict()
    assert copy.as_dict() == {
        "kind": "uscc",
        "reason": "check",
        "position": 18,
        "char": "X",
        "expected": "3",
        "message": "Character 18 'X' is wrong: the check character should be '3'.",
    }


def test_non_string_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        validate_uscc(None)  # type: ignore[arg-type]
