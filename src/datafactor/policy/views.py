"""HTML routes of the policy workbench (``/policy``): templates, plain language, editor, try-out.

One page with four panels: choose a template; read the policy in plain language (Chinese and
English side by side) and as JSON-LD (editable); the form-based editor, which needs no ODRL
knowledge and writes the JSON-LD (``editor.build_document``); and "try a request", which decides a
request against the JSON-LD on the page and shows the decision with its reasons and duties. The
editor and the try-out post the whole state back and the page is rendered again, so it works
without a script; with HTMX the forms swap only the workbench. Nothing is stored: a policy becomes
binding when an authorisation or a listing adopts it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from datafactor import context
from datafactor.errors import DomainError
from datafactor.policy import editor
from datafactor.policy import templates as policy_templates
from datafactor.policy.engine import decide
from datafactor.policy.odrl import CST, parse_policy
from datafactor.policy.render import describe
from datafactor.policy.request import parse_request
from datafactor.policy.schemas import DecisionPublic
from datafactor.web.deps import WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, render

router = APIRouter(include_in_schema=False)
LOCALES = ("zh_CN", "en")
MAX_POLICY_TEXT = 64 * 1024


def _error(exc: DomainError) -> dict[str, Any]:
    # Shown inside the workbench (not base.html's banner), so an HTMX swap of it shows it too.
    shown = error_text(exc)
    return {"policy_error": shown["error"], "error_field": shown["error_field"]}


def _now_cn() -> str:
    """Now in China time, as a ``datetime-local`` input shows it (the try-out's default)."""
    return datetime.now(CST).strftime("%Y-%m-%dT%H:%M")


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)


def _renderings(document: dict[str, Any]) -> dict[str, list[str]]:
    policy = parse_policy(document)
    return {locale: describe(policy, locale) for locale in LOCALES}


def _page(
    request: Request,
    identity: WebUser,
    *,
    template: str | None,
    policy_text: str,
    values: editor.EditorValues,
    asked: dict[str, str] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    ctx: dict[str, Any] = {
        "templates": [
            {"name": t.name, "title": t.title, "summary": t.summary}
            for t in policy_templates.TEMPLATES.values()
        ],
        "current": template,  # ("template" is render's own argument)
        "policy_text": policy_text,
        "values": values,
        "choices": editor.choices(),
        "asked": asked or {**editor.DEFAULT_REQUEST, "time": _now_cn()},
        "request_choices": editor.request_choices(),
        "renderings": None,
    }
    ctx.update(extra)
    if ctx["renderings"] is None:
        try:
            ctx["renderings"] = _renderings(json.loads(policy_text))
        except (ValueError, TypeError, DomainError):
            ctx["renderings"] = None
    return render(request, "policy/workbench.html", identity, status=status, **ctx)


@router.get("/policy")
def workbench(
    request: Request,
    identity: WebUser,
    template: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    name = template or next(iter(policy_templates.TEMPLATES))
    try:
        document = policy_templates.get_template(name).document()
    except DomainError as exc:
        first = next(iter(policy_templates.TEMPLATES))
        document = policy_templates.get_template(first).document()
        return _page(
            request,
            identity,
            template=first,
            policy_text=_dump(document),
            values=editor.values_from_document(document),
            status=exc.status,
            **_error(exc),
        )
    return _page(
        request,
        identity,
        template=name,
        policy_text=_dump(document),
        values=editor.values_from_document(document),
    )


@router.post("/policy/build")
async def build(request: Request, identity: WebUser) -> Response:
    """The editor's form → the policy's JSON-LD and its plain-language rendering."""
    form = await _read(request)
    check_csrf(request, form.get("csrf_token"), identity)
    template = form.get("template") or None
    try:
        values = editor.values_from_form(form)
        document = editor.build_document(values)
        renderings = _renderings(document)
    except DomainError as exc:
        # Show what could be read: the form's other choices and the policy they make.
        readable = editor.values_from_form(form, lenient=True)
        return _page(
            request,
            identity,
            template=template,
            policy_text=_dump(editor.build_document(readable)),
            values=readable,
            status=422,
            **_error(exc),
        )
    return _page(
        request,
        identity,
        template=template,
        policy_text=_dump(document),
        values=values,
        renderings=renderings,
        built=True,
    )


async def _read(request: Request) -> dict[str, str]:
    """The posted form; ``read_form`` bounds each field to 4 KiB, the JSON-LD gets 64 KiB."""
    form = await read_form(request)
    policy_field = (await request.form(max_files=0)).get("policy")
    if isinstance(policy_field, str):
        form["policy"] = policy_field[:MAX_POLICY_TEXT]
    return form


def _read_policy_text(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    text = form.get("policy", "")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return text, data if isinstance(data, dict) else {}


@router.post("/policy/decide")
async def try_request(request: Request, identity: WebUser) -> Response:
    """Decide the request typed into the form against the JSON-LD on the page."""
    form = await _read(request)
    check_csrf(request, form.get("csrf_token"), identity)
    template = form.get("template") or None
    asked = editor.request_form_values(form)
    text, document = _read_policy_text(form)
    values = editor.values_from_document(document)
    try:
        policy = parse_policy(editor.require_document(text))
        decision = decide(policy, parse_request(editor.request_from_form(form)))
        answer = DecisionPublic.of(decision, context.locale.get()).model_dump()
    except DomainError as exc:
        return _page(
            request,
            identity,
            template=template,
            policy_text=text,
            values=values,
            asked=asked,
            status=422,
            **_error(exc),
        )
    return _page(
        request,
        identity,
        template=template,
        policy_text=text,
        values=values,
        asked=asked,
        answer=answer,
    )
