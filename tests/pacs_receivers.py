"""Real PACS peers on loopback for the push tests: a STOW-RS origin server (Starlette
served by uvicorn in a thread, PS3.18 10.5) and a C-STORE SCP (pynetdicom, PS3.4 B.2).

Both keep what they store. The STOW-RS receiver can hold its answer (:attr:`gate`) to
show that a push never sits on a client's critical path, and answer a chosen status.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO

import uvicorn
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage, ComprehensiveSRStorage, EnhancedSRStorage
from pynetdicom import AE, evt
from pynetdicom.events import Event
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.adapters import multipart
from service.config import Settings
from service.entrypoints.api.dicomweb import limits


@dataclass
class StowReceiver:
    """What the STOW-RS server received, and how it answers."""

    url: str = ""
    received: list[Dataset] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    status: int = 200
    answer: dict[str, object] = field(default_factory=dict)

    async def store(self, request: Request) -> Response:
        content_type = request.headers["content-type"]
        self.content_types.append(content_type)
        parts = multipart.parse(
            await request.body(),
            multipart.boundary_of(content_type),
            limits(Settings(_env_file=None)),  # type: ignore[call-arg]
        )
        self.arrived.set()
        await asyncio.to_thread(self.gate.wait)
        if self.status == 200:
            self.received.extend(dcmread(BytesIO(part.body)) for part in parts)
        return Response(json.dumps(self.answer), self.status, media_type="application/dicom+json")


@contextmanager
def stow_receiver() -> Iterator[StowReceiver]:
    """A STOW-RS server at ``{receiver.url}/studies``; its gate starts open."""
    receiver = StowReceiver()
    receiver.gate.set()
    app = Starlette(routes=[Route("/dicom-web/studies", receiver.store, methods=["POST"])])
    listener = socket.create_server(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web"
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the STOW-RS receiver to start")
    try:
        yield receiver
    finally:
        receiver.gate.set()
        server.should_exit = True
        thread.join(10)
        listener.close()


@dataclass
class CStoreReceiver:
    """What the C-STORE SCP received, from which calling AE titles."""

    ae_title: str = "TEST_PACS"
    port: int = 0
    received: list[Dataset] = field(default_factory=list)
    calling: list[str] = field(default_factory=list)
    status: int = 0x0000

    @property
    def address(self) -> str:
        """``AET@host:port``, as ``TR_PUSH_DIMSE`` names it."""
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def store(self, event: Event) -> int:
        if self.status == 0x0000:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            self.received.append(dataset)
            self.calling.append(event.assoc.requestor.ae_title)
        return self.status


@contextmanager
def cstore_receiver() -> Iterator[CStoreReceiver]:
    """A C-STORE SCP for the SR storage classes on a free loopback port."""
    receiver = CStoreReceiver()
    ae = AE(ae_title=receiver.ae_title)
    for sop_class in (EnhancedSRStorage, ComprehensiveSRStorage, Comprehensive3DSRStorage):
        ae.add_supported_context(sop_class)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, receiver.store)]
    )
    assert server is not None  # block=False always returns the server
    receiver.port = server.server_address[1]
    try:
        yield receiver
    finally:
        server.shutdown()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    """Poll *condition* until true; fail naming *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
