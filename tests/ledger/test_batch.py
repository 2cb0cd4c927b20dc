"""Batch hashing for ``ledger verify``: the native module agrees with the Python reference.

``make install`` builds ``datafactor.ledger._native``; both it and the Python fallback must give
exactly the RFC 6962 hashes of ``merkle.py``, and both must refuse (``None``) a chunk that does not
split into exactly its entries, so that verify re-reads it row by row.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datafactor.ledger import batch
from datafactor.ledger.merkle import leaf_hash, node_hash

SEP = 0x0A
Joined = Callable[[bytes, int, int], bytes | None]
Levels = Callable[[bytes], list[bytes]]


def _impl(name: str) -> tuple[Joined, Levels]:
    if name == "python":
        return batch.py_leaf_hashes_joined, batch.py_subtree_levels
    assert batch._native is not None, "datafactor.ledger._native is not built: run `make install`"
    return batch._native.leaf_hashes_joined, batch._native.subtree_levels


both = pytest.mark.parametrize("impl", ["python", "native"])
entries = st.lists(
    st.binary(max_size=80).map(lambda e: e.replace(b"\n", b"")), min_size=1, max_size=40
)


def test_the_native_module_is_built() -> None:
    # make install compiles it (gcc and OpenSSL's headers come with `make install`'s build deps);
    # without it verify still works, about three times slower, so a missing build must be seen.
    assert batch.NATIVE, "datafactor.ledger._native is not built: run `make install`"


@both
@settings(max_examples=150, deadline=None)
@given(items=entries)
def test_leaf_hashes_of_joined_entries(impl: str, items: list[bytes]) -> None:
    joined, _ = _impl(impl)
    expected = b"".join(leaf_hash(e) for e in items)
    assert joined(b"\n".join(items), SEP, len(items)) == expected


@both
@settings(max_examples=150, deadline=None)
@given(items=entries, data=st.data())
def test_a_chunk_that_does_not_split_into_its_entries_is_refused(
    impl: str, items: list[bytes], data: st.DataObject
) -> None:
    joined, _ = _impl(impl)
    if data.draw(st.booleans()):  # an entry holds the separator
        k = data.draw(st.integers(0, len(items) - 1))
        at = data.draw(st.integers(0, len(items[k])))
        items[k] = items[k][:at] + b"\n" + items[k][at:]
        count = len(items)
    else:  # the count is not the number of entries
        count = data.draw(
            st.sampled_from([n for n in (len(items) - 1, len(items) + 1, 2**62) if n])
        )
    assert joined(b"\n".join(items), SEP, count) is None


@both
@settings(max_examples=100, deadline=None)
@given(leaves=st.integers(1, 70))
def test_subtree_levels_are_rfc_6962_nodes(impl: str, leaves: int) -> None:
    _, levels = _impl(impl)
    hashes = [leaf_hash(b"%d" % i) for i in range(leaves)]
    expected = [b"".join(hashes)]
    while len(hashes) > 1:
        hashes = [node_hash(a, b) for a, b in zip(hashes[0::2], hashes[1::2], strict=False)]
        expected.append(b"".join(hashes))
    assert levels(expected[0]) == expected


@both
def test_bad_arguments_are_refused(impl: str) -> None:
    joined, levels = _impl(impl)
    with pytest.raises(ValueError, match="multiple of 32"):
        levels(b"x" * 33)
    with pytest.raises(ValueError, match="multiple of 32"):
        levels(b"")
    with pytest.raises(ValueError, match="count positive"):
        joined(b"", SEP, 0)
    with pytest.raises(ValueError, match="sep must be a byte"):
        joined(b"", 256, 1)
