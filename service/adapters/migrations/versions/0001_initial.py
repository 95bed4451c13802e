"""Initial schema: patients, documents, lesions, measurements, timepoint results.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision; the
types are spelled out here (Text for DecimalText, DateTime(timezone=True) for
UtcDateTime) so that later edits to the live schema never change this migration.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "patient",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False, server_default="default"),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patient"),
        sa.UniqueConstraint("tenant", "system", "value", name="uq_patient_identity"),
        sa.UniqueConstraint("id", "tenant", name="uq_patient_id_tenant"),
    )
    op.create_table(
        "document",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False, server_default="default"),
        sa.Column("patient_id", sa.Integer, nullable=False),
        sa.Column("uid", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("preliminary", sa.Boolean, nullable=False),
        sa.Column("imaging_date", sa.Date, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("study_uid", sa.Text),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_document"),
        sa.ForeignKeyConstraint(
            ["patient_id", "tenant"],
            ["patient.id", "patient.tenant"],
            name="fk_document_patient",
        ),
        sa.UniqueConstraint("tenant", "uid", name="uq_document_uid"),
    )
    op.create_index("ix_document_patient", "document", ["patient_id", "id"])
    op.create_table(
        "lesion",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("document_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("tracking_uid", sa.Text),
        sa.Column("tracking_id", sa.Text),
        sa.Column("role", sa.String(32)),
        sa.Column("site_code", sa.Text),
        sa.Column("site_scheme", sa.Text),
        sa.Column("site_meaning", sa.Text),
        sa.Column("is_nodal", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(32)),
        sa.Column("merged_into_uid", sa.Text),
        sa.Column("merged_into_id", sa.Text),
        sa.Column("slice_thickness_mm", sa.Text),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lesion"),
        sa.ForeignKeyConstraint(
            ["document_id"], ["document.id"], name="fk_lesion_document", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("document_id", "position", name="uq_lesion_position"),
        sa.CheckConstraint(
            "tracking_uid IS NOT NULL OR tracking_id IS NOT NULL", name="ck_lesion_identity"
        ),
    )
    op.create_table(
        "measurement",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("lesion_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("referenced_sop_uid", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_measurement"),
        sa.ForeignKeyConstraint(
            ["lesion_id"], ["lesion.id"], name="fk_measurement_lesion", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("lesion_id", "position", name="uq_measurement_position"),
        sa.CheckConstraint("lower(value) NOT LIKE '%n%'", name="ck_measurement_finite"),
    )
    op.create_table(
        "timepoint_result",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("patient_id", sa.Integer, nullable=False),
        sa.Column("imaging_date", sa.Date, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("issued", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_timepoint_result"),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
            name="fk_timepoint_result_patient",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("patient_id", "imaging_date", name="uq_timepoint_result_day"),
    )


def downgrade() -> None:
    for table in ("timepoint_result", "measurement", "lesion", "document", "patient"):
        op.drop_table(table)
