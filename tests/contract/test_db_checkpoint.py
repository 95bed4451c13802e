"""The checkpoint of a patient's last assessment (``patient.checkpoint``, issue 7): its
codec (service.adapters.checkpoint_codec) and the ingest path resumed from it
(services.assess_reports through Store.history / Store.save_checkpoint)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service import services
from service.adapters import checkpoint_codec, content_digest, db
from service.adapters.db_schema import patient as patient_table
from service.domain.checkpoint import Checkpoint
from service.domain.criteria import mrecist, recist11
from service.domain.history import settled_history
from service.domain.model import (
    AssessmentParameters,
    ClinicalSetting,
    LesionObservation,
    LesionRole,
    LesionState,
    Primary,
    Therapy,
    TimepointReport,
)
from tests.builders import lesion, node, report
from tests.contract.test_db import rich_report
from tests.databases import statements_run

BASE = date(2024, 1, 1)


def _day(weeks: int) -> str:
    return (BASE + timedelta(weeks=weeks)).isoformat()


def _checkpoint() -> Checkpoint:
    """The checkpoint of a history using every field kept: a rich baseline (regions,
    findings, a merged lesion), a declared new lesion, merge warnings, a setting."""
    baseline = replace(rich_report(), patient=report(_day(0)).patient)
    later = report(_day(8), lesion("T1", 30, uid="2.25.101"), node("N1", 8))
    again = replace(
        report(
            _day(8), lesion("T1", 29, uid="2.25.101"), lesion("N9", 12, state=LesionState.EQUIVOCAL)
        ),
        source=replace(later.source, uid="again"),
        setting=ClinicalSetting(Primary.HCC, frozenset({Therapy.TKI})),
    )
    history, settled = settled_history([baseline, later, again])
    folds = {
        criterion: recist11.fold_by_size(history, params, rules)[1]
        for criterion, params, rules in (
            (recist11.CRITERION, AssessmentParameters(), recist11.RULES),
            (
                mrecist.CRITERION,
                AssessmentParameters(mrecist_pd_5mm=True),
                mrecist.rules(AssessmentParameters(mrecist_pd_5mm=True)),
            ),
        )
    }
    assert history.warnings and settled.declared and settled.setting is not None
    return Checkpoint(settled, folds)


def test_a_checkpoint_reads_back_as_written_but_for_the_steps_observations() -> None:
    checkpoint = _checkpoint()
    written = checkpoint_codec.encode(checkpoint, [3, 1, 2])
    decoded = checkpoint_codec.decode(written.column)
    assert decoded is not None
    read = decoded.checkpoint
    assert decoded.documents == {1, 2, 3}
    assert read.settled == checkpoint.settled
    assert read.folds.keys() == checkpoint.folds.keys()
    for criterion, fold in checkpoint.folds.items():
        again = read.folds[criterion]
        assert again.rules is fold.rules and again.params == fold.params
        assert (again.disease, again.baseline_sum) == (fold.disease, fold.baseline_sum)
        assert again.steps == tuple(replace(s, keys=(), observations=()) for s in fold.steps)


def test_what_a_checkpoint_keeps_of_the_one_read_is_written_as_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resumed checkpoint keeps the baseline and the steps of the one read: they are
    copied as stored, only the rest is encoded, and it reads back as the checkpoint."""
    checkpoint = _checkpoint()
    read = checkpoint_codec.decode(checkpoint_codec.encode(checkpoint, [1, 2]).column)
    assert read is not None
    fold = read.checkpoint.folds[recist11.CRITERION]
    last = fold.steps[-1]
    step = replace(last, day=last.day + timedelta(weeks=8), before=last.after)
    longer = Checkpoint(
        read.checkpoint.settled, {recist11.CRITERION: replace(fold, steps=(*fold.steps, step))}
    )
    encoded: list[object] = []

    def noting(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def encode(part: Any) -> Any:
            encoded.append(part)
            return original(part)

        return encode

    for name in ("_baseline", "_step"):
        monkeypatch.setattr(checkpoint_codec, name, noting(getattr(checkpoint_codec, name)))
    written = checkpoint_codec.encode(longer, [1, 2, 3], read)
    assert encoded == [step]  # the new step only
    for kept in (read.checkpoint.settled.baseline, *fold.steps):
        assert written.line(kept) == read.line(kept) is not None
    again = checkpoint_codec.decode(written.column)
    assert again is not None and again.checkpoint.folds[recist11.CRITERION].steps[-1] == step
    assert again.checkpoint.settled == checkpoint.settled


def test_a_checkpoint_of_another_layout_or_criterion_is_not_read() -> None:
    data = checkpoint_codec.encode(_checkpoint(), [1]).data
    version = f'"version":{checkpoint_codec.VERSION}'.encode()
    assert checkpoint_codec.decode(zlib.compress(data.replace(version, b'"version":2'))) is None
    assert checkpoint_codec.decode(zlib.compress(data.replace(b'"mrecist"', b'"other"'))) is None
    # Layout 3 and before: the lines as they are, not compressed.
    assert checkpoint_codec.decode(data.replace(version, b'"version":3')) is None


def test_a_checkpoint_is_stored_compressed() -> None:
    """Its column is its lines compressed: a fraction of the pages a commit rewrites."""
    written = checkpoint_codec.encode(_checkpoint(), [1, 2])
    assert zlib.decompress(written.column) == written.data
    assert len(written.column) * 3 < len(written.data)


# ---- the ingest path, resumed or not -------------------------------------------------


def _ingest(engine: Engine, found: TimepointReport, criteria: Sequence[str]) -> Any:
    inbound = [services.Inbound(found, content_digest.digest(repr(found).encode()))]
    with db.open_store(engine) as store:
        return services.assess_reports(
            store, inbound, criteria, AssessmentParameters(), "http://x", tenant="default"
        )


def _stored_checkpoint(engine: Engine) -> bytes | None:
    with engine.connect() as connection:
        found = connection.execute(sa.select(patient_table.c.checkpoint)).scalar_one()
    return None if found is None else bytes(found)


def _set_checkpoint(engine: Engine, data: bytes | None) -> None:
    with engine.begin() as connection:
        connection.execute(sa.update(patient_table).values(checkpoint=data))


def _targets(*sizes: int) -> list[LesionObservation]:
    return [lesion(f"T{n}", size) for n, size in enumerate(sizes, start=1)]


def _reports() -> list[TimepointReport]:
    """One patient's reports in arrival order: follow-ups resumed from the checkpoint,
    and what is not (a second report of the last date, a new lesion, a late arrival)."""
    second = report(_day(16), lesion("NT1", None, role=LesionRole.NON_TARGET))
    return [
        report(_day(0), *_targets(40, 30, 22), lesion("NT1", None, role=LesionRole.NON_TARGET)),
        report(_day(8), *_targets(36, 27, 20)),
        report(_day(16), *_targets(30, 22, 17)),
        replace(second, source=replace(second.source, uid="second-of-the-day")),
        report(_day(24), *_targets(25, 20, 15)),
        report(_day(32), *_targets(26, 21, 15), lesion("N1", 11, state=LesionState.EQUIVOCAL)),
        report(_day(40), *_targets(32, 25, 19), lesion("N1", 14)),
        report(_day(12), *_targets(33, 24, 18)),  # arrives late
        report(_day(48), *_targets(33, 26, 21), lesion("N1", 15)),
        report(_day(56), *_targets(34, 26, 22), lesion("N1", 15)),
    ]


@pytest.mark.parametrize("criteria", [(), ("recist-1.1", "mrecist")])
def test_each_ingest_resumed_from_the_checkpoint_answers_and_checkpoints_as_from_every_report(
    migrated_engine: Engine, criteria: Sequence[str]
) -> None:
    """Each report is ingested after the checkpoint of the previous ingest, then again
    (a re-delivery) without any checkpoint, from every report: the answers are equal (a
    differing assessment would have stored a new version of the report), and so are the
    checkpoints the two wrote."""
    for found in _reports():
        resumed = _ingest(migrated_engine, found, criteria)
        written = _stored_checkpoint(migrated_engine)
        _set_checkpoint(migrated_engine, None)
        assert _ingest(migrated_engine, found, criteria) == resumed
        assert _stored_checkpoint(migrated_engine) == written
        _set_checkpoint(migrated_engine, written)  # the next ingest resumes from this one


def test_a_damaged_checkpoint_is_assessed_again_from_the_reports_and_written_anew(
    migrated_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    reports = _reports()
    _ingest(migrated_engine, reports[0], ())
    written = _stored_checkpoint(migrated_engine)
    assert written is not None
    _set_checkpoint(migrated_engine, written[: len(written) // 2])
    answer = _ingest(migrated_engine, reports[1], ())
    assert "patient checkpoint not read: damaged checkpoint" in caplog.text
    again = _stored_checkpoint(migrated_engine)
    assert again is not None and checkpoint_codec.decode(again) is not None
    _set_checkpoint(migrated_engine, None)
    assert _ingest(migrated_engine, reports[1], ()) == answer


def test_a_resumed_ingest_decodes_no_document(
    migrated_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = _reports()[:3]
    for found in reports[:2]:
        _ingest(migrated_engine, found, ())
    db.forget_decoded_documents()  # as in another process
    read: list[int] = []
    decode = db.Store._read_reports

    def counted(store: db.Store, patient: Any, document_ids: Sequence[int]) -> Any:
        read.extend(document_ids)
        return decode(store, patient, document_ids)

    monkeypatch.setattr(db.Store, "_read_reports", counted)
    _ingest(migrated_engine, reports[2], ())
    assert read == []  # the checkpoint, and the new report as it was stored
    read.clear()
    _set_checkpoint(migrated_engine, None)
    db.forget_decoded_documents()
    _ingest(migrated_engine, reports[2], ())  # without a checkpoint: every document
    assert len(read) == 3


def test_the_checkpoint_is_read_with_the_patient_lock(migrated_engine: Engine) -> None:
    """An ingest holds its patient (lock_patient) and reads the checkpoint in that
    statement: one round trip less, on PostgreSQL (issue 7); the answer is the one a
    checkpoint read on its own gives."""
    reports = _reports()[:3]
    for found in reports[:2]:
        _ingest(migrated_engine, found, ())
    with statements_run(migrated_engine) as statements:
        answer = _ingest(migrated_engine, reports[2], ())
    reads = [s for s in statements if s.startswith("SELECT") and "patient.checkpoint" in s]
    assert len(reads) == 1 and reads[0].startswith("SELECT patient.id, patient.checkpoint")
    if migrated_engine.dialect.name == "postgresql":
        assert reads[0].endswith("FOR NO KEY UPDATE")
    with db.open_store(migrated_engine) as store:  # no lock: the checkpoint on its own
        resumed = store.history(reports[2].patient)
    assert resumed.checkpoint is not None and resumed.reports == []
    assert answer == _ingest(migrated_engine, reports[2], ())  # a re-delivery, as stored
