"""Test clocks (0005's ``test_clocks``, soft-deleted by 0006's ``deleted_at``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from billing.domain.errors import NotFound
from billing.domain.test_clock import ClockBacklog, TestClock
from billing.store._types import Connection

_LIVE = "deleted_at IS NULL"


def _clock(row: Mapping[str, Any]) -> TestClock:
    return TestClock(row["id"], row["frozen_time"], row["display_name"], row["created_at"])


class TestClockRepository:
    __test__ = False

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, clock: TestClock) -> TestClock:
        row = await self._connection.fetchrow(
            "INSERT INTO test_clocks (id, display_name, frozen_time) VALUES ($1, $2, $3) RETURNING *",
            clock.id,
            clock.display_name,
            clock.frozen_time,
        )
        assert row is not None
        return _clock(row)

    async def get(self, clock_id: str, *, for_update: bool = False) -> TestClock:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._connection.fetchrow(
            f"SELECT * FROM test_clocks WHERE id = $1 AND {_LIVE}{lock}", clock_id
        )
        if row is None:
            raise NotFound(f"test clock {clock_id!r} not found")
        return _clock(row)

    async def list(self, *, after: str | None, limit: int) -> list[TestClock]:
        rows = await self._connection.fetch(
            f"SELECT * FROM test_clocks WHERE {_LIVE} AND ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
            after,
            limit,
        )
        return [_clock(row) for row in rows]

    async def set_time(self, clock_id: str, frozen_time: datetime) -> TestClock:
        # The row's trigger (0005) wakes the invoicer in this transaction's commit.
        row = await self._connection.fetchrow(
            f"UPDATE test_clocks SET frozen_time = $2, updated_at = now() WHERE id = $1 AND {_LIVE} "
            "RETURNING *",
            clock_id,
            frozen_time,
        )
        if row is None:
            raise NotFound(f"test clock {clock_id!r} not found")
        return _clock(row)

    async def delete(self, clock_id: str) -> None:
        await self._connection.execute(
            f"UPDATE test_clocks SET deleted_at = now() WHERE id = $1 AND {_LIVE}", clock_id
        )

    async def time_of(self, clock_id: str) -> datetime:
        frozen: datetime | None = await self._connection.fetchval(
            "SELECT frozen_time FROM test_clocks WHERE id = $1", clock_id
        )
        if frozen is None:
            raise NotFound(f"test clock {clock_id!r} not found")
        return frozen

    async def backlog(self, clock_id: str) -> ClockBacklog:
        """Subscriptions of the clock with a close or a finalization due by its time."""
        row = await self._connection.fetchrow(
            "SELECT count(*) AS pending, count(*) FILTER (WHERE s.parked_reason IS NOT NULL) AS parked "
            "FROM subscriptions s JOIN test_clocks c ON c.id = s.test_clock_id "
            "WHERE s.test_clock_id = $1 AND s.due_at <= c.frozen_time",
            clock_id,
        )
        assert row is not None
        return ClockBacklog(pending=row["pending"], parked=row["parked"])
