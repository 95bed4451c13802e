"""The audit trail.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

* ``audit_event``: one FHIR AuditEvent per HTTP request or DIMSE association (issue 6),
  its search fields (tenant, recorded, type, subtype, action, outcome) beside its JSON;
* ``audit_patient``: the FHIR Patient ids each event names.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False, server_default="default"),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("subtype", sa.Text, nullable=True),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
        sa.UniqueConstraint("event_id", name="uq_audit_event_id"),
        sa.Index("ix_audit_event_recorded", "tenant", "recorded"),
    )
    op.create_table(
        "audit_patient",
        sa.Column("audit_event_id", sa.Integer, nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("audit_event_id", "patient", name="pk_audit_patient"),
        sa.ForeignKeyConstraint(
            ["audit_event_id"],
            ["audit_event.id"],
            name="fk_audit_patient_event",
            ondelete="CASCADE",
        ),
        sa.Index("ix_audit_patient_patient", "patient"),
    )


def downgrade() -> None:
    op.drop_table("audit_patient")
    op.drop_table("audit_event")
