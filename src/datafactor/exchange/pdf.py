"""Contract PDFs: the data trading contract (数据交易合同) as both parties keep it on paper.

``contract_sheet`` gathers what is printed from a contract row and facts the caller resolved
(signers' names, the status on the rendering day, the page's address); ``render_contract`` draws a
``ContractSheet`` on as many A4 pages as it needs and knows nothing of the database. Like the
registry's certificates the contract is bilingual on its face whatever the reader's UI language,
so its field labels are fixed ``(zh, en)`` pairs; vocabulary values (state, trade kind, channel)
are msgids rendered through both catalogues. The usage policy is printed in plain language in
both languages (``datafactor.policy.describe``), beside the document's fingerprint, every
signature (signer, time, key id, whether it verifies) and the ledger entry of the signed
contract; a QR code points at the contract's page.

The fonts, line breaking and the QR drawing are the registry's (``datafactor.registry.pdf``): the
same embedded CJK TrueType font (or the STSong-Light fallback), under the same render lock, since
reportlab keeps a font's subset state on the shared font object. The output is deterministic for
a given sheet (invariant mode, dates from the contract).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from datafactor import policy as policy_language
from datafactor.db import CHINA
from datafactor.exchange.domain import (
    CHANNEL_LABELS,
    CONTRACT_STATE_LABELS,
    TRADE_KIND_LABELS,
    Channel,
    ContractState,
    TradeKind,
)
from datafactor.exchange.models import ExchangeContract
from datafactor.registry.pdf import (
    ALERT,
    FRAME,
    INK,
    MONO_FONT,
    MUTED,
    QR_BORDER,
    QR_FORM,
    RENDER_LOCK,
    CjkFont,
    cjk_font,
    define_qr,
    qr_matrix,
    wrap,
)
from datafactor.settlement import format_yuan

PAGE_W, PAGE_H = A4
MARGIN: Final = 46.0
LABEL_W: Final = 128.0
QR_SIZE: Final = 92.0

ROLE_NAMES: Final = {
    "seller": ("卖方", "Seller"),
    "buyer": ("买方", "Buyer"),
    "broker": ("数据经纪机构", "Broker"),
}
CODE_NAMES: Final = {"uscc": "统一社会信用代码 USCC"}


@dataclass(frozen=True)
class SignatureLine:
    """One signature as printed: whose, by whom, when, with which key, and whether it holds."""

    role: str
    party: str
    signer: str | None
    signed_at: datetime | None
    key_id: str
    signature: str | None
    valid: bool


@dataclass(frozen=True)
class ContractSheet:
    """Everything printed on a contract, as text and dates (no database, no web)."""

    number: str
    state: ContractState
    as_of: datetime
    issued_at: datetime
    rows: Sequence[tuple[str, str, Sequence[str]]]
    policy_zh: Sequence[str]
    policy_en: Sequence[str]
    document_hash: str
    hash_matches: bool
    signatures: Sequence[SignatureLine]
    ledger_index: int | None
    url: str
    deadline_at: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def _translate(locale: str, msgid: str) -> str:
    # The catalogues are the web layer's; imported when a page is drawn (as the registry does).
    from datafactor.web.i18n import translations

    return str(translations(locale).gettext(msgid))


def both(msgid: str) -> str:
    """A vocabulary msgid in Chinese and English (once when they are the same)."""
    zh, en = _translate("zh_CN", msgid), _translate("en", msgid)
    return zh if zh == en else f"{zh}  {en}"


def _china(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M (UTC+8)")


def _party_lines(card: Mapping[str, Any] | None) -> list[str]:
    if not card:
        return ["—"]
    lines = [str(card.get("name") or card.get("id"))]
    if card.get("name_en"):
        lines.append(str(card["name_en"]))
    code_type = str(card.get("code_type") or "")
    if card.get("code"):
        lines.append(f"{CODE_NAMES.get(code_type, code_type)}: {card['code']}")
    lines.append(f"ID {card.get('id')}")
    return lines


def _plain_policy(document: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    try:
        parsed = policy_language.parse_policy(document)
    except Exception:  # a policy the engine cannot read is printed as its JSON instead
        return [], []
    return policy_language.describe(parsed, "zh_CN"), policy_language.describe(parsed, "en")


def contract_sheet(
    contract: ExchangeContract,
    *,
    as_of: datetime,
    url: str,
    signatures: Sequence[SignatureLine],
    hash_matches: bool,
) -> ContractSheet:
    """The printed facts of ``contract`` (its document as signed, its state on ``as_of``)."""
    doc: Mapping[str, Any] = contract.document
    parties = doc.get("parties", {})
    obj = doc.get("object", {})
    term = doc.get("term", {})
    records = doc.get("records", {})
    rules = doc.get("rules", {})
    acceptance = doc.get("acceptance", {})
    channels = [
        both(CHANNEL_LABELS[Channel(c)]) if c in {x.value for x in Channel} else c
        for c in doc.get("channels", [])
    ]
    kind = doc.get("kind", contract.kind)
    rows: list[tuple[str, str, Sequence[str]]] = [
        (
            "交易方式",
            "Trade",
            [
                both(TRADE_KIND_LABELS[TradeKind(kind)])
                if kind in {k.value for k in TradeKind}
                else str(kind)
            ],
        ),
    ]
    for role in ("seller", "buyer", "broker"):
        if parties.get(role):
            zh, en = ROLE_NAMES[role]
            rows.append((zh, en, _party_lines(parties[role])))
    title = [str(obj.get("title", ""))] + ([str(obj["title_en"])] if obj.get("title_en") else [])
    rows += [
        (
            "交易标的",
            "Object",
            [
                *title,
                f"挂牌编号 Listing {obj.get('listing_number', '')}",
                f"登记证书 Certificate {obj.get('certificate_number', '')}",
                f"数据资产 Asset ID {obj.get('asset_id', '')}",
            ],
        ),
        (
            "数量与价款",
            "Quantity and price",
            [
                f"{doc.get('quantity')} × {format_yuan(int(doc.get('price_fen', 0)))} = "
                f"{format_yuan(int(doc.get('amount_fen', 0)))}",
                f"托管冻结 Escrow hold {doc.get('escrow', {}).get('hold_id') or '—'}",
            ],
        ),
        ("交付方式", "Delivery", ["; ".join(channels) or "—"]),
        ("合同期限", "Term", [f"{term.get('start', '')} – {term.get('end', '')}"]),
        (
            "验收",
            "Acceptance",
            [
                f"交付后 {acceptance.get('days_after_delivery', '—')} 日内未提出异议视为验收；"
                f"生效后 {acceptance.get('delivery_days', '—')} 日内须交付。",
                f"Deemed accepted {acceptance.get('days_after_delivery', '—')} days after "
                f"delivery unless disputed; delivery within {acceptance.get('delivery_days', '—')} "
                "days of taking effect.",
            ],
        ),
        (
            "跨境",
            "Cross-border",
            ["是 yes（须完成出境评估）" if doc.get("cross_border") else "否 no"],
        ),
        (
            "交易记录",
            "Trade records",
            [
                str(records.get("law", "")),
                "双方身份已核验 Both parties verified"
                if all((records.get("parties_verified") or {"x": False}).values())
                else "身份核验未完成 Parties not all verified",
                f"数据来源声明 Source statement SHA-256 {records.get('declaration_sha256') or '—'}",
                f"挂牌审核记录 Listing review {records.get('listing_review_id') or '—'}",
            ],
        ),
        (
            "适用规则",
            "Rules",
            [f"{rules.get('version', '')}: {', '.join(rules.get('ids', []))}"],
        ),
    ]
    policy_zh, policy_en = _plain_policy(doc.get("policy", {}))
    issued_raw = str(doc.get("issued_at", ""))
    try:
        issued = datetime.fromisoformat(issued_raw.replace("Z", "+00:00"))
    except ValueError:
        issued = contract.created_at
    return ContractSheet(
        number=contract.number,
        state=ContractState(contract.state),
        as_of=as_of,
        issued_at=issued,
        rows=rows,
        policy_zh=policy_zh,
        policy_en=policy_en,
        document_hash=contract.document_hash,
        hash_matches=hash_matches,
        signatures=signatures,
        ledger_index=contract.ledger_index,
        url=url,
        deadline_at=contract.deadline_at,
    )


# ------------------------------------------------------------------------------------- drawing


class _Flow:
    """Text flowing down A4 pages: a new page (with the running header) when one is full."""

    def __init__(self, canvas: Any, cjk: str, header: str) -> None:
        self.canvas = canvas
        self.cjk = cjk
        self.header = header
        self.page = 1
        self.y = PAGE_H - MARGIN

    def need(self, height: float) -> None:
        if self.y - height < MARGIN + 18:
            self._footer()
            self.canvas.showPage()
            self.page += 1
            self.y = PAGE_H - MARGIN
            self.canvas.setFillColor(MUTED)
            self.canvas.setFont(self.cjk, 8)
            self.canvas.drawString(MARGIN, self.y, self.header)
            self.y -= 18

    def _footer(self) -> None:
        self.canvas.setFillColor(MUTED)
        self.canvas.setFont(self.cjk, 7.5)
        self.canvas.drawRightString(PAGE_W - MARGIN, MARGIN - 6, f"{self.page}")

    def finish(self) -> None:
        self._footer()

    def heading(self, zh: str, en: str) -> None:
        self.need(30)
        self.y -= 6
        self.canvas.setFillColor(FRAME)
        self.canvas.setFont(self.cjk, 11.5)
        self.canvas.drawString(MARGIN, self.y, f"{zh}  {en}")
        self.y -= 4
        self.canvas.setStrokeColor(FRAME)
        self.canvas.setLineWidth(0.6)
        self.canvas.line(MARGIN, self.y, PAGE_W - MARGIN, self.y)
        self.y -= 14

    def row(self, zh: str, en: str, values: Sequence[str], *, mono: bool = False) -> None:
        face, size = (MONO_FONT, 7.5) if mono else (self.cjk, 9.5)
        value_x = MARGIN + LABEL_W
        width = PAGE_W - MARGIN - value_x
        lines = [line for value in values for line in wrap(value, face, size, width)]
        self.need(max(24.0, len(lines) * (size + 3.5)))
        top = self.y
        self.canvas.setFillColor(MUTED)
        self.canvas.setFont(self.cjk, 9.5)
        self.canvas.drawString(MARGIN, top, zh)
        self.canvas.setFont(self.cjk, 7.5)
        self.canvas.drawString(MARGIN, top - 10, en)
        self.canvas.setFillColor(INK)
        self.canvas.setFont(face, size)
        y = top
        for line in lines:
            if y < MARGIN + 18:
                self.y = y
                self.need(size + 4)
                y = self.y
                self.canvas.setFillColor(INK)
                self.canvas.setFont(face, size)
            self.canvas.drawString(value_x, y, line)
            y -= size + 3.5
        self.y = min(y, top - 22) - 5

    def paragraph(
        self, text: str, *, size: float = 9.0, color: Any = INK, mono: bool = False
    ) -> None:
        face = MONO_FONT if mono else self.cjk
        for line in wrap(text, face, size, PAGE_W - 2 * MARGIN):
            self.need(size + 4)
            self.canvas.setFillColor(color)
            self.canvas.setFont(face, size)
            self.canvas.drawString(MARGIN, self.y, line)
            self.y -= size + 3.5
        self.y -= 3


def _pdf_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


def render_contract(sheet: ContractSheet, *, font: CjkFont | None = None) -> bytes:
    """Draw the contract (see the module docstring); the same sheet gives the same bytes."""
    with RENDER_LOCK:
        cjk = font or cjk_font()
        return _draw(sheet, cjk.name)


def _draw(sheet: ContractSheet, cjk: str) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1, lang="zh-CN")
    stamp = _pdf_date(sheet.issued_at)
    canvas.setDateFormatter(lambda *_: stamp)
    canvas._doc.updateSignature(f"{sheet.number}|{sheet.state}|{sheet.as_of.isoformat()}")
    canvas.setTitle(f"数据交易合同 {sheet.number}")
    canvas.setSubject("Data trading contract")
    canvas.setAuthor("DataFactor")
    canvas.setCreator("DataFactor")
    matrix = qr_matrix(sheet.url)
    define_qr(canvas, matrix)

    # Title block, QR code top right.
    top = PAGE_H - MARGIN
    n = len(matrix)
    module = QR_SIZE / (n + 2 * QR_BORDER)
    qr_x, qr_y = PAGE_W - MARGIN - QR_SIZE, top - QR_SIZE + 8
    canvas.saveState()
    canvas.translate(qr_x + QR_BORDER * module, qr_y + QR_BORDER * module)
    canvas.scale(module, module)
    canvas.doForm(QR_FORM)
    canvas.restoreState()
    canvas.setFillColor(MUTED)
    canvas.setFont(cjk, 7)
    canvas.drawCentredString(qr_x + QR_SIZE / 2, qr_y - 2, "扫码查看 Scan to open")

    canvas.setFillColor(FRAME)
    canvas.setFont(cjk, 22)
    canvas.drawString(MARGIN, top - 22, "数据交易合同")
    canvas.setFont(cjk, 11)
    canvas.drawString(MARGIN, top - 40, "Data Trading Contract")
    canvas.setFillColor(INK)
    canvas.setFont(cjk, 11)
    canvas.drawString(MARGIN, top - 60, f"合同编号 No.  {sheet.number}")
    canvas.setFont(cjk, 9)
    canvas.drawString(MARGIN, top - 75, f"订立 Drawn up  {_china(sheet.issued_at)}")
    flow = _Flow(canvas, cjk, f"数据交易合同 Data Trading Contract  {sheet.number}")
    flow.y = min(top - 96, qr_y - 14)

    final_bad = sheet.state is ContractState.TERMINATED
    status = both(CONTRACT_STATE_LABELS[sheet.state])
    line = f"状态 Status ({_china(sheet.as_of)}):  {status}"
    if sheet.deadline_at is not None:
        line += f"   期限 Deadline {_china(sheet.deadline_at)}"
    flow.paragraph(line, size=9.5, color=ALERT if final_bad else INK)

    flow.heading("合同条款", "Terms")
    for zh, en, values in sheet.rows:
        flow.row(zh, en, values)

    flow.heading("使用策略", "Usage policy")
    if sheet.policy_zh or sheet.policy_en:
        for sentence in sheet.policy_zh:
            flow.paragraph(f"· {sentence}")
        for sentence in sheet.policy_en:
            flow.paragraph(f"· {sentence}", size=8.5, color=MUTED)
    else:
        flow.paragraph("见合同文档中的策略 See the policy in the contract document.")

    flow.heading("签署", "Signatures")
    flow.row(
        "文档指纹",
        "Document SHA-256",
        [sheet.document_hash]
        + ([] if sheet.hash_matches else ["与文档不符 DOES NOT MATCH THE DOCUMENT"]),
        mono=True,
    )
    if not sheet.signatures:
        flow.paragraph("尚无签名 No signature yet.")
    for sig in sheet.signatures:
        zh, en = ROLE_NAMES.get(sig.role, (sig.role, sig.role))
        if sig.signature is None:
            flow.row(zh, en, [sig.party, "待签署 Awaiting signature"])
            continue
        verdict = (
            "签名有效 Signature verifies" if sig.valid else "签名无效 SIGNATURE DOES NOT VERIFY"
        )
        flow.row(
            zh,
            en,
            [
                sig.party,
                f"签署人 Signed by {sig.signer or '—'}  {_china(sig.signed_at)}",
                f"密钥 Key id {sig.key_id}  {verdict}",
            ],
        )
        flow.row("", "Ed25519 (base64)", [sig.signature], mono=True)
    flow.row(
        "存证",
        "Ledger",
        [f"entry #{sheet.ledger_index}" if sheet.ledger_index is not None else "尚未存证 not yet"],
    )
    flow.paragraph(sheet.url, size=7, color=MUTED, mono=True)
    flow.finish()
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
