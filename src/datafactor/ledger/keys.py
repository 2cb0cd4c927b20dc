"""Private key files of the log and of witnesses: created on first start, 0600, never in the DB.

A key file holds one ``PRIVATE+KEY+<name>+<key ID>+<base64>`` line (the Go ``sumdb/note``
form). It is created atomically — written to a private temporary file, fsynced, then hard-linked
into place — so two processes starting at once end up with the same key, and a crash never
leaves a half-written key behind. A key file readable by group or others is refused, as ssh
refuses such identity files. Rotation moves the current log key to ``retired/<key ID>.key`` and
puts a new one in place; the public halves of all log keys are kept in the database
(``ledger_key``) so checkpoints signed before a rotation stay verifiable.
"""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

from datafactor.fsutil import fsync_dir
from datafactor.ledger.note import Cosigner, Signer

LOG_KEY_FILE = "log.key"
RETIRED_DIR = "retired"


class KeyFileError(RuntimeError):
    """A key file is unreadable, malformed or too widely readable."""


def _write_new_file(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` with mode 0600 unless it exists; True if we created it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return created


def read_key_file(path: Path) -> str:
    """The key string in ``path``, refusing files that group or others can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is accessible by other users; run: chmod 600 {path}")
    return text


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
            _write_new_file(self.path, Signer.generate(self.name).key_string() + "\n")
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
            _write_new_file(retired, old.key_string() + "\n")
        staged = self.directory / f".{LOG_KEY_FILE}.next"
        staged.unlink(missing_ok=True)
        _write_new_file(staged, new.key_string() + "\n")
        os.replace(staged, self.path)
        fsync_dir(self.directory)
        with self._lock:
            self._cached = None
        return old, new


def load_or_create_cosigner(path: Path, name: str) -> tuple[Cosigner, bool]:
    """A witness key from ``path``, created (0600) on first use; True when it was just created."""
    created = False
    if not path.exists():
        created = _write_new_file(path, Cosigner.generate(name).key_string() + "\n")
    skey = read_key_file(path)
    try:
        return Cosigner.from_key_string(skey), created
    except ValueError as exc:
        raise KeyFileError(f"malformed witness key in {path}: {exc}") from exc
