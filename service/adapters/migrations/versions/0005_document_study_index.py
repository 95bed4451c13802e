"""An index on each tenant's documents by study.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

* ``ix_document_study`` on ``document (tenant, study_uid)``: the identity-conflict check
  of every ingest (a study already stored under another patient, reliability.md section
  4) looks documents up by study; without it that lookup scans the tenant's documents,
  a cost that grows with the database (issue 7, "100,000 patients").

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_document_study", "document", ["tenant", "study_uid"])


def downgrade() -> None:
    op.drop_index("ix_document_study", table_name="document")
