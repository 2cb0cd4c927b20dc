"""A pytest plugin for runs in pytest-xdist workers (``make test``): a folder the workers share, and
the tests of an engine a run starts once — the Spark session, MariaDB — all sent to one worker.

Loaded with ``-p xdist_groups`` (pyproject's addopts). The controller makes the folder when it sets
up the workers and names it to each (``shared_dir``); other hooks keep cross-worker state there
(the PostgreSQL server's address: tests/conftest.py) and the folder is removed when the run ends.

Grouping: pytest-xdist's own ``xdist_group`` does nothing with pytest 9.2 (it renames the test
ids, which pytest 9.2 no longer reads: pytest-xdist issue 1386), so each worker writes the ids of
the tests of each group to the shared folder at collection, and with ``--dist loadgroup`` the
controller schedules by scope with those groups as scopes — every other test goes with its module,
as ``loadfile`` does, so a module's tests run in one process in their order, as they do without
workers (module-scoped fixtures stay warm; a test that leans on an earlier one still sees it).

(PYTEST_DONT_REWRITE: tests/conftest.py imports ``shared_dir`` before pytest loads this as a plugin.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

# A marker (or, for Spark, the session fixture) -> every such test runs in one worker.
ONE_WORKER_GROUPS = ("spark", "mysql")
_GROUPS_FILE = "groups.json"


def shared_dir(config: pytest.Config) -> Path | None:
    """The run's shared folder: in a worker, or in the controller once it set workers up."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return Path(workerinput["df_shared"]) if "df_shared" in workerinput else None
    found: Path | None = getattr(config, "_df_shared", None)
    return found


def _group_of(item: pytest.Item) -> str | None:
    for group in ONE_WORKER_GROUPS:
        if item.get_closest_marker(group) is not None:
            return group
        if group == "spark" and "spark_root" in getattr(item, "fixturenames", ()):
            return group
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    config = node.config
    if getattr(config, "_df_shared", None) is None:
        config._df_shared = Path(tempfile.mkdtemp(prefix="df-xdist-"))
    node.workerinput["df_shared"] = str(config._df_shared)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    shared: Path | None = getattr(config, "_df_shared", None)
    if shared is not None:  # the controller, after every other hook used the folder
        shutil.rmtree(shared, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared = shared_dir(config)
    if shared is None or not hasattr(config, "workerinput"):
        return
    groups = {item.nodeid: group for item in items if (group := _group_of(item))}
    partial = shared / f"{_GROUPS_FILE}.{os.getpid()}"
    partial.write_text(json.dumps(groups))
    os.replace(partial, shared / _GROUPS_FILE)  # every worker collects the same tests


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerGroups(LoadScopeScheduling):  # type: ignore[misc]
        """``loadgroup`` with the groups the workers wrote (see the module doc)."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first asked once every worker finished collecting
                shared = shared_dir(config)
                path = shared / _GROUPS_FILE if shared is not None else None
                self.groups = json.loads(path.read_text()) if path and path.exists() else {}
            return self.groups.get(nodeid) or nodeid.split("::", 1)[0]

    return OneWorkerGroups(config, log)
