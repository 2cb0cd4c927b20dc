"""Content-addressed blob storage: where the bytes of every data set live, named by their SHA-256.

A blob is stored once under ``<root>/sha256/ab/cd/<hex digest>`` whatever name it was uploaded
with, so identical uploads share one copy and a digest recorded in the ledger always names exactly
those bytes. The root is a local folder by default, or any fsspec filesystem by URL (``s3://bucket/
prefix`` works once ``s3fs`` is installed; the tests use ``memory://``).

Bytes never pass through memory whole: ``put_stream`` copies the readable in chunks to a temporary
file while hashing, refuses it as soon as it passes ``max_bytes`` (deleting what it wrote), and only
then moves it into place — by atomic ``os.replace`` on a local root (the temporary folder is under
the root, so the rename never crosses filesystems), by one ``put_file`` on an object store (an S3
object appears whole or not at all). A reader therefore never sees a partial blob under a digest.

Large uploads are resumable (the tus idea, without its wire protocol): ``create_upload`` declares
size and SHA-256, chunks are appended at explicit offsets, a retried chunk at an offset already
written is accepted if its bytes match, and ``finish`` re-hashes the whole part before moving it in.
Each session is two local files, ``<id>.json`` (the declaration, written once, atomically) and
``<id>.part`` (the bytes); the received offset is the part file's length rather than a counter in
the JSON, so a crash between writing a chunk and recording it cannot make them disagree, and a
process restart resumes from what is actually on disk. Sessions live under the local root (or the
``work_dir`` of a remote store), and ``purge_uploads`` removes abandoned ones so none lingers
forever.

Digests and upload ids are validated as fixed-length lowercase hex before they touch a path, so
no caller-supplied string can walk out of the root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from datafactor.dataplane.errors import BlobNotFound, BlobTooLarge, UploadConflict
from datafactor.errors import N_, InvalidInput
from datafactor.fsutil import fsync_dir

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class Readable(Protocol):
    """Anything with ``read(n)`` returning bytes: a file, a socket file, Starlette's ``UploadFile.file``."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Blob:
    """A stored blob: its SHA-256 (lowercase hex) and its size in bytes."""

    digest: str
    size: int


def validate_digest(digest: str) -> str:
    """The digest as 64 lowercase hex characters, or ``InvalidInput``: it becomes part of a path."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest.lower()):
        raise InvalidInput(
            N_("A SHA-256 digest is 64 hexadecimal characters."), field="sha256", code="bad-digest"
        )
    return digest.lower()


def _validate_upload_id(upload_id: str) -> str:
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise BlobNotFound(N_("There is no upload session with this id."))
    return upload_id


def _too_large(max_bytes: int) -> BlobTooLarge:
    return BlobTooLarge(
        N_("The upload is larger than the limit of {max_bytes} bytes."), max_bytes=max_bytes
    )


class BlobStore:
    """Blobs under one root, local or behind fsspec; see the module docstring for the layout."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        work_dir: str | os.PathLike[str] | None = None,
        filesystem: Any = None,
    ) -> None:
        self._fs = filesystem
        if filesystem is None:
            # Temporary and partial files stay under the root so that moving them into place is
            # one atomic rename on one filesystem; a work_dir given for a local store is ignored.
            self._root = Path(root).resolve()
            self._work = self._root
        else:
            if work_dir is None:
                raise ValueError("a remote blob store needs a local work_dir for partial uploads")
            self._root_path = str(root).rstrip("/")
            self._work = Path(work_dir).resolve()
        for sub in ("tmp", "uploads"):
            (self._work / sub).mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_url(cls, url: str, *, work_dir: str | os.PathLike[str] | None = None) -> BlobStore:
        """A store for a plain path, a ``file://`` URL, or any fsspec URL (``s3://``, ``memory://``)."""
        if "://" not in url:
            return cls(url, work_dir=work_dir)
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        if "file" in _protocols(fs):
            return cls(path, work_dir=work_dir)
        return cls(path, work_dir=work_dir, filesystem=fs)

    # ------------------------------------------------------------------------------ properties

    @property
    def is_local(self) -> bool:
        return self._fs is None

    @property
    def root(self) -> Path:
        """The local root folder (the folder DuckDB may read); only for a local store."""
        if self._fs is not None:
            raise TypeError("a remote blob store has no local root")
        return self._root

    def _key(self, digest: str) -> str:
        d = validate_digest(digest)
        return f"sha256/{d[:2]}/{d[2:4]}/{d}"

    def path_for(self, digest: str) -> Path:
        """The local file of a stored blob, for engines that read files; ``BlobNotFound`` if absent."""
        if self._fs is not None:
            raise TypeError("path_for is only available on a local blob store; use open()")
        path = self._root / self._key(digest)
        if not path.is_file():
            raise BlobNotFound(N_("No stored data has this digest."))
        return path

    # ---------------------------------------------------------------------------- read access

    def exists(self, digest: str) -> bool:
        key = self._key(digest)
        if self._fs is None:
            return (self._root / key).is_file()
        return bool(self._fs.exists(f"{self._root_path}/{key}"))

    def open(self, digest: str) -> BinaryIO:
        """The blob's bytes as a binary, seekable file; the caller closes it."""
        key = self._key(digest)
        try:
            if self._fs is None:
                return (self._root / key).open("rb")
            handle: BinaryIO = self._fs.open(f"{self._root_path}/{key}", "rb")
            return handle
        except FileNotFoundError:
            raise BlobNotFound(N_("No stored data has this digest.")) from None

    def size(self, digest: str) -> int:
        key = self._key(digest)
        try:
            if self._fs is None:
                return (self._root / key).stat().st_size
            return int(self._fs.size(f"{self._root_path}/{key}"))
        except FileNotFoundError:
            raise BlobNotFound(N_("No stored data has this digest.")) from None

    # -------------------------------------------------------------------------------- writing

    def put_stream(
        self, readable: Readable, *, max_bytes: int, chunk_size: int = CHUNK_SIZE
    ) -> Blob:
        """Store everything ``readable`` yields, streaming; ``BlobTooLarge`` past ``max_bytes``.

        At most ``max_bytes + 1`` bytes are ever read from ``readable``: the extra byte is how an
        over-size upload is recognised without trusting a declared length.
        """
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        digest = hashlib.sha256()
        size = 0
        tmp = self._new_temp("put-")
        try:
            with tmp.open("r+b") as out:
                while True:
                    chunk = readable.read(min(chunk_size, max_bytes + 1 - size))
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            blob = Blob(digest.hexdigest(), size)
            self._commit(tmp, blob)
            return blob
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, data: bytes, *, max_bytes: int) -> Blob:
        """Store a small byte string (tests, generated reports)."""
        import io

        return self.put_stream(io.BytesIO(data), max_bytes=max_bytes)

    def _new_temp(self, prefix: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=self._work / "tmp")
        os.close(fd)
        return Path(name)

    def _commit(self, source: Path, blob: Blob) -> None:
        """Move a fully written, verified file into place under its digest (a no-op if present)."""
        key = self._key(blob.digest)
        if self._fs is None:
            final = self._root / key
            if final.is_file():
                return  # same digest, same bytes: keep the existing copy
            final.parent.mkdir(parents=True, exist_ok=True)
            # Blobs are immutable; read-only mode catches an accidental write in place.
            os.chmod(source, 0o444)
            os.replace(source, final)
            fsync_dir(final.parent)
        else:
            remote = f"{self._root_path}/{key}"
            if self._fs.exists(remote):
                return
            self._fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
            self._fs.put_file(str(source), remote)
        log.info("stored blob sha256:%s (%d bytes)", blob.digest, blob.size)

    # ------------------------------------------------------------------------ resumable uploads

    def create_upload(self, *, size: int, sha256: str, max_bytes: int) -> UploadSession:
        """Start a resumable upload of ``size`` bytes whose SHA-256 the client declares now.

        Callers may first check ``exists(sha256)``: if the blob is already stored there is nothing
        to upload.
        """
        digest = validate_digest(sha256)
        if size < 0:
            raise InvalidInput(N_("The upload size cannot be negative."), field="size")
        if size > max_bytes:
            raise _too_large(max_bytes)
        upload_id = secrets.token_hex(16)
        session = UploadSession(self, upload_id, size, digest, datetime.now(UTC))
        session.part_path.touch(exist_ok=False)
        state = {
            "version": 1,
            "upload_id": upload_id,
            "size": size,
            "sha256": digest,
            "created_at": session.created_at.isoformat(),
        }
        tmp = self._new_temp("state-")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, session.state_path)
        return session

    def get_upload(self, upload_id: str) -> UploadSession:
        """The upload session with this id, as persisted on disk (after a restart too)."""
        uid = _validate_upload_id(upload_id)
        state_path = self._work / "uploads" / f"{uid}.json"
        try:
            state = json.loads(state_path.read_text())
        except FileNotFoundError:
            raise BlobNotFound(N_("There is no upload session with this id.")) from None
        return UploadSession(
            self,
            uid,
            int(state["size"]),
            validate_digest(state["sha256"]),
            datetime.fromisoformat(state["created_at"]),
        )

    def list_uploads(self) -> Iterator[UploadSession]:
        for state_path in sorted((self._work / "uploads").glob("*.json")):
            with contextlib.suppress(BlobNotFound, ValueError, KeyError):
                yield self.get_upload(state_path.stem)

    def purge_uploads(self, *, older_than: timedelta) -> int:
        """Delete upload sessions started more than ``older_than`` ago; how many were deleted."""
        cutoff = datetime.now(UTC) - older_than
        purged = 0
        for session in list(self.list_uploads()):
            if session.created_at < cutoff:
                session.abort()
                purged += 1
        for stale in (self._work / "tmp").iterdir():
            # Temporary files of put_stream calls killed mid-copy.
            if stale.is_file() and datetime.fromtimestamp(stale.stat().st_mtime, UTC) < cutoff:
                stale.unlink(missing_ok=True)
        return purged


class UploadSession:
    """One resumable upload: declared size and SHA-256, bytes so far in a part file."""

    def __init__(
        self, store: BlobStore, upload_id: str, size: int, sha256: str, created_at: datetime
    ) -> None:
        self.store = store
        self.upload_id = upload_id
        self.size = size
        self.sha256 = sha256
        self.created_at = created_at

    @property
    def state_path(self) -> Path:
        return self.store._work / "uploads" / f"{self.upload_id}.json"

    @property
    def part_path(self) -> Path:
        return self.store._work / "uploads" / f"{self.upload_id}.part"

    @property
    def offset(self) -> int:
        """How many bytes have been received: where the next chunk starts."""
        try:
            return self.part_path.stat().st_size
        except FileNotFoundError:
            return self.size if self.store.exists(self.sha256) else 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[IO[bytes]]:
        # Two requests for the same session (a client retrying while the first is still being
        # processed) must not interleave their writes.
        try:
            handle = self.part_path.open("r+b")
        except FileNotFoundError:
            raise BlobNotFound(N_("There is no upload session with this id.")) from None
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield handle

    def append(self, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset``; the new offset. Retrying a chunk already written is a no-op.

        ``offset`` must not be past what was received (that would leave a gap); bytes overlapping
        what was received must equal it, so a retried chunk is accepted and a different one is
        refused rather than silently corrupting the upload.
        """
        if offset < 0:
            raise InvalidInput(N_("The offset cannot be negative."), field="offset")
        end = offset + len(data)
        if end > self.size:
            raise UploadConflict(
                N_("The chunk ends at byte {end}, past the declared size of {size} bytes."),
                end=end,
                size=self.size,
            )
        with self._locked() as handle:
            current = os.fstat(handle.fileno()).st_size
            if offset > current:
                raise UploadConflict(
                    N_(
                        "The chunk starts at byte {offset} but only {current} bytes were received; "
                        "resume from byte {current}."
                    ),
                    offset=offset,
                    current=current,
                )
            if offset < current:
                overlap = min(end, current) - offset
                handle.seek(offset)
                if handle.read(overlap) != data[:overlap]:
                    raise UploadConflict(
                        N_("The chunk at byte {offset} differs from the bytes already received."),
                        offset=offset,
                    )
                data = data[overlap:]
            if data:
                handle.seek(current)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            return max(current, end)

    def finish(self) -> Blob:
        """Verify size and SHA-256 of everything received and store it as a blob.

        A checksum mismatch deletes the session (the bytes are wrong somewhere and no retry of
        ``finish`` can fix that). Calling ``finish`` again after a crash right after the move
        returns the stored blob.
        """
        if not self.part_path.exists() and self.store.exists(self.sha256):
            self.state_path.unlink(missing_ok=True)
            return Blob(self.sha256, self.size)
        with self._locked() as handle:
            received = os.fstat(handle.fileno()).st_size
            if received != self.size:
                raise UploadConflict(
                    N_("The upload is incomplete: {received} of {size} bytes received."),
                    received=received,
                    size=self.size,
                )
            digest = hashlib.sha256()
            handle.seek(0)
            while chunk := handle.read(CHUNK_SIZE):
                digest.update(chunk)
            if digest.hexdigest() != self.sha256:
                mismatch = True
            else:
                mismatch = False
                self.store._commit(self.part_path, Blob(self.sha256, self.size))
        if mismatch:
            self.abort()
            raise InvalidInput(
                N_("The received bytes do not match the declared SHA-256; upload the file again."),
                code="upload-checksum-mismatch",
            )
        self.part_path.unlink(missing_ok=True)  # remote store: the local part was copied
        self.state_path.unlink(missing_ok=True)
        return Blob(self.sha256, self.size)

    def abort(self) -> None:
        """Forget the session and its bytes."""
        self.part_path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
