"""The garbage collector as a long-running server wants it (issue 7; measured in
bench/HISTORY.md).

What start-up built (modules, tables, the app) lives as long as the process: frozen,
it stays out of the collector's full passes, which walked its ~480,000 objects in
~0.2 s each, a pause on whatever request was running. A request allocates thousands
of short-lived containers that reference counting frees: with CPython's default
young-generation threshold (700) an SR request paid ~0.55 ms of collections (~5 % of
its CPU, 600 requests in process) and about every 600th a full pass, tens of ms over
the bounded caches; at :data:`YOUNG_THRESHOLD` it pays ~0.05 ms, in young passes of
~6 ms, and the full passes come ~30 x more rarely.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Freeze everything alive now and raise the young generation's threshold (the
    older generations keep theirs)."""
    gc.collect()
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
