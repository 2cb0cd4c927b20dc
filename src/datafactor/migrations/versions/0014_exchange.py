"""exchange: listings and their review, orders, negotiations and offers, auctions and bids,
contracts, delivery tokens and deliveries, settlement of contracts, and the number counters

Tables of ``datafactor.exchange.models`` (generated from the models, checked by ``alembic check``
in the tests).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 01:31:16.974495
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import datafactor.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_listing",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("right_id", sa.String(length=36), nullable=False),
        sa.Column("certificate_number", sa.String(length=32), nullable=False),
        sa.Column("seller_id", sa.String(length=36), nullable=False),
        sa.Column("broker_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("summary_en", sa.Text(), nullable=False),
        sa.Column("industry", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("data_class", sa.String(length=32), nullable=False),
        sa.Column("grade", sa.String(length=16), nullable=True),
        sa.Column("price_model", sa.String(length=16), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("term_days", sa.Integer(), nullable=False),
        sa.Column("contract_policy", sa.JSON(), nullable=False),
        sa.Column("access", sa.JSON(), nullable=False),
        sa.Column("placement", sa.String(length=16), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=True),
        sa.Column("zone_approved_by", sa.String(length=36), nullable=True),
        sa.Column("total_quantity", sa.Integer(), nullable=True),
        sa.Column("remaining_quantity", sa.Integer(), nullable=True),
        sa.Column("revenue_sharing", sa.JSON(), nullable=False),
        sa.Column("cross_border", sa.Boolean(), nullable=False),
        sa.Column("declaration", sa.JSON(), nullable=True),
        sa.Column("declaration_signature", sa.Text(), nullable=True),
        sa.Column("declared_by", sa.String(length=36), nullable=True),
        sa.Column("declared_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("published_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_listing")),
        sa.UniqueConstraint("number", name=op.f("uq_exchange_listing_number")),
    )
    with op.batch_alter_table("exchange_listing", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_listing_asset_id"), ["asset_id"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_listing_broker_state", ["broker_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_listing_seller_state", ["seller_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_listing_state_placement", ["state", "placement"], unique=False
        )

    op.create_table(
        "exchange_serial",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_serial", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "year", name=op.f("pk_exchange_serial")),
    )
    op.create_table(
        "exchange_auction",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("listing_id", sa.String(length=36), nullable=False),
        sa.Column("seller_id", sa.String(length=36), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("start_fen", sa.BigInteger(), nullable=False),
        sa.Column("reserve_fen", sa.BigInteger(), nullable=False),
        sa.Column("increment_fen", sa.BigInteger(), nullable=False),
        sa.Column("deposit_fen", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("ends_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("snipe_seconds", sa.Integer(), nullable=False),
        sa.Column("extension_seconds", sa.Integer(), nullable=False),
        sa.Column("leading_bid_id", sa.String(length=36), nullable=True),
        sa.Column("leading_fen", sa.BigInteger(), nullable=True),
        sa.Column("bids", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["exchange_listing.id"],
            name=op.f("fk_exchange_auction_listing_id_exchange_listing"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_auction")),
        sa.UniqueConstraint("number", name=op.f("uq_exchange_auction_number")),
    )
    with op.batch_alter_table("exchange_auction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_auction_listing_id"), ["listing_id"], unique=False
        )
        batch_op.create_index("ix_exchange_auction_state_ends", ["state", "ends_at"], unique=False)

    op.create_table(
        "exchange_contract",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("listing_id", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("negotiation_id", sa.String(length=36), nullable=True),
        sa.Column("auction_id", sa.String(length=36), nullable=True),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("seller_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("broker_id", sa.String(length=36), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("term_end", sa.Date(), nullable=False),
        sa.Column("cross_border", sa.Boolean(), nullable=False),
        sa.Column("deadline_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("document_hash", sa.String(length=64), nullable=False),
        sa.Column("seller_signature", sa.Text(), nullable=True),
        sa.Column("seller_signed_by", sa.String(length=36), nullable=True),
        sa.Column("seller_signed_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("seller_signing_key", sa.Text(), nullable=True),
        sa.Column("buyer_signature", sa.Text(), nullable=True),
        sa.Column("buyer_signed_by", sa.String(length=36), nullable=True),
        sa.Column("buyer_signed_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("buyer_signing_key", sa.Text(), nullable=True),
        sa.Column("broker_signature", sa.Text(), nullable=True),
        sa.Column("broker_signed_by", sa.String(length=36), nullable=True),
        sa.Column("broker_signed_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("broker_signing_key", sa.Text(), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("hold_id", sa.String(length=36), nullable=True),
        sa.Column("grant_id", sa.String(length=36), nullable=True),
        sa.Column("delivered_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("accepted_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("capture_journal_id", sa.String(length=36), nullable=True),
        sa.Column("settled_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["exchange_listing.id"],
            name=op.f("fk_exchange_contract_listing_id_exchange_listing"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_contract")),
        sa.UniqueConstraint("number", name=op.f("uq_exchange_contract_number")),
    )
    with op.batch_alter_table("exchange_contract", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_contract_broker_state", ["broker_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_contract_buyer_state", ["buyer_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_contract_listing_id"), ["listing_id"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_contract_seller_state", ["seller_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_contract_state_deadline", ["state", "deadline_at"], unique=False
        )

    op.create_table(
        "exchange_listing_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("listing_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("actor_user_id", sa.String(length=36), nullable=True),
        sa.Column("actor_party_id", sa.String(length=36), nullable=True),
        sa.Column("actor_name", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["exchange_listing.id"],
            name=op.f("fk_exchange_listing_event_listing_id_exchange_listing"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_listing_event")),
    )
    with op.batch_alter_table("exchange_listing_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_listing_event_listing_id"), ["listing_id"], unique=False
        )

    op.create_table(
        "exchange_listing_review",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("listing_id", sa.String(length=36), nullable=False),
        sa.Column("assessor_party_id", sa.String(length=36), nullable=True),
        sa.Column("assessor_user_id", sa.String(length=36), nullable=True),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("opinion", sa.Text(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("signing_key", sa.Text(), nullable=True),
        sa.Column("signed_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        sa.Column("decided_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["exchange_listing.id"],
            name=op.f("fk_exchange_listing_review_listing_id_exchange_listing"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_listing_review")),
    )
    with op.batch_alter_table("exchange_listing_review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_listing_review_listing_id"), ["listing_id"], unique=False
        )

    op.create_table(
        "exchange_negotiation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("listing_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("seller_id", sa.String(length=36), nullable=False),
        sa.Column("broker_id", sa.String(length=36), nullable=True),
        sa.Column("broker_side", sa.String(length=8), nullable=True),
        sa.Column("cross_border", sa.Boolean(), nullable=False),
        sa.Column("deadline_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["exchange_listing.id"],
            name=op.f("fk_exchange_negotiation_listing_id_exchange_listing"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_negotiation")),
        sa.UniqueConstraint("number", name=op.f("uq_exchange_negotiation_number")),
    )
    with op.batch_alter_table("exchange_negotiation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_negotiation_broker_state", ["broker_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_negotiation_buyer_state", ["buyer_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_negotiation_listing_id"), ["listing_id"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_negotiation_seller_state", ["seller_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_negotiation_state_deadline", ["state", "deadline_at"], unique=False
        )

    op.create_table(
        "exchange_order",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("listing_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("seller_id", sa.String(length=36), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.String(length=36), nullable=True),
        sa.Column("contract_id", sa.String(length=36), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["exchange_listing.id"],
            name=op.f("fk_exchange_order_listing_id_exchange_listing"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_order")),
        sa.UniqueConstraint("buyer_id", "idempotency_key", name=op.f("uq_exchange_order_buyer_id")),
        sa.UniqueConstraint("number", name=op.f("uq_exchange_order_number")),
    )
    with op.batch_alter_table("exchange_order", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_order_buyer_created", ["buyer_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_order_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_order_listing_state", ["listing_id", "state"], unique=False
        )

    op.create_table(
        "exchange_bid",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("auction_id", sa.String(length=36), nullable=False),
        sa.Column("bidder_id", sa.String(length=36), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("deposit_hold_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["auction_id"],
            ["exchange_auction.id"],
            name=op.f("fk_exchange_bid_auction_id_exchange_auction"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_bid")),
        sa.UniqueConstraint("bidder_id", "idempotency_key", name=op.f("uq_exchange_bid_bidder_id")),
    )
    with op.batch_alter_table("exchange_bid", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_bid_auction_amount", ["auction_id", "amount_fen"], unique=False
        )

    op.create_table(
        "exchange_contract_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("actor_user_id", sa.String(length=36), nullable=True),
        sa.Column("actor_party_id", sa.String(length=36), nullable=True),
        sa.Column("actor_name", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["exchange_contract.id"],
            name=op.f("fk_exchange_contract_event_contract_id_exchange_contract"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_contract_event")),
    )
    with op.batch_alter_table("exchange_contract_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_contract_event_contract_id"), ["contract_id"], unique=False
        )

    op.create_table(
        "exchange_delivery",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("token_id", sa.String(length=36), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("mark", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("fingerprint", sa.JSON(), nullable=True),
        sa.Column("actor_user_id", sa.String(length=36), nullable=True),
        sa.Column("at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["exchange_contract.id"],
            name=op.f("fk_exchange_delivery_contract_id_exchange_contract"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_delivery")),
    )
    with op.batch_alter_table("exchange_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_delivery_contract_at", ["contract_id", "at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_exchange_delivery_mark"), ["mark"], unique=False)

    op.create_table(
        "exchange_delivery_token",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("declared", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["exchange_contract.id"],
            name=op.f("fk_exchange_delivery_token_contract_id_exchange_contract"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_delivery_token")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_exchange_delivery_token_secret_hash")),
    )
    with op.batch_alter_table("exchange_delivery_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_delivery_token_contract_id"), ["contract_id"], unique=False
        )

    op.create_table(
        "exchange_offer",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("negotiation_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_party_id", sa.String(length=36), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("term_days", sa.Integer(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["negotiation_id"],
            ["exchange_negotiation.id"],
            name=op.f("fk_exchange_offer_negotiation_id_exchange_negotiation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_offer")),
        sa.UniqueConstraint("negotiation_id", "seq", name=op.f("uq_exchange_offer_negotiation_id")),
    )
    op.create_table(
        "exchange_settlement",
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("journal_id", sa.String(length=36), nullable=True),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("split", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("released_fen", sa.BigInteger(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("run_key", sa.String(length=160), nullable=True),
        sa.Column("settled_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["exchange_contract.id"],
            name=op.f("fk_exchange_settlement_contract_id_exchange_contract"),
        ),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_exchange_settlement")),
    )
    with op.batch_alter_table("exchange_settlement", schema=None) as batch_op:
        batch_op.create_index("ix_exchange_settlement_settled_at", ["settled_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_exchange_settlement_run_key"), ["run_key"], unique=False
        )

    op.create_table(
        "exchange_settlement_part",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("settled_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["exchange_settlement.contract_id"],
            name=op.f("fk_exchange_settlement_part_contract_id_exchange_settlement"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_settlement_part")),
    )
    with op.batch_alter_table("exchange_settlement_part", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_settlement_part_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_settlement_part_party_kind", ["party_id", "kind"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_settlement_part_kind_at", ["kind", "settled_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_settlement_part", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_settlement_part_party_kind")
        batch_op.drop_index("ix_exchange_settlement_part_kind_at")
        batch_op.drop_index(batch_op.f("ix_exchange_settlement_part_contract_id"))

    op.drop_table("exchange_settlement_part")
    with op.batch_alter_table("exchange_settlement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_settlement_run_key"))
        batch_op.drop_index("ix_exchange_settlement_settled_at")

    op.drop_table("exchange_settlement")
    op.drop_table("exchange_offer")
    with op.batch_alter_table("exchange_delivery_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_delivery_token_contract_id"))

    op.drop_table("exchange_delivery_token")
    with op.batch_alter_table("exchange_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_delivery_mark"))
        batch_op.drop_index("ix_exchange_delivery_contract_at")

    op.drop_table("exchange_delivery")
    with op.batch_alter_table("exchange_contract_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_contract_event_contract_id"))

    op.drop_table("exchange_contract_event")
    with op.batch_alter_table("exchange_bid", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_bid_auction_amount")

    op.drop_table("exchange_bid")
    with op.batch_alter_table("exchange_order", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_order_listing_state")
        batch_op.drop_index(batch_op.f("ix_exchange_order_contract_id"))
        batch_op.drop_index("ix_exchange_order_buyer_created")

    op.drop_table("exchange_order")
    with op.batch_alter_table("exchange_negotiation", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_negotiation_state_deadline")
        batch_op.drop_index("ix_exchange_negotiation_seller_state")
        batch_op.drop_index(batch_op.f("ix_exchange_negotiation_listing_id"))
        batch_op.drop_index("ix_exchange_negotiation_buyer_state")
        batch_op.drop_index("ix_exchange_negotiation_broker_state")

    op.drop_table("exchange_negotiation")
    with op.batch_alter_table("exchange_listing_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_listing_review_listing_id"))

    op.drop_table("exchange_listing_review")
    with op.batch_alter_table("exchange_listing_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_listing_event_listing_id"))

    op.drop_table("exchange_listing_event")
    with op.batch_alter_table("exchange_contract", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_contract_state_deadline")
        batch_op.drop_index("ix_exchange_contract_seller_state")
        batch_op.drop_index(batch_op.f("ix_exchange_contract_listing_id"))
        batch_op.drop_index("ix_exchange_contract_buyer_state")
        batch_op.drop_index("ix_exchange_contract_broker_state")

    op.drop_table("exchange_contract")
    with op.batch_alter_table("exchange_auction", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_auction_state_ends")
        batch_op.drop_index(batch_op.f("ix_exchange_auction_listing_id"))

    op.drop_table("exchange_auction")
    op.drop_table("exchange_serial")
    with op.batch_alter_table("exchange_listing", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_listing_state_placement")
        batch_op.drop_index("ix_exchange_listing_seller_state")
        batch_op.drop_index("ix_exchange_listing_broker_state")
        batch_op.drop_index(batch_op.f("ix_exchange_listing_asset_id"))

    op.drop_table("exchange_listing")
