"""Certificates: numbers (and malformed ones), validity capped by the right and authorisation,
expiry reminders, the status the verification page shows, and the canonical payload."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafactor.ledger import canonical_json
from datafactor.registry import (
    CERTIFICATE_FORMAT,
    CertificateNumber,
    CertificateStatus,
    InvalidCertificateNumber,
    InvalidRegistration,
    RegistrationType,
    RightNotInForce,
    RightsBook,
    RightStatus,
    Scope,
    Term,
    Track,
    add_years,
    certificate_bytes,
    certificate_payload,
    certificate_status,
    certificate_validity,
    chain_of_title,
    expiry_reminder_on,
    format_certificate_number,
    grant_holding,
    license,
    parse_certificate_number,
)

ON = date(2026, 3, 2)


# --- numbers ------------------------------------------------------------------------------------


def test_numbers_are_formatted_as_the_issue_says() -> None:
    assert format_certificate_number(2026, 123) == "GX-DR-2026-000123"
    assert format_certificate_number(2026, 999_999) == "GX-DR-2026-999999"


@pytest.mark.parametrize("serial", [0, -1, 1_000_000])
def test_serials_out_of_range_are_refused(serial: int) -> None:
    with pytest.raises(InvalidCertificateNumber):
        format_certificate_number(2026, serial)


def test_a_year_before_the_plan_is_refused() -> None:
    with pytest.raises(InvalidCertificateNumber):
        format_certificate_number(2019, 1)


@pytest.mark.parametrize(
    "typed",
    [
        "GX-DR-2026-000123",
        "  gx-dr-2026-000123 ",
        "ＧＸ－ＤＲ－２０２６－０００１２３",  # full-width, as typed with a Chinese input method
        "GX–DR—2026‑000123",  # en dash, em dash, non-breaking hyphen
        "GX DR 2026 000123",
    ],
)
def test_what_people_type_is_normalised(typed: str) -> None:
    number = parse_certificate_number(typed)
    assert number == CertificateNumber("GX-DR", 2026, 123)
    assert str(number) == "GX-DR-2026-000123"


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Enter a certificate number"),
        ("   ", "Enter a certificate number"),
        ("2026-000123", "starts with GX-DR-"),
        ("BJ-DR-2026-000123", "starts with GX-DR-"),
        ("GX-DR-26-000123", "four-digit year and a six-digit serial"),
        ("GX-DR-2026-123", "four-digit year and a six-digit serial"),
        ("GX-DR-2026-0001234", "four-digit year and a six-digit serial"),
        ("GX-DR-2026-00012A", "four-digit year and a six-digit serial"),
        ("GX-DR-2026-000123-1", "four-digit year and a six-digit serial"),
        ("GX-DR-2026-٠٠٠١٢٣", "four-digit year and a six-digit serial"),  # Arabic-Indic digits
        ("GX-DR-1999-000123", "the year 1999"),
        ("GX-DR-2026-000000", "start at 000001"),
        ("GX-DR-" + "9" * 500, "four-digit year and a six-digit serial"),
    ],
)
def test_malformed_numbers_are_refused_with_what_a_number_looks_like(typed: str, says: str) -> None:
    with pytest.raises(InvalidCertificateNumber) as exc:
        parse_certificate_number(typed)
    assert says in str(exc.value)
    assert exc.value.rule == "REG-CERT-NUMBER"
    assert exc.value.field == "number"
    assert exc.value.status == 422
    assert len(str(exc.value)) < 400  # long input is not echoed back in full


def test_a_number_from_the_future_is_refused_when_today_is_known() -> None:
    with pytest.raises(InvalidCertificateNumber, match="from 2023 to 2026"):
        parse_certificate_number("GX-DR-2027-000001", today=ON)


def test_a_non_string_is_refused_not_crashed_on() -> None:
    with pytest.raises(InvalidCertificateNumber):
        parse_certificate_number(None)  # type: ignore[arg-type]


@given(year=st.integers(2023, 9999), serial=st.integers(1, 999_999))
def test_format_and_parse_round_trip(year: int, serial: int) -> None:
    text = format_certificate_number(year, serial)
    assert parse_certificate_number(text) == CertificateNumber("GX-DR", year, serial)
    assert str(parse_certificate_number(text.lower())) == text


@given(st.text(max_size=40))
def test_parsing_never_crashes(text: str) -> None:
    try:
        number = parse_certificate_number(text)
    except InvalidCertificateNumber:
        return
    assert str(number).startswith("GX-DR-")


# --- validity -----------------------------------------------------------------------------------


def test_three_years_by_default_counted_as_the_civil_code_counts() -> None:
    validity = certificate_validity(
        RegistrationType.INITIAL, issued_on=ON, right_term=Term(date(2026, 1, 1))
    )
    assert validity.valid_from == ON
    assert validity.valid_until == date(2029, 3, 2)
    assert validity.capped_by == "type"
    assert validity.reminder_on == date(2029, 1, 31)  # 30 days ahead


def test_the_29th_of_february_ends_on_the_28th() -> None:
    assert add_years(date(2028, 2, 29), 3) == date(2031, 2, 28)
    assert add_years(date(2028, 2, 29), 4) == date(2032, 2, 29)


def test_validity_is_capped_by_the_right_and_the_authorisation() -> None:
    capped = certificate_validity(
        RegistrationType.LICENCE, issued_on=ON, right_term=Term(ON, date(2027, 3, 1))
    )
    assert capped.valid_until == date(2027, 3, 1)
    assert capped.capped_by == "right"
    by_authorisation = certificate_validity(
        RegistrationType.INITIAL,
        issued_on=ON,
        right_term=Term(date(2026, 1, 1), date(2030, 1, 1)),
        authorisation_end=date(2028, 6, 30),
    )
    assert by_authorisation.valid_until == date(2028, 6, 30)
    assert by_authorisation.capped_by == "authorisation"


def test_a_short_validity_is_reminded_on_the_day_of_issue() -> None:
    validity = certificate_validity(
        RegistrationType.LICENCE, issued_on=ON, right_term=Term(ON, date(2026, 3, 20))
    )
    assert validity.reminder_on == ON
    assert expiry_reminder_on(date(2026, 12, 31)) == date(2026, 12, 1)


def test_an_expired_parent_right_gets_no_certificate() -> None:
    with pytest.raises(RightNotInForce) as exc:
        certificate_validity(
            RegistrationType.LICENCE,
            issued_on=ON,
            right_term=Term(date(2025, 1, 1), date(2026, 2, 1)),
            right_id="P1",
        )
    assert exc.value.rule == "REG-CERT-VALIDITY"
    assert "renew the right first" in str(exc.value)
    with pytest.raises(RightNotInForce, match="authorisation ended"):
        certificate_validity(
            RegistrationType.INITIAL,
            issued_on=ON,
            right_term=Term(date(2026, 1, 1)),
            authorisation_end=date(2026, 3, 1),
        )


def test_types_without_a_certificate_are_refused() -> None:
    with pytest.raises(InvalidRegistration):
        certificate_validity(
            RegistrationType.PLEDGE, issued_on=ON, right_term=Term(date(2026, 1, 1))
        )


# --- status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("right_status", "today", "superseded", "shown"),
    [
        (RightStatus.ACTIVE, date(2027, 1, 1), False, CertificateStatus.ACTIVE),
        (RightStatus.ACTIVE, date(2029, 3, 3), False, CertificateStatus.EXPIRED),
        (RightStatus.EXPIRED, date(2027, 1, 1), False, CertificateStatus.EXPIRED),
        (RightStatus.PLEDGED, date(2027, 1, 1), False, CertificateStatus.PLEDGED),
        (RightStatus.SUSPENDED, date(2027, 1, 1), False, CertificateStatus.SUSPENDED),
        (RightStatus.REVOKED, date(2030, 1, 1), False, CertificateStatus.REVOKED),
        (RightStatus.CANCELLED, date(2027, 1, 1), False, CertificateStatus.CANCELLED),
        (RightStatus.TRANSFERRED, date(2027, 1, 1), False, CertificateStatus.TRANSFERRED),
        (RightStatus.ACTIVE, date(2027, 1, 1), True, CertificateStatus.SUPERSEDED),
    ],
)
def test_the_status_shown_on_the_verification_page(
    right_status: RightStatus, today: date, superseded: bool, shown: CertificateStatus
) -> None:
    status = certificate_status(
        valid_until=date(2029, 3, 2), right_status=right_status, today=today, superseded=superseded
    )
    assert status is shown


# --- payload ------------------------------------------------------------------------------------


def licensed() -> RightsBook:
    book = RightsBook()
    book = grant_holding(
        book,
        right_id="H1",
        holder_id="party-7",
        asset_id="asset-3",
        scope=Scope(),
        term=Term(date(2026, 1, 1)),
        on=ON,
    ).apply(book)
    return license(
        book,
        "H1",
        right_id="P1",
        licensor_id="party-7",
        licensee_id="party-9",
        scope=Scope(purposes={"research"}, regions={"450000"}, delivery_modes={"sandbox"}),
        term=Term(ON, date(2028, 3, 1)),
        on=ON,
    ).apply(book)


def payload() -> dict[str, object]:
    book = licensed()
    right = book["P1"]
    validity = certificate_validity(RegistrationType.LICENCE, issued_on=ON, right_term=right.term)
    return certificate_payload(
        number="gx-dr-2026-000123",
        registration_id="app-42",
        registration_type=RegistrationType.LICENCE,
        track=Track.STANDARD,
        right=right,
        chain=chain_of_title("P1", book),
        validity=validity,
        issued_at=datetime(2026, 3, 2, 2, 30, tzinfo=UTC),
        issuer="datafactor.local/registry",
        asset_fingerprint="sha256:" + "ab" * 32,
    )


def test_the_payload_is_canonical_json_with_the_whole_title() -> None:
    data = payload()
    assert data["format"] == CERTIFICATE_FORMAT
    assert data["number"] == "GX-DR-2026-000123"
    assert data["issued_at"] == "2026-03-02T02:30:00.000000Z"
    assert data["validity"] == {"from": "2026-03-02", "until": "2028-03-01", "capped_by": "right"}
    right = data["right"]
    assert isinstance(right, dict)
    assert right["kind"] == "processing_use" and right["parent_id"] == "H1"
    assert right["scope"]["purposes"] == ["research"]
    chain = data["chain_of_title"]
    assert isinstance(chain, dict)
    assert [link["id"] for link in chain["links"]] == ["P1", "H1"]
    raw = certificate_bytes(data)
    assert raw == canonical_json(data)
    assert json.loads(raw) == data
    assert payload() == data  # deterministic


def test_the_payload_holds_ids_not_names() -> None:
    text = certificate_bytes(payload()).decode()
    assert "party-7" in text and "party-9" in text
    assert "name" not in text


def test_a_payload_with_a_malformed_number_or_the_wrong_chain_is_refused() -> None:
    book = licensed()
    right = book["P1"]
    validity = certificate_validity(RegistrationType.LICENCE, issued_on=ON, right_term=right.term)
    common = {
        "registration_id": "app-42",
        "registration_type": RegistrationType.LICENCE,
        "track": Track.STANDARD,
        "right": right,
        "validity": validity,
        "issued_at": datetime(2026, 3, 2, tzinfo=UTC),
        "issuer": "x",
    }
    with pytest.raises(InvalidCertificateNumber):
        certificate_payload(number="GX-2026-1", chain=chain_of_title("P1", book), **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidRegistration, match="chain of title given is for right H1"):
        certificate_payload(number="GX-DR-2026-000001", chain=chain_of_title("H1", book), **common)  # type: ignore[arg-type]


def test_values_json_cannot_carry_are_refused() -> None:
    with pytest.raises(InvalidRegistration, match="canonical JSON"):
        certificate_bytes({"x": float("nan")})
