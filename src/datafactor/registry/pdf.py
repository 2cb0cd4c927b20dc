"""Certificate PDFs: one A4 page a holder can print, with a QR code to the public verification page.

``certificate_pdf`` is the use case (who may render which certificate, and the facts the page
shows); ``render_certificate`` draws a ``CertificateSheet`` and knows nothing of the database.
The certificate is a bilingual document by nature — like the paper certificates registries issue,
it carries Chinese and English on its face whatever the reader's UI language — so its field labels
are fixed ``(zh, en)`` pairs here rather than gettext msgids; the values that come from the
registry's vocabulary (right kind, status) are its msgids, rendered through both catalogues.

Nothing is fetched at run time. Chinese text is drawn with a TrueType CJK font found on the machine
(``find_cjk_font``: WenQuanYi Micro Hei, which ``make install`` installs with ``fonts-wqy-microhei``,
and a few others, looked up under the usual font folders) and embedded as a subset; without one,
reportlab's built-in CID font STSong-Light is used, which every PDF reader in China resolves
without embedding. The QR code (segno) is drawn as vector modules in a form XObject named ``qr``,
one unit per module, so the page stays sharp when printed and the drawn matrix can be checked.

The output is deterministic: reportlab's invariant mode, the creation date and the document ID
taken from the certificate's issue time and number, so the same certificate rendered on the same
day gives the same bytes (a holder can compare two copies). The status printed is the one on the
rendering day; a certificate that is not in force carries a red banner and a watermark saying so.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import segno
from reportlab.lib.colors import Color, HexColor
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy.orm import Session

from datafactor import identity, ledger
from datafactor.db import CHINA
from datafactor.errors import N_, DomainError, Forbidden
from datafactor.permissions import Permission, Principal
from datafactor.registry import services
from datafactor.registry.models import RegistryAsset
from datafactor.registry.rulebook import RegistryRules, load_registry_rules
from datafactor.registry.vocabulary import (
    CERTIFICATE_STATUS_LABELS,
    RIGHT_KIND_LABELS,
    CertificateStatus,
    RightKind,
)

MSG_NOT_HOLDER: Final = N_("Only the holder of a certificate, or a registrar, can print it.")

IN_FORCE: Final = frozenset({CertificateStatus.ACTIVE, CertificateStatus.PLEDGED})
QR_FORM: Final = "qr"
QR_BORDER: Final = 4  # the quiet zone ISO/IEC 18004 asks for, in modules
QR_ERROR: Final = "m"

# TrueType CJK fonts reportlab can embed (glyf outlines; the CFF-based Noto/Source Han .otc/.otf
# cannot be), best first, with the face index inside a collection.
CJK_FONT_FILES: Final[tuple[tuple[str, int], ...]] = (
    ("wqy-microhei.ttc", 0),  # Debian/Ubuntu fonts-wqy-microhei
    ("wqy-zenhei.ttc", 0),  # fonts-wqy-zenhei
    ("NotoSansSC-Regular.ttf", 0),
    ("simhei.ttf", 0),
    ("simsun.ttc", 0),
    ("msyh.ttc", 0),
)
FALLBACK_CID_FONT: Final = "STSong-Light"
MONO_FONT: Final = "Courier"

INK: Final = HexColor("#1a1a1a")
MUTED: Final = HexColor("#555555")
FRAME: Final = HexColor("#8b1a1a")
ALERT: Final = HexColor("#b00020")
WATERMARK: Final = Color(0.69, 0.0, 0.13, alpha=0.12)

# One render at a time per process: reportlab keeps a TrueType font's subset state on the shared
# font object, keyed by document, and its global font registry is not guarded either.
_LOCK = threading.Lock()
# Other documents drawn with these fonts (the exchange's contracts) take the same lock.
RENDER_LOCK: Final = _LOCK


# ------------------------------------------------------------------------------------- fonts


@dataclass(frozen=True)
class CjkFont:
    """The font Chinese is drawn with: a TrueType file (and face index), or the CID fallback."""

    name: str  # the name registered with reportlab
    path: Path | None = None
    subfont_index: int = 0

    @property
    def embedded(self) -> bool:
        return self.path is not None


def font_directories() -> list[Path]:
    """Where fonts live on this machine: the XDG data folders' ``fonts`` (fontconfig's defaults
    on Linux), the per-user folders, then the macOS and Windows system folders."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    data_dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    roots = [Path(data_home) / "fonts", *(Path(d) / "fonts" for d in data_dirs.split(":") if d)]
    roots += [Path.home() / ".fonts", Path("/Library/Fonts"), Path("C:/Windows/Fonts")]
    seen: list[Path] = []
    for root in roots:
        if root not in seen:
            seen.append(root)
    return seen


def find_cjk_font(
    directories: Iterable[Path] | None = None,
    candidates: Sequence[tuple[str, int]] = CJK_FONT_FILES,
) -> tuple[Path, int] | None:
    """The first usable CJK TrueType font file under ``directories`` (searched recursively), in
    the order of ``candidates``; None when there is none."""
    folders = [d for d in (directories or font_directories()) if d.is_dir()]
    for filename, index in candidates:
        for folder in folders:
            direct = folder / filename
            if direct.is_file():
                return direct, index
            found = next((p for p in sorted(folder.rglob(filename)) if p.is_file()), None)
            if found is not None:
                return found, index
    return None


def _register(font: CjkFont) -> None:
    if font.name in pdfmetrics.getRegisteredFontNames():
        return
    if font.path is None:
        pdfmetrics.registerFont(UnicodeCIDFont(font.name))
    else:
        pdfmetrics.registerFont(TTFont(font.name, str(font.path), subfontIndex=font.subfont_index))


def cjk_font(path: Path | None = None, subfont_index: int = 0) -> CjkFont:
    """A registered CJK font: ``path`` if given, else the machine's (``find_cjk_font``), else
    the built-in STSong-Light. A file reportlab cannot read falls back too."""
    if path is None:
        found = _system_font()
        if found is None:
            return _fallback()
        path, subfont_index = found
    # A name per file and face, stable between processes (never ``hash()``, which is salted).
    digest = hashlib.sha256(f"{path.resolve()}#{subfont_index}".encode()).hexdigest()[:12]
    font = CjkFont(f"DFCJK-{digest}", path, subfont_index)
    try:
        _register(font)
    except (TTFError, OSError):
        return _fallback()
    return font


@lru_cache(maxsize=1)
def _system_font() -> tuple[Path, int] | None:
    return find_cjk_font()


def _fallback() -> CjkFont:
    font = CjkFont(FALLBACK_CID_FONT)
    _register(font)
    return font


# ------------------------------------------------------------------------------------- the sheet


@dataclass(frozen=True)
class CertificateSheet:
    """Everything printed on a certificate, as text and dates (no database, no web)."""

    number: str
    status: CertificateStatus
    today: date
    right_kind: RightKind
    right_id: str
    holder_id: str
    holder_name: str | None
    holder_uscc: str | None
    asset_id: str
    asset_name: str
    asset_name_en: str
    fingerprint: str | None
    scope: Mapping[str, Sequence[str] | None]
    term_start: date
    term_end: date | None
    valid_from: date
    valid_until: date
    issued_at: datetime
    issuer: str
    registration_id: str
    ledger_index: int
    leaf_hash: str
    signature: str  # base64
    key: str  # the verifier key line: <name>+<key id>+<base64 key>
    signature_valid: bool
    verify_url: str


def verification_url(base_url: str, number: str) -> str:
    """The public verification page of a certificate: ``{base_url}/verify/{number}``."""
    return f"{base_url.rstrip('/')}/verify/{number}"


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code of ``text`` (error correction M, no quiet zone): rows top to bottom, True for a
    dark module."""
    code = segno.make(text, error=QR_ERROR, micro=False, boost_error=False)
    return [[bool(v) for v in row] for row in code.matrix]


def _translate(locale: str, msgid: str) -> str:
    # The catalogues are the web layer's; imported here, when a page is drawn, like checks.py.
    from datafactor.web.i18n import translations

    return str(translations(locale).gettext(msgid))


def _both(msgid: str) -> str:
    zh, en = _translate("zh_CN", msgid), _translate("en", msgid)
    return zh if zh == en else f"{zh}  {en}"


def _scope_lines(scope: Mapping[str, Sequence[str] | None], rules: RegistryRules) -> list[str]:
    vocabularies: dict[str, Mapping[str, Mapping[str, str]]] = {
        "purposes": rules.purposes,
        "delivery_modes": rules.delivery_modes,
    }
    names = {
        "purposes": ("用途", "Purposes"),
        "fields": ("字段", "Fields"),
        "regions": ("地域", "Regions"),
        "delivery_modes": ("交付方式", "Delivery"),
    }
    lines = []
    for dimension, (zh, en) in names.items():
        values = scope.get(dimension)
        if values is None:
            shown = "不限 unrestricted"
        else:
            vocabulary = vocabularies.get(dimension, {})
            shown = "; ".join(
                f"{vocabulary[v]['zh']} {vocabulary[v]['en']}" if v in vocabulary else v
                for v in values
            )
        lines.append(f"{zh} {en}: {shown}")
    return lines


# ------------------------------------------------------------------------------------- drawing

PAGE_W, PAGE_H = A4
MARGIN: Final = 42.0
LABEL_W: Final = 150.0


def _chunks(text: str) -> list[str]:
    """Break opportunities: each CJK character alone, Latin words with their trailing space."""
    out: list[str] = []
    word = ""
    for ch in text:
        wide = unicodedata.east_asian_width(ch) in ("W", "F")
        if wide or ch == " ":
            if word or ch == " ":
                out.append(word + (ch if ch == " " else ""))
                word = ""
            if wide:
                out.append(ch)
        else:
            word += ch
    if word:
        out.append(word)
    return out


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy line breaking by measured width; a word longer than a line is cut by characters."""
    lines: list[str] = []
    line = ""
    for chunk in _chunks(text):
        if pdfmetrics.stringWidth(line + chunk.rstrip(), font, size) <= width:
            line += chunk
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = ""
        for ch in chunk:
            if pdfmetrics.stringWidth(line + ch, font, size) > width and line:
                lines.append(line)
                line = ""
            line += ch
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def _define_qr(canvas: Any, matrix: list[list[bool]]) -> None:
    """The QR code as a form XObject in module units: one ``re`` per horizontal run of dark
    modules, row 0 at the top (PDF's y axis points up)."""
    n = len(matrix)
    canvas.beginForm(QR_FORM, 0, 0, n, n)
    canvas.setFillColor(HexColor("#000000"))
    for r, row in enumerate(matrix):
        c = 0
        while c < n:
            if not row[c]:
                c += 1
                continue
            start = c
            while c < n and row[c]:
                c += 1
            canvas.rect(start, n - 1 - r, c - start, 1, stroke=0, fill=1)
    canvas.endForm()


define_qr = _define_qr  # shared with the exchange's contract PDF


def _pdf_date(moment: datetime) -> str:
    t = moment.astimezone(UTC)
    return t.strftime("D:%Y%m%d%H%M%S+00'00'")


def render_certificate(sheet: CertificateSheet, *, font: CjkFont | None = None) -> bytes:
    """Draw the certificate page (see the module docstring); the same sheet gives the same bytes."""
    rules = load_registry_rules()
    with _LOCK:
        cjk = font or cjk_font()
        _register(cjk)
        return _draw(sheet, cjk.name, rules)


def _draw(sheet: CertificateSheet, cjk: str, rules: RegistryRules) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1, lang="zh-CN")
    issued = _pdf_date(sheet.issued_at)
    canvas.setDateFormatter(lambda *_: issued)
    # Invariant mode fixes the ID; fold in what identifies this rendering so that two different
    # certificates (or days) never share one.
    canvas._doc.updateSignature(f"{sheet.number}|{sheet.issued_at.isoformat()}|{sheet.today}")
    canvas.setTitle(f"数据产权登记证书 {sheet.number}")
    canvas.setSubject("Data property registration certificate")
    canvas.setAuthor(sheet.issuer)
    canvas.setCreator("DataFactor")
    matrix = qr_matrix(sheet.verify_url)
    _define_qr(canvas, matrix)

    # Frame.
    canvas.setStrokeColor(FRAME)
    canvas.setLineWidth(2.2)
    canvas.rect(MARGIN - 14, MARGIN - 14, PAGE_W - 2 * MARGIN + 28, PAGE_H - 2 * MARGIN + 28)
    canvas.setLineWidth(0.6)
    canvas.rect(MARGIN - 9, MARGIN - 9, PAGE_W - 2 * MARGIN + 18, PAGE_H - 2 * MARGIN + 18)

    in_force = sheet.status in IN_FORCE
    status_text = _both(CERTIFICATE_STATUS_LABELS[sheet.status])
    if not in_force:
        canvas.saveState()
        canvas.setFillColor(WATERMARK)
        canvas.setFont(cjk, 64)
        canvas.translate(PAGE_W / 2, PAGE_H / 2)
        canvas.rotate(35)
        canvas.drawCentredString(0, 0, status_text)
        canvas.restoreState()

    # Title.
    y = PAGE_H - MARGIN - 40
    canvas.setFillColor(FRAME)
    canvas.setFont(cjk, 26)
    canvas.drawCentredString(PAGE_W / 2, y, "数据产权登记证书")
    y -= 22
    canvas.setFont(cjk, 12)
    canvas.drawCentredString(PAGE_W / 2, y, "Data Property Registration Certificate")
    y -= 24
    canvas.setFillColor(INK)
    canvas.setFont(cjk, 12)
    canvas.drawCentredString(PAGE_W / 2, y, f"证书编号 No.  {sheet.number}")
    y -= 20

    # Status, as of the rendering day.
    box_h = 22.0 if in_force else 36.0
    canvas.setStrokeColor(INK if in_force else ALERT)
    canvas.setLineWidth(0.8 if in_force else 1.6)
    canvas.rect(MARGIN, y - box_h + 15, PAGE_W - 2 * MARGIN, box_h, stroke=1, fill=0)
    canvas.setFillColor(INK if in_force else ALERT)
    canvas.setFont(cjk, 11)
    canvas.drawString(
        MARGIN + 8,
        y - 1 if in_force else y,
        f"状态 Status ({sheet.today.isoformat()}):  {status_text}",
    )
    if not in_force:
        canvas.setFont(cjk, 9)
        canvas.drawString(
            MARGIN + 8,
            y - 14,
            "本证书已不具效力，请以验证页面为准。 This certificate is not in force; "
            "the verification page shows its current status.",
        )
    y -= box_h + 10

    # The facts, label (zh / en) and value.
    holder = sheet.holder_name or sheet.holder_id
    holder_lines = [holder]
    if sheet.holder_uscc:
        holder_lines.append(f"统一社会信用代码 USCC: {sheet.holder_uscc}")
    if sheet.holder_name:
        holder_lines.append(f"ID {sheet.holder_id}")
    asset_lines = [sheet.asset_name]
    if sheet.asset_name_en:
        asset_lines.append(sheet.asset_name_en)
    asset_lines.append(f"ID {sheet.asset_id}")
    term_end = sheet.term_end.isoformat() if sheet.term_end else "长期 open-ended"
    issued_cn = sheet.issued_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    rows: list[tuple[str, str, list[str], bool]] = [
        ("权利类型", "Right", [_both(RIGHT_KIND_LABELS[sheet.right_kind])], False),
        ("权利人", "Holder", holder_lines, False),
        ("登记对象", "Data asset", asset_lines, False),
        ("数据指纹", "Fingerprint (SHA-256)", [sheet.fingerprint or "—"], True),
        ("权利范围", "Scope", _scope_lines(sheet.scope, rules), False),
        ("权利期限", "Term of the right", [f"{sheet.term_start.isoformat()} – {term_end}"], False),
        (
            "证书有效期",
            "Valid",
            [f"{sheet.valid_from.isoformat()} – {sheet.valid_until.isoformat()}"],
            False,
        ),
        ("发证时间", "Issued", [f"{issued_cn} (UTC+8)  {sheet.issuer}"], False),
        (
            "登记编号",
            "Registration",
            [sheet.registration_id, f"权利 Right ID {sheet.right_id}"],
            False,
        ),
    ]
    value_x = MARGIN + LABEL_W
    value_w = PAGE_W - MARGIN - value_x
    for zh, en, values, mono in rows:
        canvas.setFillColor(MUTED)
        canvas.setFont(cjk, 10)
        canvas.drawString(MARGIN, y, zh)
        canvas.setFont(cjk, 8)
        canvas.drawString(MARGIN, y - 11, en)
        canvas.setFillColor(INK)
        line_y = y
        face, size = (MONO_FONT, 8.5) if mono else (cjk, 10)
        canvas.setFont(face, size)
        for value in values:
            for line in wrap(value, face, size, value_w):
                canvas.drawString(value_x, line_y, line)
                line_y -= size + 4
        y = min(line_y, y - 22) - 6

    # The ledger and the signature, bottom left; the QR code, bottom right.
    qr_size = 124.0
    n = len(matrix)
    module = qr_size / (n + 2 * QR_BORDER)
    qr_x = PAGE_W - MARGIN - qr_size
    qr_y = MARGIN + 30
    canvas.saveState()
    canvas.translate(qr_x + QR_BORDER * module, qr_y + QR_BORDER * module)
    canvas.scale(module, module)
    canvas.doForm(QR_FORM)
    canvas.restoreState()
    canvas.setFillColor(INK)
    canvas.setFont(cjk, 8)
    canvas.drawCentredString(qr_x + qr_size / 2, qr_y + qr_size + 4, "扫码验证 Scan to verify")
    url_lines = wrap(sheet.verify_url, MONO_FONT, 6.5, 300)
    canvas.setFont(MONO_FONT, 6.5)
    for i, line in enumerate(url_lines):
        canvas.drawRightString(PAGE_W - MARGIN, qr_y - 9 - i * 8, line)

    left_w = qr_x - MARGIN - 16
    block: list[tuple[str, str, list[str]]] = [
        (
            "存证 Ledger",
            "",
            [f"entry #{sheet.ledger_index}", f"leaf hash {sheet.leaf_hash}"],
        ),
        ("电子签名 Signature (Ed25519, base64)", "", [sheet.signature]),
        ("验签公钥 Verifier key", "", [sheet.key]),
    ]
    lines: list[tuple[str, str]] = []
    for title, _, values in block:
        lines.append((cjk, title))
        for value in values:
            lines.extend((MONO_FONT, part) for part in wrap(value, MONO_FONT, 7, left_w))
    if not sheet.signature_valid:
        lines.append((cjk, "签名验证失败 The signature does not verify: do not rely on this copy."))
    block_y = qr_y + qr_size + 4
    for i, (face, text) in enumerate(lines):
        if face == cjk and i:
            block_y -= 4
        canvas.setFont(face, 8 if face == cjk else 7)
        canvas.setFillColor(ALERT if text.startswith("签名验证失败") else INK)
        canvas.drawString(MARGIN, block_y, text)
        block_y -= 10

    canvas.setFillColor(MUTED)
    canvas.setFont(cjk, 7.5)
    footer = (
        f"状态以 {sheet.today.isoformat()} 为准；最新状态请扫码或访问验证页面。 "
        f"Status as of {sheet.today.isoformat()}; scan the code or open the verification page "
        "for the current status."
    )
    for i, line in enumerate(wrap(footer, cjk, 7.5, PAGE_W - 2 * MARGIN)):
        canvas.drawString(MARGIN, MARGIN - 2 - i * 9, line)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- use case


def _holder(session: Session, principal: Principal, party_id: str) -> tuple[str | None, str | None]:
    """The holder's name and USCC as the principal may see them (none when it may not)."""
    try:
        party = identity.get_party(session, principal, party_id)
    except DomainError:
        return None, None
    uscc = party.code if party.code_type == "uscc" else None
    return party.name, uscc


def certificate_pdf(
    session: Session, principal: Principal, number: str, *, base_url: str, today: date
) -> bytes:
    """The certificate ``number`` as a PDF, for its holder, a registrar or a regulator.

    The number is checked like on the verification page (``InvalidCertificateNumber``; unknown:
    ``NotFound`` ``registry-unknown-certificate``); the existence of a number is public, its PDF
    is not, so anyone else is refused (``Forbidden``). ``base_url`` is the public site's root the
    QR code points at; ``today`` the day whose status is printed.
    """
    found = services.verify_certificate(session, number, today=today)
    certificate = found.certificate
    if not (
        certificate.holder_id == principal.party_id
        or principal.can(Permission.REGISTRY_APPLICATION_READ_ALL)
    ):
        raise Forbidden(MSG_NOT_HOLDER)
    payload: dict[str, Any] = certificate.payload
    right = payload.get("right", {})
    term = right.get("term", {})
    asset = session.get(RegistryAsset, certificate.asset_id)
    holder_name, uscc = _holder(session, principal, certificate.holder_id)
    entry = ledger.get_entry(session, certificate.ledger_index)
    sheet = CertificateSheet(
        number=certificate.number,
        status=found.status,
        today=today,
        right_kind=RightKind(right["kind"]),
        right_id=certificate.right_id,
        holder_id=certificate.holder_id,
        holder_name=holder_name,
        holder_uscc=uscc,
        asset_id=certificate.asset_id,
        asset_name=asset.name if asset is not None else "",
        asset_name_en=asset.name_en if asset is not None else "",
        fingerprint=payload.get("asset", {}).get("fingerprint"),
        scope=right.get("scope", {}),
        term_start=date.fromisoformat(term["start"]),
        term_end=date.fromisoformat(term["end"]) if term.get("end") else None,
        valid_from=certificate.valid_from,
        valid_until=certificate.valid_until,
        issued_at=datetime.fromisoformat(payload["issued_at"].replace("Z", "+00:00")),
        issuer=str(payload.get("issuer", "")),
        registration_id=certificate.application_id,
        ledger_index=certificate.ledger_index,
        leaf_hash=entry.leaf_hash.hex(),
        signature=certificate.signature,
        key=certificate.key,
        signature_valid=found.signature_valid,
        verify_url=verification_url(base_url, certificate.number),
    )
    return render_certificate(sheet)
