"""The demo province's electricity data trust (数据信托), loaded through the services.

The work plan asks for enterprise-data authorisation "优先在电力数据应用领域" (桂政办发〔2023〕51号,
annex, task 1). Here the power grid (广西电网, settlor) registers its households' monthly
electricity data (a de-identified data set generated below: hashed account numbers, no names)
and puts it in trust with the data custodian 广西数安数据托管 (trustee, 5 % fee) for itself and two
household representatives (beneficiaries: the grid 70 %, 韦小明 and 黄丽娟 15 % each of the rest);
the trustee grants the bank 邕江银行 sandbox-only aggregate use for credit risk (the
``sandbox-aggregates`` template narrowed to the deed's scope), its licence is certified, and the
trust's income — the bank's fee and a share of a product's revenue — is recorded and split.

Idempotent: every object is found before it is made (the data set by name, the asset by name,
the registration by asset and type, the deed by title, the grant by grantee and asset, income by
date and amount), and an object found half-way is taken on from the state it is in. The second
load writes nothing. Dates are fixed in 2026 (a registry year the holiday calendar covers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from datafactor import dataplane, registry
from datafactor.db import Database
from datafactor.demo.pilots import REGISTRAR, DemoDataset, DemoRegistration, Rows
from datafactor.demo.province import PARTIES_BY_KEY
from datafactor.identity import find_party_id
from datafactor.permissions import Principal
from datafactor.policy.templates import get_template
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import IncomeSource, Share, policy_within
from datafactor.settings import Settings

_COUNTIES: Final = ("450102", "450103", "450203", "450305", "450502", "451481")


# Enough households that the sandbox's noisy aggregates by county are shown: with
# differential privacy a group is released only above a noisy threshold of about a hundred
# households (docs/sandbox.md, "Output controls").
HOUSEHOLD_COUNT: Final = 3_000


def _households(rng: random.Random) -> Rows:
    rows: Rows = []
    for _ in range(HOUSEHOLD_COUNT):
        account = f"JM-{rng.getrandbits(40):010x}"  # a hashed account number, not the real one
        county = rng.choice(_COUNTIES)
        base = rng.uniform(60, 420)
        for month in ("2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12"):
            rows.append(
                [
                    account,
                    county,
                    month,
                    round(base * rng.uniform(0.8, 1.4), 1),
                    round(rng.uniform(0.3, 0.7), 2),
                    rng.choice(("按期缴费", "按期缴费", "按期缴费", "按期缴费", "逾期≤30天")),
                ]
            )
    return rows


HOUSEHOLDS: Final = DemoDataset(
    key="grid-households",
    party="power-grid",
    user="grid.data",
    name="居民用户月度用电与缴费数据",
    name_en="Households' monthly electricity consumption and payment",
    description="脱敏户号下居民用户的月度用电量、峰谷比与缴费情况，用于普惠金融与公共服务（演示数据，合成生成）。",
    domain="energy",
    update_frequency="monthly",
    filename="grid_households_monthly.csv",
    header=("脱敏户号", "所在地区代码", "月份", "用电量千瓦时", "峰谷用电比", "缴费情况"),
    generate=_households,
    seed=4611,
)
ASSET_NAME: Final = "电网居民用户用电行为数据"
RIGHT_SCOPE: Final[dict[str, Any]] = {
    "purposes": ["credit_finance", "research", "public_welfare", "industry"],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["api", "sandbox"],
}
REGISTRATION: Final = DemoRegistration(
    key="grid-households",
    type="initial",
    user="grid.admin",
    asset="grid-households",
    submitted_on=date(2026, 6, 1),
    scope=RIGHT_SCOPE,
)

DEED_TITLE: Final = "广西电网居民用电数据信托"
DEED_PURPOSE: Final = (
    "受托人以自己的名义，在沙箱内“可用不可见”地授权金融机构等使用居民用电数据，"
    "支持普惠金融与公共服务；收益按份额分配给委托人和居民用户代表。"
)
DEED_SCOPE: Final[dict[str, Any]] = {
    "purposes": ["credit_finance", "research", "public_welfare"],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["sandbox"],
}
DRAFTED: Final = date(2026, 6, 15)
ACCEPTED: Final = date(2026, 6, 16)
TERM_START: Final = date(2026, 7, 1)
TERM_END: Final = date(2029, 6, 30)
FEE_BP: Final = 500
SHARES: Final = (("power-grid", 7000), ("person-wei", 1500), ("person-huang", 1500))

GRANTED: Final = date(2026, 7, 6)
GRANT_END: Final = date(2027, 6, 30)
GRANT_FEE_FEN: Final = 5_000_000  # 50,000.00 yuan for the year
INCOME: Final = (
    # (received on, fen, source, description)
    (date(2026, 8, 3), GRANT_FEE_FEN, "grant_fee", "邕江银行沙箱聚合使用授权费（首年）"),
    (date(2026, 10, 8), 1_000_001, "other", "“电力看经济”指数产品收入分成（第三季度）"),
)


@dataclass
class TrustLoadReport:
    """What this load did (a second load does nothing)."""

    steps: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)


class DemoTrustError(RuntimeError):
    """The demo trust no longer goes through the rules (a rule or the data changed)."""


def _party(session: Any, key: str) -> str:
    demo = PARTIES_BY_KEY[key]
    found = find_party_id(session, demo.code_type, demo.country, demo.code)
    if found is None:
        raise DemoTrustError(f"demo party {key} is missing: load the demo parties first")
    return str(found)


def _asset(
    db: Database, settings: Settings, people: dict[str, Principal], report: TrustLoadReport
) -> tuple[str, str | None]:
    """The households' data set (generated, scanned) and the grid's asset declared from it:
    (asset id, fingerprint)."""
    from datafactor import discovery
    from datafactor.demo.loader import LoadReport, _load_dataset

    who = people[HOUSEHOLDS.user]
    store = dataplane.blob_store(settings)
    loaded = LoadReport()
    version_id = _load_dataset(db, store, who, HOUSEHOLDS, loaded)
    if loaded.scans_run:
        discovery.run_pending(db, settings, store)
        report.steps.append("dataset")
    with db.read() as session:
        rows, _ = registry.list_assets(session, who, limit=500, offset=0)
        found = next((a for a in rows if a.name == ASSET_NAME and a.party_id == who.party_id), None)
    if found is not None:
        return str(found.id), found.fingerprint
    with db.write() as session:
        asset = registry.create_asset(
            session,
            who,
            registry.AssetDraft(
                kind=registry.AssetKind.RESOURCE,
                name=ASSET_NAME,
                name_en="Grid households' consumption behaviour",
                data_class=registry.DataClass.ENTERPRISE,
                description=HOUSEHOLDS.description,
                domain=HOUSEHOLDS.domain,
                source_statement=(
                    "广西电网公司计量自动化系统与营销系统自行采集，户号已脱敏，不含姓名、证件号"
                ),
                collection_method="计量自动化系统自动采集",
                update_frequency=HOUSEHOLDS.update_frequency,
                coverage="2025-07 至 2025-12",
                region="450000",
                volume=f"{HOUSEHOLDS.row_count()} 行",
                delivery_mode="sandbox",
                field_schema=tuple({"name": column} for column in HOUSEHOLDS.header),
                version_id=version_id,
            ),
        )
        report.steps.append("asset")
        return str(asset.id), asset.fingerprint


def _register(
    db: Database,
    settings: Settings,
    people: dict[str, Principal],
    asset_id: str,
    fingerprint: str | None,
    report: TrustLoadReport,
) -> None:
    """The grid's holding right on the households' data, taken to its certificate."""
    from datafactor.demo.loader import _application_draft, _find_application, _next_step

    registrar, applicant = people[REGISTRAR], people[REGISTRATION.user]
    issuer = registry.issuer_for(settings)
    with db.read() as session:
        found = _find_application(session, registrar, applicant, asset_id, REGISTRATION)
        application_id = None if found is None else str(found.id)
    ours = application_id is None
    while (step := _next_step(db, registrar, REGISTRATION, application_id, ours=ours)) is not None:
        with db.write() as session:
            if step.kind == "submit":
                draft = _application_draft(session, REGISTRATION, asset_id, fingerprint, None)
                application_id = str(
                    registry.submit_application(
                        session, applicant, draft, issuer=issuer, today=step.on
                    ).id
                )
            else:
                assert application_id is not None
                registry.act(
                    session, registrar, application_id, step.action, issuer=issuer, today=step.on
                )
        report.steps.append(f"registration:{step.kind}")


def _deed(
    db: Database, people: dict[str, Principal], asset_id: str, report: TrustLoadReport
) -> str:
    grid, custodian = people["grid.admin"], people["custodian.admin"]
    with db.read() as session:
        rows, _ = services.list_deeds(
            session, grid, services.DeedQuery(role="settlor"), limit=500, offset=0
        )
        found = next((d for d in rows if d.title == DEED_TITLE), None)
        trustee_id = _party(session, "custodian")
        shares = tuple(Share(_party(session, key), bp) for key, bp in SHARES)
    if found is None:
        with db.write() as session:
            found = services.draft_deed(
                session,
                grid,
                services.DeedDraft(
                    title=DEED_TITLE,
                    purpose=DEED_PURPOSE,
                    trustee_id=trustee_id,
                    asset_ids=(asset_id,),
                    scope=DEED_SCOPE,
                    term_start=TERM_START,
                    term_end=TERM_END,
                    trustee_fee_bp=FEE_BP,
                    beneficiaries=shares,
                ),
                today=DRAFTED,
            )
            report.steps.append("deed:draft")
    deed_id, state = str(found.id), found.state
    if state == "draft":
        with db.write() as session:
            services.sign_deed(session, grid, deed_id, today=DRAFTED)
        report.steps.append("deed:sign")
        state = "signed"
    if state == "signed":
        with db.write() as session:
            services.accept_deed(session, custodian, deed_id, today=ACCEPTED)
        report.steps.append("deed:accept")
        state = "accepted"
    if state == "accepted":
        with db.write() as session:
            services.sweep(session, today=TERM_START)
        report.steps.append("deed:activate")
    return deed_id


def _grant(
    db: Database,
    settings: Settings,
    people: dict[str, Principal],
    deed_id: str,
    asset_id: str,
    report: TrustLoadReport,
) -> str:
    """The trustee's sandbox grant to the bank, and its licence taken to the certificate."""
    from datafactor.policy import grants

    custodian, registrar = people["custodian.admin"], people[REGISTRAR]
    issuer = registry.issuer_for(settings)
    with db.read() as session:
        bank = _party(session, "bank")
        existing = [
            g
            for g in services.deed_grants(session, deed_id)
            if g.grantee_id == bank and g.asset_id == asset_id
        ]
    if existing:
        grant = existing[0]
    else:
        policy = policy_within(
            get_template("sandbox-aggregates").document(), DEED_SCOPE, purposes=["credit_finance"]
        )
        with db.write() as session:
            grant = services.grant_use(
                session,
                custodian,
                deed_id,
                grants.GrantDraft(
                    asset_id=asset_id,
                    grantee_id=bank,
                    policy=policy,
                    term_start=GRANTED,
                    term_end=GRANT_END,
                    purpose_note="小微企业主及农户信贷风控：按县域、月份聚合的用电与缴费特征（沙箱内，可用不可见）",
                    fee_fen=GRANT_FEE_FEN,
                ),
                issuer=issuer,
                today=GRANTED,
            )
        report.steps.append("grant:offer")
    grant_id, application_id = str(grant.id), grant.licence_application_id
    if application_id is None:
        return grant_id
    # The licence in the grid's name goes through the registry like any other.
    with db.read() as session:
        row = registry.get_application(session, registrar, application_id)
        state, since, ends = row.state, row.state_since, row.notice_ends
    if state == "substantive_review":
        with db.write() as session:
            row = registry.act(
                session,
                registrar,
                application_id,
                registry.Action.APPROVE_TO_NOTICE,
                issuer=issuer,
                today=registry.add_working_days(since, 1),
            )
            state, ends = row.state, row.notice_ends
        report.steps.append("grant:notice")
    if state == "public_notice" and ends is not None:
        with db.write() as session:
            registry.act(
                session,
                registrar,
                application_id,
                registry.Action.CLOSE_NOTICE,
                issuer=issuer,
                today=registry.add_working_days(ends, 1),
            )
        report.steps.append("grant:certified")
    return grant_id


def _income(
    db: Database, people: dict[str, Principal], deed_id: str, grant_id: str, report: TrustLoadReport
) -> None:
    custodian = people["custodian.admin"]
    with db.read() as session:
        recorded = {
            (v.income.received_on, v.income.amount_fen)
            for v in services.list_income(session, custodian, deed_id)
        }
    for received, fen, source, description in INCOME:
        if (received, fen) in recorded:
            continue
        draft = services.IncomeDraft(
            amount_fen=fen,
            received_on=received,
            source=IncomeSource(source),
            grant_id=grant_id if source == "grant_fee" else None,
            description=description,
        )
        with db.write() as session:
            services.record_income(session, custodian, deed_id, draft, today=received)
        report.steps.append(f"income:{received.isoformat()}")


def load_trusts(db: Database, settings: Settings) -> TrustLoadReport:
    """The grid's electricity data trust, after the registry pilots (see the module docstring)."""
    from datafactor.demo.loader import demo_principals

    report = TrustLoadReport()
    people = demo_principals(db)
    asset_id, fingerprint = _asset(db, settings, people, report)
    _register(db, settings, people, asset_id, fingerprint, report)
    deed_id = _deed(db, people, asset_id, report)
    grant_id = _grant(db, settings, people, deed_id, asset_id, report)
    _income(db, people, deed_id, grant_id, report)
    return report
