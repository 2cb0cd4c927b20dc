"""Alembic migrations of the control-plane database, driven from Python (``datafactor db upgrade``).

The script location is this package, so migrations ship inside the wheel. ``render_as_batch`` is on
so that ``ALTER TABLE`` works on SQLite (which rebuilds the table); the metadata's naming convention
gives every constraint a stable name on both databases.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import SAWarning

HERE = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise if the models and the migrations have drifted apart (``alembic check``).

    SQLAlchemy cannot reflect SQLite's expression indexes (``ix_ledger_entry_leaf_bucket``), so
    on SQLite they are left out of the comparison — PostgreSQL's check covers them.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Skipped unsupported reflection of expression-based index", SAWarning
        )
        warnings.filterwarnings(
            "ignore", "autogenerate skipping metadata-specified expression-based index", UserWarning
        )
        command.check(alembic_config(url))
