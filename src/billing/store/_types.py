"""Type aliases shared by the store's modules."""

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from a pool: both run the same queries. A string, because
# asyncpg's classes are generic only in its stubs, not at run time.
Connection: TypeAlias = "asyncpg.connection.Connection[Any] | PoolConnectionProxy[Any]"
