"""``datafactor policy …``: decide a request against a policy, list the templates, render a policy.

``policy decide --policy FILE --request FILE [--json]`` parses an ODRL policy (JSON-LD) and a
request (JSON with the keys of ``request.REQUEST_KEYS``) and prints the decision: ``--json`` prints
exactly ``{"decision", "reasons", "duties", "rules"}`` (duties by their ODRL action names). A
decision is an answer, so permit and deny both exit 0; input that cannot be read — a missing file,
malformed JSON, an unknown term — exits 2 with a one-line reason naming what was wrong. ``FILE``
may be ``-`` for standard input (one of the two at most). ``policy templates [--json]`` lists the
built-in templates; ``policy render FILE|NAME [--lang zh|en]`` prints a policy in plain language,
one sentence per rule. No command touches the database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from datafactor import context
from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.policy import templates as policy_templates
from datafactor.policy.engine import decide
from datafactor.policy.odrl import Policy, parse_policy
from datafactor.policy.render import describe
from datafactor.policy.request import parse_request
from datafactor.policy.schemas import DecisionPublic
from datafactor.web.cli_support import fail
from datafactor.web.i18n import gettext

policy_app = typer.Typer(
    help="Usage policies (ODRL): decide requests, templates, plain language.", no_args_is_help=True
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
LANGS = {"zh": "zh_CN", "zh_CN": "zh_CN", "en": "en"}


def read_json(path: str, what: str) -> Any:
    """The JSON document in ``path`` (``-``: standard input), or a refusal saying what is wrong."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            N_("Cannot read the {what} file {path}: {reason}."),
            field=what,
            what=what,
            path=path,
            reason=getattr(exc, "strerror", None) or type(exc).__name__,
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            N_(
                "The {what} file {path} is not valid JSON (line {line}, column {column}): {reason}."
            ),
            field=what,
            what=what,
            path=path,
            line=exc.lineno,
            column=exc.colno,
            reason=exc.msg,
        ) from None


def _locale(lang: str | None) -> str:
    if lang is None:
        return context.locale.get()
    if lang not in LANGS:
        err.print(f"--lang must be zh or en, not {lang!r}")
        raise typer.Exit(2)
    return LANGS[lang]


@policy_app.command("decide")
def decide_cmd(
    policy: Annotated[str, typer.Option("--policy", help="ODRL policy (JSON-LD) file, or -.")],
    request: Annotated[str, typer.Option("--request", help="Request (JSON) file, or -.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"decision","reasons","duties","rules"}.')
    ] = False,
    lang: Annotated[str | None, typer.Option("--lang", help="Reasons in zh or en.")] = None,
) -> None:
    """Decide one request against a policy: permit or deny, with reasons, duties and rule ids."""
    locale = _locale(lang)
    if policy == "-" and request == "-":
        err.print("only one of --policy and --request can be read from standard input")
        raise typer.Exit(2)
    token = context.locale.set(locale)
    try:
        parsed = parse_policy(read_json(policy, "policy"))
        asked = parse_request(read_json(request, "request"))
        answer = DecisionPublic.of(decide(parsed, asked), locale).model_dump()
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        context.locale.reset(token)
    if as_json:
        sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
        return
    out.print(f"[bold]{answer['decision']}[/bold]")
    for reason in answer["reasons"]:
        out.print(f"  - {reason}")
    if answer["duties"]:
        out.print("duties: " + ", ".join(str(d) for d in answer["duties"]))
    if answer["rules"]:
        out.print("rules: " + ", ".join(str(r) for r in answer["rules"]))


@policy_app.command("templates")
def templates_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    lang: Annotated[str | None, typer.Option("--lang", help="Titles in zh or en.")] = None,
) -> None:
    """List the policy templates: name, title and what each allows."""
    token = context.locale.set(_locale(lang))
    try:
        rows = [
            {"name": t.name, "title": gettext(t.title), "summary": gettext(t.summary)}
            for t in policy_templates.TEMPLATES.values()
        ]
    finally:
        context.locale.reset(token)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    for row in rows:
        out.print(f"[bold]{row['name']}[/bold]  {row['title']}")
        out.print(f"    {row['summary']}")


@policy_app.command("render")
def render_cmd(
    source: Annotated[str, typer.Argument(help="Policy file (JSON-LD), - or a template name.")],
    lang: Annotated[str | None, typer.Option("--lang", help="zh or en.")] = None,
) -> None:
    """Print a policy in plain language, one sentence per rule."""
    locale = _locale(lang)
    try:
        parsed: Policy
        if source in policy_templates.TEMPLATES and not Path(source).exists():
            parsed = policy_templates.load_template(source)
        else:
            parsed = parse_policy(read_json(source, "policy"))
        sentences = describe(parsed, locale)
    except DomainError as exc:
        token = context.locale.set(locale)
        try:
            raise fail(exc) from exc
        finally:
            context.locale.reset(token)
    for sentence in sentences:
        out.print(sentence, highlight=False)
