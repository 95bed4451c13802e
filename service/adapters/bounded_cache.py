"""A bounded, thread-safe cache, least recently used out: what a process keeps between
requests of one patient (issue 7, history growth), such as decoded stored documents
(a stored document never changes) and the last assessment's RECIST fold. The values
are immutable domain objects, shared between the threads that read them.

Every value also keeps what it references alive, and the collector walks all of it in
each full pass, so the bound is in units of *weight* (one per value unless said
otherwise: a fold weighs one per timepoint).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


def _one(_value: object) -> int:
    return 1


class BoundedCache(Generic[Value]):
    """Values by key, their total *weight* at most *capacity*; the least recently used
    goes first, and a value heavier than the whole capacity is not kept."""

    def __init__(self, capacity: int, weight: Callable[[Value], int] = _one) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._weight = weight
        self._values: OrderedDict[Hashable, tuple[Value, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Value | None:
        with self._lock:
            found = self._values.get(key)
            if found is None:
                return None
            self._values.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: Value) -> None:
        weight = self._weight(value)
        with self._lock:
            replaced = self._values.pop(key, None)
            if replaced is not None:
                self._total -= replaced[1]
            if weight > self._capacity:
                return
            self._values[key] = (value, weight)
            self._total += weight
            while self._total > self._capacity:
                _key, (_value, dropped) = self._values.popitem(last=False)
                self._total -= dropped

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._values)

    @property
    def weight(self) -> int:
        """The total weight of the values kept."""
        return self._total
