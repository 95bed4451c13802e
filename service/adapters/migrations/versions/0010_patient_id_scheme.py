"""How each patient's timepoint resources are named.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

* ``patient.id_scheme`` (``service.adapters.fhir_writer.IdScheme``): 0 for the patients
  stored before this revision, whose DiagnosticReports, result Observations and
  BodyStructures keep their ids (UUID 5 of the patient and the resource's name: a
  re-assessment replaces a resource under its id, contract section 4); the service
  stores each new patient with 1, whose ids begin with the first 12 hex digits of the
  patient's own id, so that its resources sit side by side in the resource index
  (issue 7). A downgrade drops the column: every patient's ids are then computed as 0's,
  which changes those of the patients stored since.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("patient") as batch:
        batch.add_column(
            sa.Column("id_scheme", sa.SmallInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("patient") as batch:
        batch.drop_column("id_scheme")
