"""The DICOM SR read of ``POST /assessments``, STOW-RS and C-STORE in a companion
process (issue 7).

The serving process runs Python on one core at a time (the GIL). Reading a 10-lesion SR
(pydicom's parse, the content-tree walk, the model, the digest) is ~1.25 ms of its
~5.5 ms of CPU a request and needs nothing of it, so :class:`ReadProcess` runs it in a
process of its own (:mod:`.sr_reader_process`, ~60 MB resident), started at the first
read. Against the read in the serving process (four alternating pairs of 10 s runs,
README "Performance"): 188-202 SRs a second against 174-176, the serving process's CPU
5.3-5.4 -> 3.9-4.3 ms a request, both processes' 5.7-6.2 ms. Each body goes to the
reader's stdin and its answer comes back on its stdout, each framed by its length; the
answer, the report read or the exception the read raised, is pickled
(:mod:`.model_pickle`: ~0.08 ms to load a 10-lesion report), between the server and
the reader it started only. The event loop writes and reads the pipes without
blocking, one body at a time.

A reader that stops, or takes longer than :data:`TIMEOUT_SECONDS`, is killed and the
request refused with :class:`~service.domain.errors.Unavailable` (503, retry later):
reading the same bytes in the serving process could stop that one too. So is a reader
whose request stopped waiting for it (a cancelled task): its answer must not become the
next body's. The next read starts another reader. :class:`InProcess` reads in the serving process
(``TR_SR_READ_PROCESS=false``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pickle  # nosec B403
import sys
from collections.abc import Callable
from typing import Any, Final, Protocol

from service import services
from service.adapters import sr_reader
from service.config import Settings
from service.domain.errors import Unavailable
from service.domain.model import DEFAULT_PATIENT_SYSTEM
from service.entrypoints import dicom_status, sr_instance, sr_reader_process
from service.entrypoints.sr_reader_process import INSTANCE, LENGTH, request

TIMEOUT_SECONDS: Final = 30.0  # far above the read limits' worst case (reliability.md 5)


def read_dicom(
    data: bytes,
    patient_system: str = DEFAULT_PATIENT_SYSTEM,
    max_inflated_bytes: int = sr_reader.MAX_INFLATED_BYTES,
) -> services.Inbound:
    """One SR in DICOM Part 10; its digest is the one STOW-RS and C-STORE use."""
    parts = sr_instance.read_parts(data, patient_system, max_inflated_bytes)
    return dicom_status.inbound(data, parts)


class Reader(Protocol):
    """What reads the SR bodies of ``POST /assessments``, STOW-RS and C-STORE."""

    async def read(self, data: bytes) -> services.Inbound:
        """:func:`read_dicom` of *data*."""

    async def read_instance(self, data: bytes, study: str | None) -> dicom_status.Instance:
        """:func:`.dicom_status.read_instance` of *data*: raises
        :class:`~.sr_instance.InstanceRefused` only."""

    async def close(self) -> None: ...


class InProcess:
    """The reads in the serving process."""

    def __init__(self, patient_system: str, max_inflated_bytes: int) -> None:
        self._patient_system = patient_system
        self._max_inflated_bytes = max_inflated_bytes

    async def read(self, data: bytes) -> services.Inbound:
        return read_dicom(data, self._patient_system, self._max_inflated_bytes)

    async def read_instance(self, data: bytes, study: str | None) -> dicom_status.Instance:
        return dicom_status.read_instance(
            data,
            patient_system=self._patient_system,
            study=study,
            max_inflated_bytes=self._max_inflated_bytes,
        )

    async def close(self) -> None:
        return None


class ReadProcess:
    """The reads in a companion process (see the module docstring)."""

    def __init__(
        self,
        patient_system: str,
        max_inflated_bytes: int,
        log_level: str = "INFO",
        log_format: str = "json",
    ) -> None:
        self._arguments = (
            "--patient-system",
            patient_system,
            "--max-inflated-bytes",
            str(max_inflated_bytes),
            "--log-level",
            log_level,
            "--log-format",
            log_format,
        )
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The reader's process id, None before the first read or after it stopped."""
        return None if self._process is None else self._process.pid

    async def read(self, data: bytes) -> services.Inbound:
        """The read of *data*; raises what :func:`read_dicom` raises, or
        :class:`Unavailable` when the reader stopped or did not answer in time."""
        parts: sr_instance.Parts = await self._ask(request(data), data)
        return dicom_status.inbound(data, parts)

    async def read_instance(self, data: bytes, study: str | None) -> dicom_status.Instance:
        """The instance of *data*, or its :class:`~.sr_instance.InstanceRefused`; a
        reader that stopped or did not answer in time refuses it as out of resources
        (0xA700), which the sender may try again."""
        try:
            checked = await self._ask(request(data, INSTANCE, study), data)
        except Unavailable as exc:
            raise _out_of_resources(exc) from exc
        return dicom_status.instance(data, checked)

    async def _ask(self, header: bytes, data: bytes) -> Any:
        """What the reader found in *data* (after *header*), or the error it raised."""
        async with self._lock:
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    answer = await self._exchange(header, data)
            except BaseException as exc:
                # An exchange cut short (the reader stopped or is late, or this task was
                # cancelled) may leave its answer in the pipe, where the next body's
                # would be read: that reader is never asked again.
                self._discard()
                if isinstance(exc, OSError | EOFError | TimeoutError):
                    raise Unavailable("the SR reader process stopped; try again") from exc
                raise
        kind, value = pickle.loads(answer)  # nosec B301
        if kind == "error":
            raise value
        return value

    async def close(self) -> None:
        """Stop the reader (it ends at the end of its input), if it runs."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()

    def _discard(self) -> None:
        """Kill the reader now (the event loop reaps it); the next read starts another."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()

    async def _exchange(self, header: bytes, data: bytes) -> bytes:
        process = self._process or await self._start()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(header + data)  # one write: one system call
        await process.stdin.drain()
        (length,) = LENGTH.unpack(await process.stdout.readexactly(LENGTH.size))
        return await process.stdout.readexactly(length)

    async def _start(self) -> asyncio.subprocess.Process:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            sr_reader_process.__name__,
            *self._arguments,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return self._process


def blocking(
    reader: Reader, loop: asyncio.AbstractEventLoop
) -> Callable[[bytes], dicom_status.Instance]:
    """*reader*'s :meth:`~Reader.read_instance` (no study) for a thread other than that
    of *loop*, the event loop *reader* belongs to (C-STORE's association threads): each
    call waits for the read. A loop that stopped, or did not answer in time, refuses the
    instance as out of resources (0xA700)."""

    def read(data: bytes) -> dicom_status.Instance:
        asked = reader.read_instance(data, None)
        try:
            future = asyncio.run_coroutine_threadsafe(asked, loop)
        except RuntimeError as exc:  # the loop is closed: the server is stopping
            asked.close()
            raise _out_of_resources(exc) from exc
        try:
            return future.result(TIMEOUT_SECONDS + 5)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError) as exc:
            future.cancel()
            raise _out_of_resources(exc) from exc

    return read


def _out_of_resources(exc: BaseException) -> sr_instance.InstanceRefused:
    message = f"the SR reader did not answer ({type(exc).__name__}); try again"
    return sr_instance.InstanceRefused(sr_instance.Condition.RESOURCES, message)


def for_settings(settings: Settings) -> Reader:
    """The reader *settings* ask for."""
    arguments = (settings.patient_system, settings.sr_max_inflated_bytes)
    if not settings.sr_read_process:
        return InProcess(*arguments)
    return ReadProcess(*arguments, settings.log_level, settings.log_format)
