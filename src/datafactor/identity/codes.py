"""Check-digit validation of the identifiers a party presents, as pure functions.

Three kinds of identifier are handled: the unified social credit code of an organisation
(统一社会信用代码, GB 32100-2015, whose characters 9-17 embed a GB 11714 organisation code with
its own check character), the resident identity number of a person (公民身份号码, GB 11643-1999,
ISO 7064 MOD 11-2 check character, province prefix and birth date), and the registration number of
a company in an ASEAN member state (format only). Every validator normalises its input (removes
spaces, including full-width and zero-width ones, folds full-width forms to ASCII and upper-cases
ASCII letters) and returns the normalised code, or raises ``InvalidCode`` naming the first wrong
character and its 1-based position in the normalised code, so a person can fix what they typed. A
single-character error is always caught: either at its own position (a character that is not
allowed, a letter in the division code, a province or birth date that cannot exist) or, when the
character is well formed, as a check-character failure at the check position. Generators build
synthetic codes with valid check characters for demos and tests. No database, no web framework.
"""

from __future__ import annotations

import datetime
from typing import Literal

__all__ = [
    "ASEAN_COUNTRIES",
    "PROVINCE_CODES",
    "USCC_ALPHABET",
    "CodeKind",
    "InvalidCode",
    "Reason",
    "make_resident_id",
    "make_uscc",
    "mask_resident_id",
    "org_code_check_char",
    "resident_id_check_char",
    "uscc_check_char",
    "validate_foreign_registration",
    "validate_resident_id",
    "validate_uscc",
]

CodeKind = Literal["uscc", "resident_id", "foreign"]
Reason = Literal[
    "empty",
    "length",
    "char",
    "division",
    "org_check",
    "check",
    "province",
    "birth_date",
    "country",
]

#: The 31 characters of GB 32100 (digits and capital letters without I, O, Z, S, V).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {ch: value for value, ch in enumerate(USCC_ALPHABET)}
# GB 32100 weights are 3**(i-1) mod 31 for positions i = 1..17.
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_FORBIDDEN_LETTERS = frozenset("IOZSV")

# GB 11714 values every digit and capital letter: 0-9 as themselves, A=10 ... Z=35.
_ORG_VALUES = {ch: value for value, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# GB 11643 / ISO 7064 MOD 11-2: weights 2**(18-i) mod 11; remainder 0..10 maps through this.
_RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_CHECK = "10X98765432"
_EARLIEST_BIRTH = "19000101"

#: Province-level division codes (first two digits of a resident identity number).
PROVINCE_CODES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23"}
    | {"31", "32", "33", "34", "35", "36", "37"}
    | {"41", "42", "43", "44", "45", "46"}
    | {"50", "51", "52", "53", "54"}
    | {"61", "62", "63", "64", "65"}
    | {"71", "81", "82"}
)

#: ISO 3166-1 alpha-2 codes of the ten ASEAN member states.
ASEAN_COUNTRIES = ("BN", "KH", "ID", "LA", "MY", "MM", "PH", "SG", "TH", "VN")
_FOREIGN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_FOREIGN_MIN = 3
_FOREIGN_MAX = 32

_DIGITS = frozenset("0123456789")
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")
_NAMES: dict[CodeKind, str] = {
    "uscc": "unified social credit code",
    "resident_id": "resident identity number",
    "foreign": "foreign registration number",
}


class InvalidCode(ValueError):
    """An identifier failed validation; says which character is wrong and why.

    ``kind`` is "uscc", "resident_id" or "foreign"; ``reason`` a machine code ("empty",
    "length", "char", "division", "org_check", "check", "province", "birth_date", "country");
    ``position`` the 1-based index of the wrong character in the normalised code (or None);
    ``char`` that character (or None); ``expected`` the correct check character for "check" and
    "org_check" failures (else None); ``message`` an English sentence naming all of this.
    """

    def __init__(
        self,
        kind: CodeKind,
        reason: Reason,
        message: str,
        *,
        position: int | None = None,
        char: str | None = None,
        expected: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: CodeKind = kind
        self.reason: Reason = reason
        self.message = message
        self.position = position
        self.char = char
        self.expected = expected

    def __reduce__(
        self,
    ) -> tuple[type[InvalidCode], tuple[CodeKind, Reason, str], dict[str, object]]:
        # Keyword-only attributes travel as state so the exception survives pickling.
        return (type(self), (self.kind, self.reason, self.message), dict(self.__dict__))

    def as_dict(self) -> dict[str, str | int | None]:
        """The details as plain data, e.g. for an API error body."""
        return {
            "kind": self.kind,
            "reason": self.reason,
            "position": self.position,
            "char": self.char,
            "expected": self.expected,
            "message": self.message,
        }


# --- helpers -------------------------------------------------------------------------------------


def _normalise(raw: str) -> str:
    """Drop spaces, fold full-width ASCII forms, upper-case ASCII letters."""
    if not isinstance(raw, str):
        raise TypeError(f"expected a str, got {type(raw).__name__}")
    out: list[str] = []
    for ch in raw:
        code_point = ord(ch)
        if 0xFF01 <= code_point <= 0xFF5E:  # full-width ！..～ typed with a Chinese IME
            ch = chr(code_point - 0xFEE0)
        if ch.isspace() or ch in _INVISIBLE:
            continue
        if "a" <= ch <= "z":
            ch = ch.upper()
        out.append(ch)
    return "".join(out)


def _show(ch: str) -> str:
    """Quote a character for a message; name invisible ones by code point."""
    if ch.isprintable() and not ch.isspace():
        return f"'{ch}'"
    return f"U+{ord(ch):04X}"


def _wrong_char(kind: CodeKind, reason: Reason, code: str, position: int, why: str) -> InvalidCode:
    ch = code[position - 1]
    return InvalidCode(
        kind,
        reason,
        f"Character {position} {_show(ch)} is wrong: {why}.",
        position=position,
        char=ch,
    )


def _check_failure(
    kind: CodeKind, reason: Reason, code: str, position: int, expected: str, what: str
) -> InvalidCode:
    ch = code[position - 1]
    return InvalidCode(
        kind,
        reason,
        f"Character {position} {_show(ch)} is wrong: the {what} should be '{expected}'.",
        position=position,
        char=ch,
        expected=expected,
    )


def _empty(kind: CodeKind) -> InvalidCode:
    return InvalidCode(kind, "empty", f"The {_NAMES[kind]} is empty.")


def _length(kind: CodeKind, got: int, want: str, note: str = "") -> InvalidCode:
    return InvalidCode(
        kind,
        "length",
        f"A {_NAMES[kind]} has {want} characters; this one has {got}{note}.",
    )


# --- unified social credit code (GB 32100-2015) --------------------------------------------------


def _uscc_char_error(code: str, position: int) -> InvalidCode:
    ch = code[position - 1]
    hint = ""
    if ch in _USCC_FORBIDDEN_LETTERS:
        hint = " (the letters I, O, Z, S and V are never used)"
    return InvalidCode(
        "uscc",
        "char",
        f"Character {position} {_show(ch)} is not allowed in a unified social credit code{hint}.",
        position=position,
        char=ch,
    )


def org_code_check_char(first8: str) -> str:
    """GB 11714 check character of an 8-character organisation code body ('0'-'9' or 'X')."""
    if len(first8) != 8:
        raise InvalidCode(
            "uscc", "length", f"An organisation code body has 8 characters; got {len(first8)}."
        )
    for position, ch in enumerate(first8, 1):
        if ch not in _ORG_VALUES:
            raise InvalidCode(
                "uscc",
                "char",
                f"Character {position} {_show(ch)} is not allowed in an organisation code.",
                position=position,
                char=ch,
            )
    remainder = (
        11 - sum(_ORG_VALUES[ch] * w for ch, w in zip(first8, _ORG_WEIGHTS, strict=True)) % 11
    )
    if remainder == 10:
        return "X"
    if remainder == 11:
        return "0"
    return str(remainder)


def uscc_check_char(first17: str) -> str:
    """GB 32100 check character (18th) of the first 17 characters of a credit code."""
    if len(first17) != 17:
        raise InvalidCode(
            "uscc",
            "length",
            f"The check character is computed from 17 characters; got {len(first17)}.",
        )
    for position in range(1, 18):
        if first17[position - 1] not in _USCC_VALUES:
            raise _uscc_char_error(first17, position)
    total = sum(_USCC_VALUES[ch] * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """Return the normalised unified social credit code, or raise ``InvalidCode``.

    Checks, in order: not empty; every character in the 31-character alphabet; 18 characters;
    characters 3-8 (registration authority's division code) are digits; character 17 is the
    GB 11714 check character of characters 9-16; character 18 is the GB 32100 check character.
    """
    norm = _normalise(code)
    if not norm:
        raise _empty("uscc")
    for position in range(1, len(norm) + 1):
        if norm[position - 1] not in _USCC_VALUES:
            raise _uscc_char_error(norm, position)
    if len(norm) != 18:
        raise _length("uscc", len(norm), "18")
    for position in range(3, 9):
        if norm[position - 1] not in _DIGITS:
            raise _wrong_char(
                "uscc",
                "division",
                norm,
                position,
                "characters 3-8 (the administrative division code) must be digits",
            )
    expected_org = org_code_check_char(norm[8:16])
    if norm[16] != expected_org:
        raise _check_failure(
            "uscc", "org_check", norm, 17, expected_org, "organisation code check character"
        )
    expected = uscc_check_char(norm[:17])
    if norm[17] != expected:
        raise _check_failure("uscc", "check", norm, 18, expected, "check character")
    return norm


def make_uscc(authority: str, category: str, division: str, org_body8: str) -> str:
    """Build a valid credit code from its parts, computing both check characters.

    ``authority`` (e.g. "9" market regulation, "1" government bodies, "5" civil affairs) and
    ``category`` (e.g. "1" enterprise) are single characters, ``division`` six digits,
    ``org_body8`` eight characters of the 31-character alphabet. Positions in errors refer to the
    resulting code.
    """
    for value, size, label in (
        (authority, 1, "registration authority"),
        (category, 1, "organisation category"),
        (division, 6, "division code"),
        (org_body8, 8, "organisation code body"),
    ):
        if len(value) != size:
            raise InvalidCode(
                "uscc", "length", f"The {label} must have {size} character(s); got {len(value)}."
            )
    first16 = authority + category + division + org_body8
    for position in range(1, 17):
        if first16[position - 1] not in _USCC_VALUES:
            raise _uscc_char_error(first16, position)
    for position in range(3, 9):
        if first16[position - 1] not in _DIGITS:
            raise _wrong_char(
                "uscc", "division", first16, position, "the division code must be six digits"
            )
    first17 = first16 + org_code_check_char(org_body8)
    return first17 + uscc_check_char(first17)


# --- resident identity number (GB 11643-1999) ----------------------------------------------------


def resident_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character ('0'-'9' or 'X') of the first 17 digits."""
    if len(first17) != 17:
        raise InvalidCode(
            "resident_id",
            "length",
            f"The check character is computed from 17 digits; got {len(first17)}.",
        )
    for position in range(1, 18):
        if first17[position - 1] not in _DIGITS:
            raise _wrong_char(
                "resident_id", "char", first17, position, "only digits are allowed here"
            )
    total = sum(int(ch) * w for ch, w in zip(first17, _RESIDENT_WEIGHTS, strict=True))
    return _RESIDENT_CHECK[total % 11]


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _first_difference(a: str, b: str) -> int:
    return next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)


def _province_error(norm: str) -> InvalidCode | None:
    prefix = norm[:2]
    if prefix in PROVINCE_CODES:
        return None
    # Blame the first digit if no province starts with it, otherwise the second.
    position = 2 if any(p[0] == prefix[0] for p in PROVINCE_CODES) else 1
    return _wrong_char(
        "resident_id",
        "province",
        norm,
        position,
        f"'{prefix}' is not a province-level division code",
    )


def _birth_date_error(norm: str, today: datetime.date) -> InvalidCode | None:
    """Characters 7-14 must be a real date from 1900-01-01 up to ``today``."""
    digits = norm[6:14]
    shown = f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    last = _days_in_month(year, month)
    if not 1 <= month <= 12:
        position = 11 if digits[4] > "1" else 12
        why = f"the birth date {shown} does not exist (there is no month {digits[4:6]})"
    elif not 1 <= day <= last:
        position = 13 if int(digits[6]) > last // 10 else 14
        why = f"the birth date {shown} does not exist (that month has {last} days)"
    elif digits < _EARLIEST_BIRTH:
        position = 7 + _first_difference(digits, _EARLIEST_BIRTH)
        why = f"the birth date {shown} is before 1900-01-01"
    elif digits > (limit := f"{today.year:04d}{today.month:02d}{today.day:02d}"):
        position = 7 + _first_difference(digits, limit)
        why = f"the birth date {shown} is in the future"
    else:
        return None
    return _wrong_char("resident_id", "birth_date", norm, position, why)


def validate_resident_id(code: str, today: datetime.date | None = None) -> str:
    """Return the normalised 18-character resident identity number, or raise ``InvalidCode``.

    Checks, in order: not empty; digits only, with 'X' (or 'x') allowed as the 18th character;
    18 characters (15-digit first-generation numbers are refused); a province code in characters
    1-2; a real birth date in characters 7-14, not before 1900-01-01 and not after ``today``
    (default: the local date); the MOD 11-2 check character.
    """
    norm = _normalise(code)
    if not norm:
        raise _empty("resident_id")
    for position in range(1, len(norm) + 1):
        ch = norm[position - 1]
        if ch in _DIGITS or (ch == "X" and position == 18):
            continue
        hint = (
            "'X' may only be the 18th (check) character"
            if ch == "X"
            else "only digits, and 'X' as the 18th character"
        )
        raise InvalidCode(
            "resident_id",
            "char",
            f"Character {position} {_show(ch)} is not allowed in a resident identity number "
            f"({hint}).",
            position=position,
            char=ch,
        )
    if len(norm) != 18:
        note = " (15-digit first-generation numbers are not accepted)" if len(norm) == 15 else ""
        raise _length("resident_id", len(norm), "18", note)
    error = _province_error(norm) or _birth_date_error(norm, today or datetime.date.today())
    if error is not None:
        raise error
    expected = resident_id_check_char(norm[:17])
    if norm[17] != expected:
        raise _check_failure("resident_id", "check", norm, 18, expected, "check character")
    return norm


def make_resident_id(division: str, birth: datetime.date, sequence: int) -> str:
    """Build a valid synthetic resident identity number.

    ``division`` is the six-digit division code of the place of registration, ``birth`` the birth
    date (1900-01-01 up to today), ``sequence`` 0-999; its last digit encodes sex (odd male, even
    female).
    """
    if isinstance(sequence, bool) or not 0 <= sequence <= 999:
        raise ValueError(f"sequence must be an integer from 0 to 999; got {sequence!r}")
    if len(division) != 6:
        raise InvalidCode(
            "resident_id",
            "length",
            f"The division code must have 6 digits; got {len(division)}.",
        )
    first17 = f"{division}{birth.year:04d}{birth.month:02d}{birth.day:02d}{sequence:03d}"
    for position in range(1, 7):
        if first17[position - 1] not in _DIGITS:
            raise _wrong_char(
                "resident_id", "char", first17, position, "the division code must be six digits"
            )
    return validate_resident_id(first17 + resident_id_check_char(first17))


def mask_resident_id(code: str) -> str:
    """Mask the birth date and sequence: keep the first 6 and last 4 characters.

    Only the shape is checked (18 characters after normalisation), so stored numbers can always be
    displayed; use ``validate_resident_id`` to check one.
    """
    norm = _normalise(code)
    if not norm:
        raise _empty("resident_id")
    if len(norm) != 18:
        raise _length("resident_id", len(norm), "18")
    return norm[:6] + "*" * 8 + norm[14:]


# --- foreign (ASEAN) company registration --------------------------------------------------------


def validate_foreign_registration(country: str, number: str) -> tuple[str, str]:
    """Return (country, number) normalised, or raise ``InvalidCode`` with kind "foreign".

    ``country`` must be the ISO 3166-1 alpha-2 code of an ASEAN member state; ``number`` 3-32
    characters of A-Z, 0-9 and '-', not starting or ending with '-'. The format of each
    country's register is not checked.
    """
    country_norm = _normalise(country)
    if country_norm not in ASEAN_COUNTRIES:
        shown = f"'{country_norm}'" if country_norm else "(empty)"
        raise InvalidCode(
            "foreign",
            "country",
            f"Country {shown} is not an ASEAN member state; expected one of "
            f"{', '.join(ASEAN_COUNTRIES)}.",
        )
    norm = _normalise(number)
    if not norm:
        raise _empty("foreign")
    for position in range(1, len(norm) + 1):
        ch = norm[position - 1]
        if ch not in _FOREIGN_CHARS:
            raise InvalidCode(
                "foreign",
                "char",
                f"Character {position} {_show(ch)} is not allowed in a foreign registration "
                "number (only A-Z, 0-9 and '-').",
                position=position,
                char=ch,
            )
    if not _FOREIGN_MIN <= len(norm) <= _FOREIGN_MAX:
        raise _length("foreign", len(norm), f"{_FOREIGN_MIN}-{_FOREIGN_MAX}")
    for position in (1, len(norm)):
        if norm[position - 1] == "-":
            raise _wrong_char(
                "foreign",
                "char",
                norm,
                position,
                "a registration number cannot start or end with '-'",
            )
    return country_norm, norm
