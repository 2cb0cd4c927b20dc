"""The contract document's canonical form: the json module's fast path writes exactly the bytes
of RFC 8785 (``ledger.canonical_json``) — a hash that differed would make every signature on a
contract fail its tamper check — and anything outside the plain subset goes to the ledger's."""

from __future__ import annotations

import enum
import random

import pytest

from datafactor.exchange.contracts import canonical_document, document_hash
from datafactor.ledger import canonical_json

_CHARS = [chr(c) for c in range(0x80)] + [
    "\x9f",
    "\xa0",
    "\u2028",
    "\u2029",
    "\ue000",
    "\ufeff",
    "中",
    "文",
    "\U0001f600",
    "\ud800",  # a lone surrogate: both refuse it
]


class _Kind(enum.StrEnum):
    MALL = "mall"


def _value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 8)))
    if roll < 0.45:
        return rng.choice([None, True, False, _Kind.MALL])
    if roll < 0.6:
        return rng.choice([0, -1, 2**53, -(2**53), 2**53 + 2, 10**20, 1.5, 1e21, 1.0])
    if roll < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["a", "B", "é", "中", "\U0001f600", "\ue000", 'q"', "n\n", ""]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _canonical_or_refused(fn, doc):  # type: ignore[no-untyped-def]
    try:
        return fn(doc)
    except (ValueError, TypeError) as exc:
        return type(exc)


def test_the_fast_canonical_form_is_the_ledgers():
    rng = random.Random(20261126)
    for _ in range(20_000):
        doc = {k: _value(rng) for k in ("format", "parties", "object", "policy", "x")}
        assert _canonical_or_refused(canonical_document, doc) == _canonical_or_refused(
            canonical_json, doc
        ), doc


@pytest.mark.parametrize(
    "doc",
    [
        {"number": "GX-DC-2026-000001", "amount_fen": 120_000, "policy": {"@type": "Agreement"}},
        {"title": '港口吞吐量\t"数据"\\', "quantity": 1, "cross_border": False, "period": None},
        {"b": 1, "a": [1, "2", {"d": None, "c": True}]},
    ],
)
def test_a_contract_documents_hash_is_the_sha256_of_its_rfc8785_form(doc):
    import hashlib

    assert document_hash(doc) == hashlib.sha256(canonical_json(doc)).hexdigest()
