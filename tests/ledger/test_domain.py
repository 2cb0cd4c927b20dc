"""Merkle tree hashing, proofs and verification: RFC 6962 reference vectors and properties.

Generated proofs are checked three ways: against the published certificate-transparency /
transparency-dev reference vectors, against a naive transcription of the RFC 9162 recursions over
raw leaves, and with the independent verification algorithms — which must also reject every
single-bit corruption and never raise on garbage.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datafactor.ledger as ledger
from datafactor.ledger import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from datafactor.ledger import domain as ledger_domain

# The RFC 6962 reference tree of certificate-transparency's merkle_tree_test.cc, as used by
# github.com/transparency-dev/merkle proof/verify_test.go.
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# (leaf index, tree size, proof); the reference file numbers leaves from 1.
INCLUSION_VECTORS = [
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (0, 1, []),
]

# (first size, second size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]


# --- a naive transcription of RFC 9162 §2.1, over raw leaf hashes, as the reference model ---


def naive_mth(hashes: list[bytes]) -> bytes:
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(naive_mth(hashes[:k]), naive_mth(hashes[k:]))


def naive_path(m: int, hashes: list[bytes]) -> list[bytes]:
    n = len(hashes)
    if n <= 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, hashes[:k]), naive_mth(hashes[k:])]
    return [*naive_path(m - k, hashes[k:]), naive_mth(hashes[:k])]


def naive_subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if whole else [naive_mth(hashes)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, hashes[:k], whole), naive_mth(hashes[k:])]
    return [*naive_subproof(m - k, hashes[k:], False), naive_mth(hashes[:k])]


def _tree(n: int) -> MemoryTree:
    tree = MemoryTree()
    for i in range(n):
        tree.append(i.to_bytes(4, "big"))
    return tree


BIG = _tree(2100)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- reference vectors ---


def test_empty_tree_hash() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MemoryTree().root() == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_reference_roots_for_every_size() -> None:
    tree = MemoryTree()
    for size, leaf in enumerate(LEAVES, start=1):
        tree.append(leaf)
        assert tree.root() == ROOTS[size - 1]
        assert root_from_leaf_hashes(leaf_hash(x) for x in LEAVES[:size]) == ROOTS[size - 1]
    for size in range(1, 9):
        assert tree.root(size) == ROOTS[size - 1]


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert ROOTS[0] == leaf_hash(b"")
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_reference_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    tree = MemoryTree(leaf_hash(x) for x in LEAVES)
    assert tree.inclusion_proof(index, size) == proof
    assert verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_VECTORS)
def test_reference_consistency_proofs(first: int, second: int, proof: list[bytes]) -> None:
    tree = MemoryTree(leaf_hash(x) for x in LEAVES)
    assert tree.consistency_proof(first, second) == proof
    assert verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)
    if proof:
        assert not verify_consistency(first, second, ROOTS[first - 2], ROOTS[second - 1], proof)


# --- generator versus the naive RFC recursion ---


def test_proofs_match_naive_rfc_recursion_exhaustively() -> None:
    hashes = [BIG.leaf_hash_at(i) for i in range(70)]
    for size in range(1, 70):
        prefix = hashes[:size]
        assert BIG.root(size) == naive_mth(prefix)
        for index in range(size):
            assert BIG.inclusion_proof(index, size) == naive_path(index, prefix)
        for first in range(1, size + 1):
            assert BIG.consistency_proof(first, size) == naive_subproof(first, prefix, True)


def test_range_hash_matches_naive_for_aligned_ranges() -> None:
    hashes = [BIG.leaf_hash_at(i) for i in range(256)]
    for start in range(0, 128, 16):
        for end in range(start, start + 17):
            assert range_hash(BIG, start, end) == naive_mth(hashes[start:end])


def test_range_hash_refuses_unaligned_ranges() -> None:
    with pytest.raises(ValueError, match="aligned"):
        range_hash(BIG, 3, 7)
    with pytest.raises(ValueError, match="range"):
        range_hash(BIG, 5, 4)


def test_generators_refuse_impossible_requests() -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(BIG, 10, 10)
    with pytest.raises(ValueError, match="consistency"):
        consistency_proof(BIG, 11, 10)
    with pytest.raises(ValueError, match="outside"):
        BIG.root(BIG.size + 1)
    with pytest.raises(LookupError):
        tree_root(BIG, BIG.size + 1)


def test_proofs_from_a_grown_tree_describe_the_past() -> None:
    small = _tree(1000)
    for size in (1, 2, 3, 513, 999, 1000):
        assert small.root(size) == BIG.root(size)
        assert small.inclusion_proof(size // 2, size) == BIG.inclusion_proof(size // 2, size)
        assert small.consistency_proof(size // 3, size) == BIG.consistency_proof(size // 3, size)


def test_every_proof_of_a_tree_verifies() -> None:
    size = 1037
    root = BIG.root(size)
    for index in range(size):
        proof = BIG.inclusion_proof(index, size)
        assert verify_inclusion(BIG.leaf_hash_at(index), index, size, proof, root)
    for first in range(size + 1):
        proof = BIG.consistency_proof(first, size)
        assert verify_consistency(first, size, BIG.root(first), root, proof)


def _batch_known(tree: MemoryTree, first: int, size: int) -> dict[tuple[int, int], bytes]:
    """Only what appending leaves first..size-1 computes: the compact range of [0, first) and
    every perfect subtree whose last leaf is one of the new ones."""
    known = {}
    position = 0
    for level in range(first.bit_length() - 1, -1, -1):
        if first >> level & 1:
            known[(level, position >> level)] = tree.get_subtree(level, position >> level)
            position += 1 << level
    for level in range(size.bit_length()):
        for index in range(first >> level, size >> level):
            if (index + 1) << level > first:
                known[(level, index)] = tree.get_subtree(level, index)
    return known


@given(st.integers(0, 600), st.integers(1, 300))
@settings(max_examples=300)
def test_batch_proofs_equal_the_rfc_paths_from_what_the_batch_computed(
    first: int, count: int
) -> None:
    size = first + count
    proofs = ledger_domain.batch_inclusion_proofs(_batch_known(BIG, first, size), first, size)
    assert proofs == [BIG.inclusion_proof(m, size) for m in range(first, size)]


class _CountingReader:
    def __init__(self, tree: MemoryTree) -> None:
        self.tree = tree
        self.reads = 0

    def get_subtree(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.tree.get_subtree(level, index)


def test_generation_reads_logarithmically_many_subtrees() -> None:
    reader = _CountingReader(BIG)
    size = 2047  # all ones: the worst case for the right edge
    for index in (0, 1000, 2046):
        reader.reads = 0
        inclusion_proof(reader, index, size)
        assert reader.reads <= 2 * size.bit_length()
    for first in (1, 1023, 1500, 2046):
        reader.reads = 0
        consistency_proof(reader, first, size)
        assert reader.reads <= 2 * size.bit_length()
    reader.reads = 0
    tree_root(reader, size)
    assert reader.reads == size.bit_count()


# --- properties: proofs verify, any corruption is caught ---

sizes = st.integers(min_value=1, max_value=BIG.size)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), size=sizes)
def test_inclusion_proofs_verify_and_detect_bit_flips(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root = BIG.root(size)
    leaf = BIG.leaf_hash_at(index)
    proof = BIG.inclusion_proof(index, size)
    assert verify_inclusion(leaf, index, size, proof, root)

    bit = data.draw(st.integers(min_value=0, max_value=255))
    assert not verify_inclusion(_flip(leaf, bit), index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, _flip(root, bit))
    for i in range(len(proof)):
        corrupted = [*proof]
        corrupted[i] = _flip(proof[i], bit)
        assert not verify_inclusion(leaf, index, size, corrupted, root)
    # Wrong shape: a missing, extra or misplaced element, or the wrong coordinates.
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)
    assert not verify_inclusion(leaf, index, size, [root, *proof], root)
    if proof:
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
    # (The size alone is not always bound: leaf 0 has the same path shape in trees of 3 and 4
    # leaves. The signed checkpoint binds size and root together, so that is no weakness.)
    if size < BIG.size:
        assert not verify_inclusion(leaf, index, size + 1, proof, BIG.root(size + 1))
    if index + 1 < size:
        other = BIG.leaf_hash_at(index + 1)
        assert not verify_inclusion(other, index, size, proof, root)
        assert not verify_inclusion(leaf, index + 1, size, proof, root)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), second=sizes)
def test_consistency_proofs_verify_and_detect_bit_flips(data: st.DataObject, second: int) -> None:
    first = data.draw(st.integers(min_value=0, max_value=second))
    first_root, second_root = BIG.root(first), BIG.root(second)
    proof = BIG.consistency_proof(first, second)
    assert verify_consistency(first, second, first_root, second_root, proof)

    bit = data.draw(st.integers(min_value=0, max_value=255))
    assert not verify_consistency(first, second, _flip(first_root, bit), second_root, proof)
    if first > 0:  # every tree extends the empty one, whatever its root
        assert not verify_consistency(first, second, first_root, _flip(second_root, bit), proof)
    for i in range(len(proof)):
        corrupted = [*proof]
        corrupted[i] = _flip(proof[i], bit)
        assert not verify_consistency(first, second, first_root, second_root, corrupted)
    assert not verify_consistency(first, second, first_root, second_root, [*proof, first_root])
    if proof:
        assert not verify_consistency(first, second, first_root, second_root, proof[:-1])
        assert not verify_consistency(first, second, first_root, second_root, [proof[0], *proof])
    if 0 < first < second:
        assert not verify_consistency(first, second, second_root, first_root, proof)
        assert not verify_consistency(first - 1, second, first_root, second_root, proof)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=300))
def test_all_tree_builders_agree(entries: list[bytes]) -> None:
    hashes = [leaf_hash(e) for e in entries]
    expected = naive_mth(hashes)
    assert MemoryTree(hashes).root() == expected
    assert root_from_leaf_hashes(iter(hashes)) == expected


def test_streaming_root_handles_chunk_boundaries() -> None:
    for n in (1023, 1024, 1025, 2048, 2049, 2100):
        hashes = [BIG.leaf_hash_at(i) for i in range(n)]
        assert root_from_leaf_hashes(iter(hashes)) == BIG.root(n)


def test_streaming_root_of_a_million_leaves_is_fast() -> None:
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1_000_000)]
    started = time.perf_counter()
    root = root_from_leaf_hashes(hashes)
    elapsed = time.perf_counter() - started
    assert len(root) == 32
    assert elapsed < 3.0  # ~0.5 s on a laptop; generous for loaded CI machines
    assert root == MemoryTree(hashes[:1_000_000]).root()


def test_bad_leaf_hashes_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        root_from_leaf_hashes([b"\x00" * 31])
    with pytest.raises(ValueError, match="32 bytes"):
        MemoryTree().append_leaf_hash(b"\x00" * 33)


# --- verification never raises on garbage ---

GOOD_ROOT = BIG.root(8)
GOOD_LEAF = BIG.leaf_hash_at(3)
GOOD_PROOF = BIG.inclusion_proof(3, 8)
GARBAGE: list[object] = [
    None,
    "",
    "x" * 32,
    b"",
    b"\x00" * 31,
    b"\x00" * 33,
    -1,
    True,
    2**64,
    1.5,
    [b"\x00" * 31],
    [None],
    [1, 2, 3],
    {"a": 1},
    object(),
    [b"\x00" * 32] * 65,
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_verify_inclusion_returns_false_on_garbage(garbage: object) -> None:
    calls: list[Callable[[], bool]] = [
        lambda: verify_inclusion(garbage, 3, 8, GOOD_PROOF, GOOD_ROOT),  # type: ignore[arg-type]
        lambda: verify_inclusion(GOOD_LEAF, garbage, 8, GOOD_PROOF, GOOD_ROOT),  # type: ignore[arg-type]
        lambda: verify_inclusion(GOOD_LEAF, 3, garbage, GOOD_PROOF, GOOD_ROOT),  # type: ignore[arg-type]
        lambda: verify_inclusion(GOOD_LEAF, 3, 8, garbage, GOOD_ROOT),  # type: ignore[arg-type]
        lambda: verify_inclusion(GOOD_LEAF, 3, 8, GOOD_PROOF, garbage),  # type: ignore[arg-type]
    ]
    for call in calls:
        assert call() is False


@pytest.mark.parametrize("garbage", GARBAGE)
def test_verify_consistency_returns_false_on_garbage(garbage: object) -> None:
    r3, r8 = BIG.root(3), BIG.root(8)
    proof = BIG.consistency_proof(3, 8)
    calls: list[Callable[[], bool]] = [
        lambda: verify_consistency(garbage, 8, r3, r8, proof),  # type: ignore[arg-type]
        lambda: verify_consistency(3, garbage, r3, r8, proof),  # type: ignore[arg-type]
        lambda: verify_consistency(3, 8, garbage, r8, proof),  # type: ignore[arg-type]
        lambda: verify_consistency(3, 8, r3, garbage, proof),  # type: ignore[arg-type]
        lambda: verify_consistency(3, 8, r3, r8, garbage),  # type: ignore[arg-type]
    ]
    for call in calls:
        assert call() is False


def test_verification_edge_cases() -> None:
    leaf = leaf_hash(b"data")
    # A one-leaf tree: the root is the leaf hash and the proof is empty.
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 1, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    # Size 0 is consistent with everything, but only from the true empty root.
    assert verify_consistency(0, 5, EMPTY_ROOT, BIG.root(5), [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 5, BIG.root(5), BIG.root(5), [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, BIG.root(5), [EMPTY_ROOT])
    # Equal sizes need equal roots and no proof; shrinking is never consistent.
    assert verify_consistency(5, 5, BIG.root(5), BIG.root(5), [])
    assert not verify_consistency(5, 5, BIG.root(5), BIG.root(4), [])
    assert not verify_consistency(5, 5, BIG.root(5), BIG.root(5), [EMPTY_ROOT])
    assert not verify_consistency(5, 4, BIG.root(5), BIG.root(4), BIG.consistency_proof(4, 5))
    assert not verify_consistency(4, 5, BIG.root(4), BIG.root(5), [])
    # bytearray inputs are fine.
    proof = [bytearray(p) for p in BIG.inclusion_proof(2, 5)]
    leaf_ba, root_ba = bytearray(BIG.leaf_hash_at(2)), bytearray(BIG.root(5))
    assert verify_inclusion(leaf_ba, 2, 5, proof, root_ba)  # type: ignore[arg-type]


def test_package_surface() -> None:
    assert ledger.__all__ == sorted(ledger.__all__, key=lambda n: (not n.isupper(), n))
    # The surface is the pure core plus the service functions and receipt format built on it.
    assert set(ledger_domain.__all__) <= set(ledger.__all__)
    for name in ledger_domain.__all__:
        assert getattr(ledger, name) is getattr(ledger_domain, name)
    for name in ledger.__all__:
        assert getattr(ledger, name) is not None
