"""Discovery: what a data set holds — personal-information recognisers and their evaluation.

Other domains use the surface below: ``classify_value`` for one value, ``scan_column`` /
``ColumnScanner`` / ``scan_table`` for columns, ``load_pii_rules`` for which entity types are
sensitive personal information (PIPL art. 28). The synthetic labelled corpus and its metrics live
in ``discovery.corpus`` and ``discovery.evaluate``, used by the tests and ``make bench``.
"""

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
    scan_column,
    scan_table,
)

__all__ = [
    "CHECK_DIGIT_TYPES",
    "ENTITY_TYPES",
    "RECOGNIZERS",
    "ColumnFinding",
    "ColumnScanner",
    "PiiTypeRule",
    "Recognizer",
    "classify_value",
    "load_pii_rules",
    "scan_column",
    "scan_table",
]
