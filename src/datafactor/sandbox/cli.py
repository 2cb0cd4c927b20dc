"""``datafactor sandbox …``: the sandbox from the command line (the same use cases as the API).

* ``grants [--as USER] [--json]`` — the user's sandbox grants: each grant's ``id``, its tables
  with their columns (name, type, role), ``k`` and the budget left.
* ``query --grant ID --sql SQL [--as USER] [--epsilon E] [--json]`` — run a query; ``--json``
  prints the API's answer (``decision``, ``reasons``, ``columns``, ``rows``, ``epsilon_spent``…).
* ``preview`` — the same arguments: what the query would cost, nothing spent.
* ``show ID [--as USER] [--json]`` — one recorded query as the user may see it (the API's
  ``GET /sandbox/queries/{id}``): a held result's rows once the holder released it.
* ``review ID (--release | --withhold) [--note TEXT] [--as USER] [--json]`` — the data holder
  releases a held result to its grantee or withholds it (the API's ``POST
  /sandbox/queries/{id}/review``); prints the query as the holder sees it.
* ``offer FILE --table NAME --holder PARTY --grantee PARTY --privacy-unit COL --columns
  COL:ROLE,… --k K [--epsilon E] [--review] [--registrar USER] [--json]`` — the pilots' and
  operators' tool: the file becomes
  the holder's registered data, profiled and granted to the grantee for sandbox use (see
  ``services.offer_file``); prints ``{"grant_id", …}``.

``--as`` defaults to the ``DATAFACTOR_USER`` environment variable. A refusal of a query (or of
its preview) is an answer (exit 0 with ``--json``; exit 1 without, its reasons in the user's
language); an error is printed on stderr and exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from datafactor import context
from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.identity import principal_for_username
from datafactor.permissions import Principal
from datafactor.sandbox import services
from datafactor.sandbox.models import SandboxQuery
from datafactor.settings import get_settings
from datafactor.web.cli_support import fail

sandbox_app = typer.Typer(
    help="The privacy-computing sandbox (usable, not visible).", no_args_is_help=True
)
out = Console(soft_wrap=True)

AsUser = Annotated[
    str,
    typer.Option("--as", envvar="DATAFACTOR_USER", help="The user acting (username)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
GrantId = Annotated[str, typer.Option("--grant", help="The sandbox grant's id.")]
Sql = Annotated[str, typer.Option("--sql", help="The query (one SELECT).")]
Epsilon = Annotated[float | None, typer.Option("--epsilon", help="ε this query may spend.")]


@contextmanager
def _db() -> Iterator[Database]:
    db = Database(get_settings().database_url)
    try:
        yield db
    finally:
        db.dispose()


def _who(db: Database, username: str) -> Principal:
    with db.read() as s:
        return principal_for_username(s, username)


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


@sandbox_app.command("grants")
def grants_cmd(as_user: AsUser, as_json: AsJson = False) -> None:
    """The sandbox grants the user's party holds, with their tables, k and budget left."""
    try:
        with _db() as db:
            who = _who(db, as_user)
            with db.read() as s:
                items = [g.as_dict() for g in services.list_sandbox_grants(s, who)]
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        _print(items)
        return
    table = Table("id", "number", "tables", "k", "ε left", "usable")
    for g in items:
        names = ", ".join(
            f"{t['name']}({', '.join(c['name'] + ':' + c['role'] for c in t['columns'])})"
            for t in g["tables"]
        )
        left = "—" if g["budget_left"] is None else f"{g['budget_left']:g}"
        table.add_row(g["id"], g["number"], names, str(g["k"]), left, str(g["usable"]))
    out.print(table)


@sandbox_app.command("query")
def query_cmd(
    grant: GrantId, sql: Sql, as_user: AsUser, epsilon: Epsilon = None, as_json: AsJson = False
) -> None:
    """Run a query under a sandbox grant."""
    try:
        with _db() as db:
            who = _who(db, as_user)
            answer = services.run_query(db, get_settings(), who, grant, sql, epsilon=epsilon)
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        _print(answer.as_dict())
        return
    _human(answer.as_dict())


@sandbox_app.command("preview")
def preview_cmd(
    grant: GrantId, sql: Sql, as_user: AsUser, epsilon: Epsilon = None, as_json: AsJson = False
) -> None:
    """What a query would cost; nothing is spent or recorded."""
    try:
        with _db() as db:
            who = _who(db, as_user)
            with db.read() as s:
                answer = services.preview_query(s, who, grant, sql, epsilon=epsilon)
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        _print(answer)
        return
    out.print(f"{answer['decision']}: ε {answer['epsilon']:g}, columns {answer['columns']}")
    _print_reasons(answer["reasons"])
    if answer["decision"] != "allowed":
        raise typer.Exit(1)


def _print_reasons(reasons: list[dict[str, str]]) -> None:
    """Each reason with its rule id, in the user's language (the locale ``fail`` speaks)."""
    lang = "zh" if context.locale.get().startswith("zh") else "en"
    for r in reasons:
        out.print(f"  [{r['rule']}] {r.get(lang) or r['en']}", markup=False)


@sandbox_app.command("show")
def show_cmd(
    query_id: Annotated[str, typer.Argument(help="The query's id (the answer's `id`).")],
    as_user: AsUser,
    as_json: AsJson = False,
) -> None:
    """One recorded query as the user may see it: a held result's rows once the holder
    released it."""
    _show_record(as_user, as_json, lambda s, who: services.get_query(s, who, query_id))


@sandbox_app.command("review")
def review_cmd(
    query_id: Annotated[str, typer.Argument(help="The held query's id.")],
    as_user: AsUser,
    release: Annotated[
        bool | None,
        typer.Option(
            "--release/--withhold", help="Release the held result to the grantee, or withhold it."
        ),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Why (shown to the grantee).")] = "",
    as_json: AsJson = False,
) -> None:
    """The data holder's output review: release a held result to its grantee, or withhold it."""
    if release is None:
        raise typer.BadParameter(
            "say whether to release the result or withhold it", param_hint="--release/--withhold"
        )
    _show_record(
        as_user,
        as_json,
        lambda s, who: services.review_query(s, who, query_id, release=release, note=note),
        write=True,
    )


def _show_record(
    as_user: str,
    as_json: bool,
    act: Callable[[Session, Principal], SandboxQuery],
    *,
    write: bool = False,
) -> None:
    """Print the query ``act`` reads (or changes, with ``write``) as ``as_user`` may see it."""
    try:
        with _db() as db:
            who = _who(db, as_user)
            with db.write() if write else db.read() as s:
                record = services.query_dict(act(s, who), who)
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        _print(record)
        return
    _human(record, refusal_exits=False)


def _human(answer: dict[str, Any], *, refusal_exits: bool = True) -> None:
    out.print(
        f"{answer['decision']} (ε spent {answer['epsilon_spent']:g}, state {answer['state']})"
    )
    _print_reasons(answer["reasons"])
    if answer["columns"]:
        table = Table(*answer["columns"])
        for row in answer["rows"]:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
    if refusal_exits and answer["decision"] != "allowed":
        raise typer.Exit(1)


@sandbox_app.command("offer")
def offer_cmd(
    file: Annotated[Path, typer.Argument(help="A CSV or Parquet file.")],
    table: Annotated[str, typer.Option("--table", help="The table name grantees write.")],
    holder: Annotated[str, typer.Option("--holder", help="Party: id, credit code or name.")],
    grantee: Annotated[str, typer.Option("--grantee", help="Party: id, credit code or name.")],
    privacy_unit: Annotated[
        str, typer.Option("--privacy-unit", help="The column naming the individual.")
    ],
    columns: Annotated[
        str,
        typer.Option(
            "--columns",
            help="COL:ROLE,… (roles: identifier, group_key, measure:LOWER:UPPER, forbidden).",
        ),
    ],
    k: Annotated[int, typer.Option("--k", min=1, help="Minimum group size.")],
    epsilon: Annotated[
        float | None, typer.Option("--epsilon", help="Total privacy budget ε (none: k only).")
    ] = None,
    registrar: Annotated[
        str | None, typer.Option("--registrar", help="The registrar user (default: found).")
    ] = None,
    review: Annotated[
        bool, typer.Option("--review", help="Hold each result for the holder's release.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Register FILE as the holder's data and grant the grantee sandbox use of it."""
    try:
        drafts = services.parse_columns(columns)
        with _db() as db:
            outcome = services.offer_file(
                db,
                get_settings(),
                file,
                table=table,
                holder=holder,
                grantee=grantee,
                privacy_unit=privacy_unit,
                columns=drafts,
                k=k,
                epsilon=epsilon,
                registrar=registrar,
                review=review,
            )
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        _print(outcome.as_dict())
        return
    out.print(f"grant {outcome.grant_id} ({outcome.state}) over table {outcome.table}")
