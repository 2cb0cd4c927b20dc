"""A census of a MySQL department database on a throwaway MariaDB server (``mysqlserver.py``),
read with PyMySQL; and a wrong password refused with the password hidden.

The census user may see only the department's database: the listing leaves the server's own
catalogue schemas out. Skips (saying what to install) without the MariaDB binaries; marked
``mysql``, so in CI such a skip fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from census_support import ROWS, TABLES, VIEWS, build_department
from mysqlserver import MySqlServer
from sqlalchemy import select

from datafactor.census import jobs, services
from datafactor.census.models import CensusRun, CensusTable
from datafactor.dataplane import SourceUnavailable
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def mysql_server() -> Iterator[MySqlServer]:
    try:
        server = MySqlServer(database="minzheng").start()
    except FileNotFoundError as exc:
        pytest.skip(f"MySQL tests need MariaDB's server binaries: {exc}")
    try:
        build_department(server.url())
        yield server
    finally:
        server.stop()


def test_a_census_of_a_mysql_database(db, settings, department, mysql_server):
    url = mysql_server.url()
    services.check_source(url, allow_sqlite=False)
    with db.read() as s:
        who = principal_for(
            s.get(User, department.user_id), s.get(Party, department.party_id), via="session"
        )
    with db.write() as s:
        run_id = services.start_census(
            s,
            who,
            services.CensusRequest(url=url),
            secret_key=settings.secret_key,
            allow_sqlite=False,
            default_sample_rows=100,
        ).id
    assert jobs.run_pending(db, settings) == 1
    with db.read() as s:
        run = s.get(CensusRun, run_id)
        rows = list(
            s.scalars(
                select(CensusTable)
                .where(CensusTable.run_id == run_id)
                .order_by(CensusTable.position)
            )
        )
    assert run.status == "succeeded", run.error_params
    assert run.source_url.startswith("mysql+pymysql://census:***@127.0.0.1:")
    assert run.schemas_total == 1  # information_schema and the like are left out
    assert [(e.schema_name, e.table_name, e.kind) for e in rows] == [
        *[("minzheng", t, "table") for t in TABLES],
        *[("minzheng", v, "view") for v in VIEWS],
    ]
    assert run.rows_counted == ROWS
    residents = next(e for e in rows if e.table_name == "residents")
    assert residents.pi_types == ["cn_resident_id", "cn_mobile"] and residents.sensitive
    assert residents.rows_scanned == 100
    types = {c["name"]: c["type"] for c in residents.columns}
    assert types["name"] == "VARCHAR(100)" and types["id"].startswith("INT")


def test_a_wrong_password_is_refused_with_it_hidden(mysql_server):
    with pytest.raises(SourceUnavailable) as caught:
        services.check_source(mysql_server.url(password="Wr0ng-pw"), allow_sqlite=False)
    message = str(caught.value)
    assert "census:***@127.0.0.1" in message and "Wr0ng-pw" not in message
