"""Two versions of the service side by side: ``python -m bench.ab BASE [NEW]``.

A before/after figure for one change (issue 7) on a shared machine whose speed drifts
within minutes (2026-12-04: the same server gave 74 to 110 SRs a second in consecutive
10 s runs, so that runs taken one after the other could not tell 5 % from noise). Here
both versions run at the same time, each server pinned to a CPU of its own
(``taskset``), each driven by its own wrk with the same distinct bodies (each server has
a database of its own, so neither sees a body twice); the CPUs are swapped every round,
and the figure is each round's ratio NEW / BASE, whose drift both servers share.

BASE and NEW are git revisions, checked out in temporary worktrees; NEW defaults to
the working tree as it is. The wrk and server figures are those of :mod:`bench.measure`
(requests a second, server CPU ms a request, that of the serving process alone); the
machine needs two CPUs.

A pinned server shares its CPU with its SR reader process, so a change in what either
of them does shows as their sum. ``--alternate`` measures what the two CPUs give one
server instead (the serving process on one, its reader on the other): each round runs
BASE and NEW one after the other, unpinned, in turn first; its ratio then carries the
machine's drift between the two runs, which more rounds average out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import bodies, measure, servers, wrk

WORKING_TREE = "."
CONNECTIONS = 8
WARMUP_SECONDS = 2.0
# Each kind of body: the path it is posted to, its content type.
TARGETS = {
    "sr": ("/assessments", "application/dicom"),
    "bundle": ("/assessments", "application/fhir+json"),
    "stow": ("/dicomweb/studies", bodies.STOW_CONTENT_TYPE),
}


@dataclass(frozen=True)
class Side:
    """One version's figures in one round."""

    rps: float
    cpu_ms_per_request: float
    errors: int
    serving_cpu_ms_per_request: float = 0.0


def cpu_plan(cpus: Sequence[int], rounds: int) -> list[tuple[int, int]]:
    """The CPUs of (BASE, NEW) in each round: the first two of *cpus*, swapped each
    round, so that a CPU slower than the other weighs on both versions alike."""
    if len(cpus) < 2:
        raise SystemExit("bench.ab needs two CPUs: one for each version's server")
    first, second = sorted(cpus)[:2]
    return [(first, second) if index % 2 == 0 else (second, first) for index in range(rounds)]


def summarise(rounds: Sequence[tuple[Side, Side]]) -> dict[str, Any]:
    """Per round NEW / BASE of throughput and of CPU per request, with their means and
    medians (a ratio above 1 is a faster NEW; below 1 for the CPU, a cheaper one)."""
    throughput = [new.rps / base.rps for base, new in rounds if base.rps > 0]
    cpu = [
        new.cpu_ms_per_request / base.cpu_ms_per_request
        for base, new in rounds
        if base.cpu_ms_per_request > 0
    ]
    serving = [
        new.serving_cpu_ms_per_request / base.serving_cpu_ms_per_request
        for base, new in rounds
        if base.serving_cpu_ms_per_request > 0
    ]
    return {
        "rounds": [{"base": vars(base), "new": vars(new)} for base, new in rounds],
        "throughput_ratios": throughput,
        "throughput_ratio_mean": statistics.fmean(throughput) if throughput else None,
        "throughput_ratio_median": statistics.median(throughput) if throughput else None,
        "cpu_ratios": cpu,
        "cpu_ratio_mean": statistics.fmean(cpu) if cpu else None,
        "serving_cpu_ratio_mean": statistics.fmean(serving) if serving else None,
        "errors": sum(base.errors + new.errors for base, new in rounds),
    }


@contextmanager
def checkout(revision: str, parent: Path) -> Iterator[Path]:
    """The tree of *revision*: the working tree for ``.``, else a temporary worktree."""
    if revision == WORKING_TREE:
        yield servers.REPO
        return
    tree = parent / f"tree-{len(list(parent.iterdir()))}"
    git = ["git", "-C", str(servers.REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(tree), revision], check=True)
    try:
        yield tree
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=True)


def pinned_service(tree: Path, cpu: int | None, workdir: Path) -> servers.Server:
    """:func:`servers.service` of the checkout *tree* (``python -m`` imports the
    package from its working directory), on *cpu* only (None: on any)."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = servers.service(workdir)
    if cpu is not None:
        server.command = ["taskset", "-c", str(cpu), *server.command]
    server.cwd = tree
    return server


def _together(
    sides: Sequence[tuple[servers.Server, measure.Cursor]], kind: str, seconds: float
) -> list[Side]:
    """Both servers loaded at once for *seconds*; their figures in order."""
    found: list[Side | None] = [None] * len(sides)
    for _, cursor in sides:  # write the bodies before either run starts (load_run's own
        cursor.reserve(seconds, CONNECTIONS)  # reservation then finds them written)

    def drive(index: int) -> None:
        server, cursor = sides[index]
        path, content_type = TARGETS[kind]
        load = wrk.Load(f"{servers.base_url(server)}{path}", cursor.supply.listing, content_type)
        run = measure.load_run(server.pid, load, cursor, seconds, CONNECTIONS, 0.0)
        found[index] = Side(
            run["rps"],
            run["cpu_ms_per_request"],
            run["non_2xx"] + run["socket_errors"],
            run["serving_cpu_ms_per_request"],
        )

    threads = [threading.Thread(target=drive, args=(index,)) for index in range(len(sides))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any(side is None for side in found):
        raise RuntimeError("a wrk run failed; see its server's log")
    return [side for side in found if side is not None]


def compare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every round of BASE and NEW, side by side or in turn (see the module docstring)."""
    args.supply = bodies.Supply(workdir / "bodies", args.kind, args.lesions, 1_000)
    fastest = 0.0
    rounds: list[tuple[Side, Side]] = []
    trees = workdir / "trees"
    trees.mkdir()
    with checkout(args.base, trees) as base, checkout(args.new, trees) as new:
        plan = cpu_plan(sorted(os.sched_getaffinity(0)), args.rounds)
        for number, cpus in enumerate(plan):
            # Each round's servers are new, and so are their databases: the same bodies
            # again, as many as the fastest run yet may send.
            base_side, new_side = _round((base, new), cpus, workdir / str(number), args, fastest)
            rounds.append((base_side, new_side))
            fastest = max(fastest, base_side.rps, new_side.rps)
            where = f"BASE on CPU {cpus[0]}, NEW on CPU {cpus[1]}"
            if args.alternate:
                where = ("BASE first", "NEW first")[number % 2]
            print(
                f"round {number + 1} ({where}): BASE {_figures(base_side)}, NEW "
                f"{_figures(new_side)}, NEW / BASE {new_side.rps / max(base_side.rps, 1e-9):.3f}",
                flush=True,
            )
    return {
        "base": args.base,
        "new": args.new,
        "kind": args.kind,
        "alternate": args.alternate,
        **summarise(rounds),
    }


def _figures(side: Side) -> str:
    return (
        f"{side.rps:.1f} req/s {side.cpu_ms_per_request:.2f} ms"
        f" ({side.serving_cpu_ms_per_request:.2f} serving)"
    )


def _round(
    trees: tuple[Path, Path],
    cpus: tuple[int, int],
    workdir: Path,
    args: argparse.Namespace,
    fastest: float,
) -> tuple[Side, Side]:
    """BASE and NEW loaded at once, each pinned to its CPU of *cpus*; with
    ``--alternate``, one after the other and unpinned, BASE first when *cpus* are in
    order (they swap each round)."""

    def loaded(started: Sequence[servers.Server]) -> list[Side]:
        sides = [(server, measure.Cursor(args.supply, fastest_rps=fastest)) for server in started]
        _together(sides, args.kind, WARMUP_SECONDS)
        return _together(sides, args.kind, args.seconds)

    if args.alternate:
        found: dict[int, Side] = {}
        for side in (0, 1) if cpus[0] < cpus[1] else (1, 0):
            with pinned_service(trees[side], None, workdir / str(side)) as server:
                (found[side],) = loaded([server])
        return found[0], found[1]
    with ExitStack() as stack:
        started = [
            stack.enter_context(pinned_service(tree, cpu, workdir / str(side)))
            for side, (tree, cpu) in enumerate(zip(trees, cpus, strict=True))
        ]
        base_side, new_side = loaded(started)
    return base_side, new_side


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision of the version to compare against")
    parser.add_argument("new", nargs="?", default=WORKING_TREE, help="default: working tree")
    parser.add_argument("--rounds", type=int, default=6, help="rounds (CPUs swapped each)")
    parser.add_argument("--seconds", type=float, default=10, help="length of one wrk run")
    parser.add_argument(
        "--kind", choices=sorted(TARGETS), default="sr", help="SRs, FHIR Bundles or STOW-RS"
    )
    parser.add_argument("--lesions", type=int, default=10, help="lesions per body")
    parser.add_argument(
        "--alternate", action="store_true", help="unpinned, one version at a time, in turn first"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as workdir:
        found = compare(args, Path(workdir))
    print(
        f"NEW / BASE throughput: mean {found['throughput_ratio_mean']:.3f}, median "
        f"{found['throughput_ratio_median']:.3f}; CPU per request: mean "
        f"{found['cpu_ratio_mean']:.3f} (the serving process's: "
        f"{found['serving_cpu_ratio_mean']:.3f}); {found['errors']} errors"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
