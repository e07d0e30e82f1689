"""Logging setup shared by both deployables: structlog, JSON in production, console locally.

Tracing and metrics (OpenTelemetry) are configured here too as they arrive; see
docs/architecture.md for what is wired today.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(*, json_logs: bool | None = None, level: str | None = None) -> None:
    """Configure structlog once per process.

    ``BILLING_LOG_FORMAT=json`` (the default when stderr is not a terminal) gives one JSON object
    per line; otherwise a readable console format. Tracebacks never include local variables,
    which could hold tokens or personal data.
    """
    if json_logs is None:
        json_logs = os.environ.get("BILLING_LOG_FORMAT", "").lower() == "json" or not sys.stderr.isatty()
    level_name = (level or os.environ.get("BILLING_LOG_LEVEL", "INFO")).upper()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_logs:
        processors.append(structlog.processors.dict_tracebacks)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level_name]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
