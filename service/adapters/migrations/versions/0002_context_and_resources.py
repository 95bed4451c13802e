"""Source context and a FHIR resource index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

* ``document.setting``: the clinical setting (primary cancer, therapies) a source
  carried, so later assessments of the patient keep it;
* ``document.dicom_context``: the Patient/Study module attributes and evidence UIDs of
  an SR, needed to write an assessment back as DICOM SR;
* ``fhir_resource``: every FHIR resource the service serves by id (received
  Observations, written DiagnosticReports, Observations and BodyStructures), with its
  version, for FHIR read/search and conditional create.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.add_column(sa.Column("setting", sa.JSON, nullable=True))
        batch.add_column(sa.Column("dicom_context", sa.JSON, nullable=True))
    op.create_table(
        "fhir_resource",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False, server_default="default"),
        sa.Column("patient_id", sa.Integer, nullable=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("identifier", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_date", sa.Date, nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fhir_resource"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name="fk_fhir_resource_patient", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("tenant", "resource_type", "resource_id", name="uq_fhir_resource_id"),
        sa.Index("ix_fhir_resource_patient", "tenant", "resource_type", "patient_id"),
        sa.Index("ix_fhir_resource_identifier", "tenant", "resource_type", "identifier"),
    )


def downgrade() -> None:
    op.drop_table("fhir_resource")
    with op.batch_alter_table("document") as batch:
        batch.drop_column("dicom_context")
        batch.drop_column("setting")
