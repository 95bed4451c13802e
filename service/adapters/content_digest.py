"""The content digest that makes re-delivery of the same bytes a no-op: a document's
digest decides whether a second delivery of its UID is the same (contract section 3)."""

from __future__ import annotations

import hashlib


def digest(data: bytes) -> str:
    """SHA-256 of *data*, in hex."""
    return hashlib.sha256(data).hexdigest()
