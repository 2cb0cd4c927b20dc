"""The buyer fingerprint (买方指纹) of a delivered table: embed a per-delivery mark, find it again.

Every table delivered by download carries the mark of its delivery — a random 64-bit id stored
with the delivery (``ExchangeDelivery.mark``) — in two ways:

* **visibly**, for the honest case: a comment line at the top of a CSV file, key-value metadata
  in a Parquet file (``declared_mark`` reads it back). Anyone can strip it.
* **robustly**, as canary rows (诱饵行): a few synthetic rows inserted among the real ones at
  positions drawn from the mark. Everything about them is derived by HMAC from the mark under
  the exchange's secret key, so a buyer who reads the mark in its own file can neither find nor
  predict them. A canary copies a real row — its categories, dates and their combinations are
  real — and replaces each number, code and name cell by a nearby value that occurs nowhere in
  the table delivered (a *novel* cell). Values are never altered in the real rows.

A leaked file is matched cell by cell, by value — not by column name, position or row order —
so the canaries are found after the metadata is stripped, the rows are shuffled or sampled, and
columns are dropped, renamed or reordered; numbers are compared in a normal form, so a copy
re-saved by a spreadsheet (``102.30`` → ``102.3``) still matches. What a delivery stores
(``Fingerprint.record``) is, per canary cell, a keyed 64-bit digest of the value and an estimate
of its information in bits — never the values themselves.

``score`` turns the match into a p-value: an upper bound on the chance that a file *not* made
from the delivery matches its canaries as well as this one does (a union bound over the file's
rows, its cells and the canary's cells; only rows holding a novel cell count, so the real rows
every buyer receives never count). ``verdict`` names a delivery only when that bound times the
number of deliveries examined is below the rules' threshold and at least the rules' minimum of
canaries were found — so with several buyers of one listing the innocent ones are not named, and
a copy too small or too altered is answered "inconclusive", not guessed.

Limits (docs/exchange.md): aggregates, re-sampling into new values, rounding every number, or
dropping every column that carries novel cells remove the evidence; a table without numbers,
codes or names of enough spread gets no canaries (only the visible mark); canaries are synthetic
rows, so counts and sums over a downloaded file differ slightly from the source.

Pure: no database, no web; pyarrow batches in and out.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
import random
import re
import secrets
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

RECORD_FORMAT: Final = 1
MARK_HEX: Final = 16  # 64 bits
DIGEST_HEX: Final = 16  # 64-bit keyed digests of cell values
MAX_BITS: Final = 48.0  # no single cell is credited with more information than this
PARQUET_KEY: Final = b"datafactor.mark"
_KEY_LABEL: Final = b"datafactor/exchange/fingerprint/v1"
_MARK_RE: Final = re.compile(r"\bmark=([0-9a-f]{16})\b")
_NUMBER_RE: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INT_TEXT: Final = re.compile(r"-?(?:0|[1-9]\d{0,14})")
_DEC_TEXT: Final = re.compile(r"-?(?:0|[1-9]\d{0,14})\.(\d{1,8})")
_MAX_FLOAT_DECIMALS: Final = 6
# Dates and times written as text are copied, never altered: a changed date is easy to spot.
_DATE_LIKE: Final = re.compile(r"\d{4}[-/.年]\d{1,2}(?:[-/.月]\d{1,2}日?)?(?:[ T].*)?|.*\d:\d.*")


# ------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class FingerprintRules:
    """The scheme's parameters (rules file ``delivery.fingerprint``).

    ``rate_bp`` canaries per 10,000 real rows, at least ``minimum`` and at most ``maximum``, and
    never more than ``max_share_bp`` of the real rows; ``candidates`` novel values tried per
    cell; ``sample_rows`` real rows kept as templates; ``track_values`` distinct values counted
    per column for the information estimate; a delivery is named when its p-value times the
    deliveries examined is at most ``alpha`` and ``min_canaries`` canaries were found."""

    rate_bp: int = 50
    minimum: int = 16
    maximum: int = 256
    max_share_bp: int = 1000
    candidates: int = 8
    sample_rows: int = 2048
    track_values: int = 20000
    alpha: float = 1e-6
    min_canaries: int = 2

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> FingerprintRules:
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        rules = cls(**values)
        ints = (rules.rate_bp, rules.minimum, rules.maximum, rules.max_share_bp)
        if any(not isinstance(v, int) or v < 0 for v in ints) or rules.minimum > rules.maximum:
            raise ValueError("fingerprint: rate_bp, minimum ≤ maximum, max_share_bp: whole ≥ 0")
        if rules.candidates < 1 or rules.sample_rows < 1 or rules.track_values < 1:
            raise ValueError("fingerprint: candidates, sample_rows, track_values must be ≥ 1")
        if not 0 < float(rules.alpha) < 1 or rules.min_canaries < 1:
            raise ValueError("fingerprint: 0 < alpha < 1 and min_canaries ≥ 1")
        return rules


def canary_count(rows: int, rules: FingerprintRules) -> int:
    """How many canaries a table of ``rows`` real rows gets."""
    wanted = max(rules.minimum, math.ceil(rows * rules.rate_bp / 10_000))
    return max(0, min(wanted, rules.maximum, rows * rules.max_share_bp // 10_000))


# ------------------------------------------------------------------------------- marks, keys


def new_mark() -> str:
    """A fresh random 64-bit mark, as 16 lower-case hex digits."""
    return secrets.token_hex(MARK_HEX // 2)


def derive_key(secret: str | bytes) -> bytes:
    """The fingerprint key, derived from the platform's secret key (never stored)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()


def _seed(key: bytes, *parts: str) -> int:
    message = "\x1f".join(parts).encode()
    return int.from_bytes(hmac.new(key, message, hashlib.sha256).digest()[:16], "big")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)
    normal = value.normalize()
    if normal.is_zero():
        return "0"
    return format(normal, "f")


def normalise(value: Any) -> str:
    """The canonical text of a cell: what is digested and compared. Numbers in any notation
    (``1.50``, ``1.5``, ``1.5e0``, a float, a Decimal) become one text; text is NFC with outer
    blanks removed; nothing is ``""``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return _decimal_text(Decimal(repr(value)))
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, str):
        text = unicodedata.normalize("NFC", value).strip()
        if text and _NUMBER_RE.fullmatch(text):
            try:
                return _decimal_text(Decimal(text))
            except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
                return text
        return text
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def digest(key: bytes, value: Any) -> str:
    """The keyed 64-bit digest of a cell's canonical text."""
    text = normalise(value).encode("utf-8")
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:DIGEST_HEX]


# ----------------------------------------------------------------------------------- profile


class Kind(StrEnum):
    NUMBER = "number"  # numbers, or text that is only numbers: perturbed within the range
    CODE = "code"  # identifiers that are mostly digits: a few digits changed
    NAME = "name"  # distinct free text (names, addresses): two real values spliced
    CATEGORY = "category"  # repeated text: copied from the template row
    OTHER = "other"  # dates, times, booleans, binary: copied from the template row


MARKING: Final = frozenset({Kind.NUMBER, Kind.CODE, Kind.NAME})


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


# The same patterns in RE2 syntax, for Arrow's kernels.
_PLAIN_NUMBER_RE2: Final = "^-?(0|[1-9][0-9]{0,14})(\\.[0-9]{1,8})?$"
_ANY_NUMBER_RE2: Final = "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?$"


def count_key(value: Any) -> str:
    """How a value is counted in a column: text as written (trimmed, NFC), anything else in
    its normal form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    return normalise(value)


def _code_like(text: str) -> bool:
    if not 6 <= len(text) <= 40 or any(ch.isspace() for ch in text) or _DATE_LIKE.fullmatch(text):
        return False
    return _digits(text) >= 6 and 2 * _digits(text) >= len(text)


def _decimals(value: Any) -> int:
    if isinstance(value, str):
        found = _DEC_TEXT.fullmatch(value.strip())
        return len(found.group(1)) if found else 0
    if isinstance(value, float):
        text = normalise(value)
        return min(len(text.partition(".")[2]), _MAX_FLOAT_DECIMALS)
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else 0
    return 0


@dataclass
class ColumnStats:
    """What pass one learns of a column: its kind, range, spread and value frequencies."""

    name: str
    type: pa.DataType
    non_null: int = 0
    nulls: int = 0
    numeric: bool = True  # text columns: every value so far is a plain number
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    decimals: int = 0
    # Of the template rows' values (the keyed sample): how many look like codes, how many are
    # words (a letter or a CJK character; not a date, a time or a code).
    sampled: int = 0
    code_like: int = 0
    wordy: int = 0
    length: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    overflow: bool = False
    uncounted: bool = False

    @property
    def textual(self) -> bool:
        return bool(pa.types.is_string(self.type) or pa.types.is_large_string(self.type))

    @property
    def typed_number(self) -> bool:
        t = self.type
        return (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        ) and not pa.types.is_boolean(t)

    @property
    def kind(self) -> Kind:
        if self.non_null == 0:
            return Kind.OTHER
        if self.typed_number or (self.textual and self.numeric):
            spread = self.minimum is not None and self.maximum is not None
            return Kind.NUMBER if spread and self.maximum != self.minimum else Kind.CATEGORY
        if not self.textual:
            return Kind.OTHER
        sampled = max(self.sampled, 1)
        if 10 * self.code_like >= 9 * sampled:
            return Kind.CODE
        distinct = len(self.counts)
        wordy = 10 * self.wordy >= 9 * sampled
        spread = self.overflow or 2 * distinct >= self.non_null
        if wordy and spread and self.length >= 4 * self.non_null:
            return Kind.NAME
        return Kind.CATEGORY

    def add(self, array: pa.Array | pa.ChunkedArray, track: int) -> None:
        """One batch's column, in Arrow's compute kernels (a Python loop only over the
        distinct values that are counted)."""
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if self.textual:
            self._add_text(array, track)
            return
        valid = array.drop_null()
        if pa.types.is_floating(self.type):
            valid = valid.filter(pc.is_finite(valid))
        self.nulls += len(array) - len(valid)
        self.non_null += len(valid)
        if len(valid) == 0:
            return
        if self.typed_number:
            low, high = pc.min_max(valid).values()
            for bound in (low.as_py(), high.as_py()):
                number = Decimal(normalise(bound))
                if self.minimum is None or number < self.minimum:
                    self.minimum = number
                if self.maximum is None or number > self.maximum:
                    self.maximum = number
            return
        self._count(pc.value_counts(valid), track, typed=True)

    def _add_text(self, array: pa.Array, track: int) -> None:
        if pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        trimmed = pc.utf8_normalize(pc.utf8_trim_whitespace(array), form="NFC")
        present = pc.fill_null(pc.not_equal(trimmed, ""), False)
        values = trimmed.filter(present)
        self.nulls += len(array) - len(values)
        self.non_null += len(values)
        if len(values) == 0:
            return
        self.length += int(pc.sum(pc.utf8_length(values)).as_py() or 0)
        was_numeric = self.numeric
        if self.numeric:
            plain = pc.match_substring_regex(values, pattern=_PLAIN_NUMBER_RE2)
            if not pc.all(plain).as_py():
                self.numeric = False
            else:
                floats = pc.cast(values, pa.float64())
                low, high = pc.min_max(floats).values()
                for bound in (low, high):
                    text = values[pc.index(floats, bound).as_py()].as_py()
                    number = Decimal(text)
                    self.decimals = max(self.decimals, _decimals(text))
                    if self.minimum is None or number < self.minimum:
                        self.minimum = number
                    if self.maximum is None or number > self.maximum:
                        self.maximum = number
        if self.numeric:
            # Numbers are not counted (a copied number is credited with no evidence): it
            # would cost a Python step per distinct value, and most numbers are distinct.
            return
        if was_numeric and self.non_null > len(values):
            self.uncounted = True  # earlier batches went uncounted: no frequency is trusted
        self._count(pc.value_counts(values), track, typed=False)

    def _count(self, counted: pa.StructArray, track: int, *, typed: bool) -> None:
        keys = counted.field(0).to_pylist()
        numbers = counted.field(1).to_pylist()
        for key, n in zip(keys, numbers, strict=True):
            text = normalise(key) if typed else key
            if text in self.counts:
                self.counts[text] += n
            elif len(self.counts) < track:
                self.counts[text] = n
            else:
                self.overflow = True

    def frequency(self, value: Any) -> float:
        """The share of this column's rows holding ``value`` (an estimate when not counted)."""
        text = count_key(value)
        rows = self.non_null + self.nulls
        if rows == 0 or self.uncounted:
            return 1.0
        if text == "":
            return self.nulls / rows
        found = self.counts.get(text)
        if found is not None:
            return found / rows
        return 1.0 / max(len(self.counts), 1)


@dataclass(frozen=True)
class Profile:
    """Pass one over a table: its row count, each column's statistics, and a keyed sample of
    whole real rows (the canaries' templates)."""

    rows: int
    columns: tuple[ColumnStats, ...]
    sample: tuple[tuple[Any, ...], ...]


class Profiler:
    """Pass one: feed every batch of the table (as delivered: fields already chosen)."""

    def __init__(self, schema: pa.Schema, *, key: bytes, mark: str, rules: FingerprintRules):
        self._columns = [ColumnStats(f.name, f.type) for f in schema]
        self._rng = random.Random(_seed(key, mark, "sample"))
        self._rules = rules
        self._sample: list[tuple[Any, ...]] = []
        self._rows = 0
        self._next = 0  # the next row the reservoir takes
        self._w = 0.0

    def _unit(self) -> float:
        return self._rng.random() or 1e-300  # (0, 1): log() must not see 0

    def add(self, batch: pa.RecordBatch) -> None:
        for i, stats in enumerate(self._columns):
            stats.add(batch.column(i), self._rules.track_values)
        taken: dict[int, int] = {}  # slot → offset in this batch (the last one wins)
        end = self._rows + batch.num_rows
        while self._next < end:  # reservoir sampling, Li's Algorithm L (keyed): skip ahead
            size = self._rules.sample_rows
            slot = self._next if self._next < size else self._rng.randrange(size)
            taken[slot] = self._next - self._rows
            if self._next + 1 < size:
                self._next += 1
                continue
            if self._next + 1 == size:
                self._w = math.exp(math.log(self._unit()) / size)
            else:
                self._w *= math.exp(math.log(self._unit()) / size)
            self._next += 1 + math.floor(math.log(self._unit()) / math.log1p(-self._w))
        if taken:
            picked = batch.take(pa.array(list(taken.values()), pa.int64()))
            columns = [picked.column(i).to_pylist() for i in range(picked.num_columns)]
            for n, slot in enumerate(taken):
                row = tuple(values[n] for values in columns)
                if slot >= len(self._sample):
                    self._sample.append(row)
                else:
                    self._sample[slot] = row
        self._rows += batch.num_rows

    def result(self) -> Profile:
        for i, stats in enumerate(self._columns):
            if not stats.textual:
                continue
            stats.sampled = stats.code_like = stats.wordy = 0
            for row in self._sample:
                raw = row[i].strip() if isinstance(row[i], str) else ""
                if not raw:
                    continue
                stats.sampled += 1
                if _code_like(raw):
                    stats.code_like += 1
                elif any(ch.isalpha() for ch in raw) and not _DATE_LIKE.fullmatch(raw):
                    stats.wordy += 1
        return Profile(self._rows, tuple(self._columns), tuple(self._sample))


# ------------------------------------------------------------------------------ the canaries


@dataclass(frozen=True)
class Cell:
    """One canary cell as stored: its keyed digest, its information in bits, whether novel."""

    digest: str
    bits: float
    novel: bool


@dataclass(frozen=True)
class Canary:
    """A canary row: where it goes (before real row ``position``), its values, its cells."""

    position: int
    values: tuple[Any, ...]
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Fingerprint:
    """A delivery's fingerprint: the mark, the real row count, the canaries."""

    mark: str
    rows: int
    canaries: tuple[Canary, ...]

    def record(self) -> dict[str, Any]:
        """What the delivery stores: digests and bits of each canary cell, no values."""
        return {
            "v": RECORD_FORMAT,
            "rows": self.rows,
            "canaries": [
                [[c.digest, c.bits, 1 if c.novel else 0] for c in canary.cells]
                for canary in self.canaries
            ],
        }


def _format_number(number: Decimal, decimals: int, like: Any, dtype: pa.DataType) -> Any:
    quantum = Decimal(1).scaleb(-decimals)
    number = number.quantize(quantum)
    if pa.types.is_integer(dtype):
        return int(number)
    if pa.types.is_floating(dtype):
        return float(number)
    if pa.types.is_decimal(dtype):
        return number.quantize(Decimal(1).scaleb(-dtype.scale))
    text = format(number, "f")
    if isinstance(like, str) and like.strip().startswith("+"):
        text = "+" + text
    return text


def _number_candidate(
    stats: ColumnStats, base: Any, rng: random.Random
) -> tuple[Any, float] | None:
    assert stats.minimum is not None
    assert stats.maximum is not None
    decimals = _decimals(base) if base is not None else stats.decimals
    unit = Decimal(1).scaleb(-decimals)
    span = stats.maximum - stats.minimum
    steps = int(span / unit)
    if steps < 2:
        return None
    centre = Decimal(normalise(base)) if base is not None else stats.minimum
    # Within a few per cent of the range around a real value: plausible, not an outlier.
    reach = max(3, steps // 40)
    offset = rng.randint(1, reach) * rng.choice((-1, 1))
    value = min(max(centre + unit * offset, stats.minimum), stats.maximum)
    bits = min(MAX_BITS, math.log2(steps + 1))
    return _format_number(value, decimals, base, stats.type), bits


def _code_candidate(base: str, rng: random.Random) -> tuple[str, float] | None:
    positions = [i for i, ch in enumerate(base) if ch.isdigit()]
    # Leading digits often say region or kind: they stay.
    keep = 4 if len(positions) > 10 else 2 if len(positions) > 6 else 1
    choices = positions[keep:]
    if len(choices) < 3:
        return None
    changed = rng.sample(choices, 3)
    chars = list(base)
    for i in changed:
        chars[i] = rng.choice([d for d in "0123456789" if d != chars[i]])
    bits = min(MAX_BITS, 3 * math.log2(9) + math.log2(math.comb(len(choices), 3)))
    return "".join(chars), bits


def _name_candidate(
    stats: ColumnStats, base: str, other: str, rng: random.Random
) -> tuple[str, float] | None:
    if len(base) < 4 or len(other) < 4 or base == other:
        return None
    cut_a = rng.randint(len(base) // 3, max(len(base) // 3, 2 * len(base) // 3))
    cut_b = rng.randint(len(other) // 3, max(len(other) // 3, 2 * len(other) // 3))
    spliced = base[:cut_a] + other[cut_b:]
    if spliced in (base, other) or not spliced.strip():
        return None
    distinct = max(len(stats.counts), 2)
    return spliced, min(MAX_BITS, 2 * math.log2(distinct))


@dataclass
class _Draft:
    position: int
    template: tuple[Any, ...]
    # per marking column: candidate values (typed for output) with their bits, in order
    candidates: dict[int, list[tuple[Any, float]]]


@dataclass(frozen=True)
class Plan:
    """The canaries drawn for a table before the novelty check (pass two)."""

    profile: Profile
    drafts: tuple[_Draft, ...]

    def wanted(self) -> frozenset[str]:
        """The canonical texts of every candidate value (looked for in the real data)."""
        return frozenset(
            normalise(value)
            for draft in self.drafts
            for options in draft.candidates.values()
            for value, _ in options
        )


def plan(profile: Profile, *, key: bytes, mark: str, rules: FingerprintRules) -> Plan:
    """Draw the canaries of the table ``profile`` describes, from ``mark`` under ``key``."""
    marking = [i for i, c in enumerate(profile.columns) if c.kind in MARKING]
    count = canary_count(profile.rows, rules) if marking and profile.sample else 0
    drafts: list[_Draft] = []
    present = {i: [row[i] for row in profile.sample if row[i] is not None] for i in marking}
    for n in range(count):
        rng = random.Random(_seed(key, mark, "canary", str(n)))
        template = rng.choice(profile.sample)
        candidates: dict[int, list[tuple[Any, float]]] = {}
        for i in marking:
            stats = profile.columns[i]
            values = present[i]
            base = template[i] if template[i] is not None else None
            if base is None and values:
                base = rng.choice(values)
            options: list[tuple[Any, float]] = []
            taken = {normalise(base)}
            for _ in range(rules.candidates * 3):
                if len(options) >= rules.candidates:
                    break
                found: tuple[Any, float] | None = None
                if stats.kind is Kind.NUMBER:
                    found = _number_candidate(stats, base, rng)
                elif isinstance(base, str) and stats.kind is Kind.CODE:
                    found = _code_candidate(base.strip(), rng)
                elif isinstance(base, str) and values:
                    found = _name_candidate(stats, base.strip(), str(rng.choice(values)), rng)
                if found is None:
                    continue
                text = normalise(found[0])
                if text not in taken:
                    taken.add(text)
                    options.append(found)
            if options:
                candidates[i] = options
        drafts.append(_Draft(rng.randint(0, profile.rows), template, candidates))
    return Plan(profile, tuple(drafts))


def _as_floats(texts: Iterable[str]) -> pa.Array:
    found = []
    for text in texts:
        if _NUMBER_RE.fullmatch(text):
            value = float(text)
            if math.isfinite(value):
                found.append(value)
    return pa.array(sorted(set(found)), pa.float64())


def _hits(
    column: pa.Array | pa.ChunkedArray, wanted: frozenset[str], numbers: pa.Array
) -> list[Any]:
    """Values of ``column`` that may normalise to one of ``wanted`` (a superset: the caller
    checks each exactly), found with Arrow's kernels."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_normalize(pc.utf8_trim_whitespace(column.cast(pa.string())), form="NFC")
        found = text.filter(pc.fill_null(pc.is_in(text, pa.array(sorted(wanted))), False))
        numeric = text.filter(
            pc.fill_null(pc.match_substring_regex(text, pattern=_ANY_NUMBER_RE2), False)
        )
        out: list[Any] = list(pc.unique(found).to_pylist())
        if len(numeric) and len(numbers):
            try:
                floats = pc.cast(numeric, pa.float64())
                near = numeric.filter(pc.fill_null(pc.is_in(floats, numbers), False))
            except pa.ArrowInvalid:  # a form the cast refuses: look at each
                near = numeric
            out += pc.unique(near).to_pylist()
        return out
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if not len(numbers):
            return []
        floats = pc.cast(column, pa.float64()) if not pa.types.is_floating(kind) else column
        near = column.filter(pc.fill_null(pc.is_in(floats, numbers), False))
        return list(pc.unique(near).to_pylist())
    if pa.types.is_date(kind):
        text = pc.cast(column, pa.string())
        return list(
            column.filter(pc.fill_null(pc.is_in(text, pa.array(sorted(wanted))), False)).to_pylist()
        )
    return list(column.to_pylist())


class NoveltyCheck:
    """Pass two: which candidate values occur anywhere in the real data (in any column — a
    leaked file is matched by value, whatever the column)."""

    def __init__(self, planned: Plan):
        self._plan = planned
        self._wanted = planned.wanted()
        self._numbers = _as_floats(self._wanted)
        self._seen: set[str] = set()

    def add(self, batch: pa.RecordBatch) -> None:
        if not self._wanted:
            return
        for i in range(batch.num_columns):
            for value in _hits(batch.column(i), self._wanted, self._numbers):
                text = normalise(value)
                if text in self._wanted:  # the kernels' candidates, checked exactly
                    self._seen.add(text)

    def finish(self, *, key: bytes, mark: str) -> Fingerprint:
        profile = self._plan.profile
        canaries: list[Canary] = []
        for draft in self._plan.drafts:
            values = list(draft.template)
            novel = [False] * len(values)
            bits = [0.0] * len(values)
            for i, options in draft.candidates.items():
                for value, info in options:
                    if normalise(value) not in self._seen:
                        values[i], novel[i], bits[i] = value, True, info
                        break
            if not any(novel):
                continue  # nothing in it would tell this copy apart: leave the data alone
            cells = []
            for i, value in enumerate(values):
                column = profile.columns[i]
                if novel[i]:
                    pass
                elif column.kind is Kind.NUMBER or column.typed_number:
                    bits[i] = 0.0  # a real number copied: counted as no evidence at all
                else:
                    share = column.frequency(value)
                    bits[i] = min(MAX_BITS, -math.log2(share)) if share > 0 else 0.0
                cells.append(Cell(digest(key, value), math.floor(bits[i] * 100) / 100, novel[i]))
            canaries.append(Canary(draft.position, tuple(values), tuple(cells)))
        canaries.sort(key=lambda c: c.position)
        return Fingerprint(mark, profile.rows, tuple(canaries))


def fingerprint(
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch] | Any,
    *,
    key: bytes,
    mark: str,
    rules: FingerprintRules,
) -> Fingerprint:
    """Both passes over an in-memory table (``batches`` iterated twice: a list, or a callable
    returning a fresh iterator). The delivery streams the same passes from the data plane."""
    fresh = batches if callable(batches) else (lambda: iter(batches))
    profiler = Profiler(schema, key=key, mark=mark, rules=rules)
    for batch in fresh():
        profiler.add(batch)
    check = NoveltyCheck(plan(profiler.result(), key=key, mark=mark, rules=rules))
    for batch in fresh():
        check.add(batch)
    return check.finish(key=key, mark=mark)


def _canary_batch(schema: pa.Schema, canary: Canary) -> pa.RecordBatch:
    arrays = [pa.array([v], type=f.type) for v, f in zip(canary.values, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def embed(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], marked: Fingerprint
) -> Iterator[pa.RecordBatch]:
    """Pass three: the real batches with the canaries inserted at their positions."""
    pending = list(marked.canaries)
    at = 0
    start = 0
    for batch in batches:
        end = start + batch.num_rows
        cut = start
        while at < len(pending) and pending[at].position < end:
            position = max(pending[at].position, cut)
            if position > cut:
                yield batch.slice(cut - start, position - cut)
                cut = position
            yield _canary_batch(schema, pending[at])
            at += 1
        if cut < end:
            yield batch.slice(cut - start, end - cut)
        start = end
    for canary in pending[at:]:
        yield _canary_batch(schema, canary)


# ------------------------------------------------------------------------------- visible mark


def header_line(mark: str, *, contract: str, buyer: str, at: str) -> str:
    """The CSV comment line naming the licence (the honest case; ``declared_mark`` reads it)."""
    clean = " ".join(buyer.replace(",", " ").split())
    return (
        f"# DataFactor 数据交付 delivery mark={mark} contract={contract} buyer={clean} at={at}"
        " — 本文件含买方指纹，转售或泄露可追溯 / this copy carries a buyer fingerprint"
    )


def parquet_metadata(mark: str, *, contract: str, buyer: str, at: str) -> dict[bytes, bytes]:
    return {
        PARQUET_KEY: mark.encode(),
        b"datafactor.contract": contract.encode(),
        b"datafactor.buyer": buyer.encode(),
        b"datafactor.delivered_at": at.encode(),
    }


# --------------------------------------------------------------------------- reading a leak


@dataclass(frozen=True)
class LeakFile:
    """A file to trace: its rows as raw values, its format, and the mark it declares (if any)."""

    format: str
    rows: list[list[Any]]
    declared_mark: str | None


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read_leak(data: bytes) -> LeakFile:
    """Parse a file someone found: Parquet, or text (CSV/TSV with any common delimiter, or JSON
    Lines). Header and comment lines are kept as rows: they match nothing, and a file whose
    header was cut off loses no data row. Raises ``ValueError`` for what cannot be read."""
    if data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"not a readable Parquet file: {exc}") from exc
        meta = table.schema.metadata or {}
        mark = meta.get(PARQUET_KEY)
        declared = mark.decode() if mark and re.fullmatch(rb"[0-9a-f]{16}", mark) else None
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
        return LeakFile("parquet", [list(table.column_names), *rows], declared)
    if data[:4] == b"PK\x03\x04":
        raise ValueError("a spreadsheet: save it as CSV (UTF-8) and trace that")
    text = _decode(data)
    lines = text.splitlines()
    declared = None
    for line in lines[:5]:
        found = _MARK_RE.search(line) if line.lstrip().startswith("#") else None
        if found:
            declared = found.group(1)
            break
    body = [line for line in lines if line.strip()]
    if body and all(line.lstrip().startswith(("{", "#")) for line in body[:20]):
        records: list[list[Any]] = []
        for line in body:
            if line.lstrip().startswith("#"):
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON Lines: {exc}") from exc
            if isinstance(item, dict):
                records.append(list(item.values()))
        return LeakFile("jsonl", records, declared)
    sample = "\n".join([line for line in body if not line.lstrip().startswith("#")][:50])
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",\t;|")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if row]
    return LeakFile("csv", rows, declared)


# --------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class LeakIndex:
    """A leaked file's cells as digest sets per row, and digest → rows holding it."""

    rows: int
    width: int
    cells: tuple[frozenset[str], ...]
    index: Mapping[str, tuple[int, ...]]


def index_leak(rows: Iterable[Sequence[Any]], key: bytes) -> LeakIndex:
    cells: list[frozenset[str]] = []
    where: dict[str, list[int]] = {}
    width = 0
    for n, row in enumerate(rows):
        found = frozenset(digest(key, v) for v in row if normalise(v) != "")
        cells.append(found)
        width = max(width, len(row))
        for d in found:
            where.setdefault(d, []).append(n)
    return LeakIndex(
        len(cells), max(width, 1), tuple(cells), {d: tuple(r) for d, r in where.items()}
    )


@dataclass(frozen=True)
class Score:
    """How well a leaked file matches one delivery's canaries: canaries found (each by some
    row holding one of its novel cells and little else), of how many, and log10 of the
    p-value bound (``-inf`` when it underflows)."""

    found: int
    total: int
    log10_p: float

    @property
    def p_value(self) -> float:
        return 10.0**self.log10_p if self.log10_p > -300 else 0.0


def _log2_comb(n: int, k: int) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def score(leak: LeakIndex, record: Mapping[str, Any]) -> Score:
    """Match ``leak`` against one delivery's stored ``record`` (``Fingerprint.record``)."""
    canaries = record.get("canaries") or []
    total = len(canaries)
    if total == 0 or leak.rows == 0:
        return Score(0, total, 0.0)
    log2_rows = math.log2(leak.rows)
    log2_width = math.log2(2 * leak.width)
    logs: list[float] = []
    for stored in canaries:
        cells: dict[str, tuple[float, bool]] = {}
        for d, bits, novel in stored:
            old = cells.get(d)
            cells[d] = (max(bits, old[0]) if old else bits, bool(novel) or bool(old and old[1]))
        rows = {r for d, (_, novel) in cells.items() if novel for r in leak.index.get(d, ())}
        best = 0.0
        for r in rows:
            have = leak.cells[r]
            matched = [cells[d] for d in have if d in cells]
            if not any(novel for _, novel in matched):
                continue
            if len(have) - len(matched) > 1 + len(have) // 4:
                continue  # the row holds a canary's value but is otherwise another row
            best = max(best, sum(bits for bits, _ in matched))
        if best > 0:
            # P(some row of an unrelated file matches ≥ this much of the canary): rows × the
            # ways to place each canary cell among the row's cells × 2^-bits.
            logs.append(min(0.0, log2_rows + len(cells) * log2_width - best))
    if not logs:
        return Score(0, total, 0.0)
    logs.sort()
    best_log = 0.0
    best_m = 0
    running = 0.0
    for m, value in enumerate(logs, start=1):
        running += value
        candidate = _log2_comb(total, m) + running
        if candidate < best_log:
            best_log, best_m = candidate, m
    log2_p = min(0.0, math.log2(total) + best_log)
    return Score(best_m if log2_p < 0 else 0, total, log2_p * math.log10(2))


@dataclass(frozen=True)
class Verdict:
    """Which deliveries a leak is attributed to: those whose p-value, times the deliveries
    examined, is at most ``alpha`` with at least ``min_canaries`` canaries found."""

    identified: tuple[str, ...]
    confidence: Mapping[str, float]


def verdict(scores: Mapping[str, Score], *, examined: int, rules: FingerprintRules) -> Verdict:
    log_alpha = math.log10(rules.alpha)
    log_examined = math.log10(max(examined, 1))
    named: list[str] = []
    confidence: dict[str, float] = {}
    for key, found in scores.items():
        family = found.log10_p + log_examined
        confidence[key] = 1.0 - (10.0**family if family > -300 else 0.0)
        if found.found >= rules.min_canaries and family <= log_alpha:
            named.append(key)
    named.sort(key=lambda k: scores[k].log10_p)
    return Verdict(tuple(named), confidence)
