"""The exchange's vocabulary and state machines (pure: no web framework, no ORM).

Listings (挂牌), orders, negotiations (协议交易), auctions (竞价) and contracts each move through
a small state machine; the transitions are data here and every service checks a move against
them. Contracts follow ONE state machine whatever the trade (issue 7): requested → offered →
accepted → signed → active → completed, or terminated / disputed. Each non-final contract state
has a deadline and an action when it passes (``CONTRACT_DEADLINES``), so no contract can get
stuck.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from datafactor.errors import N_


class ListingKind(StrEnum):
    """The tradable objects of the Guangxi trading rules (数据产品、数据服务、数据工具)."""

    PRODUCT = "product"
    SERVICE = "service"
    TOOL = "tool"


class PriceModel(StrEnum):
    ONE_OFF = "one_off"  # 一次性买断（按许可份数）
    SUBSCRIPTION = "subscription"  # 订阅（按周期）
    METERED = "metered"  # 按次计费
    FREE = "free"  # 免费


class Channel(StrEnum):
    DOWNLOAD = "download"  # 文件下载
    API = "api"  # 接口调用
    SANDBOX = "sandbox"  # 隐私计算沙箱（可用不可见）


class Placement(StrEnum):
    MALL = "mall"  # 数据商城
    ZONE = "zone"  # 专区（须运营机构批准）


class ListingState(StrEnum):
    DRAFT = "draft"  # 草稿
    SUBMITTED = "submitted"  # 已提交，待合规评估
    ASSESSED = "assessed"  # 合规评估已签署，待交易所审核
    RETURNED = "returned"  # 退回修改
    PUBLISHED = "published"  # 已挂牌
    REFUSED = "refused"  # 不予挂牌
    SUSPENDED = "suspended"  # 暂停交易
    DELISTED = "delisted"  # 已摘牌


LISTING_TRANSITIONS: Final[dict[ListingState, frozenset[ListingState]]] = {
    ListingState.DRAFT: frozenset({ListingState.SUBMITTED, ListingState.DELISTED}),
    ListingState.SUBMITTED: frozenset(
        {ListingState.ASSESSED, ListingState.RETURNED, ListingState.REFUSED}
    ),
    ListingState.ASSESSED: frozenset(
        {ListingState.PUBLISHED, ListingState.RETURNED, ListingState.REFUSED}
    ),
    ListingState.RETURNED: frozenset({ListingState.SUBMITTED, ListingState.DELISTED}),
    ListingState.PUBLISHED: frozenset({ListingState.SUSPENDED, ListingState.DELISTED}),
    ListingState.SUSPENDED: frozenset({ListingState.PUBLISHED, ListingState.DELISTED}),
    ListingState.REFUSED: frozenset(),
    ListingState.DELISTED: frozenset(),
}


class OrderState(StrEnum):
    FROZEN = "frozen"  # 已下单，款项已冻结
    CONTRACTED = "contracted"  # 合同已生成
    CANCELLED = "cancelled"  # 已取消（解冻）


class NegotiationState(StrEnum):
    OPEN = "open"  # 磋商中
    AGREED = "agreed"  # 已达成（生成合同）
    WITHDRAWN = "withdrawn"  # 已撤回
    EXPIRED = "expired"  # 已过期


class AuctionState(StrEnum):
    SCHEDULED = "scheduled"  # 未开始
    OPEN = "open"  # 竞价中
    CLOSED = "closed"  # 已成交
    UNSOLD = "unsold"  # 流拍
    CANCELLED = "cancelled"  # 已取消


class BidStatus(StrEnum):
    LEADING = "leading"  # 领先
    OUTBID = "outbid"  # 被超越（保证金保留至竞价结束）
    WON = "won"  # 中标
    LOST = "lost"  # 未中标（保证金已退）


class TradeKind(StrEnum):
    MALL = "mall"  # 商城购买
    AGREEMENT = "agreement"  # 协议交易
    AUCTION = "auction"  # 竞价交易


class ContractState(StrEnum):
    REQUESTED = "requested"  # 已申请
    OFFERED = "offered"  # 已要约
    ACCEPTED = "accepted"  # 已承诺，待签署
    SIGNED = "signed"  # 双方已签署
    ACTIVE = "active"  # 履行中（交付）
    COMPLETED = "completed"  # 已完成（已验收结算）
    TERMINATED = "terminated"  # 已终止
    DISPUTED = "disputed"  # 争议中


class ContractAction(StrEnum):
    OFFER = "offer"
    ACCEPT = "accept"
    SIGN = "sign"
    ACTIVATE = "activate"
    DELIVER = "deliver"
    CONFIRM = "confirm"  # the buyer accepts delivery (验收)
    COMPLETE = "complete"
    TERMINATE = "terminate"
    DISPUTE = "dispute"
    RESOLVE = "resolve"
    EXPIRE = "expire"
    ESCALATE = "escalate"  # a dispute not decided in time is reported to the regulators


CONTRACT_TRANSITIONS: Final[dict[ContractState, frozenset[ContractState]]] = {
    ContractState.REQUESTED: frozenset({ContractState.OFFERED, ContractState.TERMINATED}),
    ContractState.OFFERED: frozenset({ContractState.ACCEPTED, ContractState.TERMINATED}),
    ContractState.ACCEPTED: frozenset({ContractState.SIGNED, ContractState.TERMINATED}),
    ContractState.SIGNED: frozenset({ContractState.ACTIVE, ContractState.TERMINATED}),
    ContractState.ACTIVE: frozenset(
        {ContractState.COMPLETED, ContractState.TERMINATED, ContractState.DISPUTED}
    ),
    ContractState.DISPUTED: frozenset({ContractState.COMPLETED, ContractState.TERMINATED}),
    ContractState.COMPLETED: frozenset(),
    ContractState.TERMINATED: frozenset(),
}
FINAL_CONTRACT_STATES: Final = frozenset({ContractState.COMPLETED, ContractState.TERMINATED})

# What happens when a state's deadline passes (the deadline lengths are in rules/exchange.yaml):
# an unanswered request or offer, or an unsigned contract, is terminated and the escrow released;
# a signed contract becomes active (delivery starts) at once; an active contract whose delivery
# the buyer has not accepted in time is deemed accepted (视为验收) and completed — settled; a
# dispute the exchange has not resolved in time is escalated (the regulator is told) and its
# deadline extended: money never moves on a timer while a dispute is open.
CONTRACT_DEADLINES: Final[dict[ContractState, ContractAction]] = {
    ContractState.REQUESTED: ContractAction.EXPIRE,
    ContractState.OFFERED: ContractAction.EXPIRE,
    ContractState.ACCEPTED: ContractAction.EXPIRE,
    ContractState.SIGNED: ContractAction.ACTIVATE,
    ContractState.ACTIVE: ContractAction.COMPLETE,
    ContractState.DISPUTED: ContractAction.RESOLVE,
}

LISTING_STATE_LABELS: Final = {
    ListingState.DRAFT: N_("Draft"),
    ListingState.SUBMITTED: N_("Awaiting compliance assessment"),
    ListingState.ASSESSED: N_("Awaiting the exchange's review"),
    ListingState.RETURNED: N_("Returned for changes"),
    ListingState.PUBLISHED: N_("Listed"),
    ListingState.REFUSED: N_("Refused"),
    ListingState.SUSPENDED: N_("Suspended"),
    ListingState.DELISTED: N_("Delisted"),
}
CONTRACT_STATE_LABELS: Final = {
    ContractState.REQUESTED: N_("Requested"),
    ContractState.OFFERED: N_("Offered"),
    ContractState.ACCEPTED: N_("Accepted, awaiting signatures"),
    ContractState.SIGNED: N_("Signed"),
    ContractState.ACTIVE: N_("In performance"),
    ContractState.COMPLETED: N_("Completed"),
    ContractState.TERMINATED: N_("Terminated"),
    ContractState.DISPUTED: N_("In dispute"),
}
PRICE_MODEL_LABELS: Final = {
    PriceModel.ONE_OFF: N_("One-off licence"),
    PriceModel.SUBSCRIPTION: N_("Subscription"),
    PriceModel.METERED: N_("Per call"),
    PriceModel.FREE: N_("Free"),
}
CHANNEL_LABELS: Final = {
    Channel.DOWNLOAD: N_("Download"),
    Channel.API: N_("API pull"),
    Channel.SANDBOX: N_("Sandbox (usable, not visible)"),
}
TRADE_KIND_LABELS: Final = {
    TradeKind.MALL: N_("Mall purchase"),
    TradeKind.AGREEMENT: N_("Agreement trade"),
    TradeKind.AUCTION: N_("Auction"),
}


def may_move(machine: Mapping[Any, frozenset[Any]], source: StrEnum, target: StrEnum) -> bool:
    """Whether ``source → target`` is a transition of ``machine``."""
    return target in machine.get(source, frozenset())


def number(prefix: str, year: int, serial: int) -> str:
    """A human number like ``GX-DC-2026-000123`` (``prefix`` is ``DL`` listing, ``DO`` order,
    ``DC`` contract, ``DA`` auction, ``DN`` negotiation)."""
    return f"GX-{prefix}-{year}-{serial:06d}"
