"""PostgreSQL access for the billing engine (asyncpg).

The only package of the project that imports asyncpg. Submodules:

- :mod:`billing.store.embedded`  embedded PostgreSQL for laptops (``DATABASE_URL`` unset)
- :mod:`billing.store.database`  URL resolution, pool and connection settings
- :mod:`billing.store.migrate`   plain-SQL migrations in ``migrations/*.sql``

Nothing is imported here eagerly, so ``import billing.store`` stays cheap and does not
need the optional ``pgserver`` dependency.
"""
