"""RFC 6962 hashing of whole chunks for ``ledger verify``: native when built, Python otherwise.

``make install`` compiles ``_native.c`` (OpenSSL's SHA-256, one call per chunk, the GIL released);
a Python without a C compiler still verifies, about three times slower, with the functions
below, which are also the reference the tests hold the native ones to. ``NATIVE`` says which ran.
"""

from __future__ import annotations

import hashlib

try:
    from datafactor.ledger import _native
except ImportError:  # pragma: no cover - the build installs it; see the module doc
    _native = None  # type: ignore[assignment]

NATIVE = _native is not None


def py_checked_leaf_hashes(data: bytes, sep: int, count: int) -> bytes | None:
    """The leaf hashes of ``count`` records (stored hash, then entry) joined by byte ``sep``.

    Each record is a stored 32-byte leaf hash followed by its entry. The concatenated leaf hashes
    SHA-256(0x00 || entry) when every record parses (the last holds no ``sep``) and every entry
    hashes to its stored hash; ``None`` otherwise (the caller then reads the rows one by one).
    """
    if not 0 <= sep <= 255 or count < 1:
        raise ValueError("sep must be a byte and count positive")
    separator = bytes((sep,))
    sha = hashlib.sha256
    digests = []
    at = 0
    for k in range(count):
        if len(data) - at < 32:
            return None
        cut = data.find(separator, at + 32)
        if (cut != -1) if k == count - 1 else (cut == -1):
            return None
        if cut == -1:
            cut = len(data)
        digest = sha(b"\x00" + data[at + 32 : cut]).digest()
        if digest != data[at : at + 32]:
            return None
        digests.append(digest)
        at = cut + 1
    return b"".join(digests)


def py_subtree_levels(hashes: bytes) -> list[bytes]:
    """Each level of the perfect subtrees over concatenated leaf hashes, up to one node."""
    if not hashes or len(hashes) % 32:
        raise ValueError("hashes must be a positive multiple of 32 bytes")
    levels = [hashes]
    sha = hashlib.sha256
    while len(hashes) > 32:
        hashes = b"".join(
            [sha(b"\x01" + hashes[i : i + 64]).digest() for i in range(0, len(hashes) - 32, 64)]
        )
        levels.append(hashes)
    return levels


checked_leaf_hashes = _native.checked_leaf_hashes if NATIVE else py_checked_leaf_hashes
subtree_levels = _native.subtree_levels if NATIVE else py_subtree_levels


def digest_at(level: bytes, index: int) -> bytes:
    """The ``index``-th 32-byte hash of a concatenated level."""
    return level[32 * index : 32 * index + 32]
