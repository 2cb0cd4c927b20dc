"""Fixtures of the ledger tests: a log key store in the test's own folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from datafactor.ledger.keys import LogKeyStore


@pytest.fixture
def keys(tmp_path: Path) -> LogKeyStore:
    return LogKeyStore(tmp_path / "var" / "ledger", "test.datafactor/ledger")
