"""The bounded cache (service.adapters.bounded_cache)."""

from __future__ import annotations

import threading

import pytest

from service.adapters.bounded_cache import BoundedCache


def test_the_least_recently_used_goes_first() -> None:
    cache: BoundedCache[str] = BoundedCache(2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # "b" is now the least recently used
    cache.put("c", "C")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    assert len(cache) == 2


def test_clear_forgets_everything() -> None:
    cache: BoundedCache[int] = BoundedCache(4)
    cache.put(("tenant", 1), 1)
    cache.clear()
    assert cache.get(("tenant", 1)) is None
    assert len(cache) == 0


def test_a_cache_holds_at_least_one_value() -> None:
    with pytest.raises(ValueError):
        BoundedCache[int](0)


def test_threads_sharing_a_cache_never_exceed_its_capacity() -> None:
    cache: BoundedCache[int] = BoundedCache(50)

    def fill(offset: int) -> None:
        for n in range(2_000):
            cache.put(offset + n, n)
            cache.get(offset + n // 2)

    workers = [threading.Thread(target=fill, args=(k * 10_000,)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(cache) == 50


def test_the_bound_is_on_the_total_weight() -> None:
    cache: BoundedCache[str] = BoundedCache(5, weight=len)
    cache.put("a", "aa")
    cache.put("b", "bbb")
    assert cache.weight == 5
    cache.put("c", "c")  # 6 > 5: "a" goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, "bbb", "c")
    cache.put("b", "b")  # replaced: its old weight is given back
    assert cache.weight == 2
    cache.put("d", "dddddd")  # heavier than the whole capacity: not kept
    assert cache.get("d") is None and cache.weight == 2
