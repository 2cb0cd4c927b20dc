"""Small file-system helpers shared by the domains that write files durably (blobs, keys).

Private files (key files: the ledger's signing keys, witnesses' keys, trustees' token keys) are
created atomically — written to a private temporary file, fsynced, then hard-linked into place —
so two processes creating the same file at once end up with one content, and a crash never
leaves half a file behind. One that group or others can read is refused when read, as ssh
refuses such identity files. A rotation stages the new content the same way and renames it over
the old one.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path


class PrivateFileRefused(Exception):
    """A private file cannot be used: unreadable, not ASCII, or readable by group or others
    (``widely_readable``). Callers turn it into their own error."""

    def __init__(self, path: Path, reason: str, *, widely_readable: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.widely_readable = widely_readable


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry: a rename or a new file is durable only once its directory is."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_private_file(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` (ASCII) with mode 0600 unless it exists; True if this call
    created it. Its folder is created 0700 if missing."""
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


def replace_private_file(path: Path, text: str) -> None:
    """Put ``text`` in ``path`` (0600) in one rename, whatever it held: a reader sees the old
    content or the new, never a mix."""
    staged = path.with_name(f".{path.name}.next")
    staged.unlink(missing_ok=True)
    write_new_private_file(staged, text)
    os.replace(staged, path)
    fsync_dir(path.parent)


def read_private_file(path: Path) -> str:
    """The text of a file only its owner can read, stripped; ``PrivateFileRefused`` otherwise."""
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PrivateFileRefused(path, str(exc)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PrivateFileRefused(path, "accessible by other users", widely_readable=True)
    return text
