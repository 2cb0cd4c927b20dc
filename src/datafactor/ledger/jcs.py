"""RFC 8785 JSON Canonicalization Scheme (JCS): the one byte string every ledger entry hashes to.

This module owns ``canonical_json``, which turns a JSON-compatible Python value into the unique
UTF-8 byte string RFC 8785 defines for it: no insignificant whitespace, object members sorted by the
UTF-16 code units of their names, strings escaped with the minimal RFC 8785 escape set, and numbers
written the way ECMAScript's ``Number.prototype.toString`` writes IEEE-754 doubles. Two parties
that hold the same data therefore compute the same bytes, and so the same Merkle leaf hash, without
agreeing on a JSON library. Values JSON cannot carry faithfully are refused rather than guessed at:
NaN and the infinities (no JSON form), integers that are not exactly representable as doubles
(RFC 8785 would silently round them, so the hashed bytes would no longer say what the caller
stored), strings with lone surrogates (no UTF-8 form) and non-string object keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# RFC 8785 (via I-JSON) knows one number type, the IEEE-754 double. Every integer up to 2**53 in
# magnitude is one, and ECMAScript prints it as plain decimal digits; beyond that only some
# integers are, and any other would reach a verifier in another language as a different number.
MAX_SAFE_INTEGER = 2**53

# RFC 8785 §3.2.2.2: these five controls use their short escapes; every other code point below
# U+0020 uses \u00xx with lowercase hex; '"' and '\' are escaped; everything else is literal.
_SHORT_ESCAPES = {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}
_ESCAPE_TABLE: dict[int, str] = {cp: f"\\u{cp:04x}" for cp in range(0x20)}
_ESCAPE_TABLE.update(_SHORT_ESCAPES)


def canonical_json(obj: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of ``obj``.

    Accepts ``None``, ``bool``, ``int``, ``float``, ``str``, lists/tuples and mappings with string
    keys, nested arbitrarily. Raises ``ValueError`` for values JSON cannot represent exactly
    (NaN, ±Infinity, integers that are not exact doubles, lone surrogates) and ``TypeError`` for
    other types.
    """
    parts: list[str] = []
    _write(obj, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        # Only lone surrogates can get here: every other str encodes.
        raise ValueError("JSON strings must not contain lone surrogates") from exc


def _write(obj: object, out: list[str]) -> None:
    # bool before int: bool is an int subclass, and True must not become 1.
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(_serialize_string(obj))
    elif isinstance(obj, int):
        out.append(_serialize_int(obj))
    elif isinstance(obj, float):
        out.append(serialize_number(obj))
    elif isinstance(obj, list | tuple):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(obj, Mapping):
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
        out.append("{")
        # Sorting the UTF-16BE encoding byte-wise is the same as sorting by UTF-16 code units,
        # which is what RFC 8785 §3.2.3 requires (it differs from code point order above BMP).
        for i, key in enumerate(sorted(obj, key=_utf16_sort_key)):
            if i:
                out.append(",")
            out.append(_serialize_string(key))
            out.append(":")
            _write(obj[key], out)
        out.append("}")
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def _utf16_sort_key(key: str) -> bytes:
    try:
        return key.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise ValueError("JSON object keys must not contain lone surrogates") from exc


def _serialize_string(value: str) -> str:
    return '"' + value.translate(_ESCAPE_TABLE) + '"'


def _serialize_int(value: int) -> str:
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        # int.__repr__, not str(): a subclass (an IntEnum, say) may print itself differently.
        return int.__repr__(value)
    try:
        as_double = float(value)
    except OverflowError:
        as_double = math.nan
    # int == float compares exactly in Python, so this holds only when no rounding happened.
    if as_double == value:
        return serialize_number(as_double)
    raise ValueError(
        f"integer {value} is not exactly representable as an IEEE-754 double, "
        "so it has no faithful JSON form (RFC 8785)"
    )


def serialize_number(value: float) -> str:
    """Serialize a finite double exactly as ECMAScript ``Number.prototype.toString`` does.

    This is RFC 8785 §3.2.2.3. ``repr`` already yields the shortest digit string that round-trips
    (correctly rounded, as ECMAScript requires); only the layout rules differ, so the digits and
    the decimal exponent are extracted from it and laid out per ECMA-262 Number::toString.
    """
    if not math.isfinite(value):
        raise ValueError(f"{value!r} has no JSON representation (RFC 8785 §3.2.2.3)")
    if value == 0:
        return "0"  # both +0 and -0
    if value < 0:
        return "-" + serialize_number(-value)
    digits, n = _shortest_digits(value)
    k = len(digits)
    # ECMA-262: value = 0.d1d2…dk × 10**n, with k as small as possible.
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exponent = n - 1
    sign = "+" if exponent >= 0 else "-"
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(exponent)}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """Return (digits, n) such that value == 0.<digits> × 10**n, digits without padding zeros."""
    text = float.__repr__(value)
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = int_part + frac_part
    stripped = all_digits.lstrip("0")
    leading_zeros = len(all_digits) - len(stripped)
    n = len(int_part) + exponent - leading_zeros
    return stripped.rstrip("0"), n
