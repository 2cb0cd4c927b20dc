"""Census fixtures: a department's database (``census_support``), the department and the
big-data bureau as actors, and settings that allow SQLite sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from census_support import sqlite_department
from factories import Actor, make_actor

from datafactor.identity import PartyKind
from datafactor.settings import Environment, Settings


@pytest.fixture
def department_url(tmp_path: Path) -> str:
    return sqlite_department(tmp_path / "department.db")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        source_allow_sqlite=True,
        census_sample_rows=1000,
    )


@pytest.fixture
def department(db) -> Actor:  # type: ignore[no-untyped-def]
    return make_actor(
        db, PartyKind.GOVERNMENT_DEPARTMENT, username="dept.admin", name="南宁市民政局"
    )


@pytest.fixture
def other_department(db) -> Actor:  # type: ignore[no-untyped-def]
    return make_actor(
        db, PartyKind.GOVERNMENT_DEPARTMENT, username="dept2.admin", name="柳州市交通运输局"
    )


@pytest.fixture
def bureau(db) -> Actor:  # type: ignore[no-untyped-def]
    return make_actor(
        db, PartyKind.BIGDATA_BUREAU, username="bureau.admin", name="广西壮族自治区大数据发展局"
    )
