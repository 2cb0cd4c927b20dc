"""RFC 6962 / RFC 9162 §2.1 Merkle tree hashing, proof generation and proof verification.

This module owns the tree arithmetic of the transparency ledger and nothing else: the leaf and
interior node hashes (SHA-256 with the 0x00 / 0x01 domain-separation prefixes), the tree head
(MTH) of any size, inclusion and consistency proof *generation* by the RFC 9162 §2.1.3.1 and
§2.1.4.1 recursions, and their *verification* by the independent §2.1.3.2 and §2.1.4.2
algorithms. Generation never touches leaves directly: it reads hashes of perfect, aligned subtrees
(``2**level`` leaves starting at leaf ``index * 2**level``) through the ``HashReader`` protocol, so
a database layer that stores those hashes (one row per completed subtree, written once, never
updated) answers every root and proof with O(log n) point reads. ``MemoryTree`` is the in-memory
reader used by tests, tools and the verifier CLI; ``root_from_leaf_hashes`` re-derives a tree head
from a stream of leaf hashes in constant memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Sizes are uint64 on the wire (checkpoints, RFC 9162 structures); a proof for a tree of at most
# 2**64 leaves never has more than 64 elements, so anything longer is garbage by construction.
_MAX_TREE_SIZE = 2**64 - 1
_MAX_PROOF_LEN = 64

_sha256 = hashlib.sha256


class HashReader(Protocol):
    """Read access to the hashes of perfect, aligned subtrees of an append-only tree.

    ``get_subtree(level, index)`` returns the 32-byte root of the perfect subtree holding the
    ``2**level`` leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf hashes.
    Such a subtree never changes once its last leaf is appended, which is what lets a store keep
    one immutable row per subtree. Implementations raise ``LookupError`` for incomplete subtrees.
    """

    def get_subtree(self, level: int, index: int) -> bytes: ...


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of a leaf is SHA-256(0x00 || entry)."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of an interior node is SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(reader: HashReader, start: int, end: int) -> bytes:
    """Return MTH(D[start:end]) from O(log n) perfect-subtree lookups.

    The range is split into perfect subtrees by the binary decomposition of its length, largest
    first, and folded right to left; this is exactly the MTH recursion, whose left child is always
    the largest power of two smaller than the size. Each piece is a stored subtree only when it is
    aligned, so ``start`` must be a multiple of the largest power of two not exceeding
    ``end - start``; every range the RFC proofs need (and ``[0, size)``) satisfies this.
    """
    if start < 0 or end < start:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    if start % (1 << (size.bit_length() - 1)):
        raise ValueError(f"leaf range [{start}, {end}) is not aligned to perfect subtrees")
    pieces: list[bytes] = []
    position = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            pieces.append(reader.get_subtree(level, position >> level))
            position += 1 << level
    result = pieces.pop()
    while pieces:
        result = node_hash(pieces.pop(), result)
    return result


def tree_root(reader: HashReader, size: int) -> bytes:
    """Return the tree head MTH of the first ``size`` leaves (SHA-256("") when empty)."""
    return range_hash(reader, 0, size)


def inclusion_proof(reader: HashReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]): the audit path, leaf-level sibling first.

    Walks the MTH recursion top-down, collecting the sibling of the branch holding the leaf; at
    most one sibling (the first right-hand one) is a non-perfect range, so the whole proof costs
    O(log n) subtree reads.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    siblings: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split_point(n)
        if m < k:
            siblings.append(range_hash(reader, start + k, start + n))
            n = k
        else:
            siblings.append(range_hash(reader, start, start + k))
            start, n, m = start + k, n - k, m - k
    siblings.reverse()
    return siblings


def batch_inclusion_proofs(
    known: Mapping[tuple[int, int], bytes], first: int, size: int
) -> list[list[bytes]]:
    """The audit paths of leaves ``first .. size-1`` in the tree of ``size``, all at once.

    ``known`` maps (level, index) to the hash of every perfect subtree the paths need: the
    compact range of ``[0, first)`` and every subtree whose last leaf is at or after ``first``
    (what appending a batch computes anyway). Same result as ``inclusion_proof`` for each leaf,
    but by direct addressing instead of the top-down recursion — what an integrator handing
    back hundreds of proofs per commit spends its time on. A path is, from the leaf up: the
    siblings below the level ``inner`` where the leaf's branch leaves the tree's right edge,
    the hash of the partial subtree to its right there, then the left siblings above. Every
    leaf under one subtree below ``inner`` shares the path from that subtree up, so each such
    tail is built once, from its parent's, and a leaf's path costs one sibling and a copy.
    """
    if not 0 <= first <= size:
        raise ValueError(f"no leaves {first}..{size - 1} in a tree of size {size}")
    height = size.bit_length()
    # Above ``inner`` a leaf's index agrees with ``size`` bit for bit (``inner`` is the highest
    # bit where they differ), so its path from ``inner`` up depends on ``inner`` alone.
    tops: dict[int, tuple[bytes, ...]] = {}
    # (level, index) of a subtree below its leaves' ``inner`` -> their path from that level up
    tails: dict[tuple[int, int], tuple[bytes, ...]] = {}
    proofs: list[list[bytes]] = []
    for m in range(first, size):
        inner = (m ^ size).bit_length() - 1
        missing: list[tuple[int, int]] = []
        level = 1
        while level < inner:
            tail = tails.get((level, m >> level))
            if tail is not None:
                break
            missing.append((level, m >> level))
            level += 1
        else:
            tail = tops.get(inner)
            if tail is None:
                tail = tops[inner] = _path_top(known, m, inner, size, height)
        for level, index in reversed(missing):
            tail = tails[(level, index)] = (known[(level, index ^ 1)], *tail)
        proofs.append([known[(0, m ^ 1)], *tail] if inner else list(tail))
    return proofs


def _path_top(
    known: Mapping[tuple[int, int], bytes], m: int, inner: int, size: int, height: int
) -> tuple[bytes, ...]:
    """Leaf ``m``'s path from level ``inner`` up (see ``batch_inclusion_proofs``)."""
    top: list[bytes] = []
    end = ((m >> inner) + 1) << inner
    if end < size:  # the partial subtree right of the leaf's branch: a hash of the right edge
        pieces = []
        position = end
        for level in range(inner - 1, -1, -1):
            if size >> level & 1:
                pieces.append(known[(level, position >> level)])
                position += 1 << level
        digest = pieces.pop()
        while pieces:
            digest = _sha256(b"\x01" + pieces.pop() + digest).digest()
        top.append(digest)
    top += [
        known[(level, (m >> level) ^ 1)] for level in range(inner + 1, height) if m >> level & 1
    ]
    return tuple(top)


def consistency_proof(reader: HashReader, first_size: int, second_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(first_size, D[0:second_size]), deepest node first.

    Empty when ``first_size`` is 0 or equals ``second_size`` (nothing to prove).
    """
    if not 0 <= first_size <= second_size:
        raise ValueError(f"no consistency proof from size {first_size} to size {second_size}")
    if first_size in (0, second_size):
        return []
    nodes: list[bytes] = []
    start, n, m = 0, second_size, first_size
    # ``whole`` is SUBPROOF's b flag: true while the first tree's root is still the whole of the
    # range being descended, so the verifier already knows that node and it is left out.
    whole = True
    while m != n:
        k = _split_point(n)
        if m <= k:
            nodes.append(range_hash(reader, start + k, start + n))
            n = k
        else:
            nodes.append(range_hash(reader, start, start + k))
            start, n, m = start + k, n - k, m - k
            whole = False
    if not whole:
        nodes.append(range_hash(reader, start, start + n))
    nodes.reverse()
    return nodes


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_TREE_SIZE


def _is_proof(proof: object) -> bool:
    return (
        isinstance(proof, list | tuple)
        and len(proof) <= _MAX_PROOF_LEN
        and all(_is_hash(p) for p in proof)
    )


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf ``index`` with ``leaf_hash`` is under ``root``?

    Written from the verification algorithm alone (bit arithmetic on the index, no tree
    recursion), so it checks the generator rather than mirroring it. Returns False, never raises,
    for malformed input of any type.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_proof(proof)):
        return False
    if not (_is_size(index) and _is_size(tree_size)) or index >= tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(bytes(p), r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, bytes(p))
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``second_root`` an append-only extension of ``first_root``?

    Equal sizes need an empty proof and equal roots. From size 0 the proof must be empty and
    ``first_root`` must be the empty-tree hash: every tree extends the empty one, but a claimed
    empty-tree head with another root is still a false statement. Returns False, never raises,
    for malformed input of any type.
    """
    if not (_is_hash(first_root) and _is_hash(second_root) and _is_proof(proof)):
        return False
    if not (_is_size(first_size) and _is_size(second_size)) or first_size > second_size:
        return False
    if first_size == second_size:
        return len(proof) == 0 and first_root == second_root
    if first_size == 0:
        return len(proof) == 0 and first_root == EMPTY_ROOT
    if len(proof) == 0:
        return False
    path = [bytes(p) for p in proof]
    if first_size & (first_size - 1) == 0:
        # The first tree is a perfect subtree of the second, so its root is itself a node the
        # proof would otherwise carry.
        path.insert(0, bytes(first_root))
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class MemoryTree:
    """An in-memory append-only tree that keeps every perfect-subtree hash, level by level.

    ``levels[h][i]`` is the hash of the perfect subtree of ``2**h`` leaves starting at leaf
    ``i * 2**h`` — the same layout a database table or a tile store would persist. Appending a
    leaf completes at most one subtree per level, so each append costs amortised O(1) hashes,
    and every read the proof generators need is a list index.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append_leaf_hash(h)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def append(self, entry: bytes) -> int:
        """Append a leaf entry (hashed with ``leaf_hash``) and return its index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, digest: bytes) -> int:
        """Append an already computed leaf hash and return its index."""
        if not _is_hash(digest):
            raise ValueError("a leaf hash must be 32 bytes")
        levels = self._levels
        index = len(levels[0])
        levels[0].append(bytes(digest))
        level, i = 0, index
        # A right child (odd index) completes its parent; carry upwards like a binary counter.
        while i & 1:
            parent = node_hash(levels[level][i - 1], levels[level][i])
            level += 1
            if level == len(levels):
                levels.append([])
            levels[level].append(parent)
            i >>= 1
        return index

    def get_subtree(self, level: int, index: int) -> bytes:
        """``HashReader``: the hash of the complete subtree at (level, index)."""
        if level < 0 or index < 0 or level >= len(self._levels):
            raise LookupError(f"no complete subtree at level {level}, index {index}")
        row = self._levels[level]
        if index >= len(row):
            raise LookupError(f"no complete subtree at level {level}, index {index}")
        return row[index]

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash stored at ``index``."""
        return self.get_subtree(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Tree head at ``size`` (default: the current size)."""
        return tree_root(self, self._size_arg(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of ``size`` leaves (default: current)."""
        return inclusion_proof(self, index, self._size_arg(size))

    def consistency_proof(self, first_size: int, second_size: int | None = None) -> list[bytes]:
        """Consistency proof from ``first_size`` to ``second_size`` (default: current)."""
        return consistency_proof(self, first_size, self._size_arg(second_size))

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size


# Leaves are folded in chunks of this many (a power of two): a full chunk is a perfect aligned
# subtree, so it is reduced level by level with list comprehensions (fast in CPython) and pushed
# onto the compact-range stack as a single node.
_CHUNK_LEVEL = 10
_CHUNK = 1 << _CHUNK_LEVEL


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """Re-derive the tree head of a stream of 32-byte leaf hashes in O(log n) memory.

    Keeps the compact range of the prefix seen so far — one perfect-subtree hash per set bit of
    the count, largest (leftmost) first — merging equal-sized neighbours as leaves arrive, then
    folds the stack right to left exactly as MTH does. Raises ``ValueError`` on a hash that is not
    32 bytes.
    """
    stack: list[tuple[int, bytes]] = []  # (level, hash), strictly decreasing levels
    sha = _sha256
    iterator = iter(leaf_hashes)
    while True:
        chunk = list(islice(iterator, _CHUNK))
        if not chunk:
            break
        if any(len(h) != HASH_SIZE for h in chunk):
            raise ValueError("every leaf hash must be 32 bytes")
        if len(chunk) == _CHUNK:
            level_hashes = chunk
            while len(level_hashes) > 1:
                level_hashes = [
                    sha(b"\x01" + a + b).digest()
                    for a, b in zip(level_hashes[0::2], level_hashes[1::2], strict=True)
                ]
            _push(stack, _CHUNK_LEVEL, bytes(level_hashes[0]))
        else:
            for h in chunk:
                _push(stack, 0, bytes(h))
    if not stack:
        return EMPTY_ROOT
    result = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        result = node_hash(h, result)
    return result


def _push(stack: list[tuple[int, bytes]], level: int, digest: bytes) -> None:
    # Stack levels strictly decrease, so a new node only ever merges with an equal-level top.
    while stack and stack[-1][0] == level:
        _, left = stack.pop()
        digest = node_hash(left, digest)
        level += 1
    stack.append((level, digest))
