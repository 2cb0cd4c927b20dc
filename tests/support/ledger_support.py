"""Helpers shared by the ledger tests and the ledger crash-test writer."""

from __future__ import annotations

from collections.abc import Sequence

from datafactor.db import Database
from datafactor.ledger import services


def fill(db: Database, entries: Sequence[bytes], batch: int = 50) -> list[int]:
    """Append ``entries`` in transactions of ``batch``; return their indexes."""
    out: list[int] = []
    for start in range(0, len(entries), batch):
        with db.write() as session:
            out += services.append_many(session, entries[start : start + batch])
    return out


def make_entries(n: int, prefix: str = "e") -> list[bytes]:
    return [f'{{"n":{i},"p":"{prefix}"}}'.encode() for i in range(n)]


def crash_writer(url: str, key_dir: str, ack_fd: int, seed: int) -> None:
    """The body of a forked writer process: append under load and acknowledge on a pipe.

    Eight threads append through the integrator (group commit) and one appends inside its own
    transactions with ``append_event``; each writes ``"<index> <leaf hash hex>\\n"`` to
    ``ack_fd`` only after its append returned, i.e. after the commit. The parent kills the process
    with SIGKILL at a random moment; it never returns normally.
    """
    import gc
    import os
    import threading

    from datafactor.ledger import leaf_hash
    from datafactor.ledger.integrator import Integrator
    from datafactor.ledger.keys import LogKeyStore

    gc.disable()  # never finalize objects inherited from the parent (its DB connections)
    db = Database(url, pool_size=12)
    keys = LogKeyStore(__import__("pathlib").Path(key_dir), "crash.test/ledger")
    integrator = Integrator(db, keys, checkpoint_interval=0.1, anchor_interval=None).start()

    def ack(index: int, entry: bytes) -> None:
        os.write(ack_fd, f"{index} {leaf_hash(entry).hex()}\n".encode())

    def batched(k: int) -> None:
        i = 0
        while True:
            entry = f'{{"seed":{seed},"thread":{k},"i":{i}}}'.encode()
            ack(integrator.append(entry), entry)
            i += 1

    def in_transaction() -> None:
        i = 0
        while True:
            with db.write() as session:
                entry = services.event_entry("crash.test", {"seed": seed, "i": i})
                index = services.append_many(session, [entry])[0]
            ack(index, entry)
            i += 1

    threads = [threading.Thread(target=batched, args=(k,), daemon=True) for k in range(8)]
    threads.append(threading.Thread(target=in_transaction, daemon=True))
    for t in threads:
        t.start()
    threading.Event().wait(60)  # the parent kills us long before
    os._exit(3)
