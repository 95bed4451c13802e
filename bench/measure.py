"""Drive one server with wrk and record what it cost the server (performance.md §8:
3 s warm-up, then bounded runs whose medians are reported)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import procstat, wrk
from bench.bodies import Supply


@dataclass(frozen=True)
class Protocol:
    """How each target is loaded."""

    warmup_s: float = 3.0
    run_s: float = 10.0
    runs: int = 3
    connections: int = 8


@dataclass
class Cursor:
    """The next body of *supply* to send. Before each run the supply is extended to
    what the run may send (as fast as the fastest run yet, half again), so that a
    stateful server never gets the same body twice; ``reused`` counts the repeats
    sent all the same (a run far faster than those before it), which rotate.lua takes
    from the start of the listing. A stateless server (the echo) may be given
    *rotate_only*: the bodies written are sent again and again, and none counts as
    reused."""

    supply: Supply
    rotate_only: bool = False
    next: int = 0
    reused: int = 0
    fastest_rps: float = 0.0

    def reserve(self, seconds: float, connections: int) -> None:
        """Have bodies enough for a run of *seconds* on *connections*."""
        if self.rotate_only:
            return
        wanted = self.next + int(1.5 * self.fastest_rps * seconds) + 2 * connections
        if wanted > self.supply.count:
            self.supply.extend(wanted - self.supply.count)

    def advance(self, sent: int, rps: float) -> None:
        self.next += sent
        self.fastest_rps = max(self.fastest_rps, rps)
        if not self.rotate_only:
            self.reused = max(0, self.next - self.supply.count)


@dataclass
class Figures:
    """One target's runs and their medians."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_ms_per_request: float = 0.0
    peak_rss_mb: float = 0.0
    errors: int = 0
    bodies_reused: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_run(
    pid: int, load: wrk.Load, cursor: Cursor, seconds: float, connections: int, delay_ms: float
) -> dict[str, Any]:
    """One wrk run with the server's CPU time over it."""
    cursor.reserve(seconds, connections)
    before, own_before = procstat.tree_cpu_seconds(pid), procstat.cpu_seconds(pid)
    result = wrk.run(
        load,
        seconds=seconds,
        connections=connections,
        first_body=cursor.next,
        delay_ms=delay_ms,
    )
    cpu = procstat.tree_cpu_seconds(pid) - before
    own_cpu = procstat.cpu_seconds(pid) - own_before
    # Requests still in flight when wrk stops were sent too: skip past them.
    cursor.advance(result.requests + connections, result.rps)
    return {
        **result.as_dict(),
        "cpu_ms_per_request": 1e3 * cpu / max(result.requests, 1),
        "serving_cpu_ms_per_request": 1e3 * own_cpu / max(result.requests, 1),
        "server_cpu_share": cpu / result.seconds if result.seconds else 0.0,
    }


def measure(pid: int, load: wrk.Load, cursor: Cursor, protocol: Protocol) -> Figures:
    """Warm up, then ``protocol.runs`` closed-loop runs; medians of the runs."""
    load_run(pid, load, cursor, protocol.warmup_s, protocol.connections, 0.0)
    runs = [
        load_run(pid, load, cursor, protocol.run_s, protocol.connections, 0.0)
        for _ in range(protocol.runs)
    ]
    return summarise(runs, pid, cursor)


@dataclass(frozen=True)
class Target:
    """A server, what it is sent, and where its bodies stand."""

    pid: int
    load: wrk.Load
    cursor: Cursor


@dataclass
class Paired:
    """Two targets measured round by round (:func:`paired`): each one's figures, and
    each round's ratio of their throughputs, first / second."""

    first: Figures
    second: Figures
    round_ratios: list[float]

    @property
    def ratio(self) -> float | None:
        """The median of the rounds' ratios; None when the second answered nothing."""
        return float(statistics.median(self.round_ratios)) if self.round_ratios else None


def round_order(rounds: int) -> list[tuple[int, int]]:
    """Which target runs first in each round (0 the first, 1 the second): in turn, so
    that a machine speeding up or slowing down through a round favours neither."""
    return [(0, 1) if index % 2 == 0 else (1, 0) for index in range(rounds)]


def paired(first: Target, second: Target, protocol: Protocol) -> Paired:
    """Both targets warmed up, then ``protocol.runs`` rounds of one closed-loop run of
    each, back to back: a round's two runs see the same moment of a shared machine
    whose speed drifts by up to a third within minutes (README "Performance"), where
    runs of one target then of the other, a minute or more apart, did not."""
    targets = (first, second)
    for target in targets:
        load_run(
            target.pid, target.load, target.cursor, protocol.warmup_s, protocol.connections, 0.0
        )
    runs: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    for order in round_order(protocol.runs):
        for side in order:
            target = targets[side]
            runs[side].append(
                load_run(
                    target.pid,
                    target.load,
                    target.cursor,
                    protocol.run_s,
                    protocol.connections,
                    0.0,
                )
            )
    return Paired(
        summarise(runs[0], first.pid, first.cursor),
        summarise(runs[1], second.pid, second.cursor),
        [ours["rps"] / theirs["rps"] for ours, theirs in zip(*runs, strict=True) if theirs["rps"]],
    )


def summarise(runs: list[dict[str, Any]], pid: int, cursor: Cursor) -> Figures:
    def median(key: str) -> float:
        return float(statistics.median(run[key] for run in runs))

    return Figures(
        runs=runs,
        rps=median("rps"),
        p50_ms=median("p50_ms"),
        p99_ms=median("p99_ms"),
        cpu_ms_per_request=median("cpu_ms_per_request"),
        peak_rss_mb=procstat.tree_peak_rss_mb(pid),
        errors=sum(run["non_2xx"] + run["socket_errors"] for run in runs),
        bodies_reused=cursor.reused,
    )


def half_saturation(
    pid: int, load: wrk.Load, cursor: Cursor, protocol: Protocol, saturated_rps: float
) -> Figures:
    """``protocol.runs`` runs offered about half of *saturated_rps*, medians of the runs
    as for every target (one run's p99 is its third-worst request of ~300): each
    connection waits ``connections / rate`` on average between an answer and its next
    request (wrk's ``delay()``; Debian has no wrk2), an exponential time, so that the
    requests arrive as a Poisson stream of that rate. A fixed wait synchronised the
    connections: those answered by one group commit came back together, and the
    "half" load arrived in bursts of several (same server, runs alternating: p99 104-130
    ms with a fixed wait, 58-63 with exponential ones; p50 20-31 and 19-23). Below 8
    req/s fewer connections are used, so each still sends several."""
    rate = saturated_rps / 2
    connections = max(1, min(protocol.connections, int(rate)))
    delay_ms = 1e3 * connections / rate if rate > 0 else 0.0
    runs = [
        load_run(pid, load, cursor, protocol.run_s, connections, delay_ms)
        for _ in range(protocol.runs)
    ]
    for run in runs:
        run.update(offered_rps=rate, delay_ms=delay_ms, connections=connections)
    return summarise(runs, pid, cursor)
