"""The DICOM SR read of ``POST /assessments``, STOW-RS and C-STORE, and the FHIR read of
``POST /assessments``, in a companion process (issue 7).

The serving process runs Python on one core at a time (the GIL). Reading a 10-lesion SR
(pydicom's parse, the content-tree walk, the model, the digest) is ~1.25 ms of its
~5.5 ms of CPU a request and needs nothing of it, so :class:`ReadProcess` runs it in a
process of its own (:mod:`.sr_reader_process`, ~60 MB resident), started at the first
read. Against the read in the serving process (four alternating pairs of 10 s runs,
bench/HISTORY.md): 188-202 SRs a second against 174-176, the serving process's CPU
5.3-5.4 -> 3.9-4.3 ms a request, both processes' 5.7-6.2 ms. A FHIR body of ``POST
/assessments`` (strict JSON, the canonical digest, the reports and the index records:
~0.9 ms of a 10-Observation Bundle's ~3.8 in process) is read there too, unless it
names a Patient by an id only the resource index knows, or is over
:data:`FHIR_READ_MAX_BYTES`: the serving process reads those itself. Each body goes to
the reader's stdin and its answer comes back on its stdout, each framed by its length;
the answer, what was read or the exception the read raised, is pickled
(:mod:`.model_pickle`: ~0.08 ms to load a 10-lesion report), between the server and the
reader it started only. The event loop writes and reads the pipes without blocking,
and writes each body as it comes, without waiting for the answers to those before it:
the reader reads them in order and answers in that order, so it need not wait for the
serving process between two bodies (one at a time, each exchange took ~2.4 ms for ~1.4
ms of reading, and the requests waited ~4.4 ms for their turn at 8 connections).

A reader that stops, or leaves a body unanswered :data:`TIMEOUT_SECONDS` after it was
sent, is killed and the reads it still owes refused with
:class:`~service.domain.errors.Unavailable` (503, retry later): reading the same bytes
in the serving process could stop that one too. The next read starts another reader. A
request that stops waiting (a cancelled task) leaves the reader going: its answer, when
it comes, is dropped. :class:`InProcess` reads in the serving process
(``TR_SR_READ_PROCESS=false``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import pickle  # nosec B403
import sys
from collections.abc import Callable
from typing import Any, Final, Protocol

from service import services
from service.adapters import fhir_inbound, sr_reader
from service.config import Settings
from service.domain.errors import Unavailable
from service.domain.model import DEFAULT_PATIENT_SYSTEM
from service.entrypoints import dicom_status, sr_instance, sr_reader_process
from service.entrypoints.sr_reader_process import FHIR, INSTANCE, LENGTH, request

TIMEOUT_SECONDS: Final = 30.0  # far above the read limits' worst case (reliability.md 5)
# A larger FHIR body is read in the serving process: its parse holds ~5 x its size, and
# read here its records would be held in both processes (the reader's read, the server's
# load of the answer): a 999-entry Bundle (670 KB) added 9.8 MB to the server's peak
# and 8.3 MB to the reader's, against 9.8 MB read in the server alone (bench.memory).
FHIR_READ_MAX_BYTES: Final = 256 * 1024


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

    async def read_fhir(self, data: bytes) -> fhir_inbound.FhirRead | None:
        """The FHIR body *data* of ``POST /assessments`` read, or None: the serving
        process reads it (with the resource index, which resolves Patient ids)."""

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

    async def read_fhir(self, data: bytes) -> fhir_inbound.FhirRead | None:
        return None

    async def close(self) -> None:
        return None


class ReadProcess:
    """The reads in a companion process (see the module docstring)."""

    def __init__(
        self,
        patient_system: str,
        max_inflated_bytes: int,
        fhir_limits: fhir_inbound.Limits,
        log_level: str = "INFO",
        log_format: str = "json",
    ) -> None:
        self._arguments = sr_reader_process.arguments(
            patient_system, max_inflated_bytes, fhir_limits, log_level, log_format
        )
        self._channel: _Channel | None = None
        self._starting = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The reader's process id, None before the first read or after it stopped."""
        return None if self._channel is None else self._channel.process.pid

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

    async def read_fhir(self, data: bytes) -> fhir_inbound.FhirRead | None:
        """The read of the FHIR body *data* (None: one the serving process reads, over
        :data:`FHIR_READ_MAX_BYTES` or naming a stored Patient by id); raises what
        :func:`.fhir_inbound.parse` and :func:`.fhir_inbound.read` raise, or
        :class:`Unavailable` when the reader stopped or did not answer in time."""
        if len(data) > FHIR_READ_MAX_BYTES:
            return None
        found: fhir_inbound.FhirRead | None = await self._ask(request(data, FHIR), data)
        return found

    async def _ask(self, header: bytes, data: bytes) -> Any:
        """What the reader found in *data* (after *header*), or the error it raised."""
        channel = self._channel or await self._start()
        answer = channel.send(header + data)
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                await channel.drain()
                found = await answer
        except (OSError, EOFError, TimeoutError) as exc:
            self._stop(channel, exc)  # stopped, or late: the bodies after this one too
            raise Unavailable("the reader process stopped; try again") from exc
        finally:
            answer.cancel()  # a request that stops waiting: its answer, when it comes, is dropped
        kind, value = pickle.loads(found)  # nosec B301
        if kind == "error":
            raise value
        return value

    async def close(self) -> None:
        """Stop the reader (it ends at the end of its input), if it runs."""
        channel, self._channel = self._channel, None
        if channel is None:
            return
        process = channel.process
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
        channel.fail(EOFError("the SR reader process was closed"))

    def _stop(self, channel: _Channel, exc: BaseException) -> None:
        """Kill *channel*'s reader now (the event loop reaps it) and fail the reads it
        still owes; the next read starts another."""
        if self._channel is channel:
            self._channel = None
        with contextlib.suppress(ProcessLookupError):  # ended, already reaped
            channel.process.kill()
        channel.fail(exc)

    async def _start(self) -> _Channel:
        async with self._starting:  # one reader, however many requests wait for it
            if self._channel is None:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    sr_reader_process.__name__,
                    *self._arguments,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
                self._channel = _Channel(process, self._stop)
            return self._channel


class _Channel:
    """One reader process: the bodies written to its stdin one after the other, without
    waiting for the answers, and its answers taken from its stdout in the same order,
    each for the future of its body (one task reads them all)."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        stopped: Callable[[_Channel, BaseException], None],
    ) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._stopped = stopped
        self._pending: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._failure: BaseException | None = None
        self._answers = asyncio.create_task(self._take_answers())

    def send(self, message: bytes) -> asyncio.Future[bytes]:
        """The future of *message*'s answer; *message* written in one system call, or
        buffered behind those not yet written (:meth:`drain` waits for them)."""
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self._failure is not None:
            answer.set_exception(self._failure)
            return answer
        self._pending.append(answer)
        self._stdin.write(message)
        return answer

    async def drain(self) -> None:
        await self._stdin.drain()

    def fail(self, exc: BaseException) -> None:
        """Fail every read still owed with *exc* (none is answered after this)."""
        self._failure = exc
        while self._pending:
            answer = self._pending.popleft()
            if not answer.done():
                answer.set_exception(exc)
        if self._answers is not asyncio.current_task():
            self._answers.cancel()

    async def _take_answers(self) -> None:
        try:
            while True:
                (length,) = LENGTH.unpack(await self._stdout.readexactly(LENGTH.size))
                found = await self._stdout.readexactly(length)
                if not self._pending:
                    raise EOFError("the SR reader answered a body it was not sent")
                answer = self._pending.popleft()
                if not answer.done():  # else its request stopped waiting
                    answer.set_result(found)
        except (OSError, EOFError) as exc:  # the reader stopped (IncompleteReadError)
            self._stopped(self, exc)


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


def for_settings(settings: Settings, fhir_limits: fhir_inbound.Limits) -> Reader:
    """The reader *settings* ask for (*fhir_limits*: theirs, for the FHIR bodies)."""
    arguments = (settings.patient_system, settings.sr_max_inflated_bytes)
    if not settings.sr_read_process:
        return InProcess(*arguments)
    return ReadProcess(*arguments, fhir_limits, settings.log_level, settings.log_format)
