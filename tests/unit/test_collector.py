"""service/entrypoints/collector.py: the collector settings `serve` starts with. Run in
a child process: they are the whole interpreter's."""

from __future__ import annotations

import json
import subprocess
import sys

from service.entrypoints import collector

PROBE = """
import gc, json
from service.entrypoints import collector
before = gc.get_threshold()
alive = [[] for _ in range(1000)]
collector.settle()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_settle_freezes_what_is_alive_and_raises_only_the_young_threshold() -> None:
    found = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        ).stdout
    )
    before, after = found["before"], found["after"]
    assert after == [collector.YOUNG_THRESHOLD, before[1], before[2]]
    assert after[0] > before[0]
    assert found["frozen"] >= 1000
