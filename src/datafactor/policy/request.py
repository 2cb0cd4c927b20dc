"""A request to act under a policy: ``Request`` and ``parse_request``.

A request is a JSON object with exactly the keys of ``REQUEST_KEYS``, all but ``action``
optional. Values are checked and normalised here so the engine compares ready values: ``time``
is an aware ``datetime`` (a naive time is refused: the engine would have to guess the zone);
``spatial`` is an upper-case ISO 3166 or GB/T 2260 code; ``pay_amount`` is whole fen (分, the
platform's money unit — 12.50 yuan is ``1250``); ``fields`` is a frozenset. Anything else — an
unknown key, an unknown action or channel, a negative count — is refused with the key named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from datafactor.errors import N_
from datafactor.policy.errors import InvalidRequest, UnknownTerm
from datafactor.policy.rulebook import load_policy_rules
from datafactor.policy.vocabulary import ACTION_PARENTS, DF_NS, ODRL_NS, Channel, place_code

REQUEST_KEYS: Final = (
    "action",
    "target",
    "assignee",
    "purpose",
    "time",
    "spatial",
    "channel",
    "count_so_far",
    "industry",
    "pay_amount",
    "fields",
)
M_REQUEST_KEY: Final = N_("Unknown request key “{term}”: a request has only {known} (rule {rule}).")
M_REQUEST_VALUE: Final = N_("The request's “{term}” must be {expected} (rule {rule}).")


@dataclass(frozen=True, slots=True)
class Request:
    """What is asked: an action, and whatever the policy's constraints may need to know."""

    action: str
    target: str | None = None
    assignee: str | None = None
    purpose: str | None = None
    time: datetime | None = None
    spatial: str | None = None
    channel: str | None = None
    count_so_far: int | None = None
    industry: str | None = None
    pay_amount: int | None = None  # fen
    fields: frozenset[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The request as JSON (``parse_request(r.as_dict()) == r``)."""
        out: dict[str, Any] = {}
        for key in REQUEST_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, frozenset):
                value = sorted(value)
            out[key] = value
        return out


def _bad(key: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        M_REQUEST_VALUE,
        rule=load_policy_rules().rule_id("request"),
        term=key,
        path=key,
        expected=expected,
    )


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(key, "non-empty text")
    return value.strip()


def _whole(data: Mapping[str, Any], key: str, unit: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(key, f"a whole number ≥ 0 ({unit})")
    return value


def request_action(value: Any) -> str:
    """A requested action in compact form (``odrl:read`` → ``read``); unknown ones refused."""
    if not isinstance(value, str) or not value.strip():
        raise _bad("action", "an action, e.g. use, read, distribute")
    text = value.strip()
    for prefix, short in ((ODRL_NS, ""), ("odrl:", ""), (DF_NS, "df:")):
        if text.startswith(prefix):
            text = short + text[len(prefix) :]
    if text not in ACTION_PARENTS:
        raise UnknownTerm(
            M_REQUEST_VALUE,
            rule=load_policy_rules().rule_id("unknown_term"),
            term=text,
            path="action",
            expected="one of " + ", ".join(sorted(ACTION_PARENTS)),
        )
    return text


def parse_request(data: Mapping[str, Any]) -> Request:
    """Check and normalise a request; refuse unknown keys and malformed values."""
    if not isinstance(data, Mapping):
        raise _bad("request", "a JSON object")
    for key in data:
        if key not in REQUEST_KEYS:
            raise InvalidRequest(
                M_REQUEST_KEY,
                rule=load_policy_rules().rule_id("request"),
                term=str(key),
                path=str(key),
                known=", ".join(REQUEST_KEYS),
            )
    if data.get("action") is None:
        raise _bad("action", "given: the action requested (use, read, distribute ...)")
    action = request_action(data["action"])

    moment = None
    raw_time = data.get("time")
    if raw_time is not None:
        if isinstance(raw_time, datetime):
            moment = raw_time
        elif isinstance(raw_time, str):
            try:
                moment = datetime.fromisoformat(raw_time.strip())
            except ValueError:
                raise _bad("time", "an ISO 8601 date-time with offset") from None
        else:
            raise _bad("time", "an ISO 8601 date-time with offset")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise _bad("time", "an ISO 8601 date-time with its UTC offset (e.g. +08:00)")

    spatial = _text(data, "spatial")
    if spatial is not None:
        code = place_code(spatial)
        if code is None:
            raise _bad("spatial", "an ISO 3166 code (CN, CN-GX, VN) or a GB/T 2260 code (450100)")
        spatial = code

    channel = _text(data, "channel")
    if channel is not None and channel not in {c.value for c in Channel}:
        raise _bad("channel", "one of " + ", ".join(c.value for c in Channel))

    fields = None
    raw_fields = data.get("fields")
    if raw_fields is not None:
        if not isinstance(raw_fields, list | tuple | set | frozenset) or not all(
            isinstance(f, str) and f.strip() for f in raw_fields
        ):
            raise _bad("fields", "a list of field names")
        fields = frozenset(f.strip() for f in raw_fields)

    return Request(
        action=action,
        target=_text(data, "target"),
        assignee=_text(data, "assignee"),
        purpose=_text(data, "purpose"),
        time=moment,
        spatial=spatial,
        channel=channel,
        count_so_far=_whole(data, "count_so_far", "uses already made"),
        industry=_text(data, "industry"),
        pay_amount=_whole(data, "pay_amount", "fen: 12.50 yuan is 1250"),
        fields=fields,
    )
