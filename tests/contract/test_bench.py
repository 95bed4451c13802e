"""The benchmark harness's pieces that run in seconds (bench/): body generation, the
reading of wrk's report, process figures and verdicts. CI never runs the benchmark."""

from __future__ import annotations

import collections
import itertools
import os
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from bench import (
    ab,
    bodies,
    cli_rate,
    driver_clock,
    inprocess,
    measure,
    memory,
    pages,
    postgres,
    procstat,
    servers,
    wrk,
)
from bench.run import Ratio
from service.adapters import sr_reader

WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:40123/assessments
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   112.45ms   30.12ms 401.00ms   80.00%
    Req/Sec    71.20     10.11    90.00     70.00%
  Latency Distribution
     50%  104.50ms
     75%  120.00ms
     90%  150.00ms
     99%    1.25s
  712 requests in 10.01s, 9.10MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:     71.13
Transfer/sec:    931.00KB
"""


def test_wrk_report_is_read_with_units():
    result = wrk.parse(WRK_REPORT)
    assert result.requests == 712
    assert result.seconds == pytest.approx(10.01)
    assert result.rps == pytest.approx(71.13)
    assert result.p50_ms == pytest.approx(104.5)
    assert result.p99_ms == pytest.approx(1250.0)
    assert (result.non_2xx, result.socket_errors) == (4, 3)


def test_wrk_report_in_microseconds_without_errors():
    text = WRK_REPORT.replace("104.50ms", "870.00us").replace("1.25s", "2.10ms")
    text = text.replace("  Socket errors: connect 0, read 1, write 0, timeout 2\n", "")
    result = wrk.parse(text.replace("  Non-2xx or 3xx responses: 4\n", ""))
    assert result.p50_ms == pytest.approx(0.87)
    assert result.p99_ms == pytest.approx(2.1)
    assert (result.non_2xx, result.socket_errors) == (0, 0)


def test_a_report_without_latency_distribution_is_refused():
    with pytest.raises(ValueError, match="wrk --latency"):
        wrk.parse(WRK_REPORT.split("  Latency Distribution")[0])


def test_bodies_are_distinct_readable_measurement_reports(tmp_path):
    written = bodies.Supply(tmp_path, "sr", 2, 3)
    written.extend(2)  # more, none of them seen before
    paths = written.listing.read_text().split()
    assert written.count == len(paths) == len(set(paths)) == 5
    datasets = [dcmread(path) for path in paths]
    assert len({ds.PatientID for ds in datasets}) == 5
    assert len({ds.SOPInstanceUID for ds in datasets}) == 5
    assert len({ds.StudyInstanceUID for ds in datasets}) == 5
    for path, ds in zip(paths, datasets, strict=True):
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        report = sr_reader.read_sr(sr_reader.parse_dicom(Path(path).read_bytes()))
        assert report.patient.value == ds.PatientID
        assert [lesion.identity.tracking_id for lesion in report.lesions] == ["T1", "T2"]


def test_stamp_moves_a_report_to_another_date():
    sr = bodies.template(1)
    data = bodies.stamp(sr, "P-1", "20250102")
    report = sr_reader.read_sr(sr_reader.parse_dicom(data))
    assert (report.patient.value, report.date.isoformat()) == ("P-1", "2025-01-02")


def test_the_figures_of_a_process_count_the_processes_it_started():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sum(range(3 * 10**6)); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while procstat.cpu_seconds(child.pid) < 0.02 and time.monotonic() < deadline:
            time.sleep(0.01)
        me = os.getpid()
        assert child.pid in procstat.processes(me) and procstat.processes(me)[0] == me
        # Each process's own figure first, the whole after: both only grow, so the
        # whole read later is at least their sum (read the other way round, this
        # process's CPU once ticked by 10 ms in between).
        own_cpu, own_peak = procstat.cpu_seconds(me), procstat.peak_rss_mb(me)
        child_peak = procstat.peak_rss_mb(child.pid)
        assert procstat.tree_cpu_seconds(me) >= own_cpu + 0.02
        assert procstat.tree_peak_rss_mb(me) >= own_peak + child_peak
    finally:
        child.communicate(b"")


def test_stow_body_frames_each_instance():
    body = bodies.stow_body([b"DICM-1", b"DICM-2"])
    boundary = f"--{bodies.STOW_BOUNDARY}".encode()
    assert body.count(boundary) == 3
    assert body.endswith(boundary + b"--\r\n")
    assert b"Content-Type: application/dicom\r\n\r\nDICM-2\r\n" in body
    assert f"boundary={bodies.STOW_BOUNDARY}" in bodies.STOW_CONTENT_TYPE


def test_process_figures_of_this_process():
    assert procstat.cpu_seconds(os.getpid()) > 0
    assert 1 < procstat.peak_rss_mb(os.getpid()) < 10_000


@pytest.mark.parametrize("kind", sorted(bodies.KINDS))
def test_every_kind_of_body_is_distinct(tmp_path, kind):
    written = bodies.Supply(tmp_path, kind, 1, 2)
    written.extend(1)
    contents = [Path(path).read_bytes() for path in written.listing.read_text().split()]
    assert len(set(contents)) == 3 and written.mean_bytes > 0


def test_cursor_writes_the_bodies_a_run_may_send(tmp_path):
    """A run is given bodies for 1.5 x the fastest rate seen, plus two per connection;
    a run faster still sends some twice, and says so."""
    supply = bodies.Supply(tmp_path, "bundle", 1, 10)
    cursor = measure.Cursor(supply)
    cursor.reserve(seconds=1, connections=2)  # no rate known yet: what is written
    assert supply.count == 10
    cursor.advance(8, rps=6.0)
    cursor.reserve(seconds=2, connections=2)  # 8 + 1.5 x 6 x 2 + 4
    assert supply.count == 30 and cursor.reused == 0
    cursor.advance(25, rps=12.0)
    assert (cursor.next, cursor.reused) == (33, 3)


def test_a_stateless_server_gets_the_bodies_written_again(tmp_path):
    supply = bodies.Supply(tmp_path, "bundle", 1, 4)
    cursor = measure.Cursor(supply, rotate_only=True)
    cursor.advance(3, rps=100.0)
    cursor.reserve(seconds=10, connections=8)
    assert supply.count == 4
    cursor.advance(5, rps=100.0)  # past the end: rotated, not a repeat that matters
    assert (cursor.next, cursor.reused) == (8, 0)


@pytest.mark.parametrize(
    ("value", "op", "target", "verdict"),
    [
        (0.12, ">=", 0.10, "PASS"),
        (0.01, ">=", 0.10, "FAIL"),
        (1.3, "<=", 1.25, "FAIL"),
        (1.25, "<=", 1.25, "PASS"),
        (None, ">=", 2, "NOT MEASURED"),
    ],
)
def test_ratio_verdicts(value, op, target, verdict):
    ratio = Ratio("x", value, op, target)
    assert ratio.verdict == verdict
    assert ratio.line().startswith(verdict)


def test_bodies_round_trip_through_bytes():
    data = next(bodies.distinct_srs(1, lesion_count=1, prefix="RT"))
    assert dcmread(BytesIO(data)).PatientID == "RT-0000000"


def test_cli_rate_times_the_cli_and_the_walk_over_one_folder_of_histories(tmp_path):
    figures = cli_rate.measure(tmp_path, patients=2, timepoints=2, runs=1)
    folder = sorted((tmp_path / "cli-folder").glob("*.dcm"))
    read = [dcmread(path) for path in folder]
    assert figures["files"] == len(folder) == 4
    assert {(sr.PatientID, sr.StudyDate) for sr in read} == {
        ("CLI-00000", "20240105"),
        ("CLI-00000", "20240216"),
        ("CLI-00001", "20240105"),
        ("CLI-00001", "20240216"),
    }
    assert len({sr.SOPInstanceUID for sr in read}) == 4
    assert figures["cli_cpu_s"] > 0 and figures["baseline_cpu_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["baseline_cpu_s"] / figures["cli_cpu_s"])


def test_history_growth_measures_both_the_warm_and_the_cold_history(tmp_path):
    found = inprocess.history_growth(tmp_path, patients=1)
    for kind in ("warm", "cold"):
        figures = found[kind]
        assert figures["cpu_ms_10th"] > 0 and figures["cpu_ms_50th"] > 0
        assert figures["ratio"] == pytest.approx(figures["cpu_ms_50th"] / figures["cpu_ms_10th"])


def test_history_growth_is_the_median_of_each_patients_ratio(tmp_path, monkeypatch):
    """Each timed request's cost scripted: warm and cold patients in turn (the first of
    each a warm-up), the 10th timepoint then the 50th. One cold 10th costs 141 ms (a
    spike); the warm patients' costs fall by a third after the first (the machine's
    drift), which the medians of all the 10th and of all the 50th take for a shrinking
    history (0.73) and each patient's own ratio does not."""
    scripted = iter(
        [7.0, 8.0, 7.0, 8.0]  # the warm-ups of each kind, not counted
        + [9.0, 9.9, 7.5, 9.0]  # a warm patient, then a cold one
        + [9.0, 6.6, 141.0, 9.5]
        + [6.0, 6.6, 7.6, 9.2]
    )
    monkeypatch.setattr(inprocess, "cost", lambda run, data: inprocess.Cost(next(scripted), 0.0, 1))
    found = inprocess.history_growth(tmp_path, patients=3)
    assert found["cold"]["ratio"] == pytest.approx(9.0 / 7.5)
    assert found["cold"]["ratio_of_medians"] == pytest.approx(9.2 / 7.6)
    assert found["cold"]["mean_ratio"] == pytest.approx((9.0 + 9.5 + 9.2) / (7.5 + 141 + 7.6))
    assert found["warm"]["ratio"] == pytest.approx(1.1)
    assert found["warm"]["ratio_of_medians"] == pytest.approx(6.6 / 9.0)


def test_the_wal_is_copied_into_the_database_before_a_timed_request(tmp_path):
    """The automatic checkpoint must not fall on a timed request (history_growth)."""
    ingest = inprocess.Ingest(inprocess.new_engine(tmp_path / "wal.db"))
    ingest(next(bodies.distinct_srs(1, 2, prefix="WAL")))
    frames, copied = _wal_frames(tmp_path / "wal.db-shm")
    assert frames > copied  # the request's pages are in the log only
    inprocess._checkpoint_wal(ingest.engine)
    assert _wal_frames(tmp_path / "wal.db-shm") == (frames, frames)  # all copied
    ingest.engine.dispose()


def _wal_frames(shm: Path) -> tuple[int, int]:
    """The frames in SQLite's write-ahead log and those of them copied into the database:
    ``mxFrame`` and ``nBackfill`` of its WAL-index (sqlite.org walformat.html 2.1: the
    header at 0, in the machine's byte order, its checkpoint information at 96)."""
    index = shm.read_bytes()
    return struct.unpack_from("=I", index, 16)[0], struct.unpack_from("=I", index, 96)[0]


def test_memory_added_by_one_request_is_read_from_a_fresh_server(tmp_path):
    body = next(bodies.distinct_srs(1, 10, prefix="MEMTEST"))
    found = memory.added_by(tmp_path / "sr", body, "application/dicom")
    assert found["body_bytes"] == len(body)
    assert 0 < found["peak_rss_mb_before"] <= found["peak_rss_mb_after"]
    assert found["ratio"] == pytest.approx(found["added_bytes"] / len(body))
    by_process = found["added_bytes_by_process"]  # the server (and its SR reader if any:
    assert by_process and sum(by_process) == pytest.approx(found["added_bytes"])  # not here)


def test_postgresql_database_share_is_measured_on_a_schema_of_its_own():
    problem = postgres.unreachable()
    if problem is not None:
        pytest.skip(problem)
    found = inprocess.postgres_share(list(bodies.distinct_srs(4, 2, prefix="PGSHARE")))
    assert found["server"] == "postgresql"
    _assert_database_share(found)


def test_an_unreachable_postgresql_is_reported_not_measured():
    found = inprocess.postgres_share([], "postgresql+psycopg://postgres@127.0.0.1:1/test")
    assert "unreachable" in found["skipped"]
    ratio = Ratio("PostgreSQL: database share", found.get("share"), "<=", 0.25)
    assert ratio.verdict == "NOT MEASURED"


class _Arrivals(BaseHTTPRequestHandler):
    """Answers every POST with an empty JSON object, noting when it arrived."""

    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    disable_nagle_algorithm = True  # the body's write not held for the headers' ACK
    seen: list[float] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(time.monotonic())
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_waits_exponential_times_of_the_mean_delay(tmp_path):
    """One connection waiting 50 ms on average after each answer sends ~60 requests in
    3 s, at intervals as dispersed as a Poisson stream's (coefficient of variation ~1,
    sampled within ~0.15 of it; a fixed wait gives ~0). It once measured 0.43 over 2 s
    on a machine loaded by two test runs: the bound leaves room for that."""
    written = bodies.Supply(tmp_path / "b", "sr", 1, 3)
    _Arrivals.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Arrivals)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = wrk.run(
            wrk.Load(url, written.listing, "application/dicom"),
            seconds=3,
            connections=1,
            delay_ms=50,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.non_2xx == result.socket_errors == 0
    assert 25 <= result.requests <= 105
    gaps = [later - earlier for earlier, later in itertools.pairwise(_Arrivals.seen)]
    assert statistics.stdev(gaps) / statistics.mean(gaps) > 0.35


def test_paired_rounds_take_the_two_targets_in_turn():
    assert measure.round_order(3) == [(0, 1), (1, 0), (0, 1)]


def test_a_peer_that_answered_nothing_has_no_ratio():
    figures = measure.Figures()
    assert measure.Paired(figures, figures, []).ratio is None
    assert measure.Paired(figures, figures, [1.0, 3.0, 2.0]).ratio == 2.0


class _SlowArrivals(_Arrivals):
    """:class:`_Arrivals` taking 20 ms an answer, noting arrivals of its own."""

    seen: list[float] = []

    def do_POST(self) -> None:
        time.sleep(0.02)
        super().do_POST()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_paired_measures_each_round_back_to_back(tmp_path):
    """Two servers, one answering at once and one in 20 ms, measured in 2 rounds: each
    round's ratio shows the fast one faster, and the last run was the fast one's (it
    goes second in the second round)."""
    _Arrivals.seen, _SlowArrivals.seen = [], []
    handlers = (_Arrivals, _SlowArrivals)
    running = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in handlers]
    for server in running:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        written = bodies.Supply(tmp_path, "sr", 1, 3)
        fast, slow = (
            measure.Target(
                os.getpid(),
                wrk.Load(
                    f"http://127.0.0.1:{server.server_address[1]}/",
                    written.listing,
                    "application/dicom",
                ),
                measure.Cursor(written, rotate_only=True),
            )
            for server in running
        )
        found = measure.paired(fast, slow, measure.Protocol(1, 1, 2, 1))
    finally:
        for server in running:
            server.shutdown()
            server.server_close()
    assert len(found.round_ratios) == 2 and min(found.round_ratios) > 1.5
    assert found.ratio == pytest.approx(statistics.median(found.round_ratios))
    assert found.first.rps > found.second.rps > 0 and len(found.first.runs) == 2
    assert max(_Arrivals.seen) > max(_SlowArrivals.seen)


def test_interleaved_takes_the_two_runs_in_turn():
    calls: list[tuple[str, bytes]] = []
    first, second = inprocess.interleaved(
        lambda body: calls.append(("a", body)),
        [b"1", b"2"],
        lambda body: calls.append(("b", body)),
        [b"3", b"4"],
    )
    assert calls == [("a", b"1"), ("b", b"3"), ("a", b"2"), ("b", b"4")]
    assert [c.n for c in first + second] == [1, 1, 1, 1]


def test_summary_centres_single_request_costs():
    costs = [inprocess.Cost(1.0, 2.0, 1), inprocess.Cost(3.0, 4.0, 1), inprocess.Cost(98, 99, 1)]
    assert inprocess.summary(costs, statistics.median) == inprocess.Cost(3.0, 4.0, 3)
    assert inprocess.summary(costs, statistics.fmean) == inprocess.Cost(34.0, 35.0, 3)


def test_the_sqlite_database_share_counts_wall_and_cpu_time(tmp_path):
    ingest = inprocess.Ingest(inprocess.new_engine(tmp_path / "share.db"))
    data = list(bodies.distinct_srs(5, 2, prefix="SHARE"))
    inprocess.cost(ingest, data[:1])
    ingest.reset()
    found = inprocess.database_share(ingest, inprocess.cost(ingest, data[1:]))
    _assert_database_share(found)
    ingest.engine.dispose()


def test_the_driver_clock_counts_the_outermost_calls_and_the_commits_apart(monkeypatch):
    ticks = iter(range(100))
    monkeypatch.setattr(driver_clock, "_now", lambda: (next(ticks), 10 * next(ticks)))
    clock = driver_clock.Clock()
    clock.timed(clock.timed, lambda: None)  # a connection's execute running a cursor's
    # Ticks 0 and 1 at its start, 2 and 3 at the inner call's, 4 and 5 at its end.
    assert (clock.statements_wall, clock.statements_cpu) == (4, 40)
    clock.timed(lambda: None, commit=True)
    assert (clock.commits_wall, clock.commits_cpu, clock.wall, clock.cpu) == (2, 20, 6, 60)
    clock.reset()
    assert (clock.wall, clock.cpu) == (0, 0)


def test_the_driver_clock_times_each_connection_the_engine_opens(tmp_path):
    engine = inprocess.new_engine(tmp_path / "clock.db")
    clock = driver_clock.attach(engine)  # after the migration's connections
    with engine.begin() as connection:
        connection.exec_driver_sql("SELECT count(*) FROM patient").scalar()
    statements, commits = clock.statements_wall, clock.commits_wall
    assert statements > 0 and commits > 0
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1").scalar()
    assert clock.statements_wall > statements and clock.commits_wall >= commits
    engine.dispose()


def _assert_database_share(found: dict[str, Any]) -> None:
    """The driver's time (statements and commits) is part of the store's calls' (which
    count BEGIN and COMMIT too), itself part of the request's; each share is its ratio."""
    for clock in ("wall", "cpu"):
        request = found[f"request_{clock}_ms"]
        database, commits = (found[f"{k}_{clock}_ms_per_request"] for k in ("db", "commit"))
        assert 0 < commits < database <= found[f"store_{clock}_ms_per_request"] < request
    assert found["share"] == pytest.approx(
        found["db_wall_ms_per_request"] / found["request_wall_ms"]
    )
    assert found["cpu_share"] == pytest.approx(
        found["db_cpu_ms_per_request"] / found["request_cpu_ms"]
    )
    assert found["store_share"] == pytest.approx(
        found["store_wall_ms_per_request"] / found["request_wall_ms"]
    )


def test_ab_swaps_the_two_versions_cpus_every_round():
    assert ab.cpu_plan([3, 1, 2], 4) == [(1, 2), (2, 1), (1, 2), (2, 1)]
    with pytest.raises(SystemExit, match="two CPUs"):
        ab.cpu_plan([0], 2)


def test_ab_summary_is_each_rounds_new_over_base():
    rounds = [
        (ab.Side(100.0, 10.0, 0, 8.0), ab.Side(110.0, 9.0, 1, 6.0)),
        (ab.Side(80.0, 12.0, 0, 10.0), ab.Side(76.0, 12.6, 0, 9.0)),
    ]
    found = ab.summarise(rounds)
    assert found["throughput_ratios"] == pytest.approx([1.1, 0.95])
    assert found["throughput_ratio_mean"] == pytest.approx(1.025)
    assert found["cpu_ratios"] == pytest.approx([0.9, 1.05])
    assert found["serving_cpu_ratio_mean"] == pytest.approx((0.75 + 0.9) / 2)
    assert found["errors"] == 1
    assert found["rounds"][1]["new"] == {
        "rps": 76.0,
        "cpu_ms_per_request": 12.6,
        "errors": 0,
        "serving_cpu_ms_per_request": 9.0,
    }


def test_ab_serves_a_checkout_of_a_revision_pinned_to_one_cpu(tmp_path):
    """The server of a revision's worktree answers, on the CPU asked, from that tree
    (``python -m`` imports the package of its working directory); the worktree is gone
    afterwards."""
    if not shutil.which("taskset") or not (servers.REPO / ".git").exists():
        pytest.skip("needs taskset and a git checkout")
    cpu = min(os.sched_getaffinity(0))
    trees = tmp_path / "trees"
    trees.mkdir()
    with ab.checkout("HEAD", trees) as tree:
        assert (tree / "service" / "__init__.py").exists() and tree != servers.REPO
        with ab.pinned_service(tree, cpu, tmp_path / "run") as server:
            assert os.sched_getaffinity(server.pid) == {cpu}
            assert Path(f"/proc/{server.pid}/cwd").resolve() == tree.resolve()
        with ab.pinned_service(tree, None, tmp_path / "free") as server:  # --alternate
            assert os.sched_getaffinity(server.pid) == os.sched_getaffinity(0)
    assert not tree.exists()


def test_each_frame_of_the_wal_is_charged_to_the_table_or_index_it_wrote(tmp_path):
    database = tmp_path / "wal.db"
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE, v TEXT)")
    connection.execute("CREATE INDEX ix_t_v ON t (v)")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with connection:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO t (u, v) VALUES (?, ?)", [(f"u{n:04d}" * 20, f"v{n}") for n in range(300)]
        )
    wal = database.with_name("wal.db-wal")
    found = pages.wal_pages(wal)
    assert len(found) == (wal.stat().st_size - 32) // (4096 + 24)
    owners = pages.page_owners(database)
    connection.close()
    written = collections.Counter(owners[page] for page in found)
    assert written.keys() == {"t", "t UNIQUE (u)", "ix_t_v", "sqlite_schema"}
    assert written["t UNIQUE (u)"] > written["ix_t_v"]  # 80-byte keys against ~4


@pytest.mark.parametrize("follow_up", [0, 2])
def test_the_frames_of_service_requests_are_counted_by_owner(follow_up):
    found = pages.measure(requests=2, patients=3, follow_up=follow_up)
    owners = found["by_owner"]
    assert {"document", "timepoint_result", "sqlite_schema"} <= owners.keys()
    # A timepoint's resources are in its result row: the index takes a new patient's own.
    assert ("fhir_resource" in owners) is (follow_up == 0)
    assert "measurement" not in owners  # a document's lesions are in its lesions column
    assert found["frames_per_request"] == pytest.approx(sum(owners.values()), abs=0.1)
    assert found["frames_per_request"] >= 10
