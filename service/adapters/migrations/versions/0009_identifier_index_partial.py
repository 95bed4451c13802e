"""The index by business identifier holds the rows searched by identifier only.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

* ``fhir_resource.identifier`` is kept for the types a search finds by identifier
  (``fhir_index.SEARCHED_BY_IDENTIFIER``: Observation, Patient); the other rows'
  identifiers (a BodyStructure's tracking UID, a DiagnosticReport's assessment id) are
  cleared, as nothing looks them up (each resource's body keeps its identifiers).
* ``ix_fhir_resource_identifier`` becomes partial, ``WHERE identifier IS NOT NULL``:
  a search gives an identifier, so it still finds every row it can match. An SR of 10
  lesions added ~11 entries to it, most on a page of their own, each page written to
  the WAL at commit (issue 7). A downgrade rebuilds the full index; the identifiers
  cleared are not restored.

Written by hand to equal ``service.adapters.db_schema.metadata`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ["tenant", "resource_type", "identifier"]


def upgrade() -> None:
    op.drop_index("ix_fhir_resource_identifier", table_name="fhir_resource")
    op.execute(
        "UPDATE fhir_resource SET identifier = NULL"
        " WHERE identifier IS NOT NULL AND resource_type NOT IN ('Observation', 'Patient')"
    )
    present = sa.text("identifier IS NOT NULL")
    op.create_index(
        "ix_fhir_resource_identifier",
        "fhir_resource",
        _COLUMNS,
        sqlite_where=present,
        postgresql_where=present,
    )


def downgrade() -> None:
    op.drop_index("ix_fhir_resource_identifier", table_name="fhir_resource")
    op.create_index("ix_fhir_resource_identifier", "fhir_resource", _COLUMNS)
