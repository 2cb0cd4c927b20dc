"""Precision, recall and F2 of the recognisers on a labelled corpus, per entity type.

Column level: a column counts as a true positive for type T when it is labelled T and
``scan_column`` reports T, a false positive when it reports T and the label is something else
(another type or a hard negative), a false negative when it is labelled T and T is not reported.
Cell level, for the check-digit types: the same counts over cells, against each cell's own label
(blanks and corrupted values in a labelled column are labelled None), with the prediction of
``classify_value`` given the column name and the column's findings: a value valid as two types
(a NIK that also passes Luhn under a Mastercard prefix) counts as the type its column holds,
while a value valid as one type counts as that type wherever it is. F2 weighs recall twice as much as precision, since a
missed identifier column is worse than one a reviewer dismisses. A metric whose denominator is
zero (nothing predicted, or nothing to find) is reported as 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from datafactor.discovery.corpus import CorpusTable
from datafactor.discovery.recognizers import (
    CHECK_DIGIT_TYPES,
    DEFAULT_THRESHOLD,
    ENTITY_TYPES,
    ColumnFinding,
    classify_value,
    scan_column,
)

__all__ = ["Evaluation", "Metrics", "Miss", "evaluate", "format_report"]


@dataclass(frozen=True, slots=True)
class Metrics:
    """Counts of one entity type and the scores derived from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f2(self) -> float:
        p, r = self.precision, self.recall
        return 5 * p * r / (4 * p + r) if p + r else 0.0

    def add(self, tp: int = 0, fp: int = 0, fn: int = 0) -> Metrics:
        return Metrics(self.tp + tp, self.fp + fp, self.fn + fn)


@dataclass(frozen=True, slots=True)
class Miss:
    """A column the recognisers got wrong, for reading the report."""

    table: str
    column: str
    label: str | None
    kind: str
    predicted: tuple[str, ...]
    ratios: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Per-type metrics at the column level and (check-digit types) the cell level."""

    columns: Mapping[str, Metrics]
    cells: Mapping[str, Metrics]
    misses: tuple[Miss, ...] = field(default=())
    column_count: int = 0
    cell_count: int = 0


def evaluate(
    tables: Iterable[CorpusTable], *, threshold: float = DEFAULT_THRESHOLD, cells: bool = True
) -> Evaluation:
    """Scan every column of ``tables`` and score the findings against the labels."""
    columns = dict.fromkeys(ENTITY_TYPES, Metrics())
    cell_metrics = dict.fromkeys(sorted(CHECK_DIGIT_TYPES), Metrics())
    misses: list[Miss] = []
    column_count = cell_count = 0
    for table in tables:
        for column in table.columns:
            column_count += 1
            finding: ColumnFinding = scan_column(column.name, column.values, threshold=threshold)
            predicted = set(finding.types)
            for t in predicted:
                columns[t] = columns[t].add(tp=1) if t == column.label else columns[t].add(fp=1)
            if column.label is not None and column.label not in predicted:
                columns[column.label] = columns[column.label].add(fn=1)
            if predicted != ({column.label} if column.label else set()):
                misses.append(
                    Miss(
                        table.name,
                        column.name,
                        column.label,
                        column.kind,
                        finding.types,
                        dict(finding.ratios),
                    )
                )
            if not cells:
                continue
            for value, truth in zip(column.values, column.cell_labels, strict=True):
                cell_count += 1
                types = classify_value(value, column.name, column_types=finding.types)
                found = CHECK_DIGIT_TYPES.intersection(types)
                for t in found:
                    cell_metrics[t] = (
                        cell_metrics[t].add(tp=1) if t == truth else cell_metrics[t].add(fp=1)
                    )
                if truth in CHECK_DIGIT_TYPES and truth not in found:
                    cell_metrics[truth] = cell_metrics[truth].add(fn=1)
    return Evaluation(columns, cell_metrics, tuple(misses), column_count, cell_count)


def format_report(evaluation: Evaluation) -> str:
    """A markdown table: per type, column-level P/R/F2 and, for check-digit types, cell-level."""
    lines = [
        "| Entity type | Columns P | R | F2 | Cells P | R | F2 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in ENTITY_TYPES:
        c = evaluation.columns[t]
        row = f"| {t} | {c.precision:.3f} | {c.recall:.3f} | {c.f2:.3f} |"
        if t in evaluation.cells:
            k = evaluation.cells[t]
            row += f" {k.precision:.4f} | {k.recall:.4f} | {k.f2:.4f} |"
        else:
            row += " | | |"
        lines.append(row)
    return "\n".join(lines)
