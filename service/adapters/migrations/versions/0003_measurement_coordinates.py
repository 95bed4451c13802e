"""Measurement coordinates.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

* ``measurement.coordinates``: the SCOORD / SCOORD3D items a measurement was inferred
  from (graphic type, points, referenced image or Frame of Reference; issue 4), as
  JSON; NULL when the source gave none.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("measurement") as batch:
        batch.add_column(sa.Column("coordinates", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurement") as batch:
        batch.drop_column("coordinates")
