"""The transactional outbox's relay side: claim undelivered events, mark them delivered.

Events are claimed with ``FOR UPDATE SKIP LOCKED`` (never "ids above the last one seen", which
loses an event whose transaction commits after a later one's: DESIGN.md §6). The stub relay
delivers nowhere, so claim and mark are one statement; a relay that calls out will take a lease
(``lease_token``/``lease_expires_at``) instead, and never hold the transaction across the call.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)


class PostgresOutbox:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def deliver_pending(self, limit: int) -> int:
        rows = await self._pool.fetch(
            """
            UPDATE outbox_events e SET delivered_at = now(), attempts = attempts + 1
            FROM (SELECT id FROM outbox_events WHERE delivered_at IS NULL AND available_at <= now()
                  ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED) picked
            WHERE e.id = picked.id
            RETURNING e.id, e.type, e.aggregate_id
            """,
            limit,
        )
        for row in rows:
            log.debug("event delivered (stub relay)", event_id=row["id"], type=row["type"])
        return len(rows)
