"""The integrator: one thread per process that batches appends, signs checkpoints, anchors audit.

Callers hand it entries and block until the transaction holding them has committed
(``append``), keep the ``Future`` (``submit``), or await it from an event loop (``append_async``:
no thread per caller; a batch wakes each loop once, however many of its callers it carries). Whatever arrived while the previous batch was
being written goes into the next one, so under load each commit — one fsync on SQLite, one WAL
flush on PostgreSQL — carries hundreds of entries (group commit), while a lone append still
commits at once. A caller is answered only after its batch committed: an acknowledged index is
durable, and a crash before that loses only unacknowledged work. A batch reads only the head when
nobody else appended since the previous one (it starts from the frontier that batch left), and on
SQLite the write-ahead log is copied back into the database by a second thread rather than inside
a commit callers wait for (``_WalCheckpointer``).

After writing, the integrator signs a checkpoint whenever the tree has grown, at most every
``checkpoint_interval / 2`` seconds, so a new entry is covered by a signed checkpoint within about
``checkpoint_interval`` (one second by default). Entries appended by other processes, or inside
other transactions with ``append_event``, are noticed by polling the head (and, in this process,
by a post-commit hook), and get the same guarantee. Every ``anchor_interval`` it appends the
audit chain head if it moved. All writes go through ``services``, which lock the ledger head, so
several integrators (several web workers, a CLI) can run against one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.orm import Session

from datafactor.db import Database
from datafactor.ledger import services
from datafactor.ledger.keys import LogKeyStore

log = logging.getLogger("datafactor.ledger")

_STOP = object()
# entry, its future (a thread's or an event loop's), whether it wants its proof
_Item = tuple[bytes, "Future[Any] | asyncio.Future[Any]", bool]


def _claim(future: Future[Any] | asyncio.Future[Any]) -> bool:
    """Mark a future as being worked on; False if its caller gave up (cancelled) already."""
    if isinstance(future, asyncio.Future):
        return not future.done()  # read across threads: settling re-checks in the loop
    return future.set_running_or_notify_cancel()


def _settle_in_loop(outcomes: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for future, value, failed in outcomes:
        if not future.done():  # a caller cancelled while waiting: the entry stays appended
            if failed:
                future.set_exception(value)
            else:
                future.set_result(value)


def _settle(outcomes: list[tuple[Future[Any] | asyncio.Future[Any], Any, bool]]) -> None:
    """Resolve futures: threads' directly, event loops' with one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, bool]]] = {}
    for future, value, failed in outcomes:
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append((future, value, failed))
        elif failed:
            future.set_exception(value)
        else:
            future.set_result(value)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_settle_in_loop, items)


_AUTOCHECKPOINT = "ledger_wal_autocheckpoint"


def _restore_autocheckpoint(dbapi_connection: Any, record: Any) -> None:
    """Pool check-in hook: give a connection the integrator held back its automatic checkpoints."""
    previous = record.info.pop(_AUTOCHECKPOINT, None)
    if previous is not None and dbapi_connection is not None:
        with contextlib.suppress(Exception):  # a broken connection is discarded by the pool anyway
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={int(previous)}")


class _WalCheckpointer:
    """Checkpoints a SQLite database's write-ahead log from its own thread, off the commit path.

    Left alone, SQLite copies the WAL back into the database file inside the commit that takes
    it past 1,000 pages, so every twentieth group commit or so also copies and fsyncs a thousand
    pages while its callers wait. The integrator's transactions turn that off for their
    connection (``hold``; the connection gets its setting back when it returns to the pool, so
    other writers keep SQLite's automatic checkpoints), and this thread runs a PASSIVE
    checkpoint — which never blocks the writer or readers — shortly after batches were written:
    on the other core, copying each page once however many batches changed it meanwhile.
    Checkpointing is SQLite's own crash-safe copy; durability is the WAL's fsync at commit,
    which is unchanged.
    """

    pause = 0.25  # seconds between checkpoints: a page many batches changed is copied once

    def __init__(self, db: Database) -> None:
        self.db = db
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not event.contains(self.db.engine, "checkin", _restore_autocheckpoint):
            event.listen(self.db.engine, "checkin", _restore_autocheckpoint)
        self._thread = threading.Thread(target=self._run, name="ledger-wal", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def hold(self, session: Session) -> None:
        """No automatic checkpoint in this session's commit (this thread does it instead)."""
        fairy = session.connection().connection
        if _AUTOCHECKPOINT not in fairy.info:
            dbapi = fairy.dbapi_connection
            assert dbapi is not None
            previous = dbapi.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            dbapi.execute("PRAGMA wal_autocheckpoint=0")
            fairy.info[_AUTOCHECKPOINT] = previous

    def written(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        connection: Any = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                try:
                    if connection is None:
                        connection = self.db.engine.raw_connection()
                    connection.driver_connection.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchall()
                except Exception:
                    log.exception("checkpointing the SQLite write-ahead log failed")
                    if connection is not None:
                        with contextlib.suppress(Exception):
                            connection.invalidate()
                        connection = None
                if self._stopping.wait(self.pause):  # stopping: once more if written meanwhile
                    if self._wake.is_set():
                        continue
                    return
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()


class IntegratorStopped(RuntimeError):
    """The integrator is not running, so the entry was not appended."""


class Integrator:
    """Group-commits appends for one database and keeps its checkpoints fresh."""

    def __init__(
        self,
        db: Database,
        keys: LogKeyStore,
        *,
        checkpoint_interval: float = 1.0,
        anchor_interval: float | None = 300.0,
        max_batch: int = 4096,
    ) -> None:
        self.db = db
        self.keys = keys
        self.checkpoint_interval = checkpoint_interval
        self.anchor_interval = anchor_interval
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake = threading.Event()
        # Held while checking ``_running`` and queueing, and while ``stop`` clears it: an entry
        # is either queued before the stop (then written or refused by the final drain) or refused.
        self._gate = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._undo_hook: Any = None
        # The frontier the last committed batch left (see ``services.append_group``).
        self._frontier: services.Frontier | None = None
        self._wal: _WalCheckpointer | None = None
        self.batches = 0
        self.appended = 0
        self.checkpoints = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._running:
            return self
        self.keys.ensure()
        self._running = True
        self._undo_hook = services.on_append_commit(self.nudge)
        if self.db.is_sqlite:
            self._wal = _WalCheckpointer(self.db)
            self._wal.start()
        self._thread = threading.Thread(target=self._run, name="ledger-integrator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, sign a last checkpoint, and end the thread."""
        with self._gate:
            if not self._running:
                return
            self._running = False
        if self._undo_hook is not None:
            self._undo_hook()
            self._undo_hook = None
        self._queue.put(_STOP)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._wal is not None:
            self._wal.stop(timeout)  # a last checkpoint of what the thread wrote
            self._wal = None
        # An entry submitted while stopping may have landed behind the stop marker.
        left: list[tuple[Future[Any] | asyncio.Future[Any], Any, bool]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and _claim(item[1]):
                left.append((item[1], IntegratorStopped("the ledger integrator stopped"), True))
        _settle(left)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._running

    def nudge(self) -> None:
        """Something was appended elsewhere in this process: look at the head soon."""
        self._wake.set()

    # ------------------------------------------------------------------- appending

    def submit(self, entry: bytes) -> Future[int]:
        """Queue ``entry`` (exact leaf bytes); the future resolves to its index after commit."""
        future: Future[int] = Future()
        self._put(entry, future, False)
        return future

    def submit_with_proof(self, entry: bytes) -> Future[services.Appended]:
        """Queue ``entry``; the future resolves to its index and inclusion proof after commit."""
        future: Future[services.Appended] = Future()
        self._put(entry, future, True)
        return future

    async def append_async(self, entry: bytes) -> int:
        """``append`` for async code: the event loop keeps running while the batch commits.

        Cancelling the wait does not withdraw the entry: it may still be appended.
        """
        return await self._submit_async(entry, False)  # type: ignore[no-any-return]

    async def append_with_proof_async(self, entry: bytes) -> services.Appended:
        """``append_with_proof`` for async code (see ``append_async``)."""
        return await self._submit_async(entry, True)  # type: ignore[no-any-return]

    def _submit_async(self, entry: bytes, proof: bool) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(entry, future, proof)
        return future

    def _put(self, entry: bytes, future: Future[Any] | asyncio.Future[Any], proof: bool) -> None:
        checked = services._check_entry(entry)
        with self._gate:
            if not self._running:
                raise IntegratorStopped("the ledger integrator is not running")
            self._queue.put((checked, future, proof))

    def append(self, entry: bytes, timeout: float | None = 60.0) -> int:
        """Append ``entry`` and return its index once it is durable."""
        return self.submit(entry).result(timeout)

    def append_with_proof(self, entry: bytes, timeout: float | None = 60.0) -> services.Appended:
        """Append ``entry``; return its index and audit path once it is durable."""
        return self.submit_with_proof(entry).result(timeout)

    def append_event(
        self, kind: str, payload: Mapping[str, Any], timeout: float | None = 60.0
    ) -> int:
        """Append a ledger event (see ``services.event_entry``) and return its durable index."""
        return self.append(services.event_entry(kind, payload), timeout)

    # ------------------------------------------------------------------- the thread

    def _run(self) -> None:
        signed_size = -1
        dirty = True  # look at the head once at start (sign the first checkpoint if none)
        last_sign = 0.0
        last_poll = time.monotonic()
        next_anchor = (
            time.monotonic() + self.anchor_interval if self.anchor_interval is not None else None
        )
        half = self.checkpoint_interval / 2
        stopping = False
        while True:
            batch, stopping = self._take_batch(timeout=half / 2, stopping=stopping)
            if batch:
                self._write(batch)
                dirty = True
            now = time.monotonic()
            if self._wake.is_set():
                self._wake.clear()
                dirty = True
            if not dirty and now - last_poll >= half:
                last_poll = now
                dirty = self._head_size() != signed_size
            if dirty and (now - last_sign >= half or stopping):
                size = self._checkpoint()
                if size is not None:
                    signed_size = size
                    dirty = False
                    last_sign = now
            if next_anchor is not None and now >= next_anchor and self.anchor_interval:
                next_anchor = now + self.anchor_interval
                self._anchor()
                dirty = True
            if stopping and self._queue.empty():
                if dirty:
                    self._checkpoint()
                return

    def _take_batch(self, timeout: float, stopping: bool) -> tuple[list[_Item], bool]:
        batch: list[_Item] = []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return batch, stopping
        while True:
            if item is _STOP:
                stopping = True
            elif _claim(item[1]):
                batch.append(item)
            if len(batch) >= self.max_batch:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return batch, stopping

    def _write(self, batch: list[_Item]) -> None:
        entries = [entry for entry, _, _ in batch]
        proofs = any(want for _, _, want in batch)
        known, self._frontier = self._frontier, None
        try:
            with self.db.write() as session:
                if self._wal is not None:
                    self._wal.hold(session)
                grouped, after = services.append_group(
                    session, entries, proofs=proofs, frontier=known
                )
                results: list[Any] = grouped
        except Exception as exc:
            # The outcome is unknown only if the commit itself failed mid-way; callers retry.
            log.exception("ledger batch of %d entries failed", len(batch))
            self.last_error = str(exc)
            _settle([(future, exc, True) for _, future, _ in batch])
            return
        self._frontier = after  # committed: the next batch may start from it
        self.batches += 1
        self.appended += len(batch)
        _settle(
            [
                (future, result.index if proofs and not want else result, False)
                for result, (_, future, want) in zip(results, batch, strict=True)
            ]
        )
        if self._wal is not None:
            self._wal.written()

    def _head_size(self) -> int:
        try:
            with self.db.read() as session:
                return services.tree_size(session)
        except Exception:
            log.exception("reading the ledger head failed")
            return -2

    def _checkpoint(self) -> int | None:
        try:
            with self.db.write() as session:
                signed = services.sign_checkpoint(session, self.keys)
                size = signed.size if signed is not None else services.tree_size(session)
        except Exception as exc:
            log.exception("signing a ledger checkpoint failed")
            self.last_error = str(exc)
            return None
        if signed is not None:
            self.checkpoints += 1
        return size

    def _anchor(self) -> None:
        try:
            with self.db.write() as session:
                services.anchor_audit_head(session)
        except Exception as exc:
            log.exception("anchoring the audit chain head failed")
            self.last_error = str(exc)
