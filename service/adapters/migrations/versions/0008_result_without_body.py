"""A timepoint's result keeps its version and digest, not its body.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

* ``timepoint_result.body`` dropped: the timepoint's resources serialised together,
  which nothing read; each resource is in ``fhir_resource`` with its own body, and the
  result's version needs only the digest. Each SR request wrote ~24 KB there (10
  lesions; ~470 KB for 200), ~6 of the ~86 pages its commit wrote to the WAL (issue 7).
  A downgrade adds the column back empty: the bodies dropped are not restored.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("timepoint_result") as batch:
        batch.drop_column("body")


def downgrade() -> None:
    with op.batch_alter_table("timepoint_result") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary, nullable=True))
