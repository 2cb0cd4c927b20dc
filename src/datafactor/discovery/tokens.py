"""Trustee keys and reversible tokens: the one way back from a de-identified value to the original.

Tokenisation (假名化/令牌化) replaces a value by a token that only the trustee party (受托方 — the
party a policy names to hold the key) can turn back into the value. A token is the value encrypted
with AES-SIV (RFC 5297, deterministic authenticated encryption, ``AESSIV`` from ``cryptography``)
under a 512-bit key of that trustee: deterministic, so equal values give equal tokens and joins on
a tokenised column still work; authenticated, so an altered token is refused rather than decoded
into something else. The associated data binds a token to its trustee and to an optional context
(a column family, e.g. ``"resident-id"``), so the same key can keep domains apart. A token reads
``tk1.<key id>.<base64url>``: the key id says which key made it, so keys can rotate while old
tokens stay reversible.

Keys are kept outside the database (GB/T 35273-2020 6.2 asks that what can re-identify be kept
apart from the de-identified data), one folder per trustee under ``<var_dir>/trustee_keys``::

    trustee_keys/<party id>/<key id>.key   one key, mode 0600 (every key ever made: old tokens)
    trustee_keys/<party id>/current        the id of the key new tokens use

A trustee's first key is made on first use. Files are created as the ledger's key files are, by
the shared private-file helpers of ``datafactor.fsutil`` (a private temporary file, fsynced,
hard-linked into place), so two processes starting at once agree on one key and a crash never
leaves half a key behind; a key file group or others can read is refused, as ssh refuses such
identity files. Rotation writes a new key and then swaps ``current`` atomically; old keys stay
for detokenising.

Only the trustee may detokenise: ``require_trustee`` is the access check the web layer calls with
the acting principal; ``detokenise`` itself refuses tokens whose key the named trustee does not
hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from datafactor.errors import N_, DomainError, Forbidden, InvalidInput
from datafactor.fsutil import (
    PrivateFileRefused,
    read_private_file,
    replace_private_file,
    write_new_private_file,
)

if TYPE_CHECKING:
    from datafactor.settings import Settings

__all__ = [
    "KEY_DIR",
    "TOKEN_PREFIX",
    "KeyFileRefused",
    "Tokeniser",
    "TrusteeKey",
    "TrusteeKeys",
    "detokenise",
    "require_trustee",
    "token_key_id",
    "tokenise",
    "trustee_keys",
    "valid_party_id",
]

KEY_DIR: Final = "trustee_keys"
TOKEN_PREFIX: Final = "tk1"
_CURRENT: Final = "current"
_KEY_BYTES: Final = 64  # AES-256-SIV: two 256-bit keys (S2V and CTR)
_FILE_TAG: Final = "DATAFACTOR-TRUSTEE-KEY"
_AD_TAG: Final = b"datafactor-token-v1"
# Party ids become folder names: letters, digits and -_. only, never "." or ".." on their own.
_PARTY_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_KEY_ID: Final = re.compile(r"[0-9a-f]{8}")
_TOKEN: Final = re.compile(r"tk1\.([0-9a-f]{8})\.([A-Za-z0-9_\-]{22,})")

MSG_BAD_PARTY: Final = N_("{party} is not a valid party id for a trustee key.")
MSG_NOT_TRUSTEE: Final = N_(
    "Only the trustee {trustee} can reverse these tokens; your organisation is not that trustee."
)
MSG_BAD_TOKEN: Final = N_(
    "Value {position} is not a token made by this platform, or it was altered; it cannot be "
    "reversed."
)
MSG_WRONG_TRUSTEE: Final = N_(
    "Value {position} was tokenised with a key that trustee {trustee} does not hold; only the "
    "trustee whose key made it can reverse it."
)
MSG_KEY_FILE_OPEN: Final = N_(
    "The trustee key file {path} can be read by other users and was not used; run: chmod 600 {path}"
)
MSG_KEY_FILE_BAD: Final = N_("The trustee key file {path} cannot be used: {reason}")


class KeyFileRefused(DomainError):
    """A trustee key file is too widely readable, unreadable or damaged: an operator must act."""

    status = 500
    code = "trustee-key-refused"
    title = N_("A trustee key cannot be used")


class HasPartyId(Protocol):
    """Anything that says which party is acting (``permissions.Principal`` does)."""

    @property
    def party_id(self) -> str: ...


@dataclass(frozen=True)
class TrusteeKey:
    """One AES-SIV key of a trustee party; ``secret`` never appears in a repr or a log."""

    party_id: str
    key_id: str
    secret: bytes = field(repr=False)


def valid_party_id(party_id: object) -> bool:
    """Whether ``party_id`` can name a trustee (it becomes a folder name)."""
    return isinstance(party_id, str) and _PARTY_ID.fullmatch(party_id) is not None


def _check_party(party_id: str) -> str:
    if not valid_party_id(party_id):
        raise InvalidInput(MSG_BAD_PARTY, field="trustee", code="bad-trustee", party=party_id)
    return party_id


def _key_id_of(secret: bytes) -> str:
    # Derived from the key, so a key file cannot claim another key's id unnoticed.
    return hashlib.sha256(b"datafactor trustee key id\0" + secret).hexdigest()[:8]


def _read_private(path: Path) -> str:
    """The text of a file only its owner can read; ``KeyFileRefused`` otherwise."""
    try:
        return read_private_file(path)
    except PrivateFileRefused as exc:
        if exc.widely_readable:
            raise KeyFileRefused(MSG_KEY_FILE_OPEN, path=str(path)) from None
        raise KeyFileRefused(MSG_KEY_FILE_BAD, path=str(path), reason=exc.reason) from None


class TrusteeKeys:
    """The trustee key store under one folder (see the module docstring for the layout)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], TrusteeKey] = {}

    def _folder(self, party_id: str) -> Path:
        return self.directory / _check_party(party_id)

    def path_of(self, party_id: str, key_id: str) -> Path:
        """The file of one key (it need not exist)."""
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError(f"not a key id: {key_id!r}")
        return self._folder(party_id) / f"{key_id}.key"

    def _new_key(self, party_id: str) -> TrusteeKey:
        secret = secrets.token_bytes(_KEY_BYTES)
        key = TrusteeKey(party_id, _key_id_of(secret), secret)
        line = f"{_FILE_TAG}+{party_id}+{key.key_id}+{base64.b64encode(secret).decode()}\n"
        write_new_private_file(self.path_of(party_id, key.key_id), line)
        return key

    def current(self, party_id: str) -> TrusteeKey:
        """The key new tokens of ``party_id`` use, made on first use."""
        pointer = self._folder(party_id) / _CURRENT
        if not pointer.exists():
            key = self._new_key(party_id)
            if not write_new_private_file(pointer, key.key_id + "\n"):
                # Another process made the trustee's first key at the same moment and won; this
                # key was never current, so no token uses it.
                self.path_of(party_id, key.key_id).unlink(missing_ok=True)
        key_id = _read_private(pointer)
        if not _KEY_ID.fullmatch(key_id):
            raise KeyFileRefused(MSG_KEY_FILE_BAD, path=str(pointer), reason="not a key id")
        try:
            return self.get(party_id, key_id)
        except KeyError:
            reason = f"it names the key {key_id}, which is missing"
            raise KeyFileRefused(MSG_KEY_FILE_BAD, path=str(pointer), reason=reason) from None

    def has(self, party_id: str, key_id: str) -> bool:
        """Whether ``party_id`` holds the key ``key_id`` (current or retired)."""
        return bool(_KEY_ID.fullmatch(key_id)) and self.path_of(party_id, key_id).is_file()

    def get(self, party_id: str, key_id: str) -> TrusteeKey:
        """One key of the trustee, current or retired; ``KeyError`` if it does not hold it."""
        with self._lock:
            cached = self._cache.get((party_id, key_id))
        if cached is not None:
            return cached
        if not self.has(party_id, key_id):
            raise KeyError(key_id)
        path = self.path_of(party_id, key_id)
        parts = _read_private(path).split("+", 3)
        try:
            if len(parts) != 4 or parts[0] != _FILE_TAG:
                raise ValueError("not a trustee key file")
            secret = base64.b64decode(parts[3], validate=True)
        except (ValueError, binascii.Error) as exc:
            raise KeyFileRefused(MSG_KEY_FILE_BAD, path=str(path), reason=str(exc)) from None
        if parts[1] != party_id or parts[2] != key_id or _key_id_of(secret) != key_id:
            raise KeyFileRefused(
                MSG_KEY_FILE_BAD, path=str(path), reason="it belongs to another trustee or key id"
            )
        key = TrusteeKey(party_id, key_id, secret)
        with self._lock:
            self._cache[(party_id, key_id)] = key
        return key

    def key_ids(self, party_id: str) -> list[str]:
        """Every key id the trustee holds (current and retired), sorted."""
        folder = self._folder(party_id)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.key") if _KEY_ID.fullmatch(p.stem))

    def rotate(self, party_id: str) -> tuple[TrusteeKey, TrusteeKey]:
        """Make a new current key for ``party_id``; returns (old, new). Old keys are kept."""
        old = self.current(party_id)
        new = self._new_key(party_id)
        replace_private_file(self._folder(party_id) / _CURRENT, new.key_id + "\n")
        return old, new


def trustee_keys(settings: Settings) -> TrusteeKeys:
    """The deployment's trustee key store: ``<var_dir>/trustee_keys``."""
    return TrusteeKeys(Path(settings.var_dir) / KEY_DIR)


# --------------------------------------------------------------------------------------- tokens


def _associated_data(party_id: str, context: str) -> list[bytes]:
    return [_AD_TAG, party_id.encode("utf-8"), context.encode("utf-8")]


class Tokeniser:
    """Tokens of one trustee key and context; ``tokenise(value)`` is deterministic."""

    def __init__(self, key: TrusteeKey, context: str = "") -> None:
        self.key = key
        self.context = context
        self._siv = AESSIV(key.secret)
        self._ad = _associated_data(key.party_id, context)

    def __call__(self, value: str) -> str:
        sealed = self._siv.encrypt(value.encode("utf-8"), self._ad)
        body = base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")
        return f"{TOKEN_PREFIX}.{self.key.key_id}.{body}"


def tokenise(
    values: Iterable[str | None], *, key: TrusteeKey, context: str = ""
) -> list[str | None]:
    """Tokens of ``values`` under ``key`` (``None`` stays ``None``)."""
    make = Tokeniser(key, context)
    return [None if v is None else make(v) for v in values]


def token_key_id(token: str) -> str | None:
    """The key id a token names, or ``None`` when ``token`` is not shaped like a token."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def require_trustee(principal: HasPartyId, trustee: str) -> None:
    """Refuse (``Forbidden``) unless ``principal`` acts for the trustee party ``trustee``.

    Holding a permission is not enough: the key is the trustee's alone, so no operator or
    regulator role reverses tokens on the trustee's behalf.
    """
    if principal.party_id != trustee:
        raise Forbidden(MSG_NOT_TRUSTEE, code="not-trustee", trustee=trustee)


def detokenise(
    tokens: Sequence[str | None], *, trustee: str, keys: TrusteeKeys, context: str = ""
) -> list[str | None]:
    """The original values of ``tokens`` made for ``trustee`` (``None`` stays ``None``).

    Refuses (naming the 1-based position) a token that is malformed or altered
    (``InvalidInput``) and one made with a key the trustee does not hold (``Forbidden``).
    The caller checks first, with ``require_trustee``, that it acts for the trustee.
    """
    _check_party(trustee)
    ciphers: dict[str, tuple[AESSIV, list[bytes]]] = {}
    ad = _associated_data(trustee, context)
    out: list[str | None] = []
    for position, token in enumerate(tokens, start=1):
        if token is None:
            out.append(None)
            continue
        match = _TOKEN.fullmatch(token.strip()) if isinstance(token, str) else None
        if match is None:
            raise InvalidInput(MSG_BAD_TOKEN, code="bad-token", position=position)
        key_id, body = match.groups()
        if key_id not in ciphers:
            if not keys.has(trustee, key_id):
                raise Forbidden(
                    MSG_WRONG_TRUSTEE, code="wrong-trustee", position=position, trustee=trustee
                )
            ciphers[key_id] = (AESSIV(keys.get(trustee, key_id).secret), ad)
        siv, associated = ciphers[key_id]
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            out.append(siv.decrypt(sealed, associated).decode("utf-8"))
        except (InvalidTag, ValueError, binascii.Error):
            raise InvalidInput(MSG_BAD_TOKEN, code="bad-token", position=position) from None
    return out
