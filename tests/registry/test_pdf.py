"""Certificate PDFs: what a holder prints and a stranger scans.

The drawing is checked without a database (text, QR code, status marks, fonts, byte-identical
renders); the use case and the route on SQLite and PostgreSQL (who may print which certificate,
the status on the day, problem+json refusals).
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
import segno
from factories import bearer
from pypdf import PdfReader
from registry_support import LATER, TODAY, initial, new_asset, principal, scanned_version

from datafactor.errors import Forbidden, NotFound
from datafactor.registry import Action, InvalidCertificateNumber
from datafactor.registry import pdf as certificate_pdf
from datafactor.registry import services as registry
from datafactor.registry.api import registry_today
from datafactor.registry.vocabulary import (
    CERTIFICATE_STATUS_LABELS,
    CertificateStatus,
    RightKind,
)

NUMBER = "GX-DR-2026-000001"
URL = f"https://dr.example.cn/verify/{NUMBER}"
NOT_IN_FORCE = "This certificate is not in force"


def sheet(**changes: object) -> certificate_pdf.CertificateSheet:
    base = certificate_pdf.CertificateSheet(
        number=NUMBER,
        status=CertificateStatus.ACTIVE,
        today=date(2026, 4, 20),
        right_kind=RightKind.HOLDING,
        right_id="r-1",
        holder_id="p-1",
        holder_name="南宁示例数据有限公司",
        holder_uscc="91450100MA5L000000",
        asset_id="a-1",
        asset_name="南宁供电量数据",
        asset_name_en="Nanning power supply data",
        fingerprint="ab" * 32,
        scope={
            "purposes": ["industry"],
            "fields": None,
            "regions": ["450000"],
            "delivery_modes": ["api"],
        },
        term_start=date(2026, 4, 20),
        term_end=None,
        valid_from=date(2026, 4, 20),
        valid_until=date(2029, 4, 20),
        issued_at=datetime(2026, 4, 20, 1, 2, 3, 456789, tzinfo=UTC),
        issuer="dr.example.cn/log",
        registration_id="app-1",
        ledger_index=7,
        leaf_hash="cd" * 32,
        signature="c2lnbmF0dXJl" * 7 + "==",
        key="datafactor-registry+0a1b2c3d+AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
        signature_valid=True,
        verify_url=URL,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def read(data: bytes) -> PdfReader:
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    return PdfReader(io.BytesIO(data))


def text_of(data: bytes) -> str:
    reader = read(data)
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def drawn_qr(data: bytes) -> list[list[bool]]:
    """The QR matrix as drawn: the form XObject ``qr`` holds one unit square per dark module
    (``x y w 1 re``, rows of runs), y pointing up."""
    page = read(data).pages[0]
    forms = page["/Resources"]["/XObject"]
    [name] = [k for k in forms if "qr" in k.lower()]
    form = forms[name].get_object()
    n = int(form["/BBox"][2])
    grid = [[False] * n for _ in range(n)]
    stream = form.get_data().decode("latin-1")
    for x, y, w, h in re.findall(r"(\d+) (\d+) (\d+) (\d+) re", stream):
        assert int(h) == 1
        for col in range(int(x), int(x) + int(w)):
            grid[n - 1 - int(y)][col] = True
    return grid


# ------------------------------------------------------------------------- drawing, no database


def test_the_page_says_what_the_certificate_is_and_where_to_verify_it():
    text = text_of(certificate_pdf.render_certificate(sheet()))
    for expected in (
        "数据产权登记证书",
        "Data Property Registration Certificate",
        NUMBER,
        URL,
        "Data resource holding right",
        "南宁示例数据有限公司",
        "91450100MA5L000000",
        "南宁供电量数据",
        "Nanning power supply data",
        "ab" * 32,
        "cd" * 32,
        "2029-04-20",
        "entry #7",
        "datafactor-registry+0a1b2c3d",
        "industry development",
    ):
        assert expected in text, expected
    assert NOT_IN_FORCE not in text


def test_the_qr_code_drawn_is_the_verification_url():
    drawn = drawn_qr(certificate_pdf.render_certificate(sheet()))
    expected = segno.make(URL, error="m", micro=False, boost_error=False)
    assert drawn == [[bool(v) for v in row] for row in expected.matrix]
    # Another URL gives another code: the check above is not vacuous.
    other = certificate_pdf.render_certificate(sheet(verify_url=URL.replace("01", "02")))
    assert drawn_qr(other) != drawn


def test_same_certificate_same_bytes_and_dates_from_the_issue_time():
    first = certificate_pdf.render_certificate(sheet())
    assert certificate_pdf.render_certificate(sheet()) == first
    info = read(first).metadata
    assert info is not None and info["/CreationDate"].startswith("D:20260420010203")
    other = certificate_pdf.render_certificate(sheet(number="GX-DR-2026-000002"))
    assert read(other).trailer["/ID"] != read(first).trailer["/ID"]


@pytest.mark.parametrize(
    "status",
    [
        CertificateStatus.SUSPENDED,
        CertificateStatus.REVOKED,
        CertificateStatus.EXPIRED,
        CertificateStatus.SUPERSEDED,
    ],
)
def test_a_certificate_not_in_force_is_marked(status):
    text = text_of(certificate_pdf.render_certificate(sheet(status=status)))
    assert NOT_IN_FORCE in text
    assert CERTIFICATE_STATUS_LABELS[status] in text


def test_a_pledged_certificate_is_in_force_and_says_pledged():
    text = text_of(certificate_pdf.render_certificate(sheet(status=CertificateStatus.PLEDGED)))
    assert CERTIFICATE_STATUS_LABELS[CertificateStatus.PLEDGED] in text
    assert NOT_IN_FORCE not in text


def test_a_signature_that_does_not_verify_is_flagged():
    text = text_of(certificate_pdf.render_certificate(sheet(signature_valid=False)))
    assert "The signature does not verify" in text


def _font_files(data: bytes) -> tuple[set[str], bool]:
    page = read(data).pages[0]
    names, embedded = set(), False
    for ref in page["/Resources"]["/Font"].values():
        font = ref.get_object()
        names.add(str(font["/BaseFont"]))
        for descendant in font.get("/DescendantFonts", []):
            descriptor = descendant.get_object().get("/FontDescriptor")
            if descriptor is not None and "/FontFile2" in descriptor.get_object():
                embedded = True
        descriptor = font.get("/FontDescriptor")
        if descriptor is not None and "/FontFile2" in descriptor.get_object():
            embedded = True
    return names, embedded


def test_chinese_uses_the_system_font_embedded_or_the_builtin_cid_font():
    font = certificate_pdf.cjk_font()
    data = certificate_pdf.render_certificate(sheet(), font=font)
    _, embedded = _font_files(data)
    if certificate_pdf.find_cjk_font() is not None:  # make install puts WenQuanYi here
        assert font.embedded and embedded
    else:
        assert font.name == "STSong-Light" and not embedded
    assert "数据产权登记证书" in text_of(data)


def test_without_a_system_font_the_builtin_cid_font_still_renders_chinese(tmp_path):
    broken = tmp_path / "wqy-microhei.ttc"
    broken.write_bytes(b"not a font")
    font = certificate_pdf.cjk_font(broken)
    assert font.name == "STSong-Light" and not font.embedded
    data = certificate_pdf.render_certificate(sheet(), font=font)
    names, embedded = _font_files(data)
    assert any("STSong-Light" in n for n in names) and not embedded
    text = text_of(data)
    assert "数据产权登记证书" in text and "南宁供电量数据" in text and NUMBER in text


def test_the_font_is_found_under_the_font_folders_best_first(tmp_path):
    (tmp_path / "a" / "truetype" / "wqy").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    zen = tmp_path / "b" / "wqy-zenhei.ttc"
    zen.write_bytes(b"x")
    assert certificate_pdf.find_cjk_font([tmp_path / "a", tmp_path / "b"]) == (zen, 0)
    micro = tmp_path / "a" / "truetype" / "wqy" / "wqy-microhei.ttc"
    micro.write_bytes(b"x")
    assert certificate_pdf.find_cjk_font([tmp_path / "a", tmp_path / "b"]) == (micro, 0)
    assert certificate_pdf.find_cjk_font([tmp_path / "missing"]) is None


def test_long_values_wrap_within_the_width():
    font = certificate_pdf.cjk_font()
    lines = certificate_pdf.wrap("数据" * 80 + " " + "x" * 300, font.name, 10, 200)
    assert len(lines) > 3
    assert "".join(lines).replace(" ", "") == ("数据" * 80 + "x" * 300)


# ------------------------------------------------------------------------- the use case and route


@pytest.fixture
def certified(db, settings, enterprise, operator):
    """A holding right certified on LATER; its certificate number."""
    issuer = registry.issuer_for(settings)
    who, registrar = principal(db, enterprise), principal(db, operator)
    asset_id = new_asset(db, who, scanned_version(db, settings, who))
    with db.write() as s:
        app_id = registry.submit_application(
            s, who, initial(db, asset_id), issuer=issuer, today=TODAY
        ).id
    for action, day in ((Action.APPROVE_TO_NOTICE, TODAY), (Action.CLOSE_NOTICE, LATER)):
        with db.write() as s:
            registry.act(s, registrar, app_id, action, issuer=issuer, today=day)
    with db.read() as s:
        rows, _ = registry.list_certificates(s, None, limit=1, offset=0, today=LATER)
    return rows[0].number


def test_holder_and_registrar_print_it_others_are_refused(
    db, certified, enterprise, other_enterprise, operator, regulator
):
    with db.read() as s:
        mine = certificate_pdf.certificate_pdf(
            s, principal(db, enterprise), certified, base_url="https://dr.example.cn/", today=LATER
        )
        text = text_of(mine)
        assert certified in text and f"https://dr.example.cn/verify/{certified}" in text
        assert "Nanning power supply data" in text
        assert drawn_qr(mine) == [
            [bool(v) for v in row]
            for row in segno.make(
                f"https://dr.example.cn/verify/{certified}", error="m", boost_error=False
            ).matrix
        ]
        # The holder's name as registered, and the leaf hash of the certificate's ledger entry.
        from datafactor import ledger
        from datafactor.registry.models import RegistryCertificate

        row = s.query(RegistryCertificate).filter_by(number=certified).one()
        assert ledger.get_entry(s, row.ledger_index).leaf_hash.hex() in text
        assert f"entry #{row.ledger_index}" in text
        for reader in (operator, regulator):
            printed = certificate_pdf.certificate_pdf(
                s, principal(db, reader), certified, base_url="https://x.cn", today=LATER
            )
            assert certified in text_of(printed)
        with pytest.raises(Forbidden):
            certificate_pdf.certificate_pdf(
                s, principal(db, other_enterprise), certified, base_url="https://x.cn", today=LATER
            )
        with pytest.raises(NotFound) as unknown:
            certificate_pdf.certificate_pdf(
                s, principal(db, enterprise), "GX-DR-2026-000999", base_url="x", today=LATER
            )
        assert unknown.value.code == "registry-unknown-certificate"
        with pytest.raises(InvalidCertificateNumber):
            certificate_pdf.certificate_pdf(
                s, principal(db, enterprise), "GX-1", base_url="x", today=LATER
            )


def test_the_status_printed_is_the_one_on_the_day(db, certified, enterprise):
    with db.read() as s:
        who = principal(db, enterprise)
        row = registry.verify_certificate(s, certified, today=LATER).certificate
        after = row.valid_until + timedelta(days=1)
        late = certificate_pdf.certificate_pdf(
            s, who, certified, base_url="https://x.cn", today=after
        )
        on_time = certificate_pdf.certificate_pdf(
            s, who, certified, base_url="https://x.cn", today=LATER
        )
    assert NOT_IN_FORCE in text_of(late) and after.isoformat() in text_of(late)
    assert NOT_IN_FORCE not in text_of(on_time)
    with db.read() as s:
        again = certificate_pdf.certificate_pdf(
            s, who, certified, base_url="https://x.cn", today=LATER
        )
    assert again == on_time


@pytest.fixture
def clock(app):
    app.dependency_overrides[registry_today] = lambda: LATER
    yield
    app.dependency_overrides.pop(registry_today, None)


def test_the_route_serves_the_holder_and_refuses_others_as_problem_json(
    app, client, clock, certified, enterprise, other_enterprise
):
    url = f"/api/v1/registry/certificates/{certified.lower()}/pdf"
    r = client.get(url, headers=bearer(client, enterprise))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == f'inline; filename="{certified}.pdf"'
    # No public address configured: the QR code points where the request came in.
    assert f"http://testserver/verify/{certified}" in text_of(r.content)

    app.state.settings = app.state.settings.model_copy(
        update={"public_base_url": "https://dr.example.cn/registry"}
    )
    r = client.get(url, headers=bearer(client, enterprise))
    assert f"https://dr.example.cn/registry/verify/{certified}" in text_of(r.content)

    r = client.get(url, headers=bearer(client, other_enterprise))
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    r = client.get(
        "/api/v1/registry/certificates/GX-DR-2026-000999/pdf", headers=bearer(client, enterprise)
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/registry-unknown-certificate")
    assert client.get(url).status_code == 401
