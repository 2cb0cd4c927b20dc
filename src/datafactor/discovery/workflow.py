"""Scan jobs and reviews as rules: the words of the job states, review decisions, and the
reviewed view of a stored scan report.

Pure Python (no web framework, no ORM): ``services.py`` loads rows, asks these functions what to
do, and writes. Scan and de-identification jobs walk the state machine every background job
shares (``datafactor.jobs.state``: queued → running → succeeded | failed | cancelled, a timeout
and an owner for each non-final state, an administrator's force-cancel); its names are
re-exported here as ``ScanStatus``, ``JobTimeouts``, ``sweep_action`` and so on.

A reviewer's decision is kept per data set and detection (column + entity type), so it applies
to every later version's report: a dismissed detection stops counting towards the column's
sensitivity and the report's sensitive-column count, and shows who dismissed it and when.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from datafactor.errors import N_, InvalidInput

# Re-exported: the job states and their rules are every background job's (``datafactor.jobs``).
from datafactor.jobs.state import ACTIVE as ACTIVE
from datafactor.jobs.state import FINAL as FINAL
from datafactor.jobs.state import JobClock as JobClock
from datafactor.jobs.state import JobStatus
from datafactor.jobs.state import JobTimeouts as JobTimeouts
from datafactor.jobs.state import SweepAction as SweepAction
from datafactor.jobs.state import overran as overran
from datafactor.jobs.state import sweep_action as sweep_action

# Scans and de-identifications name the job states as they always have.
ScanStatus = JobStatus


class ScanMode(StrEnum):
    """A sample scan reads the first rows (quick, queued with every new version); a full scan
    reads every row."""

    SAMPLE = "sample"
    FULL = "full"


class ReviewDecision(StrEnum):
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class EventTag(StrEnum):
    """Audit action tags of discovery (``scope:resource:action``)."""

    SCAN_REQUEST = "discovery:scan:request"
    SCAN_START = "discovery:scan:start"
    SCAN_SUCCEED = "discovery:scan:succeed"
    SCAN_FAIL = "discovery:scan:fail"
    SCAN_CANCEL_REQUEST = "discovery:scan:cancel-request"
    SCAN_CANCELLED = "discovery:scan:cancelled"
    SCAN_FORCE_CANCEL = "discovery:scan:force-cancel"
    SCAN_REQUEUE = "discovery:scan:requeue"
    DETECTION_CONFIRM = "discovery:detection:confirm"
    DETECTION_DISMISS = "discovery:detection:dismiss"
    DEID_REQUEST = "discovery:deidentification:request"
    DEID_START = "discovery:deidentification:start"
    DEID_SUCCEED = "discovery:deidentification:succeed"
    DEID_FAIL = "discovery:deidentification:fail"
    DEID_CANCEL_REQUEST = "discovery:deidentification:cancel-request"
    DEID_CANCELLED = "discovery:deidentification:cancelled"
    DEID_FORCE_CANCEL = "discovery:deidentification:force-cancel"
    DEID_REQUEUE = "discovery:deidentification:requeue"
    TOKEN_REVERSE = "discovery:token:reverse"


STATUS_LABELS: dict[str, str] = {
    ScanStatus.QUEUED: N_("Queued"),
    ScanStatus.RUNNING: N_("Running"),
    ScanStatus.SUCCEEDED: N_("Finished"),
    ScanStatus.FAILED: N_("Failed"),
    ScanStatus.CANCELLED: N_("Cancelled"),
}
MODE_LABELS: dict[str, str] = {
    ScanMode.SAMPLE: N_("Sample scan"),
    ScanMode.FULL: N_("Full scan"),
}
DECISION_LABELS: dict[str, str] = {
    ReviewDecision.CONFIRMED: N_("Confirmed"),
    ReviewDecision.DISMISSED: N_("Dismissed"),
}
EVENT_LABELS: dict[str, str] = {
    EventTag.SCAN_REQUEST: N_("Requested a scan"),
    EventTag.SCAN_START: N_("Scan started"),
    EventTag.SCAN_SUCCEED: N_("Scan finished"),
    EventTag.SCAN_FAIL: N_("Scan failed"),
    EventTag.SCAN_CANCEL_REQUEST: N_("Asked to cancel a scan"),
    EventTag.SCAN_CANCELLED: N_("Scan cancelled"),
    EventTag.SCAN_FORCE_CANCEL: N_("Force-cancelled a scan"),
    EventTag.SCAN_REQUEUE: N_("Scan put back in the queue"),
    EventTag.DETECTION_CONFIRM: N_("Confirmed a detection"),
    EventTag.DETECTION_DISMISS: N_("Dismissed a detection"),
    EventTag.DEID_REQUEST: N_("Requested a de-identification"),
    EventTag.DEID_START: N_("De-identification started"),
    EventTag.DEID_SUCCEED: N_("De-identification finished"),
    EventTag.DEID_FAIL: N_("De-identification failed"),
    EventTag.DEID_CANCEL_REQUEST: N_("Asked to cancel a de-identification"),
    EventTag.DEID_CANCELLED: N_("De-identification cancelled"),
    EventTag.DEID_FORCE_CANCEL: N_("Force-cancelled a de-identification"),
    EventTag.DEID_REQUEUE: N_("De-identification put back in the queue"),
    EventTag.TOKEN_REVERSE: N_("Reversed tokens"),
}
TECHNIQUE_LABELS: dict[str, str] = {
    "keep": N_("Keep as it is"),
    "drop": N_("Remove the column"),
    "mask": N_("Mask"),
    "hash": N_("Salted hash"),
    "generalise": N_("Generalise"),
    "tokenise": N_("Tokenise (reversible by the trustee)"),
}
GRADE_LABELS: dict[str, str] = {
    "general": N_("General data"),
    "important": N_("Important data"),
    "core": N_("Core data"),
}
ENTITY_LABELS: dict[str, str] = {
    "cn_resident_id": N_("Resident ID number"),
    "cn_mobile": N_("Mobile number"),
    "cn_landline": N_("Landline number"),
    "bank_card": N_("Bank card number"),
    "email": N_("E-mail address"),
    "cn_uscc": N_("Unified social credit code"),
    "passport": N_("Passport number"),
    "hk_macao_taiwan_permit": N_("Hong Kong/Macao/Taiwan travel permit"),
    "license_plate": N_("Licence plate"),
    "vin": N_("Vehicle identification number (VIN)"),
    "ip_address": N_("IP address"),
    "geo_coordinate": N_("Latitude/longitude"),
    "date_of_birth": N_("Date of birth"),
    "person_name": N_("Person name"),
    "address": N_("Address"),
    "vn_citizen_id": N_("Vietnamese citizen ID"),
    "th_national_id": N_("Thai national ID"),
    "sg_nric": N_("Singapore NRIC/FIN"),
    "my_mykad": N_("Malaysian MyKad"),
    "id_nik": N_("Indonesian NIK"),
}

NOTE_MAX = 1000
REASON_MAX = 500


# ---------------------------------------------------------------------------------- progress


def progress_percent(rows_done: int, rows_total: int | None, status: str) -> int | None:
    """0–100 for the progress bar; None while the total is unknown (an indeterminate bar)."""
    if status == ScanStatus.SUCCEEDED:
        return 100
    if not rows_total:
        return None
    return max(0, min(100, int(rows_done * 100 / rows_total)))


# --------------------------------------------------------------------------- de-identification

# Who may hold the key of tokenised columns (受托方). The key reverses every token, so it goes to
# a party the holder answers for — itself — or to a verified data custodian (数据托管: a service
# firm whose role is custody, listed publicly by the exchange), whose trade is holding data on
# others' behalf. No other party (an exchange operator, a regulator, another enterprise) and no
# custodian that is not verified now (pending, rejected, suspended) is named a trustee; tokens a
# custodian already holds stay reversible by it. One refusal for every other id, so the answer
# never tells whether an id names some party.
DETOKENISE_MAX_PER_CALL = 1000


def trustee_refusal(*, own_party: bool, verified_custodian: bool) -> str | None:
    """Why a party may not be named trustee (a msgid with ``{trustee}``), or None if it may."""
    if own_party or verified_custodian:
        return None
    return N_(
        "{trustee} cannot hold the key: name your own organisation or a verified data custodian "
        "(a service firm whose role is custody) as the trustee."
    )


def check_token_count(count: int, limit: int = DETOKENISE_MAX_PER_CALL) -> None:
    """A detokenisation asks for 1 to ``limit`` values; ``InvalidInput`` otherwise."""
    if not 1 <= count <= limit:
        raise InvalidInput(
            N_("Send 1 to {limit} tokens at a time; this request has {count}."),
            field="tokens",
            code="token-count",
            limit=limit,
            count=count,
        )


# -------------------------------------------------------------------------------------- reviews


def check_review(decision: str, note: str, column: str, entity_type: str) -> tuple[str, str]:
    """The decision and the note, checked; ``InvalidInput`` saying what to fix."""
    if decision not in set(ReviewDecision):
        raise InvalidInput(N_("Choose to confirm or to dismiss the detection."), field="decision")
    if entity_type not in ENTITY_LABELS:
        raise InvalidInput(
            N_("Unknown entity type {entity_type}."),
            field="entity_type",
            entity_type=entity_type[:40],
        )
    if not column or len(column) > 255:
        raise InvalidInput(N_("Name the column of the detection."), field="column")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise InvalidInput(N_("A note has at most 1000 characters."), field="note")
    if decision == ReviewDecision.DISMISSED and not note:
        # A dismissal removes a finding from what the grade and later checks see: say why.
        raise InvalidInput(
            N_("Say why the detection is wrong (a note is required to dismiss)."), field="note"
        )
    return decision, note


def check_reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(N_("Give a reason (1–500 characters)."), field="reason")
    return reason


@dataclass(frozen=True)
class Review:
    """A decision as the report shows it."""

    column: str
    entity_type: str
    decision: str
    note: str
    decided_by: str
    decided_at: datetime
    version_number: int | None


@dataclass
class Detection:
    """One entity type found in one column, with the review decision on it if any."""

    entity_type: str
    match_ratio: float | None
    confidence: float | None
    sensitive: bool
    review: Review | None = None

    @property
    def dismissed(self) -> bool:
        return self.review is not None and self.review.decision == ReviewDecision.DISMISSED

    @property
    def confirmed(self) -> bool:
        return self.review is not None and self.review.decision == ReviewDecision.CONFIRMED


@dataclass
class ColumnView:
    """A column of the report with its detections and its sensitivity after review."""

    name: str
    detections: list[Detection]
    match_ratio: float
    confidence: float
    sensitive_as_scanned: bool
    distinct_values: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effective(self) -> list[Detection]:
        return [d for d in self.detections if not d.dismissed]

    @property
    def sensitive(self) -> bool:
        """Sensitive after review: a sensitive detection that nobody dismissed."""
        if not self.sensitive_as_scanned:
            return False
        return any(d.sensitive for d in self.effective)

    @property
    def has_pi(self) -> bool:
        return bool(self.effective)


@dataclass
class ReportView:
    """A stored report with the data set's review decisions applied (what the report page shows)."""

    columns: list[ColumnView]
    raw: Mapping[str, Any]

    @property
    def sensitive_columns(self) -> list[ColumnView]:
        return [c for c in self.columns if c.sensitive]

    @property
    def pi_columns(self) -> list[ColumnView]:
        return [c for c in self.columns if c.has_pi]

    @property
    def dismissed(self) -> list[tuple[ColumnView, Detection]]:
        return [(c, d) for c in self.columns for d in c.detections if d.dismissed]

    @property
    def pending(self) -> list[tuple[ColumnView, Detection]]:
        return [(c, d) for c in self.columns for d in c.detections if d.review is None]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def apply_reviews(
    report: Mapping[str, Any], reviews: Iterable[Review], sensitive_types: frozenset[str]
) -> ReportView:
    """The report's columns with each detection's review attached.

    ``report`` is the scan's JSON (``ScanReport.as_dict()``): ``columns`` of ``{name, types,
    sensitive, match_ratio, confidence, ...}``, optionally per-type ``ratios`` and
    ``confidences``. ``sensitive_types`` are the entity types that are sensitive personal
    information (PIPL art. 28), to tell which detection made a column sensitive.
    """
    by_key = {(r.column, r.entity_type): r for r in reviews}
    columns = []
    for entry in report.get("columns", []) or []:
        if not isinstance(entry, Mapping):
            continue
        name = str(entry.get("name", ""))
        types = [str(t) for t in entry.get("types", []) or []]
        ratios = entry.get("ratios") if isinstance(entry.get("ratios"), Mapping) else {}
        confidences = (
            entry.get("confidences") if isinstance(entry.get("confidences"), Mapping) else {}
        )
        ratio = _number(entry.get("match_ratio")) or 0.0
        confidence = _number(entry.get("confidence")) or 0.0
        detections = []
        for index, entity in enumerate(types):
            detections.append(
                Detection(
                    entity_type=entity,
                    match_ratio=_number(ratios.get(entity))
                    if ratios
                    else (ratio if index == 0 else None),
                    confidence=_number(confidences.get(entity))
                    if confidences
                    else (confidence if index == 0 else None),
                    sensitive=entity in sensitive_types,
                    review=by_key.get((name, entity)),
                )
            )
        known = {
            "name",
            "types",
            "sensitive",
            "match_ratio",
            "confidence",
            "distinct_values",
            "ratios",
            "confidences",
        }
        distinct = entry.get("distinct_values")
        columns.append(
            ColumnView(
                name=name,
                detections=detections,
                match_ratio=ratio,
                confidence=confidence,
                sensitive_as_scanned=bool(entry.get("sensitive")),
                distinct_values=int(distinct) if isinstance(distinct, int) else None,
                extra={k: v for k, v in entry.items() if k not in known},
            )
        )
    return ReportView(columns=columns, raw=report)
