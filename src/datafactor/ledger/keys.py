"""Private key files of the log and of witnesses: created on first start, 0600, never in the DB.

A key file holds one ``PRIVATE+KEY+<name>+<key ID>+<base64>`` line (the Go ``sumdb/note``
form). It is created atomically (``fsutil.write_new_private_file``: a private temporary file,
fsynced, then hard-linked into place), so two processes starting at once end up with the same
key, and a crash never leaves a half-written key behind. A key file readable by group or others
is refused, as ssh refuses such identity files. Rotation moves the current log key to ``retired/<key ID>.key`` and
puts a new one in place; the public halves of all log keys are kept in the database
(``ledger_key``) so checkpoints signed before a rotation stay verifiable.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from datafactor.fsutil import (
    PrivateFileRefused,
    read_private_file,
    replace_private_file,
    write_new_private_file,
)
from datafactor.ledger.note import Cosigner, Signer

LOG_KEY_FILE = "log.key"
RETIRED_DIR = "retired"


class KeyFileError(RuntimeError):
    """A key file is unreadable, malformed or too widely readable."""


def read_key_file(path: Path) -> str:
    """The key string in ``path``, refusing files that group or others can read."""
    try:
        return read_private_file(path)
    except PrivateFileRefused as exc:
        if exc.widely_readable:
            raise KeyFileError(
                f"key file {path} is accessible by other users; run: chmod 600 {path}"
            ) from None
        raise KeyFileError(f"cannot read key file {path}: {exc.reason}") from None


def seed_of(skey: str) -> bytes:
    """The 32-byte Ed25519 seed inside a ``PRIVATE+KEY+…`` string (already validated)."""
    # PRIVATE+KEY+<name>+<key ID>+<base64>: names have no '+', the base64 part may.
    raw = base64.b64decode(skey.split("+", 4)[4])
    return raw[1:]


class LogKeyStore:
    """The log's signing key under ``<var_dir>/ledger``; reloads when another process rotates it."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = Path(directory)
        self.name = name
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], Signer] | None = None

    @property
    def path(self) -> Path:
        return self.directory / LOG_KEY_FILE

    def ensure(self) -> Signer:
        """Load the current key, creating it on first start."""
        if not self.path.exists():
            write_new_private_file(self.path, Signer.generate(self.name).key_string() + "\n")
        return self.signer()

    def signer(self) -> Signer:
        """The current signing key (re-read if the file changed since the last call)."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                raise KeyFileError(f"no log key at {self.path}") from None
            stamp = (st.st_ino, st.st_mtime_ns)
            if self._cached is None or self._cached[0] != stamp:
                skey = read_key_file(self.path)
                try:
                    signer = Signer.from_key_string(skey)
                except ValueError as exc:
                    raise KeyFileError(f"malformed log key in {self.path}: {exc}") from exc
                self._cached = (stamp, signer)
            return self._cached[1]

    def rotate(self) -> tuple[Signer, Signer]:
        """Retire the current key and install a new one; returns (old, new)."""
        old = self.ensure()
        new = Signer.generate(old.name)
        retired = self.directory / RETIRED_DIR / f"{old.key_hash:08x}.key"
        if not retired.exists():
            write_new_private_file(retired, old.key_string() + "\n")
        replace_private_file(self.path, new.key_string() + "\n")
        with self._lock:
            self._cached = None
        return old, new


def load_or_create_cosigner(path: Path, name: str) -> tuple[Cosigner, bool]:
    """A witness key from ``path``, created (0600) on first use; True when it was just created."""
    created = False
    if not path.exists():
        created = write_new_private_file(path, Cosigner.generate(name).key_string() + "\n")
    skey = read_key_file(path)
    try:
        return Cosigner.from_key_string(skey), created
    except ValueError as exc:
        raise KeyFileError(f"malformed witness key in {path}: {exc}") from exc
