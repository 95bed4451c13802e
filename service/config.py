"""Runtime settings, read once from TR_* environment variables (or a .env file)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.domain.model import DEFAULT_PATIENT_SYSTEM

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Every setting of the service; built once per process and passed down."""

    model_config = SettingsConfigDict(env_prefix="TR_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./data/tumour-response.db",
        description="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
    )
    http_host: str = Field(default="127.0.0.1", description="address `serve` binds to")
    http_port: int = Field(default=8000, description="port `serve` binds to")
    patient_system: str = Field(
        default=DEFAULT_PATIENT_SYSTEM,
        description="FHIR identifier system that names the same patient as a DICOM "
        "PatientID without issuer",
    )
    max_dicom_body_bytes: int = Field(
        default=64 * MIB, description="largest accepted application/dicom request body"
    )
    log_level: str = Field(default="INFO", description="Python logging level")
