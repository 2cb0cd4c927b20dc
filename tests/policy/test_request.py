"""Requests: exactly the documented keys, values checked and normalised, refusals naming the key."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from datafactor.policy import REQUEST_KEYS, InvalidRequest, PolicyError, Request, parse_request


def test_a_full_request_is_normalised_and_round_trips():
    request = parse_request(
        {
            "action": "odrl:read",
            "target": "urn:df:asset:1",
            "assignee": "urn:df:party:lab",
            "purpose": "research",
            "time": "2026-11-25T10:00:00+08:00",
            "spatial": "cn-gx",
            "channel": "api",
            "count_so_far": 3,
            "industry": "I65",
            "pay_amount": 1250,
            "fields": ["b", "a", "a"],
        }
    )
    assert request.action == "read"
    assert request.time is not None and request.time.utcoffset() == timedelta(hours=8)
    assert request.spatial == "CN-GX"
    assert request.fields == frozenset({"a", "b"})
    assert request.pay_amount == 1250
    assert parse_request(request.as_dict()) == request
    assert set(request.as_dict()) == set(REQUEST_KEYS)


def test_only_action_is_required():
    assert parse_request({"action": "use"}) == Request(action="use")
    with pytest.raises(InvalidRequest) as refused:
        parse_request({"purpose": "research"})
    assert refused.value.term == "action"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"action": "use", "purpose_code": "x"}, "purpose_code"),
        ({"action": "use", "time": "2026-11-25T10:00:00"}, "time"),  # naive
        ({"action": "use", "time": "yesterday"}, "time"),
        ({"action": "use", "spatial": "Guangxi"}, "spatial"),
        ({"action": "use", "spatial": "CN-ZZ"}, "spatial"),
        ({"action": "use", "spatial": "990100"}, "spatial"),
        ({"action": "use", "channel": "fax"}, "channel"),
        ({"action": "use", "count_so_far": -1}, "count_so_far"),
        ({"action": "use", "count_so_far": True}, "count_so_far"),
        ({"action": "use", "pay_amount": 12.5}, "pay_amount"),
        ({"action": "use", "pay_amount": "1250"}, "pay_amount"),
        ({"action": "use", "fields": "a,b"}, "fields"),
        ({"action": "use", "fields": ["a", ""]}, "fields"),
        ({"action": "use", "purpose": ""}, "purpose"),
        ({"action": "teleport"}, "teleport"),
        ({"action": "compensate"}, "compensate"),  # a duty, never requested
    ],
)
def test_bad_requests_are_refused_naming_the_key(data, key):
    with pytest.raises(PolicyError) as refused:
        parse_request(data)
    assert refused.value.term == key
    assert refused.value.rule in ("POL-REQUEST", "POL-UNKNOWN-TERM")


def test_gbt_2260_codes_are_places():
    assert parse_request({"action": "use", "spatial": "450102"}).spatial == "450102"


def test_python_datetimes_are_accepted_when_aware():
    moment = datetime.fromisoformat("2026-11-25T02:00:00+00:00")
    assert parse_request({"action": "use", "time": moment}).time == moment
    with pytest.raises(InvalidRequest):
        parse_request({"action": "use", "time": datetime(2026, 11, 25)})
