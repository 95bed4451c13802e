"""Start and stop the processes under test, each logging to its own file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process answering GET *ready_url* with 200 once it serves."""

    command: Sequence[str]
    ready_url: str
    log: Path
    env: Mapping[str, str] | None = None
    cwd: Path = REPO  # python -m imports the package from here
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("server not started")
        return self.process.pid

    def __enter__(self) -> Server:
        env = {**os.environ, **(self.env or {})}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited; see {self.log}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.ready_url} not ready after 60 s; see {self.log}")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def service(workdir: Path) -> Server:
    """``python -m service serve`` on SQLite in *workdir*, exactly as in production."""
    port = free_port()
    env = {
        "TR_DATABASE_URL": f"sqlite:///{workdir / 'service.db'}",
        "TR_HTTP_PORT": str(port),
        "TR_DIMSE_PORT": str(free_port()),
    }
    return Server(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1"],
        f"http://127.0.0.1:{port}/health",
        workdir / "service.log",
        env,
    )


def echo(workdir: Path) -> Server:
    """The bare FastAPI baseline (bench/echo_app.py)."""
    port = free_port()
    return Server(
        [sys.executable, "-m", "bench.echo_app", "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
        workdir / "echo.log",
    )


def base_url(server: Server) -> str:
    return server.ready_url.removesuffix("/health")
