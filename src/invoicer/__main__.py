"""``python -m invoicer``: one invoicer worker process (the k8s Deployment's command).

Uses ``DATABASE_URL``, or the embedded PostgreSQL in ./var/pgdata when it is unset. Exits 0
after SIGTERM or SIGINT, once current work is finished or its leases are given back.
"""

from __future__ import annotations

import asyncio

from billing.store.database import resolve_database_url
from billing.telemetry import configure_logging, configure_telemetry
from invoicer.main import config_from_env, run_until_signal


def main() -> int:
    configure_logging()
    telemetry = configure_telemetry("billing-invoicer")
    url, embedded = resolve_database_url()
    try:
        try:
            import uvloop

            uvloop.run(run_until_signal(url, config_from_env()))
        except ImportError:  # no uvloop on Windows; the standard loop is fine
            asyncio.run(run_until_signal(url, config_from_env()))
    finally:
        telemetry.shutdown()  # flush the spans and metrics still buffered
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
