"""Content-addressed storage: streaming puts, size limits, digests as paths, resumable uploads."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from datafactor.dataplane import (
    Blob,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    UploadConflict,
    validate_digest,
)
from datafactor.errors import InvalidInput


class CountingReader:
    """A readable that produces ``total`` bytes without holding them, recording each request."""

    def __init__(self, total: int, byte: bytes = b"x") -> None:
        self.total = total
        self.given = 0
        self.requests: list[int] = []
        self._byte = byte

    def read(self, size: int = -1) -> bytes:
        self.requests.append(size)
        n = self.total - self.given if size < 0 else min(size, self.total - self.given)
        self.given += n
        return self._byte * n


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_put_stream_stores_under_sha256_layout(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = "姓名,电话\n张三,13800138000\n".encode()
    blob = store.put_stream(io.BytesIO(data), max_bytes=1000)

    digest = hashlib.sha256(data).hexdigest()
    assert blob == Blob(digest, len(data))
    path = store.path_for(digest)
    assert path == tmp_path.resolve() / "sha256" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    with store.open(digest) as handle:
        assert handle.read() == data
    # Same bytes again: one copy, no temporary file left behind.
    assert store.put_stream(io.BytesIO(data), max_bytes=1000) == blob
    assert leftovers(tmp_path) == [path]


def test_put_stream_reads_in_bounded_chunks(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    source = CountingReader(5 * 1024 * 1024 + 3)
    blob = store.put_stream(source, max_bytes=10 * 1024 * 1024, chunk_size=64 * 1024)
    assert blob.size == source.total
    assert max(source.requests) <= 64 * 1024
    assert blob.digest == hashlib.sha256(b"x" * source.total).hexdigest()


def test_oversize_upload_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    source = CountingReader(50 * 1024 * 1024)
    with pytest.raises(BlobTooLarge) as caught:
        store.put_stream(source, max_bytes=1024 * 1024, chunk_size=256 * 1024)
    assert caught.value.status == 413
    assert "1048576" in str(caught.value)
    assert source.given == 1024 * 1024 + 1  # stopped one byte past the limit
    assert leftovers(tmp_path) == []


def test_empty_upload_and_exact_limit(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    assert store.put_bytes(b"", max_bytes=0).size == 0
    assert store.put_bytes(b"abc", max_bytes=3).size == 3
    with pytest.raises(BlobTooLarge):
        store.put_bytes(b"abcd", max_bytes=3)


@pytest.mark.parametrize(
    "digest", ["../../etc/passwd", "a" * 63, "g" * 64, "a" * 64 + "/..", "", "A" * 63 + "/"]
)
def test_digests_are_validated_before_touching_a_path(tmp_path: Path, digest: str) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(InvalidInput):
        store.exists(digest)
    with pytest.raises(InvalidInput):
        store.open(digest)


def test_digest_is_normalised_to_lowercase() -> None:
    assert validate_digest("AB" * 32) == "ab" * 32


def test_missing_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    assert not store.exists("0" * 64)
    with pytest.raises(BlobNotFound):
        store.open("0" * 64)
    with pytest.raises(BlobNotFound):
        store.path_for("0" * 64)


def test_fsspec_memory_store(tmp_path: Path) -> None:
    store = BlobStore.from_url(f"memory://df-{uuid.uuid4().hex}/blobs", work_dir=tmp_path)
    assert not store.is_local
    blob = store.put_bytes(b"hello", max_bytes=10)
    assert store.exists(blob.digest)
    with store.open(blob.digest) as handle:
        assert handle.read() == b"hello"
    with pytest.raises(TypeError):
        store.path_for(blob.digest)
    with pytest.raises(BlobTooLarge):
        store.put_bytes(b"x" * 11, max_bytes=10)
    assert leftovers(tmp_path) == []


def test_from_url_plain_path_and_file_url_are_local(tmp_path: Path) -> None:
    assert BlobStore.from_url(str(tmp_path / "a")).is_local
    assert BlobStore.from_url((tmp_path / "b").as_uri()).root == (tmp_path / "b").resolve()


# --------------------------------------------------------------------------- resumable uploads

DATA = os.urandom(300_000)
DIGEST = hashlib.sha256(DATA).hexdigest()


def test_resumable_upload_survives_a_restart(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    session = store.create_upload(size=len(DATA), sha256=DIGEST, max_bytes=10**6)
    assert session.append(0, DATA[:100_000]) == 100_000
    upload_id = session.upload_id
    del store, session  # the process dies here

    store = BlobStore(tmp_path)
    resumed = store.get_upload(upload_id)
    assert (resumed.size, resumed.sha256, resumed.offset) == (len(DATA), DIGEST, 100_000)
    # The client did not see the first answer and retries the same chunk: accepted, no change.
    assert resumed.append(0, DATA[:100_000]) == 100_000
    # A retry overlapping the end is accepted too, and only its new part is written.
    assert resumed.append(50_000, DATA[50_000:200_000]) == 200_000
    assert resumed.append(200_000, DATA[200_000:]) == len(DATA)
    blob = resumed.finish()

    assert blob == Blob(DIGEST, len(DATA))
    assert store.path_for(DIGEST).read_bytes() == DATA
    assert leftovers(tmp_path) == [store.path_for(DIGEST)]
    with pytest.raises(BlobNotFound):
        store.get_upload(upload_id)


def test_upload_state_is_a_small_json_file_next_to_the_part(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    session = store.create_upload(size=len(DATA), sha256=DIGEST, max_bytes=10**6)
    assert session.state_path.parent == session.part_path.parent
    assert session.state_path.stat().st_size < 300


def test_upload_refuses_gaps_different_bytes_and_overruns(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    session = store.create_upload(size=len(DATA), sha256=DIGEST, max_bytes=10**6)
    session.append(0, DATA[:1000])
    with pytest.raises(UploadConflict, match="resume from byte 1000"):
        session.append(2000, DATA[2000:3000])
    with pytest.raises(UploadConflict, match="differs"):
        session.append(0, b"\x00" * 1000)
    with pytest.raises(UploadConflict, match="past the declared size"):
        session.append(1000, DATA[1000:] + b"extra")
    with pytest.raises(UploadConflict, match="incomplete"):
        session.finish()
    assert session.offset == 1000


def test_upload_with_wrong_checksum_is_refused_and_forgotten(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    session = store.create_upload(size=4, sha256="0" * 64, max_bytes=10)
    session.append(0, b"abcd")
    with pytest.raises(InvalidInput) as caught:
        session.finish()
    assert caught.value.code == "upload-checksum-mismatch"
    assert leftovers(tmp_path) == []


def test_upload_larger_than_limit_is_refused_at_creation(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(BlobTooLarge):
        store.create_upload(size=11, sha256=DIGEST, max_bytes=10)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("upload_id", ["../../x", "0" * 31, "Z" * 32, ""])
def test_upload_ids_are_validated(tmp_path: Path, upload_id: str) -> None:
    with pytest.raises(BlobNotFound):
        BlobStore(tmp_path).get_upload(upload_id)


def test_finish_is_idempotent_after_a_crash_following_the_move(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    session = store.create_upload(size=len(DATA), sha256=DIGEST, max_bytes=10**6)
    session.append(0, DATA)
    state = session.state_path.read_bytes()
    session.finish()
    session.state_path.write_bytes(state)  # as if the process died before removing the state

    again = BlobStore(tmp_path).get_upload(session.upload_id)
    assert again.offset == len(DATA)
    assert again.finish() == Blob(DIGEST, len(DATA))
    assert not again.state_path.exists()


def test_purge_removes_abandoned_uploads(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    session = store.create_upload(size=10, sha256=DIGEST, max_bytes=10)
    assert store.purge_uploads(older_than=timedelta(hours=1)) == 0
    assert store.purge_uploads(older_than=timedelta(seconds=-1)) == 1
    assert not session.part_path.exists()
    assert list(store.list_uploads()) == []


def test_resumable_upload_to_a_remote_store(tmp_path: Path) -> None:
    url = f"memory://df-{uuid.uuid4().hex}/blobs"
    store = BlobStore.from_url(url, work_dir=tmp_path)
    session = store.create_upload(size=len(DATA), sha256=DIGEST, max_bytes=10**6)
    session.append(0, DATA[:7])
    resumed = BlobStore.from_url(url, work_dir=tmp_path).get_upload(session.upload_id)
    resumed.append(7, DATA[7:])
    blob = resumed.finish()
    with store.open(blob.digest) as handle:
        assert handle.read() == DATA
    assert leftovers(tmp_path) == []
