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
    dimse_host: str = Field(default="127.0.0.1", description="address the C-STORE SCP binds to")
    dimse_port: int = Field(
        default=11112, ge=0, le=65535, description="C-STORE/C-ECHO SCP port; 0 = no listener"
    )
    dimse_ae_title: str = Field(
        default="TUMOUR_RESPONSE", min_length=1, max_length=16, description="our AE title"
    )
    dimse_acse_timeout: float = Field(default=30, gt=0, description="ACSE timeout, seconds")
    dimse_dimse_timeout: float = Field(default=30, gt=0, description="DIMSE timeout, seconds")
    dimse_network_timeout: float = Field(default=60, gt=0, description="network timeout, seconds")
    dimse_max_associations: int = Field(
        default=10, ge=1, description="simultaneous DIMSE associations"
    )
    stow_max_request_bytes: int = Field(default=64 * MIB, description="largest STOW-RS request")
    stow_max_parts: int = Field(default=256, description="most parts in one STOW-RS request")
    stow_max_part_bytes: int = Field(default=32 * MIB, description="largest STOW-RS part")
    stow_max_part_header_bytes: int = Field(
        default=8 * 1024, description="largest header block of one STOW-RS part"
    )
    stow_max_headers_per_part: int = Field(default=16, description="most headers in one part")
    stow_max_preamble_epilogue_bytes: int = Field(
        default=64 * 1024, description="largest multipart preamble plus epilogue"
    )
    public_base_url: str | None = Field(
        default=None,
        description="the service's external root URL (e.g. https://host/tumour-response) in "
        "Bundle fullUrls and report links; default: the request's own, or "
        "http://TR_HTTP_HOST:TR_HTTP_PORT for DIMSE",
    )
    log_level: str = Field(default="INFO", description="Python logging level")
    push_stow_url: str | None = Field(
        default=None,
        description="DICOMweb base URL (e.g. http://pacs/dicom-web) each new assessment SR is "
        "pushed to by STOW-RS (POST {url}/studies); unset: no STOW-RS push",
    )
    push_dimse: str | None = Field(
        default=None,
        pattern=r"^[^@]{1,16}@.+:\d{1,5}$",
        description="AET@host:port each new assessment SR is pushed to by C-STORE; "
        "unset: no C-STORE push",
    )
    push_calling_ae: str | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="our AE title when pushing by C-STORE; default TR_DIMSE_AE_TITLE",
    )
    push_timeout: float = Field(
        default=30, gt=0, description="timeout of one push attempt (connect, send, answer), seconds"
    )
    push_queue_size: int = Field(
        default=256, ge=1, description="SRs waiting to be pushed; when full, new ones are dropped"
    )
