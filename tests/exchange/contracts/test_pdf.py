"""The contract PDF: it renders with the terms, the signatures and the ledger entry, for the
parties and the exchange only."""

from __future__ import annotations

import io

import pytest
from contracts_support import NOW, load, sign_all
from pypdf import PdfReader

from datafactor.exchange import contracts, pdf
from datafactor.exchange.errors import ExchangeNotFound


def render(world, actor, contract_id):
    with world.db.read() as s:
        return contracts.contract_pdf(
            s, world.p(actor), contract_id, base_url="https://df.example", now=NOW
        )


def text_of(content: bytes) -> str:
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages)


def test_a_signed_contract_prints_terms_signatures_and_ledger_entry(world, open_for):
    contract_id = open_for()
    sign_all(world, contract_id)
    row, content = render(world, world.buyer, contract_id)
    assert content.startswith(b"%PDF")
    text = text_of(content)
    assert row.number in text
    assert f"entry #{row.ledger_index}" in text
    assert row.document_hash in text.replace("\n", "")
    assert "Signature verifies" in text


def test_the_same_sheet_renders_the_same_bytes(world, open_for):
    contract_id = open_for()
    _, first = render(world, world.seller, contract_id)
    _, second = render(world, world.seller, contract_id)
    assert first == second


def test_the_sheet_names_a_broken_signature(world, open_for):
    contract_id = open_for()
    sign_all(world, contract_id)
    row = load(world, contract_id)
    lines = [
        pdf.SignatureLine(
            role=c.role,
            party=c.party_id,
            signer="x",
            signed_at=c.signed_at,
            key_id=c.key_id,
            signature=c.signature,
            valid=False,
        )
        for c in contracts.signature_checks(row)
    ]
    sheet = pdf.contract_sheet(
        row, as_of=NOW, url="https://df.example/c", signatures=lines, hash_matches=False
    )
    content = pdf.render_contract(sheet)
    assert content.startswith(b"%PDF")
    text = text_of(content)
    assert "SIGNATURE DOES NOT VERIFY" in text
    assert "DOES NOT MATCH THE DOCUMENT" in text


def test_only_readers_of_the_contract_get_its_pdf(world, open_for):
    contract_id = open_for()
    with pytest.raises(ExchangeNotFound):
        render(world, world.outsider, contract_id)
    _, content = render(world, world.regulator, contract_id)
    assert content.startswith(b"%PDF")
