"""The built-in policy templates: four ODRL policies a holder starts from instead of a blank page.

Each template is a JSON-LD file in ``templates/`` (next to the console's HTML templates, which live
in ``templates/policy/``) and is parsed by the same ``odrl.parse_policy`` as any uploaded policy, so
a template can never use a term the engine would refuse (``tests/policy/test_templates.py`` parses
them all). The four are the ones issue 6 names: public-welfare free use (公益无偿使用), industry paid
use (产业有偿使用), sandbox-only aggregates (仅沙箱聚合) and ASEAN cross-border use (面向东盟跨境使用).
Titles and summaries are msgids, translated where they are shown.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from datafactor.errors import N_, NotFound
from datafactor.policy.odrl import Policy, parse_policy

TEMPLATE_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Template:
    """One built-in template: its name (the file's stem), title, summary and JSON-LD file."""

    name: str
    title: str  # msgid
    summary: str  # msgid

    @property
    def path(self) -> Path:
        return TEMPLATE_DIR / f"{self.name}.jsonld"

    def document(self) -> dict[str, Any]:
        """The template's JSON-LD, a fresh copy the caller may change."""
        return copy.deepcopy(_document(self.name))


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "public-welfare",
            N_("Public-welfare free use"),
            N_(
                "Free use for public governance, public welfare or research, by API or in the "
                "sandbox, until the end of the term; attribution required; no download, no onward "
                "transfer, no re-identification."
            ),
        ),
        Template(
            "industry-paid",
            N_("Industry paid use"),
            N_(
                "Paid use for industry development, by API or in the sandbox, a limited number of "
                "times and only the listed fields; each use pays the fee; no onward transfer."
            ),
        ),
        Template(
            "sandbox-aggregates",
            N_("Sandbox-only aggregates"),
            N_(
                "Computation in the sandbox only, with results aggregated over groups of a minimum "
                "size under a privacy budget (ε) and reviewed before release; no download, no "
                "re-identification."
            ),
        ),
        Template(
            "asean-cross-border",
            N_("ASEAN cross-border use"),
            N_(
                "Use in China and the ASEAN member states for trade, logistics or finance, by API "
                "or in the sandbox; no onward transfer to third parties; no re-identification."
            ),
        ),
    )
}


@cache
def _document(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TEMPLATE_DIR / f"{name}.jsonld").read_text("utf-8"))
    return data


def get_template(name: str) -> Template:
    """The template called ``name``, or a 404 naming the templates there are."""
    found = TEMPLATES.get(name)
    if found is None:
        raise NotFound(
            N_("There is no policy template named {name}. Known templates: {known}."),
            code="unknown-template",
            name=name,
            known=", ".join(TEMPLATES),
        )
    return found


def load_template(name: str) -> Policy:
    """The template called ``name``, parsed (a 404 ``NotFound`` for an unknown name)."""
    return parse_policy(get_template(name).document())
