"""A real server process on loopback: `python -m service serve` on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 90  # a loaded 2-core CI machine imports the app slowly


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """``python -m service serve`` on *database_url* with TR_* *env* on a free port (DIMSE
    off unless *env* sets ``TR_DIMSE_PORT``),
    which tests may start, kill (SIGKILL) or stop (SIGTERM) and start again on the same
    database; its output goes to ``server.log`` in *workdir*."""

    def __init__(self, workdir: Path, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        # No DIMSE listener unless *env* names a port: a fixed 11112 would clash with
        # another run on the machine (and module-scoped servers miss clean_environ).
        # SRs read in the companion process, as in production.
        self._env = {
            **os.environ,
            "TR_DIMSE_PORT": "0",
            "TR_SR_READ_PROCESS": "true",
            "TR_DATABASE_URL": database_url,
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait until ``/ready`` answers 200; the seconds that took."""
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(self.port)],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_ready(self.base, self.process, self.log)
        return time.monotonic() - started

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """The exit status once the process has ended."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (reliability.md X01)."""
        self.signal(signal.SIGKILL)
        self.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.wait(timeout=10)


@contextmanager
def running_server(tmp_path: Path, database_url: str, **env: str) -> Iterator[str]:
    """Run the service on *database_url* with extra TR_* *env*, its log in *tmp_path*;
    yield its base URL."""
    server = ServerProcess(tmp_path, database_url, **env)
    try:
        server.start()
        yield server.base
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[str]:
    """The service on an empty database, DIMSE off; yields its base URL."""
    with running_server(tmp_path, database_url) as base:
        yield base


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server not ready in {STARTUP_SECONDS} s:\n{log.read_text()}")
