"""The sandbox's rules: ``rules/sandbox.yaml`` loaded and checked (``datafactor.rulefiles``).

Every rule the sandbox applies has an entry there with a stable id, a bilingual title, its source
and section and whether it was verified; values (the forbidden functions, k, budget caps, worker
limits) are read from the file, never literals in code. Pure: no web, no ORM.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Final

from datafactor.rulefiles import RuleSet, read_rule_set

_RULES_FILE: Final = Path(__file__).resolve().parent / "rules" / "sandbox.yaml"

RULE_KEYS: Final[tuple[str, ...]] = (
    "q_syntax",
    "q_single_select",
    "q_tables",
    "q_columns",
    "q_functions",
    "q_aggregate_only",
    "q_group_identifier",
    "q_individual_value",
    "q_filter_identifier",
    "q_shape",
    "out_k",
    "out_bounding",
    "out_dp",
    "out_review",
    "out_size",
    "budget_total",
    "budget_query_cap",
    "budget_composition",
    "budget_refund",
    "exec_isolation",
    "exec_limits",
    "exec_errors",
    "grant_active",
    "grant_policy",
    "grant_profile",
    "grant_visible",
    "record",
)


@functools.cache
def sandbox_rules() -> RuleSet:
    return read_rule_set("sandbox", RULE_KEYS, _RULES_FILE)


def rule_id(key: str) -> str:
    return sandbox_rules().rule_id(key)


def section(name: str) -> dict[str, Any]:
    """A values section of the file (``checker``, ``output``, ``budget``, ``worker``)."""
    data = sandbox_rules().data.get(name)
    if not isinstance(data, dict):
        raise ValueError(f"sandbox.yaml: a {name} section is required")
    return data
