"""C2SP signed notes, tlog checkpoints and Ed25519 cosignatures: how ledger tree heads are signed.

This module owns the text formats through which the ledger publishes its state and witnesses vouch
for it, following c2sp.org/signed-note, c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature
(the Ed25519 ``cosignature/v1`` type). A note is a UTF-8 body ending in a newline, a blank line,
and one or more lines ``— <key name> <base64(4-byte key ID || signature)>``. Log keys are Ed25519
with signature type 0x01 (key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]); witness keys
are Ed25519 cosigners with type 0x04, whose signature is ``8-byte big-endian timestamp || Ed25519
signature`` over ``"cosignature/v1\\ntime <t>\\n" || body``. Keys travel as the Go
``golang.org/x/mod/sumdb/note`` strings ``<name>+<8 hex key ID>+<base64(type || public key)>``
and ``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(type || 32-byte seed)>``.

Choices the specs leave open, made here on purpose: base64 must be canonical (padding present,
unused bits zero) so a signature line has exactly one spelling; a note may carry at most 100
signatures (the spec demands at least 16, Go's implementation allows 100); a known key whose
signature fails rejects the whole note (the spec's SHOULD); a cosigner key string may carry type
0x01 or 0x04 (as transparency-dev/formats accepts) and is always written back with 0x04; cosigners
sign and verifiers accept only bodies that parse as checkpoints; root hashes must be 32 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04

MAX_SIGNATURES = 100
_MAX_UINT64 = 2**64 - 1
_MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature: "MUST NOT exceed 2^63 - 1"
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_TIMESTAMP_SIZE = 8
_KEY_ID_SIZE = 4

_SIG_PREFIX = "— "  # em dash U+2014, then a space
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile("[0-9a-fA-F]{8}")
_DECIMAL = re.compile("0|[1-9][0-9]*")


class NoteSigner(Protocol):
    """Anything that can add a signature line to a note."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> int: ...

    def sign(self, message: bytes) -> bytes:
        """Return the signature bytes (without the key ID) over the note body ``message``."""
        ...


class NoteVerifier(Protocol):
    """Anything that can check a signature line of a note."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is valid over the note body ``message``."""
        ...


def is_valid_key_name(name: str) -> bool:
    """signed-note: key names are non-empty with no Unicode spaces and no '+'."""
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() for ch in name)
        and _CONTROL.search(name) is None
    )


def key_hash(name: str, algorithm: int, public_key: bytes) -> int:
    """The 32-bit key ID: SHA-256(name || 0x0A || algorithm || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([algorithm]) + public_key).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


def _b64decode(text: str, what: str) -> bytes:
    # Canonical base64 only: b64decode alone would accept non-zero padding bits, giving one
    # signature several valid spellings.
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"{what} is not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise ValueError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")


def _parse_hex8(text: str, what: str) -> int:
    if not _HEX8.fullmatch(text):
        raise ValueError(f"{what} key ID must be 8 hexadecimal digits")
    return int(text, 16)


def _parse_vkey(vkey: str) -> tuple[str, int, int, bytes]:
    """Split ``<name>+<hash>+<base64(alg || key)>`` into (name, hash, alg, key)."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise ValueError("verifier key must look like <name>+<key ID>+<base64 key>")
    name, hash16, key64 = parts
    _check_name(name)
    claimed = _parse_hex8(hash16, "verifier")
    raw = _b64decode(key64, "verifier key")
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise ValueError("verifier key must hold a type byte and a 32-byte Ed25519 public key")
    return name, claimed, raw[0], raw[1:]


def _parse_skey(skey: str) -> tuple[str, int, int, bytes]:
    """Split ``PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>`` into (name, hash, alg, seed)."""
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise ValueError("signer key must look like PRIVATE+KEY+<name>+<key ID>+<base64 key>")
    _, _, name, hash16, key64 = parts
    _check_name(name)
    claimed = _parse_hex8(hash16, "signer")
    raw = _b64decode(key64, "signer key")
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise ValueError("signer key must hold a type byte and a 32-byte Ed25519 seed")
    return name, claimed, raw[0], raw[1:]


def _public_bytes(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


def _ed25519_verify(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class Verifier:
    """An Ed25519 (signature type 0x01) note verifier: a log's public key."""

    algorithm = ALG_ED25519

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_name(name)
        if len(public_key) != _ED25519_KEY_SIZE:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self._name = name
        self._public_bytes = bytes(public_key)
        self._public_key = Ed25519PublicKey.from_public_bytes(self._public_bytes)
        self._key_hash = key_hash(name, self.algorithm, self._public_bytes)

    @classmethod
    def from_key_string(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<key ID>+<base64(0x01 || public key)>``, checking the key ID."""
        name, claimed, alg, key = _parse_vkey(vkey)
        if alg != ALG_ED25519:
            raise ValueError(f"verifier key has signature type {alg:#04x}, expected 0x01")
        verifier = cls(name, key)
        if verifier.key_hash != claimed:
            raise ValueError("verifier key ID does not match the key")
        return verifier

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_hash(self) -> int:
        return self._key_hash

    @property
    def public_key(self) -> bytes:
        return self._public_bytes

    def key_string(self) -> str:
        """The ``<name>+<key ID>+<base64 key>`` form clients are configured with."""
        key64 = _b64encode(bytes([self.algorithm]) + self._public_bytes)
        return f"{self._name}+{self._key_hash:08x}+{key64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        return _ed25519_verify(self._public_key, message, signature)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key_string()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and (
            type(self),
            self._name,
            self._public_bytes,
        ) == (type(other), other._name, other._public_bytes)

    def __hash__(self) -> int:
        return hash((type(self), self._name, self._public_bytes))


class Signer:
    """An Ed25519 (signature type 0x01) note signer: a log's private key."""

    algorithm = ALG_ED25519

    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if len(seed) != _ED25519_KEY_SIZE:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._name = name
        self._private_key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self._key_hash = key_hash(name, self.algorithm, _public_bytes(self._private_key))

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_key_string(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>``, checking the key ID."""
        name, claimed, alg, seed = _parse_skey(skey)
        if alg != ALG_ED25519:
            raise ValueError(f"signer key has signature type {alg:#04x}, expected 0x01")
        signer = cls(name, seed)
        if signer.key_hash != claimed:
            raise ValueError("signer key ID does not match the key")
        return signer

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_hash(self) -> int:
        return self._key_hash

    def key_string(self) -> str:
        """The secret ``PRIVATE+KEY+…`` form; store it like any other secret."""
        key64 = _b64encode(bytes([self.algorithm]) + self._private_key.private_bytes_raw())
        return f"PRIVATE+KEY+{self._name}+{self._key_hash:08x}+{key64}"

    def verifier(self) -> Verifier:
        """The matching public verifier."""
        return Verifier(self._name, _public_bytes(self._private_key))

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        # Never the seed: reprs end up in logs and tracebacks.
        return f"{type(self).__name__}(name={self._name!r}, key_hash={self._key_hash:08x})"


def _cosigned_message(timestamp: int, body: bytes) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + body


def _is_checkpoint_body(body: bytes) -> bool:
    try:
        Checkpoint.parse(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


class CosignatureVerifier(Verifier):
    """A witness's public key, checking tlog-cosignature ``cosignature/v1`` Ed25519 signatures."""

    algorithm = ALG_COSIGNATURE_V1

    @classmethod
    def from_key_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a witness vkey of type 0x04 (or a plain 0x01 key, re-typed as a cosigner)."""
        name, claimed, alg, key = _parse_vkey(vkey)
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise ValueError(f"verifier key has signature type {alg:#04x}, expected 0x04")
        verifier = cls(name, key)
        if key_hash(name, alg, key) != claimed:
            raise ValueError("verifier key ID does not match the key")
        return verifier

    @staticmethod
    def timestamp_of(signature: bytes) -> int:
        """The POSIX time a cosignature (without its key ID) claims; ValueError if malformed."""
        if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            raise ValueError("an Ed25519 cosignature is an 8-byte timestamp and 64-byte signature")
        return int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            return False
        timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
        if timestamp > _MAX_TIMESTAMP or not _is_checkpoint_body(message):
            return False
        return _ed25519_verify(
            self._public_key, _cosigned_message(timestamp, message), signature[_TIMESTAMP_SIZE:]
        )


class Cosigner(Signer):
    """A witness's private key, producing tlog-cosignature ``cosignature/v1`` Ed25519 signatures."""

    algorithm = ALG_COSIGNATURE_V1

    @classmethod
    def from_key_string(cls, skey: str) -> Cosigner:
        """Parse a witness skey of type 0x04 (or a plain 0x01 key, re-typed as a cosigner)."""
        name, claimed, alg, seed = _parse_skey(skey)
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise ValueError(f"signer key has signature type {alg:#04x}, expected 0x04")
        cosigner = cls(name, seed)
        if key_hash(name, alg, _public_bytes(cosigner._private_key)) != claimed:
            raise ValueError("signer key ID does not match the key")
        return cosigner

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self._name, _public_bytes(self._private_key))

    def sign(self, message: bytes) -> bytes:
        """Cosign the checkpoint body ``message`` as of now."""
        return self.sign_at(message, int(time.time()))

    def sign_at(self, message: bytes, timestamp: int) -> bytes:
        """Cosign the checkpoint body ``message`` as of POSIX time ``timestamp``."""
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise ValueError("a cosignature timestamp must be within 0..2**63-1")
        if not _is_checkpoint_body(message):
            raise ValueError("a cosigner only signs checkpoint bodies")
        signature = self._private_key.sign(_cosigned_message(timestamp, message))
        return timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature


def generate_key(name: str) -> tuple[str, str]:
    """A new Ed25519 log key as (private ``PRIVATE+KEY+…`` string, public verifier string)."""
    signer = Signer.generate(name)
    return signer.key_string(), signer.verifier().key_string()


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note, parsed but not yet verified."""

    name: str
    key_hash: int
    signature: bytes  # the bytes after the 4-byte key ID

    def line(self) -> str:
        """The ``— <name> <base64>`` line, with its newline."""
        raw = self.key_hash.to_bytes(_KEY_ID_SIZE, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {_b64encode(raw)}\n"


class UnverifiedNoteError(ValueError):
    """No signature on the note is from a known key; ``signatures`` lists the unknown ones."""

    def __init__(self, signatures: Sequence[NoteSignature]) -> None:
        names = ", ".join(f"{s.name}+{s.key_hash:08x}" for s in signatures) or "none"
        super().__init__(f"note has no signature from a known key (signatures by: {names})")
        self.signatures = tuple(signatures)


def _check_text(text: str, what: str) -> None:
    if _CONTROL.search(text):
        raise ValueError(f"{what} must not contain control characters other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} must be valid UTF-8") from exc


def _check_body(body: str) -> None:
    if not body.endswith("\n"):
        raise ValueError("note body must end with a newline")
    _check_text(body, "note body")


def format_note(body: str, signatures: Sequence[NoteSignature]) -> str:
    """Assemble a note from its body and already computed signature lines."""
    _check_body(body)
    if not signatures:
        raise ValueError("a note needs at least one signature")
    if len(signatures) > MAX_SIGNATURES:
        raise ValueError(f"a note carries at most {MAX_SIGNATURES} signatures")
    for s in signatures:
        _check_name(s.name)
        if not 0 <= s.key_hash < 2**32:
            raise ValueError("a key ID is a 32-bit unsigned integer")
        if not s.signature:
            raise ValueError("a signature must not be empty")
    return body + "\n" + "".join(s.line() for s in signatures)


def sign_note(body: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``body`` (which must end in a newline) with every signer, in order."""
    _check_body(body)
    message = body.encode("utf-8")
    return format_note(body, [NoteSignature(s.name, s.key_hash, s.sign(message)) for s in signers])


def parse_note(note_text: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a note into its body and signature lines without verifying anything.

    Raises ``ValueError`` naming the first problem for a malformed note.
    """
    if isinstance(note_text, bytes):
        try:
            note_text = note_text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("note must be valid UTF-8") from exc
    _check_text(note_text, "note")
    # The body may itself contain blank lines; the signatures start after the last one.
    split = note_text.rfind("\n\n")
    if split < 0:
        raise ValueError("note has no blank line before its signatures")
    body, block = note_text[: split + 1], note_text[split + 2 :]
    if not block:
        raise ValueError("note has no signature lines")
    if not block.endswith("\n"):
        raise ValueError("note must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise ValueError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise ValueError(f"signature line {number} does not start with an em dash and space")
        name, space, sig64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not space or not is_valid_key_name(name):
            raise ValueError(f"signature line {number} has no valid key name")
        raw = _b64decode(sig64, f"signature line {number}")
        if len(raw) <= _KEY_ID_SIZE:
            raise ValueError(f"signature line {number} is too short")
        signatures.append(
            NoteSignature(name, int.from_bytes(raw[:_KEY_ID_SIZE], "big"), raw[_KEY_ID_SIZE:])
        )
    return body, signatures


def open_note(note_text: str | bytes, verifiers: Sequence[NoteVerifier]) -> tuple[str, list[str]]:
    """Verify a note; return its body and the names of the known keys whose signatures verify.

    Signatures whose (name, key ID) matches no verifier are ignored, as the spec requires. A
    signature from a known key that fails to verify rejects the note (``ValueError``), and a note
    with no verified signature raises ``UnverifiedNoteError`` listing the unknown signers.
    Repeated signatures by one key count once.
    """
    known: dict[tuple[str, int], NoteVerifier] = {}
    for v in verifiers:
        if (v.name, v.key_hash) in known:
            raise ValueError(f"two verifiers share the name {v.name!r} and key ID {v.key_hash:08x}")
        known[(v.name, v.key_hash)] = v
    body, signatures = parse_note(note_text)
    message = body.encode("utf-8")
    verified: list[str] = []
    seen: set[tuple[str, int]] = set()
    unknown: list[NoteSignature] = []
    for s in signatures:
        ident = (s.name, s.key_hash)
        verifier = known.get(ident)
        if verifier is None:
            unknown.append(s)
            continue
        if ident in seen:
            continue
        seen.add(ident)
        if not verifier.verify(message, s.signature):
            raise ValueError(f"signature by {s.name} ({s.key_hash:08x}) does not verify")
        verified.append(s.name)
    if not verified:
        raise UnverifiedNoteError(unknown)
    return body, verified


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint note body: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise ValueError("checkpoint origin must be a non-empty single line")
        _check_text(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise ValueError("checkpoint size must be an integer")
        if not 0 <= self.size <= _MAX_UINT64:
            raise ValueError("checkpoint size must be within 0..2**64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise ValueError("checkpoint root hash must be 32 bytes")
        # Accept any sequence of lines but store a tuple, so instances stay hashable.
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            if not line or "\n" in line:
                raise ValueError("checkpoint extension lines must be non-empty single lines")
            _check_text(line, "checkpoint extension line")

    def format(self) -> str:
        """The note body: origin, size, base64 root hash, extensions, each newline-terminated."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint note body (not a whole note: see ``parse_note``/``open_note``)."""
        if not body.endswith("\n"):
            raise ValueError("checkpoint must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise ValueError("checkpoint needs an origin, a size and a root hash line")
        origin, size_text, root64, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise ValueError("checkpoint size must be a decimal number without leading zeros")
        root_hash = _b64decode(root64, "checkpoint root hash")
        return cls(origin, int(size_text), root_hash, tuple(extensions))
