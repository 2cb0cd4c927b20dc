"""The payment gateway: how money enters and leaves the custody bank account.

``PaymentGateway`` is the interface the services call for a deposit (``collect``: the party's
bank pays into custody) and a withdrawal (``pay_out``: custody pays the party's bank). Each call
happens inside the journal's transaction, takes the journal id and the idempotency key (a real
gateway passes the key to the bank so that a retried instruction is executed once), and returns
the bank's reference for the transfer, which the journal records.

``LocalBank`` is the default backend: a bank simulated in the control-plane database. It records
each transfer with its own reference (``LB`` + date + 12 hex digits) in ``settlement_bank_transfer``
in the same transaction as the journal — so a transfer exists exactly when its journal does — and
moves no real money. A deployment with a real custody bank implements the protocol (its
``collect`` would confirm the incoming transfer the bank notified, its ``pay_out`` submit the
payment order) and passes it to the services, or installs it with ``set_default_gateway``.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.orm import Session

from datafactor.db import new_id, today_cn, utcnow
from datafactor.settlement.models import SettlementBankTransfer


class PaymentGateway(Protocol):
    """Moves money between a party's bank account and the exchange's custody account."""

    name: str

    def collect(
        self, session: Session, *, party_id: str, amount_fen: int, journal_id: str, key: str
    ) -> str:
        """Money paid in by the party's bank; returns the bank's reference."""
        ...

    def pay_out(
        self, session: Session, *, party_id: str, amount_fen: int, journal_id: str, key: str
    ) -> str:
        """Money paid out to the party's bank; returns the bank's reference."""
        ...


class LocalBank:
    """The default gateway: transfers recorded in the database, no real money."""

    name = "local-bank"

    def _record(
        self, session: Session, direction: str, party_id: str, amount_fen: int, journal_id: str
    ) -> str:
        reference = f"LB{today_cn():%Y%m%d}{secrets.token_hex(6).upper()}"
        session.execute(
            insert(SettlementBankTransfer).values(
                id=new_id(),
                direction=direction,
                party_id=party_id,
                amount_fen=amount_fen,
                bank_reference=reference,
                journal_id=journal_id,
                created_at=utcnow(),
            )
        )
        return reference

    def collect(
        self, session: Session, *, party_id: str, amount_fen: int, journal_id: str, key: str
    ) -> str:
        return self._record(session, "in", party_id, amount_fen, journal_id)

    def pay_out(
        self, session: Session, *, party_id: str, amount_fen: int, journal_id: str, key: str
    ) -> str:
        return self._record(session, "out", party_id, amount_fen, journal_id)


_default: PaymentGateway = LocalBank()


def default_gateway() -> PaymentGateway:
    return _default


def set_default_gateway(gateway: PaymentGateway) -> PaymentGateway:
    """Install ``gateway`` for every later deposit and withdrawal; returns the previous one."""
    global _default
    previous, _default = _default, gateway
    return previous
