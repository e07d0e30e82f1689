"""Keeping the garbage collector's full collections short in long-running processes.

A full (generation 2) collection walks every object the collector tracks. After start-up (the
generated protobuf modules, grpc, asyncpg, OpenTelemetry, structlog, the catalog) a server
holds ~55,000 of them, and one full collection of those took 25-35 ms on these machines: a
pause of the whole event loop that every call in flight waits through. Under 500 uncached
quotes a second one came every few seconds and set the other callers' p99
(bench/noisy_neighbour.py). Those objects live as long as the process, so once it has started
they are moved where the collector no longer looks (``gc.freeze``); what is created later is
collected as before, and freed by reference counting as always.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once start-up is done: collect what start-up left behind, then freeze the rest."""
    gc.collect()
    gc.freeze()
