"""Quality profile: how good a table is on the six GB/T 36344-2018 dimensions, as a 0–100 score.

``QualityProfiler`` is fed a table's Arrow record batches and keeps mergeable state per column —
exact counters (rows, nulls, empty and placeholder cells, lengths, pattern tallies bounded in
size), an Apache DataSketches HLL sketch for distinct values and a KLL sketch for the quantiles
of numeric and temporal columns — plus, per row, a bottom-k sample of row hashes (duplicates),
a count of complete rows and the tallies of the cross-field rules. Profiles of partitions
``merge`` without re-reading data and persist with ``to_bytes`` / ``from_bytes`` (a versioned
container of JSON and sketch bytes; never pickle). ``result`` turns the state, the discovery
findings (check-digit validity) and the metadata (declared update frequency, last update, read
warnings) into a ``QualityProfile``: sub-indicators, dimension scores, a score and a five-level
rating. Which indicators belong to which dimension, their weights and the rating bands are data
(``rules/quality.yaml``, ``load_quality_rules``); an indicator whose input is missing is "not
assessed", drops out, and the weights of the rest are renormalised — the profile lists which.

Speed is a design constraint (10 M rows × 30 columns in ≤ 60 s on two cores), so nothing runs
per cell in Python. Per batch, every cell gets a 64-bit hash — numbers, dates and booleans from
their bits in numpy, text (and anything else) from one DuckDB ``hash`` query over the Arrow batch,
in C on both cores — and every row the fold of its cells' hashes; the rest is numpy and pyarrow
compute over whole columns. ``profile_batches`` reads the next batches on a thread meanwhile.

* Distinct values: the library's ``hll_sketch.update`` is one Python call per value (~70 ns),
  too slow for 300 M cells. An HLL register only keeps the maximum over the values that hash to
  its slot, so only the value with the most leading zeros per slot can change it. The library's
  own hash of a 64-bit key (MurmurHash3_x64_128, seed 9001) is recomputed here in numpy to find,
  per batch and slot, that one value, and only values that beat what the sketch already holds
  are fed to it: the registers are exactly those of feeding every value. While a sketch is still
  in its exact small-cardinality (coupon) mode every distinct key is fed instead, since that
  mode counts keys, not slots. Because a sketch fed this way has skipped register changes, its
  in-order (HIP) estimator would be wrong; estimates always come from the composite estimator of
  an out-of-order union, the same estimator a merged profile uses, so a merged profile and the
  whole agree exactly. ``_murmur3`` is checked against the library in the tests.
* Duplicate rows: a bottom-k sample (``DUPLICATE_SAMPLE`` distinct row hashes, the smallest,
  each with its count, as in a theta sketch). It is exact while a table has fewer distinct rows
  than that; beyond, the duplicate rate is the sample's (standard error under 0.1 point at a 1 %
  rate). It is independent of how the rows were partitioned, so merging is exact too.
* Patterns: a value's pattern maps every byte through a table in one numpy pass (digits → 9,
  Latin letters → A/a, CJK → 汉), then pyarrow counts the distinct patterns. Every row is tallied
  until a profile has seen ``FULL_PATTERN_ROWS`` rows; the tallies of a larger table come from the
  rows whose hash falls in a fixed 1-in-8 share (at least 125,000 rows, so a conformance share
  is within ±0.3 point at 95 %). The sample is chosen by row hash, not position, so partitions
  sample the same rows as the whole.

Text hashes are DuckDB's; a profile records a probe of its hash function, and profiles made
with a different one refuse to merge rather than double-count. Cross-field rules parse dates and
resident IDs from the bytes of fixed-width values (``YYYY-MM-DD``, ``YYYYMMDD``, 18-character
IDs) as numpy matrices; other date spellings go through a regular expression.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import queue
import re
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml  # type: ignore[import-untyped]

from datafactor.dataplane import DuckDBEngine
from datafactor.discovery.recognizers import CHECK_DIGIT_TYPES, ColumnFinding
from datafactor.errors import N_

__all__ = [
    "DIMENSIONS",
    "DUPLICATE_SAMPLE",
    "FULL_PATTERN_ROWS",
    "INDICATORS",
    "ColumnQuality",
    "CrossFieldRule",
    "DimensionRule",
    "DimensionScore",
    "IndicatorRule",
    "IndicatorScore",
    "QualityProfile",
    "QualityProfiler",
    "QualityRules",
    "RatingBand",
    "Reason",
    "load_quality_rules",
    "profile_batches",
    "rate",
]

#: The six dimensions of GB/T 36344-2018, in the standard's order.
DIMENSIONS: Final = (
    "normativity",
    "completeness",
    "accuracy",
    "consistency",
    "timeliness",
    "accessibility",
)
#: Indicators the code knows how to measure; the rule file places them in dimensions.
INDICATORS: Final = frozenset(
    {
        "pattern_conformance",
        "filled_cells",
        "complete_records",
        "check_digit_validity",
        "distinct_rows",
        "cross_field_rules",
        "update_lag",
        "readable_format",
        "schema_present",
        "read_warnings",
    }
)
RULE_KINDS: Final = frozenset({"id_birth_date", "id_gender", "date_order"})

HLL_LG_K: Final = 12  # 4,096 registers: ±1.6 % (1σ) on distinct counts
KLL_K: Final = 200  # ±1.3 % rank error (99 %)
DUPLICATE_SAMPLE: Final = 1 << 15
FULL_PATTERN_ROWS: Final = 1 << 20
PATTERN_SAMPLE_BITS: Final = 3  # rows whose hash has its top 3 bits clear: 1 in 8
PATTERN_CAP: Final = 64  # distinct patterns kept per column; the rest are counted as "other"
PATTERN_MAX_CHARS: Final = 48
STATE_VERSION: Final = 1
_MAGIC = b"DFQP"

_RULES_DIR = Path(__file__).resolve().parent / "rules"
_K = 1 << HLL_LG_K
_MAXU64 = np.uint64(0xFFFFFFFFFFFFFFFF)
# An HLL_8 sketch's updatable form is 40 header bytes + one byte per register once it has left
# the coupon (list/set) modes; smaller forms are coupon modes.
_HLL_MODE_BYTES = 40 + _K


# --- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndicatorRule:
    """One sub-indicator as the rule file places it: its dimension and weight."""

    id: str
    dimension: str
    label_zh: str
    label_en: str
    weight: float
    measure: str
    verified: bool


@dataclass(frozen=True, slots=True)
class DimensionRule:
    """One GB/T 36344 dimension: weight, source, and the indicators that measure it."""

    id: str
    label_zh: str
    label_en: str
    weight: float
    source: str
    article: str
    verified: bool
    indicators: tuple[IndicatorRule, ...]


@dataclass(frozen=True, slots=True)
class RatingBand:
    """A rating level and the lowest score that earns it."""

    level: int
    min_score: float
    label_zh: str
    label_en: str


@dataclass(frozen=True, slots=True)
class CrossFieldRule:
    """A rule across columns of one row; ``kind`` names how the code checks it."""

    id: str
    kind: str
    label_zh: str
    label_en: str
    source: str
    verified: bool
    roles: Mapping[str, tuple[re.Pattern[str], ...]]
    values: Mapping[str, frozenset[str]]


def _patterns(items: Iterable[object]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(str(p), re.IGNORECASE) for p in items)


@dataclass(frozen=True)
class QualityRules:
    """The contents of a quality rule file (``rules/quality.yaml``), checked."""

    version: str
    dimensions: tuple[DimensionRule, ...]
    bands: tuple[RatingBand, ...]
    placeholders: frozenset[str]
    min_share: float
    min_coverage: float
    formats: Mapping[str, str]
    frequencies: Mapping[str, float]
    grace_periods: float
    zero_at_periods: float
    max_warning_rate: float
    positional_names: tuple[re.Pattern[str], ...]
    cross_field_rules: tuple[CrossFieldRule, ...]
    data: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> QualityRules:
        """Rules from parsed YAML; raises ``ValueError`` saying what is wrong."""
        data = json.loads(json.dumps(data))  # a private, JSON-able copy (it is persisted)
        dims = data.get("dimensions") or {}
        unknown = set(dims) - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"quality rules: unknown dimensions {sorted(unknown)}")
        dimensions = []
        seen: set[str] = set()
        for dim_id in DIMENSIONS:
            if dim_id not in dims:
                continue
            entry = dims[dim_id]
            indicators = []
            for ind_id, ind in (entry.get("indicators") or {}).items():
                if ind_id not in INDICATORS:
                    raise ValueError(
                        f"quality rules: indicator {ind_id!r} is not one the code measures"
                    )
                if ind_id in seen:
                    raise ValueError(f"quality rules: indicator {ind_id!r} is in two dimensions")
                seen.add(ind_id)
                indicators.append(
                    IndicatorRule(
                        id=ind_id,
                        dimension=dim_id,
                        label_zh=str(ind.get("label_zh", ind_id)),
                        label_en=str(ind.get("label_en", ind_id)),
                        weight=_weight(ind.get("weight", 1.0), ind_id),
                        measure=str(ind.get("measure", "")),
                        verified=bool(ind.get("verified", False)),
                    )
                )
            dimensions.append(
                DimensionRule(
                    id=dim_id,
                    label_zh=str(entry.get("label_zh", dim_id)),
                    label_en=str(entry.get("label_en", dim_id)),
                    weight=_weight(entry.get("weight", 1.0), dim_id),
                    source=str(entry.get("source", "")),
                    article=str(entry.get("article", "")),
                    verified=bool(entry.get("verified", False)),
                    indicators=tuple(indicators),
                )
            )
        bands = tuple(
            sorted(
                (
                    RatingBand(
                        level=int(b["level"]),
                        min_score=float(b["min_score"]),
                        label_zh=str(b["label_zh"]),
                        label_en=str(b["label_en"]),
                    )
                    for b in data["rating"]["bands"]
                ),
                key=lambda b: -b.min_score,
            )
        )
        if not bands or bands[-1].min_score > 0:
            raise ValueError("quality rules: the lowest rating band must start at score 0")
        if sorted(b.level for b in bands) != list(range(1, len(bands) + 1)):
            raise ValueError("quality rules: rating levels must be 1..n")
        if [b.level for b in bands] != sorted((b.level for b in bands), reverse=True):
            raise ValueError("quality rules: a higher rating level needs a higher score")
        rules = []
        for entry in data.get("cross_field_rules") or []:
            kind = str(entry["kind"])
            if kind not in RULE_KINDS:
                raise ValueError(f"quality rules: unknown cross-field rule kind {kind!r}")
            rules.append(
                CrossFieldRule(
                    id=str(entry["id"]),
                    kind=kind,
                    label_zh=str(entry.get("label_zh", entry["id"])),
                    label_en=str(entry.get("label_en", entry["id"])),
                    source=str(entry.get("source", "")),
                    verified=bool(entry.get("verified", False)),
                    roles=MappingProxyType(
                        {role: _patterns(p) for role, p in entry["roles"].items()}
                    ),
                    values=MappingProxyType(
                        {
                            k: frozenset(str(v).strip().lower() for v in vs)
                            for k, vs in (entry.get("values") or {}).items()
                        }
                    ),
                )
            )
        normativity = data.get("normativity") or {}
        timeliness = data.get("timeliness") or {}
        access = data.get("accessibility") or {}
        return cls(
            version=str(data["version"]),
            dimensions=tuple(dimensions),
            bands=bands,
            placeholders=frozenset(
                str(p).strip().lower()
                for p in (data.get("completeness") or {}).get("placeholders", ())
            ),
            min_share=float(normativity.get("min_share", 0.05)),
            min_coverage=float(normativity.get("min_coverage", 0.5)),
            formats=MappingProxyType(
                {str(k): str(v) for k, v in (normativity.get("formats") or {}).items()}
            ),
            frequencies=MappingProxyType(
                {str(k).lower(): float(v) for k, v in (timeliness.get("frequencies") or {}).items()}
            ),
            grace_periods=float(timeliness.get("grace_periods", 1.0)),
            zero_at_periods=float(timeliness.get("zero_at_periods", 3.0)),
            max_warning_rate=float(access.get("max_warning_rate", 0.01)),
            positional_names=_patterns(access.get("positional_names", ())),
            cross_field_rules=tuple(rules),
            data=MappingProxyType(data),
        )

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identifies the rules a state was built with (profiles merge only under equal rules)."""
        text = json.dumps(dict(self.data), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def indicator(self, indicator_id: str) -> IndicatorRule | None:
        for dim in self.dimensions:
            for ind in dim.indicators:
                if ind.id == indicator_id:
                    return ind
        return None


def _weight(value: object, name: str) -> float:
    weight = float(value)  # type: ignore[arg-type]
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"quality rules: weight of {name!r} must be a number ≥ 0")
    return weight


@functools.cache
def _default_rules() -> QualityRules:
    return load_quality_rules(_RULES_DIR / "quality.yaml")


def load_quality_rules(path: str | Path | None = None) -> QualityRules:
    """The rules of ``path`` (default: the packaged ``rules/quality.yaml``)."""
    if path is None:
        return _default_rules()
    return QualityRules.from_mapping(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def rate(score: float, rules: QualityRules | None = None) -> RatingBand:
    """The rating band of a 0–100 score (rounded to two decimals first, as it is shown)."""
    rules = rules or _default_rules()
    rounded = round(score, 2)
    for band in rules.bands:
        if rounded >= band.min_score:
            return band
    return rules.bands[-1]


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an indicator was not assessed: a translatable template (``N_``) and its parameters."""

    code: str
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message.format(**self.params)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class IndicatorScore:
    """A sub-indicator: its value (a share, 0–1) and score (0–100), or the reason it is missing."""

    id: str
    label_zh: str
    label_en: str
    weight: float
    value: float | None
    reason: Reason | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def assessed(self) -> bool:
        return self.value is not None

    @property
    def score(self) -> float | None:
        return None if self.value is None else round(100.0 * self.value, 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "weight": self.weight,
            "assessed": self.assessed,
            "value": None if self.value is None else round(self.value, 6),
            "score": self.score,
            "reason": self.reason.as_dict() if self.reason else None,
            "details": _jsonable(self.details),
        }


@dataclass(frozen=True, slots=True)
class DimensionScore:
    """A dimension: the weighted mean of its assessed indicators (None if none was)."""

    id: str
    label_zh: str
    label_en: str
    weight: float
    score: float | None
    indicators: tuple[IndicatorScore, ...]

    @property
    def assessed(self) -> bool:
        return self.score is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "weight": self.weight,
            "assessed": self.assessed,
            "score": self.score,
            "indicators": [i.as_dict() for i in self.indicators],
        }


@dataclass(frozen=True, slots=True)
class ColumnQuality:
    """Per-column figures behind the indicators."""

    name: str
    type: str
    rows: int
    nulls: int
    blanks: int
    placeholders: int
    distinct: float | None
    distinct_bounds: tuple[float, float] | None
    lengths: Mapping[str, float] | None
    quantiles: Mapping[str, float | str | bool] | None
    patterns: tuple[tuple[str, float], ...]
    pattern_level: str | None
    conformance: float | None
    sampled: bool
    types: tuple[str, ...] = ()
    check_digit_validity: float | None = None

    @property
    def missing(self) -> int:
        return self.nulls + self.blanks + self.placeholders

    @property
    def filled_rate(self) -> float | None:
        return None if not self.rows else 1.0 - self.missing / self.rows

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["filled_rate"] = self.filled_rate
        out["patterns"] = [{"pattern": p, "share": round(s, 6)} for p, s in self.patterns]
        return _jsonable(out)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class QualityProfile:
    """The quality of one table: score, rating, dimensions, columns; ``as_dict`` for JSON."""

    score: float
    rating: int
    rating_label: str
    rating_label_en: str
    rows: int
    coverage: float
    rules_version: str
    dimensions: tuple[DimensionScore, ...]
    columns: tuple[ColumnQuality, ...]
    assessed_at: dt.datetime

    @property
    def label(self) -> str:
        return self.rating_label

    @property
    def indicators(self) -> dict[str, IndicatorScore]:
        return {i.id: i for d in self.dimensions for i in d.indicators}

    @property
    def not_assessed(self) -> tuple[str, ...]:
        """Indicators left out (their weight renormalised over the rest)."""
        return tuple(i.id for d in self.dimensions for i in d.indicators if not i.assessed)

    def dimension(self, dimension_id: str) -> DimensionScore:
        for d in self.dimensions:
            if d.id == dimension_id:
                return d
        raise KeyError(dimension_id)

    def as_dict(self) -> dict[str, Any]:
        """The ``quality`` entry of ``datafactor scan --json``."""
        return {
            "score": self.score,
            "rating": self.rating,
            "rating_label": self.rating_label,
            "rating_label_en": self.rating_label_en,
            "rows": self.rows,
            "coverage": round(self.coverage, 4),
            "not_assessed": list(self.not_assessed),
            "rules_version": self.rules_version,
            "assessed_at": self.assessed_at.isoformat(),
            "dimensions": [d.as_dict() for d in self.dimensions],
            "columns": [c.as_dict() for c in self.columns],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _jsonable(float(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# --- hashing -------------------------------------------------------------------------------------

_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_SEED_LEN = np.uint64(9001 ^ 8)  # DataSketches' default seed, xor the key length (8 bytes)


def _fmix(k: np.ndarray) -> np.ndarray:
    k ^= k >> _S33
    k *= _F1
    k ^= k >> _S33
    k *= _F2
    k ^= k >> _S33
    return k


def _murmur3(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MurmurHash3_x64_128 of 8-byte keys with seed 9001: what ``hll_sketch.update(int)`` uses.

    An 8-byte key is all tail: k1 = key·c1, rotated left 31, ·c2, xored into h1 = seed; h2 stays
    the seed; then the finalisation (xor length, add, fmix64 both, add).
    """
    with np.errstate(over="ignore"):
        k1 = keys * _C1
        k1 = (k1 << np.uint64(31)) | (k1 >> np.uint64(33))
        k1 *= _C2
        h1 = k1 ^ np.uint64(9001)
        h1 ^= np.uint64(8)
        h1 += _SEED_LEN
        h2 = h1 + _SEED_LEN
        h1 = _fmix(h1)
        h2 = _fmix(h2)
        h1 += h2
        h2 += h1
    return h1, h2


def _probe_hash(engine: DuckDBEngine) -> str:
    probe = engine.query(
        "SELECT hash('datafactor') AS a, hash(42::BIGINT) AS b, hash(1.5::DOUBLE) AS c"
    )
    return "duckdb:" + ":".join(f"{probe.column(i)[0].as_py():x}" for i in range(probe.num_columns))


# --- per-column state ----------------------------------------------------------------------------

_WS_FIRST = np.zeros(256, dtype=bool)
for _b in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xC2, 0xE2, 0xE3):  # incl. NBSP, U+2000s, U+3000
    _WS_FIRST[_b] = True

# Byte -> pattern byte. Multi-byte UTF-8 characters keep their byte count in the pattern (so
# offsets stay valid) with marker bytes that no printable character uses: 0x01 leads a CJK
# character (lead bytes E3–E9: U+3000–U+9FFF), 0x02 any other, 0x05 continues one.
_LUT = np.arange(256, dtype=np.uint8)
_LUT[:0x20] = 0x20
_LUT[0x7F] = 0x20
_LUT[ord("0") : ord("9") + 1] = ord("9")
_LUT[ord("A") : ord("Z") + 1] = ord("A")
_LUT[ord("a") : ord("z") + 1] = ord("a")
_LUT[0x80:0xC0] = 0x05
_LUT[0xC0:0x100] = 0x02
_LUT[0xE3:0xEA] = 0x01
# A number written as text (up to 15 integer digits: longer digit strings are codes, not amounts).
_NUMBER_PATTERN = re.compile(r"^-?9{1,15}(\.9{1,15})?$")
_NUMERIC_TEXT_SHARE = 0.95
_SHOW = str.maketrans({0x01: "汉", 0x02: "Ｕ", 0x05: None})
_RUN = re.compile(r"(.)\1+")


def _show_pattern(raw: str) -> str:
    shown = raw.translate(_SHOW)
    return shown if len(shown) <= PATTERN_MAX_CHARS else shown[:PATTERN_MAX_CHARS] + "…"


def _coarse(pattern: str) -> str:
    """A pattern with runs collapsed: ``9999-99-99`` → ``9+-9+-9+``."""
    return _RUN.sub(r"\1+", pattern)


def _kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_temporal(t) and not pa.types.is_duration(t) and not pa.types.is_interval(t):
        return "temporal"
    if pa.types.is_boolean(t):
        return "boolean"
    return "other"


def _text(arr: pa.Array) -> pa.StringArray:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _flags(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


_ROW_SEED = np.uint64(0x243F6A8885A308D3)
_ROW_PRIME = np.uint64(0x9E3779B97F4A7C15)
_NULL_KEY = np.uint64(0x5851F42D4C957F2D)


def _bits_hashable(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_time(t)
    )


def _bits(arr: pa.Array) -> np.ndarray:
    """The values' bits as uint64 (a fresh array); nulls as 0, -0.0 as 0.0, one NaN."""
    t = arr.type
    if arr.null_count:
        arr = arr.fill_null(False if pa.types.is_boolean(t) else 0)
    if pa.types.is_floating(t):
        values = np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False)) + 0.0
        values[np.isnan(values)] = np.nan
        return values.view(np.uint64).copy()
    if pa.types.is_boolean(t):
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.uint64)
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        arr = arr.cast(pa.int32())
    elif not pa.types.is_integer(t):
        arr = arr.cast(pa.int64())
    return np.asarray(arr.to_numpy(zero_copy_only=False)).astype(np.int64).view(np.uint64)


def _valid(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))


def _offsets(arr: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """The array's offsets (one more than its length) and its data bytes, as numpy."""
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.empty(0, np.uint8)
    )
    return offsets, data


class _Tally:
    """Pattern counts of one text column (bounded), declared-format checks, and the quantiles of
    its values that are numbers written as text (CSV columns are all text)."""

    __slots__ = ("counts", "declared_ok", "declared_total", "kll", "other", "total")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.other = 0
        self.total = 0
        self.declared_ok = 0
        self.declared_total = 0
        self.kll = ds.kll_doubles_sketch(KLL_K)

    def numeric_share(self) -> float:
        numeric = sum(n for p, n in self.counts.items() if _NUMBER_PATTERN.fullmatch(p))
        return numeric / self.total if self.total else 0.0

    def add(self, patterns: Mapping[str, int], other: int) -> None:
        counts = self.counts
        for p, n in patterns.items():
            counts[p] = counts.get(p, 0) + n
        self.other += other
        self.total += sum(patterns.values()) + other
        if len(counts) > PATTERN_CAP:
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            self.counts = dict(ranked[:PATTERN_CAP])
            self.other += sum(n for _, n in ranked[PATTERN_CAP:])

    def merge(self, other: _Tally) -> None:
        self.add(other.counts, other.other)
        self.total += other.total - sum(other.counts.values()) - other.other
        self.declared_ok += other.declared_ok
        self.declared_total += other.declared_total
        self.kll.merge(other.kll)

    def state(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "other": self.other,
            "total": self.total,
            "declared": [self.declared_ok, self.declared_total],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Tally:
        tally = cls()
        tally.counts = {str(k): int(v) for k, v in state["counts"].items()}
        tally.other = int(state["other"])
        tally.total = int(state["total"])
        tally.declared_ok, tally.declared_total = (int(x) for x in state["declared"])
        return tally


class _Column:
    """Everything kept about one column."""

    def __init__(self, name: str, type_: pa.DataType, declared: str | None) -> None:
        self.name = name
        self.type = type_
        self.kind = _kind(type_)
        self.declared = declared
        self.declared_re = re.compile(declared) if declared else None
        self.nulls = 0
        self.blanks = 0
        self.placeholders = 0
        self.len_min: int | None = None
        self.len_max: int | None = None
        self.len_sum = 0
        self.len_count = 0
        self.hll = ds.hll_sketch(HLL_LG_K, ds.HLL_8)
        self.hll_mode = False
        self.bound: np.ndarray | None = None  # per slot: a hash at or above it cannot improve it
        self.kll = ds.kll_doubles_sketch(KLL_K) if self.kind in ("numeric", "temporal") else None
        self.full: _Tally | None = _Tally() if self.kind == "text" else None
        self.sample = _Tally() if self.kind == "text" else None

    # distinct values --------------------------------------------------------------------------

    def feed_keys(self, keys: np.ndarray) -> None:
        """Bring the HLL sketch to the registers of feeding every key (see the module docstring)."""
        if not keys.size:
            return
        update = self.hll.update
        if not self.hll_mode:
            distinct = pc.unique(pa.array(keys)).to_numpy()
            for key in distinct.view(np.int64).tolist():
                update(key)
            self.hll_mode = self.hll.get_updatable_serialization_bytes() >= _HLL_MODE_BYTES
            return
        h1, h2 = _murmur3(keys)
        slots = (h1 & np.uint64(_K - 1)).astype(np.intp)
        best = np.full(_K, _MAXU64)
        np.minimum.at(best, slots, h2)
        bound = self.bound if self.bound is not None else np.full(_K, _MAXU64)
        better = best < bound
        if not better.any():
            return
        chosen = better[slots] & (h2 == best[slots])
        for key in keys[chosen].view(np.int64).tolist():
            update(key)
        self.bound = np.minimum(bound, best)

    def distinct(self) -> tuple[float, float, float] | None:
        if self.hll.is_empty():
            return None
        # An out-of-order union (a sketch with itself) answers with the composite estimator.
        union = ds.hll_union(HLL_LG_K)
        union.update(self.hll)
        union.update(self.hll)
        return union.get_estimate(), union.get_lower_bound(2), union.get_upper_bound(2)

    # merging and persistence ------------------------------------------------------------------

    def merge(self, other: _Column) -> None:
        self.nulls += other.nulls
        self.blanks += other.blanks
        self.placeholders += other.placeholders
        self.len_sum += other.len_sum
        self.len_count += other.len_count
        self.len_min = _opt(min, self.len_min, other.len_min)
        self.len_max = _opt(max, self.len_max, other.len_max)
        union = ds.hll_union(HLL_LG_K)
        union.update(self.hll)
        union.update(other.hll)
        self.hll = union.get_result(ds.HLL_8)
        self.hll_mode = self.hll.get_updatable_serialization_bytes() >= _HLL_MODE_BYTES
        bounds = [b for b in (self.bound, other.bound) if b is not None]
        self.bound = np.minimum.reduce(bounds) if bounds else None
        if self.kll is not None and other.kll is not None:
            self.kll.merge(other.kll)
        if self.full is not None:
            self.full = None if other.full is None else self.full
            if self.full is not None and other.full is not None:
                self.full.merge(other.full)
        if self.sample is not None and other.sample is not None:
            self.sample.merge(other.sample)

    def state(self, blobs: list[bytes]) -> dict[str, Any]:
        blobs.append(self.hll.serialize_compact())
        if self.kll is not None:
            blobs.append(self.kll.serialize())
        blobs += [t.kll.serialize() for t in (self.full, self.sample) if t is not None]
        return {
            "counts": [self.nulls, self.blanks, self.placeholders],
            "lengths": [self.len_min, self.len_max, self.len_sum, self.len_count],
            "full": self.full.state() if self.full is not None else None,
            "sample": self.sample.state() if self.sample is not None else None,
        }

    def load(self, state: Mapping[str, Any], blobs: list[bytes]) -> None:
        self.nulls, self.blanks, self.placeholders = (int(x) for x in state["counts"])
        self.len_min, self.len_max, self.len_sum, self.len_count = state["lengths"]
        self.hll = ds.hll_sketch.deserialize(blobs.pop(0))
        self.hll_mode = self.hll.get_updatable_serialization_bytes() >= _HLL_MODE_BYTES
        if self.kll is not None:
            self.kll = ds.kll_doubles_sketch.deserialize(blobs.pop(0))
        if self.kind == "text":
            self.full = _Tally.from_state(state["full"]) if state["full"] is not None else None
            self.sample = _Tally.from_state(state["sample"])
            for tally in (self.full, self.sample):
                if tally is not None:
                    tally.kll = ds.kll_doubles_sketch.deserialize(blobs.pop(0))


def _opt(fn: Any, a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return int(fn(a, b))


class _RowSample:
    """Bottom-k sample of row hashes with their counts: duplicate rows, mergeable exactly."""

    def __init__(self, cap: int = DUPLICATE_SAMPLE) -> None:
        self.cap = cap
        self.theta = _MAXU64  # every distinct row hash below it is kept, with all its rows
        self.hashes = np.empty(0, dtype=np.uint64)
        self.counts = np.empty(0, dtype=np.int64)

    def update(self, row_hashes: np.ndarray) -> None:
        kept = row_hashes[row_hashes < self.theta] if self.theta != _MAXU64 else row_hashes
        if kept.size:
            hashes, counts = np.unique(kept, return_counts=True)
            self._absorb(hashes, counts.astype(np.int64))

    def _absorb(self, hashes: np.ndarray, counts: np.ndarray) -> None:
        both = np.concatenate([self.hashes, hashes])
        unique, inverse = np.unique(both, return_inverse=True)
        summed = np.zeros(unique.size, dtype=np.int64)
        np.add.at(summed, inverse, np.concatenate([self.counts, counts]))
        if unique.size > self.cap:
            self.theta = unique[self.cap]
            unique, summed = unique[: self.cap], summed[: self.cap]
        self.hashes, self.counts = unique, summed

    def merge(self, other: _RowSample) -> None:
        theta = min(self.theta, other.theta)
        keep = self.hashes < theta if theta != _MAXU64 else slice(None)
        self.hashes, self.counts = self.hashes[keep], self.counts[keep]
        self.theta = theta
        other_keep = other.hashes < theta if theta != _MAXU64 else slice(None)
        self._absorb(other.hashes[other_keep], other.counts[other_keep])

    @property
    def exact(self) -> bool:
        return bool(self.theta == _MAXU64)

    def duplicate_rate(self) -> tuple[float, int, int]:
        """(duplicate share, rows in the sample, distinct rows in the sample)."""
        rows = int(self.counts.sum())
        distinct = int(self.hashes.size)
        return ((rows - distinct) / rows if rows else 0.0), rows, distinct


# --- cross-field rules ---------------------------------------------------------------------------

_ID18 = r"^\d{17}[\dXx]$"
_DATE_SEPARATORS = r"[-/.年月日]"
_DATE8 = r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$"
_POW10 = 10 ** np.arange(7, -1, -1, dtype=np.int64)


def _fixed(arr: pa.StringArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose value is ``width`` bytes long, and their bytes as an (rows, width) matrix."""
    offsets, data = _offsets(arr)
    lengths = np.diff(offsets)
    rows = np.flatnonzero(lengths == width)
    if not rows.size:
        return rows, np.empty((0, width), dtype=np.uint8)
    if rows.size == np.count_nonzero(lengths):  # every other value is empty: bytes are contiguous
        block = data[int(offsets[0]) : int(offsets[-1])]
        return rows, block.reshape(-1, width)
    return rows, data[offsets[rows][:, None] + np.arange(width)]


def _digits_value(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ASCII digits as an integer (up to 8 digits), and whether it was all digits."""
    values = matrix.astype(np.int64) - 48
    ok = np.asarray(((values >= 0) & (values <= 9)).all(axis=1))
    return np.asarray(values @ _POW10[-matrix.shape[1] :]), ok


def _valid_ymd(key: np.ndarray) -> np.ndarray:
    month, day = key // 100 % 100, key % 100
    return (key >= 19000101) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)


def _date_keys(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each value as a YYYYMMDD integer, and where that worked (dates, timestamps, date text)."""
    n = len(arr)
    keys = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    kind = _kind(arr.type)
    if kind == "temporal" and not pa.types.is_time(arr.type):
        days = arr if pa.types.is_date32(arr.type) else pc.cast(arr, pa.date32())
        valid = _valid(days)
        stamp = np.asarray(days.fill_null(0).to_numpy(zero_copy_only=False)).astype("datetime64[D]")
        year = stamp.astype("datetime64[Y]").astype(np.int64) + 1970
        month = stamp.astype("datetime64[M]").astype(np.int64) % 12 + 1
        day = (stamp - stamp.astype("datetime64[M]")).astype(np.int64) + 1
        return year * 10000 + month * 100 + day, valid
    if kind != "text":
        return keys, known
    text = _text(arr)
    for width, digit_cols in ((10, [0, 1, 2, 3, 5, 6, 8, 9]), (8, list(range(8)))):
        rows, matrix = _fixed(text, width)
        if not rows.size:
            continue
        value, ok = _digits_value(matrix[:, digit_cols])
        if width == 10:  # YYYY-MM-DD with any one separator
            ok &= (matrix[:, 4] == matrix[:, 7]) & ((matrix[:, 4] < 48) | (matrix[:, 4] > 57))
        ok &= _valid_ymd(value)
        keys[rows[ok]] = value[ok]
        known[rows[ok]] = True
    offsets, _ = _offsets(text)
    lengths = np.diff(offsets)
    rest = np.flatnonzero(_valid(text) & ~known & (lengths > 0))
    if rest.size:  # other spellings (1990/1/5 is refused: its digits are ambiguous)
        some = text.take(pa.array(rest))
        cleaned = pc.utf8_slice_codeunits(
            pc.replace_substring_regex(pc.utf8_trim_whitespace(some), _DATE_SEPARATORS, ""), 0, 8
        )
        good = np.asarray(
            pc.fill_null(pc.match_substring_regex(cleaned, _DATE8), False).to_numpy(
                zero_copy_only=False
            )
        )
        if good.any():
            parsed = pc.cast(cleaned.filter(pa.array(good)), pa.int64()).to_numpy()
            keys[rest[good]] = parsed
            known[rest[good]] = True
    return keys, known


def _resident_ids(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Rows holding an 18-character resident-ID shape, and their bytes (rows, 18)."""
    rows, matrix = _fixed(_text(arr), 18)
    if not rows.size:
        return rows, matrix
    body_ok = ((matrix[:, :17] >= 48) & (matrix[:, :17] <= 57)).all(axis=1)
    last = matrix[:, 17]
    ok = body_ok & (((last >= 48) & (last <= 57)) | (last == 88) | (last == 120))
    return rows[ok], matrix[ok]


_RID_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_RID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def _looks_like_ids(arr: pa.Array) -> bool:
    """Most of the first non-null values are resident IDs with a valid GB 11643 check digit
    (18-digit order numbers have the shape but not the check digit)."""
    if _kind(arr.type) != "text":
        return False
    head = _text(arr[:256]).drop_null()[:64]
    if not len(head):
        return False
    _, matrix = _resident_ids(head)
    if not len(matrix):
        return False
    total = (matrix[:, :17].astype(np.int64) - 48) @ _RID_WEIGHTS
    last = np.where(matrix[:, 17] == ord("x"), ord("X"), matrix[:, 17])
    valid = int((_RID_CHECK[total % 11] == last).sum())
    return valid >= 0.8 * len(head)


def _looks_like_dates(arr: pa.Array) -> bool:
    kind = _kind(arr.type)
    if kind == "temporal":
        return not pa.types.is_time(arr.type)
    if kind != "text":
        return False
    head = arr[:256].drop_null()[:64]
    return bool(len(head)) and int(_date_keys(head)[1].sum()) >= 0.5 * len(head)


def _days(arr: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Days since 1970 of a date or timestamp column (None for other columns)."""
    if _kind(arr.type) != "temporal" or pa.types.is_time(arr.type):
        return None
    days = arr if pa.types.is_date32(arr.type) else pc.cast(arr, pa.date32())
    values = np.asarray(days.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False))
    return values, _valid(days)


class _BatchCache:
    """Per-batch parses shared by the rules that use the same column."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch
        self._ids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._dates: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def ids(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._ids:
            self._ids[i] = _resident_ids(self.batch.column(i))
        return self._ids[i]

    def dates(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._dates:
            self._dates[i] = _date_keys(self.batch.column(i))
        return self._dates[i]


def _check_rule(rule: CrossFieldRule, cols: Sequence[int], cache: _BatchCache) -> tuple[int, int]:
    """(rows checked, rows failing) of one rule on one batch of its columns."""
    batch = cache.batch
    if rule.kind == "date_order":
        a, b = _days(batch.column(cols[0])), _days(batch.column(cols[1]))
        if a is not None and b is not None:  # both dates: compare days, no parsing
            (start, start_ok), (end, end_ok) = a, b
        else:
            (start, start_ok), (end, end_ok) = cache.dates(cols[0]), cache.dates(cols[1])
        checked = start_ok & end_ok
        return int(checked.sum()), int((checked & (start > end)).sum())
    rows, matrix = cache.ids(cols[0])
    if not rows.size:
        return 0, 0
    if rule.kind == "id_birth_date":
        birth, birth_ok = cache.dates(cols[1])
        in_id, _ = _digits_value(matrix[:, 6:14])
        checked = birth_ok[rows]
        return int(checked.sum()), int((checked & (in_id != birth[rows])).sum())
    said = pc.utf8_lower(pc.utf8_trim_whitespace(_text(batch.column(cols[1])).take(pa.array(rows))))
    is_male = _flags(pc.is_in(said, pa.array(sorted(rule.values.get("male", ())), pa.string())))
    is_female = _flags(pc.is_in(said, pa.array(sorted(rule.values.get("female", ())), pa.string())))
    checked = is_male | is_female
    id_male = (matrix[:, 16] - 48) % 2 == 1
    return int(checked.sum()), int((checked & (id_male != is_male)).sum())


# --- the profiler --------------------------------------------------------------------------------


class QualityProfiler:
    """Accumulates a table's quality state from Arrow batches; see the module docstring."""

    def __init__(
        self,
        schema: pa.Schema,
        *,
        rules: QualityRules | None = None,
        declared_frequency: str | None = None,
        last_updated: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        self.schema = schema
        self.rules = rules or _default_rules()
        self.declared_frequency = declared_frequency
        self.last_updated = _aware(last_updated)
        self.now = _aware(now)
        self.rows = 0
        self.complete_rows = 0
        self.duplicates = _RowSample()
        self.cross: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        self._engine: DuckDBEngine | None = None
        self._hash_scheme: str | None = None
        self.columns = [_Column(f.name, f.type, self._declared_format(f)) for f in schema]
        # Placeholder tokens as they are usually written: lower, upper, title case.
        variants = {
            v for p in self.rules.placeholders for v in (p, p.upper(), p.title(), p.capitalize())
        }
        self._placeholder_values = pa.array(sorted(variants), pa.string())
        self._placeholder_bytes = max((len(v.encode()) for v in variants), default=0)

    def _declared_format(self, f: pa.Field) -> str | None:
        if f.metadata and b"format" in f.metadata:
            return str(f.metadata[b"format"].decode("utf-8"))
        return self.rules.formats.get(f.name)

    # hashing ----------------------------------------------------------------------------------

    @property
    def engine(self) -> DuckDBEngine:
        if self._engine is None:
            self._engine = DuckDBEngine(memory_limit="512MB")
            scheme = _probe_hash(self._engine)
            if self._hash_scheme is not None and scheme != self._hash_scheme:
                raise ValueError(
                    "this profile was built with another hash function; it cannot be extended"
                )
            self._hash_scheme = scheme
        return self._engine

    @property
    def hash_scheme(self) -> str:
        _ = self.engine
        assert self._hash_scheme is not None
        return self._hash_scheme

    def _hashes(self, batch: pa.RecordBatch) -> tuple[list[np.ndarray], np.ndarray]:
        """A 64-bit hash per cell of every column, and one per row.

        Numbers, dates, times and booleans are hashed here from their bits; text and anything
        else by DuckDB, all such columns in one query over the Arrow batch (DuckDB keeps the rows
        in order: ``preserve_insertion_order`` is on by default and the engine is locked).
        """
        n = batch.num_rows
        cells: list[np.ndarray | None] = [None] * batch.num_columns
        elsewhere = []
        for i, arr in enumerate(batch.columns):
            if _bits_hashable(arr.type):
                cells[i] = _fmix(_bits(arr))
            else:
                elsewhere.append(i)
        if elsewhere:
            engine = self.engine
            view = pa.RecordBatch.from_arrays(
                [batch.column(i) for i in elsewhere], names=[f"c{i}" for i in elsewhere]
            )
            engine.register("__quality_batch", view)
            try:
                select = ", ".join(f"hash(c{i}) AS h{i}" for i in elsewhere)
                out = engine.query(f"SELECT {select} FROM __quality_batch")  # noqa: S608
            finally:
                engine.unregister("__quality_batch")
            for j, i in enumerate(elsewhere):
                cells[i] = out.column(j).to_numpy()
        keys = [c for c in cells if c is not None]
        row = np.full(n, _ROW_SEED)
        with np.errstate(over="ignore"):
            for arr, key in zip(batch.columns, keys, strict=True):
                if arr.null_count:
                    key = np.where(_valid(arr), key, _NULL_KEY)
                row *= _ROW_PRIME
                row ^= key
        return keys, _fmix(row)

    # feeding ----------------------------------------------------------------------------------

    def update(self, batch: pa.RecordBatch) -> None:
        """Add one batch of the table (its schema must be the profiler's)."""
        if batch.schema.names != self.schema.names:
            raise ValueError("the batch's columns are not the profiler's schema")
        n = batch.num_rows
        if not n:
            return
        full_patterns = self.rows + n <= FULL_PATTERN_ROWS
        self.rows += n
        cells, row_hashes = self._hashes(batch)
        self.duplicates.update(row_hashes)
        sampled = np.flatnonzero((row_hashes >> np.uint64(64 - PATTERN_SAMPLE_BITS)) == 0)
        complete = np.ones(n, dtype=bool)
        for column, arr, keys in zip(self.columns, batch.columns, cells, strict=True):
            valid = _valid(arr)
            column.feed_keys(keys if arr.null_count == 0 else keys[valid])
            if arr.null_count:
                column.nulls += n - int(valid.sum())
            if column.kind == "text":
                filled = self._text_column(column, _text(arr), valid, sampled, full_patterns)
            else:
                filled = valid
                if column.kll is not None and arr.null_count < n:
                    values = _numbers(arr)
                    if values.size:
                        column.kll.update(values)
            complete &= filled
        self.complete_rows += int(complete.sum())
        if not full_patterns:
            for column in self.columns:
                column.full = None
        self._cross_fields(batch)

    def _text_column(
        self,
        column: _Column,
        arr: pa.StringArray,
        valid: np.ndarray,
        sampled: np.ndarray,
        full_patterns: bool,
    ) -> np.ndarray:
        offsets, data = _offsets(arr)
        lengths = np.diff(offsets)
        filled = valid & (lengths > 0)
        empties = int(valid.sum() - filled.sum())
        # Blank: only values starting with a whitespace byte can be; trim those few.
        if data.size:
            first = data[np.minimum(offsets[:-1], data.size - 1)]
            maybe = np.flatnonzero(filled & _WS_FIRST[first])
            if maybe.size:
                trimmed = pc.utf8_length(pc.utf8_trim_whitespace(arr.take(pa.array(maybe))))
                blank = maybe[np.asarray(trimmed.to_numpy(zero_copy_only=False)) == 0]
                filled[blank] = False
                empties += blank.size
        column.blanks += empties
        # Placeholders ("null", "无", ...): only values as short as the longest can be.
        short = filled & (lengths <= self._placeholder_bytes)
        count = int(short.sum())
        if count:
            if count * 4 >= len(arr):
                hit = _flags(pc.is_in(arr, self._placeholder_values)) & short
            else:
                maybe = np.flatnonzero(short)
                hit = np.zeros(len(arr), dtype=bool)
                hit[maybe] = _flags(pc.is_in(arr.take(pa.array(maybe)), self._placeholder_values))
            found = int(hit.sum())
            if found:
                filled &= ~hit
                column.placeholders += found
        # Lengths in characters would need a pass per value; bytes are what offsets give for free.
        used = lengths[filled]
        if used.size:
            column.len_sum += int(used.sum())
            column.len_count += int(used.size)
            column.len_min = _opt(min, column.len_min, int(used.min()))
            column.len_max = _opt(max, column.len_max, int(used.max()))
        # Patterns of the filled cells: every row while the profile is small, always the sample.
        if full_patterns and column.full is not None and used.size:
            cells = arr if used.size == len(arr) else arr.take(pa.array(np.flatnonzero(filled)))
            self._tally(column, column.full, cells)
        sample_idx = sampled[filled[sampled]]
        if sample_idx.size and column.sample is not None:
            self._tally(column, column.sample, arr.take(pa.array(sample_idx)))
        return filled

    @staticmethod
    def _tally(column: _Column, tally: _Tally, cells: pa.StringArray) -> None:
        offsets, data = _offsets(cells)
        base = int(offsets[0])
        mapped = _LUT[data[base : int(offsets[-1])]]
        patterns = pa.Array.from_buffers(
            pa.string(),
            len(cells),
            [None, pa.py_buffer((offsets - base).astype(np.int32)), pa.py_buffer(mapped)],
        )
        counts = pc.value_counts(patterns)
        values = counts.field("values")
        numbers = counts.field("counts").to_numpy()
        other = 0
        if len(counts) > PATTERN_CAP:
            top = np.argsort(-numbers, kind="stable")[:PATTERN_CAP]
            other = int(numbers.sum() - numbers[top].sum())
            values, numbers = values.take(pa.array(top)), numbers[top]
        found: dict[str, int] = {}
        for raw, count in zip(values.to_pylist(), numbers.tolist(), strict=True):
            shown = _show_pattern(raw)
            found[shown] = found.get(shown, 0) + int(count)
        tally.add(found, other)
        if any(_NUMBER_PATTERN.fullmatch(p) for p in found):
            numeric = _flags(pc.match_substring_regex(patterns, _NUMBER_PATTERN.pattern))
            if numeric.any():
                values = pc.cast(cells.filter(pa.array(numeric)), pa.float64())
                tally.kll.update(
                    np.require(values.to_numpy(zero_copy_only=False), requirements="W")
                )
        if column.declared_re is not None:
            ok = pc.match_substring_regex(cells, f"^(?:{column.declared_re.pattern})$")
            tally.declared_ok += int(pc.sum(ok).as_py() or 0)
            tally.declared_total += len(cells)

    def _pairs(self, batch: pa.RecordBatch) -> list[tuple[CrossFieldRule, tuple[int, ...]]]:
        names = batch.schema.names
        pairs: list[tuple[CrossFieldRule, tuple[int, ...]]] = []
        for rule in self.rules.cross_field_rules:
            roles = list(rule.roles)
            candidates: list[list[int]] = []
            for role in roles:
                found = [
                    i
                    for i, name in enumerate(names)
                    if any(p.fullmatch(name) for p in rule.roles[role])
                ]
                if role == "id":
                    found += [
                        i
                        for i in range(len(names))
                        if i not in found and _looks_like_ids(batch.column(i))
                    ]
                    found = [i for i in found if _kind(batch.column(i).type) == "text"]
                elif role in ("birth", "start", "end"):
                    found = [i for i in found if _looks_like_dates(batch.column(i))]
                candidates.append(found)
            if len(candidates) != 2:
                continue
            combos = [(a, b) for a in candidates[0] for b in candidates[1] if a != b]
            pairs += [(rule, combo) for combo in combos[:4]]
        return pairs

    def _cross_fields(self, batch: pa.RecordBatch) -> None:
        cache = _BatchCache(batch)
        for rule, cols in self._pairs(batch):
            checked, failed = _check_rule(rule, cols, cache)
            key = (rule.id, tuple(batch.schema.names[i] for i in cols))
            tally = self.cross.setdefault(key, [0, 0])
            tally[0] += checked
            tally[1] += failed

    # merging ----------------------------------------------------------------------------------

    def merge(self, other: QualityProfiler) -> None:
        """Add another partition's profile (same schema and rules) without re-reading data."""
        if not other.schema.equals(self.schema):
            raise ValueError("profiles of different schemas cannot be merged")
        if other.rules.fingerprint != self.rules.fingerprint:
            raise ValueError("profiles built under different quality rules cannot be merged")
        if other.rows and self.rows and other.hash_scheme != self.hash_scheme:
            raise ValueError("profiles built with different hash functions cannot be merged")
        if self._hash_scheme is None:
            self._hash_scheme = other._hash_scheme
        total = self.rows + other.rows
        self.rows = total
        self.complete_rows += other.complete_rows
        self.duplicates.merge(other.duplicates)
        for key, (checked, failed) in other.cross.items():
            tally = self.cross.setdefault(key, [0, 0])
            tally[0] += checked
            tally[1] += failed
        for mine, theirs in zip(self.columns, other.columns, strict=True):
            mine.merge(theirs)
            if total > FULL_PATTERN_ROWS:
                mine.full = None
        self.declared_frequency = self.declared_frequency or other.declared_frequency
        if self.last_updated is None or (
            other.last_updated is not None and other.last_updated > self.last_updated
        ):
            self.last_updated = other.last_updated
        self.now = self.now or other.now

    # persistence ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The state, to store beside a data set version and merge or finish later."""
        blobs: list[bytes] = [self.schema.serialize().to_pybytes()]
        columns = [c.state(blobs) for c in self.columns]
        blobs += [
            self.duplicates.hashes.astype("<u8").tobytes(),
            self.duplicates.counts.astype("<i8").tobytes(),
        ]
        header = {
            "version": STATE_VERSION,
            "constants": [
                HLL_LG_K,
                KLL_K,
                DUPLICATE_SAMPLE,
                FULL_PATTERN_ROWS,
                PATTERN_SAMPLE_BITS,
                PATTERN_CAP,
            ],
            "hash_scheme": self._hash_scheme,
            "rules": dict(self.rules.data),
            "declared_frequency": self.declared_frequency,
            "last_updated": self.last_updated.isoformat() if self.last_updated else None,
            "now": self.now.isoformat() if self.now else None,
            "rows": self.rows,
            "complete_rows": self.complete_rows,
            "theta": int(self.duplicates.theta),
            "cross": [[rule, list(cols), c, f] for (rule, cols), (c, f) in self.cross.items()],
            "columns": columns,
            "blobs": [len(b) for b in blobs],
        }
        head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return b"".join([_MAGIC, struct.pack("<I", len(head)), head, *blobs])

    @classmethod
    def from_bytes(cls, data: bytes) -> QualityProfiler:
        """A profiler from ``to_bytes``; raises ``ValueError`` on anything else."""
        try:
            if data[:4] != _MAGIC:
                raise ValueError("not a quality profile state")
            (size,) = struct.unpack_from("<I", data, 4)
            header = json.loads(data[8 : 8 + size].decode("utf-8"))
            if header["version"] != STATE_VERSION:
                raise ValueError(
                    f"quality profile state version {header['version']} is not supported"
                )
            if header["constants"] != [
                HLL_LG_K,
                KLL_K,
                DUPLICATE_SAMPLE,
                FULL_PATTERN_ROWS,
                PATTERN_SAMPLE_BITS,
                PATTERN_CAP,
            ]:
                raise ValueError("quality profile state made with other sketch parameters")
            blobs: list[bytes] = []
            at = 8 + size
            for length in header["blobs"]:
                blobs.append(data[at : at + length])
                at += length
            if at != len(data):
                raise ValueError("quality profile state has trailing or missing bytes")
            schema = pa.ipc.read_schema(pa.py_buffer(blobs.pop(0)))
            profiler = cls(
                schema,
                rules=QualityRules.from_mapping(header["rules"]),
                declared_frequency=header["declared_frequency"],
                last_updated=_parse_time(header["last_updated"]),
                now=_parse_time(header["now"]),
            )
            profiler._hash_scheme = header["hash_scheme"]
            profiler.rows = int(header["rows"])
            profiler.complete_rows = int(header["complete_rows"])
            for column, state in zip(profiler.columns, header["columns"], strict=True):
                column.load(state, blobs)
            sample = profiler.duplicates
            sample.theta = np.uint64(header["theta"])
            sample.hashes = np.frombuffer(blobs.pop(0), dtype="<u8").astype(np.uint64)
            sample.counts = np.frombuffer(blobs.pop(0), dtype="<i8").astype(np.int64)
            profiler.cross = {
                (r, tuple(cols)): [int(c), int(f)] for r, cols, c, f in header["cross"]
            }
        except ValueError:
            raise
        except Exception as exc:  # a damaged state is refused, whatever part of it broke
            raise ValueError(f"not a readable quality profile state: {type(exc).__name__}") from exc
        return profiler

    # the result -------------------------------------------------------------------------------

    def result(
        self, findings: Sequence[ColumnFinding] = (), *, warnings: int = 0
    ) -> QualityProfile:
        """Score the state: indicators, dimensions, overall score and rating."""
        now = self.now or dt.datetime.now(dt.UTC)
        by_name = {f.name: f for f in findings}
        columns = [self._column_quality(c, by_name.get(c.name)) for c in self.columns]
        measured = {
            "pattern_conformance": self._pattern_conformance(columns),
            "filled_cells": self._filled_cells(columns),
            "complete_records": self._complete_records(),
            "check_digit_validity": self._check_digits(columns, bool(findings)),
            "distinct_rows": self._distinct_rows(),
            "cross_field_rules": self._cross_field_rules(by_name),
            "update_lag": self._update_lag(now),
            "readable_format": self._readable_format(),
            "schema_present": self._schema_present(),
            "read_warnings": self._read_warnings(warnings),
        }
        dimensions = []
        for dim in self.rules.dimensions:
            indicators = []
            for ind in dim.indicators:
                value, reason, details = measured[ind.id]
                indicators.append(
                    IndicatorScore(
                        id=ind.id,
                        label_zh=ind.label_zh,
                        label_en=ind.label_en,
                        weight=ind.weight,
                        value=value,
                        reason=reason,
                        details=MappingProxyType(details),
                    )
                )
            score = _weighted([(i.weight, i.score) for i in indicators])
            dimensions.append(
                DimensionScore(
                    id=dim.id,
                    label_zh=dim.label_zh,
                    label_en=dim.label_en,
                    weight=dim.weight,
                    score=None if score is None else round(score, 2),
                    indicators=tuple(indicators),
                )
            )
        overall = _weighted([(d.weight, d.score) for d in dimensions])
        total = round(overall, 2) if overall is not None else 0.0
        band = rate(total, self.rules)
        return QualityProfile(
            score=total,
            rating=band.level,
            rating_label=band.label_zh,
            rating_label_en=band.label_en,
            rows=self.rows,
            coverage=_coverage(dimensions),
            rules_version=self.rules.version,
            dimensions=tuple(dimensions),
            columns=tuple(columns),
            assessed_at=now,
        )

    def _column_quality(self, column: _Column, finding: ColumnFinding | None) -> ColumnQuality:
        distinct = column.distinct()
        quantiles: dict[str, float | str | bool] | None = None
        if column.kll is not None and not column.kll.is_empty():
            quantiles = _quantiles(column.kll, column.type)
        tally = column.full if column.full is not None else column.sample
        if (
            tally is not None
            and not tally.kll.is_empty()
            and tally.numeric_share() >= _NUMERIC_TEXT_SHARE
            and not (finding and finding.types)  # phone numbers and IDs are not quantities
        ):
            quantiles = _quantiles(tally.kll, pa.float64())
            quantiles["from_text"] = True
        patterns: tuple[tuple[str, float], ...] = ()
        level: str | None = None
        conformance: float | None = None
        if tally is not None and tally.total:
            ranked = sorted(tally.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            patterns = tuple((p, n / tally.total) for p, n in ranked[:5])
            level, conformance = self._conformance(tally)
        lengths = None
        if column.len_count:
            lengths = {
                "min": float(column.len_min or 0),
                "max": float(column.len_max or 0),
                "mean": column.len_sum / column.len_count,
            }
        types: tuple[str, ...] = finding.types if finding else ()
        validity = None
        if finding:
            checked = [t for t in finding.types if t in CHECK_DIGIT_TYPES]
            if checked:
                validity = float(finding.ratios.get(checked[0], 0.0))
        return ColumnQuality(
            name=column.name,
            type=str(column.type),
            rows=self.rows,
            nulls=column.nulls,
            blanks=column.blanks,
            placeholders=column.placeholders,
            distinct=distinct[0] if distinct else None,
            distinct_bounds=(distinct[1], distinct[2]) if distinct else None,
            lengths=lengths,
            quantiles=quantiles,
            patterns=patterns,
            pattern_level=level,
            conformance=conformance,
            sampled=column.full is None and column.kind == "text",
            types=types,
            check_digit_validity=validity,
        )

    def _conformance(self, tally: _Tally) -> tuple[str | None, float | None]:
        if tally.declared_total:
            return "declared", tally.declared_ok / tally.declared_total
        share = self.rules.min_share
        fine = sum(n for n in tally.counts.values() if n >= share * tally.total) / tally.total
        if fine >= self.rules.min_coverage:
            return "fine", fine
        coarse: dict[str, int] = {}
        for p, n in tally.counts.items():
            key = _coarse(p)
            coarse[key] = coarse.get(key, 0) + n
        covered = sum(n for n in coarse.values() if n >= share * tally.total) / tally.total
        if covered >= self.rules.min_coverage:
            return "coarse", covered
        return None, None

    # indicators: (value in 0..1 or None, reason when None, details) ---------------------------

    def _no_rows(self) -> tuple[None, Reason, dict[str, Any]]:
        return None, Reason("no-rows", N_("The table has no rows.")), {}

    def _pattern_conformance(self, columns: Sequence[ColumnQuality]) -> _Measured:
        assessed = {c.name: c.conformance for c in columns if c.conformance is not None}
        if not assessed:
            return (
                None,
                Reason(
                    "no-patterns",
                    N_("No text column has a declared format or a dominant pattern to check."),
                ),
                {},
            )
        value = sum(assessed.values()) / len(assessed)
        levels = {c.name: c.pattern_level for c in columns if c.conformance is not None}
        sampled = any(c.sampled for c in columns)
        return value, None, {"columns": assessed, "levels": levels, "sampled": sampled}

    def _filled_cells(self, columns: Sequence[ColumnQuality]) -> _Measured:
        cells = self.rows * len(columns)
        if not cells:
            return self._no_rows()
        missing = sum(c.missing for c in columns)
        return (
            1.0 - missing / cells,
            None,
            {
                "cells": cells,
                "nulls": sum(c.nulls for c in columns),
                "blanks": sum(c.blanks for c in columns),
                "placeholders": sum(c.placeholders for c in columns),
            },
        )

    def _complete_records(self) -> _Measured:
        if not self.rows or not self.columns:
            return self._no_rows()
        return self.complete_rows / self.rows, None, {"complete_rows": self.complete_rows}

    def _check_digits(self, columns: Sequence[ColumnQuality], have_findings: bool) -> _Measured:
        if not have_findings:
            return (
                None,
                Reason(
                    "no-findings",
                    N_("No discovery findings were given, so check digits were not assessed."),
                ),
                {},
            )
        weights = {
            c.name: (c.check_digit_validity, c.rows - c.missing)
            for c in columns
            if c.check_digit_validity is not None
        }
        total = sum(n for _, n in weights.values())
        if not weights or not total:
            return (
                None,
                Reason(
                    "no-check-digit-columns",
                    N_("No column holds identifiers with a check digit."),
                ),
                {},
            )
        value = sum(v * n for v, n in weights.values() if v is not None) / total
        return value, None, {"columns": {k: v for k, (v, _) in weights.items()}}

    def _distinct_rows(self) -> _Measured:
        if not self.rows:
            return self._no_rows()
        rate_, sample_rows, sample_distinct = self.duplicates.duplicate_rate()
        return (
            1.0 - rate_,
            None,
            {
                "duplicate_rate": rate_,
                "estimated_duplicate_rows": round(rate_ * self.rows),
                "exact": self.duplicates.exact,
                "sample_rows": sample_rows,
                "sample_distinct_rows": sample_distinct,
            },
        )

    def _cross_field_rules(self, findings: Mapping[str, ColumnFinding]) -> _Measured:
        kinds = {r.id: r for r in self.rules.cross_field_rules}
        results = []
        checked_all = failed_all = 0
        for (rule_id, cols), (checked, failed) in sorted(self.cross.items()):
            rule = kinds.get(rule_id)
            if rule is None or not checked:
                continue
            if (
                rule.kind in ("id_birth_date", "id_gender")
                and cols[0] in findings
                and "cn_resident_id" not in findings[cols[0]].types
            ):
                continue  # discovery says the column is not resident IDs after all
            checked_all += checked
            failed_all += failed
            results.append(
                {
                    "rule": rule_id,
                    "label_zh": rule.label_zh,
                    "label_en": rule.label_en,
                    "columns": list(cols),
                    "checked": checked,
                    "failed": failed,
                }
            )
        if not checked_all:
            return (
                None,
                Reason("no-cross-field-rule", N_("No cross-field rule applies to these columns.")),
                {},
            )
        return 1.0 - failed_all / checked_all, None, {"rules": results}

    def _update_lag(self, now: dt.datetime) -> _Measured:
        if not self.declared_frequency:
            return (
                None,
                Reason("no-frequency", N_("No update frequency was declared for this data set.")),
                {},
            )
        if self.last_updated is None:
            return (
                None,
                Reason("no-last-update", N_("The time of the last update is not known.")),
                {},
            )
        hours = _period_hours(self.declared_frequency, self.rules)
        if hours is None:
            return (
                None,
                Reason(
                    "unknown-frequency",
                    N_(
                        "The declared update frequency {frequency} is not known; use daily, "
                        "weekly, monthly, quarterly, yearly or an ISO 8601 duration such as P1D."
                    ),
                    {"frequency": self.declared_frequency},
                ),
                {},
            )
        lag_hours = max(0.0, (now - self.last_updated).total_seconds() / 3600)
        periods = lag_hours / hours
        grace, zero = self.rules.grace_periods, self.rules.zero_at_periods
        if periods <= grace:
            value = 1.0
        elif periods >= zero or zero <= grace:
            value = 0.0
        else:
            value = 1.0 - (periods - grace) / (zero - grace)
        return (
            value,
            None,
            {
                "declared_frequency": self.declared_frequency,
                "period_hours": hours,
                "last_updated": self.last_updated,
                "lag_hours": round(lag_hours, 2),
                "lag_periods": round(periods, 3),
                "on_time": periods <= grace,
            },
        )

    def _readable_format(self) -> _Measured:
        if not self.columns:
            return None, Reason("no-columns", N_("The table has no columns.")), {}
        readable = [c.name for c in self.columns if c.kind != "other"]
        return (
            len(readable) / len(self.columns),
            None,
            {"unreadable_columns": [c.name for c in self.columns if c.kind == "other"]},
        )

    def _schema_present(self) -> _Measured:
        if not self.columns:
            return None, Reason("no-columns", N_("The table has no columns.")), {}
        names = [c.name for c in self.columns]
        seen: dict[str, int] = {}
        for name in names:
            key = name.strip().lower()
            seen[key] = seen.get(key, 0) + 1
        poor = [
            name
            for name in names
            if seen[name.strip().lower()] > 1
            or any(p.fullmatch(name.strip()) for p in self.rules.positional_names)
        ]
        return 1.0 - len(poor) / len(names), None, {"unnamed_columns": poor}

    def _read_warnings(self, warnings: int) -> _Measured:
        if not self.columns:
            return None, Reason("no-columns", N_("The table has no columns.")), {}
        rate_ = warnings / max(1, self.rows + warnings)
        limit = self.rules.max_warning_rate
        value = max(0.0, 1.0 - rate_ / limit) if limit > 0 else (1.0 if not warnings else 0.0)
        return value, None, {"warnings": warnings, "warning_rate": rate_}


_Measured = tuple[float | None, Reason | None, dict[str, Any]]


def profile_batches(
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    read_ahead: int = 2,
    **options: Any,
) -> QualityProfiler:
    """Profile a stream of batches, reading the next ones on a thread meanwhile.

    Reading (Parquet decoding, CSV parsing) runs in C with the GIL released, so on two cores it
    overlaps the profiling of the batch before. ``options`` go to ``QualityProfiler``. An error
    while reading is raised here, after the reading thread has stopped.
    """
    profiler = QualityProfiler(schema, **options)
    ready: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=read_ahead)
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ready.put(exc)

    reader = threading.Thread(target=read, name="quality-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            profiler.update(item)
    finally:
        stop.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)
        reader.join()
    return profiler


def _weighted(items: Iterable[tuple[float, float | None]]) -> float | None:
    assessed = [(w, s) for w, s in items if s is not None]
    weight = sum(w for w, _ in assessed)
    if not assessed or weight <= 0:
        return None
    return sum(w * s for w, s in assessed) / weight


def _coverage(dimensions: Sequence[DimensionScore]) -> float:
    """Share of the rules' total weight that was assessed (dimension × indicator weights)."""
    total = sum(d.weight for d in dimensions if d.indicators)
    if not total:
        return 0.0
    covered = 0.0
    for d in dimensions:
        weights = sum(i.weight for i in d.indicators)
        if weights:
            covered += d.weight * sum(i.weight for i in d.indicators if i.assessed) / weights
    return covered / total


def _numbers(arr: pa.Array) -> np.ndarray:
    """Non-null values as float64: numbers as they are, dates in days, times in seconds."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.dictionary_decode(), t.value_type
    if pa.types.is_date32(t):
        arr = arr.cast(pa.int32())
    elif pa.types.is_date64(t) or pa.types.is_timestamp(t) or pa.types.is_time(t):
        arr = arr.cast(pa.int64())
    values = arr.drop_null()
    out = np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_date64(t):
        unit = getattr(t, "unit", "ms")
        out = out / {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]
    if pa.types.is_floating(t):
        out = out[np.isfinite(out)]
    # The KLL binding takes only writable arrays; Arrow's zero-copy views are read-only.
    return np.require(out, requirements="W")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _quantiles(kll: Any, t: pa.DataType) -> dict[str, float | str | bool]:
    """Min, quartiles and max of a KLL sketch (min and max are exact), shown in the column's type."""
    out: dict[str, float | str | bool] = {"min": _show_number(kll.get_min_value(), t)}
    for label, rank in (("p25", 0.25), ("p50", 0.5), ("p75", 0.75)):
        out[label] = _show_number(kll.get_quantile(rank, True), t)
    out["max"] = _show_number(kll.get_max_value(), t)
    out["n"] = float(kll.n)
    out["rank_error"] = float(kll.normalized_rank_error(False))
    return out


def _show_number(value: float, t: pa.DataType) -> float | str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not math.isfinite(value):
        return value
    if pa.types.is_date32(t):
        return (_EPOCH + dt.timedelta(days=value)).date().isoformat()
    if pa.types.is_timestamp(t) or pa.types.is_date64(t):
        return (_EPOCH + dt.timedelta(seconds=value)).isoformat()
    if pa.types.is_time(t):
        return (dt.datetime.min + dt.timedelta(seconds=value)).time().isoformat()
    return value


_ISO_DURATION = re.compile(
    r"P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_ISO_HOURS = {
    "y": 8784.0,
    "mo": 744.0,
    "w": 168.0,
    "d": 24.0,
    "h": 1.0,
    "mi": 1 / 60,
    "s": 1 / 3600,
}


def _period_hours(frequency: str, rules: QualityRules) -> float | None:
    key = frequency.strip().lower()
    if key in rules.frequencies:
        return rules.frequencies[key]
    match = _ISO_DURATION.fullmatch(frequency.strip())
    if match and any(match.groupdict().values()):
        hours = sum(float(v) * _ISO_HOURS[k] for k, v in match.groupdict().items() if v)
        return hours if hours > 0 else None
    return None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """Naive times are taken as UTC (storage time is UTC throughout the platform)."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _parse_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None
