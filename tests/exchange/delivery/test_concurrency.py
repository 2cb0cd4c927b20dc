"""A download token's count holds under concurrent use, on both databases: many downloads
racing on one token with three uses — exactly three are allowed, the rest refused and recorded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from registry_support import principal

from datafactor.db import utcnow
from datafactor.exchange import delivery
from datafactor.exchange.models import ExchangeDelivery, ExchangeDeliveryToken


def test_a_token_is_used_exactly_its_count_under_concurrent_downloads(db, settings, world):
    buyer = world.buyers[0]
    who = principal(db, buyer)
    access = delivery.data_access(settings)
    with db.write() as s:
        issued = delivery.issue_token(
            s,
            who,
            world.contract_of(buyer),
            channel="download",
            declared={"purpose": "research"},
            access=access,
            now=utcnow(),
        )
        token_id, secret = issued.token.id, issued.secret

    def attempt(_: int) -> bool:
        with db.write() as s:
            found = delivery.begin_download(s, who, secret, fmt="csv", access=access, now=utcnow())
            return found.refusal is None

    with ThreadPoolExecutor(max_workers=4) as pool:
        allowed = list(pool.map(attempt, range(8)))
    assert sum(allowed) == 3
    with db.read() as s:
        assert s.get(ExchangeDeliveryToken, token_id).uses == 3
        decisions = sorted(r.decision for r in s.query(ExchangeDelivery))
        assert decisions == ["allowed"] * 3 + ["refused"] * 5
        assert len({r.mark for r in s.query(ExchangeDelivery) if r.mark}) == 3
