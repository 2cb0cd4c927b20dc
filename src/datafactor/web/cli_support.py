"""Shared plumbing of the CLI commands: turning a refusal into a message and an exit code."""

from __future__ import annotations

import typer
from rich.console import Console

from datafactor.errors import DomainError
from datafactor.web.i18n import gettext

err = Console(stderr=True, soft_wrap=True)


def fail(exc: DomainError) -> typer.Exit:
    """Print a refusal in the user's language and return the exit to raise (code 2)."""
    err.print(f"[red]error:[/red] {gettext(exc.message, **exc.params)}")
    return typer.Exit(2)
