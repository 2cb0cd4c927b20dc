"""Fixtures of the data-plane tests: the one Spark session of a test run, and an engine per test.

Spark starts a JVM (~5 s, ~1 GB), so one ``local[2]`` session serves the whole run, started on
first use and stopped at the end; each test gets its own ``SparkEngine`` on it (a ``newSession()``,
so views and settings never leak between tests). Where PySpark or Java is missing the Spark tests
skip and say what to install; they carry the ``spark`` marker, so in CI (``CI=true``) such a skip
fails the run (``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datafactor.dataplane.spark import (
    SparkEngine,
    SparkUnavailable,
    spark_session,
    stop_spark_session,
)


@pytest.fixture(scope="session")
def spark_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The process's SparkSession, for the whole test run."""
    try:
        session = spark_session(
            "local[2]", driver_memory="1g", work_directory=tmp_path_factory.mktemp("spark")
        )
    except SparkUnavailable as exc:
        pytest.skip(f"Spark is not available: {exc}")
    yield session
    stop_spark_session()


@pytest.fixture
def spark(spark_root: Any, tmp_path: Path) -> Iterator[SparkEngine]:
    """A Spark engine that may load files under ``tmp_path``."""
    with SparkEngine(
        session=spark_root,
        allowed_directories=(tmp_path,),
        temp_directory=tmp_path / "spark-work",
        shuffle_partitions=2,
    ) as engine:
        yield engine
