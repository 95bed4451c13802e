"""What every refusal must look like (reliability.md section 4) and what it must leave
behind (nothing: section 3, numeric integrity)."""

from __future__ import annotations

import sqlalchemy as sa

from service.adapters.db_schema import audit_event, audit_patient, metadata
from service.config import Settings

# The OperationOutcome issue codes reliability.md section 4 assigns to 4xx answers.
ALLOWED_CODES = frozenset(
    {
        "structure",
        "too-long",
        "too-costly",
        "required",
        "invariant",
        "business-rule",
        "value",
        "code-invalid",
        "invalid",
        "not-supported",
        "duplicate",
        "conflict",
        "multiple-matches",
        "not-found",
        "login",
        "unknown",
        "expired",
        "forbidden",
        "timeout",
        "throttled",
        "transient",
    }
)


def stored_rows(settings: Settings) -> int:
    """Rows in every table of the service's schema."""
    engine = sa.create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return sum(
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables
                if table not in (audit_event, audit_patient)  # refusals are audited
            )
    finally:
        engine.dispose()
