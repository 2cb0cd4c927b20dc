"""Crash test: a writer appending under load is killed with SIGKILL at random moments.

After every kill, every append the writer acknowledged (its append call had returned) must be in
the log with the same index and leaf hash, and ``ledger verify`` must pass: the stored tree
re-derives to every signed checkpoint. The writer is a forked child of the test process (so a
restart costs milliseconds, not an interpreter start), with its own database connections; 50
kills per database run in ``make test``, 1,000 in ``make soak`` (``DATAFACTOR_SOAK=1``).
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path

import pytest
from ledger_support import crash_writer
from sqlalchemy import select as sql_select

from datafactor.db import Database
from datafactor.ledger import leaf_hash
from datafactor.ledger.fsck import verify_log
from datafactor.ledger.models import LedgerEntry

SOAK = bool(os.environ.get("DATAFACTOR_SOAK"))


def _run_writer_until_killed(url: str, key_dir: Path, seed: int, rng: random.Random) -> bytes:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            os.close(read_fd)
            crash_writer(url, str(key_dir), write_fd, seed)
        finally:
            os._exit(4)
    os.close(write_fd)
    received = b""
    first_ack: float | None = None
    delay = rng.uniform(0.02, 0.3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.01)
        if ready:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            received += chunk
            first_ack = first_ack or time.monotonic()
        if first_ack is not None and time.monotonic() - first_ack >= delay:
            break
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    # Acknowledgements written before the kill are still in the pipe: they count.
    while chunk := os.read(read_fd, 1 << 16):
        received += chunk
    os.close(read_fd)
    return received


def _stored_hashes(db: Database, indexes: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    with db.read() as session:
        for start in range(0, len(indexes), 5000):
            rows = session.execute(
                sql_select(LedgerEntry.idx, LedgerEntry.entry, LedgerEntry.leaf_hash).where(
                    LedgerEntry.idx.in_(indexes[start : start + 5000])
                )
            )
            for index, entry, digest in rows:
                assert leaf_hash(bytes(entry)) == bytes(digest), f"entry {index} altered"
                out[index] = bytes(digest).hex()
    return out


def _crash_loop(db: Database, tmp_path: Path, kills: int) -> None:
    rng = random.Random(20261125)
    acked: dict[int, str] = {}
    key_dir = tmp_path / "ledger-keys"
    for round_ in range(kills):
        received = _run_writer_until_killed(db.url, key_dir, round_, rng)
        fresh: dict[int, str] = {}
        for line in received.decode().splitlines():
            index, digest = line.split()
            assert int(index) not in acked, f"index {index} acknowledged twice"
            assert int(index) not in fresh, f"index {index} acknowledged twice"
            fresh[int(index)] = digest
        acked.update(fresh)
        # This round's acknowledgements plus a sample of the earlier ones.
        sample = list(fresh) + rng.sample(sorted(acked), min(200, len(acked)))
        stored = _stored_hashes(db, sample)
        for index in sample:
            assert stored.get(index) == acked[index], f"round {round_}: entry {index} lost"
        with db.read() as session:
            report = verify_log(session, workers=1)
        assert report.ok, f"round {round_}: {report.problems[:3]}"
        assert not acked or max(acked) < report.size
    stored = _stored_hashes(db, sorted(acked))
    assert all(stored.get(i) == d for i, d in acked.items()), "an acknowledged append was lost"
    assert len(acked) > kills  # the writer really got work done between kills


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_acknowledged_appends_survive_sigkill(db: Database, tmp_path: Path) -> None:
    _crash_loop(db, tmp_path, kills=50)


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="long run: make soak (DATAFACTOR_SOAK=1)")
def test_acknowledged_appends_survive_a_thousand_sigkills(db: Database, tmp_path: Path) -> None:
    _crash_loop(db, tmp_path, kills=1000)
