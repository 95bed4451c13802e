"""A timepoint's generated FHIR resources in its result row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

* ``patient.resource_prefix`` (``service.adapters.fhir_writer.id_prefix``), indexed: what
  the timepoint resource ids of a patient stored from this revision on begin with (id
  scheme 2, ``IdScheme.PATIENT_INDEXED``), so that a read by id finds the patient; NULL
  for the patients stored before.
* ``timepoint_result.resources`` (``service.adapters.timepoint_codec``) and
  ``timepoint_result.resource_ids``: the DiagnosticReport, result Observations and
  BodyStructures of each timepoint of such a patient, one column instead of ~22 rows of
  ``fhir_resource`` (issue 7). The patients stored before keep their resources as
  rows, and a re-assessment updates those rows. A downgrade drops the columns, and with
  them the resources of the timepoints stored since: the FHIR face no longer finds
  them; their patients get scheme 1 (the same ids), whose resources are rows.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("patient") as batch:
        batch.add_column(sa.Column("resource_prefix", sa.String(16)))
        batch.create_index("ix_patient_resource_prefix", ["resource_prefix"])
    with op.batch_alter_table("timepoint_result") as batch:
        batch.add_column(sa.Column("resources", sa.LargeBinary))
        batch.add_column(sa.Column("resource_ids", sa.Text))


def downgrade() -> None:
    # Scheme 2 names ids as scheme 1 does; revision 0010 knows 1 (their rows are read).
    op.execute("UPDATE patient SET id_scheme = 1 WHERE id_scheme = 2")
    with op.batch_alter_table("timepoint_result") as batch:
        batch.drop_column("resource_ids")
        batch.drop_column("resources")
    with op.batch_alter_table("patient") as batch:
        batch.drop_index("ix_patient_resource_prefix")
        batch.drop_column("resource_prefix")
