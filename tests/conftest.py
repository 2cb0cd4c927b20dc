"""Shared fixtures: every database test runs on SQLite and on a throwaway PostgreSQL server.

One PostgreSQL server per test run (started on first use); the schema is migrated once into a
template database and each test gets a fresh copy (``CREATE DATABASE … TEMPLATE``), so tests never
see each other's rows. SQLite tests get a copy of a migrated template file. In CI (``CI=true``) a
skipped PostgreSQL, browser or Spark test fails the run: they must never silently stop running.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DATAFACTOR_PASSWORD_HASH_PROFILE", "test")
# The command line's rich consoles take their width when ``datafactor.cli`` is imported (at
# collection): wide enough that tables do not fold, with a terminal or without (a test worker).
os.environ["COLUMNS"] = "250"

from factories import Actor, make_actor
from fastapi.testclient import TestClient
from pgserver import DatabasePool, PgServer
from xdist_groups import shared_dir

from datafactor.db import Database
from datafactor.identity import PartyKind
from datafactor.migrations import upgrade
from datafactor.settings import Environment, Settings
from datafactor.web.i18n import compile_catalogs

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_guarded_skips: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    compile_catalogs()
    # CI runs the same examples every time (a failure there must be reproducible); developers'
    # runs keep exploring new ones.
    from hypothesis import settings as hypothesis_settings

    hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
    hypothesis_settings.register_profile("dev", deadline=None)
    hypothesis_settings.load_profile("ci" if IN_CI else "dev")


# ``make test`` runs the suite in pytest-xdist workers; ``xdist_groups`` gives them a shared
# folder and sends the Spark and MariaDB tests to one worker each.
pytest_plugins = ["xdist_groups"]


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = shared_dir(config)
    info = shared / "pg.json" if shared is not None and not hasattr(config, "workerinput") else None
    if info is not None and info.exists():  # the controller: stop the workers' server
        PgServer.attach(json.loads(info.read_text())).stop()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    guarded = ("postgresql", "browser", "spark", "mysql")
    if report.skipped and any(m in report.keywords for m in guarded):
        _guarded_skips.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _guarded_skips:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if IN_CI and _guarded_skips:
        terminalreporter.write_line(
            f"FAILED: {len(_guarded_skips)} PostgreSQL/browser/Spark/MySQL tests were skipped in CI: "
            + ", ".join(_guarded_skips[:5]),
            red=True,
        )


# ------------------------------------------------------------------------------------- databases


def _start_pg_server() -> PgServer:
    try:
        server = PgServer().start()
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"PostgreSQL server binaries not available: {exc}")
    try:
        server.execute("CREATE DATABASE df_template")
        upgrade(server.url("df_template"))
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    shared = shared_dir(request.config)
    if shared is None:  # one test process: its own server
        server = _start_pg_server()
        try:
            yield server
        finally:
            server.stop()
        return
    # pytest-xdist workers share one server: the first to need it starts it and migrates the
    # template under a file lock, the others attach; the controller stops it at the end.
    with (shared / "pg.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = shared / "pg.json"
        if info.exists():
            server = PgServer.attach(json.loads(info.read_text()))
        else:
            server = _start_pg_server()
            info.write_text(json.dumps(server.describe()))
    yield server


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    Database(url).dispose()
    upgrade(url)
    return path


@pytest.fixture(scope="session")
def pg_databases(pg_server: PgServer) -> DatabasePool:
    """Each PostgreSQL test's database: a copy of the migrated template, reset and reused after
    the test (``DatabasePool``: creating one costs far more than resetting one)."""
    return DatabasePool(pg_server, "df_template")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    pool: DatabasePool = request.getfixturevalue("pg_databases")
    name = pool.take()
    yield pool.server.url(name)
    pool.give_back(name)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, pool_size=5)
    yield database
    database.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        login_slowdown_after=3,
        login_lock_after=5,
        login_lock_minutes=15,
    )


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    from datafactor.app import create_app

    return create_app(settings, db)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``run("exchange", "listings", "--json")``: the ``datafactor`` CLI on the test's database
    (its var folder in the test's tmp_path)."""
    from typer.testing import CliRunner

    from datafactor.cli import app as cli
    from datafactor.settings import get_settings

    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", db_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


# ------------------------------------------------------------------------------------ actors


@pytest.fixture
def operator(db: Database) -> Actor:
    return make_actor(db, PartyKind.EXCHANGE_OPERATOR, username="exchange.admin")


@pytest.fixture
def enterprise(db: Database) -> Actor:
    return make_actor(db, PartyKind.ENTERPRISE, username="acme.admin")


@pytest.fixture
def other_enterprise(db: Database) -> Actor:
    return make_actor(db, PartyKind.ENTERPRISE, username="rival.admin")


@pytest.fixture
def regulator(db: Database) -> Actor:
    return make_actor(db, PartyKind.REGULATOR, roles=("auditor",), username="reg.auditor")
