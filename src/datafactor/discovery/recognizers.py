"""Personal-information recognisers: which entity types a cell value is, and what a column holds.

Twenty entity types (``ENTITY_TYPES``), each validated beyond its shape: check characters
(GB 11643 resident IDs, Luhn for bank cards, GB 32100 credit codes, ISO 3779 VINs, the Thai
mod-11 digit, the Singapore NRIC/FIN letter), real dates and division prefixes, allocated mobile
segments and card issuer ranges, surname lists, division names. ``classify_value`` answers for
one value; ``scan_column`` / ``ColumnScanner`` count every cell of a column and decide which types
it holds, with a match ratio, a confidence, whether it is sensitive under PIPL art. 28 (from the
rule file ``rules/pii_types.yaml``) and how many distinct values of identifying types it holds.
``scan_table`` scans rows of Python strings, ``scan_batches`` pyarrow record batches (what the
dataplane's tables yield; ``ColumnScanner.update`` takes a column array as well).

Speed is a design constraint (the target is 20 MB/s per core over every cell of a CSV), so a
value is first dispatched on cheap facts — ASCII or not, all digits or not, its length, its
"skeleton" (the value with its digits removed, e.g. ``--`` for ``1990-01-01``) — and only the
few types that shape allows are validated. Columns are scanned in batches: a batch that repeats
values is classified once per distinct value (remembered across batches), and in a batch of
distinct values the all-digit cells skip the per-cell dispatch and go by length to a rule that
runs over the whole batch in C where it can (resident IDs, cards, mobiles, credit codes); the
tests check that every batch path gives exactly the per-cell result. A pyarrow column goes
further (``_arrow_tally``): cells whose shape settles their result are counted over the whole
array in numpy and Arrow compute kernels without becoming Python strings (digit runs by length,
credit codes, VINs, dates, timestamps, amounts, codes, formatted phones and cards, e-mail
addresses, Chinese names, plates, addresses), each rule a re-statement of what ``_classify``
answers for exactly that shape, and every other cell goes to ``_classify``. For the same reason the
resident-ID and credit-code checks here are arithmetic re-statements of
``datafactor.identity.codes`` (whose validators build error explanations and take ~25 µs a
call): the tests check that both agree, and this module is stricter only in refusing credit codes
whose first two characters name no registration authority and category.

Column names add context narrowly: a name that names a type lowers its threshold and enables
its look-alike shapes (a bare date is a date of birth only in a column named like one), a name
that contradicts it raises the threshold; a name never creates a match for a check-digit type,
since a cell must still pass its check. No database, no web framework; numpy and pyarrow (which
the dataplane needs anyway) for the array rules and the distinct counts, imported on first use.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, groupby, islice, repeat, zip_longest
from operator import add, and_, attrgetter, eq, itemgetter, mod, mul, not_, or_, sub
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

from datafactor.discovery import lexicon as lx
from datafactor.identity.codes import PROVINCE_CODES, USCC_ALPHABET

__all__ = [
    "CHECK_DIGIT_TYPES",
    "CONTEXT_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "ENTITY_TYPES",
    "LIMIT_THRESHOLD",
    "RECOGNIZERS",
    "ColumnContext",
    "ColumnFinding",
    "ColumnScanner",
    "PiiTypeRule",
    "Recognizer",
    "classify_value",
    "column_context",
    "division_names",
    "load_pii_rules",
    "scan_batches",
    "scan_column",
    "scan_table",
]

ENTITY_TYPES: Final = (
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

#: Types whose values carry a check character: a single wrong character is (nearly) always caught.
CHECK_DIGIT_TYPES: Final = frozenset(
    {"cn_resident_id", "bank_card", "cn_uscc", "vin", "th_national_id", "sg_nric"}
)

#: Share of non-empty cells a type needs for the column to be reported as that type.
DEFAULT_THRESHOLD: Final = 0.6
#: The share needed when the column name names the type (e.g. "手机号" for cn_mobile).
CONTEXT_THRESHOLD: Final = 0.3
#: The share needed when the column name contradicts the type (e.g. "产品名称" for person_name).
LIMIT_THRESHOLD: Final = 0.9

_RULES_DIR = Path(__file__).resolve().parent / "rules"
_WEAK = "~"  # prefix of a type a value has only if the column name names it

# How much a detection of each type is worth before the match ratio scales it.
_STRENGTH: Final[Mapping[str, float]] = MappingProxyType(
    {
        **dict.fromkeys(CHECK_DIGIT_TYPES, 0.99),
        **dict.fromkeys(
            ("cn_mobile", "email", "ip_address", "license_plate", "my_mykad", "id_nik"), 0.93
        ),
        **dict.fromkeys(("cn_landline", "passport", "hk_macao_taiwan_permit"), 0.9),
        **dict.fromkeys(("vn_citizen_id", "geo_coordinate", "person_name", "address"), 0.85),
        "date_of_birth": 0.8,
    }
)


# --- rule data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PiiTypeRule:
    """What the law says about one entity type: personal, sensitive (PIPL art. 28), identifying."""

    entity_type: str
    personal: bool
    sensitive: bool
    identifying: bool
    category: str
    source: str
    article: str
    verified: bool


@functools.cache
def load_pii_rules() -> Mapping[str, PiiTypeRule]:
    """The entity-type rules of ``rules/pii_types.yaml``, one per entity type (checked)."""
    data = yaml.safe_load((_RULES_DIR / "pii_types.yaml").read_text(encoding="utf-8"))
    entries: dict[str, dict[str, object]] = data["types"]
    missing = set(ENTITY_TYPES) - set(entries)
    unknown = set(entries) - set(ENTITY_TYPES)
    if missing or unknown:
        raise ValueError(f"pii_types.yaml: missing {sorted(missing)}, unknown {sorted(unknown)}")
    rules = {}
    for name in ENTITY_TYPES:
        entry = entries[name]
        rules[name] = PiiTypeRule(
            entity_type=name,
            personal=bool(entry["personal"]),
            sensitive=bool(entry["sensitive"]),
            identifying=bool(entry["identifying"]),
            category=str(entry["category"]),
            source=str(entry["source"]),
            article=str(entry["article"]),
            verified=bool(entry["verified"]),
        )
    return MappingProxyType(rules)


@functools.cache
def division_names() -> Mapping[str, str]:
    """GB/T 2260 division code -> name, from ``rules/gbt2260.yaml``."""
    data = yaml.safe_load((_RULES_DIR / "gbt2260.yaml").read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for group in ("provinces", "prefectures", "guangxi"):
        names.update({str(code): str(name) for code, name in data[group].items()})
    return MappingProxyType(names)


_DIVISION_SUFFIXES = (
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "省",
    "市",
)


def _division_words() -> frozenset[str]:
    """Division names as written in addresses: full, and without their level suffix."""
    words: set[str] = set()
    for name in division_names().values():
        words.add(name)
        for suffix in _DIVISION_SUFFIXES:
            if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                words.add(name[: -len(suffix)])
                break
    return frozenset(words)


_DIV_WORDS = _division_words()
_DIV_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _word in sorted(_DIV_WORDS, key=len, reverse=True):
    _DIV_BY_FIRST[_word[0]] = (*_DIV_BY_FIRST.get(_word[0], ()), _word)
_DIV_FIRST = frozenset(_DIV_BY_FIRST)
_DIV_CODES = frozenset(division_names())


# --- results -------------------------------------------------------------------------------------


class _Result:
    """The types one value has; interned, so columns count results by identity."""

    __slots__ = ("blank", "identifying", "strong", "types")

    def __init__(self, types: tuple[str, ...], *, blank: bool = False) -> None:
        self.types = types
        self.strong = tuple(t for t in types if not t.startswith(_WEAK))
        self.blank = blank
        rules = load_pii_rules()
        self.identifying = any(rules[t].identifying for t in self.strong)


_INTERNED: dict[tuple[str, ...], _Result] = {}


def _result(*types: str) -> _Result:
    found = _INTERNED.get(types)
    if found is None:
        found = _INTERNED[types] = _Result(types)
    return found


_NONE = _result()
_BLANK = _Result((), blank=True)
_R: dict[str, _Result] = {name: _result(name) for name in ENTITY_TYPES}
_R_NAME = _R["person_name"]
_R_DATE_OR_PERMIT = _result(_WEAK + "date_of_birth", _WEAK + "hk_macao_taiwan_permit")
_RW: dict[str, _Result] = {name: _result(_WEAK + name) for name in ENTITY_TYPES}


# --- shared checks -------------------------------------------------------------------------------

_THIS_YEAR = datetime.date.today().year
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _date_ok(year: int, month: int, day: int) -> bool:
    """A real calendar date from 1900-01-01 up to today (the range GB 11643 allows)."""
    if year < 1900 or not 1 <= month <= 12 or not 1 <= day <= _MONTH_DAYS[month]:
        return False
    if month == 2 and day == 29 and not _leap(year):
        return False
    # The year is cached at import; a date in it (or later) is compared with today's date.
    return year < _THIS_YEAR or datetime.date(year, month, day) <= datetime.date.today()


def _all_dates(first: datetime.date, last: datetime.date) -> frozenset[str]:
    days = (last - first).days + 1
    return frozenset((first + datetime.timedelta(days=i)).strftime("%Y%m%d") for i in range(days))


# Every YYYYMMDD from 1900-01-01 to the import date: one set lookup checks a birth date in an ID
# (an int() per part and a function call cost ten times as much). Later dates take the slow path.
_DATES = _all_dates(datetime.date(1900, 1, 1), datetime.date.today())
_LAST_DATE = max(_DATES)


def _date8(s: str) -> bool:
    """``s`` is a YYYYMMDD date from 1900-01-01 up to today."""
    if s in _DATES:
        return True
    return s > _LAST_DATE and s.isdigit() and _date_ok(int(s[:4]), int(s[4:6]), int(s[6:]))


def _yymmdd(s: str) -> bool:
    """A YYMMDD date whose century is unknown: valid in the 1900s or the 2000s."""
    return "19" + s in _DATES or _date8("20" + s)


_LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")
_LUHN_DOUBLE_BYTES = bytes.maketrans(b"0123456789", b"0246813579")


def _luhn(digits: str) -> bool:
    # Doubled digits are mapped to their digit sums by one bytes.translate; the byte sum of
    # ASCII digits minus 48 per digit is their sum: C-level passes instead of a Python loop.
    b = digits.encode()
    total = sum(b[-1::-2]) + sum(b[-2::-2].translate(_LUHN_DOUBLE_BYTES)) - 48 * len(b)
    return total % 10 == 0


# --- resident identity number (GB 11643) ---------------------------------------------------------

_RID_CHECK = "10X98765432"


def _rid18(s: str) -> bool:
    """17 digits + check ('0'-'9' or 'X'); province prefix, birth date, MOD 11-2 check."""
    if s[:2] not in PROVINCE_CODES:
        return False
    if not _date8(s[6:14]):
        return False
    # The weights are 2**(18-i) mod 11; 13 ≡ 2 (mod 11), so reading the digits in base 13
    # yields the weighted sum (halved) modulo 11 in one C call.
    return _RID_CHECK[(2 * int(s[:17], 13)) % 11] == s[17]


def _rid15(s: str) -> bool:
    """First-generation 15-digit number: province prefix and a 19YYMMDD birth date."""
    return s[:2] in PROVINCE_CODES and "19" + s[6:12] in _DATES


# --- unified social credit code (GB 32100) -------------------------------------------------------

_USCC_CHARS = frozenset(USCC_ALPHABET)
# Registration authority (character 1) -> organisation categories (character 2) it issues.
_USCC_CATEGORIES = {
    "1": "1239",
    "2": "19",
    "3": "1234569",
    "4": "19",
    "5": "1239",
    "6": "129",
    "7": "129",
    "8": "19",
    "9": "123",
    "A": "19",
    "N": "1239",
    "Y": "1",
}
# USCC values -> the digit characters int() gives the same values (J is 18 in GB 32100, 19 in
# base 36), so one int() call in base 34 (≡ 3 mod 31) yields the weighted sum modulo 31.
_USCC_TO_INT = bytes.maketrans(
    b"JKLMNPQRTUWXY",
    "".join("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[18 + i] for i in range(13)).encode(),
)


def _uscc(s: str) -> bool:
    """Equivalent to ``validate_uscc`` plus the authority/category pair of characters 1-2."""
    if s[1] not in _USCC_CATEGORIES.get(s[0], "") or not _USCC_CHARS.issuperset(s):
        return False
    if not s[2:8].isdigit():
        return False
    # GB 11714 check of characters 9-16: weights 2**(9-i) mod 11, base 35 ≡ 2 (mod 11); the
    # body has no 'Z', the only character base 35 cannot read.
    org = 11 - (2 * int(s[8:16], 35)) % 11
    if s[16] != ("X" if org == 10 else "0" if org == 11 else str(org)):
        return False
    total = int(s[16::-1].encode().translate(_USCC_TO_INT), 34) % 31
    return s[17] == USCC_ALPHABET[(31 - total) % 31]


# --- bank card -----------------------------------------------------------------------------------


def _card_prefixes() -> dict[str, tuple[frozenset[int], frozenset[str] | None]]:
    """Issuer table with its 4-digit ranges expanded to sets (a lookup instead of comparisons)."""
    table = {}
    for prefix, (lengths, ranges) in lx.CARD_PREFIXES.items():
        allowed = (
            frozenset(f"{n:04d}" for lo, hi in ranges for n in range(int(lo), int(hi) + 1))
            if ranges
            else None
        )
        table[prefix] = (lengths, allowed)
    return table


_CARD_PREFIXES = _card_prefixes()


def _card(d: str) -> bool:
    """Issuer prefix (with the card lengths it allows), then the Luhn check."""
    entry = _CARD_PREFIXES.get(d[:2])
    if entry is None or len(d) not in entry[0]:
        return False
    if entry[1] is not None and d[:4] not in entry[1]:
        return False
    return _luhn(d)


# --- VIN (ISO 3779 / GB 16735) -------------------------------------------------------------------

_VIN_TO_DIGIT = bytes.maketrans(b"ABCDEFGHJKLMNPRSTUVWXYZ", b"12345678123457923456789")
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_CHARS = frozenset("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
# Weighted digit sums are taken over the ASCII codes (one C-level pass, no int() per digit);
# every code is its digit + 48, so the sum is off by 48 × Σ weights, a constant.
_VIN_OFFSET = 48 * sum(_VIN_WEIGHTS)


def _vin(s: str) -> bool:
    """17 characters without I, O, Q; model-year character not U, Z or 0; check digit 9."""
    if not _VIN_CHARS.issuperset(s) or s[9] in "UZ0":
        return False
    total = (sum(map(mul, s.encode().translate(_VIN_TO_DIGIT), _VIN_WEIGHTS)) - _VIN_OFFSET) % 11
    return s[8] == ("X" if total == 10 else str(total))


# --- ASEAN identifiers ---------------------------------------------------------------------------

_TH_WEIGHTS = (13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2)
_TH_OFFSET = 48 * sum(_TH_WEIGHTS)


def _thai(d: str) -> bool:
    """13 digits, first 1-8; check digit (11 - Σ dᵢ·(14-i) mod 11) mod 10."""
    if d[0] not in "12345678":
        return False
    total: int = sum(map(mul, d.encode(), _TH_WEIGHTS)) - _TH_OFFSET  # stops at the 12th digit
    return (11 - total % 11) % 10 == ord(d[12]) - 48


_NRIC_WEIGHTS = (2, 7, 6, 5, 4, 3, 2)
_NRIC_OFFSET = 48 * sum(_NRIC_WEIGHTS)
_NRIC_TABLES = {
    "S": (0, "JZIHGFEDCBA"),
    "T": (4, "JZIHGFEDCBA"),
    "F": (0, "XWUTRQPNMLK"),
    "G": (4, "XWUTRQPNMLK"),
    # M series (from 2022): offset 3 and its own table, read from the other end.
    "M": (3, "XWUTRQPNJLK"),
}


def _nric(s: str) -> bool:
    """S/T/F/G/M + 7 digits + check letter."""
    entry = _NRIC_TABLES.get(s[0])
    if entry is None or not s[1:8].isdigit():
        return False
    offset, table = entry
    total: int = sum(map(mul, s[1:8].encode(), _NRIC_WEIGHTS)) - _NRIC_OFFSET
    return table[(offset + total) % 11] == s[8]


def _vn(d: str) -> bool:
    """12-digit CCCD: province code, century/sex digit, birth year not in the future."""
    if d[:3] not in lx.VN_PROVINCES or d[3] not in "0123":
        return False
    return d[3] in "01" or int(d[4:6]) <= _THIS_YEAR % 100


def _mykad(d: str) -> bool:
    """12-digit MyKad: YYMMDD birth date and a place-of-birth code."""
    return d[6:8] in lx.MYKAD_PLACE_CODES and _yymmdd(d[:6])


_MONTHS = frozenset(f"{m:02d}" for m in range(1, 13))


def _nik(d: str) -> bool:
    """16-digit NIK: province, regency, district, DDMMYY (+40 for women), sequence."""
    if d[8:10] not in _MONTHS or d[:2] not in lx.NIK_PROVINCES:  # most non-NIKs fail here
        return False
    if d[2:4] == "00" or d[4:6] == "00" or d[12:] == "0000":
        return False
    day = d[6:8]
    if day > "40":
        day = str(int(day) - 40).zfill(2)
    return _yymmdd(d[10:12] + d[8:10] + day)


# --- digits-only values, dispatched on length ----------------------------------------------------


def _digits_6(d: str) -> _Result:
    return _RW["address"] if d in _DIV_CODES else _NONE


def _digits_8(d: str) -> _Result:
    # 19900517: a date only in a birth-date column; 8 digits: a Taiwan resident's permit only
    # in a permit column.
    return _R_DATE_OR_PERMIT if _date8(d) else _RW["hk_macao_taiwan_permit"]


def _digits_9(d: str) -> _Result:
    return _RW["vn_citizen_id"]  # the old 9-digit CMND has no structure to check


def _digits_11(d: str) -> _Result:
    # Landlines need a separator between area code and number: bare 11-digit numbers starting
    # with 0 are as often order or account numbers.
    return _R["cn_mobile"] if d[:3] in lx.MOBILE_PREFIXES else _NONE


def _digits_12(d: str) -> _Result:
    vn, my = _vn(d), _mykad(d)
    if vn and my:
        return _result("vn_citizen_id", "my_mykad")
    return _R["vn_citizen_id"] if vn else _R["my_mykad"] if my else _NONE


def _digits_13(d: str) -> _Result:
    return _R["th_national_id"] if _thai(d) else _NONE


def _digits_14(d: str) -> _Result:
    return _R["bank_card"] if _card(d) else _NONE


def _digits_15(d: str) -> _Result:
    rid, card = _rid15(d), _card(d)
    if rid and card:
        return _result("cn_resident_id", "bank_card")
    return _R["cn_resident_id"] if rid else _R["bank_card"] if card else _NONE


def _digits_16(d: str) -> _Result:
    card, nik = _card(d), _nik(d)
    if card and nik:
        return _result("bank_card", "id_nik")
    return _R["bank_card"] if card else _R["id_nik"] if nik else _NONE


def _digits_18(d: str) -> _Result:
    # A valid resident ID wins: its check, date and province make a coincidental card (a
    # Gansu "62…" number passing Luhn) far less likely than the reverse.
    if _rid18(d):
        return _R["cn_resident_id"]
    return _digits_18_other(d)


def _digits_18_other(d: str) -> _Result:
    """18 digits that are not a resident ID."""
    if _uscc(d):
        return _R["cn_uscc"]
    return _R["bank_card"] if _card(d) else _NONE


_DIGIT_RULES: dict[int, Callable[[str], _Result]] = {
    6: _digits_6,
    8: _digits_8,
    9: _digits_9,
    11: _digits_11,
    12: _digits_12,
    13: _digits_13,
    14: _digits_14,
    15: _digits_15,
    16: _digits_16,
    17: _digits_14,
    18: _digits_18,
    19: _digits_14,
}


# --- ASCII letters and digits --------------------------------------------------------------------

_PASSPORT_SECOND = frozenset("ABCDEFGHJKLMNPQRSTUVWXYZ")


def _alnum(u: str, n: int) -> _Result:
    """Upper-cased ASCII letters and digits (at least one letter)."""
    if n == 18:
        if u[17] == "X" and u[:17].isdigit():
            return _R["cn_resident_id"] if _rid18(u) else _NONE
        return _R["cn_uscc"] if _uscc(u) else _NONE
    if n == 17:
        return _R["vin"] if _vin(u) else _NONE
    c0 = u[0]
    if n == 9:
        if u[1:].isdigit():
            if c0 in "EGDS":  # ordinary (E, older G), diplomatic (D) and service (S) passports
                return _R["passport"]
            if c0 in "CLHM":  # 往来港澳 (C), 往来台湾 (L), 回乡证 (H, M)
                return _R["hk_macao_taiwan_permit"]
            return _NONE
        if c0 in "STFGM" and u[8].isalpha():
            return _R["sg_nric"] if _nric(u) else _NONE
        if u[2:].isdigit() and u[1] in _PASSPORT_SECOND:
            if c0 == "E":  # E + letter + 7 digits (from 2012)
                return _R["passport"]
            if c0 == "C":
                return _R["hk_macao_taiwan_permit"]
        return _NONE
    if n == 11 and c0 in "HM" and u[1:].isdigit():  # the older 10-digit home-return permits
        return _R["hk_macao_taiwan_permit"]
    return _NONE


# --- ASCII with punctuation: dispatched on the skeleton (the value without its digits) -----------

_DIGIT_BYTES = b"0123456789"
_SEP_CHARS = frozenset(" -+()/.")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:.")
_GEO_CHARS = frozenset(".,- ()")

(_K_NONE, _K_DECIMAL, _K_IPV4, _K_SEPARATED, _K_IPV6, _K_GEO, _K_TEXT) = range(7)
_SKELETON_KINDS: dict[bytes, int] = {}
_SKELETON_CACHE_MAX = 4096


def _skeleton_kind(t: str) -> int:
    if t in (".", "-."):
        return _K_DECIMAL
    if t == "...":
        return _K_IPV4
    if _SEP_CHARS.issuperset(t):
        return _K_SEPARATED
    if ":" in t and _HEX_COLON.issuperset(t):
        return _K_IPV6
    if "," in t and _GEO_CHARS.issuperset(t.replace(",", "")):
        return _K_GEO
    if " " in t and any(c.isalpha() for c in t):
        return _K_TEXT
    return _K_NONE


def _decimal(s: str) -> _Result:
    # A lone decimal is a coordinate only in a coordinate column, and only with the precision
    # of one (≥ 4 decimals): amounts have 2.
    whole, _, frac = s.partition(".")
    if len(frac) >= 4 and whole.lstrip("-").isdigit() and abs(int(whole)) <= 180:
        return _RW["geo_coordinate"]
    return _NONE


_OCTETS = frozenset(str(n) for n in range(256))  # written without leading zeros


def _ipv4(s: str) -> _Result:
    return _R["ip_address"] if all(map(_OCTETS.__contains__, s.split("."))) else _NONE


def _ipv6(s: str) -> _Result:
    if "::" not in s and s.count(":") != 7:
        return _NONE
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return _NONE
    return _R["ip_address"]


_COORD = re.compile(r"\(?\s*(-?\d{1,3}\.\d{4,})\s*,\s*(-?\d{1,3}\.\d{4,})\s*\)?")


def _geo_pair(s: str) -> _Result:
    """ "lat,lng" or "lng,lat": both parts with ≥ 4 decimals, one a latitude, one a longitude."""
    m = _COORD.fullmatch(s)
    if m is None:
        return _NONE
    a, b = abs(float(m.group(1))), abs(float(m.group(2)))
    if (a <= 90 and b <= 180) or (b <= 90 and a <= 180):
        return _R["geo_coordinate"]
    return _NONE


# Formatted phone, date and ID shapes: one C-level fullmatch each, tried by first character.
_INTL_MOBILE = re.compile(r"\(?(?:\+|00)86\)?[ -]?(1\d{2})[ -]?(\d{4})[ -]?(\d{4})")
_INTL_LANDLINE = re.compile(r"\(?(?:\+|00)86\)?[ -]?\(?(\d{2,3})\)?[ -]?(\d{7,8})(?:-(\d{1,5}))?")
_MOBILE = re.compile(r"(1\d{2})[ -](\d{4})[ -]?(\d{4})|(1\d{6})[ -](\d{4})")
_LANDLINE = re.compile(r"(?:\((0\d{2,3})\)[ -]?|(0\d{2,3})[ -])(\d{7,8})(?:[ -](\d{1,5}))?")
_YMD = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})")
_DMY = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})")
_MYKAD = re.compile(r"(\d{6})-(\d{2})-(\d{4})")
_THAI = re.compile(r"(\d)-(\d{4})-(\d{5})-(\d{2})-(\d)")
_CARD_GROUPS = re.compile(
    r"(\d{4})[ -](\d{4})[ -](\d{4})[ -](\d{1,4})(?:[ -](\d{1,3}))?|(\d{4})[ -](\d{6})[ -](\d{5})"
)


def _landline(area: str, number: str) -> bool:
    """Area code (0 + 2 or 3 digits) and a 7-8 digit number not starting with 0 or 1."""
    if number[0] in "01":
        return False
    if area in lx.LANDLINE_AREA_CODES_3:
        return len(number) == 8
    return len(area) == 4 and area[1] in "3456789"


def _separated(s: str, skeleton: bytes) -> _Result:
    """Digits with separators: formatted phones, dates, grouped card numbers, dashed IDs."""
    c0 = s[0]
    if c0 == "+" or s.startswith(("00", "(+", "(00")):
        m = _INTL_MOBILE.fullmatch(s)
        if m is not None:
            return _R["cn_mobile"] if m.group(1) in lx.MOBILE_PREFIXES else _NONE
        m = _INTL_LANDLINE.fullmatch(s)
        if m is not None and _landline("0" + m.group(1), m.group(2)):
            return _R["cn_landline"]
        if c0 != "0":
            return _NONE
        # "00" without a country code after it is no dialling prefix: a MyKad of someone born
        # in 2000 (000117-13-1390) opens like that, so the other shapes are tried.
    if c0 == "0" or c0 == "(":
        m = _LANDLINE.fullmatch(s)
        if m is not None:
            return _R["cn_landline"] if _landline(m.group(1) or m.group(2), m.group(3)) else _NONE
    elif c0 == "1" and b"/" not in skeleton and b"." not in skeleton:
        m = _MOBILE.fullmatch(s)
        if m is not None:
            return (
                _R["cn_mobile"] if (m.group(1) or m.group(4))[:3] in lx.MOBILE_PREFIXES else _NONE
            )
    if len(skeleton) >= 3:  # three or more separators: grouped card numbers, dashed Thai IDs
        return _grouped(s)
    m = _YMD.fullmatch(s)
    if m is not None:
        return _RW["date_of_birth"] if _date_ok(int(m[1]), int(m[3]), int(m[4])) else _NONE
    m = _DMY.fullmatch(s)
    if m is not None:
        return _RW["date_of_birth"] if _date_ok(int(m[4]), int(m[3]), int(m[1])) else _NONE
    m = _MYKAD.fullmatch(s)
    if m is not None:
        return _R["my_mykad"] if _mykad("".join(m.groups())) else _NONE
    return _grouped(s)


def _grouped(s: str) -> _Result:
    m = _CARD_GROUPS.fullmatch(s)
    if m is not None:
        return _R["bank_card"] if _card("".join(filter(None, m.groups()))) else _NONE
    m = _THAI.fullmatch(s)
    if m is not None:
        return _R["th_national_id"] if _thai("".join(m.groups())) else _NONE
    return _NONE


# Dot-atom local part; domain labels of letters, digits and inner hyphens (checked apart, so the
# pattern needs no nested optional groups), a letters-only top-level domain.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}"
)


def _email(s: str) -> _Result:
    """RFC 5321 sizes (local part ≤ 64, whole ≤ 254), dot-atom local part, a letters-only TLD."""
    at = s.find("@")
    if len(s) > 254 or at > 64 or _EMAIL.fullmatch(s) is None:
        return _NONE
    domain = s[at:]
    if "@-" in domain or "-." in domain or ".-" in domain:
        return _NONE
    return _R["email"]


_WORD_SEP = str.maketrans(",;.#", "    ")
_HAS_DIGIT = re.compile(r"[0-9]").search


def _latin_text(s: str) -> _Result:
    """Words in Latin script: a street address (number + street word) or, weakly, a name."""
    words = s.lower().translate(_WORD_SEP).split()
    if len(words) >= 3 and not lx.EN_STREET_WORDS.isdisjoint(words):
        return _R["address"] if _HAS_DIGIT(s) else _NONE
    capitalised = all(p[0].isupper() for p in s.split())
    if 2 <= len(words) <= 4 and "".join(words).isalpha() and capitalised:
        return _RW["person_name"]
    return _NONE


def _ascii_punct(s: str) -> _Result:
    # bytes.translate deletes in C; str.translate looks every character up in a dict.
    skeleton = s.encode().translate(None, _DIGIT_BYTES)
    kind = _SKELETON_KINDS.get(skeleton)
    if kind is None:
        kind = _skeleton_kind(skeleton.decode())
        if len(skeleton) <= 32 and len(_SKELETON_KINDS) < _SKELETON_CACHE_MAX:
            _SKELETON_KINDS[skeleton] = kind
    if kind == _K_NONE:
        return _NONE
    if kind == _K_SEPARATED:
        return _separated(s, skeleton)
    if kind == _K_DECIMAL:
        return _decimal(s)
    if kind == _K_IPV4:
        return _ipv4(s)
    if kind == _K_IPV6:
        return _ipv6(s)
    if kind == _K_GEO:
        return _geo_pair(s)
    return _latin_text(s)


# --- non-ASCII: Chinese names, addresses, plates, dates ------------------------------------------

_PLATE_LETTERS = frozenset("ABCDEFGHJKLMNPQRSTUVWXYZ")
_PLATE_CHARS = frozenset("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
_PLATE_SUFFIX = frozenset("挂学警港澳领试超")
_NEV_LETTERS = frozenset("DABCEFGHJK")  # D/A/B/C/E pure electric, F/G/H/J/K other (GA 36-2018)
_PLATE_SEP = str.maketrans("", "", "·•・ -.")


def _plate(s: str) -> bool:
    p = s if s.isalnum() else s.translate(_PLATE_SEP)
    n = len(p)
    if n not in (7, 8) or p[0] not in lx.PLATE_PROVINCES or p[1] not in _PLATE_LETTERS:
        return False
    if n == 7:
        tail = p[2:]
        if tail[-1] in _PLATE_SUFFIX:
            tail = tail[:-1]
            return len(tail) == 4 and _PLATE_CHARS.issuperset(tail)
        return tail.isdigit() or (
            _PLATE_CHARS.issuperset(tail) and len(tail.encode().translate(None, _DIGIT_BYTES)) <= 3
        )
    # New-energy plates: small cars letter first then 5 (1 letter or digit + 4 digits), large
    # vehicles 5 digits then the letter.
    if p[2] in _NEV_LETTERS and p[3] in _PLATE_CHARS and p[4:].isdigit():
        return True
    return p[2:7].isdigit() and p[7] in _NEV_LETTERS


def _all_cjk(s: str) -> bool:
    return min(s) >= "\u4e00" and max(s) <= "\u9fff"


def _cn_name(s: str) -> bool:
    """2-4 Chinese characters: a known surname, then a given name of name-like characters."""
    if s[:2] in lx.COMPOUND_SURNAMES and len(s) >= 3:
        given, likely = s[2:], True
    elif s[0] in lx.SINGLE_SURNAMES:
        given, likely = s[1:], len(s) == 3 and s[0] in lx.TOP_SURNAMES
    else:
        return False
    if not lx.NON_NAME_CHARS.isdisjoint(given) or s in lx.COMMON_WORDS:
        return False
    # Most two-character words start with a character that is also a surname (高兴, 安心), so
    # a given name must be made of name characters, unless the string has the usual shape of a
    # full name (a frequent surname and two more characters, or a compound surname).
    return likely or lx.GIVEN_NAME_CHARS.issuperset(given)


def _dotted_name(s: str) -> bool:
    """Names of Uyghur and other minorities written with a middle dot: 买买提·艾力."""
    parts = s.replace("•", "·").split("·")
    return 2 <= len(parts) <= 4 and all(p and len(p) <= 8 and _all_cjk(p) for p in parts)


# Each pattern fixes the length of what precedes the keyword, so a search never backtracks.
_ADDR_PLACE = re.compile(r"[\u4e00-\u9fff]{2}(?:省|自治区|市|自治州|地区|盟|县|旗|镇|乡|街道)")
_ADDR_ROAD = re.compile(
    r"[\u4e00-\u9fff0-9](?:大道|大街|路|街|巷|胡同|村|屯|社区|小区|花园|大厦|广场|新村|公寓)"
)
_ADDR_UNIT = re.compile(
    r"[0-9０-９一二三四五六七八九十百零〇](?:号|栋|幢|单元|室|楼|层|弄|巷|组|队)"
)


_ADDRESS_MAX = 200  # characters; longer text is a document that may quote an address


def _has_division_name(s: str) -> bool:
    if _DIV_FIRST.isdisjoint(s):
        return False
    for i, ch in enumerate(s):
        words = _DIV_BY_FIRST.get(ch)
        if words is not None and any(s.startswith(w, i) for w in words):
            return True
    return False


def _cn_address(s: str) -> bool:
    """A place (known division name or a '…市/县/镇…' word) and a road, village or number."""
    if len(s) > _ADDRESS_MAX or lx.ADDRESS_HINT_CHARS.isdisjoint(s):
        return False
    if _ADDR_ROAD.search(s) is None and _ADDR_UNIT.search(s) is None:
        return False
    return _ADDR_PLACE.search(s) is not None or _has_division_name(s)


_CN_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?")
_DMS = re.compile(r"\d{1,3}\s*°\s*\d{1,2}\s*['′]\s*(?:\d{1,2}(?:\.\d+)?\s*[\"″]\s*)?[NSEW北南东西]")
_FULLWIDTH = str.maketrans("０１２３４５６７８９＋－（）　", "0123456789+-() ")


def _non_ascii(s: str, n: int) -> _Result:
    c0 = s[0]
    if "\u4e00" <= c0 <= "\u9fff":
        if n <= 4:
            if n < 2 or max(s) > "\u9fff" or min(s) < "\u4e00":
                return _NONE
            return _R_NAME if _cn_name(s) else _NONE
        if n <= 10 and c0 in lx.PLATE_PROVINCES and _plate(s):
            return _R["license_plate"]
        if "·" in s or "•" in s:
            return _R["person_name"] if _dotted_name(s) else _NONE
        return _R["address"] if n >= 6 and _cn_address(s) else _NONE
    if c0.isdigit():
        if "年" in s:
            m = _CN_DATE.fullmatch(s)
            if m and _date_ok(int(m.group(1)), int(m.group(2)), int(m.group(3))):
                return _RW["date_of_birth"]
            return _NONE
        if "°" in s:
            return _R["geo_coordinate"] if _DMS.match(s) else _NONE
        if "０" <= c0 <= "９":  # full-width digits, as Chinese input methods type them
            ascii_form = s.translate(_FULLWIDTH)
            if ascii_form.isascii():
                return _classify(ascii_form)
        return _R["address"] if _cn_address(s) else _NONE
    if c0.isalpha() and c0 < "\u2e80":  # Latin with diacritics (Vietnamese, Malay, Thai romanised)
        return _latin_text(s)
    return _NONE


# --- entry point ---------------------------------------------------------------------------------


def _classify(value: str) -> _Result:
    s = value.strip()
    if not s:
        return _BLANK
    n = len(s)
    if s.isascii():
        if s.isdigit():
            rule = _DIGIT_RULES.get(n)
            return rule(s) if rule is not None else _NONE
        if "@" in s:
            return _email(s)
        if s.isalnum():
            return _alnum(s.upper(), n)
        # Shapes common enough in business data to be settled before the skeleton is built.
        whole, dot, frac = s.partition(".")
        if dot and frac.isdigit() and whole.isdigit():  # amounts, or a lone decimal degree
            return _RW["geo_coordinate"] if len(frac) >= 4 and int(whole) <= 180 else _NONE
        if n == 10 and s[4] == s[7] and s[4] in "-/." and s[:4].isdigit():  # YYYY-MM-DD
            return _RW["date_of_birth"] if s[:4] + s[5:7] + s[8:] in _DATES else _NONE
        if n >= 19 and s[13] == ":" and s[4] == "-" and s[10] in " T":  # timestamps
            return _NONE
        if " " in s and s.lower() != s.upper():  # words with letters: English addresses, names
            return _latin_text(s)
        return _ascii_punct(s)
    return _non_ascii(s, n)


# --- column context ------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class ColumnContext:
    """What a column's name says: types it names (boost) and types it makes unlikely (limit)."""

    boost: frozenset[str]
    limit: frozenset[str]


@functools.lru_cache(maxsize=4096)
def column_context(name: str) -> ColumnContext:
    """Match the column name against the narrow keyword lists of ``lexicon``."""
    lowered = name.lower()
    tokens = set(_TOKEN_SPLIT.split(_CAMEL.sub("_", name).lower())) - {""}
    compact = "".join(_TOKEN_SPLIT.split(lowered))

    def hits(table: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> frozenset[str]:
        found = set()
        for entity, (zh_words, en_words) in table.items():
            if any(w.lower() in lowered for w in zh_words) or any(
                w in tokens or w == compact for w in en_words
            ):
                found.add(entity)
        return frozenset(found)

    return ColumnContext(boost=hits(lx.CONTEXT_WORDS), limit=hits(lx.CONTEXT_LIMITS))


# --- public API ----------------------------------------------------------------------------------


def classify_value(
    value: str, column: str | None = None, *, column_types: Iterable[str] = ()
) -> list[str]:
    """The entity types ``value`` is, in ``ENTITY_TYPES`` order (often none, rarely two).

    Without ``column`` only values that are the type on their own count; with it, look-alike
    shapes count too when the column name names the type (``"1990-05-17"`` is a
    ``date_of_birth`` in a column named "出生日期", nothing in one named "下单日期").

    A value valid as two types (an Indonesian NIK that also passes as a Mastercard number) is
    taken as the one its column holds: ``column_types`` (what ``scan_column`` found), else the
    one the column name names. Context only chooses among matches; it never adds one.
    """
    result = _classify(value)
    found = set(result.strong)
    if column is not None:
        boost = column_context(column).boost
        found.update(t[1:] for t in result.types if t.startswith(_WEAK) and t[1:] in boost)
        if len(found) > 1:
            found = (found & set(column_types)) or (found & boost) or found
    elif len(found) > 1:
        found = (found & set(column_types)) or found
    return [t for t in ENTITY_TYPES if t in found]


@dataclass(frozen=True, slots=True)
class Recognizer:
    """One entity type: its name, whether it carries a check character, and a value test."""

    name: str
    check_digit: bool
    sensitive: bool

    def matches(self, value: str, column: str | None = None) -> bool:
        """Whether ``value`` is of this type (``column`` as for ``classify_value``)."""
        return self.name in classify_value(value, column)


RECOGNIZERS: Final[Mapping[str, Recognizer]] = MappingProxyType(
    {
        name: Recognizer(name, name in CHECK_DIGIT_TYPES, load_pii_rules()[name].sensitive)
        for name in ENTITY_TYPES
    }
)


@dataclass(frozen=True, slots=True)
class ColumnFinding:
    """What one column holds: detected types (best first) and the figures behind them.

    ``match_ratio`` and ``confidence`` are those of the first type (0 when none); ``ratios`` and
    ``confidences`` cover every type seen in at least one cell. ``distinct_values`` counts the
    distinct cell values of identifying types (by 64-bit hashes of their UTF-8 bytes: exact up
    to 20,000 but for a collision, about one chance in 10¹¹, then an unbiased estimate); None
    when the column holds no identifying type.
    """

    name: str
    types: tuple[str, ...]
    match_ratio: float
    confidence: float
    sensitive: bool
    distinct_values: int | None
    total: int
    non_empty: int
    ratios: Mapping[str, float] = field(default_factory=dict)
    confidences: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The column entry of ``datafactor scan --json``."""
        return {
            "name": self.name,
            "types": list(self.types),
            "sensitive": self.sensitive,
            "match_ratio": round(self.match_ratio, 4),
            "confidence": round(self.confidence, 4),
            "distinct_values": self.distinct_values,
        }


_CACHE_MAX = 8192  # cached values per column: enough for every low-cardinality column
_DISTINCT_MAX = 20_000  # exact distinct counting up to here, then hash sampling (±1-2 %)
_BATCH = 65_536
_SAMPLE = 512  # cells looked at first: a batch of distinct values is not counted per value
_IS_IDENTIFYING = attrgetter("identifying")


class ColumnScanner:
    """Counts the types of every cell of one column, fed in batches; ``finding()`` decides.

    Repeated values are classified once (a per-column cache), so year, status or city columns
    cost a dictionary lookup per cell. Batches are lists of strings or pyarrow arrays; both give
    the same counts and distinct values for the same cells.
    """

    def __init__(self, name: str, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.name = name
        self.threshold = threshold
        self._total = 0
        self._counts: dict[_Result, int] = {}
        self._cache: dict[str, _Result] = {}
        self._seen: set[int] = set()  # 64-bit hashes of identifying values (_hash_cells)
        self._mask = 0  # distinct sampling: keep values whose hash has these bits clear

    def update(self, values: Iterable[str | None]) -> None:
        """Count a batch of cells (``None`` and empty strings are empty cells).

        ``values`` may also be a pyarrow string array or chunked array (a column of a record
        batch, as ``dataplane`` tables yield them): it is then classified without turning every
        cell into a Python string (see ``_arrow_tally``), with the same result.
        """
        if _is_arrow(values):
            self._update_arrow(values)
            return
        if isinstance(values, list | tuple) and len(values) <= _BATCH:
            self._update(values)
            return
        iterator = iter(values)
        while batch := list(islice(iterator, _BATCH)):
            self._update(batch)

    def _update(self, values: Sequence[str | None]) -> None:
        # The loops over cells run in C (set, Counter, map, compress); Python code runs once per
        # distinct value in columns that repeat values, once per cell (``_classify``) otherwise.
        cells: Sequence[str] = [v or "" for v in values] if None in values else values  # type: ignore[assignment]
        new, identifying = self._tally(cells)
        self._add(new, len(cells))
        if identifying:
            self._remember(_hash_strings(identifying))

    def _add(self, new: Mapping[_Result, int], total: int) -> None:
        counts = self._counts
        for r, count in new.items():
            counts[r] = counts.get(r, 0) + count
        self._total += total

    def _tally(self, cells: Sequence[str]) -> tuple[Mapping[_Result, int], list[str]]:
        """Counts per result of ``cells`` and their values of identifying types."""
        # Columns that repeat values (codes, statuses, dates, amounts) are classified once per
        # distinct value, remembered across batches; the others cell by cell.
        sample = cells[:_SAMPLE]
        tallied = Counter(cells) if len(set(sample)) * 5 <= len(sample) * 4 else None
        if tallied is not None and len(tallied) * 2 <= len(cells):
            return self._tally_distinct(tallied.keys(), tallied.values())
        return _classify_many(cells)

    def _tally_distinct(
        self, values: Iterable[str], counts: Iterable[int]
    ) -> tuple[dict[_Result, int], list[str]]:
        """Counts per result of distinct ``values`` seen ``counts`` times each (cached)."""
        cache = self._cache
        tally: dict[_Result, int] = {}
        identifying = []
        for v, count in zip(values, counts, strict=True):
            r = cache.get(v)
            if r is None:
                r = _classify(v)
                if len(cache) < _CACHE_MAX and len(v) <= 128:
                    cache[v] = r
            tally[r] = tally.get(r, 0) + count
            if r.identifying:
                identifying.append(v)
        return tally, identifying

    def _update_arrow(self, values: object) -> None:
        chunks = values.chunks if hasattr(values, "chunks") else [values]
        for chunk in chunks:
            array = _as_string_array(chunk)
            if isinstance(array, list):  # not text: the values' str(), the Python way
                self.update(array)
                continue
            for start in range(0, len(array), _BATCH):
                part = array.slice(start, _BATCH)
                new, hashes = _arrow_tally(part, self)
                self._add(new, len(part))
                if len(hashes):
                    self._remember(hashes)

    def _remember(self, hashes: Any) -> None:
        """Distinct values of identifying types, as the set of their 64-bit hashes (a numpy
        array of them here), thinned once it grows too big: only the hashes whose low bits
        (the mask's) are clear are kept, a 1/(mask + 1) sample."""
        seen, mask = self._seen, self._mask
        if mask:
            hashes = hashes[(hashes & _tables().np.uint64(mask)) == 0]
        seen.update(hashes.tolist())
        while len(seen) > _DISTINCT_MAX:
            self._mask = mask = (mask << 1) | 1
            kept = list(seen)
            self._seen = seen = set(compress(kept, map(not_, map(and_, kept, repeat(mask)))))

    def finding(self) -> ColumnFinding:
        """Decide the column's types from the counts so far."""
        context = column_context(self.name)
        counts = dict(self._counts)
        blank = counts.pop(_BLANK, 0)
        non_empty = self._total - blank
        per_type: dict[str, int] = {}
        weak_ok = context.boost
        for result, count in counts.items():
            for t in result.types:
                if t.startswith(_WEAK):
                    t = t[1:]
                    if t not in weak_ok or t in result.types:
                        continue
                per_type[t] = per_type.get(t, 0) + count
        ratios: dict[str, float] = {}
        confidences: dict[str, float] = {}
        detected: list[str] = []
        for t in ENTITY_TYPES:
            count = per_type.get(t, 0)
            if not count:
                continue
            ratio = count / non_empty
            threshold = self.threshold
            confidence = _STRENGTH[t] * (0.5 + 0.5 * ratio)
            if t in context.boost:
                threshold = min(threshold, CONTEXT_THRESHOLD)
                confidence += 0.05
            if t in context.limit:
                threshold = max(threshold, LIMIT_THRESHOLD)
                confidence -= 0.2
            ratios[t] = ratio
            confidences[t] = round(min(1.0, max(0.0, confidence)), 4)
            if ratio >= threshold:
                detected.append(t)
        detected.sort(key=lambda t: (-ratios[t], ENTITY_TYPES.index(t)))
        rules = load_pii_rules()
        identifying = any(rules[t].identifying for t in detected)
        distinct = len(self._seen) * (self._mask + 1) if identifying else None
        top = detected[0] if detected else None
        return ColumnFinding(
            name=self.name,
            types=tuple(detected),
            match_ratio=ratios[top] if top else 0.0,
            confidence=confidences[top] if top else 0.0,
            sensitive=any(rules[t].sensitive for t in detected),
            distinct_values=distinct,
            total=self._total,
            non_empty=non_empty,
            ratios=MappingProxyType(ratios),
            confidences=MappingProxyType(confidences),
        )


def _no_type(_: str) -> _Result:
    return _NONE


def _tally(cells: Iterable[str], results: list[_Result]) -> tuple[Counter[_Result], list[str]]:
    counts = Counter(results)
    if not any(r.identifying for r in counts):
        return counts, []
    return counts, list(compress(cells, map(_IS_IDENTIFYING, results)))


def _classify_many(cells: Sequence[str]) -> tuple[Counter[_Result], list[str]]:
    """Classify a batch of mostly distinct cells: counts per result, identifying values.

    Cells made of ASCII digits skip the per-cell dispatch: they are grouped by length and sent
    to that length's rule, or its batch rule (whole-batch arithmetic in C, then the per-cell
    rule for the few cells it rejects). The result per cell is the same as ``_classify``'s.
    """
    flags = list(map(str.isdigit, cells))
    count = sum(flags)
    if not count:
        return _classify_others(cells)
    digits = list(compress(cells, flags)) if count < len(cells) else list(cells)
    if not "".join(digits).isascii():  # other scripts' digits (e.g. full-width) need _classify
        return _tally(cells, list(map(_classify, cells)))
    others = list(compress(cells, map(not_, flags))) if count < len(cells) else []
    counts, identifying = _classify_others(others)
    lengths = set(map(len, digits))
    groups = (
        [digits]
        if len(lengths) == 1
        else [list(group) for _, group in groupby(sorted(digits, key=len), key=len)]
    )
    for group in groups:
        length = len(group[0])
        batch = _BATCH_RULES.get(length)
        if batch is not None:
            part_counts, part_identifying = batch(group)
        else:
            part_counts, part_identifying = _tally(
                group, list(map(_DIGIT_RULES.get(length, _no_type), group))
            )
        counts.update(part_counts)
        identifying += part_identifying
    return counts, identifying


def _classify_others(cells: Sequence[str]) -> tuple[Counter[_Result], list[str]]:
    """Cells that are not all digits: a batch rule for a column of credit codes, else per cell."""
    if len(cells) >= 64 and len(cells[0]) == 18 and all(map((18).__eq__, map(len, cells))):
        joined = "".join(cells)
        if joined.isascii() and joined.isalnum() and joined.upper() == joined:
            return _batch_alnum_18(cells)
    return _tally(cells, list(map(_classify, cells)))


_HEAD17 = itemgetter(slice(0, 17))
_PREFIX3 = itemgetter(slice(0, 3))
_DIVISION6 = itemgetter(slice(2, 8))
_ORG_BODY8 = itemgetter(slice(8, 16))
_REVERSED17 = itemgetter(slice(16, None, -1))
_CHAR17 = itemgetter(16)
_USCC_PAIRS = frozenset(a + c for a, cats in _USCC_CATEGORIES.items() for c in cats)
# Expected characters by remainder: GB 11714 (character 17) and GB 32100 (character 18).
_ORG_EXPECTED = "0X" + "".join(str(11 - r) for r in range(2, 11))
_USCC_EXPECTED = "".join(USCC_ALPHABET[(31 - r) % 31] for r in range(31))


def _batch_alnum_18(cells: Sequence[str]) -> tuple[Counter[_Result], list[str]]:
    """18 upper-case letters and digits, not all digits: ``_uscc`` for the whole batch in C.

    Cells shaped like a resident ID with an X check character go through ``_classify``.
    """
    rid_like = list(map(str.isdigit, map(_HEAD17, cells)))
    counts, identifying = (
        _tally(rids := list(compress(cells, rid_like)), list(map(_classify, rids)))
        if any(rid_like)
        else (Counter(), [])
    )
    rest = list(compress(cells, map(not_, rid_like))) if counts else list(cells)
    if not rest:
        return counts, identifying
    if not _USCC_CHARS.issuperset("".join(rest)):  # letters outside GB 32100's alphabet
        counts.update(map(_classify, rest))
        return counts, identifying
    org_ok = map(
        eq,
        map(
            _ORG_EXPECTED.__getitem__,
            map(mod, map(mul, map(int, map(_ORG_BODY8, rest), repeat(35)), repeat(2)), repeat(11)),
        ),
        map(_CHAR17, rest),
    )
    check_ok = map(
        eq,
        map(
            _USCC_EXPECTED.__getitem__,
            map(
                mod,
                map(
                    int,
                    map(
                        bytes.translate,
                        map(str.encode, map(_REVERSED17, rest)),
                        repeat(_USCC_TO_INT),
                    ),
                    repeat(34),
                ),
                repeat(31),
            ),
        ),
        map(_LAST, rest),
    )
    shape_ok = map(
        and_,
        map(_USCC_PAIRS.__contains__, map(_PREFIX2, rest)),
        map(str.isdigit, map(_DIVISION6, rest)),
    )
    valid = sum(map(and_, shape_ok, map(and_, org_ok, check_ok)))
    if valid:
        counts[_R["cn_uscc"]] += valid
    if valid < len(rest):
        counts[_NONE] += len(rest) - valid
    return counts, identifying


_PREFIX2 = itemgetter(slice(0, 2))
_PREFIX4 = itemgetter(slice(0, 4))
_BIRTH8 = itemgetter(slice(6, 14))
_LAST = itemgetter(-1)
_ODD = itemgetter(slice(-1, None, -2))
_EVEN = itemgetter(slice(-2, None, -2))


def _batch_18(digits: list[str]) -> tuple[Counter[_Result], list[str]]:
    """18 digits: the resident-ID test for the whole batch, then ``_digits_18`` for the rest."""
    valid = list(
        map(
            and_,
            map(
                and_,
                map(PROVINCE_CODES.__contains__, map(_PREFIX2, digits)),
                map(_DATES.__contains__, map(_BIRTH8, digits)),
            ),
            map(
                eq,
                map(
                    _RID_CHECK.__getitem__,
                    map(
                        mod,
                        map(mul, map(int, map(_HEAD17, digits), repeat(13)), repeat(2)),
                        repeat(11),
                    ),
                ),
                map(_LAST, digits),
            ),
        )
    )
    ids = list(compress(digits, valid))
    rest = list(compress(digits, map(not_, valid)))
    # Only the rest whose first characters could open a credit code or a card need a closer look.
    maybe = list(
        map(
            or_,
            map(_USCC_PAIRS.__contains__, map(_PREFIX2, rest)),
            map(_CARD_PREFIX_SETS.get(18, frozenset()).__contains__, map(_PREFIX4, rest)),
        )
    )
    closer = list(compress(rest, maybe))
    counts, identifying = _tally(closer, list(map(_digits_18_other, closer)))
    if len(closer) < len(rest):
        counts[_NONE] += len(rest) - len(closer)
    if ids:
        counts[_R["cn_resident_id"]] += len(ids)
    return counts, identifying + ids


def _card_prefix_sets() -> dict[int, frozenset[str]]:
    """Per card length, every 4-digit issuer prefix allowed for it."""
    sets: dict[int, set[str]] = {}
    for n in range(10_000):
        prefix = f"{n:04d}"
        entry = _CARD_PREFIXES.get(prefix[:2])
        if entry is None or (entry[1] is not None and prefix not in entry[1]):
            continue
        for length in entry[0]:
            sets.setdefault(length, set()).add(prefix)
    return {length: frozenset(prefixes) for length, prefixes in sets.items()}


_CARD_PREFIX_SETS = _card_prefix_sets()


def _card_flags(digits: list[str]) -> list[bool]:
    """``_card`` for a batch of same-length digit strings, in C."""
    length = len(digits[0])
    offset = 48 * length
    luhn_sums = map(
        sum,
        map(
            str.encode,
            map(
                add, map(_ODD, digits), map(str.translate, map(_EVEN, digits), repeat(_LUHN_DOUBLE))
            ),
        ),
    )
    return list(
        map(
            and_,
            map(_CARD_PREFIX_SETS.get(length, frozenset()).__contains__, map(_PREFIX4, digits)),
            map(not_, map(mod, map(sub, luhn_sums, repeat(offset)), repeat(10))),
        )
    )


def _batch_card(digits: list[str]) -> tuple[Counter[_Result], list[str]]:
    """14, 17 or 19 digits (card numbers only): issuer prefix and Luhn for the whole batch."""
    cards = list(compress(digits, _card_flags(digits)))
    counts: Counter[_Result] = Counter()
    if cards:
        counts[_R["bank_card"]] = len(cards)
    if len(cards) < len(digits):
        counts[_NONE] = len(digits) - len(cards)
    return counts, cards


def _batch_11(digits: list[str]) -> tuple[Counter[_Result], list[str]]:
    """11 digits: a mobile number when its segment is allocated."""
    mobiles = list(compress(digits, map(lx.MOBILE_PREFIXES.__contains__, map(_PREFIX3, digits))))
    counts: Counter[_Result] = Counter()
    if mobiles:
        counts[_R["cn_mobile"]] = len(mobiles)
    if len(mobiles) < len(digits):
        counts[_NONE] = len(digits) - len(mobiles)
    return counts, mobiles


_PAIR_RESULTS = {
    (True, True): _result("bank_card", "id_nik"),
    (True, False): _R["bank_card"],
    (False, True): _R["id_nik"],
    (False, False): _NONE,
}


def _batch_16(digits: list[str]) -> tuple[Counter[_Result], list[str]]:
    """16 digits: card (in C for the batch) and NIK (per cell, for NIK province prefixes)."""
    cards = _card_flags(digits)
    candidates = list(map(lx.NIK_PROVINCES.__contains__, map(_PREFIX2, digits)))
    niks = (
        [c and _nik(d) for c, d in zip(candidates, digits, strict=True)]
        if any(candidates)
        else [False] * len(digits)
    )
    counts: Counter[_Result] = Counter()
    for pair, count in Counter(zip(cards, niks, strict=True)).items():
        counts[_PAIR_RESULTS[pair]] += count
    return counts, list(compress(digits, map(or_, cards, niks)))


_BATCH_RULES: dict[int, Callable[[list[str]], tuple[Counter[_Result], list[str]]]] = {
    11: _batch_11,
    16: _batch_16,
    14: _batch_card,
    17: _batch_card,
    18: _batch_18,
    19: _batch_card,
}


# --- Arrow columns: rules over whole arrays ------------------------------------------------------
#
# A column of a pyarrow record batch is classified without making a Python string of every cell.
# Cells whose shape settles their result are counted with whole-array arithmetic (numpy over the
# array's UTF-8 bytes, Arrow compute kernels): all-digit cells by length (resident IDs, card
# numbers, mobiles, ...), upper-case letters and digits of 17 and 18 characters (VINs, credit
# codes), ISO and day-first dates, timestamps, amounts. Each of these rules re-states what
# ``_classify`` answers for exactly that shape, and any cell it cannot settle (a date after
# today, an 18-digit number that may be a card or a credit code, lower-case letters, anything
# else) goes to ``_classify`` as a Python string. The tests check that the result is the one of
# ``_classify`` cell by cell. Python strings are made only of those cells and of the values of
# identifying types (for the distinct count).


def _is_arrow(values: object) -> bool:
    module = type(values).__module__
    return module.startswith("pyarrow") and hasattr(values, "type")


def _as_string_array(array: Any) -> Any:
    """A pyarrow ``string`` or ``large_string`` array, or (other types) the cells' ``str()``."""
    import pyarrow as pa

    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array
    if pa.types.is_dictionary(kind):
        return _as_string_array(array.dictionary_decode())
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_string_view(kind):
        return array.cast(pa.large_string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            return array.cast(pa.large_string())
        except pa.ArrowInvalid:  # not UTF-8: decoded value by value, as dataplane does
            return [None if v is None else v.decode("utf-8", "replace") for v in array.to_pylist()]
    return [None if v is None else str(v) for v in array.to_pylist()]


class _Tables:
    """Lookup tables of the array rules, as numpy arrays (built on first use)."""

    def __init__(self) -> None:
        import numpy as np

        self.np = np

        def flags(size: int, keys: Iterable[int]) -> Any:
            table = np.zeros(size, dtype=bool)
            table[list(keys)] = True
            return table

        def byte_table(chars: str, values: Iterable[int]) -> Any:
            table = np.full(256, -1, dtype=np.int32)
            table[list(chars.encode())] = list(values)
            return table

        self.province = flags(100, map(int, PROVINCE_CODES))
        self.nik_province = flags(100, map(int, lx.NIK_PROVINCES))
        self.mobile = flags(1000, map(int, lx.MOBILE_PREFIXES))
        self.card = {
            length: flags(10_000, map(int, prefixes))
            for length, prefixes in _CARD_PREFIX_SETS.items()
        }
        # Digit pairs that may open a credit code: only those 18-digit numbers need a closer look.
        self.uscc_digit_pair = flags(100, (int(p) for p in _USCC_PAIRS if p.isdigit()))
        self.uscc_pair = flags(65_536, (ord(p[0]) * 256 + ord(p[1]) for p in _USCC_PAIRS))
        self.uscc_value = byte_table(USCC_ALPHABET, range(len(USCC_ALPHABET)))
        self.org_value = byte_table(USCC_ALPHABET, (int(c, 36) for c in USCC_ALPHABET))
        self.org_weights = np.array([pow(2, 8 - j, 11) for j in range(8)], dtype=np.int32)
        self.uscc_weights = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int32)
        self.org_expected = np.frombuffer(_ORG_EXPECTED.encode(), dtype=np.uint8)
        self.uscc_expected = np.frombuffer(_USCC_EXPECTED.encode(), dtype=np.uint8)
        self.rid_weights = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int32)
        self.rid_expected = np.frombuffer(_RID_CHECK.encode(), dtype=np.uint8)
        vin_letters = b"ABCDEFGHJKLMNPRSTUVWXYZ"
        self.vin_value = byte_table(
            "0123456789" + vin_letters.decode(),
            [*range(10), *(b - 48 for b in vin_letters.translate(_VIN_TO_DIGIT))],
        )
        self.vin_weights = np.array(_VIN_WEIGHTS, dtype=np.int32)
        self.vin_expected = np.frombuffer(b"0123456789X", dtype=np.uint8)
        self.thai_weights = np.array(_TH_WEIGHTS, dtype=np.int32)
        self.luhn_double = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.int32)
        self.div_codes = np.array(sorted(map(int, _DIV_CODES)), dtype=np.int64)
        # Dates by (year - 1900) * 416 + month * 32 + day: valid iff in _DATES.
        self.last_date = int(_LAST_DATE)
        years = self.last_date // 10_000 - 1900 + 1
        self.dates = flags(
            years * 416,
            ((int(d[:4]) - 1900) * 416 + int(d[4:6]) * 32 + int(d[6:]) for d in _DATES),
        )
        self.date_years = years
        self.separators = flags(256, b"-/.")
        cjk = 0x9FFF - 0x4E00 + 1

        def chars(text: Iterable[str]) -> Any:
            return flags(cjk, (ord(c) - 0x4E00 for c in text if "\u4e00" <= c <= "\u9fff"))

        self.single_surname = chars(lx.SINGLE_SURNAMES)
        self.top_surname = chars(lx.TOP_SURNAMES)
        self.non_name = chars(lx.NON_NAME_CHARS)
        self.given_name = chars(lx.GIVEN_NAME_CHARS)
        self.plate_province = chars(lx.PLATE_PROVINCES)
        self.compound_surnames = np.array(
            sorted(
                (ord(w[0]) - 0x4E00) * 0x8000 + ord(w[1]) - 0x4E00 for w in lx.COMPOUND_SURNAMES
            ),
            dtype=np.int64,
        )
        common: dict[int, list[int]] = {}
        for word in lx.COMMON_WORDS:
            if 2 <= len(word) <= 4 and _all_cjk(word):
                value = 0
                for c in word:
                    value = value * 0x8000 + ord(c) - 0x4E00
                common.setdefault(len(word), []).append(value)
        self.common_words = {n: np.array(sorted(v), dtype=np.int64) for n, v in common.items()}
        self.plate_letter = flags(256, map(ord, _PLATE_LETTERS))
        self.plate_char = flags(256, map(ord, _PLATE_CHARS))
        self.plate_nev = flags(256, map(ord, _NEV_LETTERS))
        self.space = flags(256, b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")

    def date(self, year: Any, month: Any, day: Any) -> tuple[Any, Any]:
        """For int arrays: (in ``_DATES``, undecided).

        Undecided are the dates after the last one of ``_DATES`` and not after today: only a
        process that has run past midnight has them, and ``_date_ok`` must judge them.
        """
        np = self.np
        index = (year - 1900) * 416 + month * 32 + day
        inside = (year >= 1900) & (year < 1900 + self.date_years)
        inside &= (month >= 0) & (month <= 12) & (day >= 0) & (day <= 31)
        valid = inside & self.dates[np.where(inside, index, 0)]
        number = year * 10_000 + month * 100 + day
        today = int(datetime.date.today().strftime("%Y%m%d"))
        return valid, (number > self.last_date) & (number <= today)


_TABLES: list[_Tables] = []


def _tables() -> _Tables:
    if not _TABLES:
        _TABLES.append(_Tables())
    return _TABLES[0]


def _number(d: Any, start: int, stop: int) -> Any:
    """The decimal number in columns ``start:stop`` of a digit matrix (values 0-9)."""
    value = d[:, start].astype("int64")
    for i in range(start + 1, stop):
        value = value * 10 + d[:, i]
    return value


def _luhn_ok(t: _Tables, d: Any) -> Any:
    length = d.shape[1]
    total = d[:, length - 1 :: -2].sum(axis=1, dtype="int32") if length else 0
    total = total + t.luhn_double[d[:, length - 2 :: -2]].sum(axis=1, dtype="int32")
    return total % 10 == 0


def _card_ok(t: _Tables, d: Any) -> Any:
    table = t.card.get(d.shape[1])
    if table is None:
        return t.np.zeros(len(d), dtype=bool)
    return table[_number(d, 0, 4)] & _luhn_ok(t, d)


def _nik_ok(t: _Tables, d: Any) -> tuple[Any, Any]:
    """``_nik`` for rows of 16 digits: (valid, undecided)."""
    np = t.np
    month = _number(d, 8, 10)
    shape = (month >= 1) & (month <= 12) & t.nik_province[_number(d, 0, 2)]
    shape &= (_number(d, 2, 4) != 0) & (_number(d, 4, 6) != 0) & (_number(d, 12, 16) != 0)
    day = _number(d, 6, 8)
    day = np.where(day > 40, day - 40, day)  # women: day + 40
    year = _number(d, 10, 12)
    last_century, _ = t.date(1900 + year, month, day)
    this_century, undecided = t.date(2000 + year, month, day)
    valid = last_century | this_century
    return shape & valid, shape & ~valid & undecided


def _rid18_ok(t: _Tables, m: Any, d: Any) -> tuple[Any, Any]:
    """``_rid18`` for rows of 17 digits + a check character: (valid, undecided)."""
    valid, undecided = t.date(_number(d, 6, 10), _number(d, 10, 12), _number(d, 12, 14))
    prefix = t.province[_number(d, 0, 2)]
    check = t.rid_expected[(d[:, :17].astype("int32") @ t.rid_weights) % 11] == m[:, 17]
    return prefix & valid & check, prefix & undecided & check


class _ArrowTally:
    """Counts of one array's cells by result, the cells left to ``_classify``, identifying ones."""

    def __init__(self, array: Any) -> None:
        import numpy as np
        import pyarrow as pa

        self.np = np
        self.array = array
        self.counts: dict[_Result, int] = {}
        self.python: list[Any] = []  # index arrays of cells for _classify
        self.identifying: list[Any] = []  # index arrays of cells of identifying types
        large = pa.types.is_large_string(array.type)
        buffers = array.buffers()
        width = 8 if large else 4
        self.offsets = np.frombuffer(
            buffers[1],
            dtype=np.int64 if large else np.int32,
            count=len(array) + 1,
            offset=array.offset * width,
        ).astype(np.int64)
        self.data = (
            np.frombuffer(buffers[2], dtype=np.uint8)
            if buffers[2] is not None
            else np.zeros(0, dtype=np.uint8)
        )

    def add(self, result: _Result, count: int) -> None:
        if count:
            self.counts[result] = self.counts.get(result, 0) + int(count)

    def add_flags(self, result: _Result, rows: Any, flags: Any) -> None:
        """``rows[flags]`` are ``result``; identifying results keep their cells."""
        count = int(flags.sum())
        if count:
            self.add(result, count)
            if result.identifying:
                self.identifying.append(rows[flags])

    def matrix(self, rows: Any, length: int) -> Any:
        """The bytes of ``rows`` (all ``length`` bytes long) as a (rows, length) matrix."""
        np = self.np
        starts = self.offsets[rows]
        first = int(starts[0])
        if int(starts[-1]) - first == (len(rows) - 1) * length and (
            len(rows) == 1 or bool((np.diff(starts) == length).all())
        ):
            return self.data[first : first + len(rows) * length].reshape(len(rows), length)
        return self.data[starts[:, None] + np.arange(length)]

    def strings(self, rows: Any) -> list[str]:
        import pyarrow as pa

        return self.array.take(pa.array(rows, type=pa.int64())).to_pylist()  # type: ignore[no-any-return]


def _arrow_tally(array: Any, scanner: ColumnScanner) -> tuple[Mapping[_Result, int], Any]:
    """``ColumnScanner._tally`` for the cells of a pyarrow string array, with the values of
    identifying types as their hashes (``_hash_cells``)."""
    import pyarrow.compute as pc

    np = _tables().np
    n = len(array)
    nulls = array.null_count
    if nulls == n:
        return ({_BLANK: n} if n else {}), np.zeros(0, dtype=np.uint64)
    # A column that repeats values (codes, statuses, cities) is counted per distinct value.
    sample = [v for v in array.slice(0, _SAMPLE).to_pylist() if v is not None]
    if sample and len(set(sample)) * 5 <= len(sample) * 4:
        counted = pc.value_counts(array)
        values = counted.field(0).to_pylist()
        tally, identifying = scanner._tally_distinct(
            ["" if v is None else v for v in values], counted.field(1).to_pylist()
        )
        return tally, _hash_strings(identifying)
    return _arrow_rules(array, scanner)


def _arrow_rules(array: Any, scanner: ColumnScanner) -> tuple[Mapping[_Result, int], Any]:
    """``_arrow_tally`` for an array of mostly distinct values: the whole-array rules."""
    import pyarrow.compute as pc

    np = _tables().np
    nulls = array.null_count
    if nulls == len(array):
        return ({_BLANK: nulls} if nulls else {}), np.zeros(0, dtype=np.uint64)
    tally_ = _ArrowTally(array)
    t = _tables()
    offsets, data = tally_.offsets, tally_.data
    lengths = np.diff(offsets)
    if nulls:
        valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        tally_.add(_BLANK, nulls)
        lengths = np.where(valid, lengths, -1)
    tally_.add(_BLANK, int(np.count_nonzero(lengths == 0)))
    digits = pc.fill_null(pc.ascii_is_decimal(array), False).to_numpy(zero_copy_only=False)
    alnum = pc.fill_null(pc.ascii_is_alnum(array), False).to_numpy(zero_copy_only=False)
    alnum &= ~digits
    other = ~(digits | alnum) & (lengths > 0)
    for length in np.unique(lengths[digits]).tolist():
        rows = np.flatnonzero(digits & (lengths == length))
        _arrow_digits(tally_, t, rows, length)
    for length in np.unique(lengths[alnum]).tolist():
        rows = np.flatnonzero(alnum & (lengths == length))
        if length in (17, 18):
            _arrow_alnum(tally_, t, rows, length)
        elif length in (9, 11):
            tally_.python.append(rows)
        else:  # _alnum: no type has letters and digits of another length
            tally_.add(_NONE, len(rows))
    if other.any():
        _arrow_other(tally_, t, np.flatnonzero(other), lengths)

    counts = tally_.counts
    hashes = [_hash_cells(offsets, data, rows) for rows in tally_.identifying]
    if tally_.python:
        rows = np.concatenate(tally_.python) if len(tally_.python) > 1 else tally_.python[0]
        new, found = scanner._tally(tally_.strings(rows))
        for r, count in new.items():
            counts[r] = counts.get(r, 0) + count
        if found:
            hashes.append(_hash_strings(found))
    if not hashes:
        return counts, np.zeros(0, dtype=np.uint64)
    return counts, np.concatenate(hashes) if len(hashes) > 1 else hashes[0]


def _arrow_digits(tally: _ArrowTally, t: _Tables, rows: Any, length: int) -> None:
    """Cells of ``length`` ASCII digits: ``_DIGIT_RULES`` over the whole group."""
    np = t.np
    if length not in _DIGIT_RULES:
        tally.add(_NONE, len(rows))
        return
    if length == 9:
        tally.add(_RW["vn_citizen_id"], len(rows))
        return
    if length == 12:
        tally.python.append(rows)
        return
    m = tally.matrix(rows, length)
    d = m - 48
    if length == 11:
        mobile = t.mobile[_number(d, 0, 3)]
        tally.add_flags(_R["cn_mobile"], rows, mobile)
        tally.add(_NONE, len(rows) - int(mobile.sum()))
    elif length in (14, 17, 19):
        card = _card_ok(t, d)
        tally.add_flags(_R["bank_card"], rows, card)
        tally.add(_NONE, len(rows) - int(card.sum()))
    elif length == 18:
        rid, undecided = _rid18_ok(t, m, d)
        tally.add_flags(_R["cn_resident_id"], rows, rid)
        rest = ~(rid | undecided)
        # Not a resident ID: a credit code or a card only with the right first digits.
        closer = rest & (t.uscc_digit_pair[_number(d, 0, 2)] | t.card[18][_number(d, 0, 4)])
        tally.python.append(rows[undecided | closer])
        tally.add(_NONE, int((rest & ~closer).sum()))
    elif length == 16:
        card = _card_ok(t, d)
        nik, undecided = _nik_ok(t, d)
        tally.python.append(rows[undecided])
        card &= ~undecided
        tally.add_flags(_PAIR_RESULTS[True, True], rows, card & nik)
        tally.add_flags(_R["bank_card"], rows, card & ~nik)
        tally.add_flags(_R["id_nik"], rows, nik & ~card)
        tally.add(_NONE, int((~card & ~nik & ~undecided).sum()))
    elif length == 15:
        valid, _ = t.date(1900 + _number(d, 6, 8), _number(d, 8, 10), _number(d, 10, 12))
        rid = t.province[_number(d, 0, 2)] & valid
        card = _card_ok(t, d)
        tally.add_flags(_result("cn_resident_id", "bank_card"), rows, rid & card)
        tally.add_flags(_R["cn_resident_id"], rows, rid & ~card)
        tally.add_flags(_R["bank_card"], rows, card & ~rid)
        tally.add(_NONE, int((~rid & ~card).sum()))
    elif length == 13:
        total = d[:, :12].astype(np.int32) @ t.thai_weights
        thai = (d[:, 0] >= 1) & (d[:, 0] <= 8) & ((11 - total % 11) % 10 == d[:, 12])
        tally.add_flags(_R["th_national_id"], rows, thai)
        tally.add(_NONE, len(rows) - int(thai.sum()))
    elif length == 8:
        valid, undecided = t.date(_number(d, 0, 4), _number(d, 4, 6), _number(d, 6, 8))
        tally.python.append(rows[undecided])
        tally.add(_R_DATE_OR_PERMIT, int(valid.sum()))
        tally.add(_RW["hk_macao_taiwan_permit"], int((~valid & ~undecided).sum()))
    elif length == 6:
        known = np.isin(_number(d, 0, 6), t.div_codes)
        tally.add(_RW["address"], int(known.sum()))
        tally.add(_NONE, len(rows) - int(known.sum()))
    else:  # a rule without an array form
        tally.python.append(rows)


def _arrow_alnum(tally: _ArrowTally, t: _Tables, rows: Any, length: int) -> None:
    """17 or 18 ASCII letters and digits (at least one letter): VINs, credit codes, IDs + X."""
    np = t.np
    m = tally.matrix(rows, length)
    upper = ((m <= 57) | ((m >= 65) & (m <= 90))).all(axis=1)
    tally.python.append(rows[~upper])  # lower-case letters: _classify upper-cases them
    rows, m = rows[upper], m[upper]
    if not len(rows):
        return
    if length == 17:
        value = t.vin_value[m]
        total = (np.where(value < 0, 0, value) @ t.vin_weights) % 11
        vin = (
            (value >= 0).all(axis=1)
            & (m[:, 9] != ord("U"))
            & (m[:, 9] != ord("Z"))
            & (m[:, 9] != ord("0"))
            & (t.vin_expected[total] == m[:, 8])
        )
        tally.add_flags(_R["vin"], rows, vin)
        tally.add(_NONE, len(rows) - int(vin.sum()))
        return
    head_digits = (m[:, :17] <= 57).all(axis=1)  # no letter among the first 17: it is the 'X'
    ids = head_digits & (m[:, 17] == ord("X"))
    if ids.any():
        d = m[ids] - 48
        rid, undecided = _rid18_ok(t, m[ids], d)
        id_rows = rows[ids]
        tally.add_flags(_R["cn_resident_id"], id_rows, rid)
        tally.python.append(id_rows[undecided])
        tally.add(_NONE, int((~rid & ~undecided).sum()))
        rows, m = rows[~ids], m[~ids]
        if not len(rows):
            return
    value = t.uscc_value[m]
    org = t.org_value[m[:, 8:16]]
    uscc = (
        (value >= 0).all(axis=1)
        & t.uscc_pair[m[:, 0].astype(np.int32) * 256 + m[:, 1]]
        & ((m[:, 2:8] >= 48) & (m[:, 2:8] <= 57)).all(axis=1)
        & (t.org_expected[(np.where(org < 0, 0, org) @ t.org_weights) % 11] == m[:, 16])
        & (
            t.uscc_expected[(np.where(value < 0, 0, value)[:, :17] @ t.uscc_weights) % 31]
            == m[:, 17]
        )
    )
    tally.add_flags(_R["cn_uscc"], rows, uscc)
    tally.add(_NONE, len(rows) - int(uscc.sum()))


_AMOUNT = r"^[0-9]+\.[0-9]{1,3}$"  # an amount: not a coordinate (< 4 decimals)


def _arrow_other(tally: _ArrowTally, t: _Tables, rows: Any, lengths: Any) -> None:
    """Neither digits nor letters and digits: dates, timestamps, amounts, e-mail addresses,
    codes, Chinese names, plates and addresses; the rest to ``_classify``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    np = t.np
    data, starts = tally.data, tally.offsets[:-1]
    length = lengths[rows]
    ends = starts[rows] + length - 1
    first = data[starts[rows]]
    last = data[ends]
    plain = (first < 128) & (last < 128) & ~t.space[first] & ~t.space[last]
    left = np.ones(len(rows), dtype=bool)

    ten = plain & (length == 10)
    if ten.any():
        sub = rows[ten]
        m = tally.matrix(sub, 10)
        digit = (m >= 48) & (m <= 57)
        # YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD: _classify looks the date up in _DATES.
        ymd = digit[:, [0, 1, 2, 3, 5, 6, 8, 9]].all(axis=1) & (m[:, 4] == m[:, 7])
        ymd &= t.separators[m[:, 4]]
        # DD-MM-YYYY (and / .): _classify reaches _DMY and _date_ok.
        dmy = digit[:, [0, 1, 3, 4, 6, 7, 8, 9]].all(axis=1) & (m[:, 2] == m[:, 5])
        dmy &= t.separators[m[:, 2]]
        d = m.astype(np.int64) - 48
        valid, _ = t.date(_number(d, 0, 4), _number(d, 5, 7), _number(d, 8, 10))
        tally.add(_RW["date_of_birth"], int((ymd & valid).sum()))
        tally.add(_NONE, int((ymd & ~valid).sum()))
        valid, undecided = t.date(_number(d, 6, 10), _number(d, 3, 5), _number(d, 0, 2))
        settled = dmy & ~undecided
        tally.add(_RW["date_of_birth"], int((settled & valid).sum()))
        tally.add(_NONE, int((settled & ~valid).sum()))
        left[np.flatnonzero(ten)[ymd | settled]] = False

    for size in (8, 9, 13, 14, 17, 19, 23):
        pick = np.flatnonzero(plain & left & (length == size))
        if len(pick):
            left[pick[_arrow_shapes(tally, t, rows[pick], size)]] = False

    # Timestamps (ASCII, no '@', YYYY-MM-DD[ T]hh:...): _classify settles them as nothing.
    stamp = plain & left & (length >= 19)
    if stamp.any():
        sub = rows[stamp]
        at = starts[sub]
        stamp_rows = np.flatnonzero(stamp)
        shaped = (data[at + 4] == 45) & ((data[at + 10] == 32) | (data[at + 10] == 84))
        shaped &= data[at + 13] == 58
        if shaped.any():
            candidates = sub[shaped]
            strings = tally.array.take(pa.array(candidates, type=pa.int64()))
            ok = pc.and_(
                pc.string_is_ascii(strings), pc.invert(pc.match_substring(strings, "@"))
            ).to_numpy(zero_copy_only=False)
            tally.add(_NONE, int(ok.sum()))
            left[stamp_rows[shaped][ok]] = False

    # Amounts: digits, a point, 1-3 decimals.
    amount = plain & left & (first >= 48) & (first <= 57) & (last >= 48) & (last <= 57)
    amount &= length <= 64
    if amount.any():
        amount_rows = np.flatnonzero(amount)
        strings = tally.array.take(pa.array(rows[amount_rows], type=pa.int64()))
        ok = pc.match_substring_regex(strings, _AMOUNT).to_numpy(zero_copy_only=False)
        tally.add(_NONE, int(ok.sum()))
        left[amount_rows[ok]] = False

    # E-mail addresses of the usual shape (every one _email accepts too; the others go there).
    mail = plain & left & (length <= 64) & (last >= 65)
    if mail.any():
        mail_rows = np.flatnonzero(mail)
        strings = tally.array.take(pa.array(rows[mail_rows], type=pa.int64()))
        ok = pc.match_substring_regex(strings, _PLAIN_EMAIL).to_numpy(zero_copy_only=False)
        tally.add_flags(_R["email"], rows[mail_rows], ok)
        left[mail_rows[ok]] = False

    # Codes of letters, digits and - _ / (SKU-000123): no type has that shape.
    code = plain & left & (length <= 64)
    if code.any():
        code_rows = np.flatnonzero(code)
        strings = tally.array.take(pa.array(rows[code_rows], type=pa.int64()))
        ok = pc.match_substring_regex(strings, _CODE).to_numpy(zero_copy_only=False)
        tally.add(_NONE, int(ok.sum()))
        left[code_rows[ok]] = False

    cjk = left & (first >= 0xE4) & (first <= 0xE9)  # opens with a character U+4000-U+9FFF
    if cjk.any():
        cjk_rows = np.flatnonzero(cjk)
        settled = _arrow_cjk(tally, t, rows[cjk_rows], length[cjk_rows])
        left[cjk_rows[settled]] = False
        cjk_rows = cjk_rows[~settled]
        if len(cjk_rows):
            address = _arrow_addresses(tally.array.take(pa.array(rows[cjk_rows], type=pa.int64())))
            tally.add(_R["address"], int(address.sum()))
            left[cjk_rows[address]] = False

    tally.python.append(rows[left])


# Letters, digits and - _ / with at least one letter: the skeleton has a letter and no space,
# colon or comma, so _ascii_punct finds no kind (and a 10-character date with a letter is no
# date either).
_CODE = r"^[0-9A-Za-z/_-]*[A-Za-z][0-9A-Za-z/_-]*$"


def _arrow_shapes(tally: _ArrowTally, t: _Tables, rows: Any, size: int) -> Any:
    """Fixed ASCII shapes of ``size`` bytes that ``_classify`` settles by one rule each.

    Returns which of ``rows`` are settled: ``YYYY-M-D`` dates (8 or 9 characters, ``_YMD``),
    grouped card numbers of 16 or 19 digits (``_CARD_GROUPS``), formatted mobiles.
    """
    np = t.np
    m = tally.matrix(rows, size)
    digit = (m >= 48) & (m <= 57)
    d = np.where(digit, m, 48).astype(np.int64) - 48
    settled = np.zeros(len(rows), dtype=bool)
    gap = (m == 32) | (m == 45)  # a space or a hyphen
    if size in (8, 9):
        for second in (6, 7) if size == 9 else (6,):
            others = [i for i in range(size) if i not in (4, second)]
            shape = digit[:, others].all(axis=1) & (m[:, 4] == m[:, second])
            shape &= t.separators[m[:, 4]]
            valid, undecided = t.date(
                _number(d, 0, 4), _number(d, 5, second), _number(d, second + 1, size)
            )
            shape &= ~undecided
            tally.add(_RW["date_of_birth"], int((shape & valid).sum()))
            tally.add(_NONE, int((shape & ~valid).sum()))
            settled |= shape
        return settled
    gaps: tuple[int, ...]
    if size in (19, 23):  # 4 4 4 4 [3], opening with 2-9 (0 and 1 open phones first)
        gaps = (4, 9, 14) if size == 19 else (4, 9, 14, 19)
        others = [i for i in range(size) if i not in gaps]
        shape = digit[:, others].all(axis=1) & gap[:, gaps].all(axis=1) & (m[:, 0] >= 50)
        card = shape & _card_ok(t, d[:, others])
        tally.add_flags(_R["bank_card"], rows, card)
        tally.add(_NONE, int((shape & ~card).sum()))
        return shape
    # Mobiles: 1xx-xxxx-xxxx, +861xxxxxxxxxx, +86 1xx xxxx xxxx (_MOBILE, _INTL_MOBILE).
    if size == 13:
        gaps, start = (3, 8), 0
        shape = m[:, 0] == 49
    elif size == 14:
        gaps, start = (), 3
        shape = (m[:, 0] == 43) & (m[:, 1] == 56) & (m[:, 2] == 54) & (m[:, 3] == 49)
    else:
        gaps, start = (3, 7, 12), 4
        shape = (m[:, 0] == 43) & (m[:, 1] == 56) & (m[:, 2] == 54) & (m[:, 4] == 49)
    others = [i for i in range(start, size) if i not in gaps]
    shape &= digit[:, others].all(axis=1) & gap[:, list(gaps)].all(axis=1)
    mobile = shape & t.mobile[_number(d, others[0], others[0] + 3)]
    tally.add_flags(_R["cn_mobile"], rows, mobile)
    tally.add(_NONE, int((shape & ~mobile).sum()))
    return shape


def _address_patterns() -> tuple[str, str, str]:
    """RE2 forms of ``_cn_address``'s conditions, narrowed so that a match implies them.

    The shape: a Chinese character first, a Chinese character or a digit last (no space to
    strip), no Latin letter (so no plate) and no middle dot (so no minority name). Road and
    unit words only those that hold an ``ADDRESS_HINT_CHARS`` character. Places as
    ``_ADDR_PLACE`` or a division name.
    """
    shape = r"^[\x{4e00}-\x{9fff}][^A-Za-z\x{b7}\x{2022}]*[\x{4e00}-\x{9fff}0-9]$"
    road = r"[\x{4e00}-\x{9fff}0-9](?:大道|大街|路|街|巷|村|屯|社区|小区|花园|新村)"
    unit = r"[0-9０-９一二三四五六七八九十百零〇](?:号|栋|幢|室|楼|弄|巷|组)"
    place = r"[\x{4e00}-\x{9fff}]{2}(?:省|自治区|市|自治州|地区|盟|县|旗|镇|乡|街道)"
    words = "|".join(sorted(_DIV_WORDS, key=len, reverse=True))
    return shape, f"{road}|{unit}", f"{place}|{words}"


_ADDRESS_PATTERNS: list[tuple[str, str, str]] = []


def _arrow_addresses(strings: Any) -> Any:
    """Which cells (opening with a Chinese character) are surely addresses to ``_classify``."""
    import pyarrow.compute as pc

    if not _ADDRESS_PATTERNS:
        _ADDRESS_PATTERNS.append(_address_patterns())
    size = pc.utf8_length(strings).to_numpy(zero_copy_only=False)
    ok = (size >= 6) & (size <= _ADDRESS_MAX)
    for pattern in _ADDRESS_PATTERNS[0]:
        ok &= pc.match_substring_regex(strings, pattern).to_numpy(zero_copy_only=False)
    return ok


# Local part of letters, digits and _+- (dot-separated), domain labels of letters, digits and
# inner hyphens, a letters-only top-level domain: a subset of what _email accepts (checked with
# at most 64 characters, so that no label nor the local part can be too long).
_PLAIN_EMAIL = (
    r"^[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"
)


_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB


def _mix(h: Any) -> Any:
    """The splitmix64 finaliser, over a numpy uint64 array (wrapping arithmetic)."""
    np = _tables().np
    h = (h ^ (h >> np.uint64(30))) * np.uint64(_MIX_1)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(_MIX_2)
    return h ^ (h >> np.uint64(31))


def _hash_cells(offsets: Any, data: Any, rows: Any) -> Any:
    """A 64-bit hash of the UTF-8 bytes of each of ``rows`` (a numpy uint64 array).

    Cells are grouped by length; each group's bytes, zero-padded to whole 8-byte words, are
    mixed word by word (splitmix64), starting from the length. Distinct values collide with a
    probability of about n² / 2⁶⁵: none in practice for the distinct counts made with it.
    """
    np = _tables().np
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    out = np.empty(len(rows), dtype=np.uint64)
    for length in np.unique(lengths).tolist():
        pick = np.flatnonzero(lengths == length)
        words = -(-length // 8)
        m = np.zeros((len(pick), words * 8), dtype=np.uint8)
        if length:
            m[:, :length] = data[starts[pick][:, None] + np.arange(length)]
        view = m.view("<u8")
        h = _mix(np.full(len(pick), length + 1, dtype=np.uint64))
        for j in range(words):
            h = _mix(h ^ view[:, j])
        out[pick] = h
    return out


def _hash_strings(values: Sequence[str]) -> Any:
    """``_hash_cells`` of Python strings."""
    import pyarrow as pa

    np = _tables().np
    if not values:
        return np.zeros(0, dtype=np.uint64)
    try:
        array = pa.array(values, type=pa.large_string())
    except UnicodeError:  # lone surrogates (a file decoded with surrogateescape): their bytes
        encoded = [v.encode("utf-8", "surrogatepass") for v in values]
        array = pa.array(encoded, type=pa.large_binary())
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64, count=len(array) + 1)
    return _hash_cells(offsets, np.frombuffer(buffers[2], dtype=np.uint8), np.arange(len(array)))


def _cjk_chars(m: Any) -> tuple[Any, Any]:
    """Rows of UTF-8 bytes as (code points - U+4E00, all of them U+4E00-U+9FFF)."""
    np = _tables().np
    triples = m.reshape(len(m), -1, 3).astype(np.int32)
    code = ((triples[:, :, 0] & 0x0F) << 12) | ((triples[:, :, 1] & 0x3F) << 6)
    code |= triples[:, :, 2] & 0x3F
    lead = (triples[:, :, 0] >= 0xE4) & (triples[:, :, 0] <= 0xE9)
    tail = ((triples[:, :, 1:] & 0xC0) == 0x80).all(axis=2)
    ok = (lead & tail & (code >= 0x4E00) & (code <= 0x9FFF)).all(axis=1)
    return np.where(ok[:, None], code - 0x4E00, 0), ok


def _arrow_cjk(tally: _ArrowTally, t: _Tables, rows: Any, length: Any) -> Any:
    """Cells opening with a Chinese character: names of 2-4 characters, licence plates.

    Returns which of ``rows`` are settled; the others are left to ``_classify``.
    """
    np = t.np
    settled = np.zeros(len(rows), dtype=bool)
    for size in (6, 9, 12):  # 2, 3 or 4 characters of 3 bytes
        pick = np.flatnonzero(length == size)
        if not len(pick):
            continue
        code, ok = _cjk_chars(tally.matrix(rows[pick], size))
        pick, code = pick[ok], code[ok]
        name = _cn_names(t, code)
        tally.add(_R_NAME, int(name.sum()))
        tally.add(_NONE, len(pick) - int(name.sum()))
        settled[pick] = True
    for size in (9, 10, 11, 12):  # plates: province, letter, ["·"], 5 or 6 letters and digits
        pick = np.flatnonzero(length == size)
        if not len(pick):
            continue
        m = tally.matrix(rows[pick], size)
        code, ok = _cjk_chars(m[:, :3])
        ok &= t.plate_province[code[:, 0]]
        if size >= 11:
            ok &= (m[:, 4] == 0xC2) & (m[:, 5] == 0xB7)
            p = m[:, [3, *range(6, size)]]
        else:
            p = m[:, 3:]
        plate = ok & t.plate_letter[p[:, 0]] & _plate_tail(t, p[:, 1:])
        tally.add_flags(_R["license_plate"], rows[pick], plate)
        settled[pick[plate]] = True
    return settled


def _plate_tail(t: _Tables, tail: Any) -> Any:
    """``_plate`` after the province and the letter: 5 (ordinary) or 6 (new-energy) ASCII."""
    digit = (tail >= 48) & (tail <= 57)
    if tail.shape[1] == 5:
        letters = (~digit).sum(axis=1)
        return t.plate_char[tail].all(axis=1) & (letters <= 3)
    small = t.plate_nev[tail[:, 0]] & t.plate_char[tail[:, 1]] & digit[:, 2:].all(axis=1)
    large = digit[:, :5].all(axis=1) & t.plate_nev[tail[:, 5]]
    return small | large


def _cn_names(t: _Tables, code: Any) -> Any:
    """``_cn_name`` for rows of 2-4 code points (minus U+4E00)."""
    np = t.np
    size = code.shape[1]
    words = t.common_words.get(size)
    common = np.isin(_packed(code), words) if words is not None else False
    compound = np.zeros(len(code), dtype=bool)
    if size >= 3:
        compound = np.isin(code[:, 0] * 0x8000 + code[:, 1], t.compound_surnames)
    single = ~compound & t.single_surname[code[:, 0]]
    clean_2 = ~t.non_name[code[:, 2:]].any(axis=1)  # given name after a compound surname
    clean_1 = ~t.non_name[code[:, 1:]].any(axis=1)
    given_1 = t.given_name[code[:, 1:]].all(axis=1)
    likely = t.top_surname[code[:, 0]] if size == 3 else False
    return ~common & ((compound & clean_2) | (single & clean_1 & (likely | given_1)))


def _packed(code: Any) -> Any:
    """Rows of code points (minus U+4E00, < 2**15) packed into one integer each."""
    value = code[:, 0].astype("int64")
    for i in range(1, code.shape[1]):
        value = value * 0x8000 + code[:, i]
    return value


def scan_column(
    name: str, values: Iterable[str | None], *, threshold: float = DEFAULT_THRESHOLD
) -> ColumnFinding:
    """Scan every cell of one column and report what it holds."""
    scanner = ColumnScanner(name, threshold=threshold)
    scanner.update(values)
    return scanner.finding()


def scan_batches(
    names: Sequence[str], batches: Iterable[Any], *, threshold: float = DEFAULT_THRESHOLD
) -> list[ColumnFinding]:
    """Scan every cell of a table given as pyarrow record batches (``Table.batches()``).

    Columns are taken by position; each is classified as a whole array (see ``_arrow_tally``),
    with the findings ``scan_table`` gives for the same cells.
    """
    scanners = [ColumnScanner(name, threshold=threshold) for name in names]
    for batch in batches:
        for scanner, column in zip(scanners, batch.columns, strict=True):
            scanner.update(column)
    return [scanner.finding() for scanner in scanners]


def scan_table(
    names: Sequence[str],
    rows: Iterable[Sequence[str | None]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    chunk_rows: int = 4096,
) -> list[ColumnFinding]:
    """Scan every cell of a table given row by row (e.g. a ``csv.reader`` after its header).

    Short rows count as empty cells; cells beyond ``names`` are ignored. Each chunk of a column
    is made a pyarrow array (one C call) and scanned as ``scan_batches`` would.
    """
    import pyarrow as pa

    scanners = [ColumnScanner(name, threshold=threshold) for name in names]
    width = len(scanners)
    iterator = iter(rows)
    while chunk := list(islice(iterator, chunk_rows)):
        columns = list(islice(zip_longest(*chunk, fillvalue=""), width))
        # zip_longest stops at the longest row: columns no row reaches are empty in this chunk.
        columns += [("",) * len(chunk)] * (width - len(columns))
        for scanner, column in zip(scanners, columns, strict=True):
            try:
                array = pa.array(column, type=pa.string())
            except (pa.ArrowException, UnicodeError):  # not text, or not encodable as UTF-8
                scanner.update(column)
            else:
                scanner.update(array)
    return [scanner.finding() for scanner in scanners]
