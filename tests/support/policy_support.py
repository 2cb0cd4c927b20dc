"""Small builders shared by the policy tests (no database)."""

from __future__ import annotations

from typing import Any

from datafactor.policy import Policy, parse_policy

CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
ASSET = "urn:df:asset:1"
PARTY = "urn:df:party:lab"


def constraint(left: str, operator: str, right: Any, **extra: Any) -> dict[str, Any]:
    return {"leftOperand": left, "operator": operator, "rightOperand": right, **extra}


def policy(
    *constraints: dict[str, Any],
    action: str = "use",
    prohibitions: list[dict[str, Any]] | None = None,
    duties: list[dict[str, Any]] | None = None,
    **top: Any,
) -> Policy:
    """A Set policy with one permission of ``action`` on ASSET under ``constraints``."""
    permission: dict[str, Any] = {"target": ASSET, "action": action}
    if constraints:
        permission["constraint"] = list(constraints)
    if duties:
        permission["duty"] = duties
    data: dict[str, Any] = {
        "@context": CONTEXT,
        "uid": "urn:df:policy:t",
        "permission": [permission],
    }
    if prohibitions:
        data["prohibition"] = prohibitions
    data.update(top)
    return parse_policy(data)
