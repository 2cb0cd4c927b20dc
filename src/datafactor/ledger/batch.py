"""RFC 6962 hashing of whole chunks for ``ledger verify``: native when built, Python otherwise.

``make install`` compiles ``_native.c`` (OpenSSL's SHA-256, one call per chunk, the GIL released);
a Python without a C compiler still verifies, about three times slower, with the functions
below, which are also the reference the tests hold the native ones to. ``NATIVE`` says which ran.
"""

from __future__ import annotations

import functools

from datafactor.ledger.merkle import leaf_hash, node_hash

try:
    from datafactor.ledger import _native
except ImportError:  # pragma: no cover - the build installs it; see the module doc
    _native = None  # type: ignore[assignment]

NATIVE = _native is not None


def py_leaf_hashes_joined(data: bytes, sep: int, count: int) -> bytes | None:
    """The concatenated leaf hashes of the ``count`` entries in ``data`` joined by byte ``sep``.

    ``None`` unless ``data`` splits into exactly ``count`` pieces — then no entry held ``sep`` and
    the split is the only one; otherwise the caller reads the entries one by one.
    """
    if not 0 <= sep <= 255 or count < 1:
        raise ValueError("sep must be a byte and count positive")
    entries = data.split(bytes((sep,)))
    if len(entries) != count:
        return None
    return b"".join([leaf_hash(e) for e in entries])


def py_subtree_levels(hashes: bytes) -> list[bytes]:
    """Each level of the perfect subtrees over concatenated leaf hashes, up to one node."""
    if not hashes or len(hashes) % 32:
        raise ValueError("hashes must be a positive multiple of 32 bytes")
    levels = [hashes]
    while len(hashes) > 32:
        hashes = b"".join(
            [
                node_hash(hashes[i : i + 32], hashes[i + 32 : i + 64])
                for i in range(0, len(hashes) - 32, 64)
            ]
        )
        levels.append(hashes)
    return levels


leaf_hashes_joined = _native.leaf_hashes_joined if NATIVE else py_leaf_hashes_joined
subtree_levels = _native.subtree_levels if NATIVE else py_subtree_levels
# Reads a SQLite ledger's chunks through its own connection (fsck.py); no Python equivalent.
SqliteReader = _native.SqliteReader if NATIVE else None


@functools.cache
def same_sqlite() -> bool:
    """Whether the native module and the ``sqlite3`` module use one and the same SQLite library."""
    import _sqlite3

    return _native is not None and _native.same_sqlite(_sqlite3.__file__)


def digest_at(level: bytes, index: int) -> bytes:
    """The ``index``-th 32-byte hash of a concatenated level."""
    return level[32 * index : 32 * index + 32]
