"""The in-process API fixtures of tests/api, for the hostile-input cases sent through it."""

from tests.api.conftest import anyio_backend, app, client, settings

__all__ = ["anyio_backend", "app", "client", "settings"]
