"""The two fuzzing tiers (reliability.md section 7 and section 8 item 8).

Every fuzzer is one property run twice: a quick tier in ``make test`` (few examples,
derandomized so CI is reproducible) and a long tier marked ``long`` for
``make fuzz-long`` (tens of thousands of examples, random seeds). Each input is
bounded in time: a rejection must be quick as well as clean. The bound is on the
CPU time of the calling thread, which catches quadratic or runaway parsing (all of it
is CPU work) without failing when a loaded CI machine delays the test's wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy

SECONDS_PER_INPUT = 1.0

_COMMON = settings(
    deadline=None,  # the wall-time bound below is asserted explicitly
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def tiers(
    body: Callable[..., None], quick: int, long: int, **strategies: SearchStrategy[Any]
) -> tuple[Callable[..., None], Callable[..., None]]:
    """(quick test, long test) of the property *body* over *strategies*."""
    quick_test = settings(_COMMON, max_examples=quick, derandomize=True)(given(**strategies)(body))
    long_test = settings(_COMMON, max_examples=long)(given(**strategies)(body))
    return quick_test, pytest.mark.long(long_test)


@contextmanager
def bounded_time(what: str, seconds: float = SECONDS_PER_INPUT) -> Iterator[None]:
    """Fail when the block takes more than *seconds* of this thread's CPU time."""
    start = time.thread_time()
    yield
    elapsed = time.thread_time() - start
    assert elapsed < seconds, f"{what} took {elapsed:.2f} s"
