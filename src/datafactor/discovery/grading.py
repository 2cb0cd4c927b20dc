"""Grading of a data set under GB/T 43697-2024: general 一般, important 重要 or core 核心, with reasons.

``grade(findings, metadata)`` is a pure function of what the recognisers found in the columns
(entity types, sensitive flags, distinct identifying values) and what the holder declares about
the data set (``GradingMetadata``: domain, content categories, region, precision, scale, assessed
impacts). It applies the rules of ``rules/grading.yaml`` and the important-data catalogues of
``rules/important_data/*.yaml`` — which rules and every threshold come from those files, this
module only says how they are applied — and returns a ``GradeDecision``: the grade, the reasons
(each naming its rule id, source and article, with a message template that renders in Chinese
and English) and the ids of the rules applied.

How the rules combine: every rule that fires proposes a grade for an item of the data set (an
assessed impact, a catalogue entry, the volume of personal information); the data set takes the
highest (GB/T 43697 就高从严), and general data when none fires. Sensitive personal information
(PIPL art. 28) is reported with a reason but does not by itself raise the grade: GB/T 43697 does
not make data important for holding it. The number of individuals is the larger of the count
from the columns (``distinct_individuals``) and the number the holder declares, so a holder who
knows the whole data set is larger than the part scanned can say so.

Messages are English gettext templates marked with ``N_`` (the codebase's approach, see
``datafactor.errors``); a reason keeps its template and parameters, so it can be stored and shown
later in either language. Parameters that are themselves bilingual (a catalogue description, a
grade's name) are stored as ``{"zh": ..., "en": ...}`` and resolved when rendered. Nothing here
touches a database or the web.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

from datafactor.discovery.recognizers import ENTITY_TYPES, ColumnFinding, load_pii_rules
from datafactor.errors import N_, InvalidInput

__all__ = [
    "CatalogueEntry",
    "Grade",
    "GradeDecision",
    "GradeReason",
    "GradingMetadata",
    "GradingRules",
    "Impact",
    "RuleRef",
    "distinct_individuals",
    "grade",
    "load_grading_rules",
    "render_message",
]

_RULES_DIR: Final = Path(__file__).resolve().parent / "rules"
_ANY_DOMAIN: Final = "any"

# Message templates (gettext msgids). Kept together so translators and reviewers see them at once.
MSG_DEFAULT: Final = N_("No rule for important or core data applies: the data set is general data.")
MSG_HIGHEST: Final = N_("A data set takes the highest grade of its items: {grade}.")
MSG_PI_VOLUME: Final = N_(
    "Individuals whose personal information it holds: {individuals:,}, at least {threshold:,}. "
    "Its holder takes on the duties of an important-data handler, so the data set is {grade}."
)
MSG_PI_BELOW: Final = N_(
    "Individuals whose personal information it holds: {individuals:,}, fewer than the "
    "{threshold:,} that would make it important data."
)
MSG_SENSITIVE: Final = N_(
    "Holds sensitive personal information ({types}) in columns {columns}: processing it needs "
    "separate consent and a personal-information impact assessment. Sensitive information "
    "alone does not make data important under GB/T 43697, so the grade is not raised for it."
)
MSG_CATALOGUE: Final = N_(
    "Matches the important-data catalogue entry {entry}: {description}. Graded {grade}."
)
MSG_IMPACT: Final = N_("Assessed impact on {object}: {degree}. Graded {grade}.")
MSG_UNKNOWN_VALUE: Final = N_("Unknown {what}: {value}. Known values: {known}.")
MSG_NEGATIVE: Final = N_("{value} is not a possible {what}.")


class Grade(StrEnum):
    """The three levels of GB/T 43697-2024 6.1, lowest first."""

    GENERAL = "general"
    IMPORTANT = "important"
    CORE = "core"

    @property
    def rank(self) -> int:
        """0 for general, 1 for important, 2 for core: grades compare by rank."""
        return _GRADE_ORDER.index(self)


_GRADE_ORDER: Final = (Grade.GENERAL, Grade.IMPORTANT, Grade.CORE)


def _localise(value: Any, locale: str) -> Any:
    """A bilingual parameter ``{"zh": ..., "en": ...}`` in ``locale``; anything else as it is."""
    if isinstance(value, Mapping) and "en" in value and "zh" in value:
        return value["zh"] if locale.lower().startswith("zh") else value["en"]
    return value


def render_message(message: str, params: Mapping[str, Any], locale: str = "en") -> str:
    """A message template in ``locale`` (``zh_CN`` or ``en``), its parameters filled in.

    The template is looked up in the translation catalogues (an untranslated one stays English);
    bilingual parameters take the locale's text.
    """
    # Imported here: the catalogues belong to the web layer, and only rendering needs them.
    from datafactor.web.i18n import safe_format, translations

    template = translations(locale).gettext(message)
    return safe_format(template, {k: _localise(v, locale) for k, v in params.items()})


def _plain(value: Any) -> Any:
    """A parameter as JSON-ready data (mapping proxies become dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- rule data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleRef:
    """Where a rule comes from: its id, source, article, whether verified, and the file version."""

    id: str
    source: str
    article: str
    verified: bool
    version: str


@dataclass(frozen=True, slots=True)
class Impact:
    """An assessed impact (GB/T 43697 6.4): the object affected and the degree of harm."""

    object: str
    degree: str


@dataclass(frozen=True, slots=True)
class GradingMetadata:
    """What the holder declares about a data set (the grading elements of GB/T 43697 6.3).

    Everything is optional; a catalogue condition on something not declared does not hold.
    ``domain`` and ``categories`` are codes from the rule files; ``region`` is the area covered
    (``county`` < ``prefecture`` < ``province`` < ``national``); ``precision_m`` the spatial
    precision in metres; ``area_km2`` the area covered; ``records`` the number of rows of the
    whole data set; ``individuals`` the number of people it describes, when known to be more than
    a scan can count; ``impacts`` the impacts an assessor recorded.
    """

    domain: str | None = None
    categories: frozenset[str] = frozenset()
    region: str | None = None
    precision_m: float | None = None
    area_km2: float | None = None
    records: int | None = None
    individuals: int | None = None
    impacts: tuple[Impact, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a job or the database stores)."""
        return {
            "domain": self.domain,
            "categories": sorted(self.categories),
            "region": self.region,
            "precision_m": self.precision_m,
            "area_km2": self.area_km2,
            "records": self.records,
            "individuals": self.individuals,
            "impacts": [{"object": i.object, "degree": i.degree} for i in self.impacts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GradingMetadata:
        """The inverse of ``as_dict``; missing keys take their defaults."""
        return cls(
            domain=data.get("domain"),
            categories=frozenset(data.get("categories") or ()),
            region=data.get("region"),
            precision_m=data.get("precision_m"),
            area_km2=data.get("area_km2"),
            records=data.get("records"),
            individuals=data.get("individuals"),
            impacts=tuple(Impact(i["object"], i["degree"]) for i in data.get("impacts") or ()),
        )


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the rules look at: the declared metadata and what the columns showed."""

    metadata: GradingMetadata
    types: frozenset[str]
    individuals: int | None
    region_rank: int | None


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """An important-data catalogue entry: a description, the conditions (all must hold), a grade."""

    rule: RuleRef
    domain: str
    description: Mapping[str, str]
    grade: Grade
    categories: frozenset[str] | None = None
    entity_types: frozenset[str] | None = None
    min_individuals: int | None = None
    min_records: int | None = None
    max_precision_m: float | None = None
    min_area_km2: float | None = None
    min_region: int | None = None  # rank in GradingRules.regions

    def matches(self, facts: _Facts) -> bool:
        meta = facts.metadata
        if self.domain != _ANY_DOMAIN and meta.domain != self.domain:
            return False
        checks = (
            self.categories is None or bool(self.categories & meta.categories),
            self.entity_types is None or bool(self.entity_types & facts.types),
            _at_least(facts.individuals, self.min_individuals),
            _at_least(meta.records, self.min_records),
            _at_least(meta.area_km2, self.min_area_km2),
            _at_least(facts.region_rank, self.min_region),
            self.max_precision_m is None
            or (meta.precision_m is not None and meta.precision_m <= self.max_precision_m),
        )
        return all(checks)


def _at_least(value: float | None, bound: float | None) -> bool:
    return bound is None or (value is not None and value >= bound)


@dataclass(frozen=True)
class GradingRules:
    """The rule files, loaded and checked: see ``rules/grading.yaml`` for the meaning of each part."""

    version: str
    grade_names: Mapping[Grade, Mapping[str, str]]
    default: RuleRef
    highest: RuleRef
    pi_volume: RuleRef
    pi_volume_grade: Grade
    pi_volume_min_individuals: int
    sensitive_pi: RuleRef
    regions: tuple[str, ...]
    region_names: Mapping[str, Mapping[str, str]]
    domains: Mapping[str, Mapping[str, str]]
    impact: RuleRef
    impact_objects: Mapping[str, Mapping[str, str]]
    impact_degrees: Mapping[str, Mapping[str, str]]
    impact_grades: Mapping[tuple[str, str], Grade]
    catalogue: tuple[CatalogueEntry, ...]
    categories: frozenset[str] = field(default=frozenset())

    def impact_rule(self, impact: Impact) -> RuleRef:
        """The rule id of one cell of the impact table, e.g. ``GBT43697-6.5-impact/economy/serious``."""
        base = self.impact
        return RuleRef(
            f"{base.id}/{impact.object}/{impact.degree}",
            base.source,
            base.article,
            base.verified,
            base.version,
        )

    def check(self, metadata: GradingMetadata) -> None:
        """Refuse metadata naming a domain, category, region or impact the rules do not know."""
        _known("domain", metadata.domain, self.domains)
        for category in sorted(metadata.categories):
            _known("category", category, self.categories)
        _known("region", metadata.region, self.regions)
        for impact in metadata.impacts:
            _known("impact object", impact.object, self.impact_objects)
            _known("impact degree", impact.degree, self.impact_degrees)
        for name in ("precision_m", "area_km2", "records", "individuals"):
            value = getattr(metadata, name)
            if value is not None and (value < 0 or (value == 0 and name == "precision_m")):
                raise InvalidInput(MSG_NEGATIVE, field=name, what=name, value=value)


def _known(name: str, value: str | None, known: Iterable[str]) -> None:
    known = list(known)
    if value is not None and value not in known:
        raise InvalidInput(
            MSG_UNKNOWN_VALUE, what=name, value=value, known=", ".join(sorted(known))
        )


def _text(entry: Any, where: str) -> Mapping[str, str]:
    if not isinstance(entry, Mapping) or not entry.get("zh") or not entry.get("en"):
        raise ValueError(f"{where}: needs zh and en")
    return MappingProxyType({"zh": str(entry["zh"]), "en": str(entry["en"])})


def _ref(entry: Mapping[str, Any], version: str, where: str) -> RuleRef:
    for key in ("id", "source", "article", "verified"):
        if key not in entry:
            raise ValueError(f"{where}: missing {key}")
    if not isinstance(entry["verified"], bool):
        raise ValueError(f"{where}: verified must be true or false")
    return RuleRef(
        str(entry["id"]), str(entry["source"]), str(entry["article"]), entry["verified"], version
    )


def _grade(value: Any, where: str, allowed: Iterable[Grade] = _GRADE_ORDER) -> Grade:
    try:
        found = Grade(value)
    except ValueError:
        raise ValueError(f"{where}: unknown grade {value!r}") from None
    if found not in allowed:
        raise ValueError(f"{where}: grade {value!r} is not allowed here")
    return found


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: must be a non-negative number, not {value!r}")
    return value


_CONDITIONS: Final = frozenset(
    {
        "categories",
        "entity_types",
        "min_individuals",
        "min_records",
        "max_precision_m",
        "min_area_km2",
        "min_region",
    }
)


def _entry(
    raw: Mapping[str, Any], domain: str, version: str, regions: Sequence[str], where: str
) -> CatalogueEntry:
    rule = _ref(raw, version, where)
    where = f"{where} {rule.id}"
    when = raw.get("when")
    if not isinstance(when, Mapping) or not when:
        # An entry without conditions would make every data set of its domain important.
        raise ValueError(f"{where}: needs at least one condition under when")
    unknown = set(when) - _CONDITIONS
    if unknown:
        raise ValueError(f"{where}: unknown conditions {sorted(unknown)}")
    types = when.get("entity_types")
    if types is not None and not set(types) <= set(ENTITY_TYPES):
        raise ValueError(f"{where}: unknown entity types {sorted(set(types) - set(ENTITY_TYPES))}")
    region = when.get("min_region")
    if region is not None and region not in regions:
        raise ValueError(f"{where}: unknown region {region!r}")

    def number(key: str) -> float | None:
        return None if when.get(key) is None else _positive(when[key], f"{where} {key}")

    def integer(key: str) -> int | None:
        value = number(key)
        if value is not None and value != int(value):
            raise ValueError(f"{where} {key}: must be a whole number")
        return None if value is None else int(value)

    return CatalogueEntry(
        rule=rule,
        domain=str(raw.get("domain", domain)),
        description=_text(raw.get("description"), f"{where} description"),
        grade=_grade(raw.get("grade"), where, (Grade.IMPORTANT, Grade.CORE)),
        categories=None if when.get("categories") is None else frozenset(when["categories"]),
        entity_types=None if types is None else frozenset(types),
        min_individuals=integer("min_individuals"),
        min_records=integer("min_records"),
        max_precision_m=number("max_precision_m"),
        min_area_km2=number("min_area_km2"),
        min_region=None if region is None else regions.index(region),
    )


def _load(rules_file: Path, catalogue_dir: Path) -> GradingRules:
    data = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
    version = str(data["version"])
    where = rules_file.name
    rules = data["rules"]
    grade_names = {
        _grade(k, f"{where} grades"): _text(v, f"{where} grades {k}")
        for k, v in data["grades"].items()
    }
    if set(grade_names) != set(_GRADE_ORDER):
        raise ValueError(f"{where}: grades must be exactly {[g.value for g in _GRADE_ORDER]}")
    regions = tuple(str(r) for r in data["regions"])
    domains = {str(k): _text(v, f"{where} domains {k}") for k, v in data["domains"].items()}
    impact = data["impact"]
    objects = {str(k): _text(v, f"{where} impact object {k}") for k, v in impact["objects"].items()}
    degrees = {str(k): _text(v, f"{where} impact degree {k}") for k, v in impact["degrees"].items()}
    impact_grades: dict[tuple[str, str], Grade] = {}
    for obj in objects:
        row = impact["grades"].get(obj) or {}
        for degree in degrees:
            if degree not in row:
                raise ValueError(f"{where}: impact grades miss {obj}/{degree}")
            impact_grades[(obj, degree)] = _grade(row[degree], f"{where} impact {obj}/{degree}")
    pi_volume = rules["pi_volume"]
    threshold = pi_volume.get("min_individuals")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold <= 0:
        raise ValueError(f"{where}: pi_volume.min_individuals must be a positive whole number")

    catalogue: list[CatalogueEntry] = []
    for path in sorted(catalogue_dir.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        domain = str(doc.get("domain", ""))
        if domain != _ANY_DOMAIN and domain not in domains:
            raise ValueError(f"{path.name}: unknown domain {domain!r}")
        file_version = str(doc.get("version", version))
        for raw in doc.get("entries") or ():
            entry = _entry(raw, domain, file_version, regions, path.name)
            if entry.domain != _ANY_DOMAIN and entry.domain not in domains:
                raise ValueError(f"{path.name} {entry.rule.id}: unknown domain {entry.domain!r}")
            catalogue.append(entry)

    result = GradingRules(
        version=version,
        grade_names=MappingProxyType(grade_names),
        default=_ref(rules["default"], version, f"{where} default"),
        highest=_ref(rules["highest"], version, f"{where} highest"),
        pi_volume=_ref(pi_volume, version, f"{where} pi_volume"),
        pi_volume_grade=_grade(pi_volume.get("grade"), f"{where} pi_volume"),
        pi_volume_min_individuals=threshold,
        sensitive_pi=_ref(rules["sensitive_pi"], version, f"{where} sensitive_pi"),
        regions=regions,
        region_names=MappingProxyType(
            {r: _text(v, f"{where} regions {r}") for r, v in data["regions"].items()}
        ),
        domains=MappingProxyType(domains),
        impact=_ref(impact, version, f"{where} impact"),
        impact_objects=MappingProxyType(objects),
        impact_degrees=MappingProxyType(degrees),
        impact_grades=MappingProxyType(impact_grades),
        catalogue=tuple(catalogue),
        categories=frozenset(c for e in catalogue for c in e.categories or ()),
    )
    ids = [
        result.default.id,
        result.highest.id,
        result.pi_volume.id,
        result.sensitive_pi.id,
        *(result.impact_rule(Impact(o, d)).id for o, d in impact_grades),
        *(e.rule.id for e in catalogue),
    ]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"grading rules: duplicate rule ids {duplicates}")
    return result


@functools.cache
def _default_rules() -> GradingRules:
    return _load(_RULES_DIR / "grading.yaml", _RULES_DIR / "important_data")


def load_grading_rules(
    rules_file: Path | None = None, catalogue_dir: Path | None = None
) -> GradingRules:
    """The grading rules and catalogues: the packaged files, or an operator's own (checked)."""
    if rules_file is None and catalogue_dir is None:
        return _default_rules()
    return _load(
        rules_file or _RULES_DIR / "grading.yaml", catalogue_dir or _RULES_DIR / "important_data"
    )


# --- decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GradeReason:
    """Why a grade: the rule, the grade it proposes (None for a note), and a message template.

    ``message`` is an English gettext template; ``params`` are JSON values, a bilingual one as
    ``{"zh": ..., "en": ...}``. ``text(locale)`` renders it.
    """

    rule: str
    grade: Grade | None
    message: str
    params: Mapping[str, Any]
    source: str
    article: str
    verified: bool
    version: str

    @classmethod
    def of(cls, ref: RuleRef, grade: Grade | None, message: str, /, **params: Any) -> GradeReason:
        return cls(
            ref.id,
            grade,
            message,
            MappingProxyType(params),
            ref.source,
            ref.article,
            ref.verified,
            ref.version,
        )

    def text(self, locale: str = "en") -> str:
        """The message in ``locale`` (``zh_CN`` or ``en``), from the translation catalogues."""
        return render_message(self.message, self.params, locale)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the rule and its source, the template and parameters, and both texts."""
        return {
            "rule": self.rule,
            "grade": None if self.grade is None else self.grade.value,
            "zh": self.text("zh_CN"),
            "en": self.text("en"),
            "message": self.message,
            "params": _plain(self.params),
            "source": self.source,
            "article": self.article,
            "verified": self.verified,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GradeReason:
        """The inverse of ``as_dict`` (the texts are rendered again from the template)."""
        return cls(
            rule=str(data["rule"]),
            grade=None if data.get("grade") is None else Grade(data["grade"]),
            message=str(data["message"]),
            params=MappingProxyType(dict(data.get("params") or {})),
            source=str(data.get("source", "")),
            article=str(data.get("article", "")),
            verified=bool(data.get("verified", False)),
            version=str(data.get("version", "")),
        )


@dataclass(frozen=True, slots=True)
class GradeDecision:
    """A data set's grade, the reasons for it (grade-setting ones first), and the rules applied."""

    grade: Grade
    reasons: tuple[GradeReason, ...]
    rules: tuple[str, ...]

    @property
    def sensitive(self) -> bool:
        """Whether sensitive personal information was found (PIPL art. 28)."""
        return any(r.message == MSG_SENSITIVE for r in self.reasons)

    def texts(self, locale: str = "en") -> list[str]:
        """Every reason rendered in ``locale``."""
        return [r.text(locale) for r in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {
            "grade": self.grade.value,
            "grade_reasons": [r.as_dict() for r in self.reasons],
            "rules": list(self.rules),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GradeDecision:
        return cls(
            grade=Grade(data["grade"]),
            reasons=tuple(GradeReason.from_dict(r) for r in data.get("grade_reasons") or ()),
            rules=tuple(data.get("rules") or ()),
        )


def distinct_individuals(findings: Iterable[ColumnFinding]) -> int | None:
    """How many distinct people the columns identify: the largest distinct count of a column of
    identifying types (resident ID, mobile, e-mail, bank card, passport, plate ...); None if none.

    Not the sum: the identifying columns of a row usually describe the same person (her ID, her
    phone), so adding them would count her twice. The largest column is therefore a lower bound
    when they do, and an undercount when the columns describe different people (buyer and
    seller); a holder who knows better declares ``GradingMetadata.individuals``. Beyond 20,000
    values a column's distinct count is an estimate (about ±2 %); it is capped at the column's
    non-empty cells, which no count of distinct values can exceed.
    """
    counts = [
        min(f.distinct_values, f.non_empty) for f in findings if f.distinct_values is not None
    ]
    return max(counts) if counts else None


def grade(
    findings: Sequence[ColumnFinding],
    metadata: GradingMetadata | None = None,
    *,
    rules: GradingRules | None = None,
) -> GradeDecision:
    """Grade a data set from its column findings and declared metadata (see the module docstring).

    Raises ``InvalidInput`` when the metadata names a domain, category, region or impact the
    rules do not know, so a typo never silently grades data lower.
    """
    rules = rules or load_grading_rules()
    metadata = metadata or GradingMetadata()
    rules.check(metadata)
    counted = distinct_individuals(findings)
    known = [n for n in (counted, metadata.individuals) if n is not None]
    individuals = max(known) if known else None
    facts = _Facts(
        metadata=metadata,
        types=frozenset(t for f in findings for t in f.types),
        individuals=individuals,
        region_rank=None if metadata.region is None else rules.regions.index(metadata.region),
    )
    names = rules.grade_names
    raised: list[GradeReason] = []
    notes: list[GradeReason] = []

    for impact in metadata.impacts:
        proposed = rules.impact_grades[(impact.object, impact.degree)]
        raised.append(
            GradeReason.of(
                rules.impact_rule(impact),
                proposed,
                MSG_IMPACT,
                object=rules.impact_objects[impact.object],
                degree=rules.impact_degrees[impact.degree],
                grade=names[proposed],
            )
        )

    for entry in rules.catalogue:
        if entry.matches(facts):
            raised.append(
                GradeReason.of(
                    entry.rule,
                    entry.grade,
                    MSG_CATALOGUE,
                    entry=entry.rule.id,
                    description=entry.description,
                    grade=names[entry.grade],
                )
            )

    if individuals is not None:
        threshold = rules.pi_volume_min_individuals
        if individuals >= threshold:
            proposed = rules.pi_volume_grade
            raised.append(
                GradeReason.of(
                    rules.pi_volume,
                    proposed,
                    MSG_PI_VOLUME,
                    individuals=individuals,
                    threshold=threshold,
                    grade=names[proposed],
                )
            )
        else:
            notes.append(
                GradeReason.of(
                    rules.pi_volume,
                    None,
                    MSG_PI_BELOW,
                    individuals=individuals,
                    threshold=threshold,
                )
            )

    pii = load_pii_rules()
    sensitive_columns = [f.name for f in findings if f.sensitive]
    if sensitive_columns:
        types = sorted(
            {t for f in findings for t in f.types if pii[t].sensitive},
            key=ENTITY_TYPES.index,
        )
        notes.append(
            GradeReason.of(
                rules.sensitive_pi,
                None,
                MSG_SENSITIVE,
                columns=", ".join(sensitive_columns),
                types=", ".join(types),
            )
        )

    # Actual grades only: an impact mapped to "general" is a reason, not a raise.
    final = max(
        (r.grade for r in raised if r.grade is not None),
        key=lambda g: g.rank,
        default=Grade.GENERAL,
    )
    raised.sort(key=lambda r: -(r.grade.rank if r.grade else 0))
    if final is Grade.GENERAL:
        head = [GradeReason.of(rules.default, Grade.GENERAL, MSG_DEFAULT)]
    else:
        head = [GradeReason.of(rules.highest, final, MSG_HIGHEST, grade=names[final])]
    reasons = (*head, *raised, *notes)
    return GradeDecision(
        grade=final,
        reasons=reasons,
        rules=tuple(dict.fromkeys(r.rule for r in reasons)),
    )
