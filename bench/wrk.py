"""Run Debian ``wrk`` with ``rotate.lua`` and read its report.

Every run is bounded (``-d``) and closed loop; with ``delay_ms`` each connection
waits that long between its requests, which holds the offered rate near a chosen
fraction of saturation (wrk's ``delay()`` hook; the latency wrk reports excludes the
delay).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("rotate.lua")

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_DURATION = r"([\d.]+)(us|ms|s|m)"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: requests completed, their rate and latency percentiles (ms)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(output: str) -> WrkResult:
    """The figures of one ``wrk --latency`` report; ValueError when one is missing."""
    total = re.search(r"(\d+) requests in " + _DURATION, output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s*50(?:\.000)?%\s+" + _DURATION, output, re.MULTILINE)
    p99 = re.search(r"^\s*99(?:\.000)?%\s+" + _DURATION, output, re.MULTILINE)
    if not (total and rps and p50 and p99):
        raise ValueError(f"not a wrk --latency report:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1e3,
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1), p50.group(2)),
        p99_ms=_ms(p99.group(1), p99.group(2)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


@dataclass(frozen=True)
class Load:
    """What one wrk invocation sends."""

    url: str
    listing: Path
    content_type: str
    accept: str = "*/*"


def run(
    load: Load,
    *,
    seconds: float,
    connections: int,
    first_body: int = 0,
    delay_ms: float = 0.0,
) -> WrkResult:
    """One bounded wrk run (one thread, ``connections`` connections); with *delay_ms*,
    each connection waits an exponential time of that mean after each answer."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(LUA),
        load.url,
        "--",
        str(load.listing),
        load.content_type,
        str(first_body),
        f"{delay_ms:.3f}",
        load.accept,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse(done.stdout)
