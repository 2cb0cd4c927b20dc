"""A department's database for census tests: an SQLite file (or any SQLAlchemy URL) holding a
table of residents (names, resident IDs, mobiles: sensitive personal information), a table of
business licences (unified social credit codes: no personal information), an empty table, a table
whose name needs quoting, and a view.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

from datafactor.identity.codes import make_resident_id, make_uscc

RESIDENTS = 120
LICENCES = 80
TABLES = ("empty_log", "licences", "residents", "事项 办理")  # sorted as the census lists them
VIEWS = ("v_resident_city",)
ROWS = RESIDENTS + LICENCES + 7 + 2  # the view groups the residents by two cities


def resident_rows(n: int = RESIDENTS) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "name": f"居民{i}",
            "id_number": make_resident_id(
                "450102", date(1960 + i % 40, 1 + i % 12, 1 + i % 28), i % 1000
            ),
            "mobile": f"139{i:08d}",
            "city": "南宁" if i % 2 else "柳州",
        }
        for i in range(n)
    ]


def licence_rows(n: int = LICENCES) -> list[dict[str, object]]:
    return [
        {"id": i, "uscc": make_uscc("9", "1", "450100", f"LC{i:06d}"), "company": f"企业{i}"}
        for i in range(n)
    ]


def build_department(url: str) -> str:
    """Create the department's tables at ``url`` (SQLite or MySQL); returns the URL."""
    mysql = url.startswith("mysql")
    q = "`" if mysql else '"'
    engine = create_engine(url)
    text_type = "VARCHAR(100)" if mysql else "TEXT"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE residents (id INTEGER PRIMARY KEY, name {text_type} NOT NULL, "
                f"id_number {text_type}, mobile {text_type}, city {text_type})"
            )
        )
        conn.execute(
            text("INSERT INTO residents VALUES (:id, :name, :id_number, :mobile, :city)"),
            resident_rows(),
        )
        conn.execute(
            text(
                f"CREATE TABLE licences (id INTEGER PRIMARY KEY, uscc {text_type}, "
                f"company {text_type})"
            )
        )
        conn.execute(text("INSERT INTO licences VALUES (:id, :uscc, :company)"), licence_rows())
        conn.execute(text(f"CREATE TABLE empty_log (id INTEGER PRIMARY KEY, note {text_type})"))
        conn.execute(text(f"CREATE TABLE {q}事项 办理{q} (id INTEGER, 事项 {text_type})"))
        conn.execute(
            text(f"INSERT INTO {q}事项 办理{q} VALUES (:id, :item)"),
            [{"id": i, "item": f"事项{i}"} for i in range(7)],
        )
        conn.execute(
            text(
                "CREATE VIEW v_resident_city AS SELECT city, count(*) AS n FROM residents "
                "GROUP BY city"
            )
        )
    engine.dispose()
    return url


def sqlite_department(path: Path) -> str:
    return build_department(f"sqlite:///{path}")
