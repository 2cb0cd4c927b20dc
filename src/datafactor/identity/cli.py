"""``datafactor users …``: the operator's user commands, over the same services as the web and API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.identity import services
from datafactor.settings import get_settings
from datafactor.web.cli_support import fail

users_app = typer.Typer(help="Users.", no_args_is_help=True)
console = Console(soft_wrap=True)


@users_app.command("create")
def users_create(
    party_id: Annotated[str, typer.Option(help="Id of the party the user belongs to.")],
    username: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    display_name: Annotated[str, typer.Option()] = "",
    role: Annotated[list[str] | None, typer.Option(help="admin, staff or auditor.")] = None,
) -> None:
    """Create a user in a party (operator bootstrap and support)."""
    try:
        database = Database(get_settings().database_url)
        with database.write() as session:
            user = services.create_user_as_operator(
                session,
                party_id,
                username=username,
                display_name=display_name,
                password=password,
                roles=role or ["staff"],
            )
            console.print(f"user {user.username} created ({user.id})")
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
