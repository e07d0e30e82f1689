"""billing.store.embedded: the embedded PostgreSQL and its stale-PID trap.

These tests always use the embedded server, whatever DATABASE_URL says, each in a data
directory of its own. They are skipped where pgserver has no wheel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.store.database import connect, resolve_database_url
from billing.store.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresUnavailable,
    prune_dead_handle_pids,
)

pytest.importorskip("pgserver", reason="pgserver has no wheel here; use DATABASE_URL")

# Starts an embedded server, reports its URL, then waits to be killed.
_OWNER = """
import sys, time
from billing.store.embedded import EmbeddedPostgres
pg = EmbeddedPostgres(sys.argv[1]).start()
print(pg.url, flush=True)
time.sleep(300)
"""

# Connecting to a stopped server: its Unix socket file is removed on shutdown.
_SERVER_GONE = (FileNotFoundError, ConnectionRefusedError)


def _handle_pids(data_dir: Path) -> list[int]:
    path = data_dir / ".handle_pids.json"
    return list(json.loads(path.read_text())) if path.exists() else []


def _postmaster_pid(data_dir: Path) -> int | None:
    path = data_dir / "postmaster.pid"
    return int(path.read_text().split()[0]) if path.exists() else None


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def _select_1(url: str) -> int:
    conn = await connect(url)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short fresh path (Unix socket paths are limited to ~100 bytes).

    Teardown stops any server a failed test left running, so none leaks.
    """
    root = Path(tempfile.mkdtemp(prefix="billing-emb-"))
    path = root / "pgdata"
    yield path
    pid = _postmaster_pid(path)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # fast shutdown
        deadline = time.monotonic() + 10
        while (path / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(root, ignore_errors=True)


async def test_starts_answers_and_stops(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        assert pg.url == f"postgresql://postgres:@/postgres?host={data_dir}"
        assert await _select_1(pg.url) == 1
        assert _handle_pids(data_dir) == [os.getpid()]

    assert _postmaster_pid(data_dir) is None
    assert _handle_pids(data_dir) == []
    with pytest.raises(_SERVER_GONE):
        await _select_1(f"postgresql://postgres:@/postgres?host={data_dir}")


async def test_data_dir_is_reused_and_handles_are_counted(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        conn = await connect(pg.url)
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')")
        await conn.close()

    first = EmbeddedPostgres(data_dir).start()  # warm start on the same directory
    second = EmbeddedPostgres(data_dir).start()  # joins the running server
    conn = await connect(second.url)
    assert await conn.fetchval("SELECT v FROM kept") == "hello"
    await conn.close()

    first.stop()
    assert await _select_1(second.url) == 1, "stopping one handle must not stop the server"
    second.stop()
    second.stop()  # idempotent
    assert _postmaster_pid(data_dir) is None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_killed_owner_leaves_a_stale_pid_that_is_pruned(data_dir: Path, sig: signal.Signals) -> None:
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OWNER, str(data_dir), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        url = (await asyncio.wait_for(owner.stdout.readline(), 60)).decode().strip()
        assert url, "the owner process failed to start the embedded server"
        assert _handle_pids(data_dir) == [owner.pid]
        postmaster = _postmaster_pid(data_dir)
    finally:
        owner.send_signal(sig)
        await asyncio.wait_for(owner.wait(), 30)

    # The trap: the server outlives its owner and the dead PID stays registered, so
    # plain pgserver would never again see a "last handle" and never stop it.
    assert await _select_1(url) == 1
    assert _handle_pids(data_dir) == [owner.pid]

    pg = EmbeddedPostgres(data_dir).start()
    assert _handle_pids(data_dir) == [os.getpid()]
    assert _postmaster_pid(data_dir) == postmaster, "the orphaned server is adopted"
    assert await _select_1(pg.url) == 1
    pg.stop()

    assert _postmaster_pid(data_dir) is None
    with pytest.raises(_SERVER_GONE):
        await _select_1(url)


def test_prune_keeps_live_pids_and_repairs_a_torn_file(tmp_path: Path) -> None:
    handles = tmp_path / ".handle_pids.json"
    dead = _dead_pid()
    handles.write_text(json.dumps([dead, os.getpid()]))
    assert prune_dead_handle_pids(tmp_path) == [dead]
    assert _handle_pids(tmp_path) == [os.getpid()]

    handles.write_text("[12")  # a writer killed mid-write
    assert prune_dead_handle_pids(tmp_path) == []
    assert _handle_pids(tmp_path) == []


def test_missing_pgserver_tells_the_user_to_set_database_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail
    with pytest.raises(EmbeddedPostgresUnavailable, match="DATABASE_URL"):
        EmbeddedPostgres(tmp_path / "pgdata").start()


async def test_resolve_database_url(data_dir: Path) -> None:
    url = "postgresql://app@db.example:5432/billing"
    assert resolve_database_url({"DATABASE_URL": url}) == (url, None)

    resolved, embedded = resolve_database_url({"DATABASE_URL": ""}, data_dir=data_dir)
    assert embedded is not None
    try:
        assert resolved == embedded.url
        assert await _select_1(resolved) == 1
    finally:
        embedded.stop()
    assert _postmaster_pid(data_dir) is None
