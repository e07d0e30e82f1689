"""Type aliases shared by the store's modules."""

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from a pool: both run the same queries.
Connection: TypeAlias = asyncpg.connection.Connection[Any] | PoolConnectionProxy[Any]
