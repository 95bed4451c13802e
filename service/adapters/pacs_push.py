"""Send one DICOM instance to a PACS: STOW-RS (PS3.18 10.5) or C-STORE (PS3.4 B.2).

The write-back of issue 4: each new assessment SR may be pushed to a configured PACS.
:func:`stow` POSTs a ``multipart/related; type="application/dicom"`` body of one part
(PS3.18 8.6.1.2) to ``{base}/studies`` with httpx; :func:`cstore` opens one association
with pynetdicom, sends the instance and releases it. Each answers only when the peer
stored the instance (STOW-RS 200, or 202 without a Failed SOP Sequence; C-STORE Success
or a Warning, PS3.4 Table B.2-1) and raises :class:`PushFailed` otherwise: the library
errors (httpx's, pynetdicom's, the socket's) are translated here, at the edge.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from io import BytesIO
from typing import Final

import httpx
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from service.domain.errors import DomainError

DICOM: Final = "application/dicom"
_FAILED_SOP_SEQUENCE: Final = "00081198"  # PS3.18 Table I.2-1
_STORED: Final = frozenset({0x0000, 0xB000, 0xB006, 0xB007})  # Success and the Warnings


class PushFailed(DomainError):
    """The PACS did not store the instance: unreachable, refused, or a failure status."""


@dataclass(frozen=True, slots=True)
class DimseTarget:
    """A C-STORE SCP: its AE title and address."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> DimseTarget:
        """``AET@host:port`` (the form of ``TR_PUSH_DIMSE``)."""
        ae_title, _, address = text.partition("@")
        host, _, port = address.rpartition(":")
        if not ae_title or not host or not port.isdigit():
            raise PushFailed(f"{text!r} is not AET@host:port")
        return cls(ae_title, host, int(port))


def multipart_body(instances: list[bytes], boundary: str) -> bytes:
    """A ``multipart/related`` body of ``application/dicom`` parts (RFC 2387)."""
    delimiter = f"--{boundary}\r\n".encode()
    parts = [delimiter + f"Content-Type: {DICOM}\r\n\r\n".encode() + data for data in instances]
    return b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()


def stow(base_url: str, instance: bytes, *, timeout: float) -> None:
    """Store *instance* (DICOM Part 10 bytes) by STOW-RS at ``{base_url}/studies``."""
    boundary = uuid.uuid4().hex
    headers = {
        "Content-Type": f'multipart/related; type="{DICOM}"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    url = f"{base_url.rstrip('/')}/studies"
    try:
        response = httpx.post(
            url, content=multipart_body([instance], boundary), headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise PushFailed(f"STOW-RS to {url}: {type(exc).__name__}") from exc
    if response.status_code == 202 and _FAILED_SOP_SEQUENCE not in response.text:
        return
    if response.status_code != 200:
        raise PushFailed(f"STOW-RS to {url} answered {response.status_code}")


def cstore(target: DimseTarget, calling_ae: str, instance: bytes, *, timeout: float) -> None:
    """Store *instance* (DICOM Part 10 bytes) by C-STORE on one association."""
    dataset = dcmread(BytesIO(instance))
    where = f"C-STORE to {target.ae_title}@{target.host}:{target.port}"
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(dataset.SOPClassUID)
    try:
        association = ae.associate(target.host, target.port, ae_title=target.ae_title)
        if not association.is_established:
            raise PushFailed(f"{where}: association not established")
        try:
            status: Dataset = association.send_c_store(dataset)
        finally:
            association.release()
    except (OSError, RuntimeError, ValueError) as exc:
        raise PushFailed(f"{where}: {type(exc).__name__}") from exc
    code = status.get("Status") if status else None
    if code not in _STORED:
        raise PushFailed(f"{where}: status {'none' if code is None else f'0x{code:04X}'}")


def instance_uid(instance: bytes) -> str:
    """The SOP Instance UID of *instance* (for logs: it names no patient)."""
    header = dcmread(BytesIO(instance), specific_tags=["SOPInstanceUID"])
    return str(header.SOPInstanceUID)
