"""The registry's daily sweep, its expiry reminders, and the working-day calendar's administration.

**The sweep** (``sweep(session, today=)``, one transaction) does what the calendar does to the
registry without anyone acting:

1. *Expiry*: every right (in force or suspended) whose term ended before today becomes
   ``expired`` through the pure ``expire`` operation and the same persist path as every other
   rights change — so its holders and pledgees are told, each expired right gets its audit event,
   and a certificate of an expired right verifies as *expired*.
2. *Reminders* (rule ``REG-EXPIRY-REMINDER``, ``certificates.reminder_days_ahead`` = 30 days):
   the holder of a current certificate whose last valid day is at most that many days away, and of
   a right in force whose term ends that soon (unless a current certificate of it ends the same
   day: one reminder is enough), is reminded once — the inbox's ``dedupe_key`` names the
   certificate (or the right and its end), so a renewal, which gives a new number or a new end,
   is reminded again in its turn. A day the sweep missed is caught up: it reminds whatever is due
   and not yet reminded.
3. *Overdue*: applications past their state's due date are notified to their owner (the
   registration authority's parties for a registrar's state, the applicant for *returned*), once
   per state entered; one left *returned* past its period is withdrawn by the system, as the rules
   file's ``on_overdue: withdraw`` says.

Running it twice on one day changes nothing the second time. Two sweeps never interleave: on
PostgreSQL the transaction takes an advisory lock first, on SQLite a write transaction already
holds the database's write lock (``BEGIN IMMEDIATE``). ``datafactor serve`` runs it once a day in
each process (``daily_sweep`` on ``datafactor.jobs.periodic``, the date in Asia/Shanghai; the
other processes then find nothing to do); ``datafactor registry sweep`` runs it for operators and cron.

**The calendar** (``calendar_year``, ``set_calendar_day``, ``remove_calendar_day``): the packaged
State Council arrangement plus the administrator's overrides (``registry_calendar_day``). A
change applies to every period counted *after* it; due dates and notice periods already set are
kept as they are — a changed calendar never moves a deadline silently. The change answers with
the open applications whose due date or notice end lies on or after the changed day, so the
administrator can see what the change would have moved and, where it must, act on it (a force
transition restarts a notice with the new calendar).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox
from datafactor.db import Database, today_cn, utcnow
from datafactor.errors import N_, Forbidden, InvalidInput, NotFound
from datafactor.jobs.periodic import Daily, periodic_lifespan
from datafactor.permissions import Permission, Principal
from datafactor.registry import notifications, services
from datafactor.registry.calendar import load_holiday_years
from datafactor.registry.domain import (
    FINAL_STATES,
    Action,
    ActorRole,
    RegistryRules,
    RightStatus,
    advance,
    expire,
    expiry_reminder_on,
    load_registry_rules,
    overdue,
)
from datafactor.registry.models import (
    RegistryApplication,
    RegistryAsset,
    RegistryCalendarDay,
    RegistryCertificate,
    RegistryRight,
)

log = logging.getLogger("datafactor.registry.maintenance")

P = Permission
SWEEPER: Final = "registry-sweep"
# Any constant will do: it only has to be the same in every process sweeping one database.
_ADVISORY_LOCK: Final = 0x52454753  # "REGS"
_CLAIMING: Final = (
    RightStatus.ACTIVE.value,
    RightStatus.PLEDGED.value,
    RightStatus.SUSPENDED.value,
)
_IN_FORCE: Final = (RightStatus.ACTIVE.value, RightStatus.PLEDGED.value)
CALENDAR_KINDS: Final = ("holiday", "workday")
FIRST_YEAR: Final = 2023  # 桂政办发〔2023〕51号: nothing is counted before the plan
LAST_YEAR: Final = 2100

TAG_CALENDAR_SET: Final = "registry:calendar:set"
TAG_CALENDAR_REMOVE: Final = "registry:calendar:remove"
TAG_SWEEP_WITHDRAW: Final = "registry:application:transition"

audit.register_action_labels(
    {
        TAG_CALENDAR_SET: N_("Working-day calendar changed"),
        TAG_CALENDAR_REMOVE: N_("Working-day calendar override removed"),
    }
)

MSG_NOT_ALLOWED: Final = N_("Your account is not allowed to do this ({permission}).")
MSG_BAD_KIND: Final = N_("A calendar day is either a holiday or a working day, not “{kind}”.")
MSG_BAD_DAY: Final = N_("The calendar covers {first} to {last}: {day} is outside it.")
MSG_NO_OVERRIDE: Final = N_(
    "{day} has no override: it follows the State Council's arrangement already."
)
MSG_WITHDRAWN: Final = N_(
    "Returned for correction and not resubmitted within its period: withdrawn by the system."
)


# ------------------------------------------------------------------------------------- sweep


@dataclass
class SweepReport:
    """What one sweep did: rights expired, reminders sent, applications newly overdue and
    applications withdrawn by the system. Empty when the day was already swept."""

    today: date
    expired: list[str] = field(default_factory=list)
    reminders: list[dict[str, str]] = field(default_factory=list)
    overdue: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.expired or self.reminders or self.overdue or self.withdrawn)

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "expired": list(self.expired),
            "reminders": list(self.reminders),
            "overdue": list(self.overdue),
            "withdrawn": list(self.withdrawn),
        }


def _serialise(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})


def _expire(session: Session, today: date, rules: RegistryRules, report: SweepReport) -> None:
    asset_ids = sorted(
        set(
            session.scalars(
                select(RegistryRight.asset_id).where(
                    RegistryRight.status.in_(_CLAIMING),
                    RegistryRight.term_end.is_not(None),
                    RegistryRight.term_end < today,
                )
            )
        )
    )
    if not asset_ids:
        return
    # Certifications lock the asset row before reading its rights; so does the sweep, so an
    # expiry never interleaves with a licence or a transfer on the same asset.
    session.execute(
        select(RegistryAsset.id)
        .where(RegistryAsset.id.in_(asset_ids))
        .order_by(RegistryAsset.id)
        .with_for_update()
    )
    book, _lineage = services._load_book(session, asset_ids)
    change = expire(book, today, rules=rules)
    if change is None:
        return
    services._persist_change(session, change, "")
    for right in change.updated:
        audit.record(
            session,
            actor=None,
            actor_name=SWEEPER,
            action=change.event.value,
            object_type="registry_right",
            object_id=right.id,
            summary=f"{change.event.value}: right {right.id} ended on {right.term.end} "
            f"(swept {today.isoformat()})",
            party_id=right.holder_id,
            reasons=[change.rule],
        )
        report.expired.append(right.id)


def _remind(session: Session, today: date, rules: RegistryRules, report: SweepReport) -> None:
    rule = rules.rule_id("expiry_reminder")
    horizon = today + timedelta(days=rules.reminder_days)
    certificates = session.execute(
        select(RegistryCertificate, RegistryRight)
        .join(RegistryRight, RegistryRight.id == RegistryCertificate.right_id)
        .where(
            RegistryCertificate.status == "current",
            RegistryCertificate.valid_until >= today,
            RegistryCertificate.valid_until <= horizon,
            RegistryRight.status.in_(_IN_FORCE),
        )
        .order_by(RegistryCertificate.number)
    ).all()
    covered: set[tuple[str, date]] = set()
    for certificate, right in certificates:
        covered.add((right.id, certificate.valid_until))
        reminder_on = expiry_reminder_on(
            certificate.valid_until, issued_on=certificate.valid_from, rules=rules
        )
        if reminder_on > today:
            continue
        sent = inbox.notify(
            session,
            [right.holder_id],
            kind=notifications.KIND_REMINDER,
            message=notifications.MSG_CERTIFICATE_EXPIRING,
            params={
                "number": certificate.number,
                "asset": _asset_name(session, certificate.asset_id),
                "until": certificate.valid_until.isoformat(),
                "rule": rule,
            },
            dedupe_key=f"registry.expiry:certificate:{certificate.number}",
        )
        if sent:
            report.reminders.append(
                {
                    "certificate": certificate.number,
                    "right": right.id,
                    "party": right.holder_id,
                    "until": certificate.valid_until.isoformat(),
                }
            )
    rights = session.scalars(
        select(RegistryRight)
        .where(
            RegistryRight.status.in_(_IN_FORCE),
            RegistryRight.term_end.is_not(None),
            RegistryRight.term_end >= today,
            RegistryRight.term_end <= horizon,
        )
        .order_by(RegistryRight.id)
    )
    for row in rights:
        assert row.term_end is not None
        if (row.id, row.term_end) in covered:
            continue
        if max(row.term_end - timedelta(days=rules.reminder_days), row.term_start) > today:
            continue
        domain_right = row.to_domain()
        params = notifications._right_params(session, domain_right, rule)
        params["until"] = row.term_end.isoformat()
        sent = inbox.notify(
            session,
            [row.holder_id],
            kind=notifications.KIND_REMINDER,
            message=notifications.MSG_RIGHT_EXPIRING,
            params=params,
            dedupe_key=f"registry.expiry:right:{row.id}:{row.term_end.isoformat()}",
        )
        if sent:
            report.reminders.append(
                {"right": row.id, "party": row.holder_id, "until": row.term_end.isoformat()}
            )


def _asset_name(session: Session, asset_id: str) -> str:
    asset = session.get(RegistryAsset, asset_id)
    return asset.name if asset is not None else asset_id


def _system_reader() -> Principal:
    """The sweep looking up the registration authority's parties (read only, audited as such)."""
    return Principal(
        user_id="",
        username=SWEEPER,
        party_id="",
        party_kind="",
        roles=frozenset(),
        permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
        via="cli",
    )


def registrar_parties(session: Session) -> list[str]:
    """The verified parties acting as the registration authority (the exchange operator)."""
    rows, _ = identity.list_parties(
        session,
        _system_reader(),
        identity.PartyQuery(
            status=identity.PartyStatus.VERIFIED, kind=identity.PartyKind.EXCHANGE_OPERATOR
        ),
        limit=100,
        offset=0,
    )
    return sorted(p.id for p in rows)


def _overdue(session: Session, today: date, rules: RegistryRules, report: SweepReport) -> None:
    rows = {
        r.id: r
        for r in session.scalars(
            select(RegistryApplication)
            .where(
                RegistryApplication.state.notin_([s.value for s in FINAL_STATES]),
                RegistryApplication.due_on < today,
            )
            .with_for_update()
        )
    }
    if not rows:
        return
    calendar = services.calendar_for(session)
    registrars: list[str] | None = None
    for item in overdue(
        [r.to_domain() for r in rows.values()], today, rules=rules, calendar=calendar
    ):
        row = rows[item.application.id]
        if item.owner is ActorRole.APPLICANT:
            owners = [row.applicant_id]
        else:
            if registrars is None:
                registrars = registrar_parties(session)
            owners = registrars
        state, due = row.state, row.due_on
        assert due is not None
        sent = inbox.notify(
            session,
            owners,
            kind=notifications.KIND_OVERDUE,
            message=notifications.MSG_OVERDUE,
            params={
                "application": row.id,
                "asset": _asset_name(session, row.asset_id),
                "state_label": notifications.state_label(state),
                "due": due.isoformat(),
            },
            dedupe_key=f"registry.overdue:{row.id}:{state}:{row.state_since.isoformat()}",
        )
        if sent:
            report.overdue.append(
                {
                    "application": row.id,
                    "state": state,
                    "due_on": due.isoformat(),
                    "working_days_late": item.working_days_late,
                    "owner": item.owner.value,
                }
            )
        if item.action is Action.WITHDRAW:
            step = advance(
                row.to_domain(),
                Action.WITHDRAW,
                ActorRole.SYSTEM,
                on=today,
                reason=MSG_WITHDRAWN,
                rules=rules,
                calendar=calendar,
            )
            services._record_step(session, row, step, None, rules=rules)
            report.withdrawn.append(row.id)


def sweep(session: Session, *, today: date | None = None) -> SweepReport:
    """The daily sweep on ``today`` (Asia/Shanghai by default), in the caller's transaction."""
    on = today or today_cn()
    _serialise(session)
    rules = load_registry_rules()
    report = SweepReport(today=on)
    _expire(session, on, rules, report)
    _remind(session, on, rules, report)
    _overdue(session, on, rules, report)
    return report


def run_sweep(db: Database, *, today: date | None = None) -> SweepReport:
    """One sweep in its own transaction (the CLI and the daily runner)."""
    with db.write() as session:
        return sweep(session, today=today)


# ------------------------------------------------------------------------------ daily runner

POLL_SECONDS: Final = 300.0  # how often a server process checks whether a new day has begun


def daily_sweep(db: Database, *, today: Callable[[], date] = today_cn) -> Daily[SweepReport]:
    """The sweep, run if due: once per Asia/Shanghai date (``today``), each in its own
    transaction; the day counts as swept only once a sweep has committed."""

    def sweep_day(day: date) -> SweepReport:
        report = run_sweep(db, today=day)
        if report.changed:
            log.info("registry sweep %s: %s", day, report.as_dict())
        return report

    return Daily(sweep_day, today=today)


# Each server process sweeps daily: at start-up, then after each midnight (not in tests).
sweep_lifespan = periodic_lifespan(
    "registry-sweeper", lambda app: daily_sweep(app.state.db), poll_seconds=POLL_SECONDS
)


# ---------------------------------------------------------------------------------- calendar


@dataclass(frozen=True)
class CalendarDay:
    """A day that is not an ordinary weekday/weekend: a holiday or a make-up working day, from
    the State Council's arrangement (``source="file"``, with the holiday's name) or an
    administrator's override (``source="override"``, with its note)."""

    day: date
    kind: str  # "holiday" | "workday"
    source: str  # "file" | "override"
    note: str
    note_en: str = ""


@dataclass(frozen=True)
class CalendarYear:
    """A year of the working-day calendar: its special days and what the count makes of them."""

    year: int
    covered: bool
    source: str
    days: tuple[CalendarDay, ...]  # file days (overridden ones dropped) and overrides, by day
    overrides: tuple[CalendarDay, ...]
    working_days: int

    def is_working_day(self, day: date) -> bool:
        for special in self.days:
            if special.day == day:
                return special.kind == "workday"
        return day.weekday() < 5


@dataclass(frozen=True)
class CalendarChange:
    """What an administrator's change was, and the open applications whose existing due date or
    notice end lies on or after the day (kept as they are: see the module docstring)."""

    day: CalendarDay | None
    removed: date | None
    affected: tuple[dict[str, Any], ...]


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(p) for p in permissions):
        raise Forbidden(MSG_NOT_ALLOWED, permission=permissions[0].value)


def _check_day(day: date) -> None:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(
            MSG_BAD_DAY,
            field="day",
            first=f"{FIRST_YEAR}-01-01",
            last=f"{LAST_YEAR}-12-31",
            day=day.isoformat(),
        )


def calendar_year(session: Session, principal: Principal, year: int) -> CalendarYear:
    """The year's holidays and make-up days: the packaged arrangement with the overrides (for
    the administrator who edits it and the registrars whose deadlines it counts)."""
    _require(principal, P.REGISTRY_CALENDAR_MANAGE, P.REGISTRY_APPLICATION_REVIEW)
    _check_day(date(year, 1, 1))
    arrangement = load_holiday_years().get(year)
    file_days: dict[date, CalendarDay] = {}
    if arrangement is not None:
        for period in arrangement.holidays:
            for d in period.days():
                file_days[d] = CalendarDay(
                    d,
                    "holiday",
                    "file",
                    period.name.get("zh", ""),
                    period.name.get("en", ""),
                )
        for d in arrangement.workdays:
            file_days[d] = CalendarDay(d, "workday", "file", "")
    rows = session.scalars(
        select(RegistryCalendarDay)
        .where(
            RegistryCalendarDay.day >= date(year, 1, 1),
            RegistryCalendarDay.day <= date(year, 12, 31),
        )
        .order_by(RegistryCalendarDay.day)
    )
    overrides = tuple(CalendarDay(r.day, r.kind, "override", r.note) for r in rows)
    merged = {**file_days, **{o.day: o for o in overrides}}
    calendar = services.calendar_for(session)
    first, last = date(year, 1, 1), date(year, 12, 31)
    working = calendar.working_days_between(first - timedelta(days=1), last)
    return CalendarYear(
        year=year,
        covered=calendar.covers(first),
        source="" if arrangement is None else arrangement.source,
        days=tuple(merged[d] for d in sorted(merged)),
        overrides=overrides,
        working_days=working,
    )


def _affected(session: Session, day: date) -> tuple[dict[str, Any], ...]:
    rows = session.scalars(
        select(RegistryApplication)
        .where(
            RegistryApplication.state.notin_([s.value for s in FINAL_STATES]),
            (RegistryApplication.due_on >= day) | (RegistryApplication.notice_ends >= day),
        )
        .order_by(RegistryApplication.due_on, RegistryApplication.id)
    )
    return tuple(
        {
            "application": r.id,
            "state": r.state,
            "due_on": None if r.due_on is None else r.due_on.isoformat(),
            "notice_ends": None if r.notice_ends is None else r.notice_ends.isoformat(),
        }
        for r in rows
    )


def set_calendar_day(
    session: Session, principal: Principal, day: date, *, kind: str, note: str = ""
) -> CalendarChange:
    """An administrator makes ``day`` a holiday or a working day (audited). Periods counted from
    now on use it; deadlines already set are kept (listed in the answer)."""
    _require(principal, P.REGISTRY_CALENDAR_MANAGE)
    _check_day(day)
    if kind not in CALENDAR_KINDS:
        raise InvalidInput(MSG_BAD_KIND, field="kind", kind=kind)
    note = note.strip()[:256]
    row = session.get(RegistryCalendarDay, day, with_for_update=True)
    before = None if row is None else row.kind
    if row is None:
        # Two administrators saving the same new day at once: the second insert waits for the
        # first to commit and then violates the key; it updates the day the first one saved.
        try:
            with session.begin_nested():
                row = RegistryCalendarDay(day=day, kind=kind, note=note)
                session.add(row)
        except IntegrityError:
            row = session.get(
                RegistryCalendarDay, day, with_for_update=True, populate_existing=True
            )
            assert row is not None
            before = row.kind
    row.kind, row.note, row.updated_by = kind, note, principal.user_id
    row.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=principal,
        action=TAG_CALENDAR_SET,
        object_type="registry_calendar_day",
        object_id=day.isoformat(),
        summary=f"{day.isoformat()} set to {kind}"
        + (f" (was an override: {before})" if before else ""),
        party_id=principal.party_id,
        reasons=[note] if note else [],
    )
    return CalendarChange(CalendarDay(day, kind, "override", note), None, _affected(session, day))


def remove_calendar_day(session: Session, principal: Principal, day: date) -> CalendarChange:
    """An administrator removes an override: the day follows the packaged arrangement again."""
    _require(principal, P.REGISTRY_CALENDAR_MANAGE)
    row = session.get(RegistryCalendarDay, day, with_for_update=True)
    if row is None:
        raise NotFound(MSG_NO_OVERRIDE, day=day.isoformat())
    kind = row.kind
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor=principal,
        action=TAG_CALENDAR_REMOVE,
        object_type="registry_calendar_day",
        object_id=day.isoformat(),
        summary=f"override of {day.isoformat()} ({kind}) removed",
        party_id=principal.party_id,
    )
    return CalendarChange(None, day, _affected(session, day))


__all__: Sequence[str] = (
    "CalendarChange",
    "CalendarDay",
    "CalendarYear",
    "SweepReport",
    "calendar_year",
    "daily_sweep",
    "registrar_parties",
    "remove_calendar_day",
    "run_sweep",
    "set_calendar_day",
    "sweep",
    "sweep_lifespan",
)
