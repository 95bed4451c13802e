"""Runtime settings, read once from TR_* environment variables (or a .env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.adapters.db_schema import DEFAULT_TENANT
from service.domain.model import DEFAULT_PATIENT_SYSTEM

MIB = 1024 * 1024

# Signature algorithms a token may use: asymmetric only, never "none" or HMAC (RFC 8725
# section 3.1; reliability.md 2.6, PyJWT CVE-2022-29217 and CVE-2026-48526).
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class Settings(BaseSettings):
    """Every setting of the service; built once per process and passed down."""

    model_config = SettingsConfigDict(env_prefix="TR_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./data/tumour-response.db",
        description="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
    )
    database_lock_timeout: float = Field(
        default=5,
        gt=0,
        description="SQLite: seconds a transaction waits for the write lock before the "
        "request is answered 503 (busy_timeout)",
    )
    http_host: str = Field(default="127.0.0.1", description="address `serve` binds to")
    http_port: int = Field(default=8000, description="port `serve` binds to")
    patient_system: str = Field(
        default=DEFAULT_PATIENT_SYSTEM,
        description="FHIR identifier system that names the same patient as a DICOM "
        "PatientID without issuer",
    )
    sr_max_inflated_bytes: int = Field(
        default=32 * MIB,
        gt=0,
        description="largest size a deflated SR data set may inflate to (reliability.md 5); "
        "beyond it: 400 too-costly / 0xC101",
    )
    sr_read_process: bool = Field(
        default=True,
        description="read the SRs of POST /assessments, STOW-RS and C-STORE, and the FHIR "
        "bodies of POST /assessments, in a companion process (~1.2 ms of each SR's CPU, ~0.9 "
        "ms of a 10-Observation Bundle's, off the serving process); false: in the serving "
        "process",
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
    # reliability.md section 5: 64 KiB negotiated, A-ABORT over 1 MiB PDU / 64 MiB data set
    dimse_max_pdu_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        description="maximum PDU length we announce at association (negotiated)",
    )
    dimse_abort_pdu_bytes: int = Field(
        default=MIB,
        ge=4096,
        description="a received PDU longer than this aborts the association (A-ABORT)",
    )
    dimse_max_dataset_bytes: int = Field(
        default=64 * MIB,
        ge=1,
        description="data set bytes of one C-STORE beyond which the association is aborted",
    )
    dimse_allowed_calling_aes: str = Field(
        default="",
        pattern=r"^\s*([^,\\\x00-\x1f]{1,16}(\s*,\s*[^,\\\x00-\x1f]{1,16})*)?\s*$",
        description="comma-separated calling AE titles allowed to associate (others get "
        "A-ASSOCIATE-RJ); empty = any calling AE title is accepted",
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
    fhir_max_resource_bytes: int = Field(
        default=4 * MIB, ge=1, description="largest FHIR resource body (POST /fhir/Observation)"
    )
    fhir_max_bundle_bytes: int = Field(
        default=16 * MIB, ge=1, description="largest FHIR Bundle body (POST /fhir, /assessments)"
    )
    json_max_depth: int = Field(default=32, ge=1, description="deepest JSON nesting accepted")
    json_max_array_items: int = Field(
        default=10_000, ge=1, description="most items in one JSON array"
    )
    json_max_string_bytes: int = Field(
        default=MIB, ge=1, description="longest JSON string, in bytes as written"
    )
    json_max_number_chars: int = Field(
        default=50, ge=1, description="most characters in one JSON number"
    )
    public_base_url: str | None = Field(
        default=None,
        description="the service's external root URL (e.g. https://host/tumour-response) in "
        "Bundle fullUrls and report links; default: the request's own, or "
        "http://TR_HTTP_HOST:TR_HTTP_PORT for DIMSE",
    )
    shutdown_grace: int = Field(
        default=25,
        ge=1,
        description="on SIGTERM, seconds in-flight requests get to finish before the "
        "process exits anyway (new connections are refused at once)",
    )
    log_level: str = Field(
        default="INFO",
        pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
        description="Python logging level; pydicom, pynetdicom, SQLAlchemy and httpx stay at "
        'WARNING or above whatever it says (README "Observability")',
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: for a terminal"
    )
    http_limit_concurrency: int = Field(
        default=64,
        ge=1,
        description="requests and connections one `serve` process handles at once; "
        "beyond it uvicorn answers 503",
    )
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
    auth_jwks_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="URL of the token issuer's JWKS; set it (or TR_AUTH_JWKS_FILE) to turn auth on",
    )
    auth_jwks_file: Path | None = Field(
        default=None, description="a JWKS file, instead of TR_AUTH_JWKS_URL"
    )
    auth_issuer: str | None = Field(
        default=None, description="the exact `iss` of accepted tokens; required with auth on"
    )
    auth_audience: str | None = Field(
        default=None, description="the `aud` accepted tokens name; required with auth on"
    )
    auth_algorithms: Annotated[list[str], NoDecode] = Field(
        default=["RS256", "ES256"],
        description="comma-separated signature algorithms accepted (asymmetric only: RS*, "
        "PS*, ES*, EdDSA)",
    )
    auth_leeway_seconds: int = Field(
        default=60, ge=0, description="clock skew allowed on exp, nbf and iat"
    )
    auth_max_token_lifetime_seconds: int = Field(
        default=3600, gt=0, description="longest accepted token lifetime (exp - iat)"
    )
    auth_max_token_bytes: int = Field(
        default=8 * 1024, gt=0, description="largest accepted bearer token"
    )
    auth_jwks_refetch_seconds: float = Field(
        default=60,
        ge=0,
        description="least time between two JWKS fetches (a token with an unknown kid "
        "triggers one)",
    )
    auth_jwks_cache_seconds: float = Field(
        default=300, gt=0, description="the JWKS is fetched again when older than this"
    )
    auth_tenant_claim: str = Field(
        default="tenant", min_length=1, description="token claim naming the caller's tenant"
    )
    auth_disabled_on_public_address: bool = Field(
        default=False,
        description="let the service start with auth off on a non-loopback TR_HTTP_HOST "
        "(insecure; logged as a WARNING)",
    )
    tenant: str = Field(
        default=DEFAULT_TENANT,
        min_length=1,
        max_length=64,
        description="the tenant of DIMSE stores, of the `assess` command and of every "
        "request when auth is off",
    )

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        return [part.strip() for part in value.split(",")] if isinstance(value, str) else value

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [name for name in value if name not in ASYMMETRIC_ALGORITHMS]
        if refused or not value:
            raise ValueError(
                f"refused algorithm(s) {refused or '(none)'}; allowed: "
                f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
            )
        return value

    @model_validator(mode="after")
    def _auth_complete(self) -> Self:
        if self.auth_jwks_url and self.auth_jwks_file:
            raise ValueError("set TR_AUTH_JWKS_URL or TR_AUTH_JWKS_FILE, not both")
        if self.auth_enabled and not (self.auth_issuer and self.auth_audience):
            raise ValueError("auth needs TR_AUTH_ISSUER and TR_AUTH_AUDIENCE")
        return self

    @property
    def auth_enabled(self) -> bool:
        """Auth is on when a JWKS is configured (contract section 1)."""
        return bool(self.auth_jwks_url or self.auth_jwks_file)
