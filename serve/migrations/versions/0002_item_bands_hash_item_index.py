"""Index item bands by (hash, item_id): the newest owners of a band without a sort.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The composite index also serves lookups by hash alone, so it replaces the old one.
    op.create_index("ix_item_bands_hash_item", "item_bands", ["hash", "item_id"], unique=False)
    op.drop_index("ix_item_bands_hash", table_name="item_bands")


def downgrade() -> None:
    op.create_index("ix_item_bands_hash", "item_bands", ["hash"], unique=False)
    op.drop_index("ix_item_bands_hash_item", table_name="item_bands")
