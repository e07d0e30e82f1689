"""Resource ids: a prefix, then time-ordered hex, so ordering by id is ordering by creation.

Time-ordered ids make keyset pagination (``WHERE id > $last ORDER BY id``) list resources in the
order they were created, and keep the primary-key index append-mostly.
"""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{millis:012x}{secrets.token_hex(8)}"
