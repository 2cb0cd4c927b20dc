"""Discovery: what a data set holds — personal-information recognisers and their evaluation.

Other domains use the surface below: ``classify_value`` for one value, ``scan_column`` /
``ColumnScanner`` / ``scan_table`` for columns, ``load_pii_rules`` for which entity types are
sensitive personal information (PIPL art. 28); ``scan_source`` for a whole ``dataplane.Table``
(columns, distinct individuals, grade and quality in one ``ScanReport``); ``grade`` for the
GB/T 43697 grade of column findings and declared ``GradingMetadata``; ``QualityProfiler`` /
``profile_batches`` for the GB/T 36344 quality profile (mergeable, persistable state) and
``load_quality_rules`` for its weights and rating bands. The synthetic labelled
corpus and its metrics live in ``discovery.corpus`` and ``discovery.evaluate``, used by the tests
and ``make bench``.
"""

from typing import TYPE_CHECKING, Any

from datafactor import audit as _audit
from datafactor.discovery.deidentification import (
    ColumnRule,
    DeidentificationCancelled,
    DeidentificationPolicy,
    DeidentificationProfile,
    DeidentificationReport,
    DeidentifiedOutput,
    Technique,
    deidentify,
    deidentify_to_store,
    load_deidentification_profiles,
    policy_from_profile,
)
from datafactor.discovery.grading import (
    Grade,
    GradeDecision,
    GradeReason,
    GradingMetadata,
    Impact,
    distinct_individuals,
    grade,
    load_grading_rules,
)
from datafactor.discovery.jobs import run_pending
from datafactor.discovery.recognizers import (
    CHECK_DIGIT_TYPES,
    ENTITY_TYPES,
    RECOGNIZERS,
    ColumnFinding,
    ColumnScanner,
    PiiTypeRule,
    Recognizer,
    classify_value,
    load_pii_rules,
    scan_batches,
    scan_column,
    scan_table,
)
from datafactor.discovery.scan import (
    ScanCancelled,
    ScanMode,
    ScannedColumn,
    ScanReport,
    scan_source,
)
from datafactor.discovery.services import (
    ReviewedReport,
    ScanQuery,
    get_scan,
    list_reviews,
    list_scans,
    request_scan,
    review_detection,
    reviewed_report,
)
from datafactor.discovery.tokens import (
    KeyFileRefused,
    TrusteeKeys,
    detokenise,
    require_trustee,
    trustee_keys,
)
from datafactor.discovery.workflow import EVENT_LABELS as _EVENT_LABELS
from datafactor.discovery.workflow import ReviewDecision, ScanStatus

if TYPE_CHECKING:
    from datafactor.discovery.quality import (
        QualityProfile,
        QualityProfiler,
        QualityRules,
        load_quality_rules,
        profile_batches,
    )

_audit.register_action_labels(_EVENT_LABELS)

# The quality profiler brings DuckDB hashing, numpy and DataSketches: imported on first use, so
# that commands other than a scan do not load it (PEP 562).
_QUALITY = frozenset(
    {"QualityProfile", "QualityProfiler", "QualityRules", "load_quality_rules", "profile_batches"}
)


def __getattr__(name: str) -> Any:
    if name in _QUALITY:
        from datafactor.discovery import quality

        return getattr(quality, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHECK_DIGIT_TYPES",
    "ENTITY_TYPES",
    "RECOGNIZERS",
    "ColumnFinding",
    "ColumnRule",
    "ColumnScanner",
    "DeidentificationCancelled",
    "DeidentificationPolicy",
    "DeidentificationProfile",
    "DeidentificationReport",
    "DeidentifiedOutput",
    "Grade",
    "GradeDecision",
    "GradeReason",
    "GradingMetadata",
    "Impact",
    "KeyFileRefused",
    "PiiTypeRule",
    "QualityProfile",
    "QualityProfiler",
    "QualityRules",
    "Recognizer",
    "ReviewDecision",
    "ReviewedReport",
    "ScanCancelled",
    "ScanMode",
    "ScanQuery",
    "ScanReport",
    "ScanStatus",
    "ScannedColumn",
    "Technique",
    "TrusteeKeys",
    "classify_value",
    "deidentify",
    "deidentify_to_store",
    "detokenise",
    "distinct_individuals",
    "get_scan",
    "grade",
    "list_reviews",
    "list_scans",
    "load_deidentification_profiles",
    "load_grading_rules",
    "load_pii_rules",
    "load_quality_rules",
    "policy_from_profile",
    "profile_batches",
    "request_scan",
    "require_trustee",
    "review_detection",
    "reviewed_report",
    "run_pending",
    "scan_batches",
    "scan_column",
    "scan_source",
    "scan_table",
    "trustee_keys",
]
