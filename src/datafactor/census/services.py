"""Census use cases: start, read, cancel and resume runs; the inventory and the province roll-up;
and the runner's side of a run (claim, heartbeat, list the tables, store each table, finish).

Each function is one use case on the caller's open ``Session``; the entry point commits, so a
change and its audit event land together. Two kinds of caller:

* people (``Principal``): a department's staff start a census of their own database; the big-data
  bureau's staff start one for any government department; either may cancel or resume it; an
  administrator may force-cancel it. A department sees its own runs and inventory; the bureau
  and regulators see every department's and the province's roll-up; any other party's ids
  answer "not found". The operator's command line acts for a department with
  ``operator_principal`` (audited as ``cli``).
* the census runners (``jobs.py``), acting for the system: each write checks that the run is
  still running *and names that runner*, so a runner that lost its run (force-cancelled, or
  given to another after a stall) can never overwrite what the other stored.

Resuming: a run's tables are stored one transaction each, as each is read, so whatever stops a
run — a cancel, a lost runner, an outage, a killed command line — loses at most the table being
read. The next claim reads only the tables still pending; an explicit resume also retries those
that could not be read. Per-table progress is not audited (a census of a thousand tables would
bury the audit trail); every change of a run's state is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from datafactor import audit
from datafactor.census import export, source
from datafactor.census.domain import (
    DEPARTMENT_KIND,
    ENDED,
    RESUMABLE,
    CensusStatus,
    DepartmentTotals,
    EventTag,
    Rollup,
    RunTimeouts,
    ScannedTable,
    StopReason,
    SweepAction,
    TableStatus,
    Totals,
    check_reason,
    check_sample_rows,
    check_schema,
    roll_up,
)
from datafactor.census.models import CensusRun, CensusTable
from datafactor.dataplane import redact_url
from datafactor.db import utcnow
from datafactor.discovery import GradingMetadata, load_grading_rules
from datafactor.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from datafactor.identity import PartyStatus, get_party
from datafactor.jobs import store as jobstore
from datafactor.jobs.state import Beat
from datafactor.permissions import Permission, Principal

P = Permission
RUNNER = "census-runner"
CLI = "cli"

MSG_NOT_ALLOWED = N_("Your account is not allowed to do this ({permission}).")
MSG_NO_RUN = N_("No such census.")
MSG_NOT_DEPARTMENT = N_(
    "A census is of a government department's data: {party} is not a government department."
)
MSG_NAME_DEPARTMENT = N_("Choose the government department whose database is censused.")
MSG_NOT_VERIFIED = N_("The department {party} is not verified yet; it cannot be censused.")
MSG_ENDED = N_("This census has already ended ({status}); reload the page.")
MSG_NOT_RESUMABLE = N_(
    "Only a failed or cancelled census can be resumed; this one is {status}. Start a new census "
    "to take the inventory again."
)
MSG_RUNNING_ELSEWHERE = N_(
    "This census is running on {runner}; cancel it first, or wait for it to finish."
)
MSG_OTHER_DATABASE = N_(
    "This census is of {expected}; the URL given names {given}. Resume it with the URL of the "
    "same database (only the credentials may change)."
)


def _require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise Forbidden(MSG_NOT_ALLOWED, permission=permission)


def operator_principal(party_id: str) -> Principal:
    """The command line acting for a department (the server's operator runs it; audited as
    ``cli``). It may start, read and resume that department's censuses, nothing else."""
    return Principal(
        user_id="",
        username=CLI,
        party_id=party_id,
        party_kind=DEPARTMENT_KIND,
        roles=frozenset(),
        permissions=frozenset({P.IDENTITY_PARTY_READ, P.CENSUS_INVENTORY_READ, P.CENSUS_RUN_START}),
        via="cli",
    )


def _record(
    session: Session,
    principal: Principal | None,
    run: CensusRun,
    action: str,
    summary: str,
    reasons: Sequence[str] = (),
) -> None:
    """An audit event on a run: by a person, by the command line, or by a runner (None)."""
    person = principal if principal is not None and principal.via != "cli" else None
    name = RUNNER if principal is None else principal.username
    audit.record(
        session,
        actor=person,
        actor_name=name,
        action=action,
        object_type="census_run",
        object_id=run.id,
        party_id=run.party_id,
        summary=summary,
        reasons=list(reasons),
    )


# ------------------------------------------------------------------------------------ visibility


def can_see(principal: Principal, party_id: str) -> bool:
    """Whether ``principal`` may read the census runs and inventory of ``party_id``."""
    if party_id == principal.party_id:
        return principal.can(P.CENSUS_INVENTORY_READ)
    return principal.can(P.CENSUS_INVENTORY_READ_ALL)


def can_change(principal: Principal, run: CensusRun) -> bool:
    """Whether ``principal`` may cancel or resume ``run``: the department, or the bureau."""
    if run.party_id == principal.party_id and principal.can(P.CENSUS_RUN_START):
        return True
    return principal.can(P.CENSUS_RUN_START_ANY)


def can_force(principal: Principal, run: CensusRun) -> bool:
    if run.party_id == principal.party_id and principal.can(P.CENSUS_RUN_FORCE):
        return True
    return principal.can(P.CENSUS_RUN_FORCE_ALL)


# ------------------------------------------------------------------------------------- starting


@dataclass(frozen=True)
class CensusRequest:
    """What a person asks for: whose census (None: their own party), of which database."""

    url: str
    party_id: str | None = None
    schema: str | None = None
    sample_rows: int | None = None
    domain: str | None = None


def check_source(
    url: str, *, allow_sqlite: bool, schema: str | None = None, connect_timeout: int = 10
) -> None:
    """Check the URL and that the database answers (and has the schema), before a run is queued.

    Connects to the department's database: call it outside any transaction of ours. Refusals
    name the database by its redacted URL only.
    """
    source.check_url(url, allow_sqlite=allow_sqlite)
    with source.DepartmentDatabase(url, connect_timeout=connect_timeout) as database:
        database.schemas(check_schema(schema))


def _department(session: Session, principal: Principal, party_id: str) -> Any:
    party = get_party(session, principal, party_id)
    if party.kind != DEPARTMENT_KIND:
        raise InvalidInput(MSG_NOT_DEPARTMENT, field="party_id", party=party.name)
    if party.status != PartyStatus.VERIFIED:
        raise InvalidInput(MSG_NOT_VERIFIED, field="party_id", party=party.name)
    return party


def _claim(session: Session, run: CensusRun, runner_id: str, now: datetime) -> None:
    jobstore.start(run, runner_id, now)
    _claimed_event(session, run, runner_id)


def _claimed_event(session: Session, run: CensusRun, runner_id: str) -> None:
    run.current_table, run.current_rows = None, 0
    listed = "?" if run.tables_total is None else run.tables_total
    _record(
        session,
        None,
        run,
        EventTag.RUN_START,
        f"Census of {run.source_url} started by {runner_id} (attempt {run.attempts}, "
        f"{run.tables_done + run.tables_failed} of {listed} tables read before)",
    )


def authorize_start(session: Session, principal: Principal, party_id: str | None) -> Any:
    """The department a census by ``principal`` would be of, if it may start one (else refused).

    Checked before anything connects to the database named: the server must not reach out to a
    URL for someone who may not census at all.
    """
    party_id = party_id or principal.party_id
    if party_id == principal.party_id:
        if not principal.can(P.CENSUS_RUN_START) and principal.can(P.CENSUS_RUN_START_ANY):
            raise InvalidInput(MSG_NAME_DEPARTMENT, field="party_id")
        _require(principal, P.CENSUS_RUN_START)
    else:
        _require(principal, P.CENSUS_RUN_START_ANY)
    return _department(session, principal, party_id)


def check_request(
    request: CensusRequest, default_sample_rows: int
) -> tuple[str | None, int, str | None]:
    """The schema filter, rows to sample and domain of a request, checked (no connection)."""
    schema = check_schema(request.schema)
    sample_rows = check_sample_rows(request.sample_rows, default_sample_rows)
    domain = (request.domain or "").strip() or None
    # Unknown domains are refused now, not after an hour of reading.
    load_grading_rules().check(GradingMetadata(domain=domain))
    return schema, sample_rows, domain


def start_census(
    session: Session,
    principal: Principal,
    request: CensusRequest,
    *,
    secret_key: str,
    allow_sqlite: bool,
    default_sample_rows: int,
    claim_for: str | None = None,
) -> CensusRun:
    """Queue a census of a department's database (call ``check_source`` first, outside the
    transaction). ``claim_for`` names a runner that takes it at once (the command line, which
    runs it in the foreground), so no background runner can."""
    party = authorize_start(session, principal, request.party_id)
    url = (request.url or "").strip()
    backend = source.check_url(url, allow_sqlite=allow_sqlite)
    schema, sample_rows, domain = check_request(request, default_sample_rows)
    now = utcnow()
    run = CensusRun(
        party_id=party.id,
        party_name=str(party.name)[:128],
        started_by_party_id=principal.party_id,
        requested_by=principal.user_id or None,
        requested_by_name=principal.username[:64],
        requested_at=now,
        source_url_sealed=source.seal(secret_key, url),
        source_url=redact_url(url)[:512],
        source_key=source.source_key(url),
        backend=backend,
        schema_filter=schema,
        sample_rows=sample_rows,
        domain=domain,
        status=CensusStatus.QUEUED,
        queued_at=now,
        attempts=0,
        tables_done=0,
        tables_failed=0,
        rows_counted=0,
        current_rows=0,
    )
    session.add(run)
    session.flush()
    on_behalf = "" if party.id == principal.party_id else " on the department's behalf"
    _record(
        session,
        principal,
        run,
        EventTag.RUN_REQUEST,
        f"Census of {run.source_url}"
        + (f" schema {schema}" if schema else "")
        + f" ({sample_rows} rows sampled per table) requested{on_behalf}",
    )
    if claim_for is not None:
        _claim(session, run, claim_for, now)
    return run


# -------------------------------------------------------------------------------------- reading


def get_run(
    session: Session, principal: Principal, run_id: str, *, for_update: bool = False
) -> CensusRun:
    """A run the principal may see; another party's id answers 'not found'."""
    stmt = select(CensusRun).where(CensusRun.id == run_id)
    if for_update:
        stmt = stmt.with_for_update()
    run = session.execute(stmt).scalar_one_or_none()
    if run is None or not can_see(principal, run.party_id):
        raise NotFound(MSG_NO_RUN)
    return run


def _read_scope(principal: Principal, party_column: Any) -> Any:
    """The condition on ``party_column`` of what the principal may read (None: everything);
    ``Forbidden`` when it may read no census at all."""
    own, others = principal.can(P.CENSUS_INVENTORY_READ), principal.can(P.CENSUS_INVENTORY_READ_ALL)
    if own and others:
        return None
    if others:
        return party_column != principal.party_id
    if own:
        return party_column == principal.party_id
    raise Forbidden(MSG_NOT_ALLOWED, permission=P.CENSUS_INVENTORY_READ)


@dataclass(frozen=True)
class RunQuery:
    party_id: str | None = None
    status: str | None = None


def list_runs(
    session: Session, principal: Principal, query: RunQuery, *, limit: int, offset: int
) -> tuple[list[CensusRun], int]:
    """Census runs the principal may see, newest first."""
    scope = _read_scope(principal, CensusRun.party_id)
    stmt = select(CensusRun)
    if scope is not None:
        stmt = stmt.where(scope)
    if query.party_id:
        stmt = stmt.where(CensusRun.party_id == query.party_id)
    if query.status:
        stmt = stmt.where(CensusRun.status == query.status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(CensusRun.requested_at.desc(), CensusRun.id).limit(limit).offset(offset)
    )
    return list(rows), total


def list_tables(
    session: Session,
    principal: Principal,
    run_id: str,
    *,
    limit: int | None,
    offset: int = 0,
    status: str | None = None,
) -> tuple[list[CensusTable], int]:
    """A run's inventory entries in listing order (schema, then tables, then views)."""
    run = get_run(session, principal, run_id)
    stmt = select(CensusTable).where(CensusTable.run_id == run.id)
    if status:
        stmt = stmt.where(CensusTable.status == status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    ordered = stmt.order_by(CensusTable.position)
    if limit is not None:
        ordered = ordered.limit(limit).offset(offset)
    return list(session.scalars(ordered)), total


def _grouped_totals(session: Session, where: Any, by_party: bool) -> dict[str, Totals]:
    """Totals of the entries matching ``where``, per party (or all under ``""``), one query."""
    done = CensusTable.status == TableStatus.DONE
    key = CensusTable.party_id if by_party else func.min(CensusTable.party_id)
    columns = [
        func.count(),
        func.sum(case((done, 1), else_=0)),
        func.sum(case((CensusTable.status == TableStatus.FAILED, 1), else_=0)),
        func.sum(CensusTable.row_count),
        func.sum(CensusTable.column_count),
        func.sum(case((CensusTable.has_pi, 1), else_=0)),
        func.sum(case((CensusTable.sensitive, 1), else_=0)),
        func.sum(CensusTable.quality_score),
        func.count(CensusTable.quality_score),
    ]
    group = [CensusTable.grade] + ([CensusTable.party_id] if by_party else [])
    stmt = select(key, CensusTable.grade, *columns).where(where).group_by(*group)
    out: dict[str, Totals] = {}
    for row in session.execute(stmt):
        party, grade, n, read, failed, rows, cols, pi, sens, qsum, qcount = row
        totals = out.setdefault(party if by_party else "", Totals())
        totals.add_group(
            tables=int(n),
            tables_read=int(read or 0),
            tables_failed=int(failed or 0),
            rows=int(rows) if rows is not None else None,
            columns=int(cols) if cols is not None else None,
            pi_tables=int(pi or 0),
            sensitive_tables=int(sens or 0),
            grade=grade,
            quality_sum=float(qsum) if qsum is not None else None,
            quality_count=int(qcount or 0),
        )
    return out


def run_totals(session: Session, principal: Principal, run_id: str) -> Totals:
    """The figures of one run's inventory (so far, while it runs)."""
    run = get_run(session, principal, run_id)
    return _grouped_totals(session, CensusTable.run_id == run.id, False).get("", Totals())


def rollup(session: Session, principal: Principal) -> Rollup:
    """Each visible department's current inventory, and their sum: the province's totals for the
    big-data bureau and regulators, a department's own figures for the department."""
    scope = _read_scope(principal, CensusTable.party_id)
    where: Any = CensusTable.current.is_(True)
    if scope is not None:
        where = where & scope
    per_party = _grouped_totals(session, where, True)
    names: dict[str, str] = {}
    last: dict[str, datetime | None] = {}
    databases: dict[str, set[str]] = {}
    if per_party:
        finished = session.execute(
            select(
                CensusRun.party_id,
                CensusRun.party_name,
                CensusRun.finished_at,
                CensusRun.source_key,
            )
            .where(
                CensusRun.party_id.in_(list(per_party)),
                CensusRun.status == CensusStatus.SUCCEEDED,
            )
            .order_by(CensusRun.finished_at)
        )
        for party_id, name, finished_at, key in finished:  # oldest first: the last one wins
            names[party_id], last[party_id] = name, finished_at
            databases.setdefault(party_id, set()).add(key)
    return roll_up(
        DepartmentTotals(
            party_id=party_id,
            party_name=names.get(party_id, party_id[:8]),
            last_census_at=last.get(party_id),
            databases=len(databases.get(party_id, ())),
            totals=totals,
        )
        for party_id, totals in per_party.items()
    )


def current_inventory(
    session: Session, principal: Principal, *, party_id: str | None = None
) -> list[CensusTable]:
    """The entries of the visible departments' current inventories (for the province export)."""
    scope = _read_scope(principal, CensusTable.party_id)
    stmt = select(CensusTable).where(CensusTable.current.is_(True))
    if scope is not None:
        stmt = stmt.where(scope)
    if party_id:
        stmt = stmt.where(CensusTable.party_id == party_id)
    stmt = stmt.order_by(
        CensusTable.party_id, CensusTable.source_key, CensusTable.schema_name, CensusTable.position
    )
    return list(session.scalars(stmt))


# ------------------------------------------------------------------------------------- changing


def _ended(run: CensusRun) -> Conflict:
    return Conflict(MSG_ENDED, code="census-ended", status=run.status)


def _changeable(
    session: Session, principal: Principal, run_id: str, *, for_update: bool = True
) -> CensusRun:
    run = get_run(session, principal, run_id, for_update=for_update)
    if not can_change(principal, run):
        raise Forbidden(MSG_NOT_ALLOWED, permission=P.CENSUS_RUN_START)
    return run


def authorize_change(session: Session, principal: Principal, run_id: str) -> None:
    """Refuse now if ``principal`` may not cancel or resume the run (before connecting to a new
    URL for it)."""
    _changeable(session, principal, run_id, for_update=False)


def cancel_run(session: Session, principal: Principal, run_id: str) -> CensusRun:
    """Ask a census to stop: a queued one is cancelled at once, a running one at its runner's
    next check (within a heartbeat or a batch of rows). Either can be resumed later."""
    run = _changeable(session, principal, run_id)
    if run.status in ENDED:
        raise _ended(run)
    if jobstore.request_cancel(run, principal.username, utcnow()):
        tag, summary = EventTag.RUN_CANCELLED, "Queued census cancelled"
    else:
        tag, summary = EventTag.RUN_CANCEL_REQUEST, "Cancel of a running census requested"
    _record(session, principal, run, tag, f"{summary} ({run.source_url})")
    return run


def force_cancel_run(session: Session, principal: Principal, run_id: str, reason: str) -> CensusRun:
    """An administrator ends a census now, whatever its runner does (the audited way out of any
    state). The runner, if alive, learns it at its next heartbeat and stops without writing."""
    run = get_run(session, principal, run_id, for_update=True)
    if not can_force(principal, run):
        permission = (
            P.CENSUS_RUN_FORCE if run.party_id == principal.party_id else P.CENSUS_RUN_FORCE_ALL
        )
        raise Forbidden(MSG_NOT_ALLOWED, permission=permission)
    reason = check_reason(reason)
    if run.status in ENDED:
        raise _ended(run)
    previous = jobstore.force_cancel(run, principal.username, reason, utcnow())
    run.current_table, run.current_rows = None, 0
    _record(
        session,
        principal,
        run,
        EventTag.RUN_FORCE_CANCEL,
        f"Census force-cancelled while {previous} (runner {run.runner_id or '-'})",
        [reason],
    )
    return run


def resume_run(
    session: Session,
    principal: Principal,
    run_id: str,
    *,
    secret_key: str,
    allow_sqlite: bool,
    url: str | None = None,
    claim_for: str | None = None,
) -> CensusRun:
    """Put a failed or cancelled census back in the queue; it goes on where it stopped.

    Tables already read are kept (never read again); tables that could not be read are tried
    again. ``url`` replaces the stored one — new credentials, or a URL sealed under a secret key
    since rotated — and must name the same database. ``claim_for`` as in ``start_census``; a run
    still queued is then just claimed.
    """
    run = _changeable(session, principal, run_id)
    if run.status == CensusStatus.RUNNING:
        raise Conflict(MSG_RUNNING_ELSEWHERE, code="census-running", runner=run.runner_id or "-")
    queued_for_me = run.status == CensusStatus.QUEUED and claim_for is not None
    if run.status not in RESUMABLE and not queued_for_me:
        raise Conflict(MSG_NOT_RESUMABLE, code="census-not-resumable", status=run.status)
    if url:
        url = url.strip()
        source.check_url(url, allow_sqlite=allow_sqlite)
        given = source.source_key(url)
        if given != run.source_key:
            raise InvalidInput(
                MSG_OTHER_DATABASE, field="url", expected=run.source_key, given=given
            )
        run.source_url_sealed = source.seal(secret_key, url)
        run.source_url = redact_url(url)[:512]
    else:
        source.unseal(secret_key, run.source_url_sealed)  # refuse now if the key changed
    now = utcnow()
    if run.status in RESUMABLE:
        failed = (CensusTable.run_id == run.id) & (CensusTable.status == TableStatus.FAILED)
        count, rows = session.execute(
            select(func.count(), func.sum(CensusTable.row_count)).where(failed)
        ).one()
        retried = int(count or 0)
        # Their counts go back out of the run's figures: the retry counts them again.
        run.rows_counted = max(0, run.rows_counted - int(rows or 0))
        session.execute(
            update(CensusTable)
            .where(failed)
            .values(
                status=TableStatus.PENDING,
                row_count=None,
                column_count=None,
                columns=None,
                error_code=None,
                error_message=None,
                error_params=None,
            )
        )
        previous = run.status
        run.status, run.queued_at, run.finished_at = CensusStatus.QUEUED, now, None
        run.runner_id, run.heartbeat_at = None, None
        run.cancel_requested_at = run.cancel_requested_by = None
        run.error_code = run.error_message = None
        run.error_params = None
        run.tables_failed = max(0, run.tables_failed - retried)
        # A resumed run starts a fresh series of attempts: the sweep's give-up counts stalls in
        # a row, and a person deciding to go on is not a stall.
        run.attempts = 0
        _record(
            session,
            principal,
            run,
            EventTag.RUN_RESUME,
            f"Census resumed after it was {previous}: {run.tables_done} tables kept, "
            f"{retried} to try again" + (" (new URL)" if url else ""),
        )
    if claim_for is not None:
        _claim(session, run, claim_for, now)
    return run


# ----------------------------------------------------------------------------------- runner side


@dataclass(frozen=True)
class ClaimedRun:
    """A run a runner took, with what it needs to work without touching the ORM again."""

    run_id: str
    party_id: str
    sealed_url: str
    source_url: str
    schema: str | None
    sample_rows: int
    domain: str | None
    listed: bool
    attempt: int
    tables_total: int | None
    tables_read: int


def _claimed(run: CensusRun) -> ClaimedRun:
    return ClaimedRun(
        run.id,
        run.party_id,
        run.source_url_sealed,
        run.source_url,
        run.schema_filter,
        run.sample_rows,
        run.domain,
        run.listed_at is not None,
        run.attempts,
        run.tables_total,
        run.tables_done + run.tables_failed,
    )


def claim_next(session: Session, runner_id: str, now: datetime | None = None) -> ClaimedRun | None:
    """Take the run longest in the queue (atomically: ``SKIP LOCKED`` on PostgreSQL, the write
    lock on SQLite), or None."""
    run = jobstore.claim_oldest(session, CensusRun, runner_id, now or utcnow())
    if run is None:
        return None
    _claimed_event(session, run, runner_id)
    return _claimed(run)


def claimed_run(session: Session, run_id: str, runner_id: str) -> ClaimedRun | None:
    """What a runner needs of a run it holds (after ``start_census``/``resume_run`` claimed it)."""
    run = _owned(session, run_id, runner_id)
    return None if run is None else _claimed(run)


def _owned(session: Session, run_id: str, runner_id: str) -> CensusRun | None:
    return jobstore.owned(session, CensusRun, run_id, runner_id)


def heartbeat(
    session: Session,
    run_id: str,
    runner_id: str,
    *,
    current_table: str | None,
    current_rows: int,
    limits: RunTimeouts,
    now: datetime | None = None,
) -> Beat:
    """A runner records what it is reading and that it is alive; the answer says go on or stop."""

    def progress(run: CensusRun) -> None:
        run.current_table = current_table[:512] if current_table else None
        run.current_rows = current_rows

    return jobstore.heartbeat(
        session,
        CensusRun,
        run_id,
        runner_id,
        limits=limits,
        now=now or utcnow(),
        progress=progress,
    )


def record_listing(
    session: Session,
    run_id: str,
    runner_id: str,
    listed: Sequence[source.ListedTable],
    *,
    schemas: int,
) -> bool:
    """Store the tables the run found, each pending; False (nothing written) if it was lost."""
    run = _owned(session, run_id, runner_id)
    if run is None:
        return False
    if run.listed_at is not None:  # a second runner raced this one here: keep the first listing
        return True
    for position, found in enumerate(listed):
        session.add(
            CensusTable(
                run_id=run.id,
                party_id=run.party_id,
                source_key=run.source_key,
                position=position,
                schema_name=found.schema[:128],
                table_name=found.name[:255],
                kind=found.kind,
                status=TableStatus.PENDING,
                has_pi=False,
                sensitive=False,
                reads=0,
                current=False,
            )
        )
    run.listed_at, run.tables_total, run.schemas_total = utcnow(), len(listed), schemas
    _record(
        session,
        None,
        run,
        EventTag.RUN_INVENTORY,
        f"Census of {run.source_url} listed {len(listed)} tables and views in {schemas} schemas",
    )
    return True


@dataclass(frozen=True)
class PendingTable:
    entry_id: str
    schema: str
    table: str
    kind: str


def tables_to_read(session: Session, run_id: str) -> list[PendingTable]:
    """The run's tables still pending, in listing order (what a resumed run goes on with)."""
    rows = session.execute(
        select(CensusTable.id, CensusTable.schema_name, CensusTable.table_name, CensusTable.kind)
        .where(CensusTable.run_id == run_id, CensusTable.status == TableStatus.PENDING)
        .order_by(CensusTable.position)
    )
    return [PendingTable(*row) for row in rows]


@dataclass(frozen=True)
class TableFailure:
    """Why one table could not be read (a translatable message and its parameters)."""

    code: str
    message: str
    params: Mapping[str, Any]
    row_count: int | None = None
    columns: tuple[Mapping[str, Any], ...] = ()


def store_table(
    session: Session,
    run_id: str,
    runner_id: str,
    entry_id: str,
    outcome: ScannedTable | TableFailure,
) -> bool:
    """Store one table's result and move the run's counters, in one transaction: a run stopped
    after this never reads the table again. False (nothing written) if the run was lost."""
    run = _owned(session, run_id, runner_id)
    if run is None:
        return False
    entry = session.get(CensusTable, entry_id)
    if entry is None or entry.run_id != run.id or entry.status != TableStatus.PENDING:
        return True  # already stored (a retried transaction): nothing to add
    entry.reads += 1
    entry.read_at = utcnow()
    if isinstance(outcome, TableFailure):
        entry.status = TableStatus.FAILED
        entry.error_code = outcome.code[:64]
        entry.error_message = outcome.message
        entry.error_params = {k: str(v)[:500] for k, v in outcome.params.items()}
        entry.row_count = outcome.row_count
        if outcome.columns:
            entry.columns = [dict(c) for c in outcome.columns]
            entry.column_count = len(outcome.columns)
        run.tables_failed += 1
    else:
        entry.status = TableStatus.DONE
        entry.row_count = outcome.row_count
        entry.columns = [dict(c) for c in outcome.columns]
        entry.column_count = len(outcome.columns)
        entry.pi_types = list(outcome.pi_types)
        entry.has_pi = outcome.has_pi
        entry.sensitive = outcome.sensitive
        entry.grade = outcome.grade
        entry.quality_score = outcome.quality_score
        entry.rows_scanned = outcome.rows_scanned
        entry.individuals = outcome.individuals
        run.tables_done += 1
    run.rows_counted += entry.row_count or 0
    return True


def finish_run(session: Session, run_id: str, runner_id: str) -> bool:
    """Every listed table has been read (or says why not): the run succeeds and its tables
    become the department's current inventory of that database (and schema)."""
    run = _owned(session, run_id, runner_id)
    if run is None:
        return False
    pending = session.scalar(
        select(func.count()).where(
            CensusTable.run_id == run.id, CensusTable.status == TableStatus.PENDING
        )
    )
    if pending:  # should not happen: the runner read every pending table
        return False
    now = utcnow()
    replaced = (
        (CensusTable.party_id == run.party_id)
        & (CensusTable.source_key == run.source_key)
        & CensusTable.current.is_(True)
        & (CensusTable.run_id != run.id)
    )
    if run.schema_filter is not None:
        replaced = replaced & (CensusTable.schema_name == run.schema_filter)
    session.execute(update(CensusTable).where(replaced).values(current=False))
    session.execute(update(CensusTable).where(CensusTable.run_id == run.id).values(current=True))
    run.status, run.finished_at = CensusStatus.SUCCEEDED, now
    run.current_table, run.current_rows = None, 0
    totals = _grouped_totals(session, CensusTable.run_id == run.id, False).get("", Totals())
    _record(
        session,
        None,
        run,
        EventTag.RUN_SUCCEED,
        f"Census of {run.source_url} finished: {totals.tables} tables "
        f"({totals.tables_failed} unreadable), {totals.rows} rows, {totals.pi_tables} with "
        f"personal information, {totals.sensitive_tables} sensitive",
    )
    return True


def fail_run(
    session: Session,
    run_id: str,
    runner_id: str,
    *,
    code: str,
    message: str,
    params: Mapping[str, Any] | None = None,
) -> bool:
    """Record why a census stopped (it stays resumable)."""
    run = _owned(session, run_id, runner_id)
    if run is None:
        return False
    jobstore.fail(run, utcnow(), code, message, params)
    run.current_table, run.current_rows = None, 0
    _record(session, None, run, EventTag.RUN_FAIL, f"Census of {run.source_url} failed: {code}")
    return True


def stopped_run(session: Session, run_id: str, runner_id: str, *, why: StopReason) -> bool:
    """The runner stopped the run: on request or interruption (cancelled), at its time limit
    (failed), or because the process is shutting down (back to the queue at once)."""
    run = _owned(session, run_id, runner_id)
    if run is None:
        return False
    now = utcnow()
    run.current_table, run.current_rows = None, 0
    if why is StopReason.SHUTDOWN:
        jobstore.requeue(run, now)
        _record(
            session,
            None,
            run,
            EventTag.RUN_REQUEUE,
            f"Runner {runner_id} shut down; census back in the queue after attempt {run.attempts}",
        )
        return True
    if why is StopReason.TIMEOUT:
        jobstore.fail(run, now, "timeout", _SWEEP_MESSAGES[SweepAction.TIME_OUT])
        _record(session, None, run, EventTag.RUN_FAIL, "Census stopped at its time limit")
        return True
    run.status, run.finished_at = CensusStatus.CANCELLED, now
    if why is StopReason.INTERRUPT:
        run.error_code = "interrupted"
        run.error_message = N_("The command line was interrupted; resume the census to go on.")
        run.error_params = {}
    _record(
        session,
        None,
        run,
        EventTag.RUN_CANCELLED,
        "Census interrupted on the command line"
        if why is StopReason.INTERRUPT
        else "Census cancelled as requested",
    )
    return True


_SWEEP_MESSAGES = {
    SweepAction.GIVE_UP: N_(
        "The census was interrupted {attempts} times in a row (its runner stopped); resume it "
        "to go on."
    ),
    SweepAction.TIME_OUT: N_(
        "The census ran longer than the limit and was stopped; resume it to go on."
    ),
    SweepAction.EXPIRE: N_(
        "No census runner started the census in time. Ask the operator whether census runners "
        "are running, then resume it."
    ),
}


def sweep(session: Session, limits: RunTimeouts, now: datetime | None = None) -> int:
    """Move every run that overstayed its state on (``domain.sweep_action``); how many."""

    def moved(run: CensusRun, action: SweepAction, stale: str) -> None:
        run.current_table, run.current_rows = None, 0
        if action is SweepAction.REQUEUE:
            tag, summary = (
                EventTag.RUN_REQUEUE,
                f"Runner {stale} stopped beating; census back in the queue after attempt "
                f"{run.attempts} ({run.tables_done + run.tables_failed} tables read)",
            )
        elif action is SweepAction.CANCEL:
            tag, summary = EventTag.RUN_CANCELLED, f"Runner {stale} lost; cancelled"
        else:
            tag, summary = EventTag.RUN_FAIL, f"Census failed by the sweep: {action}"
        _record(session, None, run, tag, summary)

    return jobstore.sweep(
        session, CensusRun, limits, now or utcnow(), messages=_SWEEP_MESSAGES, moved=moved
    )


# --------------------------------------------------------------------------------------- exports


def _note(entry: CensusTable) -> str:
    if not entry.error_message:
        return ""
    # The workbook is bilingual: the reason in English (the message id) with its parameters.
    params = entry.error_params or {}
    try:
        return entry.error_message.format(**params)
    except (KeyError, IndexError, ValueError):
        return entry.error_message


def _row(entry: CensusTable, department: str, database: str) -> export.TableRow:
    return export.TableRow(
        department=department,
        database=database,
        schema=entry.schema_name,
        table=entry.table_name,
        kind=entry.kind,
        status=entry.status,
        row_count=entry.row_count,
        column_count=entry.column_count,
        pi_types=tuple(entry.pi_types or ()),
        sensitive=entry.sensitive,
        grade=entry.grade,
        quality_score=entry.quality_score,
        rows_scanned=entry.rows_scanned,
        note=_note(entry),
        columns=tuple(entry.columns or ()),
    )


def run_workbook(session: Session, principal: Principal, run_id: str) -> tuple[str, bytes]:
    """A run's inventory as an .xlsx workbook (what it has read so far, while it runs), and the
    file name to offer."""
    run = get_run(session, principal, run_id)
    totals = run_totals(session, principal, run_id)
    entries, _ = list_tables(session, principal, run_id, limit=None)
    facts = export.RunFacts(
        department=run.party_name,
        database=run.source_url,
        schema=run.schema_filter,
        sample_rows=run.sample_rows,
        status=run.status,
        requested_by=run.requested_by_name,
        requested_at=run.requested_at,
        finished_at=run.finished_at,
        run_id=run.id,
    )
    data = export.run_workbook(
        facts, totals, (_row(e, run.party_name, run.source_url) for e in entries)
    )
    day = (run.finished_at or run.requested_at).astimezone(export.ZONE).strftime("%Y%m%d")
    return f"census-{day}-{run.id[:8]}.xlsx", data


def rollup_workbook(session: Session, principal: Principal) -> tuple[str, bytes]:
    """The roll-up (per department and the province's total) and every current table, .xlsx."""
    summary = rollup(session, principal)
    entries = current_inventory(session, principal)
    names = {d.party_id: d.party_name for d in summary.departments}
    databases = dict(
        session.execute(
            select(CensusRun.source_key, CensusRun.source_url)
            .where(CensusRun.status == CensusStatus.SUCCEEDED)
            .order_by(CensusRun.finished_at)
        ).all()
    )
    data = export.rollup_workbook(
        [
            export.DepartmentRow(d.party_name, d.databases, d.last_census_at, d.totals)
            for d in summary.departments
        ],
        summary.province,
        (
            _row(
                e, names.get(e.party_id, e.party_id[:8]), databases.get(e.source_key, e.source_key)
            )
            for e in entries
        ),
    )
    return f"census-rollup-{utcnow().astimezone(export.ZONE).strftime('%Y%m%d')}.xlsx", data
