"""JSON routes of the policy engine under ``/api/v1/policy``: decide, templates, plain language.

``POST /policy/decisions`` takes ``{"policy", "request"}`` and answers exactly what
``datafactor policy decide --json`` prints; permit and deny are both 200 (a decision is an answer),
while a malformed policy or request is a 422 problem+json naming the term. The templates and the
rendering are read-only and belong to nobody, so any logged-in party may use them. Nothing here
touches the database beyond the bearer token check, and the routes are ``async``: the engine is pure
and fast, so a thread-pool hop would cost more than the decision.
"""

from __future__ import annotations

from fastapi import APIRouter

from datafactor import context
from datafactor.policy import templates as policy_templates
from datafactor.policy.engine import decide
from datafactor.policy.odrl import parse_policy
from datafactor.policy.render import describe
from datafactor.policy.request import parse_request
from datafactor.policy.schemas import (
    DecisionCreate,
    DecisionPublic,
    RenderCreate,
    RenderPublic,
    TemplatePublic,
    TemplateSummary,
)
from datafactor.web.deps import ApiPrincipal
from datafactor.web.i18n import gettext

router = APIRouter(prefix="/policy", tags=["policy"])


@router.post(
    "/decisions",
    response_model=DecisionPublic,
    summary="Decide a request against a policy (permit or deny, reasons, duties, rules)",
)
async def decisions(body: DecisionCreate, principal: ApiPrincipal) -> DecisionPublic:
    policy = parse_policy(body.policy)
    request = parse_request(body.request)
    return DecisionPublic.of(decide(policy, request), context.locale.get())


@router.get(
    "/templates", response_model=list[TemplateSummary], summary="The built-in policy templates"
)
async def templates(principal: ApiPrincipal) -> list[TemplateSummary]:
    return [
        TemplateSummary(name=t.name, title=gettext(t.title), summary=gettext(t.summary))
        for t in policy_templates.TEMPLATES.values()
    ]


@router.get(
    "/templates/{name}",
    response_model=TemplatePublic,
    summary="One template: its policy (JSON-LD) and its plain-language rendering",
)
async def template(name: str, principal: ApiPrincipal) -> TemplatePublic:
    found = policy_templates.get_template(name)
    locale = context.locale.get()
    return TemplatePublic(
        name=found.name,
        title=gettext(found.title),
        summary=gettext(found.summary),
        locale=locale,
        policy=found.document(),
        text=describe(policy_templates.load_template(name), locale),
    )


@router.post(
    "/render", response_model=RenderPublic, summary="A policy in plain language (zh or en)"
)
async def render(body: RenderCreate, principal: ApiPrincipal) -> RenderPublic:
    locale = context.locale.get()
    return RenderPublic(locale=locale, text=describe(parse_policy(body.policy), locale))
