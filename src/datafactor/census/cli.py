"""``datafactor census URL --party PARTY_ID``: a department's data asset census, in the foreground.

The command creates the same run the console shows (attributed to the department, audited as
``cli``), claims it for itself so no background runner takes it, and runs it here with a
progress bar on stderr (tables read of tables listed, and the rows of the table being read).
Every table is stored as it completes, so an interrupted run — Ctrl-C, a lost connection, a
killed process — resumes with ``datafactor census --resume RUN_ID`` (or from the console) and
reads only the tables still pending; a killed command's run is also given back to the queue
when its heartbeat goes stale, for a server's runner to finish.

The URL carries the department's credentials: it is checked and the database reached before
anything is stored, it is stored sealed, and it is never printed — every message names the
database by ``redact_url``'s form. ``-`` reads the URL from the first line of standard input,
so it stays out of the shell's history. Anything a person can get wrong ends with exit code 2
and one line on stderr in the user's language, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console

from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.web.cli_support import fail
from datafactor.web.i18n import gettext

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

MSG_PARTY_REQUIRED: Final = N_(
    "Name the department with --party PARTY_ID (or resume a census with --resume RUN_ID)."
)
MSG_URL_REQUIRED: Final = N_("Give the database URL (or - to read it from standard input).")
MSG_XLSX_EXISTS: Final = N_("{path} already exists; choose another --xlsx file or remove it first.")
MSG_STOPPED: Final = N_(
    "The census did not finish ({status}). Resume it with: datafactor census --resume {run}"
)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The readers and the census log a refused database at WARNING; without logging configured
    Python would print that on stderr next to our one-line message."""
    loggers = [logging.getLogger(n) for n in ("datafactor.dataplane", "datafactor.census")]
    handler = logging.NullHandler()
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _read_url(url: str | None) -> str | None:
    if url == "-":
        return sys.stdin.readline().strip() or None
    return url


class _Bar:
    """A rich progress bar on stderr (when it is a terminal): tables, then the current table."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.enabled = err.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
            disable=not self.enabled,
        )
        self.tables = self.progress.add_task(gettext(N_("Tables read")), total=None)
        self.rows = self.progress.add_task("", total=None, visible=False)

    def __call__(self, snapshot: Any) -> None:
        self.progress.update(
            self.tables, completed=snapshot.tables_read, total=snapshot.tables_total
        )
        if snapshot.current_table:
            self.progress.update(
                self.rows,
                description=snapshot.current_table,
                completed=snapshot.current_rows,
                total=snapshot.current_total,
                visible=True,
            )
        else:
            self.progress.update(self.rows, visible=False)

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _result(db: Any, principal: Any, run_id: str) -> dict[str, Any]:
    """The run, its figures and its inventory, as the API shapes them (``--json``)."""
    from datafactor.census import services
    from datafactor.census.schemas import CensusRunPublic, CensusTablePublic, TotalsPublic

    with db.read() as session:
        run = CensusRunPublic.of(services.get_run(session, principal, run_id))
        totals = TotalsPublic.of(services.run_totals(session, principal, run_id))
        entries, _ = services.list_tables(session, principal, run_id, limit=None)
        tables = [CensusTablePublic.of(e) for e in entries]
    return {
        "run": run.model_dump(mode="json", by_alias=True),
        "totals": totals.model_dump(mode="json"),
        "tables": [t.model_dump(mode="json", by_alias=True) for t in tables],
    }


def _print(result: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    run, totals = result["run"], result["totals"]
    # Names come from the department's database: Text, so "[...]" in them is not rich markup.
    table = Table(title=Text(f"{run['party_name']} · {run['source_url']}"), title_justify="left")
    for heading in (
        "schema",
        "table",
        "rows",
        "columns",
        "personal information",
        "sensitive",
        "grade",
        "quality",
    ):
        table.add_column(heading, overflow="fold")
    for entry in result["tables"]:
        failed = entry["status"] == "failed"
        table.add_row(
            Text(entry["schema"]),
            Text(entry["table"] + (" (view)" if entry["kind"] == "view" else "")),
            "-" if entry["row_count"] is None else f"{entry['row_count']:,}",
            "-" if entry["column_count"] is None else str(entry["column_count"]),
            Text(entry["error"]["message"])
            if failed and entry["error"]
            else ", ".join(entry["pi_types"]),
            "yes" if entry["sensitive"] else "",
            entry["grade"] or "",
            "" if entry["quality_score"] is None else f"{entry['quality_score']:.1f}",
        )
    out.print(table)
    grades = ", ".join(f"{k} {v}" for k, v in totals["grades"].items())
    out.print(
        f"census {run['id']}: {run['status']}; {totals['tables']} tables "
        f"({totals['tables_failed']} unreadable), {totals['rows']:,} rows, "
        f"{totals['columns']} columns; {totals['pi_tables']} with personal information, "
        f"{totals['sensitive_tables']} sensitive; grades: {grades}",
        markup=False,
    )


def _census(
    url: str | None,
    *,
    party: str | None,
    schema: str | None,
    sample_rows: int | None,
    domain: str | None,
    resume: str | None,
) -> tuple[Any, Any, str, str]:
    """Start (or resume) and run the census here; the database, principal, run id and status."""
    from datafactor.census import services
    from datafactor.census.jobs import CensusRunner, new_runner_id
    from datafactor.db import Database
    from datafactor.settings import get_settings

    settings = get_settings()
    db = Database(settings.database_url)
    runner = CensusRunner(db, settings, runner_id=new_runner_id("cli:"))
    try:
        if resume is not None:
            # With --party, a run of another department answers "no such census".
            principal = (
                services.operator_principal(party) if party else _principal_of_run(db, resume)
            )
            # A run whose runner died (a killed command) goes back to the queue first, if due.
            runner.sweep()
            if url:
                services.check_source(url, allow_sqlite=settings.source_allow_sqlite)
            with db.write() as session:
                run = services.resume_run(
                    session,
                    principal,
                    resume,
                    secret_key=settings.secret_key,
                    allow_sqlite=settings.source_allow_sqlite,
                    url=url,
                    claim_for=runner.runner_id,
                )
                run_id = run.id
        else:
            if not party:
                raise InvalidInput(MSG_PARTY_REQUIRED, field="party")
            if not url:
                raise InvalidInput(MSG_URL_REQUIRED, field="url")
            principal = services.operator_principal(party)
            request = services.CensusRequest(
                url=url, party_id=party, schema=schema, sample_rows=sample_rows, domain=domain
            )
            with db.read() as session:
                services.authorize_start(session, principal, party)
            services.check_request(request, settings.census_sample_rows)
            services.check_source(url, allow_sqlite=settings.source_allow_sqlite, schema=schema)
            with db.write() as session:
                run = services.start_census(
                    session,
                    principal,
                    request,
                    secret_key=settings.secret_key,
                    allow_sqlite=settings.source_allow_sqlite,
                    default_sample_rows=settings.census_sample_rows,
                    claim_for=runner.runner_id,
                )
                run_id = run.id
        err.print(f"census {run_id}", style="dim", markup=False)
        with db.write() as session:
            claimed = services.claimed_run(session, run_id, runner.runner_id)
        if claimed is not None:
            with _Bar() as bar, contextlib.suppress(KeyboardInterrupt):
                runner.execute(claimed, observe=bar)
        with db.read() as session:
            status = services.get_run(session, principal, run_id).status
        return db, principal, run_id, status
    except BaseException:
        db.dispose()
        raise


def _principal_of_run(db: Any, run_id: str) -> Any:
    """The department a run is of, for ``--resume`` without ``--party`` (operator tooling)."""
    from sqlalchemy import select

    from datafactor.census import services
    from datafactor.census.models import CensusRun

    with db.read() as session:
        party_id = session.scalar(select(CensusRun.party_id).where(CensusRun.id == run_id))
    if party_id is None:
        from datafactor.errors import NotFound

        raise NotFound(N_("No such census."))
    return services.operator_principal(party_id)


def census_cmd(
    url: Annotated[
        str | None,
        typer.Argument(
            metavar="URL",
            help="SQLAlchemy URL of the department's database (postgresql+psycopg://…, "
            "mysql+pymysql://…); - reads it from standard input. With --resume: optional, a new "
            "URL of the same database.",
            show_default=False,
        ),
    ] = None,
    party: Annotated[
        str | None,
        typer.Option("--party", help="Id of the government department the inventory is of."),
    ] = None,
    schema: Annotated[str | None, typer.Option(help="Only this schema (default: all).")] = None,
    sample_rows: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Rows read from each table for its scan (default: DATAFACTOR_CENSUS_SAMPLE_ROWS).",
        ),
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="The department's domain for grading, e.g. transport.")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", metavar="RUN_ID", help="Go on with a stopped census where it stopped."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the inventory as JSON.")] = False,
    xlsx: Annotated[
        Path | None, typer.Option("--xlsx", help="Also write the inventory to this Excel file.")
    ] = None,
) -> None:
    """Census a department's database: schemas, tables, columns, rows, and a scan of each table."""
    try:
        if xlsx is not None and xlsx.exists():
            raise InvalidInput(MSG_XLSX_EXISTS, field="xlsx", path=str(xlsx))
        with _quiet():
            db, principal, run_id, status = _census(
                _read_url(url),
                party=party,
                schema=schema,
                sample_rows=sample_rows,
                domain=domain,
                resume=resume,
            )
    except DomainError as exc:
        raise fail(exc) from None
    try:
        from datafactor.census import services

        result = _result(db, principal, run_id)
        if xlsx is not None:
            with db.read() as session:
                _, data = services.run_workbook(session, principal, run_id)
            xlsx.write_bytes(data)
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    else:
        _print(result)
    if status != "succeeded":
        error = result["run"].get("error")
        if error:
            err.print(f"[red]error:[/red] {error['message']}", highlight=False)
        err.print(gettext(MSG_STOPPED, status=status, run=run_id), markup=False)
        raise typer.Exit(1)
