"""The registration workflow: the transition table and its roles, owners and due dates in
working days, public notice and objections, the overdue queue, and the administrator's force."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafactor.registry import (
    FINAL_STATES,
    FORCE_TARGETS,
    TRANSITIONS,
    Action,
    ActorNotAllowed,
    ActorRole,
    CalendarNotCovered,
    CheckReason,
    DataClass,
    Decision,
    Effect,
    Grounds,
    InvalidRegistration,
    ObjectionNotAdmissible,
    ObjectionOutcome,
    Outcome,
    RegistrationApplication,
    RegistrationState,
    RegistrationType,
    Track,
    TransitionNotAllowed,
    advance,
    allowed_actions,
    decide_objection,
    default_calendar,
    due_on,
    is_overdue,
    load_registry_rules,
    lodge_objection,
    notice_period,
    overdue,
    plan,
    submit,
)

S = RegistrationState
A = Action
R = ActorRole
CAL = default_calendar()
MONDAY = date(2026, 3, 2)
GROUNDS = Grounds(frozenset({"title_dispute"}), "These meter readings are ours.", ("ev-1",))


def decision(outcome: Outcome = Outcome.PASS, track: Track = Track.STANDARD) -> Decision:
    ref = load_registry_rules().ref("workflow")
    return Decision(outcome, track, (CheckReason.of(ref, Effect.NOTE, "x"),), (ref.id,))


PASSED = decision()
FAST = decision(track=Track.FAST)


def new(
    registration_type: RegistrationType = RegistrationType.INITIAL,
    data_class: DataClass = DataClass.ENTERPRISE,
    on: date = MONDAY,
) -> RegistrationApplication:
    return submit(
        "A1", registration_type, applicant_id="alice", asset_id="R1", data_class=data_class, on=on
    ).application


def in_notice(
    data_class: DataClass = DataClass.ENTERPRISE, on: date = MONDAY
) -> RegistrationApplication:
    app = new(data_class=data_class, on=on)
    app = advance(app, A.ACCEPT, R.SYSTEM, on=on).application
    app = advance(app, A.PASS_FORMAL, R.SYSTEM, on=on, decision=PASSED).application
    return advance(app, A.APPROVE_TO_NOTICE, R.REGISTRAR, on=on).application


# --- the table ----------------------------------------------------------------------------------


def test_every_non_final_state_has_an_owner_a_period_and_a_way_out() -> None:
    rules = load_registry_rules()
    for state in RegistrationState:
        if state in FINAL_STATES:
            assert not allowed_actions(state)
            continue
        policy = rules.states[state]
        assert policy.owner in ActorRole
        assert policy.working_days or state is S.PUBLIC_NOTICE
        assert A.WITHDRAW in allowed_actions(state)
    for transition in TRANSITIONS:
        assert transition.source not in FINAL_STATES
        assert transition.roles


def test_the_table_has_no_duplicate_rows() -> None:
    keys = [(t.source, t.action) for t in TRANSITIONS]
    assert len(keys) == len(set(keys))


def test_a_submission_is_due_in_one_working_day() -> None:
    step = submit(
        "A1",
        RegistrationType.INITIAL,
        applicant_id="alice",
        asset_id="R1",
        data_class=DataClass.ENTERPRISE,
        on=date(2026, 2, 13),  # the Friday before the Spring Festival
    )
    assert step.action is A.SUBMIT and step.source is None
    assert step.application.state is S.SUBMITTED
    assert step.application.due_on == date(2026, 2, 14)  # the make-up Saturday
    assert step.application.owner() is R.REGISTRAR


def test_the_standard_path_to_a_certificate() -> None:
    app = in_notice()
    assert app.state is S.PUBLIC_NOTICE
    assert app.track is Track.STANDARD
    assert app.notice_starts == MONDAY
    assert app.notice_ends == date(2026, 3, 5)  # 3 working days, the start day not counted
    assert app.due_on == date(2026, 3, 6)  # certified the next working day
    with pytest.raises(TransitionNotAllowed, match="until the end of 2026-03-05"):
        advance(app, A.CLOSE_NOTICE, R.SYSTEM, on=date(2026, 3, 5))
    step = advance(app, A.CLOSE_NOTICE, R.SYSTEM, on=date(2026, 3, 6))
    assert step.application.state is S.CERTIFIED
    assert step.application.due_on is None
    assert step.application.owner() is None
    assert step.rule == "REG-WORKFLOW"


def test_public_data_is_noticed_for_ten_working_days() -> None:
    app = in_notice(data_class=DataClass.PUBLIC)
    assert app.notice_ends == date(2026, 3, 16)
    assert notice_period(DataClass.PUBLIC, MONDAY) == (MONDAY, date(2026, 3, 16))


def test_a_notice_over_the_spring_festival_skips_the_holiday() -> None:
    app = in_notice(on=date(2026, 2, 12))  # Thursday
    assert app.notice_ends == date(2026, 2, 24)  # 13, 14 (make-up), 24


def test_a_notice_into_an_unpublished_year_is_refused_not_shortened() -> None:
    with pytest.raises(CalendarNotCovered):
        in_notice(data_class=DataClass.PUBLIC, on=date(2026, 12, 24))


def test_the_fast_track_skips_substantive_review() -> None:
    app = advance(new(data_class=DataClass.PUBLIC), A.ACCEPT, R.SYSTEM, on=MONDAY).application
    with pytest.raises(TransitionNotAllowed, match="fast track"):
        advance(app, A.FAST_TRACK_NOTICE, R.SYSTEM, on=MONDAY, decision=PASSED)
    step = advance(app, A.FAST_TRACK_NOTICE, R.SYSTEM, on=MONDAY, decision=FAST)
    assert step.application.state is S.PUBLIC_NOTICE
    assert step.application.track is Track.FAST
    with pytest.raises(ActorNotAllowed):
        advance(app, A.FAST_TRACK_NOTICE, R.REGISTRAR, on=MONDAY, decision=FAST)


def test_types_without_a_notice_are_registered_on_approval() -> None:
    app = new(RegistrationType.PLEDGE)
    app = advance(app, A.ACCEPT, R.SYSTEM, on=MONDAY).application
    app = advance(app, A.PASS_FORMAL, R.SYSTEM, on=MONDAY, decision=PASSED).application
    with pytest.raises(TransitionNotAllowed, match="has no public notice"):
        advance(app, A.APPROVE_TO_NOTICE, R.REGISTRAR, on=MONDAY)
    assert advance(app, A.APPROVE, R.REGISTRAR, on=MONDAY).application.state is S.CERTIFIED
    release = advance(new(RegistrationType.PLEDGE_RELEASE), A.ACCEPT, R.SYSTEM, on=MONDAY)
    fast = advance(release.application, A.FAST_TRACK_REGISTER, R.SYSTEM, on=MONDAY, decision=FAST)
    assert fast.application.state is S.CERTIFIED


def test_a_type_with_a_notice_cannot_skip_it() -> None:
    app = advance(new(), A.ACCEPT, R.SYSTEM, on=MONDAY).application
    app = advance(app, A.PASS_FORMAL, R.SYSTEM, on=MONDAY, decision=PASSED).application
    with pytest.raises(TransitionNotAllowed, match="needs a public notice"):
        advance(app, A.APPROVE, R.REGISTRAR, on=MONDAY)


def test_formal_review_follows_the_decision() -> None:
    app = advance(new(), A.ACCEPT, R.SYSTEM, on=MONDAY).application
    with pytest.raises(TransitionNotAllowed, match="needs Passed"):
        advance(app, A.PASS_FORMAL, R.REGISTRAR, on=MONDAY, decision=decision(Outcome.REFUSE))
    with pytest.raises(TransitionNotAllowed):
        advance(app, A.PASS_FORMAL, R.SYSTEM, on=MONDAY)
    refused = advance(app, A.REFUSE_FORMAL, R.SYSTEM, on=MONDAY, decision=decision(Outcome.REFUSE))
    assert refused.application.state is S.REFUSED
    with pytest.raises(InvalidRegistration):  # a registrar refuses with a reason
        advance(app, A.REFUSE_FORMAL, R.REGISTRAR, on=MONDAY)
    step = advance(app, A.RETURN_FORMAL, R.REGISTRAR, on=MONDAY, reason="Sample file missing.")
    assert step.application.state is S.RETURNED
    assert step.reason == "Sample file missing."


def test_roles_are_enforced() -> None:
    app = new()
    with pytest.raises(ActorNotAllowed) as exc:
        advance(app, A.ACCEPT, R.APPLICANT, on=MONDAY)
    assert exc.value.rule == "REG-WORKFLOW"
    assert "Registrar, System" in str(exc.value)  # labels, not codes
    assert exc.value.params["roles"] == "registrar, system"  # the codes stay in the params
    with pytest.raises(ActorNotAllowed):
        advance(app, A.WITHDRAW, R.APPLICANT, on=MONDAY, actor_id="mallory")
    assert advance(app, A.WITHDRAW, R.APPLICANT, on=MONDAY, actor_id="alice").application.final


def test_an_impossible_action_lists_what_is_possible() -> None:
    with pytest.raises(TransitionNotAllowed) as exc:
        advance(new(), A.APPROVE, R.REGISTRAR, on=MONDAY)
    assert "Possible now: Accept, Withdraw" in str(exc.value)


def test_nothing_happens_to_a_final_application() -> None:
    app = advance(new(), A.WITHDRAW, R.APPLICANT, on=MONDAY).application
    for action in Action:
        with pytest.raises(TransitionNotAllowed, match="already Withdrawn"):
            advance(app, action, R.ADMINISTRATOR, on=MONDAY, target=S.FORMAL_REVIEW, reason="x")


def test_returned_and_resubmitted() -> None:
    app = advance(new(), A.ACCEPT, R.SYSTEM, on=MONDAY).application
    app = advance(
        app, A.RETURN_FORMAL, R.SYSTEM, on=MONDAY, decision=decision(Outcome.RETURN)
    ).application
    assert app.owner() is R.APPLICANT
    assert app.due_on == CAL.add_working_days(MONDAY, 20)
    back = advance(app, A.RESUBMIT, R.APPLICANT, on=date(2026, 3, 9), actor_id="alice")
    assert back.application.state is S.SUBMITTED
    assert back.application.excluded_days == 5  # a week waiting on the applicant


# --- objections ---------------------------------------------------------------------------------


def test_an_objection_during_the_notice_pauses_the_target() -> None:
    app = in_notice()
    objection, step = lodge_objection(
        app, objection_id="O1", objector_id="carol", grounds=GROUNDS, on=date(2026, 3, 4)
    )
    assert step is not None
    app = step.application
    assert app.state is S.OBJECTION
    assert app.due_on == date(2026, 3, 11)  # 5 working days to decide
    # A second objection during the notice joins the first.
    second, none = lodge_objection(
        app, objection_id="O2", objector_id="dave", grounds=GROUNDS, on=date(2026, 3, 5)
    )
    assert none is None
    first_decided = decide_objection(
        objection, app, substantiated=False, reason="Contract shows alice's title.",
        role=R.REGISTRAR, on=date(2026, 3, 9), open_after=1,
    )  # fmt: skip
    assert first_decided.action is None  # O2 is still open
    decided = decide_objection(
        second, app, substantiated=False, reason="No evidence of prior collection.",
        role=R.REGISTRAR, on=date(2026, 3, 10), open_after=0,
    )  # fmt: skip
    assert decided.outcome is ObjectionOutcome.DISMISSED
    assert decided.notify == {"dave", "alice"}
    assert not decided.credit_event
    assert decided.action is A.DISMISS_OBJECTIONS
    with pytest.raises(TransitionNotAllowed, match="still undecided"):
        advance(app, A.DISMISS_OBJECTIONS, R.REGISTRAR, on=date(2026, 3, 10), open_objections=1)
    back = advance(app, A.DISMISS_OBJECTIONS, R.REGISTRAR, on=date(2026, 3, 10)).application
    assert back.state is S.PUBLIC_NOTICE
    assert back.notice_ends == date(2026, 3, 5)  # the notice keeps its dates
    assert back.excluded_days == 4  # 5, 6, 9, 10 March in objection
    assert back.target_on() == CAL.add_working_days(MONDAY, 10 + 4)
    assert advance(back, A.CLOSE_NOTICE, R.SYSTEM, on=date(2026, 3, 10)).application.final


def test_a_substantiated_objection_refuses_and_tells_the_objector() -> None:
    app = in_notice()
    objection, step = lodge_objection(
        app, objection_id="O1", objector_id="carol", grounds=GROUNDS, on=MONDAY
    )
    assert step is not None
    decided = decide_objection(
        objection, step.application, substantiated=True, reason="carol's prior registration.",
        role=R.REGISTRAR, on=date(2026, 3, 3), open_after=0,
    )  # fmt: skip
    assert decided.action is A.UPHOLD_OBJECTION
    assert decided.credit_event
    assert "carol" in decided.notify
    refused = advance(
        step.application,
        A.UPHOLD_OBJECTION,
        R.REGISTRAR,
        on=date(2026, 3, 3),
        reason=decided.reason,
    )
    assert refused.application.state is S.REFUSED


def test_an_objection_with_no_grounds_is_refused() -> None:
    with pytest.raises(ObjectionNotAdmissible) as exc:
        lodge_objection(
            in_notice(),
            objection_id="O1",
            objector_id="carol",
            grounds=Grounds(frozenset(), "", ()),
            on=MONDAY,
        )
    assert exc.value.rule == "REG-OBJECTION-GROUNDS"
    assert "must give its grounds" in str(exc.value)


def test_objections_outside_the_notice_or_by_the_applicant_are_refused() -> None:
    app = in_notice()
    with pytest.raises(
        ObjectionNotAdmissible, match="ran from 2026-03-02 to the end of 2026-03-05"
    ):
        lodge_objection(
            app, objection_id="O1", objector_id="carol", grounds=GROUNDS, on=date(2026, 3, 6)
        )
    with pytest.raises(ObjectionNotAdmissible, match="its own application"):
        lodge_objection(app, objection_id="O1", objector_id="alice", grounds=GROUNDS, on=MONDAY)
    with pytest.raises(ObjectionNotAdmissible, match="not in public notice") as exc:
        lodge_objection(new(), objection_id="O1", objector_id="carol", grounds=GROUNDS, on=MONDAY)
    assert exc.value.rule == "REG-OBJECTION-PERIOD"


def test_only_a_registrar_decides_an_objection_and_with_a_reason() -> None:
    app = in_notice()
    objection, step = lodge_objection(
        app, objection_id="O1", objector_id="carol", grounds=GROUNDS, on=MONDAY
    )
    assert step is not None
    with pytest.raises(ActorNotAllowed):
        decide_objection(
            objection, step.application, substantiated=False, reason="x", role=R.APPLICANT,
            on=MONDAY, open_after=0,
        )  # fmt: skip
    with pytest.raises(InvalidRegistration):
        decide_objection(
            objection, step.application, substantiated=False, reason="  ", role=R.REGISTRAR,
            on=MONDAY, open_after=0,
        )  # fmt: skip


# --- force, overdue, plan -----------------------------------------------------------------------


def test_an_administrator_forces_with_a_reason() -> None:
    app = advance(new(), A.ACCEPT, R.SYSTEM, on=MONDAY).application
    with pytest.raises(ActorNotAllowed):
        advance(app, A.FORCE, R.REGISTRAR, on=MONDAY, target=S.REFUSED, reason="stuck")
    with pytest.raises(InvalidRegistration) as exc:
        advance(app, A.FORCE, R.ADMINISTRATOR, on=MONDAY, target=S.REFUSED)
    assert exc.value.rule == "REG-FORCE"
    with pytest.raises(TransitionNotAllowed):
        advance(app, A.FORCE, R.ADMINISTRATOR, on=MONDAY, target=S.CERTIFIED, reason="hurry")
    with pytest.raises(TransitionNotAllowed):
        advance(app, A.FORCE, R.ADMINISTRATOR, on=MONDAY, target=S.FORMAL_REVIEW, reason="x")
    step = advance(
        app,
        A.FORCE,
        R.ADMINISTRATOR,
        on=MONDAY,
        actor_id="admin-1",
        target=S.SUBSTANTIVE_REVIEW,
        reason="Scanner outage: grade entered by hand.",
    )
    assert step.forced and step.rule == "REG-FORCE"
    assert step.application.state is S.SUBSTANTIVE_REVIEW
    assert step.as_dict()["reason"] == "Scanner outage: grade entered by hand."


def test_forcing_into_the_notice_starts_a_full_notice() -> None:
    app = in_notice()
    _, step = lodge_objection(app, objection_id="O1", objector_id="c", grounds=GROUNDS, on=MONDAY)
    assert step is not None
    later = date(2026, 3, 10)
    forced = advance(
        step.application,
        A.FORCE,
        R.ADMINISTRATOR,
        on=later,
        target=S.PUBLIC_NOTICE,
        reason="Objection withdrawn by the objector.",
    ).application
    assert forced.notice_starts == later
    assert forced.notice_ends == CAL.add_working_days(later, 3)


@pytest.mark.parametrize("target", sorted(FORCE_TARGETS))
def test_every_force_target_is_reachable_from_submitted(target: RegistrationState) -> None:
    if target is S.SUBMITTED:  # pragma: no cover - not a target
        return
    step = advance(new(), A.FORCE, R.ADMINISTRATOR, on=MONDAY, target=target, reason="test")
    assert step.application.state is target
    assert (step.application.due_on is None) == (target in FINAL_STATES)


def test_the_overdue_queue() -> None:
    fresh = new()
    late = dataclasses.replace(advance(new(), A.ACCEPT, R.SYSTEM, on=MONDAY).application, id="A2")
    returned = advance(
        dataclasses.replace(late, id="A3"),
        A.RETURN_FORMAL,
        R.SYSTEM,
        on=MONDAY,
        decision=decision(Outcome.RETURN),
    ).application
    today = date(2026, 3, 4)
    assert is_overdue(late, today)
    assert not is_overdue(returned, today)
    queue = overdue([returned, late, fresh], today)
    assert [i.application.id for i in queue] == ["A1", "A2"]
    assert queue[0].working_days_late == 1
    assert queue[0].action is None  # escalated
    much_later = date(2026, 4, 30)
    withdrawn = [i for i in overdue([returned], much_later)]
    assert withdrawn[0].action is A.WITHDRAW
    step = advance(returned, A.WITHDRAW, R.SYSTEM, on=much_later)
    assert step.application.state is S.WITHDRAWN


def test_plans_against_the_ten_working_day_target() -> None:
    standard = plan(RegistrationType.INITIAL, DataClass.ENTERPRISE, Track.STANDARD, MONDAY)
    assert [s for s, _ in standard.stages] == [
        S.SUBMITTED,
        S.FORMAL_REVIEW,
        S.SUBSTANTIVE_REVIEW,
        S.PUBLIC_NOTICE,
    ]
    assert standard.finishes_on == CAL.add_working_days(MONDAY, 9)
    assert standard.meets_target
    fast_public = plan(RegistrationType.INITIAL, DataClass.PUBLIC, Track.FAST, MONDAY)
    assert S.SUBSTANTIVE_REVIEW not in dict(fast_public.stages)
    assert fast_public.finishes_on == CAL.add_working_days(MONDAY, 13)
    assert not fast_public.meets_target  # a 10-working-day notice alone fills the target
    pledge_plan = plan(RegistrationType.PLEDGE, DataClass.ENTERPRISE, Track.STANDARD, MONDAY)
    assert S.PUBLIC_NOTICE not in dict(pledge_plan.stages)


def test_due_dates_come_from_the_rules() -> None:
    assert due_on(S.SUBSTANTIVE_REVIEW, MONDAY) == date(2026, 3, 5)
    assert due_on(S.CERTIFIED, MONDAY) is None
    with pytest.raises(ValueError, match="needs its end"):
        due_on(S.PUBLIC_NOTICE, MONDAY)


@given(
    actions=st.lists(
        st.tuples(
            st.sampled_from(list(Action)),
            st.sampled_from(list(ActorRole)),
            st.sampled_from(list(RegistrationState)),
            st.integers(min_value=0, max_value=3),
        ),
        max_size=30,
    )
)
def test_random_actions_never_leave_an_application_without_an_owner(
    actions: list[tuple[Action, ActorRole, RegistrationState, int]],
) -> None:
    """Whatever is tried, an application is final or has an owner and a due date, its notice
    has an end whenever it is in notice or objection, and refusals are registry errors."""
    app = new()
    day = MONDAY
    for action, role, target, days in actions:
        day = CAL.add_working_days(day, days)
        outcome = Outcome.REFUSE if action is A.REFUSE_FORMAL else Outcome.PASS
        if action is A.RETURN_FORMAL:
            outcome = Outcome.RETURN
        with contextlib.suppress(TransitionNotAllowed, ActorNotAllowed, ObjectionNotAdmissible):
            app = advance(
                app,
                action,
                role,
                on=day,
                actor_id="carol" if role is R.OBJECTOR else "alice",
                reason="because",
                decision=decision(outcome, Track.FAST),
                target=target,
            ).application
        if app.final:
            assert app.due_on is None and app.owner() is None
        else:
            assert app.due_on is not None and app.due_on >= app.since
            assert app.owner() is not None
        if app.state in (S.PUBLIC_NOTICE, S.OBJECTION):
            assert app.notice_ends is not None
        assert app.excluded_days >= 0
