"""API shapes of the policy engine: a decision asked and answered, templates, renderings.

The policy and the request stay plain JSON objects here: the ODRL parser (``odrl.parse_policy``)
and the request parser (``request.parse_request``) own their vocabularies and refuse an unknown
term by name, so the API and the CLI refuse the same input with the same message.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datafactor.policy.engine import Decision


class DecisionCreate(BaseModel):
    """A request to decide against a policy, both given inline."""

    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] = Field(description="The ODRL 2.2 policy (JSON-LD).")
    request: dict[str, Any] = Field(
        description="action (required), target, assignee, purpose, time, spatial, channel, "
        "count_so_far, industry, pay_amount, fields."
    )


class DecisionPublic(BaseModel):
    """The engine's answer: exactly what ``datafactor policy decide --json`` prints."""

    decision: Literal["permit", "deny"]
    reasons: list[str] = Field(description="Why, in plain language (the request's language).")
    duties: list[str] = Field(description="Duties the grantee must now fulfil (ODRL actions).")
    rules: list[str] = Field(description="Ids of the rules applied.")

    @classmethod
    def of(cls, decision: Decision, locale: str) -> DecisionPublic:
        """The four keys of the answer; the output limits a permit may carry are for the
        sandbox that enforces them and are not part of it."""
        full = decision.as_dict(locale)
        return cls(
            decision=full["decision"],
            reasons=full["reasons"],
            duties=full["duties"],
            rules=full["rules"],
        )


class RenderCreate(BaseModel):
    """A policy to put into plain language."""

    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] = Field(description="The ODRL 2.2 policy (JSON-LD).")


class RenderPublic(BaseModel):
    """A policy in plain language, one sentence per rule, in the request's language."""

    locale: str
    text: list[str]


class TemplateSummary(BaseModel):
    """A built-in policy template in the list."""

    name: str
    title: str
    summary: str


class TemplatePublic(TemplateSummary):
    """A template with its policy (JSON-LD) and its plain-language rendering."""

    locale: str
    policy: dict[str, Any] = Field(description="The ODRL 2.2 policy (JSON-LD).")
    text: list[str] = Field(description="The policy in plain language, one sentence per rule.")
