"""Registration certificates (登记证书): numbers, validity, expiry reminders, status, payload.

A certified registration of a type that issues certificates gets a number
``GX-DR-<year>-<serial>`` (prefix from the rules file; a four-digit year and a six-digit serial,
e.g. ``GX-DR-2026-000123``). ``parse_certificate_number`` accepts what a person types or scans
(surrounding spaces, lower case, full-width characters and other dashes are normalised) and
refuses anything else with a message saying what a number looks like.

Validity is per registration type (3 years by default, Beijing practice) counted as the Civil
Code counts years (art. 202: the corresponding day of the last year is the last day; no such day
— 29 February — gives the month's last day), capped by the certified right's term and by an
authorisation's term (a public-data operation authorisation), whichever ends first; the holder is
reminded 30 days ahead (rules file).

``certificate_payload`` builds the canonical certificate: a JSON object with the number, the
registration, the right (kind, origin, holder and asset ids, scope, term, parent and bases), the
asset's fingerprint, the validity and the chain of title, checked to be RFC 8785-serialisable
with the ledger's ``canonical_json``. ``certificate_bytes`` are what the services sign (Ed25519)
and append to the ledger as the ``registry.certificate.issued`` event's payload; the certificate
is the entry of the receipt a holder exports. A ledger entry is public forever, so the payload
holds party and object ids only — never names or identifiers of people.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from datafactor.errors import N_
from datafactor.ledger.domain import canonical_json
from datafactor.registry.errors import (
    InvalidCertificateNumber,
    InvalidRegistration,
    RightNotInForce,
)
from datafactor.registry.rights import ChainOfTitle, Right, Term
from datafactor.registry.rulebook import RegistryRules, load_registry_rules
from datafactor.registry.vocabulary import (
    CertificateStatus,
    RegistrationType,
    RightStatus,
    Track,
)

CERTIFICATE_FORMAT: Final = "datafactor-registry-certificate/v1"
CERTIFICATE_EVENT_KIND: Final = "registry.certificate.issued"
SERIAL_DIGITS: Final = 6
MAX_SERIAL: Final = 10**SERIAL_DIGITS - 1
# Longer input is not a number; it is not echoed back in full either.
_MAX_INPUT: Final = 64
_SHOWN: Final = 32
_YEAR_SERIAL: Final = re.compile(r"([0-9]{4})-([0-9]{" + str(SERIAL_DIGITS) + "})")
_DASHES: Final = re.compile("[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d_ ]")

MSG_NUMBER_EMPTY: Final = N_("Enter a certificate number, e.g. {example} (rule {rule}).")
MSG_NUMBER_PREFIX: Final = N_(
    "A certificate number starts with {prefix}-, e.g. {example}; '{number}' does not (rule {rule})."
)
MSG_NUMBER_SHAPE: Final = N_(
    "A certificate number is {prefix}- followed by a four-digit year and a six-digit serial "
    "number, e.g. {example}; '{number}' is not (rule {rule})."
)
MSG_NUMBER_YEAR: Final = N_(
    "'{number}' names the year {year}, but certificates were issued from {first} to {last} "
    "only. Check the year (rule {rule})."
)
MSG_NUMBER_SERIAL: Final = N_(
    "'{number}' has serial number 000000; serial numbers start at 000001 (rule {rule})."
)
MSG_SERIAL_RANGE: Final = N_(
    "A certificate serial number is 1 to {max} within a year (rule {rule})."
)
MSG_NO_CERTIFICATE: Final = N_("A {type} registration issues no certificate (rule {rule}).")
MSG_RIGHT_NOT_IN_TERM: Final = N_(
    "Right {right}'s term ({start} – {end}) does not cover {day}, the day the certificate would "
    "be issued: renew the right first (rule {rule})."
)
MSG_AUTHORISATION_OVER: Final = N_(
    "The authorisation ended on {end}, before {day}: a certificate cannot be issued under it "
    "(rule {rule})."
)
MSG_PAYLOAD: Final = N_(
    "The certificate cannot be written as canonical JSON: {reason} (rule {rule})."
)
MSG_CHAIN_MISMATCH: Final = N_(
    "The chain of title given is for right {chain}, not for right {right} (rule {rule})."
)


# --- numbers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class CertificateNumber:
    """A certificate number: prefix, year of issue, serial within the year."""

    prefix: str
    year: int
    serial: int

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year:04d}-{self.serial:0{SERIAL_DIGITS}d}"


def _example(rules: RegistryRules) -> str:
    return f"{rules.certificate_prefix}-2026-000123"


def format_certificate_number(year: int, serial: int, *, rules: RegistryRules | None = None) -> str:
    """``GX-DR-2026-000123`` for year 2026, serial 123 (refuses a serial out of 1…999999)."""
    rules = rules or load_registry_rules()
    rule = rules.rule_id("certificate_number")
    if isinstance(serial, bool) or not isinstance(serial, int) or not 1 <= serial <= MAX_SERIAL:
        raise InvalidCertificateNumber(MSG_SERIAL_RANGE, rule=rule, field="serial", max=MAX_SERIAL)
    if (
        isinstance(year, bool)
        or not isinstance(year, int)
        or not (rules.first_certificate_year <= year <= 9999)
    ):
        raise InvalidCertificateNumber(
            MSG_NUMBER_YEAR,
            rule=rule,
            field="year",
            number=f"{rules.certificate_prefix}-{year}-{serial:06d}",
            year=year,
            first=rules.first_certificate_year,
            last=9999,
        )
    return str(CertificateNumber(rules.certificate_prefix, year, serial))


def normalise_certificate_number(text: str) -> str:
    """What a person typed, normalised: NFKC (full-width to ASCII), trimmed, upper case, every
    kind of dash (and a space or underscore between parts) as ``-``."""
    folded = unicodedata.normalize("NFKC", text).strip().upper()
    return _DASHES.sub("-", folded)


def parse_certificate_number(
    text: str, *, today: date | None = None, rules: RegistryRules | None = None
) -> CertificateNumber:
    """Parse and check a certificate number; ``InvalidCertificateNumber`` says what is wrong.

    With ``today``, a year after this one is refused too (no certificate is issued in the future).
    """
    rules = rules or load_registry_rules()
    rule = rules.rule_id("certificate_number")
    prefix, example = rules.certificate_prefix, _example(rules)
    raw = text if isinstance(text, str) else ""
    number = normalise_certificate_number(raw[: _MAX_INPUT * 2])
    shown = number if len(number) <= _SHOWN else number[:_SHOWN] + "…"
    if not number:
        raise InvalidCertificateNumber(MSG_NUMBER_EMPTY, rule=rule, field="number", example=example)
    if not number.startswith(prefix + "-"):
        raise InvalidCertificateNumber(
            MSG_NUMBER_PREFIX,
            rule=rule,
            field="number",
            prefix=prefix,
            example=example,
            number=shown,
        )
    rest = number[len(prefix) + 1 :]
    match = _YEAR_SERIAL.fullmatch(rest)
    if len(number) > _MAX_INPUT or match is None:
        raise InvalidCertificateNumber(
            MSG_NUMBER_SHAPE,
            rule=rule,
            field="number",
            prefix=prefix,
            example=example,
            number=shown,
        )
    year, serial = int(match.group(1)), int(match.group(2))
    last = today.year if today is not None else 9999
    if not rules.first_certificate_year <= year <= last:
        raise InvalidCertificateNumber(
            MSG_NUMBER_YEAR,
            rule=rule,
            field="number",
            number=shown,
            year=year,
            first=rules.first_certificate_year,
            last=last,
        )
    if serial == 0:
        raise InvalidCertificateNumber(MSG_NUMBER_SERIAL, rule=rule, field="number", number=shown)
    return CertificateNumber(prefix, year, serial)


# --- validity -----------------------------------------------------------------------------------


def add_years(day: date, years: int) -> date:
    """The corresponding day ``years`` later; 29 February becomes 28 February (Civil Code
    art. 202: no corresponding day → the last day of the month)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True, slots=True)
class Validity:
    """A certificate's validity: first and last day, what capped it, and the reminder day."""

    valid_from: date
    valid_until: date
    capped_by: str  # "type" (the type's period), "right" (its term), "authorisation"
    reminder_on: date

    def as_dict(self) -> dict[str, str]:
        return {
            "from": self.valid_from.isoformat(),
            "until": self.valid_until.isoformat(),
            "capped_by": self.capped_by,
            "reminder_on": self.reminder_on.isoformat(),
        }


def expiry_reminder_on(
    valid_until: date, *, issued_on: date | None = None, rules: RegistryRules | None = None
) -> date:
    """The day the holder is reminded: ``reminder_days_ahead`` (30) days before the last valid
    day — or the issue day, when the certificate is valid for less than that."""
    rules = rules or load_registry_rules()
    reminder = valid_until - timedelta(days=rules.reminder_days)
    return max(reminder, issued_on) if issued_on is not None else reminder


def certificate_validity(
    registration_type: RegistrationType,
    *,
    issued_on: date,
    right_term: Term,
    authorisation_end: date | None = None,
    right_id: str = "",
    rules: RegistryRules | None = None,
) -> Validity:
    """From ``issued_on`` for the type's years, capped by the right's term and an authorisation.

    Refused for a type that issues no certificate, when the right's term does not cover the issue
    day, or when the authorisation has already ended.
    """
    rules = rules or load_registry_rules()
    type_rules = rules.type_rules(registration_type)
    rule = rules.rule_id("certificate_validity")
    if not type_rules.certificate:
        raise InvalidRegistration(
            MSG_NO_CERTIFICATE, rule=rule, field="type", type=registration_type.value
        )
    if not right_term.covers(issued_on):
        raise RightNotInForce(
            MSG_RIGHT_NOT_IN_TERM,
            rule=rule,
            field="right",
            right=right_id,
            start=right_term.start.isoformat(),
            end="…" if right_term.end is None else right_term.end.isoformat(),
            day=issued_on.isoformat(),
        )
    if authorisation_end is not None and authorisation_end < issued_on:
        raise RightNotInForce(
            MSG_AUTHORISATION_OVER,
            rule=rule,
            field="authorisation",
            end=authorisation_end.isoformat(),
            day=issued_on.isoformat(),
        )
    candidates = [(add_years(issued_on, type_rules.validity_years), "type")]
    if right_term.end is not None:
        candidates.append((right_term.end, "right"))
    if authorisation_end is not None:
        candidates.append((authorisation_end, "authorisation"))
    # Ties go to the first listed: the type's period is the default explanation.
    until, capped_by = min(candidates, key=lambda c: c[0])
    return Validity(
        issued_on,
        until,
        capped_by,
        expiry_reminder_on(until, issued_on=issued_on, rules=rules),
    )


def certificate_status(
    *,
    valid_until: date,
    right_status: RightStatus,
    today: date,
    superseded: bool = False,
) -> CertificateStatus:
    """What the verification page shows: the right's fate first (revoked, cancelled,
    transferred, superseded by a newer certificate, suspended), then expiry, then pledged or
    active."""
    fate = {
        RightStatus.REVOKED: CertificateStatus.REVOKED,
        RightStatus.CANCELLED: CertificateStatus.CANCELLED,
        RightStatus.TRANSFERRED: CertificateStatus.TRANSFERRED,
    }
    if right_status in fate:
        return fate[right_status]
    if superseded:
        return CertificateStatus.SUPERSEDED
    if right_status is RightStatus.SUSPENDED:
        return CertificateStatus.SUSPENDED
    if right_status is RightStatus.EXPIRED or today > valid_until:
        return CertificateStatus.EXPIRED
    if right_status is RightStatus.PLEDGED:
        return CertificateStatus.PLEDGED
    return CertificateStatus.ACTIVE


# --- the payload --------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def certificate_payload(
    *,
    number: str,
    registration_id: str,
    registration_type: RegistrationType,
    track: Track,
    right: Right,
    chain: ChainOfTitle,
    validity: Validity,
    issued_at: datetime,
    issuer: str,
    asset_fingerprint: str | None = None,
    rules: RegistryRules | None = None,
) -> dict[str, Any]:
    """The canonical certificate, a JSON object ready for RFC 8785 (see the module docstring).

    ``issuer`` names the registration authority (e.g. the ledger origin); ``chain`` must be the
    chain of title of ``right``. Party and asset ids only: the ledger is public.
    """
    rules = rules or load_registry_rules()
    parsed = parse_certificate_number(number, rules=rules)
    if chain.right.id != right.id:
        raise InvalidRegistration(
            MSG_CHAIN_MISMATCH,
            rule=rules.rule_id("chain_of_title"),
            field="chain",
            chain=chain.right.id,
            right=right.id,
        )
    payload: dict[str, Any] = {
        "format": CERTIFICATE_FORMAT,
        "number": str(parsed),
        "issuer": issuer,
        "issued_at": _stamp(issued_at),
        "registration": {
            "id": registration_id,
            "type": registration_type.value,
            "track": track.value,
        },
        "right": {
            "id": right.id,
            "kind": right.kind.value,
            "origin": right.origin.value,
            "holder_id": right.holder_id,
            "asset_id": right.asset_id,
            "scope": right.scope.as_dict(),
            "term": right.term.as_dict(),
            "parent_id": right.parent_id,
            "basis_ids": sorted(right.basis_ids),
        },
        "asset": {"id": right.asset_id, "fingerprint": asset_fingerprint},
        "validity": {
            "from": validity.valid_from.isoformat(),
            "until": validity.valid_until.isoformat(),
            "capped_by": validity.capped_by,
        },
        "chain_of_title": chain.as_dict(),
        "rules_version": rules.version,
    }
    certificate_bytes(payload, rules=rules)
    return payload


def certificate_bytes(payload: Mapping[str, Any], *, rules: RegistryRules | None = None) -> bytes:
    """The RFC 8785 canonical bytes of a certificate payload: what is signed and logged."""
    try:
        return canonical_json(payload)
    except (TypeError, ValueError) as exc:
        rules = rules or load_registry_rules()
        raise InvalidRegistration(
            MSG_PAYLOAD, rule=rules.rule_id("certificate_number"), reason=str(exc)
        ) from exc
