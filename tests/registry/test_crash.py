"""Crash test: certification killed with SIGKILL mid-issuance leaves both or neither.

Applications waiting at the end of their public notice are certified one by one by a forked
child (its own database connections), which is killed at random moments. Afterwards every
certificate has its ``registry.certificate.issued`` ledger entry with the same payload, every such
entry has its certificate, every certified application has its certificate and right, and the
ledger still verifies; the next run goes on issuing numbers without gaps or reuse.
Modelled on ``tests/ledger/test_crash.py``.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import time

import pytest
from registry_support import LATER, TODAY, initial, new_asset, principal, scanned_version
from sqlalchemy import select as sql_select

from datafactor.db import Database
from datafactor.ledger.fsck import verify_log
from datafactor.ledger.models import LedgerEntry
from datafactor.registry import Action
from datafactor.registry import services as registry
from datafactor.registry.models import RegistryApplication, RegistryCertificate, RegistryRight

APPLICATIONS = 24


def _certify_all(url: str, settings, registrar, app_ids: list[str], write_fd: int) -> None:  # type: ignore[no-untyped-def]
    db = Database(url, pool_size=2)
    issuer = registry.issuer_for(settings)
    for app_id in app_ids:
        with db.write() as s:
            row = s.get(RegistryApplication, app_id)
            if row is None or row.state != "public_notice":
                continue
            registry.act(s, registrar, app_id, Action.CLOSE_NOTICE, issuer=issuer, today=LATER)
        os.write(write_fd, f"{app_id}\n".encode())


def _run_until_killed(url, settings, registrar, app_ids, rng, *, kill=True) -> set[str]:  # type: ignore[no-untyped-def]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            os.close(read_fd)
            _certify_all(url, settings, registrar, app_ids, write_fd)
        finally:
            os._exit(4)
    os.close(write_fd)
    received = b""
    # ``kill=False``: let the certifier finish (it closes the pipe when it exits).
    deadline = time.monotonic() + (rng.uniform(0.02, 0.25) if kill else 120.0)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.005)
        if ready:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            received += chunk
    if kill:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    while chunk := os.read(read_fd, 1 << 16):
        received += chunk
    os.close(read_fd)
    return set(received.decode().split())


def _check_both_or_neither(db: Database) -> int:
    with db.read() as s:
        certificates = list(s.scalars(sql_select(RegistryCertificate)))
        entries = {
            e.idx: json.loads(bytes(e.entry))
            for e in s.scalars(sql_select(LedgerEntry))
            if b"registry.certificate.issued" in bytes(e.entry)
        }
        by_index = {c.ledger_index: c for c in certificates}
        assert set(by_index) == set(entries), "a certificate without its entry, or vice versa"
        for index, entry in entries.items():
            assert entry["payload"] == by_index[index].payload
        certified = set(
            s.scalars(
                sql_select(RegistryApplication.id).where(RegistryApplication.state == "certified")
            )
        )
        assert certified == {c.application_id for c in certificates}
        rights = set(s.scalars(sql_select(RegistryRight.registration_id)))
        assert certified <= rights
        serials = sorted(c.serial for c in certificates)
        assert serials == list(range(1, len(serials) + 1)), "serials reused or skipped"
        assert verify_log(s, workers=1).ok
        return len(certificates)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_certification_killed_leaves_both_or_neither(db, settings, enterprise, operator):
    who, registrar = principal(db, enterprise), principal(db, operator)
    issuer = registry.issuer_for(settings)
    version_id = scanned_version(db, settings, who)
    app_ids = []
    for n in range(APPLICATIONS):
        asset_id = new_asset(db, who, version_id, name=f"供电量数据{n}")
        with db.write() as s:
            row = registry.submit_application(
                s, who, initial(db, asset_id), issuer=issuer, today=TODAY
            )
            registry.act(s, registrar, row.id, Action.APPROVE_TO_NOTICE, issuer=issuer, today=TODAY)
            app_ids.append(row.id)
    db.dispose()
    rng = random.Random(20261125)
    acknowledged: set[str] = set()
    for _ in range(40):
        acknowledged |= _run_until_killed(db.url, settings, registrar, app_ids, rng)
        issued = _check_both_or_neither(db)
        if issued == APPLICATIONS:
            break
        assert issued >= len(acknowledged)
    else:  # a slow machine: the kills came too early to finish; one last run without a kill
        acknowledged |= _run_until_killed(db.url, settings, registrar, app_ids, rng, kill=False)
        _check_both_or_neither(db)
    with db.read() as s:
        certified = set(
            s.scalars(
                sql_select(RegistryApplication.id).where(RegistryApplication.state == "certified")
            )
        )
    assert acknowledged <= certified, "an acknowledged certification was lost"
    assert len(certified) == APPLICATIONS  # later runs finished what the killed ones left
