"""Signing keys held for parties: each party's Ed25519 key, kept by the platform (custodial).

A listing's declaration and commitment (声明和承诺), a compliance assessment and a contract are
signed by the party after its user confirms: the platform holds one key per party under
``<var_dir>/party-keys/<party id>.key`` (0600, created on first use atomically, never in the
database — the same key files as the ledger's, ``ledger.Signer``), signs the RFC 8785 canonical
bytes of the record and stores the signature with the verifier key string, so anyone can check
a signed record with the public half alone (``verify_record``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datafactor import ledger
from datafactor.fsutil import read_private_file, write_new_private_file

KEY_DIR = "party-keys"


@dataclass(frozen=True)
class Signature:
    """A signature over a record: base64 Ed25519 signature and the signer's verifier key."""

    signature: str
    key: str


class PartyKeys:
    """The party key store under ``var_dir``."""

    def __init__(self, var_dir: Path | str) -> None:
        self.directory = Path(var_dir) / KEY_DIR

    def signer(self, party_id: str) -> ledger.Signer:
        if not party_id or "/" in party_id or party_id.startswith("."):
            raise ValueError(f"not a party id: {party_id!r}")
        path = self.directory / f"{party_id}.key"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            # Written whole and linked into place (another process may win: its key is used).
            write_new_private_file(
                path, ledger.Signer.generate(f"party-{party_id}").key_string() + "\n"
            )
        return ledger.Signer.from_key_string(read_private_file(path))

    def sign(self, party_id: str, record: Mapping[str, Any]) -> Signature:
        signer = self.signer(party_id)
        raw = signer.sign(ledger.canonical_json(dict(record)))
        return Signature(base64.b64encode(raw).decode(), signer.verifier().key_string())


def party_keys(settings: Any) -> PartyKeys:
    return PartyKeys(settings.var_dir)


def verify_record(record: Mapping[str, Any], signature: str, key: str) -> bool:
    """Whether ``signature`` is the signature of ``key``'s holder over ``record``."""
    try:
        verifier = ledger.Verifier.from_key_string(key)
        return verifier.verify(ledger.canonical_json(dict(record)), base64.b64decode(signature))
    except (ValueError, TypeError):
        return False
