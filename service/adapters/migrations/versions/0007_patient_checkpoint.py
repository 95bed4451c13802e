"""Each patient's assessment checkpoint.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

* ``patient.checkpoint``: what the patient's last assessment keeps to resume from
  (``service.domain.checkpoint``, written by ``service.adapters.checkpoint_codec``):
  the settled history and each size-based criterion's fold, with the ids of the
  documents they were made from. A later report is then assessed without reading the
  earlier ones (issue 7, "the 50th timepoint costs <= 1.25 x the 10th"). NULL until
  the patient is next assessed: then every report is read, as before.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("patient") as batch:
        batch.add_column(sa.Column("checkpoint", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patient") as batch:
        batch.drop_column("checkpoint")
