"""``datafactor scan PATH|URL``: what a file or a database holds, its grade and quality, as JSON or a table.

A thin shell over ``discovery.scan.scan_source``: it opens the source (a file, its format from the
suffix; or a SQLAlchemy URL, every table or the one named by ``--table``), scans it and prints
the report. Anything a person can get wrong — an unreadable or hostile file, an unreachable
database, an unknown domain — ends with exit code 2 and one line on stderr in the user's
language, never a traceback. Database URLs are shown only through ``redact_url``. The heavy
imports (Arrow, the recognisers' tables) happen when the command runs, not when ``datafactor``
starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.console import Console

from datafactor import context
from datafactor.errors import N_, DomainError, InvalidInput, NotFound
from datafactor.web.cli_support import fail

if TYPE_CHECKING:
    from datafactor.dataplane import Table
    from datafactor.discovery.grading import GradingMetadata
    from datafactor.discovery.scan import ScanReport

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")

MSG_NO_FILE: Final = N_("The file {path} does not exist.")
MSG_FOLDER: Final = N_("{path} is a folder, not a file.")
MSG_OPEN_FAILED: Final = N_("The file {path} cannot be opened: {reason}")
MSG_NO_DRIVER: Final = N_(
    "The database {url} needs the driver {module}, which is not installed. Name an installed "
    "driver in the URL (e.g. postgresql+psycopg://, mysql+pymysql://)."
)
MSG_TABLE_OPTION: Final = N_(
    "--table names a database table or a workbook sheet; {path} has neither."
)


def is_url(source: str) -> bool:
    """Whether the argument is a database URL (``scheme://...``) rather than a file path."""
    return bool(_URL.match(source))


@contextlib.contextmanager
def _quiet_readers() -> Iterator[None]:
    """The readers log a refused database at WARNING; without logging configured, Python would
    print that on stderr next to our message. The error line says it all, once."""
    logger = logging.getLogger("datafactor.dataplane")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _open_file(source: str, table: str | None) -> Table:
    from datafactor.dataplane import open_table

    path = Path(source)
    if not path.exists():
        raise NotFound(MSG_NO_FILE, path=source)
    if path.is_dir():
        raise InvalidInput(MSG_FOLDER, path=source)
    if table is not None and path.suffix.lower() != ".xlsx":
        raise InvalidInput(MSG_TABLE_OPTION, path=path.name)
    try:
        return open_table(path, **({"sheet": table} if table is not None else {}))
    except OSError as exc:
        raise InvalidInput(MSG_OPEN_FAILED, path=source, reason=exc.strerror or str(exc)) from None


def _database_tables(url: str, table: str | None) -> list[str]:
    from sqlalchemy.engine import make_url

    from datafactor.dataplane import redact_url, sql_tables

    database = None
    with contextlib.suppress(Exception):  # a malformed URL is refused by the reader below
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
    # SQLite would create an empty database for a path that does not exist.
    local = database is not None and database not in ("", ":memory:")
    if local and not str(database).startswith("file:") and not Path(str(database)).exists():
        raise NotFound(MSG_NO_FILE, path=database)
    try:
        return [table] if table is not None else sql_tables(url)
    except ImportError as exc:
        raise InvalidInput(
            MSG_NO_DRIVER, url=redact_url(url), module=exc.name or str(exc)
        ) from None


def _scan_tables(
    source: str, table: str | None, scan: Callable[[Table], ScanReport]
) -> dict[str, Any]:
    """The JSON to print: one report, or ``{"tables": [...]}`` for every table of a database."""
    if not is_url(source):
        return scan(_open_file(source, table)).as_dict()
    from datafactor.dataplane import SqlTable, redact_url

    reports = []
    for name in _database_tables(source, table):
        try:
            sql = SqlTable(source, name)
        except ImportError as exc:
            raise InvalidInput(
                MSG_NO_DRIVER, url=redact_url(source), module=exc.name or str(exc)
            ) from None
        try:
            reports.append({"table": name, **scan(sql).as_dict()})
        finally:
            sql.close()
    if table is not None:
        reports[0].pop("table")
        return reports[0]
    return {"tables": reports}


@contextlib.contextmanager
def _progress_scan(
    metadata: GradingMetadata, *, full: bool, sample_rows: int
) -> Iterator[Callable[[Table], ScanReport]]:
    """A scan function for each table, with a progress bar on stderr when it is a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from datafactor.discovery.scan import scan_source

    if not err.is_terminal:
        yield lambda t: scan_source(t, full=full, sample_rows=sample_rows, metadata=metadata)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    ) as bar:

        def scan(table: Table) -> ScanReport:
            task = bar.add_task(table.name, total=None)
            return scan_source(
                table,
                full=full,
                sample_rows=sample_rows,
                metadata=metadata,
                progress=lambda rows, total: bar.update(task, completed=rows, total=total),
            )

        yield scan


def _print_report(name: str | None, data: dict[str, Any]) -> None:
    from rich.table import Table as RichTable
    from rich.text import Text

    from datafactor.discovery.grading import load_grading_rules

    locale = context.locale.get()
    lang = "zh" if locale.startswith("zh") else "en"
    names = load_grading_rules().grade_names
    # Column and table names come from the data: Text, so "[...]" in them is not rich markup.
    table = RichTable(title=None if name is None else Text(name), title_justify="left")
    for heading in ("column", "types", "sensitive", "match ratio", "confidence"):
        table.add_column(heading, overflow="fold")
    for column in data["columns"]:
        table.add_row(
            Text(column["name"]),
            ", ".join(column["types"]) or "-",
            "yes" if column["sensitive"] else "",
            f"{column['match_ratio']:.2%}" if column["types"] else "",
            f"{column['confidence']:.2f}" if column["types"] else "",
        )
    out.print(table)
    grade_name = next(v for k, v in names.items() if k.value == data["grade"])
    out.print(f"grade: {data['grade']} ({grade_name[lang]})", markup=False)
    for reason in data["grade_reasons"]:
        out.print(f"  [{reason['rule']}] {reason[lang]}", markup=False)
    individuals = data["distinct_individuals"]
    out.print(f"distinct individuals: {'-' if individuals is None else f'{individuals:,}'}")
    out.print(f"rows scanned: {data['rows_scanned']:,} ({data['mode']})")
    quality = data["quality"]
    if "score" in quality:
        label = quality.get("rating_label" if lang == "zh" else "rating_label_en", "")
        out.print(
            f"quality: {quality['score']} / 100, rating {quality.get('rating')} {label}",
            markup=False,
        )
    for warning in data["warnings"]:
        line = f" (line {warning['line']})" if warning.get("line") else ""
        out.print(f"warning{line}: {warning[lang]}", markup=False)


def scan_cmd(
    source: Annotated[
        str,
        typer.Argument(
            metavar="PATH|URL",
            help="A CSV/TSV, Excel .xlsx, JSON Lines or Parquet file, or a SQLAlchemy database URL.",
            show_default=False,
        ),
    ],
    table: Annotated[
        str | None,
        typer.Option(help="The database table (default: every table) or workbook sheet to scan."),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Read every row, not a sample.")] = False,
    sample_rows: Annotated[
        int, typer.Option(min=1, help="Rows read in sample mode (the first ones).")
    ] = 100_000,
    domain: Annotated[
        str | None,
        typer.Option(help="The data set's domain for grading, e.g. finance, health, energy."),
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(help="A content category for the important-data catalogues (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Scan a file or database: personal information per column, GB/T 43697 grade, quality."""
    try:
        from datafactor.discovery.grading import GradingMetadata

        metadata = GradingMetadata(domain=domain, categories=frozenset(category or ()))
        with (
            _quiet_readers(),
            _progress_scan(metadata, full=full, sample_rows=sample_rows) as scan,
        ):
            result = _scan_tables(source, table, scan)
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    if "tables" in result:
        for report in result["tables"]:
            _print_report(report["table"], report)
    else:
        _print_report(None, result)


# --- datafactor deidentify -----------------------------------------------------------------------

MSG_POLICY_OR_PROFILE: Final = N_(
    "Name the policy with either --policy FILE or --profile NAME (publish, share-with-trustee, "
    "display), not both."
)
MSG_OUT_EXISTS: Final = N_("{path} already exists; choose another --out or remove it first.")
MSG_OUT_FORMAT: Final = N_(
    "Cannot tell the output format from {path}: name a .parquet or .csv file, or give --format."
)


def _output_format(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise InvalidInput(MSG_OUT_FORMAT, field="out", path=str(out))


def _deidentify(
    source: str,
    out: Path,
    *,
    policy_file: Path | None,
    profile: str | None,
    trustee: str | None,
    fmt: str | None,
    sample_rows: int,
    save_policy: Path | None,
) -> dict[str, Any]:
    from datafactor.discovery.deidentification import (
        DeidentificationPolicy,
        deidentify,
        policy_from_profile,
    )
    from datafactor.discovery.scan import scan_source
    from datafactor.discovery.tokens import trustee_keys
    from datafactor.settings import get_settings

    if (policy_file is None) == (profile is None):
        raise InvalidInput(MSG_POLICY_OR_PROFILE, field="policy")
    output_format = _output_format(out, fmt)
    if out.exists():
        raise InvalidInput(MSG_OUT_EXISTS, field="out", path=str(out))
    policy = None
    if policy_file is not None:
        if not policy_file.is_file():
            raise NotFound(MSG_NO_FILE, path=str(policy_file))
        policy = DeidentificationPolicy.load(policy_file)
    table = _open_file(source, None)
    # The recognisers' findings choose entity-type rules and masking presets: a sample suffices.
    findings = scan_source(table, sample_rows=sample_rows).columns
    if policy is None:
        policy = policy_from_profile(findings, str(profile), trustee=trustee)
    if save_policy is not None:
        policy.dump(save_policy)
    report = deidentify(
        table,
        policy,
        out=out,
        format=output_format,
        tokens=trustee_keys(get_settings()),
        findings=findings,
    )
    return report.as_dict()


def deidentify_cmd(
    source: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A CSV/TSV, Excel .xlsx, JSON Lines or Parquet file.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The file to write (.parquet or .csv); must not exist."),
    ],
    policy: Annotated[
        Path | None, typer.Option(help="A de-identification policy file (JSON or YAML).")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="A starter profile instead of a policy: publish, share-with-trustee, display."
        ),
    ] = None,
    trustee: Annotated[
        str | None,
        typer.Option(
            help="The party that holds the key of tokenised columns (share-with-trustee)."
        ),
    ] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="parquet or csv (default: from --out).")
    ] = None,
    sample_rows: Annotated[
        int, typer.Option(min=1, help="Rows scanned to find what each column holds.")
    ] = 100_000,
    save_policy: Annotated[
        Path | None,
        typer.Option(help="Also write the policy applied (e.g. the one a profile made) to a file."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """De-identify a file by a policy or profile: mask, hash, generalise, drop or tokenise columns."""
    try:
        with _quiet_readers():
            result = _deidentify(
                source,
                out,
                policy_file=policy,
                profile=profile,
                trustee=trustee,
                fmt=output_format,
                sample_rows=sample_rows,
                save_policy=save_policy,
            )
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    from rich.table import Table as RichTable
    from rich.text import Text

    lang = "zh" if context.locale.get().startswith("zh") else "en"
    table = RichTable(title=Text(str(out)), title_justify="left")
    for heading in ("column", "technique", "entity type", "values", "not generalised"):
        table.add_column(heading, overflow="fold")
    for column in result["columns"]:
        table.add_row(
            Text(column["name"]),
            column["technique"],
            column["entity_type"] or "",
            f"{column['processed']:,}",
            f"{column['failed']:,}" if column["failed"] else "",
        )
    out_console = Console(soft_wrap=True)
    out_console.print(table)
    out_console.print(f"rows written: {result['rows']:,} ({result['format']})")
    out_console.print(f"policy: {result['policy']} sha256:{result['policy_digest']}", markup=False)
    for warning in result["warnings"]:
        line = f" (line {warning['line']})" if warning.get("line") else ""
        out_console.print(f"warning{line}: {warning[lang]}", markup=False)
