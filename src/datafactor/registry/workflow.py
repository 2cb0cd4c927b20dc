"""The registration workflow: states, the transition table, owners, due dates and objections.

::

    submitted ─accept─▶ formal_review ─pass_formal──────▶ substantive_review ─approve_to_notice─┐
        ▲                 │ │ │ └─fast_track_notice──────────────────────────────────────────┐   │
        │                 │ │ └─fast_track_register─▶ certified      (types with no notice)  ▼   ▼
     resubmit             │ └─refuse_formal─▶ refused        substantive_review ─approve─▶ certified
        │                 └─return_formal─▶ returned                     │  └─refuse─▶ refused
    returned ◀───────────────────────────────────────────────return───────┘
                                                                  public_notice ─close_notice─▶ certified
                           objection ◀─lodge_objection─ public_notice    (after the notice ends)
                           │  └─dismiss_objections─▶ public_notice (the notice keeps its dates)
                           └─uphold_objection─▶ refused (the objector is told)
    any non-final state ─withdraw (applicant)─▶ withdrawn
    any non-final state ─force (administrator, with a reason)─▶ any state but submitted,
                                                                objection and certified

Every transition is a row of ``TRANSITIONS`` with the roles allowed to take it; guards that
depend on the application (its track, whether its type has a public notice, whether the notice
has ended, whether objections remain open) are checked by ``advance``. Every non-final state has
an owner role and a due date in working days (``rules/registry.yaml`` ``states``), computed on
the editable working-day calendar: the public notice is due ``certify_after_notice`` working days
after the notice ends. ``overdue`` lists what is late; an application left *returned* past its
period is withdrawn by the system, anything else late joins the overdue queue.

An administrator can force any non-final application into any state except *submitted* (that is
the applicant's act), *objection* (an objector's act, with grounds) and *certified*: a
certificate carries property rights, so no path to one skips the checks, the review and the
public notice. Forcing into *public notice* starts a full
new notice period, so the public always has the whole period to object. The force names its
reason and its rule (``REG-FORCE``) for the audit trail.

The end-to-end target (10 working days, objection time excluded) is tracked per application:
working days spent in excluded states (objection, returned) are added to the target date.
Pure Python: no database, no web; ``services.py`` persists each ``Step`` and its audit event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Final

from datafactor.errors import N_
from datafactor.registry.calendar import WorkingCalendar, default_calendar
from datafactor.registry.checks import Decision, Grounds, Outcome, check_grounds
from datafactor.registry.errors import (
    ActorNotAllowed,
    InvalidRegistration,
    ObjectionNotAdmissible,
    TransitionNotAllowed,
)
from datafactor.registry.rulebook import OverdueAction, RegistryRules, load_registry_rules
from datafactor.registry.vocabulary import (
    DISPUTING_STATUSES,
    FINAL_STATES,
    Action,
    ActorRole,
    DataClass,
    ObjectionRecordStatus,
    RegistrationState,
    RegistrationType,
    Track,
)

S = RegistrationState
R = ActorRole
A = Action

REASON_MAX: Final = 500

MSG_FINAL: Final = N_(
    "Application {application} is already {state}: nothing more can happen to it. Submit a "
    "new application if needed (rule {rule})."
)
MSG_NO_TRANSITION: Final = N_(
    "An application in state {state} cannot take the action {action}. Possible now: "
    "{allowed} (rule {rule})."
)
MSG_ROLE: Final = N_(
    "The action {action} on an application in state {state} is for {roles}, not {role} "
    "(rule {rule})."
)
MSG_REASON: Final = N_("Give a reason (at most {max} characters) (rule {rule}).")
MSG_FORCE_TARGET: Final = N_(
    "An administrator cannot force an application into state {target}: choose formal or "
    "substantive review, public notice, returned, refused or withdrawn (rule {rule})."
)
MSG_FORCE_SAME: Final = N_("Application {application} is already {state} (rule {rule}).")
MSG_NOT_FAST: Final = N_(
    "The fast track needs a formal review that passed with the fast track chosen; this one "
    "did not (outcome: {outcome}, track: {track}) (rule {rule})."
)
MSG_DECISION: Final = N_(
    "The automatic checks decided {outcome}; the action {action} needs {needed} (rule {rule})."
)
MSG_NO_NOTICE: Final = N_(
    "A {type} registration has no public notice: use {action} instead (rule {rule})."
)
MSG_NEEDS_NOTICE: Final = N_(
    "A {type} registration needs a public notice: use {action} instead (rule {rule})."
)
MSG_NOTICE_RUNNING: Final = N_(
    "The public notice runs until the end of {ends}; the application can be registered after "
    "that (rule {rule})."
)
MSG_OBJECTIONS_OPEN: Final = N_(
    "{count} objection(s) are still undecided: decide each before the notice continues "
    "(rule {rule})."
)
MSG_NOT_APPLICANT: Final = N_(
    "Only the applicant can resubmit or withdraw this application (rule {rule})."
)
MSG_OWN_OBJECTION: Final = N_("The applicant cannot object to its own application (rule {rule}).")
MSG_NOT_IN_NOTICE: Final = N_(
    "Objections are lodged during the public notice, and application {application} is not in "
    "public notice (rule {rule})."
)
MSG_NOTICE_OVER: Final = N_(
    "Objections are lodged during the public notice, which for application {application} ran "
    "from {starts} to the end of {ends} (rule {rule})."
)


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the transition table: from ``source`` by ``action`` to ``target``."""

    action: Action
    source: RegistrationState
    target: RegistrationState
    roles: frozenset[ActorRole]


def _t(action: Action, source: S, target: S, *roles: R) -> Transition:
    return Transition(action, source, target, frozenset(roles))


_NON_FINAL: Final = tuple(s for s in RegistrationState if s not in FINAL_STATES)

TRANSITIONS: Final[tuple[Transition, ...]] = (
    _t(A.ACCEPT, S.SUBMITTED, S.FORMAL_REVIEW, R.SYSTEM, R.REGISTRAR),
    _t(A.PASS_FORMAL, S.FORMAL_REVIEW, S.SUBSTANTIVE_REVIEW, R.SYSTEM, R.REGISTRAR),
    _t(A.FAST_TRACK_NOTICE, S.FORMAL_REVIEW, S.PUBLIC_NOTICE, R.SYSTEM),
    _t(A.FAST_TRACK_REGISTER, S.FORMAL_REVIEW, S.CERTIFIED, R.SYSTEM),
    _t(A.RETURN_FORMAL, S.FORMAL_REVIEW, S.RETURNED, R.SYSTEM, R.REGISTRAR),
    _t(A.REFUSE_FORMAL, S.FORMAL_REVIEW, S.REFUSED, R.SYSTEM, R.REGISTRAR),
    _t(A.APPROVE_TO_NOTICE, S.SUBSTANTIVE_REVIEW, S.PUBLIC_NOTICE, R.REGISTRAR),
    _t(A.APPROVE, S.SUBSTANTIVE_REVIEW, S.CERTIFIED, R.REGISTRAR),
    _t(A.RETURN, S.SUBSTANTIVE_REVIEW, S.RETURNED, R.REGISTRAR),
    _t(A.REFUSE, S.SUBSTANTIVE_REVIEW, S.REFUSED, R.REGISTRAR),
    _t(A.RESUBMIT, S.RETURNED, S.SUBMITTED, R.APPLICANT),
    _t(A.LODGE_OBJECTION, S.PUBLIC_NOTICE, S.OBJECTION, R.OBJECTOR),
    _t(A.DISMISS_OBJECTIONS, S.OBJECTION, S.PUBLIC_NOTICE, R.REGISTRAR),
    _t(A.UPHOLD_OBJECTION, S.OBJECTION, S.REFUSED, R.REGISTRAR),
    _t(A.CLOSE_NOTICE, S.PUBLIC_NOTICE, S.CERTIFIED, R.SYSTEM, R.REGISTRAR),
    *(
        _t(A.WITHDRAW, s, S.WITHDRAWN, R.APPLICANT, R.SYSTEM)
        if s is S.RETURNED
        else _t(A.WITHDRAW, s, S.WITHDRAWN, R.APPLICANT)
        for s in _NON_FINAL
    ),
)
_BY_KEY: Final = {(t.source, t.action): t for t in TRANSITIONS}
# Not submitted (the applicant's act), not certified (no certificate skips the checks, review and
# notice), not objection (an objection is an objector's act, recorded with its grounds).
FORCE_TARGETS: Final = frozenset(set(RegistrationState) - {S.SUBMITTED, S.CERTIFIED, S.OBJECTION})
# Actions whose actor must give a reason (refusals and returns by a person, objection decisions).
_NEEDS_REASON: Final = frozenset({A.RETURN, A.REFUSE, A.UPHOLD_OBJECTION, A.FORCE})
_FAST: Final = frozenset({A.FAST_TRACK_NOTICE, A.FAST_TRACK_REGISTER})
_TO_NOTICE: Final = frozenset({A.FAST_TRACK_NOTICE, A.APPROVE_TO_NOTICE})
_TO_REGISTER: Final = frozenset({A.FAST_TRACK_REGISTER, A.APPROVE})
_DECISION_NEEDED: Final = {
    A.PASS_FORMAL: Outcome.PASS,
    A.FAST_TRACK_NOTICE: Outcome.PASS,
    A.FAST_TRACK_REGISTER: Outcome.PASS,
    A.RETURN_FORMAL: Outcome.RETURN,
    A.REFUSE_FORMAL: Outcome.REFUSE,
}


def allowed_actions(state: RegistrationState) -> tuple[Action, ...]:
    """Actions of the table from ``state`` (the administrator's force aside)."""
    return tuple(t.action for t in TRANSITIONS if t.source is state)


@dataclass(frozen=True)
class RegistrationApplication:
    """A registration application (登记申请) as the workflow sees it.

    ``state_since`` is the day it entered its state, ``due_on`` the last day its owner has.
    ``notice_starts`` / ``notice_ends`` are the public notice's publication day and last day.
    ``excluded_days`` counts working days spent in states the end-to-end target excludes.
    ``right_id`` is the right the registration acts on (the parent, for a licence).
    """

    id: str
    type: RegistrationType
    applicant_id: str
    asset_id: str
    data_class: DataClass
    submitted_on: date
    state: RegistrationState = RegistrationState.SUBMITTED
    state_since: date | None = None
    due_on: date | None = None
    track: Track = Track.STANDARD
    notice_starts: date | None = None
    notice_ends: date | None = None
    excluded_days: int = 0
    right_id: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def since(self) -> date:
        return self.state_since or self.submitted_on

    def owner(self, rules: RegistryRules | None = None) -> ActorRole | None:
        """The role that must act next (None once final)."""
        if self.final:
            return None
        return (rules or load_registry_rules()).states[self.state].owner

    def target_on(
        self, rules: RegistryRules | None = None, calendar: WorkingCalendar | None = None
    ) -> date:
        """The end-to-end target date: submission + target working days + excluded days."""
        rules = rules or load_registry_rules()
        calendar = calendar or default_calendar()
        return calendar.add_working_days(self.submitted_on, rules.target_days + self.excluded_days)

    def as_dict(self) -> dict[str, Any]:
        def day(value: date | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "type": self.type.value,
            "applicant_id": self.applicant_id,
            "asset_id": self.asset_id,
            "data_class": self.data_class.value,
            "submitted_on": self.submitted_on.isoformat(),
            "state": self.state.value,
            "state_since": day(self.since),
            "due_on": day(self.due_on),
            "track": self.track.value,
            "notice_starts": day(self.notice_starts),
            "notice_ends": day(self.notice_ends),
            "excluded_days": self.excluded_days,
            "right_id": self.right_id,
        }


@dataclass(frozen=True)
class Step:
    """One transition taken: the application after it, and what the audit trail records."""

    application: RegistrationApplication
    action: Action
    source: RegistrationState | None
    target: RegistrationState
    role: ActorRole
    actor_id: str | None
    on: date
    reason: str
    rule: str

    @property
    def owner(self) -> ActorRole | None:
        return self.application.owner()

    @property
    def forced(self) -> bool:
        return self.action is Action.FORCE

    def as_dict(self) -> dict[str, Any]:
        return {
            "application": self.application.id,
            "action": self.action.value,
            "source": None if self.source is None else self.source.value,
            "target": self.target.value,
            "role": self.role.value,
            "actor_id": self.actor_id,
            "on": self.on.isoformat(),
            "reason": self.reason,
            "rule": self.rule,
            "due_on": None
            if self.application.due_on is None
            else self.application.due_on.isoformat(),
        }


def check_reason(reason: str, rules: RegistryRules, *, rule_key: str = "workflow") -> str:
    """A reason a person gave, whitespace folded; refused when empty or too long."""
    text = " ".join((reason or "").split())
    if not text or len(text) > REASON_MAX:
        raise InvalidRegistration(
            MSG_REASON, rule=rules.rule_id(rule_key), field="reason", max=REASON_MAX
        )
    return text


def due_on(
    state: RegistrationState,
    entered_on: date,
    *,
    notice_ends: date | None = None,
    rules: RegistryRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> date | None:
    """When an application entering ``state`` on ``entered_on`` is due (None for final states)."""
    if state in FINAL_STATES:
        return None
    rules = rules or load_registry_rules()
    calendar = calendar or default_calendar()
    policy = rules.states[state]
    if state is S.PUBLIC_NOTICE:
        if notice_ends is None:
            raise ValueError("a public notice's due date needs its end")
        return calendar.add_working_days(notice_ends, rules.certify_after_notice)
    assert policy.working_days is not None
    return calendar.add_working_days(entered_on, policy.working_days)


def notice_period(
    data_class: DataClass,
    starts: date,
    *,
    rules: RegistryRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> tuple[date, date]:
    """(first day, last day) of a public notice published on ``starts`` for ``data_class``.

    The publication day is not counted (Civil Code art. 201); the notice runs to 24:00 of its last
    working day. Counted strictly: a notice running into a year with no holiday arrangement is
    refused rather than shortened.
    """
    rules = rules or load_registry_rules()
    calendar = calendar or default_calendar()
    ends = calendar.add_working_days(starts, rules.notice_days[data_class], strict=True)
    return starts, ends


def submit(
    application_id: str,
    registration_type: RegistrationType,
    *,
    applicant_id: str,
    asset_id: str,
    data_class: DataClass,
    on: date,
    right_id: str | None = None,
    rules: RegistryRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> Step:
    """A new application, submitted by its applicant on ``on``."""
    rules = rules or load_registry_rules()
    application = RegistrationApplication(
        id=application_id,
        type=registration_type,
        applicant_id=applicant_id,
        asset_id=asset_id,
        data_class=data_class,
        submitted_on=on,
        state_since=on,
        due_on=due_on(S.SUBMITTED, on, rules=rules, calendar=calendar),
        right_id=right_id,
    )
    return Step(
        application,
        Action.SUBMIT,
        None,
        S.SUBMITTED,
        R.APPLICANT,
        applicant_id,
        on,
        "",
        rules.rule_id("workflow"),
    )


def advance(
    application: RegistrationApplication,
    action: Action,
    role: ActorRole,
    *,
    on: date,
    actor_id: str | None = None,
    reason: str = "",
    decision: Decision | None = None,
    target: RegistrationState | None = None,
    open_objections: int = 0,
    rules: RegistryRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> Step:
    """Take ``action`` on ``application`` as ``role`` on ``on``; the ``Step``, or a refusal.

    ``decision`` is the formal review's (needed to leave formal review by the system's actions,
    and always for the fast track); ``target`` is the state an administrator forces;
    ``open_objections`` is how many objections remain undecided (for dismissing objections);
    ``reason`` is needed for refusals and returns by a registrar, upheld objections and forces.
    """
    rules = rules or load_registry_rules()
    calendar = calendar or default_calendar()
    rule = rules.rule_id("workflow")
    if application.final:
        raise TransitionNotAllowed(
            MSG_FINAL,
            rule=rule,
            field="action",
            application=application.id,
            state=application.state.value,
        )
    if action is Action.FORCE:
        return _force(application, role, on, actor_id, reason, target, rules, calendar)
    transition = _BY_KEY.get((application.state, action))
    if transition is None:
        raise TransitionNotAllowed(
            MSG_NO_TRANSITION,
            rule=rule,
            field="action",
            state=application.state.value,
            action=action.value,
            allowed=", ".join(a.value for a in allowed_actions(application.state)),
        )
    if role not in transition.roles:
        raise ActorNotAllowed(
            MSG_ROLE,
            rule=rule,
            field="action",
            action=action.value,
            state=application.state.value,
            roles=", ".join(sorted(r.value for r in transition.roles)),
            role=role.value,
        )
    if (
        action in (A.RESUBMIT, A.WITHDRAW)
        and role is R.APPLICANT
        and actor_id is not None
        and actor_id != application.applicant_id
    ):
        raise ActorNotAllowed(MSG_NOT_APPLICANT, rule=rule, field="action", action=action.value)
    text = ""
    needs_reason = action in _NEEDS_REASON or (
        action in (A.RETURN_FORMAL, A.REFUSE_FORMAL) and role is R.REGISTRAR
    )
    if needs_reason:
        text = check_reason(reason, rules)
    elif reason:
        text = " ".join(reason.split())[:REASON_MAX]
    _guard(application, transition, role, on, actor_id, decision, open_objections, rules)
    track = application.track
    if action is A.PASS_FORMAL:
        track = Track.STANDARD
    elif action in _FAST:
        track = Track.FAST
    moved = _enter(
        dataclasses.replace(application, track=track),
        transition.target,
        on,
        rules,
        calendar,
        keep_notice=action is A.DISMISS_OBJECTIONS,
    )
    return Step(moved, action, application.state, transition.target, role, actor_id, on, text, rule)


def _guard(
    application: RegistrationApplication,
    transition: Transition,
    role: ActorRole,
    on: date,
    actor_id: str | None,
    decision: Decision | None,
    open_objections: int,
    rules: RegistryRules,
) -> None:
    rule = rules.rule_id("workflow")
    action = transition.action
    type_rules = rules.type_rules(application.type)
    needed = _DECISION_NEEDED.get(action)
    # The system acts only on a decision; a registrar returning or refusing gives a reason
    # instead, but no person passes a formal review the checks did not pass.
    if (
        needed is not None
        and (role is R.SYSTEM or needed is Outcome.PASS)
        and (decision is None or decision.outcome is not needed)
    ):
        raise TransitionNotAllowed(
            MSG_DECISION,
            rule=rule,
            field="decision",
            outcome="none" if decision is None else decision.outcome.value,
            action=action.value,
            needed=needed.value,
        )
    if action in _FAST and (
        not type_rules.fast_track or decision is None or decision.track is not Track.FAST
    ):
        raise TransitionNotAllowed(
            MSG_NOT_FAST,
            rule=rule,
            field="action",
            outcome="none" if decision is None else decision.outcome.value,
            track="none" if decision is None else decision.track.value,
        )
    if action in _TO_NOTICE and not type_rules.public_notice:
        raise TransitionNotAllowed(
            MSG_NO_NOTICE,
            rule=rule,
            field="action",
            type=application.type.value,
            action=A.APPROVE.value
            if action is A.APPROVE_TO_NOTICE
            else A.FAST_TRACK_REGISTER.value,
        )
    if action in _TO_REGISTER and type_rules.public_notice:
        raise TransitionNotAllowed(
            MSG_NEEDS_NOTICE,
            rule=rule,
            field="action",
            type=application.type.value,
            action=A.APPROVE_TO_NOTICE.value if action is A.APPROVE else A.FAST_TRACK_NOTICE.value,
        )
    if action is A.CLOSE_NOTICE and (
        application.notice_ends is None or on <= application.notice_ends
    ):
        raise TransitionNotAllowed(
            MSG_NOTICE_RUNNING,
            rule=rules.rule_id("notice_period"),
            field="action",
            ends="?" if application.notice_ends is None else application.notice_ends.isoformat(),
        )
    if action is A.LODGE_OBJECTION:
        _check_objection_window(application, on, actor_id, rules)
    if action is A.DISMISS_OBJECTIONS and open_objections > 0:
        raise TransitionNotAllowed(
            MSG_OBJECTIONS_OPEN,
            rule=rules.rule_id("objection_grounds"),
            field="action",
            count=open_objections,
        )


def _check_objection_window(
    application: RegistrationApplication, on: date, actor_id: str | None, rules: RegistryRules
) -> None:
    rule = rules.rule_id("objection_period")
    if actor_id is not None and actor_id == application.applicant_id:
        raise ObjectionNotAdmissible(MSG_OWN_OBJECTION, rule=rule, field="objector")
    if application.state not in (S.PUBLIC_NOTICE, S.OBJECTION) or application.notice_ends is None:
        raise ObjectionNotAdmissible(
            MSG_NOT_IN_NOTICE, rule=rule, field="application", application=application.id
        )
    starts = application.notice_starts or application.notice_ends
    if not starts <= on <= application.notice_ends:
        raise ObjectionNotAdmissible(
            MSG_NOTICE_OVER,
            rule=rule,
            field="application",
            application=application.id,
            starts=starts.isoformat(),
            ends=application.notice_ends.isoformat(),
        )


def _enter(
    application: RegistrationApplication,
    state: RegistrationState,
    on: date,
    rules: RegistryRules,
    calendar: WorkingCalendar,
    *,
    keep_notice: bool = False,
) -> RegistrationApplication:
    """``application`` entering ``state`` on ``on``: its due date, notice dates, excluded days."""
    excluded = application.excluded_days
    if application.state in rules.target_excludes:
        excluded += max(0, calendar.working_days_between(application.since, on))
    starts, ends = application.notice_starts, application.notice_ends
    if state is S.PUBLIC_NOTICE and not keep_notice:
        starts, ends = notice_period(application.data_class, on, rules=rules, calendar=calendar)
    return dataclasses.replace(
        application,
        state=state,
        state_since=on,
        due_on=due_on(state, on, notice_ends=ends, rules=rules, calendar=calendar),
        notice_starts=starts,
        notice_ends=ends,
        excluded_days=excluded,
    )


def _force(
    application: RegistrationApplication,
    role: ActorRole,
    on: date,
    actor_id: str | None,
    reason: str,
    target: RegistrationState | None,
    rules: RegistryRules,
    calendar: WorkingCalendar,
) -> Step:
    rule = rules.rule_id("force")
    if role is not R.ADMINISTRATOR:
        raise ActorNotAllowed(
            MSG_ROLE,
            rule=rule,
            field="action",
            action=A.FORCE.value,
            state=application.state.value,
            roles=R.ADMINISTRATOR.value,
            role=role.value,
        )
    text = check_reason(reason, rules, rule_key="force")
    if target is None or target not in FORCE_TARGETS:
        raise TransitionNotAllowed(
            MSG_FORCE_TARGET,
            rule=rule,
            field="target",
            target="none" if target is None else target.value,
        )
    if target is application.state:
        raise TransitionNotAllowed(
            MSG_FORCE_SAME,
            rule=rule,
            field="target",
            application=application.id,
            state=target.value,
        )
    moved = _enter(application, target, on, rules, calendar)
    return Step(moved, A.FORCE, application.state, target, role, actor_id, on, text, rule)


# --- overdue --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverdueItem:
    """An application past its state's due date: who owns it and what overdue means for it."""

    application: RegistrationApplication
    owner: ActorRole
    working_days_late: int
    on_overdue: OverdueAction

    @property
    def action(self) -> Action | None:
        """What the system does about it: withdraw an application left returned; else nothing
        (it is escalated: the owner's supervisors see it in the overdue queue)."""
        return Action.WITHDRAW if self.on_overdue is OverdueAction.WITHDRAW else None


def is_overdue(application: RegistrationApplication, today: date) -> bool:
    return not application.final and application.due_on is not None and today > application.due_on


def overdue(
    applications: Iterable[RegistrationApplication],
    today: date,
    *,
    rules: RegistryRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> list[OverdueItem]:
    """The overdue queue on ``today``: the longest overdue first (earliest due date), then by id."""
    rules = rules or load_registry_rules()
    calendar = calendar or default_calendar()
    items = []
    for application in applications:
        if not is_overdue(application, today):
            continue
        assert application.due_on is not None
        policy = rules.states[application.state]
        items.append(
            OverdueItem(
                application,
                policy.owner,
                calendar.working_days_between(application.due_on, today),
                policy.on_overdue,
            )
        )
    items.sort(key=lambda i: (i.application.due_on, i.application.id))
    return items


# --- plan -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """The planned course of an application if every step takes its full period."""

    stages: tuple[tuple[RegistrationState, date], ...]  # each state and the day it is due
    finishes_on: date
    target_on: date

    @property
    def meets_target(self) -> bool:
        return self.finishes_on <= self.target_on


def plan(
    registration_type: RegistrationType,
    data_class: DataClass,
    track: Track,
    submitted_on: date,
    *,
    rules: RegistryRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> Plan:
    """The stages an application goes through and when each is due, and whether the whole meets
    the end-to-end target (10 working days by default). A 10-working-day public-data notice
    cannot: the rules file says whether the notice counts towards the target."""
    rules = rules or load_registry_rules()
    calendar = calendar or default_calendar()
    type_rules = rules.type_rules(registration_type)
    path = [S.SUBMITTED, S.FORMAL_REVIEW]
    if track is Track.STANDARD or not type_rules.fast_track:
        path.append(S.SUBSTANTIVE_REVIEW)
    if type_rules.public_notice:
        path.append(S.PUBLIC_NOTICE)
    stages: list[tuple[RegistrationState, date]] = []
    day = submitted_on
    excluded = 0
    for state in path:
        if state is S.PUBLIC_NOTICE:
            _, ends = notice_period(data_class, day, rules=rules, calendar=calendar)
            due = due_on(state, day, notice_ends=ends, rules=rules, calendar=calendar)
        else:
            due = due_on(state, day, rules=rules, calendar=calendar)
        assert due is not None
        if state in rules.target_excludes:
            excluded += calendar.working_days_between(day, due)
        stages.append((state, due))
        day = due
    target = calendar.add_working_days(submitted_on, rules.target_days + excluded)
    return Plan(tuple(stages), day, target)


# --- objections -----------------------------------------------------------------------------------


class ObjectionOutcome(StrEnum):
    SUBSTANTIATED = "substantiated"  # 异议成立
    DISMISSED = "dismissed"  # 异议不成立


@dataclass(frozen=True, slots=True)
class Objection:
    """An objection (异议) lodged against an application during its public notice."""

    id: str
    application_id: str
    objector_id: str
    grounds: Grounds
    lodged_on: date

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "application_id": self.application_id,
            "objector_id": self.objector_id,
            "grounds": self.grounds.as_dict(),
            "lodged_on": self.lodged_on.isoformat(),
        }


def lodge_objection(
    application: RegistrationApplication,
    *,
    objection_id: str,
    objector_id: str,
    grounds: Grounds,
    on: date,
    rules: RegistryRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> tuple[Objection, Step | None]:
    """Check and record an objection; the ``Step`` into *objection* when the application was
    still in *public notice* (None when it is already handling objections).

    Refused (``ObjectionNotAdmissible``, naming the rule) outside the notice period, from the
    applicant itself, or with no grounds, an empty statement or no evidence.
    """
    rules = rules or load_registry_rules()
    _check_objection_window(application, on, objector_id, rules)
    checked = check_grounds(grounds, rules)
    objection = Objection(objection_id, application.id, objector_id, checked, on)
    if application.state is S.OBJECTION:
        return objection, None
    step = advance(
        application,
        A.LODGE_OBJECTION,
        R.OBJECTOR,
        on=on,
        actor_id=objector_id,
        rules=rules,
        calendar=calendar,
    )
    return objection, step


@dataclass(frozen=True, slots=True)
class ObjectionDecision:
    """A registrar's decision on one objection, and who is told.

    ``action`` is what the application does next: refused when substantiated; back to its public
    notice once no objection remains open; None while others are still undecided.
    ``credit_event`` marks a substantiated objection as a dishonesty event of the applicant
    (RULES.md, "Credit, objections, complaints"), for the credit domain to record.
    """

    objection_id: str
    outcome: ObjectionOutcome
    reason: str
    decided_on: date
    action: Action | None
    notify: frozenset[str]
    rule: str

    @property
    def credit_event(self) -> bool:
        return self.outcome is ObjectionOutcome.SUBSTANTIATED

    def as_dict(self) -> dict[str, Any]:
        return {
            "objection_id": self.objection_id,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "decided_on": self.decided_on.isoformat(),
            "action": None if self.action is None else self.action.value,
            "notify": sorted(self.notify),
            "rule": self.rule,
        }


def decide_objection(
    objection: Objection,
    application: RegistrationApplication,
    *,
    substantiated: bool,
    reason: str,
    role: ActorRole,
    on: date,
    open_after: int,
    rules: RegistryRules | None = None,
) -> ObjectionDecision:
    """The registrar decides ``objection`` (``open_after``: objections still undecided after it).

    The objector and the applicant are told either way; the reason is required.
    """
    rules = rules or load_registry_rules()
    rule = rules.rule_id("objection_grounds")
    if role is not R.REGISTRAR:
        raise ActorNotAllowed(
            MSG_ROLE,
            rule=rule,
            field="role",
            action="decide_objection",
            state=application.state.value,
            roles=R.REGISTRAR.value,
            role=role.value,
        )
    if application.state is not S.OBJECTION or objection.application_id != application.id:
        raise TransitionNotAllowed(
            MSG_NO_TRANSITION,
            rule=rule,
            field="objection",
            state=application.state.value,
            action="decide_objection",
            allowed=", ".join(a.value for a in allowed_actions(application.state)),
        )
    text = check_reason(reason, rules, rule_key="objection_grounds")
    action: Action | None
    if substantiated:
        outcome, action = ObjectionOutcome.SUBSTANTIATED, A.UPHOLD_OBJECTION
    else:
        outcome = ObjectionOutcome.DISMISSED
        action = A.DISMISS_OBJECTIONS if open_after == 0 else None
    return ObjectionDecision(
        objection.id,
        outcome,
        text,
        on,
        action,
        frozenset({objection.objector_id, application.applicant_id}),
        rule,
    )


# --- objection registrations (异议登记) --------------------------------------------------------------

MSG_RECORD_CLOSED: Final = N_(
    "Objection registration {application} is no longer in force ({record_status}): nothing "
    "more can be recorded on it (rule {rule})."
)
MSG_RECORD_NOT_CERTIFIED: Final = N_(
    "Application {application} is not a registered objection registration (rule {rule})."
)
MSG_LAWSUIT_REFERENCE: Final = N_(
    "Give the case number of the lawsuit or the reference of the authority's proceedings, "
    "in at most {max} characters (rule {rule})."
)


@dataclass(frozen=True, slots=True)
class ObjectionRecord:
    """A certified objection registration (异议登记) on a registered right.

    Unlike an objection lodged during a public notice (against an *application*), it is filed by
    an interested party against a right already registered, goes through formal review, and once
    registered puts the right *under objection*: the open-dispute rule refuses transfers,
    licences, pledges, changes and cancellations of it (and of rights whose title rests on it).
    It lapses ``objection_lapse_days`` calendar days after registration unless a lawsuit (or an
    authority's proceedings) is recorded; the registrar closes it: unsubstantiated → lifted;
    substantiated → the right stays under objection until its correction or revocation is
    registered (``resolved``). The record's own states sit after the application's final
    *certified* state; the workflow's state machine is not changed.
    """

    application_id: str
    right_id: str
    objector_id: str
    registered_on: date
    lapses_on: date
    lawsuit: str | None = None
    closed: ObjectionRecordStatus | None = None
    closed_on: date | None = None
    reason: str = ""

    def status(self, on: date) -> ObjectionRecordStatus:
        if self.closed is not None:
            return self.closed
        if self.lawsuit is None and on > self.lapses_on:
            return ObjectionRecordStatus.LAPSED
        return ObjectionRecordStatus.IN_FORCE

    def disputes(self, on: date) -> bool:
        """Whether the right is under objection on ``on`` because of this record."""
        return self.status(on) in DISPUTING_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "application_id": self.application_id,
            "right_id": self.right_id,
            "objector_id": self.objector_id,
            "registered_on": self.registered_on.isoformat(),
            "lapses_on": self.lapses_on.isoformat(),
            "lawsuit": self.lawsuit,
            "closed": None if self.closed is None else self.closed.value,
            "closed_on": None if self.closed_on is None else self.closed_on.isoformat(),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectionRecord:
        def day(value: Any) -> date | None:
            return None if not value else date.fromisoformat(str(value))

        registered, lapses = day(data["registered_on"]), day(data["lapses_on"])
        assert registered is not None
        assert lapses is not None
        return cls(
            application_id=str(data["application_id"]),
            right_id=str(data["right_id"]),
            objector_id=str(data["objector_id"]),
            registered_on=registered,
            lapses_on=lapses,
            lawsuit=data.get("lawsuit") or None,
            closed=None if not data.get("closed") else ObjectionRecordStatus(data["closed"]),
            closed_on=day(data.get("closed_on")),
            reason=str(data.get("reason") or ""),
        )


def register_objection(
    application: RegistrationApplication,
    *,
    right_id: str,
    on: date,
    rules: RegistryRules | None = None,
) -> ObjectionRecord:
    """The record a certified objection registration leaves on the right it names."""
    rules = rules or load_registry_rules()
    if application.type is not RegistrationType.OBJECTION:
        raise TransitionNotAllowed(
            MSG_RECORD_NOT_CERTIFIED,
            rule=rules.rule_id("objection_registration"),
            field="application",
            application=application.id,
        )
    return ObjectionRecord(
        application.id,
        right_id,
        application.applicant_id,
        on,
        on + timedelta(days=rules.objection_lapse_days),
    )


def _require_open(record: ObjectionRecord, on: date, rules: RegistryRules) -> None:
    status = record.status(on)
    if status is not ObjectionRecordStatus.IN_FORCE:
        raise TransitionNotAllowed(
            MSG_RECORD_CLOSED,
            rule=rules.rule_id("objection_registration"),
            field="application",
            application=record.application_id,
            record_status=status.value,
        )


def record_lawsuit(
    record: ObjectionRecord,
    reference: str,
    *,
    on: date,
    rules: RegistryRules | None = None,
) -> ObjectionRecord:
    """The objector sued (or an authority opened proceedings) in time: the record no longer
    lapses; it stays in force until the registrar closes it on the outcome."""
    rules = rules or load_registry_rules()
    _require_open(record, on, rules)
    text = " ".join((reference or "").split())
    if not text or len(text) > REASON_MAX:
        raise InvalidRegistration(
            MSG_LAWSUIT_REFERENCE,
            rule=rules.rule_id("objection_registration"),
            field="reference",
            max=REASON_MAX,
        )
    return dataclasses.replace(record, lawsuit=text)


def close_objection_record(
    record: ObjectionRecord,
    *,
    substantiated: bool,
    reason: str,
    role: ActorRole,
    on: date,
    rules: RegistryRules | None = None,
) -> ObjectionRecord:
    """The registrar closes an objection registration in force, with a reason: unsubstantiated
    → lifted (the right is no longer under objection); substantiated → the right stays under
    objection until its correction or revocation is registered through the normal types."""
    rules = rules or load_registry_rules()
    rule = rules.rule_id("objection_registration")
    if role is not R.REGISTRAR:
        raise ActorNotAllowed(
            MSG_ROLE,
            rule=rule,
            field="role",
            action=A.UPHOLD_OBJECTION.value if substantiated else A.DISMISS_OBJECTIONS.value,
            state=S.CERTIFIED.value,
            roles=R.REGISTRAR.value,
            role=role.value,
        )
    _require_open(record, on, rules)
    text = check_reason(reason, rules, rule_key="objection_registration")
    closed = ObjectionRecordStatus.SUBSTANTIATED if substantiated else ObjectionRecordStatus.LIFTED
    return dataclasses.replace(record, closed=closed, closed_on=on, reason=text)


def resolve_objection_record(record: ObjectionRecord, *, on: date) -> ObjectionRecord | None:
    """A substantiated record once the right's correction or revocation is registered (None
    when the record is not substantiated)."""
    if record.closed is not ObjectionRecordStatus.SUBSTANTIATED:
        return None
    return dataclasses.replace(record, closed=ObjectionRecordStatus.RESOLVED, closed_on=on)


def require_open(application: RegistrationApplication, rules: RegistryRules | None = None) -> None:
    """Refuse to add anything to an application that is already final (certified, refused,
    withdrawn)."""
    rules = rules or load_registry_rules()
    if application.final:
        raise TransitionNotAllowed(
            MSG_FINAL,
            rule=rules.rule_id("workflow"),
            field="application",
            application=application.id,
            state=application.state.value,
        )


def require_objection_record(
    application: RegistrationApplication,
    record: dict[str, Any] | None,
    *,
    rules: RegistryRules | None = None,
) -> ObjectionRecord:
    """The record of a certified objection registration, or a refusal naming the rule."""
    rules = rules or load_registry_rules()
    if (
        application.type is not RegistrationType.OBJECTION
        or application.state is not S.CERTIFIED
        or not record
    ):
        raise TransitionNotAllowed(
            MSG_RECORD_NOT_CERTIFIED,
            rule=rules.rule_id("objection_registration"),
            field="application",
            application=application.id,
        )
    return ObjectionRecord.from_dict(record)
