"""Batch hashing for ``ledger verify``: the native module agrees with the Python reference.

``make install`` builds ``datafactor.ledger._native``; both it and the Python fallback must give
exactly the RFC 6962 hashes of ``merkle.py``, and both must refuse (``None``) every chunk whose
records do not parse or whose stored hashes are wrong, so that verify re-reads it row by row.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datafactor.ledger import batch
from datafactor.ledger.merkle import leaf_hash, node_hash

SEP = 0x0A
Checked = Callable[[bytes, int, int], bytes | None]
Levels = Callable[[bytes], list[bytes]]


def _impl(name: str) -> tuple[Checked, Levels]:
    if name == "python":
        return batch.py_checked_leaf_hashes, batch.py_subtree_levels
    assert batch._native is not None, "datafactor.ledger._native is not built: run `make install`"
    return batch._native.checked_leaf_hashes, batch._native.subtree_levels


both = pytest.mark.parametrize("impl", ["python", "native"])
entries = st.lists(st.binary(max_size=80), min_size=1, max_size=40)


def _records(items: list[bytes], stored: list[bytes] | None = None) -> bytes:
    stored = stored if stored is not None else [leaf_hash(e) for e in items]
    return bytes([SEP]).join(h + e for h, e in zip(stored, items, strict=True))


def test_the_native_module_is_built() -> None:
    # make install compiles it (gcc and OpenSSL's headers come with `make install`'s build deps);
    # without it verify still works, about three times slower, so a missing build must be seen.
    assert batch.NATIVE, "datafactor.ledger._native is not built: run `make install`"


@both
@settings(max_examples=150, deadline=None)
@given(items=entries)
def test_leaf_hashes_of_clean_records(impl: str, items: list[bytes]) -> None:
    checked, _ = _impl(impl)
    clean = [e.replace(bytes([SEP]), b"") for e in items]
    assert checked(_records(clean), SEP, len(clean)) == b"".join(leaf_hash(e) for e in clean)


@both
@settings(max_examples=150, deadline=None)
@given(items=entries, data=st.data())
def test_any_damage_is_refused(impl: str, items: list[bytes], data: st.DataObject) -> None:
    checked, _ = _impl(impl)
    clean = [e.replace(bytes([SEP]), b"") for e in items]
    stored = [leaf_hash(e) for e in clean]
    k = data.draw(st.integers(0, len(clean) - 1))
    damage = data.draw(st.sampled_from(["separator", "hash", "short hash", "count"]))
    if damage == "separator":
        at = data.draw(st.integers(0, len(clean[k])))
        clean[k] = clean[k][:at] + bytes([SEP]) + clean[k][at:]
        stored[k] = leaf_hash(clean[k])  # a correct hash: only the separator is wrong
        count = len(clean)
    elif damage == "hash":
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(stored[k])
        flipped[bit // 8] ^= 1 << bit % 8
        stored[k] = bytes(flipped)
        count = len(clean)
    elif damage == "short hash":
        stored[k] = stored[k][:31]
        count = len(clean)
    else:
        count = data.draw(st.sampled_from([n for n in (len(clean) - 1, len(clean) + 1) if n]))
    assert checked(_records(clean, stored), SEP, count) is None


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
    checked, levels = _impl(impl)
    with pytest.raises(ValueError, match="multiple of 32"):
        levels(b"x" * 33)
    with pytest.raises(ValueError, match="multiple of 32"):
        levels(b"")
    with pytest.raises(ValueError, match="count positive"):
        checked(b"", SEP, 0)
    with pytest.raises(ValueError, match="sep must be a byte"):
        checked(b"", 256, 1)
