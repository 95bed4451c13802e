"""The SR read in a companion process (service/entrypoints/read_process.py): it answers
what the serving process's own read answers (POST /assessments' and STOW-RS'), raises
what that read raises, each of the bodies sent one after the other without waiting gets
its own answer, and a reader that stopped or is late is refused, then started again."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from service.adapters import fhir_inbound, strict_json
from service.config import Settings
from service.domain.errors import DomainError, Unavailable
from service.domain.model import DEFAULT_PATIENT_SYSTEM
from service.entrypoints import dicom_status, read_process, sr_instance
from tests.fhir_factory import (
    SNOMED,
    body_structure,
    coding,
    encoded,
    long_axis,
    measurement_bundle,
    observation,
)
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

T = TypeVar("T")
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "sr"
MAX_INFLATED = 1024 * 1024
LIMITS = fhir_inbound.Limits(
    bundle_bytes=200_000, resource_bytes=2_000, json=strict_json.JsonLimits(max_depth=12)
)


def _run(step: Callable[[read_process.ReadProcess], Awaitable[T]]) -> T:
    """*step* with a fresh reader process, closed afterwards."""

    async def run() -> T:
        reader = read_process.ReadProcess("urn:example:mrn", MAX_INFLATED, LIMITS)
        try:
            return await step(reader)
        finally:
            await reader.close()

    return asyncio.run(run())


def _bodies() -> list[bytes]:
    made = make_sr(
        patient_id="RP-1", study_date="20240105", lesions=[LesionSpec("T1", 23.5, role="target")]
    )
    samples = sorted(SAMPLES.glob("*sr*.dcm"))
    assert samples, f"no sample SRs in {SAMPLES}"
    return [sr_bytes(made), *(path.read_bytes() for path in samples)]


def test_the_reader_process_answers_what_the_serving_process_reads() -> None:
    bodies = _bodies()

    async def step(reader: read_process.ReadProcess) -> list[object]:
        return [await reader.read(body) for body in bodies]

    expected = [read_process.read_dicom(body, "urn:example:mrn", MAX_INFLATED) for body in bodies]
    assert _run(step) == expected


def test_a_failed_read_raises_the_readers_error_and_the_reader_goes_on() -> None:
    garbage, good = b"DICM not a data set", _bodies()[0]
    with pytest.raises(DomainError) as in_process:
        read_process.read_dicom(garbage, "urn:example:mrn", MAX_INFLATED)

    async def step(reader: read_process.ReadProcess) -> tuple[BaseException, int | None, object]:
        with pytest.raises(DomainError) as raised:
            await reader.read(garbage)
        pid = reader.pid
        return raised.value, pid, await reader.read(good)

    error, pid, after = _run(step)
    assert type(error) is type(in_process.value)
    assert (str(error), error.expression) == (str(in_process.value), in_process.value.expression)
    assert pid is not None
    assert after == read_process.read_dicom(good, "urn:example:mrn", MAX_INFLATED)


def _refusal(refused: sr_instance.InstanceRefused) -> tuple[object, ...]:
    """A refusal with all it carries."""
    return (refused.condition, str(refused), refused.sop_class, refused.sop_instance)


def test_the_reader_process_reads_stow_instances_as_the_serving_process() -> None:
    """Each instance read or refused as dicom_status.read_instance does, with the
    refusal's condition, message and UIDs (the study each must carry, if any)."""
    dataset = make_sr(
        patient_id="RP-2", study_date="20240105", lesions=[LesionSpec("T1", 20.0, role="target")]
    )
    good = sr_bytes(dataset)
    cases: list[tuple[bytes, str | None]] = [
        (good, None),
        (good, dataset.StudyInstanceUID),
        (good, "1.2.3"),  # another study
        (good, "1." * 40_000),  # a path no UID can match (UIs are 64 characters at most)
        (b"\0" * 128 + b"DICM" + b"garbage", None),
        ((SAMPLES / "ct_image.dcm").read_bytes(), None),  # not an SR
        *((path.read_bytes(), None) for path in sorted(SAMPLES.glob("*sr*.dcm"))),
    ]

    async def step(reader: read_process.ReadProcess) -> list[object]:
        found: list[object] = []
        for body, study in cases:
            try:
                found.append(await reader.read_instance(body, study))
            except sr_instance.InstanceRefused as refused:
                found.append(_refusal(refused))
        return found

    expected: list[object] = []
    for body, study in cases:
        try:
            expected.append(
                dicom_status.read_instance(
                    body,
                    patient_system="urn:example:mrn",
                    study=study,
                    max_inflated_bytes=MAX_INFLATED,
                )
            )
        except sr_instance.InstanceRefused as refused:
            expected.append(_refusal(refused))
    found = _run(step)
    assert found == expected
    assert all(isinstance(read, dicom_status.Instance) for read in found[:2])
    assert [refusal[0] for refusal in found[2:6]] == [  # type: ignore[index]
        sr_instance.Condition.STUDY_MISMATCH,
        sr_instance.Condition.STUDY_MISMATCH,
        sr_instance.Condition.CANNOT_UNDERSTAND,
        sr_instance.Condition.SOP_CLASS,
    ]


def test_a_stow_instance_the_stopped_reader_could_not_read_is_out_of_resources() -> None:
    body = _bodies()[0]

    async def step(reader: read_process.ReadProcess) -> tuple[object, object]:
        await reader.read(body)
        assert reader.pid is not None
        os.kill(reader.pid, signal.SIGKILL)
        with pytest.raises(sr_instance.InstanceRefused) as refused:
            await reader.read_instance(body, None)
        return refused.value.status, await reader.read_instance(body, None)

    status, after = _run(step)
    assert status == sr_instance.STATUSES[sr_instance.Condition.RESOURCES]  # 0xA700: again later
    assert after == dicom_status.read_instance(body, patient_system="urn:example:mrn")


def test_a_reader_that_stopped_is_unavailable_once_then_started_again() -> None:
    body = _bodies()[0]

    async def step(reader: read_process.ReadProcess) -> tuple[int | None, int | None]:
        await reader.read(body)
        first = reader.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        with pytest.raises(Unavailable):
            await reader.read(body)
        assert reader.pid is None
        await reader.read(body)
        return first, reader.pid

    first, second = _run(step)
    assert second is not None and second != first


def test_close_ends_the_reader_process() -> None:
    async def step(reader: read_process.ReadProcess) -> int:
        await reader.read(_bodies()[0])
        pid = reader.pid
        assert pid is not None
        await reader.close()
        assert reader.pid is None
        return pid

    pid = _run(step)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped


def test_the_setting_chooses_where_srs_are_read() -> None:
    def reader(flag: bool) -> read_process.Reader:
        settings = Settings(_env_file=None, sr_read_process=flag)  # type: ignore[call-arg]
        return read_process.for_settings(settings, LIMITS)

    assert isinstance(reader(True), read_process.ReadProcess)
    assert isinstance(reader(False), read_process.InProcess)
    assert Settings.model_fields["sr_read_process"].default is True
    body = _bodies()[0]
    in_process = asyncio.run(reader(False).read(body))
    assert in_process == read_process.read_dicom(body, DEFAULT_PATIENT_SYSTEM)
    # FHIR bodies: the serving process reads them itself (with the resource index).
    assert asyncio.run(reader(False).read_fhir(encoded(_fhir_bodies()[0]))) is None


def _fhir_bodies() -> list[dict[str, object]]:
    """A transaction Bundle, a collection, a lone Observation with its lesion contained."""
    lone = observation("RP-F3", "2024-03-01", "#l", coding(SNOMED, "103339001"), **long_axis(32))
    return [
        measurement_bundle("RP-F1", "2024-01-05", [("T1", 30.0), ("T2", 12.5)]),
        measurement_bundle("RP-F2", "2024-02-05", [("T1", 18.0)], bundle_type="collection"),
        lone | {"contained": [body_structure("RP-F3", "T1") | {"id": "l"}]},
    ]


def _read_here(data: bytes) -> object:
    """What the serving process reads of *data* (no stored Patient to resolve), or the
    error it raises, as (type, message, expression)."""
    try:
        return fhir_inbound.read(
            fhir_inbound.parse(data, LIMITS), "urn:example:mrn", lambda _: None
        )
    except DomainError as error:
        return (type(error), str(error), error.expression)


def test_the_reader_process_reads_fhir_bodies_as_the_serving_process() -> None:
    """The reports, digest and index records of each FHIR body, or the error of a body
    that is not JSON, too deep, too large, or not a usable resource, with its message."""
    bodies = [encoded(body) for body in _fhir_bodies()]
    deep = b'{"resourceType": "Observation", "note": ' + b"[" * 20 + b"]" * 20 + b"}"
    large = encoded(_fhir_bodies()[2] | {"text": {"div": "x" * 3_000}})
    bad = [b"{not json", deep, large, b"x" * 200_001, encoded({"resourceType": "Patient"})]

    async def step(reader: read_process.ReadProcess) -> list[object]:
        found: list[object] = []
        for body in [*bodies, *bad]:
            try:
                found.append(await reader.read_fhir(body))
            except DomainError as error:
                found.append((type(error), str(error), error.expression))
        return found

    expected = [_read_here(body) for body in [*bodies, *bad]]
    assert all(isinstance(read, fhir_inbound.FhirRead) for read in expected[: len(bodies)])
    assert all(isinstance(error, tuple) for error in expected[len(bodies) :])
    assert len({error[0] for error in expected[len(bodies) :]}) >= 2  # type: ignore[index]
    assert _run(step) == expected


def test_a_fhir_body_naming_a_stored_patient_by_id_is_left_to_the_serving_process() -> None:
    """Only the resource index resolves ``Patient/<id>``: the reader answers None."""
    lone = observation("RP-F4", "2024-03-01", "#l", coding(SNOMED, "103339001"), **long_axis(32))
    with_lesion = lone | {"contained": [body_structure("RP-F4", "T1") | {"id": "l"}]}
    body = with_lesion | {"subject": {"reference": "Patient/some-stored-id"}}

    async def step(reader: read_process.ReadProcess) -> tuple[object, object]:
        return await reader.read_fhir(encoded(body)), await reader.read_fhir(encoded(with_lesion))

    left, read = _run(step)
    assert left is None
    assert isinstance(read, fhir_inbound.FhirRead)  # the reader goes on


def test_a_large_fhir_body_is_left_to_the_serving_process() -> None:
    """Over FHIR_READ_MAX_BYTES, a body is read in the serving process only (its parse
    and records would otherwise be held in both processes)."""
    lesions = [(f"T{n}", 10.0 + n) for n in range(200)]
    large = encoded(measurement_bundle("RP-F5", "2024-01-05", lesions))
    assert len(large) > read_process.FHIR_READ_MAX_BYTES
    small = encoded(measurement_bundle("RP-F5", "2024-01-05", lesions[:60]))
    assert len(small) <= read_process.FHIR_READ_MAX_BYTES

    async def step(reader: read_process.ReadProcess) -> tuple[object, object]:
        return await reader.read_fhir(large), await reader.read_fhir(small)

    left, read = _run(step)
    assert left is None
    assert read == _read_here(small)


def _large() -> bytes:
    """A 200-lesion SR: long enough to read that a request can stop waiting meanwhile."""
    lesions = [LesionSpec(f"T{n}", 10.0 + n, role="target") for n in range(200)]
    return sr_bytes(make_sr(patient_id="RP-LARGE", study_date="20240105", lesions=lesions))


def test_a_read_cancelled_midway_leaves_no_answer_for_the_next() -> None:
    """A request that stops waiting (its task cancelled) after its body went to the
    reader: the reader goes on, and the cancelled body's answer, when it comes, is
    dropped rather than taken for the next body's."""
    large, small = _large(), _bodies()[0]

    async def step(reader: read_process.ReadProcess) -> tuple[object, int | None, int | None]:
        await reader.read(small)  # started
        first = reader.pid
        task = asyncio.ensure_future(reader.read(large))
        await asyncio.sleep(0.005)  # sent, not answered yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await reader.read(small), first, reader.pid

    after, first, second = _run(step)
    assert after == read_process.read_dicom(small, "urn:example:mrn", MAX_INFLATED)
    assert second == first


def test_concurrent_reads_each_get_the_answer_to_their_own_body() -> None:
    """Bodies sent without waiting for the answers before them (a large SR among small
    ones, errors, STOW instances, FHIR bodies), each request answered with the read of
    its own body."""
    srs = [*_bodies(), _large(), b"DICM not a data set", *_bodies()]
    fhir = [*(encoded(body) for body in _fhir_bodies()), b"{not json"]
    kinds = ["sr", "sr", "instance"] * 3
    cases = [*zip(kinds, srs, strict=False), *(("fhir", body) for body in fhir)]
    cases = [cases[i] for i in (0, 8, 1, 9, 2, 3, 10, 4, 5, 11, 6, 7)]  # interleaved

    async def one(reader: read_process.ReadProcess, kind: str, body: bytes) -> object:
        try:
            if kind == "instance":
                return await reader.read_instance(body, None)
            if kind == "fhir":
                return await reader.read_fhir(body)
            return await reader.read(body)
        except sr_instance.InstanceRefused as refused:
            return _refusal(refused)
        except DomainError as error:
            return (type(error), str(error), error.expression)

    async def step(reader: read_process.ReadProcess) -> tuple[list[object], int | None]:
        found = await asyncio.gather(*(one(reader, kind, body) for kind, body in cases))
        return list(found), reader.pid

    def expected(kind: str, body: bytes) -> object:
        try:
            if kind == "instance":
                return dicom_status.read_instance(
                    body, patient_system="urn:example:mrn", max_inflated_bytes=MAX_INFLATED
                )
            if kind == "fhir":
                return _read_here(body)
            return read_process.read_dicom(body, "urn:example:mrn", MAX_INFLATED)
        except sr_instance.InstanceRefused as refused:
            return _refusal(refused)
        except DomainError as error:
            return (type(error), str(error), error.expression)

    wanted = [expected(kind, body) for kind, body in cases]
    assert len({repr(answer) for answer in wanted}) >= 8  # a mix-up would show
    found, pid = _run(step)
    assert found == wanted
    assert pid is not None


def test_a_reader_that_does_not_answer_in_time_fails_every_read_it_owes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader stopped (SIGSTOP) past the timeout: the reads waiting for it are refused
    (503), it is killed, and the next read starts another. The timeout is short only
    while the reader is stopped: a fresh reader's first answer waits for its imports,
    which took over 0.5 s on a loaded machine."""
    body = _bodies()[0]
    timeout = read_process.TIMEOUT_SECONDS

    async def step(reader: read_process.ReadProcess) -> tuple[list[object], int, object]:
        await reader.read(body)
        stopped = reader.pid
        assert stopped is not None
        os.kill(stopped, signal.SIGSTOP)
        monkeypatch.setattr(read_process, "TIMEOUT_SECONDS", 0.5)
        waiting: list[object] = list(
            await asyncio.gather(*(reader.read(body) for _ in range(3)), return_exceptions=True)
        )
        monkeypatch.setattr(read_process, "TIMEOUT_SECONDS", timeout)
        assert reader.pid is None
        return waiting, stopped, await reader.read(body)

    waiting, stopped, after = _run(step)
    assert [type(outcome) for outcome in waiting] == [Unavailable] * 3
    assert after == read_process.read_dicom(body, "urn:example:mrn", MAX_INFLATED)
    _gone(stopped)


def _gone(pid: int) -> None:
    """Wait until *pid* has ended and been reaped (asyncio's child watcher waits for it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still there")


def test_a_thread_reads_through_the_loops_reader_until_the_loop_stops() -> None:
    """read_process.blocking: C-STORE's association threads read through the event
    loop's reader, refusals included; once the loop is gone, an instance is A700."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    reader = read_process.ReadProcess("urn:example:mrn", MAX_INFLATED, LIMITS)
    read = read_process.blocking(reader, loop)
    good, garbage = _bodies()[0], b"DICM not a data set"
    try:
        assert read(good) == dicom_status.read_instance(
            good, patient_system="urn:example:mrn", max_inflated_bytes=MAX_INFLATED
        )
        assert reader.pid is not None  # read in the companion process
        with pytest.raises(sr_instance.InstanceRefused) as refused:
            read(garbage)
        assert refused.value.condition is sr_instance.Condition.CANNOT_UNDERSTAND
    finally:
        asyncio.run_coroutine_threadsafe(reader.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()
    with pytest.raises(sr_instance.InstanceRefused) as stopped:
        read(good)
    assert stopped.value.condition is sr_instance.Condition.RESOURCES
