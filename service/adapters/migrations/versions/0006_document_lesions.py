"""Each document's lesions in one column.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

* ``document.lesions``: the report's lesion observations with their measurements as one
  JSON document, written with the lesion and measurement rows. Reading a patient's
  history then fetches one row per timepoint instead of one per lesion and measurement
  (issue 7, "the 50th timepoint costs <= 1.25 x the 10th"). NULL for documents stored
  before this revision: they are read from their rows.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.add_column(sa.Column("lesions", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.drop_column("lesions")
