"""The tables behind :mod:`service.adapters.db`, in SQLAlchemy Core.

One schema for SQLite and PostgreSQL. Conventions:

* every patient and document row carries a ``tenant``; children inherit it through
  their parent, and a composite foreign key keeps a document's tenant equal to its
  patient's;
* numbers are exact decimal text (``str(Decimal)``), never a binary float or a SQLite
  ``NUMERIC`` (criteria.md section 2), and a CHECK refuses non-finite values
  (reliability.md section 3, "Clinical numeric integrity");
* timestamps are timezone-aware UTC, imaging dates are ``Date``;
* ``position`` columns keep the order of a report's tuples.

The migration in ``migrations/versions`` creates exactly this schema; a contract test
compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

DEFAULT_TENANT = "default"


class DecimalText(sa.TypeDecorator[Decimal]):
    """A :class:`~decimal.Decimal` stored as its exact text, e.g. ``'32.40'``."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime, stored in UTC and read back aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a timezone-aware column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()

patient = sa.Table(
    "patient",
    metadata,
    sa.Column("id", sa.Integer),
    sa.Column("tenant", sa.String(64), nullable=False, server_default=DEFAULT_TENANT),
    sa.Column("system", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    # What the last assessment keeps to resume from (checkpoint_codec; migration 0007).
    sa.Column("checkpoint", sa.LargeBinary, nullable=True),
    # How its timepoint resources are named (fhir_writer.IdScheme; migration 0010): the
    # rows stored before 0010 are 0, a patient stored since gets 1.
    sa.Column("id_scheme", sa.SmallInteger, nullable=False, server_default="0"),
    # What its timepoint resource ids begin with (fhir_writer.id_prefix), for a patient
    # of IdScheme.PATIENT_INDEXED (migration 0011): a read by id finds the patient.
    sa.Column("resource_prefix", sa.String(16)),
    sa.PrimaryKeyConstraint("id", name="pk_patient"),
    sa.UniqueConstraint("tenant", "system", "value", name="uq_patient_identity"),
    sa.UniqueConstraint("id", "tenant", name="uq_patient_id_tenant"),
    sa.Index("ix_patient_resource_prefix", "resource_prefix"),
)

document = sa.Table(
    "document",
    metadata,
    sa.Column("id", sa.Integer),
    sa.Column("tenant", sa.String(64), nullable=False, server_default=DEFAULT_TENANT),
    sa.Column("patient_id", sa.Integer, nullable=False),
    sa.Column("uid", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("preliminary", sa.Boolean, nullable=False),
    sa.Column("imaging_date", sa.Date, nullable=False),
    sa.Column("label", sa.Text),
    sa.Column("study_uid", sa.Text),
    sa.Column("warnings", sa.JSON, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("setting", sa.JSON),  # ClinicalSetting, when the source carried one
    sa.Column("dicom_context", sa.JSON),  # Patient/Study modules for SR write-back
    # The report's lesions as one JSON document (the fields of the lesion and
    # measurement tables, nested; compressed since 2026-12-06: lesion_codec), read
    # back in one row per timepoint instead of ~30 (issue 7, history growth); NULL
    # for documents stored before revision 0006, read from those tables. Since
    # 2026-12-06 a new document writes no rows there (issue 7: 8 of the ~59 pages an
    # SR's commit wrote; nothing read them): the column alone.
    sa.Column("lesions", sa.LargeBinary),
    sa.PrimaryKeyConstraint("id", name="pk_document"),
    sa.ForeignKeyConstraint(
        ["patient_id", "tenant"],
        ["patient.id", "patient.tenant"],
        name="fk_document_patient",
    ),
    sa.UniqueConstraint("tenant", "uid", name="uq_document_uid"),
    sa.Index("ix_document_patient", "patient_id", "id"),
    sa.Index("ix_document_study", "tenant", "study_uid"),  # identity-conflict check
)

# The lesions and measurements of the documents whose lesions column is NULL (stored
# before revision 0006); no longer written (document.lesions).
lesion = sa.Table(
    "lesion",
    metadata,
    sa.Column("id", sa.Integer),
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
    sa.Column("slice_thickness_mm", DecimalText),
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

measurement = sa.Table(
    "measurement",
    metadata,
    sa.Column("id", sa.Integer),
    sa.Column("lesion_id", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("value", DecimalText, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("referenced_sop_uid", sa.Text),
    # SCOORD / SCOORD3D the value was inferred from (issue 4); SQL NULL when none
    sa.Column("coordinates", sa.JSON(none_as_null=True)),
    sa.PrimaryKeyConstraint("id", name="pk_measurement"),
    sa.ForeignKeyConstraint(
        ["lesion_id"], ["lesion.id"], name="fk_measurement_lesion", ondelete="CASCADE"
    ),
    sa.UniqueConstraint("lesion_id", "position", name="uq_measurement_position"),
    # str(Decimal) of a finite number has no "n"; NaN, sNaN and Infinity all do.
    sa.CheckConstraint("lower(value) NOT LIKE '%n%'", name="ck_measurement_finite"),
)

timepoint_result = sa.Table(
    "timepoint_result",
    metadata,
    sa.Column("id", sa.Integer),
    sa.Column("patient_id", sa.Integer, nullable=False),
    sa.Column("imaging_date", sa.Date, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("issued", UtcDateTime, nullable=False),
    # The timepoint's generated FHIR resources (timepoint_codec; migration 0011) and the
    # ids they have, for a read by id; NULL for the timepoints stored before and those
    # of patients of another IdScheme than PATIENT_INDEXED: their resources are rows of
    # fhir_resource.
    sa.Column("resources", sa.LargeBinary),
    sa.Column("resource_ids", sa.Text),
    sa.PrimaryKeyConstraint("id", name="pk_timepoint_result"),
    sa.ForeignKeyConstraint(
        ["patient_id"], ["patient.id"], name="fk_timepoint_result_patient", ondelete="CASCADE"
    ),
    sa.UniqueConstraint("patient_id", "imaging_date", name="uq_timepoint_result_day"),
)

fhir_resource = sa.Table(
    "fhir_resource",
    metadata,
    sa.Column("id", sa.Integer),
    sa.Column("tenant", sa.String(64), nullable=False, server_default=DEFAULT_TENANT),
    sa.Column("patient_id", sa.Integer),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("identifier", sa.Text),  # "system|value" of a business identifier
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("last_updated", UtcDateTime, nullable=False),
    sa.Column("effective_date", sa.Date),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_fhir_resource"),
    sa.ForeignKeyConstraint(
        ["patient_id"], ["patient.id"], name="fk_fhir_resource_patient", ondelete="CASCADE"
    ),
    sa.UniqueConstraint("tenant", "resource_type", "resource_id", name="uq_fhir_resource_id"),
    sa.Index("ix_fhir_resource_patient", "tenant", "resource_type", "patient_id"),
    # Partial: only the types searched by identifier keep one (fhir_index).
    sa.Index(
        "ix_fhir_resource_identifier",
        "tenant",
        "resource_type",
        "identifier",
        sqlite_where=sa.text("identifier IS NOT NULL"),
        postgresql_where=sa.text("identifier IS NOT NULL"),
    ),
)

# The audit trail (issue 6; reliability.md section 3, "Audit trail completeness"): one FHIR
# AuditEvent per HTTP request or DIMSE association, its searchable fields beside its JSON.
audit_event = sa.Table(
    "audit_event",
    metadata,
    sa.Column("id", sa.Integer),
    sa.Column("tenant", sa.String(64), nullable=False, server_default=DEFAULT_TENANT),
    sa.Column("event_id", sa.String(64), nullable=False),  # AuditEvent.id
    sa.Column("recorded", UtcDateTime, nullable=False),
    sa.Column("type", sa.Text, nullable=False),  # "system|code"
    sa.Column("subtype", sa.Text),  # "system|code"
    sa.Column("action", sa.String(1), nullable=False),
    sa.Column("outcome", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
    sa.UniqueConstraint("event_id", name="uq_audit_event_id"),
    sa.Index("ix_audit_event_recorded", "tenant", "recorded"),
)

# The patients an AuditEvent names, by FHIR Patient id (search by ``patient``).
audit_patient = sa.Table(
    "audit_patient",
    metadata,
    sa.Column("audit_event_id", sa.Integer, nullable=False),
    sa.Column("patient", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("audit_event_id", "patient", name="pk_audit_patient"),
    sa.ForeignKeyConstraint(
        ["audit_event_id"], ["audit_event.id"], name="fk_audit_patient_event", ondelete="CASCADE"
    ),
    sa.Index("ix_audit_patient_patient", "patient"),
)
