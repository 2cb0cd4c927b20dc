"""Listings (挂牌) and their review: what the exchange offers, who may see it, and whether it may
be bought now.

A listing offers a registered data product, service or tool (``registry.TRADABLE_KINDS``) whose
product-operation right the seller holds and whose certificate is active. The holder drafts it
(or a broker it names in ``broker_id`` prepares the draft on its behalf); the seller's
administrator submits it, confirming and signing the declaration and commitment (声明和承诺, text
and version in ``rules/exchange.yaml``); the automatic checks run and are stored as findings (a
failing one refuses the submission with every reason and rule id); a compliance assessor (a law
firm: service role ``compliance_assessor``) works through the checklist and signs its opinion;
the exchange operator approves (→ published, appended to the ledger), returns, refuses, and later
suspends, resumes or delists — never, but for suspending and delisting, a listing its own party
has an interest in (``review_conflict``: separation of duties, EXC-LST-SEPARATION) — every step
with its reasons, audited, in ``ExchangeListingEvent``,
and told to the seller. The listing is numbered ``GX-DL-<year>-<serial>`` (``exchange.serials``).

Search: ``search_text`` holds the listing's words normalised — NFKC, lower case, Latin words whole,
CJK runs as single characters and character bigrams — each wrapped in spaces, the title's words
before a ``#`` marker and the rest after it. A query is cut the same way; a listing matches when at
least half of the query's tokens occur in it (``LIKE '% tok %'``: the same SQL on both databases)
and ranks by how many match, twice for a match in the title. So 用电 finds 园区用电指数 (bigram
用电) and 园区指数 finds it too (园区, 指数: two of three).

The interface the trades use (orders, negotiation, auctions, contracts — layers above):

    tradable_listing(session, listing_id, *, buyer: Principal, on: date, lock: bool = False)
        -> ExchangeListing
        the published listing offered to ``buyer`` (its audience decides, even for a
        supervisor who sees every listing) that it may buy now, locked FOR UPDATE and re-read
        from the row when ``lock``; refused with the rule when it is not offered to the buyer
        (404), not listed or suspended, the seller is no longer verified,
        its certificate is no longer active (pledged among others) or the seller no longer
        holds the product-operation right, the registry has the right under an open title
        dispute (``registry.title_disputes``), the product is core data (never traded), the
        buyer is the seller, or the buyer is not verified — the checks the mall order's
        ``trade_listing`` runs too (``_check_tradable``). (The other prohibited-trade checks run
        at submission, approval and resumption.)
    open_dispute(session, listing, on) -> TitleDispute | None
        the open title dispute the registry has on the listing's right on ``on`` (what
        ``check_no_dispute`` refuses on, EXC-LST-DISPUTE), for the pages and the API to show
        before a trade: ``refusal()`` is the refusal, ``MSG_DISPUTE_NOTICE`` the notice.
    take_quantity(session, listing, quantity) -> None
        under the caller's row lock: take ``quantity`` licences of a limited listing (refused
        when fewer remain); nothing for an unlimited one.
    take_number(session, kind, prefix, year) -> str
        the next ``GX-<prefix>-<year>-<serial>`` number of ``kind`` (``exchange.serials``).
    visibility(session, viewer, states) -> ColumnElement[bool]
        which listings ``viewer`` may see, as a SQL condition (the auctions' list filters by it).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import re
import unicodedata
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import (
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from datafactor import audit, discovery, identity, inbox, ledger, registry
from datafactor.errors import N_, DomainError
from datafactor.exchange import serials
from datafactor.exchange.domain import (
    LISTING_STATE_LABELS,
    LISTING_TRANSITIONS,
    Channel,
    ListingState,
    Placement,
    PriceModel,
    may_move,
    number,
)
from datafactor.exchange.errors import (
    ExchangeError,
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.keys import PartyKeys
from datafactor.exchange.models import (
    ExchangeListing,
    ExchangeListingEvent,
    ExchangeListingReview,
    ExchangeOrder,
)
from datafactor.exchange.rulebook import exchange_rules
from datafactor.fastsql import Plan, Raw
from datafactor.permissions import Permission, Principal
from datafactor.policy import DF_NS, ODRL_CONTEXT, PolicyError, Prohibition, parse_policy
from datafactor.policy import Permission as PolicyPermission
from datafactor.policy import operation as public_operation
from datafactor.rulefiles import RuleSet

P = Permission
SERIAL_KIND: Final = "L"
NUMBER_PREFIX: Final = "DL"
INBOX_KIND: Final = "exchange.listing"
AUDIENCES: Final = ("public", "verified", "parties")
OUTCOMES: Final = ("pass", "fail", "na")
SYSTEM: Final = "exchange"
MAX_TITLE: Final = 200
MAX_SUMMARY: Final = 4000
MAX_TAG: Final = 32
MAX_REASON: Final = 2000
MAX_LINEAGE_DEPTH: Final = 8

# The service reading other domains' facts (party standing, discovery scans, public-data
# agreements) for the checks: read only, never a user.
_READER: Final = Principal(
    user_id="",
    username=SYSTEM,
    party_id="",
    party_kind="",
    roles=frozenset(),
    permissions=frozenset(
        {
            P.IDENTITY_PARTY_READ,
            P.IDENTITY_PARTY_READ_ALL,
            P.DATAPLANE_DATASET_READ_ALL,
            P.POLICY_GRANT_READ_ALL,
            P.POLICY_OPERATION_READ,
        }
    ),
    via="cli",
)

EVENT_LABELS: Final[dict[str, str]] = {
    "exchange:listing:create": N_("Listing drafted"),
    "exchange:listing:update": N_("Listing draft changed"),
    "exchange:listing:broker": N_("Listing broker named"),
    "exchange:listing:submit": N_("Listing submitted with the signed declaration"),
    "exchange:listing:assess": N_("Listing compliance assessment signed"),
    "exchange:listing:approve": N_("Listing approved and published"),
    "exchange:listing:return": N_("Listing returned for changes"),
    "exchange:listing:refuse": N_("Listing refused"),
    "exchange:listing:suspend": N_("Listing suspended"),
    "exchange:listing:resume": N_("Listing resumed"),
    "exchange:listing:delist": N_("Listing delisted"),
    "exchange:listing:withdraw": N_("Listing withdrawn by the seller"),
}
audit.register_action_labels(EVENT_LABELS)

# What each operator decision does: (the states it may start from, the state it leads to).
DECISIONS: Final[dict[str, tuple[frozenset[ListingState], ListingState]]] = {
    "approve": (frozenset({ListingState.ASSESSED}), ListingState.PUBLISHED),
    "return": (frozenset({ListingState.SUBMITTED, ListingState.ASSESSED}), ListingState.RETURNED),
    "refuse": (frozenset({ListingState.SUBMITTED, ListingState.ASSESSED}), ListingState.REFUSED),
    "suspend": (frozenset({ListingState.PUBLISHED}), ListingState.SUSPENDED),
    "resume": (frozenset({ListingState.SUSPENDED}), ListingState.PUBLISHED),
    "delist": (frozenset({ListingState.PUBLISHED, ListingState.SUSPENDED}), ListingState.DELISTED),
}
DECISION_LABELS: Final = {
    "approve": N_("Approve and publish"),
    "return": N_("Return for changes"),
    "refuse": N_("Refuse"),
    "suspend": N_("Suspend trading"),
    "resume": N_("Resume trading"),
    "delist": N_("Delist"),
}
# What the seller may do to its own listing, and from where.
SELLER_ENDS: Final[dict[str, tuple[frozenset[ListingState], ListingState]]] = {
    "withdraw": (frozenset({ListingState.DRAFT, ListingState.RETURNED}), ListingState.DELISTED),
    "delist": (frozenset({ListingState.PUBLISHED, ListingState.SUSPENDED}), ListingState.DELISTED),
}
AUDIENCE_LABELS: Final = {
    "public": N_("Everyone"),
    "verified": N_("Verified parties"),
    "parties": N_("Named parties only"),
}
PERIOD_LABELS: Final = {
    "month": N_("per month"),
    "quarter": N_("per quarter"),
    "year": N_("per year"),
}
STAGE_LABELS: Final = {
    "collection": N_("Collection"),
    "processing": N_("Processing"),
    "circulation": N_("Circulation"),
    "application": N_("Application"),
}
MODE_LABELS: Final = {"dividend": N_("Dividend (share of the net)"), "commission": N_("Commission")}
OUTCOME_LABELS: Final = {"pass": N_("Pass"), "fail": N_("Fail"), "na": N_("Not applicable")}
FINDING_LABELS: Final = {"pass": N_("Passed"), "fail": N_("Failed"), "warn": N_("To check")}

# --- messages (gettext msgids, kept together for translators) -----------------------------------

MSG_NOT_ALLOWED: Final = N_("Your account is not allowed to do this ({permission}).")
MSG_NOT_FOUND: Final = N_("No such listing (rule {rule}).")
MSG_NO_ASSET: Final = N_(
    "Your party holds no product-operation right in force on a registered data product, service "
    "or tool “{asset}”. Choose one of your certified products, or register the product and its "
    "product-operation right first (rule {rule})."
)
MSG_NOT_TRADABLE_KIND: Final = N_(
    "“{asset}” is a {kind}: only data products, services and tools can be listed. Register a "
    "product derived from it and list that (rule {rule})."
)
MSG_CERT_NOT_ACTIVE: Final = N_(
    "The registration certificate {certificate} of this product is {status}, not active: only a "
    "product with an active certificate can be listed or traded. Renew or reinstate the right "
    "first (rule {rule})."
)
MSG_NO_CERT: Final = N_(
    "The product-operation right on “{asset}” has no registration certificate: complete its "
    "registration first (rule {rule})."
)
MSG_PLEDGED: Final = N_(
    "The product-operation right behind certificate {certificate} is pledged: a pledged right is "
    "not licensed or traded until the pledgee releases the pledge (rule {rule})."
)
MSG_DISPUTED: Final = N_(
    "{number} cannot be traded now: the registry has the right behind certificate "
    "{certificate} under an open title dispute ({disputes}). Orders, bids and agreements "
    "resume when the registry lifts or resolves it (rule {rule})."
)
# The notice shown before a trade while the registry has the title in dispute (``open_dispute``).
MSG_DISPUTE_NOTICE: Final = N_(
    "The title to this product is disputed: the registry has the right behind certificate "
    "{certificate} under an open title dispute ({disputes}). Orders, bids and agreements on it "
    "are paused until the registry decides (rule {rule})."
)
MSG_RIGHT_GONE: Final = N_(
    "The seller no longer holds the product-operation right on this product (status: {status}): "
    "it cannot be listed or traded until the right is held and in force again (rule {rule})."
)
MSG_CHAIN: Final = N_(
    "The chain of title of the product is broken or disputed ({problem}): trading it could lack "
    "the consent of a rights holder. Resolve the title first (rule {rule})."
)
MSG_TITLE: Final = N_("Give the listing a title of 1 to {max} characters (rule {rule}).")
MSG_TEXT_LONG: Final = N_("The {name} is too long: at most {max} characters (rule {rule}).")
MSG_INDUSTRY: Final = N_("Choose the industry from the list: {known} (rule {rule}).")
MSG_REGION: Final = N_(
    "The region must be a six-digit division code (e.g. 450100) or a two-letter country code "
    "(e.g. VN): {value} is not (rule {rule})."
)
MSG_TAGS: Final = N_(
    "At most {max} tags, each of at most {length} characters: shorten the list (rule {rule})."
)
MSG_PRICE_MODEL: Final = N_(
    "Choose the price model: one-off licence, subscription, per call or free (rule {rule})."
)
MSG_PRICE_RANGE: Final = N_(
    "The price must be more than 0 and at most {max}; {value} is not. For a free listing choose "
    "the free price model (rule {rule})."
)
MSG_PRICE_FREE: Final = N_(
    "A free listing has no price: leave the price empty or choose another price model "
    "(rule {rule})."
)
MSG_YUAN: Final = N_(
    "Enter the price in yuan with at most two decimals, e.g. 1,234.56 (rule {rule})."
)
MSG_PERIOD: Final = N_(
    "A subscription is priced per period: choose month, quarter or year (rule {rule})."
)
MSG_NO_PERIOD: Final = N_("Only a subscription has a period; remove it (rule {rule}).")
MSG_TERM: Final = N_("The term must be {min} to {max} days; {value} is not (rule {rule}).")
MSG_CHANNELS_EMPTY: Final = N_(
    "Choose at least one delivery channel: download, API or sandbox (rule {rule})."
)
MSG_CHANNEL_UNKNOWN: Final = N_(
    "Unknown delivery channel {value}: use download, api or sandbox (rule {rule})."
)
MSG_CHANNEL_SCOPE: Final = N_(
    "The product-operation right allows delivery only by {allowed}; {value} is outside its "
    "scope. Remove it, or widen the right's scope first (rule {rule})."
)
MSG_CHANNEL_PUBLIC: Final = N_(
    "This product contains public data, whose raw data never leaves the domain: it cannot be "
    "delivered by download. Offer it by API or sandbox (rule {rule})."
)
MSG_POLICY: Final = N_(
    "The contract policy is not a valid ODRL policy: {problem} Correct it, or leave it empty for "
    "the default policy (rule {rule})."
)
MSG_POLICY_TARGET: Final = N_(
    "Every rule of the contract policy must be about the listed product {asset}; one is about "
    "“{target}”. Remove the target (it is filled in) or name the product (rule {rule})."
)
MSG_POLICY_EMPTY: Final = N_(
    "The contract policy permits nothing: add a permission for the buyer's use (rule {rule})."
)
MSG_POLICY_JSON: Final = N_("The contract policy is not valid JSON: {problem} (rule {rule}).")
MSG_AUDIENCE: Final = N_(
    "Choose who may see the listing: everyone, verified parties, or named parties (rule {rule})."
)
MSG_AUDIENCE_PARTIES: Final = N_(
    "Name at least one party that may see the listing, or choose another audience (rule {rule})."
)
MSG_PARTY_UNKNOWN: Final = N_(
    "{party} is not a verified party of the exchange: name verified parties only (rule {rule})."
)
MSG_PLACEMENT: Final = N_(
    "Choose the placement: the mall, or one of the zones {known} (rule {rule})."
)
MSG_QUANTITY: Final = N_(
    "The number of licences must be a whole number from 1 to {max}, or empty for unlimited "
    "(rule {rule})."
)
MSG_SHARE_STAGE: Final = N_(
    "Revenue share {index}: the stage must be collection, processing, circulation or application "
    "(rule {rule})."
)
MSG_SHARE_MODE: Final = N_(
    "Revenue share {index}: the mode must be dividend (basis points of the net) or commission "
    "(a fixed amount in fen) (rule {rule})."
)
MSG_SHARE_BP: Final = N_(
    "Revenue share {index}: a dividend is 1 to 10000 basis points (0.01 % to 100 %) (rule {rule})."
)
MSG_SHARE_FEN: Final = N_(
    "Revenue share {index}: a commission is a whole number of fen from 1 to {max} (rule {rule})."
)
MSG_SHARE_TOTAL: Final = N_(
    "The dividends add up to {total} basis points, over 10000 (100 %): lower them (rule {rule})."
)
MSG_SHARE_COUNT: Final = N_("At most {max} revenue shares (rule {rule}).")
MSG_SHARE_SHAPE: Final = N_(
    "Revenue share {index} must be an object with party_id, stage, mode and bp or fen "
    "(rule {rule})."
)
MSG_BROKER: Final = N_(
    "{party} is not a verified data broker: name a service firm registered as a broker "
    "(rule {rule})."
)
MSG_NOT_SELLER: Final = N_(
    "Only the seller (or the broker it named) can change this listing (rule {rule})."
)
MSG_NOT_SELLER_ADMIN: Final = N_(
    "Only an administrator of the seller signs the declaration and submits the listing "
    "(rule {rule})."
)
MSG_STATE: Final = N_(
    "The listing is in state “{state}”: the action “{action}” is not possible in that state "
    "(rule {rule})."
)
MSG_CONFIRM: Final = N_(
    "Read the declaration and commitment and confirm it: submitting signs it for your party "
    "(rule {rule})."
)
MSG_CHECKS: Final = N_(
    "The listing cannot be submitted: {count} automatic check(s) failed — {first} Fix what they "
    "name and submit again (rule {rule})."
)
MSG_APPROVE_CHECKS: Final = N_(
    "The listing cannot be published: {count} check(s) now fail — {first} Return it to the "
    "seller or refuse it (rule {rule})."
)
MSG_NOT_ASSESSOR: Final = N_(
    "Only a verified compliance assessor (a law firm registered with that service role) signs "
    "listing assessments (rule {rule})."
)
MSG_ASSESSOR_CONFLICT: Final = N_(
    "A compliance assessor cannot assess a listing of its own party or one it brokers "
    "(rule {rule})."
)
MSG_REVIEW_CONFLICT: Final = N_(
    "Your party sells {number}, brokers it or for its seller, or is paid from it: a reviewer "
    "never decides ({action}) a listing its own party has an interest in. Another reviewer of "
    "the exchange decides it (rule {rule})."
)
MSG_CHECKLIST: Final = N_(
    "Assess every item of the checklist exactly once ({missing} missing or unknown), each pass, "
    "fail or n/a (rule {rule})."
)
MSG_CHECKLIST_NA: Final = N_(
    "Checklist item {item} always applies: mark it pass or fail (rule {rule})."
)
MSG_CHECKLIST_NOTE: Final = N_(
    "Say why checklist item {item} fails: the seller needs the reason to fix it (rule {rule})."
)
MSG_OPINION: Final = N_("Write the assessment opinion (1 to {max} characters) (rule {rule}).")
MSG_REASON: Final = N_(
    "Give the reason for this decision (1 to {max} characters): the seller is told it "
    "(rule {rule})."
)
MSG_DECISION: Final = N_(
    "Unknown decision {value}: use approve, return, refuse, suspend, resume or delist "
    "(rule {rule})."
)
MSG_NOT_VISIBLE_BUY: Final = MSG_NOT_FOUND
MSG_NOT_LISTED: Final = N_(
    "{number} is not listed for trading now ({state}): it cannot be bought (rule {rule})."
)
MSG_BUYER_SELLER: Final = N_("A seller cannot buy its own listing {number} (rule {rule}).")
MSG_BUYER_UNVERIFIED: Final = N_(
    "Only a verified party can trade on the exchange: complete your party's verification first "
    "(rule {rule})."
)
MSG_SELLER_SUSPENDED: Final = N_(
    "The seller of {number} is not a verified party of the exchange now (suspended): its listings "
    "cannot be bought until it is reinstated (rule {rule})."
)
MSG_CORE: Final = N_(
    "Discovery graded this data as core data, which is never traded (rule {rule})."
)
MSG_SOLD_OUT: Final = N_(
    "Only {remaining} licence(s) of {number} remain; {quantity} were asked for (rule {rule})."
)
MSG_QUANTITY_ASKED: Final = N_("The quantity must be a whole number of at least 1 (rule {rule}).")
MSG_RESUME_CHECKS: Final = N_("The listing cannot resume trading: {first} (rule {rule}).")
MSG_NOTIFY: Final = N_("Listing {number} “{title}”: {state_label}. {reason}")

# Finding messages (the automatic checks; shown with their rule).
F_CERT_OK: Final = N_("Certificate {certificate} is active and the seller holds the right.")
F_SOURCE_OK: Final = N_("A statement of data source is on record.")
F_SOURCE_MISSING: Final = N_(
    "No statement of data source is on record for the product: add it to the registry entry "
    "(Data Security Law art. 33)."
)
F_CORE_OK: Final = N_("Discovery grade: {grade} (not core data).")
F_CORE_NONE: Final = N_("No discovery grade is on record: the assessor checks the grade.")
F_PI_NONE: Final = N_("No personal information was found in the registered version.")
F_PI_CONSENT: Final = N_("Personal information found ({what}); consent basis given: {basis}.")
F_PI_MISSING: Final = N_(
    "The data contains personal information ({what}) and no consent basis was given: state how "
    "the individuals consented (e.g. the consent records), or remove the personal information."
)
F_PUBLIC_NONE: Final = N_("No public data in the product or its sources.")
F_PUBLIC_OK: Final = N_(
    "Public data {assets} is under an authorisation agreement in effect operated by the seller."
)
F_PUBLIC_MISSING: Final = N_(
    "The product contains public data {assets} that is neither lawfully opened nor under an "
    "authorisation agreement in effect operated by the seller."
)
F_CHAIN_OK: Final = N_("The chain of title is unbroken and undisputed.")
F_CHANNELS_OK: Final = N_("Delivery channels {channels} are within the right's scope.")
F_POLICY_OK: Final = N_("The contract policy parses and targets the product.")
F_SHARING_OK: Final = N_("Revenue-sharing parties are verified; dividends total {total} bp.")


# --- rules ------------------------------------------------------------------------------------


def rules() -> RuleSet:
    return exchange_rules()


def _rid(key: str) -> str:
    return rules().rule_id(key)


def values() -> Mapping[str, Any]:
    """The listings section of the rules file (limits, zones, checklist, declaration)."""
    data: Mapping[str, Any] = rules().data["listings"]
    return data


def checklist() -> list[Mapping[str, Any]]:
    return list(values()["checklist"])


def declaration_text() -> Mapping[str, Any]:
    return dict(values()["declaration"])


def require(principal: Principal, *permissions: Permission) -> None:
    """Refuse (403) unless the principal holds one of ``permissions``."""
    if not any(principal.can(p) for p in permissions):
        raise ExchangeForbidden(
            MSG_NOT_ALLOWED, rule=_rid("listing_seller"), permission=permissions[0].value
        )


def require_reader(principal: Principal) -> None:
    """Browsing the exchange: any verified user, the operator and supervisors."""
    require(
        principal,
        P.EXCHANGE_LISTING_READ,
        P.EXCHANGE_LISTING_REVIEW,
        P.EXCHANGE_CONTRACT_READ_ALL,
        P.EXCHANGE_LISTING_ASSESS,
    )


# --- text hygiene -----------------------------------------------------------------------------


# The characters of Unicode's category Cc (control): U+0000–U+001F and U+007F–U+009F.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


def plain_id(value: object) -> bool:
    """Whether ``value`` can be an id at all: a string without control characters (PostgreSQL
    refuses a NUL in any text, so such an input must never reach a query)."""
    return isinstance(value, str) and _CONTROL.search(value) is None


def clean_line(text: str) -> str:
    """One line of text as typed: each control character (NUL, an escape, a line break) a space."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in (text or ""))


def squash(text: str) -> str:
    """A reason, note or opinion as one line: control characters gone, runs of spaces one."""
    return " ".join(clean_line(text).split())


def clean_text(text: str) -> str:
    """Free text as typed: line breaks and tabs kept, every other control character (NUL, a
    carriage return, escapes) dropped."""
    return "".join(ch for ch in (text or "") if ch in "\n\t" or unicodedata.category(ch) != "Cc")


# --- parties ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartyInfo:
    """What the listing checks need to know of a party: name, kind, standing, service role."""

    id: str
    name: str
    kind: str
    verified: bool
    service_role: str | None


_PARTIES: Final = "exchange.parties"  # session.info: the parties read in this unit of work


def party_row(session: Session, party_id: str) -> Any | None:
    """The party ``party_id`` (``None`` if there is none), read once per unit of work: the
    session's identity map holds rows weakly, so a trade that names a party several times (the
    buyer's visibility, its verification, the contract's cards) would read it each time."""
    if not party_id or not plain_id(party_id):
        return None
    held: dict[str, Any] = session.info.setdefault(_PARTIES, {})
    if party_id not in held:
        try:
            held[party_id] = identity.get_party(session, _READER, party_id)
        except DomainError:
            held[party_id] = None
    return held[party_id]


def party_info(session: Session, party_id: str) -> PartyInfo | None:
    party = party_row(session, party_id)
    if party is None:
        return None
    role = party.service_role
    return PartyInfo(
        party.id,
        party.name,
        str(party.kind),
        str(party.status) == identity.PartyStatus.VERIFIED.value,
        None if role is None else str(role),
    )


def _has_service_role(session: Session, principal: Principal, role: str) -> bool:
    info = party_info(session, principal.party_id)
    return info is not None and info.verified and info.service_role == role


def is_assessor(session: Session, principal: Principal) -> bool:
    return principal.can(P.EXCHANGE_LISTING_ASSESS) and _has_service_role(
        session, principal, identity.ServiceRole.COMPLIANCE_ASSESSOR.value
    )


def assessor_conflict(listing: ExchangeListing, party_id: str) -> bool:
    """Whether a compliance assessor of ``party_id`` has an interest in ``listing``: it sells or
    brokers it, or is paid from it under its revenue-sharing agreement."""
    interested = {listing.seller_id, listing.broker_id}
    interested |= {str(s.get("party_id")) for s in listing.revenue_sharing or []}
    return party_id in interested


def brokered_sellers(session: Session, party_id: str) -> set[str]:
    """The sellers ``party_id`` brokers for: those with a listing (in any state) naming it as
    broker."""
    if not party_id or not plain_id(party_id):
        return set()
    return set(
        session.scalars(
            select(ExchangeListing.seller_id)
            .where(ExchangeListing.broker_id == party_id)
            .distinct()
        )
    )


def review_conflict(
    session: Session,
    listing: ExchangeListing,
    party_id: str,
    *,
    brokered: set[str] | None = None,
) -> bool:
    """Whether a reviewer of ``party_id`` — the exchange's, or a compliance assessor — has an
    interest in ``listing`` (separation of duties, EXC-LST-SEPARATION): its party sells or
    brokers it or is paid from it (``assessor_conflict``), or brokers for its seller in another
    listing. ``brokered``: ``brokered_sellers(session, party_id)`` when already read."""
    if assessor_conflict(listing, party_id):
        return True
    sellers = brokered_sellers(session, party_id) if brokered is None else brokered
    return listing.seller_id in sellers


# The exchange's decisions an interested reviewer may not take: those that judge a listing or put
# it on sale. Suspending and delisting stop its trading and stay open to every reviewer.
CONFLICTED_DECISIONS: Final = frozenset({"approve", "return", "refuse", "resume"})


def is_operator(principal: Principal | None) -> bool:
    return principal is not None and principal.can(P.EXCHANGE_LISTING_REVIEW)


def _sees_all(principal: Principal | None) -> bool:
    return principal is not None and (
        principal.can(P.EXCHANGE_LISTING_REVIEW) or principal.can(P.EXCHANGE_CONTRACT_READ_ALL)
    )


# --- search -----------------------------------------------------------------------------------

_WORD: Final = re.compile(r"[0-9a-z]+")


def _is_cjk(ch: str) -> bool:
    return unicodedata.category(ch) == "Lo" and (
        "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or ch >= "\U00020000"
    )


def search_tokens(text: str) -> list[str]:
    """The tokens of ``text``: Latin words and numbers whole, CJK runs as their single characters
    and character bigrams (园区用电 → 园 区 用 电 园区 区用 用电), in order, repeats kept."""
    norm = unicodedata.normalize("NFKC", text or "").lower()
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.extend(run)
            out.extend(a + b for a, b in itertools.pairwise(run))
            run.clear()

    word: list[str] = []
    for ch in norm:
        if _is_cjk(ch):
            if word:
                out.append("".join(word))
                word.clear()
            run.append(ch)
            continue
        flush()
        if ch.isascii() and ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word))
            word.clear()
    flush()
    if word:
        out.append("".join(word))
    return out


def query_tokens(q: str) -> list[str]:
    """A query's tokens: CJK bigrams (single characters only for a one-character run) and Latin
    words, without repeats, at most 24."""
    norm = unicodedata.normalize("NFKC", q or "").lower()
    seen: list[str] = []
    for chunk in re.split(r"\s+", norm):
        tokens = search_tokens(chunk)
        cjk = [t for t in tokens if _is_cjk(t[0])]
        bigrams = [t for t in cjk if len(t) == 2]
        wanted = bigrams or cjk
        wanted += [t for t in tokens if not _is_cjk(t[0])]
        for t in wanted:
            if t not in seen:
                seen.append(t)
    return seen[:24]


def search_text_of(
    *,
    title: str,
    title_en: str,
    summary: str,
    summary_en: str,
    tags: Iterable[str],
    industry: str,
    region: str,
    kind: str,
    number: str,
    seller: str,
) -> str:
    """``search_text``: the title's tokens, ``#``, then every other token (each in spaces)."""
    head = search_tokens(f"{title} {title_en}")
    tail = search_tokens(
        " ".join([summary, summary_en, " ".join(tags), industry, region, kind, number, seller])
    )
    return " " + " ".join(head) + " # " + " ".join(tail) + " "


def _search_clause(tokens: Sequence[str]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """(matches, score) over ``search_text`` for the query tokens."""
    col = ExchangeListing.search_text
    hits: list[ColumnElement[Any]] = []
    score: list[ColumnElement[Any]] = []
    for token in tokens:
        anywhere = col.like(f"% {token} %")
        in_title = col.like(f"% {token} %#%")
        hits.append(case((anywhere, 1), else_=0))
        score.append(case((in_title, 3), (anywhere, 1), else_=0))
    need = max(1, -(-len(tokens) // 2))
    matched = sum(hits[1:], hits[0]) >= need
    return matched, sum(score[1:], score[0])


# --- serials ----------------------------------------------------------------------------------


def take_number(session: Session, kind: str, prefix: str, year: int) -> str:
    """The next ``GX-<prefix>-<year>-<serial>`` of ``kind`` (``serials.take``)."""
    return number(prefix, year, serials.take(session, kind, year))


# --- the draft and its checks -----------------------------------------------------------------


@dataclass(frozen=True)
class ListingDraft:
    """What the seller fills in. ``price_fen`` is whole fen (the entry points parse yuan);
    ``contract_policy`` None is the default policy built from the channels and the right's
    scope; ``revenue_sharing`` items are ``{"party_id", "stage", "mode", "bp" | "fen"}``."""

    asset_id: str
    title: str
    title_en: str = ""
    summary: str = ""
    summary_en: str = ""
    industry: str = ""
    region: str = ""
    tags: tuple[str, ...] = ()
    price_model: str = PriceModel.ONE_OFF.value
    price_fen: int = 0
    period: str | None = None
    channels: tuple[str, ...] = (Channel.API.value,)
    term_days: int = 365
    contract_policy: Mapping[str, Any] | None = None
    audience: str = "verified"
    audience_parties: tuple[str, ...] = ()
    placement: str = Placement.MALL.value
    zone: str | None = None
    quantity: int | None = None
    revenue_sharing: tuple[Mapping[str, Any], ...] = ()
    cross_border: bool = False
    broker_id: str | None = None

    @classmethod
    def of(cls, listing: ExchangeListing) -> ListingDraft:
        """The draft a listing was made from (to change some of its fields)."""
        access = listing.access or {}
        return cls(
            asset_id=listing.asset_id,
            title=listing.title,
            title_en=listing.title_en,
            summary=listing.summary,
            summary_en=listing.summary_en,
            industry=listing.industry,
            region=listing.region,
            tags=tuple(listing.tags or ()),
            price_model=listing.price_model,
            price_fen=listing.price_fen,
            period=listing.period,
            channels=tuple(listing.channels or ()),
            term_days=listing.term_days,
            contract_policy=listing.contract_policy,
            audience=str(access.get("audience", "verified")),
            audience_parties=tuple(access.get("parties") or ()),
            placement=listing.placement,
            zone=listing.zone,
            quantity=listing.total_quantity,
            revenue_sharing=tuple(listing.revenue_sharing or ()),
            cross_border=listing.cross_border,
            broker_id=listing.broker_id,
        )


def price_from_yuan(text: str, *, field: str = "price") -> int:
    """A price typed by a person in yuan (``1,234.50``) as fen; empty is 0."""
    from datafactor.settlement import parse_yuan  # the settlement's own reading of yuan

    if not (text or "").strip():
        return 0
    try:
        return parse_yuan(text)
    except ValueError:
        raise ExchangeInvalid(MSG_YUAN, rule=_rid("listing_price"), field=field) from None


@dataclass(frozen=True)
class Finding:
    """One automatic check's result: ``outcome`` pass / fail / warn, the rule, and the message
    (an ``N_`` msgid with its parameters)."""

    check: str
    rule: str
    outcome: str
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The rule is also a message parameter, like an ExchangeError's.
        object.__setattr__(self, "params", {**dict(self.params), "rule": self.rule})

    @property
    def failed(self) -> bool:
        return self.outcome == "fail"

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "rule": self.rule,
            "outcome": self.outcome,
            "message": self.message,
            "params": {k: str(v) for k, v in self.params.items()},
        }


class ListingChecksFailed(ExchangeInvalid):
    """A submission (or approval) refused by the automatic checks: every failing finding."""

    code = "exchange-listing-checks-failed"

    def __init__(self, message: str, findings: Sequence[Finding], **params: Any) -> None:
        failed = [f for f in findings if f.failed]
        first = failed[0] if failed else None
        super().__init__(
            message,
            rule=first.rule if first else _rid("listing_prohibited"),
            field="checks",
            count=len(failed),
            first=(first.message.format(**first.params) if first else ""),
            **params,
        )
        self.findings = list(findings)


@dataclass(frozen=True)
class _Held:
    """The seller's standing on the asset: facts, the right, its current certificate."""

    facts: registry.AssetFacts
    right: registry.Right
    certificate: str
    valid_until: date


def _held(session: Session, seller_id: str, asset_id: str, on: date) -> _Held:
    """The registered tradable asset and the seller's product-operation right in force on it,
    with an active certificate; refused (422) otherwise. An unknown asset and one the seller holds
    nothing on answer the same (nothing leaks)."""
    facts = registry.asset_facts(session, asset_id) if asset_id and plain_id(asset_id) else None
    rights = registry.rights_on_asset(session, asset_id) if facts else []
    ours = [
        r
        for r in rights
        if r.kind is registry.RightKind.PRODUCT_OPERATION and r.holder_id == seller_id
    ]
    if facts is None or (not ours and facts.party_id != seller_id):
        raise ExchangeInvalid(
            MSG_NO_ASSET, rule=_rid("listing_seller"), field="asset_id", asset=asset_id
        )
    if facts.kind not in {k.value for k in registry.TRADABLE_KINDS}:
        raise ExchangeInvalid(
            MSG_NOT_TRADABLE_KIND,
            rule=_rid("listing_object"),
            field="asset_id",
            asset=facts.name,
            kind=facts.kind,
        )
    live = [r for r in ours if r.in_force(on)]
    if not live:
        raise ExchangeInvalid(
            MSG_NO_ASSET, rule=_rid("listing_seller"), field="asset_id", asset=facts.name
        )
    right = live[-1]
    current = registry.current_certificate(session, right.id)
    if current is None:
        raise ExchangeInvalid(
            MSG_NO_CERT, rule=_rid("listing_certificate"), field="asset_id", asset=facts.name
        )
    certificate, valid_until = current
    status = _certificate_status(right, valid_until, on)
    if status != registry.CertificateStatus.ACTIVE.value:
        raise ExchangeInvalid(
            MSG_CERT_NOT_ACTIVE,
            rule=_rid("listing_certificate"),
            field="asset_id",
            certificate=certificate,
            status=status,
        )
    return _Held(facts, right, certificate, valid_until)


def _certificate_status(right: registry.Right, valid_until: date, on: date) -> str:
    return registry.certificate_status(
        valid_until=valid_until, right_status=right.status, today=on
    ).value


def _check_text(draft: ListingDraft) -> None:
    rule = _rid("listing_object")
    title = draft.title.strip()
    if not title or len(title) > MAX_TITLE:
        raise ExchangeInvalid(MSG_TITLE, rule=rule, field="title", max=MAX_TITLE)
    for name, value, limit in (
        ("title_en", draft.title_en, MAX_TITLE),
        ("summary", draft.summary, MAX_SUMMARY),
        ("summary_en", draft.summary_en, MAX_SUMMARY),
    ):
        if len(value) > limit:
            raise ExchangeInvalid(MSG_TEXT_LONG, rule=rule, field=name, name=name, max=limit)
    industries = values()["industries"]
    if draft.industry and draft.industry not in industries:
        raise ExchangeInvalid(
            MSG_INDUSTRY, rule=rule, field="industry", known=", ".join(sorted(industries))
        )
    if draft.region and not re.fullmatch(r"[1-9][0-9]{5}|[A-Z]{2}", draft.region):
        raise ExchangeInvalid(MSG_REGION, rule=rule, field="region", value=draft.region)
    limits = values()
    if len(draft.tags) > int(limits["max_tags"]) or any(
        len(t) > MAX_TAG or not t.strip() for t in draft.tags
    ):
        raise ExchangeInvalid(
            MSG_TAGS, rule=rule, field="tags", max=limits["max_tags"], length=MAX_TAG
        )


def _check_price(draft: ListingDraft) -> tuple[str, int, str | None]:
    rule = _rid("listing_price")
    try:
        model = PriceModel(draft.price_model)
    except ValueError:
        raise ExchangeInvalid(MSG_PRICE_MODEL, rule=rule, field="price_model") from None
    limit = int(values()["max_price_fen"])
    price = draft.price_fen
    if model is PriceModel.FREE:
        if price:
            raise ExchangeInvalid(MSG_PRICE_FREE, rule=rule, field="price")
    elif not isinstance(price, int) or isinstance(price, bool) or not 0 < price <= limit:
        raise ExchangeInvalid(
            MSG_PRICE_RANGE,
            rule=rule,
            field="price",
            max=_yuan(limit),
            value=_yuan(price) if isinstance(price, int) else str(price),
        )
    period = draft.period or None
    if model is PriceModel.SUBSCRIPTION:
        if period not in values()["periods"]:
            raise ExchangeInvalid(MSG_PERIOD, rule=rule, field="period")
    elif period is not None:
        raise ExchangeInvalid(MSG_NO_PERIOD, rule=rule, field="period")
    lo, hi = int(values()["min_term_days"]), int(values()["max_term_days"])
    if not lo <= draft.term_days <= hi:
        raise ExchangeInvalid(
            MSG_TERM, rule=rule, field="term_days", min=lo, max=hi, value=draft.term_days
        )
    return model.value, (0 if model is PriceModel.FREE else price), period


def _yuan(fen: int) -> str:
    from datafactor.settlement import format_yuan

    return format_yuan(fen)


def lineage_closure(session: Session, facts: registry.AssetFacts) -> list[registry.AssetFacts]:
    """The asset and every asset it was derived from (the lineage, a few levels deep)."""
    out, frontier, seen = [facts], [facts], {facts.id}
    for _ in range(MAX_LINEAGE_DEPTH):
        nxt: list[registry.AssetFacts] = []
        for item in frontier:
            for source_id in item.lineage:
                if source_id in seen:
                    continue
                seen.add(source_id)
                source = registry.asset_facts(session, source_id)
                if source is not None:
                    nxt.append(source)
        if not nxt:
            break
        out += nxt
        frontier = nxt
    return out


def public_sources(session: Session, facts: registry.AssetFacts) -> list[registry.AssetFacts]:
    """The public data in a product: the asset itself when it is public data, and every public
    asset it was derived from."""
    return [
        a
        for a in lineage_closure(session, facts)
        if a.data_class == registry.DataClass.PUBLIC.value
    ]


def _check_channels(
    session: Session, draft_channels: Sequence[str], held: _Held
) -> tuple[list[str], bool]:
    """The channels (deduplicated, in the vocabulary's order), and whether public data is in it."""
    rule = _rid("listing_channel")
    known = [c.value for c in Channel]
    for value in draft_channels:
        if value not in known:
            raise ExchangeInvalid(MSG_CHANNEL_UNKNOWN, rule=rule, field="channels", value=value)
    channels = [c for c in known if c in set(draft_channels)]
    if not channels:
        raise ExchangeInvalid(MSG_CHANNELS_EMPTY, rule=rule, field="channels")
    allowed = held.right.scope.delivery_modes
    if allowed is not None:
        for value in channels:
            if value not in allowed:
                raise ExchangeInvalid(
                    MSG_CHANNEL_SCOPE,
                    rule=rule,
                    field="channels",
                    value=value,
                    allowed=", ".join(sorted(allowed)),
                )
    public = bool(public_sources(session, held.facts))
    if public and Channel.DOWNLOAD.value in channels:
        raise ExchangeInvalid(MSG_CHANNEL_PUBLIC, rule=rule, field="channels")
    return channels, public


def default_policy(
    *, asset_id: str, seller_id: str, channels: Sequence[str], scope: registry.Scope | None
) -> dict[str, Any]:
    """The contract policy a listing gets unless the seller writes its own: use for the right's
    purposes, in its regions, through the listing's channels; no onward distribution."""
    constraints: list[dict[str, Any]] = []
    if scope is not None and scope.purposes:
        constraints.append(
            {
                "leftOperand": "purpose",
                "operator": "isAnyOf",
                "rightOperand": sorted(scope.purposes),
            }
        )
    constraints.append(
        {"leftOperand": "deliveryChannel", "operator": "isAnyOf", "rightOperand": list(channels)}
    )
    regions = sorted(scope.regions) if scope is not None and scope.regions else []
    places = [
        {"leftOperand": "spatial", "operator": "isPartOf", "rightOperand": r} for r in regions
    ]
    if len(places) == 1:
        constraints.append(places[0])
    elif places:
        constraints.append({"or": places})
    return {
        "@context": [ODRL_CONTEXT, {"df": DF_NS}],
        "@type": "Offer",
        "uid": f"urn:datafactor:listing-policy:{asset_id}",
        "assigner": seller_id,
        "target": asset_id,
        "permission": [{"action": "use", "constraint": constraints}],
        "prohibition": [{"action": "distribute"}],
    }


def check_policy(document: Any, *, asset_id: str, seller_id: str) -> dict[str, Any]:
    """The contract policy parsed and normalised (target and assigner filled in where absent);
    refused unless it parses, permits something and every rule targets the asset."""
    rule = _rid("listing_policy")
    if not isinstance(document, Mapping):
        raise ExchangeInvalid(
            MSG_POLICY_JSON, rule=rule, field="contract_policy", problem="not a JSON object"
        )
    filled = copy.deepcopy(dict(document))
    filled.setdefault("target", asset_id)
    filled.setdefault("assigner", seller_id)
    try:
        policy = parse_policy(filled)
    except PolicyError as exc:
        raise ExchangeInvalid(
            MSG_POLICY, rule=rule, field="contract_policy", problem=str(exc)
        ) from None
    rules_of: list[PolicyPermission | Prohibition] = [*policy.permissions, *policy.prohibitions]
    for item in rules_of:
        if item.target != asset_id:
            raise ExchangeInvalid(
                MSG_POLICY_TARGET,
                rule=rule,
                field="contract_policy",
                asset=asset_id,
                target=str(item.target),
            )
    if not policy.permissions:
        raise ExchangeInvalid(MSG_POLICY_EMPTY, rule=rule, field="contract_policy")
    out: dict[str, Any] = policy.to_jsonld()
    return out


def parse_policy_text(text: str) -> dict[str, Any] | None:
    """A policy typed as JSON in a form (empty: None, the default)."""
    if not (text or "").strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ExchangeInvalid(
            MSG_POLICY_JSON, rule=_rid("listing_policy"), field="contract_policy", problem=str(exc)
        ) from None
    if not isinstance(value, dict):
        raise ExchangeInvalid(
            MSG_POLICY_JSON,
            rule=_rid("listing_policy"),
            field="contract_policy",
            problem="not a JSON object",
        )
    return value


def _check_parties(session: Session, party_ids: Iterable[str], rule: str, field: str) -> None:
    for party_id in party_ids:
        info = party_info(session, party_id)
        if info is None or not info.verified:
            raise ExchangeInvalid(MSG_PARTY_UNKNOWN, rule=rule, field=field, party=party_id)


def _check_access(session: Session, draft: ListingDraft) -> dict[str, Any]:
    rule = _rid("listing_access")
    if draft.audience not in AUDIENCES:
        raise ExchangeInvalid(MSG_AUDIENCE, rule=rule, field="audience")
    if draft.audience != "parties":
        return {"audience": draft.audience}
    parties = sorted({p.strip() for p in draft.audience_parties if p.strip()})
    if not parties:
        raise ExchangeInvalid(MSG_AUDIENCE_PARTIES, rule=rule, field="audience_parties")
    _check_parties(session, parties, rule, "audience_parties")
    return {"audience": "parties", "parties": parties}


def _check_placement(draft: ListingDraft) -> tuple[str, str | None]:
    rule = _rid("listing_zone")
    zones = values()["zones"]
    if draft.placement == Placement.MALL.value:
        return Placement.MALL.value, None
    if draft.placement == Placement.ZONE.value and draft.zone in zones:
        return Placement.ZONE.value, draft.zone
    raise ExchangeInvalid(MSG_PLACEMENT, rule=rule, field="zone", known=", ".join(sorted(zones)))


def _check_quantity(quantity: int | None) -> int | None:
    limit = int(values()["max_quantity"])
    if quantity is None:
        return None
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= limit:
        raise ExchangeInvalid(
            MSG_QUANTITY, rule=_rid("listing_quantity"), field="quantity", max=limit
        )
    return quantity


def check_sharing(session: Session, shares: Sequence[Any]) -> tuple[list[dict[str, Any]], int]:
    """The revenue-sharing agreement normalised, and its total dividend in basis points."""
    rule = _rid("listing_sharing")
    limits = values()
    if len(shares) > int(limits["max_sharing_parties"]):
        raise ExchangeInvalid(
            MSG_SHARE_COUNT, rule=rule, field="revenue_sharing", max=limits["max_sharing_parties"]
        )
    out: list[dict[str, Any]] = []
    total = 0
    for index, share in enumerate(shares, start=1):
        where = f"revenue_sharing.{index - 1}"
        if not isinstance(share, Mapping) or not isinstance(share.get("party_id"), str):
            raise ExchangeInvalid(MSG_SHARE_SHAPE, rule=rule, field=where, index=index)
        if share.get("stage") not in limits["sharing_stages"]:
            raise ExchangeInvalid(MSG_SHARE_STAGE, rule=rule, field=f"{where}.stage", index=index)
        mode = share.get("mode")
        if mode not in limits["sharing_modes"]:
            raise ExchangeInvalid(MSG_SHARE_MODE, rule=rule, field=f"{where}.mode", index=index)
        item: dict[str, Any] = {
            "party_id": share["party_id"],
            "stage": share["stage"],
            "mode": mode,
        }
        if mode == "dividend":
            bp = share.get("bp")
            if isinstance(bp, bool) or not isinstance(bp, int) or not 1 <= bp <= 10_000:
                raise ExchangeInvalid(MSG_SHARE_BP, rule=rule, field=f"{where}.bp", index=index)
            item["bp"] = bp
            total += bp
        else:
            fen = share.get("fen")
            limit = int(limits["max_price_fen"])
            if isinstance(fen, bool) or not isinstance(fen, int) or not 1 <= fen <= limit:
                raise ExchangeInvalid(
                    MSG_SHARE_FEN, rule=rule, field=f"{where}.fen", index=index, max=limit
                )
            item["fen"] = fen
        out.append(item)
    if total > 10_000:
        raise ExchangeInvalid(MSG_SHARE_TOTAL, rule=rule, field="revenue_sharing", total=total)
    _check_parties(session, [s["party_id"] for s in out], rule, "revenue_sharing")
    return out, total


def _check_broker(session: Session, broker_id: str | None) -> str | None:
    if not broker_id:
        return None
    info = party_info(session, broker_id)
    if info is None or not info.verified or info.service_role != identity.ServiceRole.BROKER.value:
        raise ExchangeInvalid(
            MSG_BROKER, rule=_rid("listing_seller"), field="broker_id", party=broker_id
        )
    return broker_id


def party_name(session: Session, party_id: str) -> str:
    info = party_info(session, party_id)
    return info.name if info else party_id[:8]


def _apply(
    session: Session, row: ExchangeListing, draft: ListingDraft, held: _Held, seller_id: str
) -> None:
    """Check every field of ``draft`` and write it to ``row`` (nothing is written on refusal:
    the checks run first)."""
    draft = dataclasses.replace(
        draft,
        title=clean_line(draft.title),
        title_en=clean_line(draft.title_en),
        summary=clean_text(draft.summary),
        summary_en=clean_text(draft.summary_en),
        tags=tuple(clean_line(t) for t in draft.tags),
    )
    _check_text(draft)
    model, price, period = _check_price(draft)
    channels, _ = _check_channels(session, draft.channels, held)
    if draft.contract_policy is None:
        document = default_policy(
            asset_id=held.facts.id,
            seller_id=seller_id,
            channels=channels,
            scope=held.right.scope,
        )
    else:
        document = dict(draft.contract_policy)
    policy = check_policy(document, asset_id=held.facts.id, seller_id=seller_id)
    access = _check_access(session, draft)
    placement, zone = _check_placement(draft)
    quantity = _check_quantity(draft.quantity)
    sharing, _ = check_sharing(session, list(draft.revenue_sharing))
    broker = _check_broker(session, draft.broker_id)
    if broker == seller_id:
        raise ExchangeInvalid(
            MSG_BROKER, rule=_rid("listing_seller"), field="broker_id", party=broker
        )
    row.asset_id = held.facts.id
    row.right_id = held.right.id
    row.certificate_number = held.certificate
    row.seller_id = seller_id
    row.broker_id = broker
    row.kind = held.facts.kind
    row.title = draft.title.strip()
    row.title_en = draft.title_en.strip()
    row.summary = draft.summary.strip()
    row.summary_en = draft.summary_en.strip()
    row.industry = draft.industry or (
        held.facts.domain if held.facts.domain in values()["industries"] else ""
    )
    row.region = draft.region or held.facts.region
    row.tags = [t.strip() for t in draft.tags]
    row.data_class = held.facts.data_class
    row.grade = held.facts.grade
    row.price_model = model
    row.price_fen = price
    row.period = period
    row.channels = channels
    row.term_days = draft.term_days
    row.contract_policy = policy
    row.access = access
    if (row.placement, row.zone) != (placement, zone):
        row.zone_approved_by = None
    row.placement = placement
    row.zone = zone
    row.total_quantity = quantity
    row.remaining_quantity = quantity
    row.revenue_sharing = sharing
    row.cross_border = bool(draft.cross_border)


def _index(session: Session, row: ExchangeListing) -> None:
    """The listing's ``search_text`` from its words and its seller's name."""
    row.search_text = search_text_of(
        title=row.title,
        title_en=row.title_en,
        summary=row.summary,
        summary_en=row.summary_en,
        tags=row.tags,
        industry=row.industry,
        region=row.region,
        kind=row.kind,
        number=row.number or "",
        seller=party_name(session, row.seller_id),
    )


# --- history ----------------------------------------------------------------------------------


def _actor_name(actor: Principal | None) -> str:
    return actor.username if actor is not None else SYSTEM


def _record(
    session: Session,
    listing: ExchangeListing,
    action: str,
    source: str | None,
    *,
    actor: Principal | None,
    reason: str = "",
    params: Mapping[str, Any] | None = None,
    rule_ids: Sequence[str] = (),
    summary: str = "",
) -> None:
    """One step: the listing's history row and the audit event, in the caller's transaction."""
    session.add(
        ExchangeListingEvent(
            listing_id=listing.id,
            action=action,
            source=source,
            target=listing.state,
            actor_user_id=actor.user_id if actor else None,
            actor_party_id=actor.party_id if actor else None,
            actor_name=_actor_name(actor),
            reason=reason,
            reason_params=dict(params) if params else None,
            rules=list(rule_ids),
        )
    )
    audit.record(
        session,
        actor=actor,
        action=f"exchange:listing:{action}",
        object_type="exchange_listing",
        object_id=listing.id,
        summary=summary or f"{listing.number} {action} → {listing.state}",
        party_id=listing.seller_id,
        reasons=[reason] if reason else [],
        actor_name=None if actor else SYSTEM,
    )


def _notify(session: Session, listing: ExchangeListing, reason: str) -> None:
    parties = [listing.seller_id] + ([listing.broker_id] if listing.broker_id else [])
    inbox.notify(
        session,
        parties,
        kind=INBOX_KIND,
        message=MSG_NOTIFY,
        params={
            "number": listing.number,
            "title": listing.title,
            "state_label": LISTING_STATE_LABELS[ListingState(listing.state)],
            "reason": reason,
        },
        link=f"/exchange/listings/{listing.id}",
    )


def _move(
    listing: ExchangeListing, target: ListingState, action: str, *, allowed: Iterable[ListingState]
) -> str:
    source = ListingState(listing.state)
    if source not in set(allowed) or not may_move(LISTING_TRANSITIONS, source, target):
        raise ExchangeStateConflict(
            MSG_STATE,
            rule=_rid("listing_state"),
            field="state",
            state=source.value,
            action=action,
        )
    listing.state = target.value
    return source.value


def _reason(text: str, rule_key: str = "listing_review") -> str:
    reason = squash(text)
    if not reason or len(reason) > MAX_REASON:
        raise ExchangeInvalid(MSG_REASON, rule=_rid(rule_key), field="reason", max=MAX_REASON)
    return reason


# --- the seller's side ------------------------------------------------------------------------


def _lock(session: Session, listing_id: str) -> ExchangeListing | None:
    """The listing row locked FOR UPDATE, its attributes re-read from the locked row (an object
    the session loaded before the lock would otherwise keep its stale values)."""
    if not plain_id(listing_id):
        return None
    return session.execute(
        select(ExchangeListing)
        .where(ExchangeListing.id == listing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def may_prepare(actor: Principal | None, listing: ExchangeListing) -> bool:
    """Whether ``actor`` prepares ``listing``: its seller's staff, or the broker it named."""
    if actor is None or not actor.party_id:
        return False
    sells = actor.party_id == listing.seller_id and actor.can(P.EXCHANGE_LISTING_WRITE)
    brokers = (
        listing.broker_id is not None
        and actor.party_id == listing.broker_id
        and actor.can(P.EXCHANGE_TRADE_BROKER)
    )
    return sells or brokers


def prepared_listing(
    session: Session, actor: Principal, listing_id: str, *, lock: bool = False
) -> ExchangeListing:
    """A listing as its preparer edits it (the form's values: the named audience, the
    revenue-sharing agreement): not found when the actor cannot see it, 403 when it may see but
    not prepare it. ``lock``: locked FOR UPDATE, for a change merged into its current values (two
    concurrent partial changes must not undo each other)."""
    if lock:
        return _preparer(session, actor, listing_id)
    listing = get_listing(session, actor, listing_id)
    if not may_prepare(actor, listing):
        raise ExchangeForbidden(MSG_NOT_SELLER, rule=_rid("listing_seller"))
    return listing


def _preparer(session: Session, actor: Principal, listing_id: str) -> ExchangeListing:
    """The listing locked, for its seller's staff or the broker it named; others: not found."""
    listing = _lock(session, listing_id)
    if listing is None or not _visible(session, actor, listing):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rid("listing_visible"))
    if not may_prepare(actor, listing):
        raise ExchangeForbidden(MSG_NOT_SELLER, rule=_rid("listing_seller"))
    return listing


def create_listing(
    session: Session, actor: Principal, draft: ListingDraft, *, on: date, now: datetime
) -> ExchangeListing:
    """A draft listing of the actor's party's certified product (numbered ``GX-DL-…``)."""
    require(actor, P.EXCHANGE_LISTING_WRITE)
    held = _held(session, actor.party_id, draft.asset_id, on)
    row = ExchangeListing(state=ListingState.DRAFT.value, created_by=actor.user_id or None)
    row.placement, row.zone = Placement.MALL.value, None
    _apply(session, row, draft, held, actor.party_id)
    row.number = take_number(session, SERIAL_KIND, NUMBER_PREFIX, on.year)
    _index(session, row)
    row.created_at = row.updated_at = now
    session.add(row)
    session.flush()
    _record(
        session,
        row,
        "create",
        None,
        actor=actor,
        rule_ids=[_rid("listing_seller"), _rid("listing_certificate")],
    )
    return row


def update_listing(
    session: Session,
    actor: Principal,
    listing_id: str,
    draft: ListingDraft,
    *,
    on: date,
    now: datetime,
) -> ExchangeListing:
    """Change a draft (or a listing returned for changes): by its seller or the broker it named.
    Only the seller names or changes the broker."""
    listing = _preparer(session, actor, listing_id)
    state = ListingState(listing.state)
    if state not in (ListingState.DRAFT, ListingState.RETURNED):
        raise ExchangeStateConflict(
            MSG_STATE,
            rule=_rid("listing_state"),
            field="state",
            state=state.value,
            action="update",
        )
    if draft.asset_id != listing.asset_id:
        draft = dataclasses.replace(draft, asset_id=listing.asset_id)
    if actor.party_id != listing.seller_id and draft.broker_id != listing.broker_id:
        raise ExchangeForbidden(MSG_NOT_SELLER, rule=_rid("listing_seller"))
    held = _held(session, listing.seller_id, listing.asset_id, on)
    _apply(session, listing, draft, held, listing.seller_id)
    _index(session, listing)
    listing.updated_at = now
    _record(session, listing, "update", listing.state, actor=actor)
    return listing


def _findings_failed(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.failed]


def _personal_information(session: Session, facts: registry.AssetFacts) -> list[str]:
    """What personal information the product holds: the entity types discovery found in its
    registered version's columns, and every asset of its lineage registered as personal data."""
    found: list[str] = [
        f"personal data: {a.name}"
        for a in lineage_closure(session, facts)
        if a.data_class == registry.DataClass.PERSONAL.value
    ]
    if not facts.version_id:
        return found
    scans, _ = discovery.list_scans(
        session,
        _READER,
        discovery.ScanQuery(
            version_id=facts.version_id, status=discovery.ScanStatus.SUCCEEDED.value
        ),
        limit=1,
        offset=0,
    )
    if not scans:
        return found
    job = discovery.get_scan(session, _READER, scans[0].id, with_report=True)
    report = job.report or {}
    for column in report.get("columns") or ():
        for kind in column.get("types") or ():
            if kind not in found:
                found.append(str(kind))
    return found


def _operated_by(session: Session, seller_id: str, on: date) -> set[str]:
    """The public data sets under an authorisation agreement in effect that the seller operates."""
    entries = public_operation.catalogue(session, _READER, today=on)
    return {e.asset_id for e in entries if e.operator_id == seller_id}


def automatic_checks(
    session: Session, listing: ExchangeListing, *, on: date, consent_basis: str = ""
) -> list[Finding]:
    """The automatic checks of a listing (at submission, approval and resumption), each a
    finding with its rule: certificate and right, chain of title, statement of source, grade,
    personal information, public data, channels, policy, revenue-sharing parties."""
    out: list[Finding] = []
    try:
        held = _held(session, listing.seller_id, listing.asset_id, on)
    except ExchangeError as exc:
        out.append(Finding("certificate", exc.rule, "fail", exc.message, _plain(exc.params)))
        return out
    facts = held.facts
    out.append(
        Finding(
            "certificate",
            _rid("listing_certificate"),
            "pass",
            F_CERT_OK,
            {"certificate": held.certificate},
        )
    )
    verification = registry.verify_certificate(session, held.certificate, today=on)
    if verification.chain_problem or verification.under_objection:
        problem = verification.chain_problem or "under objection"
        out.append(
            Finding("title", _rid("listing_prohibited"), "fail", MSG_CHAIN, {"problem": problem})
        )
    else:
        out.append(Finding("title", _rid("listing_prohibited"), "pass", F_CHAIN_OK))
    if facts.source_statement.strip():
        out.append(Finding("source_statement", _rid("listing_source"), "pass", F_SOURCE_OK))
    else:
        out.append(Finding("source_statement", _rid("listing_source"), "fail", F_SOURCE_MISSING))
    core = discovery.Grade.CORE.value
    if facts.grade == core:
        out.append(Finding("core_data", _rid("listing_core"), "fail", MSG_CORE))
    elif facts.grade:
        out.append(
            Finding("core_data", _rid("listing_core"), "pass", F_CORE_OK, {"grade": facts.grade})
        )
    else:
        out.append(Finding("core_data", _rid("listing_core"), "warn", F_CORE_NONE))
    personal = _personal_information(session, facts)
    basis = squash(consent_basis)
    if not personal:
        out.append(Finding("personal_information", _rid("listing_personal"), "pass", F_PI_NONE))
    elif basis:
        out.append(
            Finding(
                "personal_information",
                _rid("listing_personal"),
                "pass",
                F_PI_CONSENT,
                {"what": ", ".join(personal), "basis": basis},
            )
        )
    else:
        out.append(
            Finding(
                "personal_information",
                _rid("listing_personal"),
                "fail",
                F_PI_MISSING,
                {"what": ", ".join(personal)},
            )
        )
    public = public_sources(session, facts)
    if not public:
        out.append(Finding("public_data", _rid("listing_public"), "pass", F_PUBLIC_NONE))
    else:
        operated = _operated_by(session, listing.seller_id, on)
        names = ", ".join(p.name for p in public)
        lawful = all(p.id in operated for p in public)
        out.append(
            Finding(
                "public_data",
                _rid("listing_public"),
                "pass" if lawful else "fail",
                F_PUBLIC_OK if lawful else F_PUBLIC_MISSING,
                {"assets": names},
            )
        )
    try:
        _check_channels(session, listing.channels, held)
        out.append(
            Finding(
                "channels",
                _rid("listing_channel"),
                "pass",
                F_CHANNELS_OK,
                {"channels": ", ".join(listing.channels)},
            )
        )
    except ExchangeError as exc:
        out.append(Finding("channels", exc.rule, "fail", exc.message, _plain(exc.params)))
    try:
        check_policy(
            listing.contract_policy, asset_id=listing.asset_id, seller_id=listing.seller_id
        )
        out.append(Finding("policy", _rid("listing_policy"), "pass", F_POLICY_OK))
    except ExchangeError as exc:
        out.append(Finding("policy", exc.rule, "fail", exc.message, _plain(exc.params)))
    try:
        _, total = check_sharing(session, listing.revenue_sharing or [])
        out.append(
            Finding("sharing", _rid("listing_sharing"), "pass", F_SHARING_OK, {"total": total})
        )
    except ExchangeError as exc:
        out.append(Finding("sharing", exc.rule, "fail", exc.message, _plain(exc.params)))
    return out


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """A refusal's parameters kept as a finding's."""
    return dict(params)


def preflight(
    session: Session, actor: Principal, listing_id: str, *, on: date, consent_basis: str = ""
) -> list[Finding]:
    """The automatic checks as they would run on submission (nothing is written)."""
    listing = get_listing(session, actor, listing_id)
    if actor.party_id not in (listing.seller_id, listing.broker_id) and not is_operator(actor):
        raise ExchangeForbidden(MSG_NOT_SELLER, rule=_rid("listing_seller"))
    return automatic_checks(session, listing, on=on, consent_basis=consent_basis)


def _digest(value: Any) -> str:
    return hashlib.sha256(ledger.canonical_json(value)).hexdigest()


def submit_listing(
    session: Session,
    actor: Principal,
    listing_id: str,
    *,
    keys: PartyKeys,
    confirm: bool,
    consent_basis: str = "",
    on: date,
    now: datetime,
) -> ExchangeListing:
    """The seller's administrator confirms and signs the declaration and commitment; the
    automatic checks run (a failing one refuses, naming every failure); the listing goes to the
    compliance assessors' queue with a review holding the findings."""
    listing = _lock(session, listing_id)
    if listing is None or not _visible(session, actor, listing):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rid("listing_visible"))
    if actor.party_id != listing.seller_id or not actor.can(P.EXCHANGE_CONTRACT_SIGN):
        raise ExchangeForbidden(MSG_NOT_SELLER_ADMIN, rule=_rid("listing_declaration"))
    state = ListingState(listing.state)
    if state not in (ListingState.DRAFT, ListingState.RETURNED):
        raise ExchangeStateConflict(
            MSG_STATE,
            rule=_rid("listing_state"),
            field="state",
            state=state.value,
            action="submit",
        )
    if not confirm:
        raise ExchangeInvalid(MSG_CONFIRM, rule=_rid("listing_declaration"), field="confirm")
    findings = automatic_checks(session, listing, on=on, consent_basis=consent_basis)
    if _findings_failed(findings):
        raise ListingChecksFailed(MSG_CHECKS, findings)
    text = declaration_text()
    signer_key = keys.signer(listing.seller_id).verifier().key_string()
    record: dict[str, Any] = {
        "type": "exchange.listing.declaration",
        "version": str(text["version"]),
        "items": [{"id": i["id"], "zh": i["zh"], "en": i["en"]} for i in text["items"]],
        "listing": {
            "id": listing.id,
            "number": listing.number,
            "asset_id": listing.asset_id,
            "right_id": listing.right_id,
            "certificate": listing.certificate_number,
            "price_model": listing.price_model,
            "price_fen": listing.price_fen,
            "channels": list(listing.channels),
            "term_days": listing.term_days,
            "policy_sha256": _digest(listing.contract_policy),
            # What else binds the seller: who is paid from each sale, how many licences, to whom
            # it is offered and where, and who prepares it for the seller.
            "title": listing.title,
            "period": listing.period,
            "total_quantity": listing.total_quantity,
            "revenue_sharing": list(listing.revenue_sharing or []),
            "access": dict(listing.access or {}),
            "placement": listing.placement,
            "zone": listing.zone,
            "broker_id": listing.broker_id,
            "cross_border": listing.cross_border,
        },
        "consent_basis": squash(consent_basis),
        "seller_id": listing.seller_id,
        "signed_by": actor.user_id,
        "signed_by_name": actor.username,
        "signed_at": now.isoformat(),
        "signer_key": signer_key,
    }
    signature = keys.sign(listing.seller_id, record)
    source = _move(listing, ListingState.SUBMITTED, "submit", allowed=[state])
    listing.declaration = record
    listing.declaration_signature = signature.signature
    listing.declared_by = actor.user_id or None
    listing.declared_at = now
    listing.reason, listing.reason_params, listing.rules = "", None, []
    listing.updated_at = now
    session.add(
        ExchangeListingReview(listing_id=listing.id, findings=[f.as_dict() for f in findings])
    )
    _record(
        session,
        listing,
        "submit",
        source,
        actor=actor,
        rule_ids=sorted({f.rule for f in findings} | {_rid("listing_declaration")}),
    )
    return listing


def end_by_seller(
    session: Session, actor: Principal, listing_id: str, action: str, reason: str, *, now: datetime
) -> ExchangeListing:
    """The seller withdraws its draft (or a returned listing), or delists its published one."""
    if action not in SELLER_ENDS:
        raise ExchangeInvalid(
            MSG_DECISION, rule=_rid("listing_review"), field="action", value=action
        )
    listing = _lock(session, listing_id)
    if listing is None or not _visible(session, actor, listing):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rid("listing_visible"))
    if actor.party_id != listing.seller_id or not actor.can(P.EXCHANGE_LISTING_WRITE):
        raise ExchangeForbidden(MSG_NOT_SELLER, rule=_rid("listing_seller"))
    text = _reason(reason, "listing_state")
    allowed, target = SELLER_ENDS[action]
    source = _move(listing, target, action, allowed=allowed)
    listing.reason, listing.rules, listing.updated_at = text, [_rid("listing_state")], now
    _record(session, listing, action, source, actor=actor, reason=text, rule_ids=listing.rules)
    if source in (ListingState.PUBLISHED.value, ListingState.SUSPENDED.value):
        _ledger(session, listing, "exchange.listing.delisted", now, reason=text)
    return listing


# --- the review -------------------------------------------------------------------------------


def latest_review(session: Session, listing_id: str) -> ExchangeListingReview | None:
    return session.scalars(
        select(ExchangeListingReview)
        .where(ExchangeListingReview.listing_id == listing_id)
        .order_by(ExchangeListingReview.created_at.desc(), ExchangeListingReview.id.desc())
        .limit(1)
    ).first()


def check_checklist(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The assessor's checklist: every item of the rules file once, pass / fail / na, a note
    for each failure; na only where the item may not apply."""
    rule = _rid("listing_assessment")
    wanted = {str(i["id"]): i for i in checklist()}
    given: dict[str, Mapping[str, Any]] = {}
    unknown: list[str] = []
    for item in items:
        key = str(item.get("id", "")) if isinstance(item, Mapping) else ""
        if key not in wanted or key in given or item.get("outcome") not in OUTCOMES:
            unknown.append(key or "?")
            continue
        given[key] = item
    missing = sorted(set(wanted) - set(given)) + unknown
    if missing:
        raise ExchangeInvalid(
            MSG_CHECKLIST, rule=rule, field="checklist", missing=", ".join(missing)
        )
    out: list[dict[str, Any]] = []
    for key, spec in wanted.items():
        item = given[key]
        note = squash(str(item.get("note") or ""))[:MAX_REASON]
        if item["outcome"] == "na" and not spec.get("na"):
            raise ExchangeInvalid(
                MSG_CHECKLIST_NA, rule=rule, field=f"checklist.{key}", item=spec["zh"]
            )
        if item["outcome"] == "fail" and not note:
            raise ExchangeInvalid(
                MSG_CHECKLIST_NOTE, rule=rule, field=f"checklist.{key}", item=spec["zh"]
            )
        out.append(
            {
                "id": key,
                "group": spec["group"],
                "rule": _rid(str(spec["rule"])),
                "outcome": item["outcome"],
                "note": note,
            }
        )
    return out


def assess_listing(
    session: Session,
    actor: Principal,
    listing_id: str,
    *,
    items: Sequence[Mapping[str, Any]],
    opinion: str,
    confirm: bool,
    keys: PartyKeys,
    now: datetime,
) -> ExchangeListing:
    """A compliance assessor signs its checklist and opinion: all pass (or n/a) → assessed, for
    the exchange's review; any failure → returned to the seller with the opinion."""
    rule = _rid("listing_assessment")
    if not is_assessor(session, actor):
        raise ExchangeForbidden(MSG_NOT_ASSESSOR, rule=rule)
    listing = _lock(session, listing_id)
    if listing is None or not _visible(session, actor, listing):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rid("listing_visible"))
    if review_conflict(session, listing, actor.party_id):
        raise ExchangeForbidden(MSG_ASSESSOR_CONFLICT, rule=rule)
    state = ListingState(listing.state)
    if state is not ListingState.SUBMITTED:
        raise ExchangeStateConflict(
            MSG_STATE,
            rule=_rid("listing_state"),
            field="state",
            state=state.value,
            action="assess",
        )
    done = check_checklist(items)
    text = squash(opinion)
    if not text or len(text) > MAX_REASON:
        raise ExchangeInvalid(MSG_OPINION, rule=rule, field="opinion", max=MAX_REASON)
    if not confirm:
        raise ExchangeInvalid(MSG_CONFIRM, rule=rule, field="confirm")
    review = latest_review(session, listing.id)
    if review is None:  # pragma: no cover - every submission creates one
        review = ExchangeListingReview(listing_id=listing.id, findings=[])
        session.add(review)
    passed = all(i["outcome"] != "fail" for i in done)
    record: dict[str, Any] = {
        "type": "exchange.listing.assessment",
        "listing_id": listing.id,
        "number": listing.number,
        "asset_id": listing.asset_id,
        "certificate": listing.certificate_number,
        "declaration_signature": listing.declaration_signature,
        "findings": list(review.findings or []),
        "checklist": done,
        "opinion": text,
        "outcome": "pass" if passed else "fail",
        "assessor_party_id": actor.party_id,
        "assessor_user_id": actor.user_id,
        "assessor_name": actor.username,
        "signed_at": now.isoformat(),
        "rules_version": rules().version,
    }
    signature = keys.sign(actor.party_id, record)
    review.assessor_party_id = actor.party_id
    review.assessor_user_id = actor.user_id or None
    review.checklist = done
    review.opinion = text
    review.record = record
    review.signature = signature.signature
    review.signing_key = signature.key
    review.signed_at = now
    target = ListingState.ASSESSED if passed else ListingState.RETURNED
    source = _move(listing, target, "assess", allowed=[ListingState.SUBMITTED])
    failed = sorted({i["rule"] for i in done if i["outcome"] == "fail"})
    listing.reason = "" if passed else text
    listing.rules = [rule, *failed]
    listing.updated_at = now
    _record(session, listing, "assess", source, actor=actor, reason=text, rule_ids=listing.rules)
    _notify(session, listing, text)
    return listing


def _ledger(
    session: Session, listing: ExchangeListing, kind: str, now: datetime, *, reason: str = ""
) -> int:
    """The listing's public fact on the ledger (ids and hashes only: the ledger is public)."""
    return ledger.append_event(
        session,
        kind,
        {
            "listing_id": listing.id,
            "number": listing.number,
            "asset_id": listing.asset_id,
            "right_id": listing.right_id,
            "certificate": listing.certificate_number,
            "seller_id": listing.seller_id,
            "state": listing.state,
            "price_model": listing.price_model,
            "price_fen": listing.price_fen,
            "declaration_sha256": _digest(listing.declaration) if listing.declaration else None,
            "reason_sha256": hashlib.sha256(reason.encode()).hexdigest() if reason else None,
            "at": now.isoformat(),
        },
    )


def decide_listing(
    session: Session,
    actor: Principal,
    listing_id: str,
    action: str,
    *,
    reason: str = "",
    zone_approved: bool = True,
    on: date,
    now: datetime,
) -> ExchangeListing:
    """The exchange operator's decision, with its reason: approve (→ published, on the ledger;
    a zone placement approved or moved to the mall), return, refuse, suspend, resume, delist."""
    rule = _rid("listing_review")
    require(actor, P.EXCHANGE_LISTING_REVIEW)
    if action not in DECISIONS:
        raise ExchangeInvalid(MSG_DECISION, rule=rule, field="action", value=action)
    listing = _lock(session, listing_id)
    if listing is None:
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rid("listing_visible"))
    if action in CONFLICTED_DECISIONS and review_conflict(session, listing, actor.party_id):
        raise ExchangeForbidden(
            MSG_REVIEW_CONFLICT,
            rule=_rid("listing_separation"),
            number=listing.number,
            action=action,
        )
    allowed, target = DECISIONS[action]
    if ListingState(listing.state) not in allowed:
        raise ExchangeStateConflict(
            MSG_STATE, rule=_rid("listing_state"), field="state", state=listing.state, action=action
        )
    text = squash(reason)[:MAX_REASON] if action == "approve" else _reason(reason)
    rule_ids = [rule]
    if action in ("approve", "resume"):
        findings = automatic_checks(
            session,
            listing,
            on=on,
            consent_basis=str((listing.declaration or {}).get("consent_basis", "")),
        )
        if _findings_failed(findings):
            message = MSG_APPROVE_CHECKS if action == "approve" else MSG_RESUME_CHECKS
            raise ListingChecksFailed(message, findings)
    if action == "approve" and listing.placement == Placement.ZONE.value:
        rule_ids.append(_rid("listing_zone"))
        if zone_approved:
            listing.zone_approved_by = actor.party_id
        else:
            listing.placement, listing.zone, listing.zone_approved_by = "mall", None, None
    source = _move(listing, target, action, allowed=allowed)
    listing.reason = text
    listing.rules = rule_ids
    listing.updated_at = now
    if action == "approve":
        listing.published_at = now
    review = latest_review(session, listing.id)
    if review is not None and action in ("approve", "return", "refuse") and review.decision is None:
        review.decision = action
        review.decided_by = actor.user_id or None
        review.decided_at = now
    _record(session, listing, action, source, actor=actor, reason=text, rule_ids=rule_ids)
    if action in ("approve", "suspend", "resume", "delist"):
        kinds = {
            "approve": "exchange.listing.published",
            "suspend": "exchange.listing.suspended",
            "resume": "exchange.listing.resumed",
            "delist": "exchange.listing.delisted",
        }
        _ledger(session, listing, kinds[action], now, reason=text)
    _notify(session, listing, text)
    return listing


# --- reading ----------------------------------------------------------------------------------


def _audience_clause(viewer: Principal | None, verified: bool) -> ColumnElement[bool]:
    audience: ColumnElement[str] = ExchangeListing.access["audience"].as_string()
    if viewer is None:
        return audience == "public"
    clauses: list[ColumnElement[bool]] = [audience == "public"]
    if verified:
        clauses.append(audience == "verified")
        clauses.append(
            and_(
                audience == "parties",
                cast(ExchangeListing.access, Text).like(f'%"{viewer.party_id}"%'),
            )
        )
    return or_(*clauses)


# A listing that was once published stays known to its audience (a buyer sees that it was
# suspended or delisted); one that never was is known only to its seller, broker and reviewers.
ONCE_PUBLISHED: Final = (
    ListingState.PUBLISHED.value,
    ListingState.SUSPENDED.value,
    ListingState.DELISTED.value,
)


def visibility(
    session: Session, viewer: Principal | None, states: Sequence[str] = ONCE_PUBLISHED
) -> ColumnElement[bool]:
    """Which listings ``viewer`` may see: every one for the operator and supervisors; its own
    party's (as seller or broker) in every state; listings under assessment for a compliance
    assessor; otherwise listings in ``states`` whose audience includes the viewer."""
    if _sees_all(viewer):
        return true()
    verified = viewer is not None and _verified(session, viewer)
    published = and_(
        ExchangeListing.state.in_(list(states)),
        _audience_clause(viewer, verified),
    )
    if viewer is None or not verified:
        return published
    mine = or_(
        ExchangeListing.seller_id == viewer.party_id, ExchangeListing.broker_id == viewer.party_id
    )
    clauses: list[ColumnElement[bool]] = [published, mine]
    if is_assessor(session, viewer):
        assessed = select(ExchangeListingReview.listing_id).where(
            ExchangeListingReview.assessor_party_id == viewer.party_id
        )
        clauses.append(ExchangeListing.state == ListingState.SUBMITTED.value)
        clauses.append(ExchangeListing.id.in_(assessed))
    return or_(*clauses)


def _verified(session: Session, viewer: Principal) -> bool:
    if not viewer.can(P.EXCHANGE_LISTING_READ):
        return False
    info = party_info(session, viewer.party_id)
    return info is not None and info.verified


def _visible(session: Session, viewer: Principal | None, listing: ExchangeListing) -> bool:
    if _sees_all(viewer):
        return True
    found = session.scalar(
        select(literal(1)).where(ExchangeListing.id == listing.id, visibility(session, viewer))
    )
    return found is not None


def get_listing(session: Session, viewer: Principal | None, listing_id: str) -> ExchangeListing:
    """A listing the viewer may see; any other id answers 'not found'."""
    if not plain_id(listing_id):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rid("listing_visible"))
    row = session.scalar(
        select(ExchangeListing).where(ExchangeListing.id == listing_id, visibility(session, viewer))
    )
    if row is None:
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rid("listing_visible"))
    return row


@dataclass(frozen=True)
class ListingQuery:
    """The marketplace filters. ``mine``: only the viewer's party's listings (as seller or
    broker), in every state; ``state``: one state (the operator's and the seller's views)."""

    q: str = ""
    kind: str | None = None
    industry: str | None = None
    region: str | None = None
    price_model: str | None = None
    channel: str | None = None
    placement: str | None = None
    zone: str | None = None
    price_min_fen: int | None = None
    price_max_fen: int | None = None
    state: str | None = None
    mine: bool = False
    seller_id: str | None = None


def list_listings(
    session: Session,
    viewer: Principal | None,
    query: ListingQuery,
    *,
    limit: int,
    offset: int,
) -> tuple[list[ExchangeListing], int]:
    """The listings the viewer may see that match ``query``: ranked by the search when there is
    one, newest first otherwise. A filter no listing can match (an unknown channel, a price
    beyond the cap, a value with control characters) answers an empty page, never an error."""
    filters = (
        query.kind,
        query.industry,
        query.region,
        query.price_model,
        query.channel,
        query.placement,
        query.zone,
        query.state,
        query.seller_id,
    )
    cap = int(values()["max_price_fen"])
    if (
        any(f is not None and not plain_id(f) for f in filters)
        or (query.channel and query.channel not in {c.value for c in Channel})
        or (query.price_min_fen is not None and query.price_min_fen > cap)
        or (query.price_max_fen is not None and query.price_max_fen < 0)
    ):
        return [], 0
    price_max = (
        query.price_max_fen if query.price_max_fen is None else min(query.price_max_fen, cap)
    )
    known = ONCE_PUBLISHED if query.state else (ListingState.PUBLISHED.value,)
    stmt = select(ExchangeListing).where(visibility(session, viewer, known))
    if query.mine:
        if viewer is None:
            return [], 0
        stmt = stmt.where(
            or_(
                ExchangeListing.seller_id == viewer.party_id,
                ExchangeListing.broker_id == viewer.party_id,
            )
        )
    for column, value in (
        (ExchangeListing.kind, query.kind),
        (ExchangeListing.industry, query.industry),
        (ExchangeListing.price_model, query.price_model),
        (ExchangeListing.placement, query.placement),
        (ExchangeListing.zone, query.zone),
        (ExchangeListing.state, query.state),
        (ExchangeListing.seller_id, query.seller_id),
    ):
        if value:
            stmt = stmt.where(column == value)
    if query.region:
        # A region filter finds listings in the region or any division inside it.
        region = query.region
        if re.fullmatch(r"[1-9][0-9]0000", region):
            stmt = stmt.where(ExchangeListing.region.like(f"{region[:2]}%"))
        elif re.fullmatch(r"[1-9][0-9]{3}00", region):
            stmt = stmt.where(ExchangeListing.region.like(f"{region[:4]}%"))
        else:
            stmt = stmt.where(ExchangeListing.region == region)
    if query.channel:
        stmt = stmt.where(cast(ExchangeListing.channels, Text).like(f'%"{query.channel}"%'))
    if query.price_min_fen is not None:
        stmt = stmt.where(ExchangeListing.price_fen >= query.price_min_fen)
    if price_max is not None:
        stmt = stmt.where(ExchangeListing.price_fen <= price_max)
    tokens = query_tokens(query.q)
    order: list[Any] = []
    if tokens:
        matched, score = _search_clause(tokens)
        stmt = stmt.where(matched)
        order.append(score.desc())
    elif query.q.strip():
        stmt = stmt.where(false())
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order += [
        func.coalesce(ExchangeListing.published_at, ExchangeListing.updated_at).desc(),
        ExchangeListing.id,
    ]
    rows = session.scalars(stmt.order_by(*order).limit(limit).offset(offset))
    return list(rows), total


def listing_events(
    session: Session, viewer: Principal | None, listing_id: str
) -> list[ExchangeListingEvent]:
    """A listing's history: for its seller and broker, the assessors and the operator (buyers see
    the listing, not how it was reviewed)."""
    listing = get_listing(session, viewer, listing_id)
    if not may_see_review(session, viewer, listing):
        return []
    return list(
        session.scalars(
            select(ExchangeListingEvent)
            .where(ExchangeListingEvent.listing_id == listing.id)
            .order_by(ExchangeListingEvent.id)
        )
    )


def listing_reviews(
    session: Session, viewer: Principal | None, listing_id: str
) -> list[ExchangeListingReview]:
    listing = get_listing(session, viewer, listing_id)
    if not may_see_review(session, viewer, listing):
        return []
    return list(
        session.scalars(
            select(ExchangeListingReview)
            .where(ExchangeListingReview.listing_id == listing.id)
            .order_by(ExchangeListingReview.created_at, ExchangeListingReview.id)
        )
    )


def may_see_review(session: Session, viewer: Principal | None, listing: ExchangeListing) -> bool:
    """Who sees how a listing was prepared and reviewed (its history, findings, assessment, named
    audience and revenue-sharing agreement): the operator and supervisors, its seller and broker,
    and a compliance assessor while the listing waits for it (no conflict of interest) or once
    its firm assessed it — not every assessor, nor buyers."""
    if viewer is None:
        return False
    if _sees_all(viewer):
        return True
    if not viewer.party_id:
        return False
    if viewer.party_id in (listing.seller_id, listing.broker_id):
        return True
    if not is_assessor(session, viewer):
        return False
    if listing.state == ListingState.SUBMITTED.value and not assessor_conflict(
        listing, viewer.party_id
    ):
        return True
    assessed = session.scalar(
        select(literal(1))
        .where(
            ExchangeListingReview.listing_id == listing.id,
            ExchangeListingReview.assessor_party_id == viewer.party_id,
        )
        .limit(1)
    )
    return assessed is not None


def review_queue(
    session: Session, viewer: Principal, *, limit: int = 100
) -> dict[str, list[ExchangeListing]]:
    """What waits for the viewer: a compliance assessor's listings to assess, the operator's
    listings to decide (assessed, and submitted ones it may return or refuse early), and the
    published and suspended ones it may suspend, resume or delist."""
    out: dict[str, list[ExchangeListing]] = {}

    def rows(*states: ListingState) -> list[ExchangeListing]:
        return list(
            session.scalars(
                select(ExchangeListing)
                .where(ExchangeListing.state.in_([s.value for s in states]))
                .order_by(ExchangeListing.updated_at, ExchangeListing.id)
                .limit(limit)
            )
        )

    brokered = brokered_sellers(session, viewer.party_id)

    def free(found: list[ExchangeListing]) -> list[ExchangeListing]:
        """Without the listings the viewer's party has an interest in (EXC-LST-SEPARATION)."""
        return [
            r for r in found if not review_conflict(session, r, viewer.party_id, brokered=brokered)
        ]

    if is_assessor(session, viewer):
        out["assess"] = free(rows(ListingState.SUBMITTED))
    if is_operator(viewer):
        out["decide"] = free(rows(ListingState.ASSESSED))
        out["submitted"] = free(rows(ListingState.SUBMITTED))
        out["suspended"] = rows(ListingState.SUSPENDED)
    return out


def party_names(session: Session, party_ids: Iterable[str]) -> dict[str, str]:
    """The registered names of ``party_ids``, in one query (an unknown id: its first 8 characters)."""
    wanted = {p for p in party_ids if p and plain_id(p)}
    found = identity.counterparty_names(session, _READER, wanted)
    return {p: found.get(p, p[:8]) for p in wanted}


def seller_names(session: Session, listings: Iterable[ExchangeListing]) -> dict[str, str]:
    """The sellers' (and brokers') registered names: public market information (one query for a
    whole page)."""
    return party_names(session, {x for r in listings for x in (r.seller_id, r.broker_id) if x})


def listing_item(row: ExchangeListing, names: Mapping[str, str]) -> dict[str, Any]:
    """A listing as ``GET /api/v1/listings`` and ``datafactor exchange listings --json`` show it
    (the first five keys are stable for integrators)."""
    return {
        "id": row.id,
        "title": row.title,
        "price_fen": row.price_fen,
        "remaining_quantity": row.remaining_quantity,
        "status": row.state,
        "number": row.number,
        "title_en": row.title_en,
        "summary": row.summary,
        "kind": row.kind,
        "industry": row.industry,
        "region": row.region,
        "tags": list(row.tags or []),
        "price_model": row.price_model,
        "period": row.period,
        "channels": list(row.channels or []),
        "term_days": row.term_days,
        "total_quantity": row.total_quantity,
        "placement": row.placement,
        "zone": row.zone,
        "zone_approved": row.zone_approved_by is not None,
        "seller_id": row.seller_id,
        "seller_name": names.get(row.seller_id, row.seller_id[:8]),
        "broker_id": row.broker_id,
        "certificate_number": row.certificate_number,
        "cross_border": row.cross_border,
        "published_at": row.published_at.isoformat() if row.published_at else None,
    }


# --- the trades' interface --------------------------------------------------------------------


def tradable_listing(
    session: Session, listing_id: str, *, buyer: Principal, on: date, lock: bool = False
) -> ExchangeListing:
    """The published listing ``buyer`` may see and buy now (locked FOR UPDATE when ``lock``, its
    attributes re-read from the locked row). What a buyer may buy follows the listing's audience
    alone: an operator or supervisor who may *see* every listing buys only what is offered to it.
    The checks are ``trade_listing``'s (``_check_tradable``), the registry's part cached alike
    under the registry's revision, read here once the listing is loaded (locked): on PostgreSQL
    a statement of its own, so it sees every registry change committed before the lock was
    granted."""
    if not plain_id(listing_id):
        raise ExchangeNotFound(MSG_NOT_VISIBLE_BUY, rule=_rid("listing_visible"))
    stmt = select(ExchangeListing).where(ExchangeListing.id == listing_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    listing = session.scalar(stmt)
    if listing is None:
        raise ExchangeNotFound(MSG_NOT_VISIBLE_BUY, rule=_rid("listing_visible"))
    revision = session.scalar(select(_REVISION_VALUE))
    _check_tradable(session, listing, buyer, on, revision=revision)
    return listing


def check_seller_right(session: Session, listing: ExchangeListing | TradeListing, on: date) -> None:
    """The seller still holds the listing's product-operation right, in force on ``on``, with
    an active certificate — at every trade and at every signature (refused otherwise; a pledged
    right is refused as pledged: it is not licensed until the pledgee releases it)."""
    cert_rule = _rid("listing_certificate")
    right = registry.right_of(session, listing.right_id)
    if (
        right is None
        or right.kind is not registry.RightKind.PRODUCT_OPERATION
        or right.holder_id != listing.seller_id
        or not right.in_force(on)
    ):
        status = "unknown" if right is None else right.status.value
        if right is not None and right.holder_id != listing.seller_id:
            status = "held by another party"
        raise ExchangeStateConflict(MSG_RIGHT_GONE, rule=cert_rule, status=status)
    current = registry.current_certificate(session, right.id)
    status = "missing" if current is None else _certificate_status(right, current[1], on)
    if current is None or status != registry.CertificateStatus.ACTIVE.value:
        pledged = status == registry.CertificateStatus.PLEDGED.value
        raise ExchangeStateConflict(
            MSG_PLEDGED if pledged else MSG_CERT_NOT_ACTIVE,
            rule=cert_rule,
            certificate=current[0] if current else listing.certificate_number,
            status=status,
        )


@dataclass(frozen=True, slots=True)
class TitleDispute:
    """An open title dispute on a listing's right as the registry sees it on a day
    (``open_dispute``): the ids of the objection registrations and objections that make it, and
    the rule that pauses trading while it lasts. The refusal of a trade (``refusal``) and the
    notice the pages and the API show before one (``MSG_DISPUTE_NOTICE`` with ``params``) are
    made from this one value, so the page and the refusal never disagree."""

    disputes: tuple[str, ...]
    rule: str
    number: str
    certificate: str

    @property
    def params(self) -> dict[str, str]:
        """The values of ``MSG_DISPUTED`` and ``MSG_DISPUTE_NOTICE``."""
        return {
            "number": self.number,
            "certificate": self.certificate,
            "disputes": ", ".join(self.disputes),
            "rule": self.rule,
        }

    def refusal(self) -> ExchangeStateConflict:
        """The trade's refusal (409, EXC-LST-DISPUTE), naming the disputes."""
        return ExchangeStateConflict(
            MSG_DISPUTED,
            rule=self.rule,
            number=self.number,
            certificate=self.certificate,
            disputes=", ".join(self.disputes),
        )


def open_dispute(
    session: Session, listing: ExchangeListing | TradeListing, on: date
) -> TitleDispute | None:
    """The open title dispute on the listing's right or any right its title rests on, as the
    registry sees it on ``on`` (``registry.title_disputes``): an objection registration in force
    or substantiated, an objection lodged during a notice and not yet decided — None when there
    is none. What ``check_no_dispute`` refuses on, and what the listing, auction, negotiation and
    contract pages (and ``GET /api/v1/listings/{id}``) show before anyone clicks."""
    disputes = registry.title_disputes(session, listing.right_id, today=on)
    if not disputes:
        return None
    return TitleDispute(
        tuple(disputes), _rid("listing_dispute"), listing.number, listing.certificate_number
    )


def check_no_dispute(session: Session, listing: ExchangeListing | TradeListing, on: date) -> None:
    """No open title dispute (``open_dispute``) on ``on``. Refused (409, EXC-LST-DISPUTE) while
    there is one; trading resumes when the registry closes it."""
    found = open_dispute(session, listing, on)
    if found is not None:
        raise found.refusal()


def _limited_take(listing: ExchangeListing | TradeListing, quantity: int) -> bool:
    """Whether ``quantity`` licences are to be taken from a limited ``listing`` (False when it is
    unlimited); refuses a quantity that is not a positive whole number, or more than are left."""
    rule = _rid("listing_quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ExchangeInvalid(MSG_QUANTITY_ASKED, rule=rule, field="quantity")
    if listing.remaining_quantity is None:
        return False
    if listing.remaining_quantity < quantity:
        raise ExchangeStateConflict(
            MSG_SOLD_OUT,
            rule=rule,
            field="quantity",
            remaining=listing.remaining_quantity,
            number=listing.number,
            quantity=quantity,
        )
    return True


def take_quantity(session: Session, listing: ExchangeListing, quantity: int) -> None:
    """Under the caller's row lock: take ``quantity`` licences of a limited listing."""
    if _limited_take(listing, quantity):
        assert listing.remaining_quantity is not None
        listing.remaining_quantity -= quantity
        session.flush()


# --- the trade's hot path ---------------------------------------------------------------------
#
# ``trade_listing`` is ``tradable_listing(..., lock=True)`` for the mall order, which every trade
# runs: one compiled statement (``fastsql``) locks the listing's row and reads, with it, the
# buyer's and the seller's party rows, the registry's revision and the listing's latest review —
# where the ORM path read them in seven statements — and the checks run in Python in the same
# order, with the same refusals (``_check_tradable``, shared with ``tradable_listing``). The
# registry's part (the seller's right in force, its certificate active, no open title dispute,
# the product not core data) is cached per database under the registry's revision counter, which
# every write of a right, certificate, asset, lineage link, objection registration or notice
# objection bumps in its transaction (``registry.revision_value``): a check that passed at the
# revision read in this transaction holds for everything that revision covers, so it is re-run
# only when the registry changed (or the day did).

_L: Table = ExchangeListing.__table__  # type: ignore[assignment]
_REVIEW: Table = ExchangeListingReview.__table__  # type: ignore[assignment]
# The registry's revision and the parties' cards through their owners' surfaces (a scalar
# subquery, an aliased table): the trade reads one column of the first and a party's card of
# the second in its locking statement.
_REVISION_VALUE: Final = registry.revision_value()
_PARTY_COLUMNS: Final = (
    "id",
    "kind",
    "service_role",
    "name",
    "name_en",
    "code_type",
    "code",
    "country",
    "status",
)
_BUYER = identity.party_card_table("buyer_party")
_SELLER = identity.party_card_table("seller_party")
_TRADE_COLUMNS: Final = (
    "id",
    "number",
    "state",
    "asset_id",
    "right_id",
    "certificate_number",
    "seller_id",
    "broker_id",
    "kind",
    "title",
    "title_en",
    "price_model",
    "price_fen",
    "period",
    "channels",
    "term_days",
    "contract_policy",
    "access",
    "total_quantity",
    "remaining_quantity",
    "cross_border",
    "declaration",
    "declared_at",
)
_ORDER: Table = ExchangeOrder.__table__  # type: ignore[assignment]
# The order the buyer's key already placed, the listing's latest review and the registry's
# revision, with the buyer's and the seller's cards: what a trade reads besides the listing.
_TRADE_READS: Final = (
    _REVISION_VALUE.label("revision"),
    select(_ORDER.c.id)
    .where(_ORDER.c.buyer_id == bindparam("buyer"), _ORDER.c.idempotency_key == bindparam("key"))
    .scalar_subquery()
    .label("placed_id"),
    select(_REVIEW.c.id)
    .where(_REVIEW.c.listing_id == bindparam("listing_id"))
    .order_by(_REVIEW.c.created_at.desc(), _REVIEW.c.id.desc())
    .limit(1)
    .scalar_subquery()
    .label("review_id"),
    *(_BUYER.c[name] for name in _PARTY_COLUMNS),
    *(_SELLER.c[name] for name in _PARTY_COLUMNS),
)
# SQLite (one writer at a time: nothing changes while this transaction runs): all in one.
_TRADE_LISTING: Final = Plan(
    select(*(_L.c[name] for name in _TRADE_COLUMNS), *_TRADE_READS)
    .select_from(_L)
    .outerjoin(_BUYER, _BUYER.c.id == bindparam("buyer"))
    .outerjoin(_SELLER, _SELLER.c.id == _L.c.seller_id)
    .where(_L.c.id == bindparam("listing_id"))
)
# PostgreSQL: the listing's row locked (re-read once the lock is held), then the rest read in a
# statement of its own — a statement's snapshot is taken before it waits for a lock and only the
# locked row is re-read then, so a right moved, a seller suspended or the buyer's twin request
# committed while this trade queued behind another would go unseen (and the registry's checks
# cached under the old revision would pass).
_LOCK_LISTING: Final = Plan(
    select(*(_L.c[name] for name in _TRADE_COLUMNS))
    .where(_L.c.id == bindparam("listing_id"))
    .with_for_update()
)
_AFTER_LOCK: Final = Plan(
    select(*_TRADE_READS).select_from(
        select(literal(1).label("one"))
        .subquery("one")
        .outerjoin(_BUYER, _BUYER.c.id == bindparam("buyer"))
        .outerjoin(_SELLER, _SELLER.c.id == bindparam("seller"))
    )
)
_TAKE_LICENCES: Final = Plan(
    update(_L)
    .where(_L.c.id == bindparam("listing_id"))
    .values(remaining_quantity=bindparam("remaining"))
)


@dataclass(frozen=True, slots=True)
class PartyRow:
    """A party's card as the trade reads it (what ``party_row`` holds for the unit of work)."""

    id: str
    kind: str
    service_role: str | None
    name: str
    name_en: str
    code_type: str
    code: str
    country: str
    status: str


@dataclass(slots=True)
class TradeListing:
    """The locked listing of a mall order: the columns the order, its contract and its document
    read (the same names as ``ExchangeListing``'s), and the latest review's id."""

    id: str
    number: str
    state: str
    asset_id: str
    right_id: str
    certificate_number: str
    seller_id: str
    broker_id: str | None
    kind: str
    title: str
    title_en: str
    price_model: str
    price_fen: int
    period: str | None
    channels: list[str]
    term_days: int
    contract_policy: dict[str, Any]
    access: dict[str, Any]
    total_quantity: int | None
    remaining_quantity: int | None
    cross_border: bool
    declaration: dict[str, Any] | None
    declared_at: datetime | None
    review_id: str | None
    # The order the buyer's key already placed, if any (read once the listing's lock is held).
    placed_id: str | None = None


def _audience_allows(access: Mapping[str, Any] | None, viewer: Principal, verified: bool) -> bool:
    """``_audience_clause`` evaluated on a row already read (the two must agree): a public
    listing; for a verified viewer also one for verified parties, and one naming its party (the
    access document's JSON text holds the party id in quotes)."""
    audience = access.get("audience") if isinstance(access, Mapping) else None
    if audience == "public":
        return True
    if not verified:
        return False
    if audience == "verified":
        return True
    return audience == "parties" and f'"{viewer.party_id}"' in json.dumps(access)


def _check_tradable(
    session: Session,
    listing: ExchangeListing | TradeListing,
    buyer: Principal,
    on: date,
    *,
    revision: int | None,
) -> None:
    """The one set of checks of a trade on ``listing``, for the ORM path (``tradable_listing``)
    and the mall order's compiled one (``trade_listing``) alike — the same refusals, rule ids
    and order: not offered to the buyer (404, EXC-LST-VISIBLE), the buyer not verified or the
    seller itself (403, EXC-LST-BUYER), not published (409, EXC-LST-STATE), the seller no longer
    verified (409, EXC-LST-SELLER), then the registry's part (``_registry_checks``). The parties
    are read through ``party_row``, which the compiled path fills from its locking statement."""
    buyer_info = party_info(session, buyer.party_id)
    verified = buyer.can(P.EXCHANGE_LISTING_READ) and buyer_info is not None and buyer_info.verified
    visible = (
        listing.state in ONCE_PUBLISHED and _audience_allows(listing.access, buyer, verified)
    ) or (bool(buyer.party_id) and listing.seller_id == buyer.party_id)
    if not visible:
        raise ExchangeNotFound(MSG_NOT_VISIBLE_BUY, rule=_rid("listing_visible"))
    buyer_rule = _rid("listing_buyer")
    if buyer_info is None or not buyer_info.verified:
        raise ExchangeForbidden(MSG_BUYER_UNVERIFIED, rule=buyer_rule)
    if buyer.party_id == listing.seller_id:
        raise ExchangeForbidden(MSG_BUYER_SELLER, rule=buyer_rule, number=listing.number)
    state = ListingState(listing.state)
    if state is not ListingState.PUBLISHED:
        raise ExchangeStateConflict(
            MSG_NOT_LISTED,
            rule=_rid("listing_state"),
            number=listing.number,
            state=state.value,
        )
    seller = party_info(session, listing.seller_id)
    if seller is None or not seller.verified:
        raise ExchangeStateConflict(
            MSG_SELLER_SUSPENDED, rule=_rid("listing_seller"), number=listing.number
        )
    _registry_checks(session, listing, on, revision)


# (revision, right, seller, asset, day) → the registry's checks passed; per database.
_REGISTRY_PASSED: Final[weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], bool]]] = (
    weakref.WeakKeyDictionary()
)
_REGISTRY_PASSED_MAX: Final = 4096


def _registry_checks(
    session: Session, listing: ExchangeListing | TradeListing, on: date, revision: int | None
) -> None:
    """The registry's part of a trade's checks: the seller's right held and in force with an
    active certificate (``check_seller_right``, EXC-LST-CERT), no open title dispute on it
    (``check_no_dispute``, EXC-LST-DISPUTE), the product not core data (403, EXC-LST-CORE).

    With the registry's ``revision`` read in this transaction, a pass is remembered per database
    under (revision, right, seller, asset, day) and not re-run: every write these checks read —
    a right, a certificate, an asset, a lineage link, an objection registration, an objection
    lodged during a notice — bumps the revision in its transaction, and what changes with time
    alone (a term, a certificate's validity, an objection registration's lapse) with the day. A
    refusal is never remembered. Without a revision (``None``) the checks run every time."""
    passed: dict[tuple[Any, ...], bool] | None = None
    checked: tuple[Any, ...] = ()
    if revision is not None:
        bind = session.get_bind()
        passed = _REGISTRY_PASSED.get(bind)
        if passed is None:
            passed = _REGISTRY_PASSED[bind] = {}
        checked = (int(revision), listing.right_id, listing.seller_id, listing.asset_id, on)
        if checked in passed:
            return
    check_seller_right(session, listing, on)
    check_no_dispute(session, listing, on)
    facts = registry.asset_facts(session, listing.asset_id)
    if facts is not None and facts.grade == discovery.Grade.CORE.value:
        raise ExchangeForbidden(MSG_CORE, rule=_rid("listing_core"))
    if passed is not None:
        if len(passed) >= _REGISTRY_PASSED_MAX:
            passed.clear()
        passed[checked] = True


def trade_listing(
    session: Session, raw: Raw, listing_id: str, *, buyer: Principal, on: date, key: str
) -> TradeListing:
    """``tradable_listing(session, listing_id, buyer=buyer, on=on, lock=True)`` for the mall
    order (see above): the same checks (``_check_tradable``), the listing's row locked — unless
    the buyer's ``key`` already placed an order (``placed_id``, read once the lock is held), which
    the caller answers instead. Refused 404 when there is no such listing."""
    if not plain_id(listing_id):
        raise ExchangeNotFound(MSG_NOT_VISIBLE_BUY, rule=_rid("listing_visible"))
    params = {"listing_id": listing_id, "buyer": buyer.party_id or "", "key": key}
    n = len(_TRADE_COLUMNS)
    if raw.is_sqlite:
        row = raw.first(_TRADE_LISTING, params)
        if row is None:
            raise ExchangeNotFound(MSG_NOT_VISIBLE_BUY, rule=_rid("listing_visible"))
        locked, reads = row[:n], row[n:]
    else:
        locked_row = raw.first(_LOCK_LISTING, params)
        if locked_row is None:
            raise ExchangeNotFound(MSG_NOT_VISIBLE_BUY, rule=_rid("listing_visible"))
        locked = locked_row
        after = raw.first(
            _AFTER_LOCK, {**params, "seller": locked[_TRADE_COLUMNS.index("seller_id")]}
        )
        assert after is not None  # one row always
        reads = after
    revision, placed_id, review_id = reads[:3]
    listing = TradeListing(*locked, review_id=review_id, placed_id=placed_id)  # type: ignore[misc]
    if placed_id is not None:
        return listing  # a replay: the caller answers the order already placed
    width = len(_PARTY_COLUMNS)
    buyer_row = PartyRow(*reads[3 : 3 + width]) if reads[3] is not None else None
    seller_row = PartyRow(*reads[3 + width :]) if reads[3 + width] is not None else None
    # What ``party_row`` would have read: the checks and the contract's cards come from these.
    held: dict[str, Any] = session.info.setdefault(_PARTIES, {})
    if buyer.party_id and plain_id(buyer.party_id):
        held[buyer.party_id] = buyer_row
    if listing.seller_id and plain_id(listing.seller_id):
        held[listing.seller_id] = seller_row
    _check_tradable(session, listing, buyer, on, revision=revision)
    return listing


def take_licences(raw: Raw, listing: TradeListing, quantity: int) -> None:
    """``take_quantity`` for the locked ``TradeListing`` (the same refusals)."""
    if not _limited_take(listing, quantity):
        return
    assert listing.remaining_quantity is not None
    listing.remaining_quantity -= quantity
    raw.execute(_TAKE_LICENCES, {"listing_id": listing.id, "remaining": listing.remaining_quantity})


# --- what the forms offer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sellable:
    """A product the viewer's party may list: its asset, name and active certificate."""

    asset_id: str
    name: str
    certificate: str


def sellable_products(session: Session, principal: Principal, *, on: date) -> list[Sellable]:
    """The products, services and tools on which the principal's party holds a product-operation
    right with an active certificate (what its listing form offers)."""
    try:
        rows, _ = registry.list_certificates(session, principal, limit=200, offset=0, today=on)
    except DomainError:
        return []
    return [
        Sellable(r.asset_id, r.asset_name, r.number)
        for r in rows
        if r.right_kind == registry.RightKind.PRODUCT_OPERATION.value
        and r.holder_id == principal.party_id
        and r.status == registry.CertificateStatus.ACTIVE.value
    ]


def brokers(session: Session) -> list[PartyInfo]:
    """The verified data brokers a seller may name."""
    parties, _ = identity.list_parties(
        session,
        _READER,
        identity.PartyQuery(
            status=identity.PartyStatus.VERIFIED.value, kind=identity.PartyKind.SERVICE_FIRM.value
        ),
        limit=500,
        offset=0,
    )
    return [
        PartyInfo(p.id, p.name, str(p.kind), True, str(p.service_role))
        for p in parties
        if p.service_role is not None and str(p.service_role) == identity.ServiceRole.BROKER.value
    ]
