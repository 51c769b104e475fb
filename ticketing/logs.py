"""structlog set-up: readable lines on a terminal, JSON lines everywhere else."""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure(level: str = "INFO", *, json: bool | None = None) -> None:
    """Configure structlog once per process; later calls do nothing."""
    global _configured
    if _configured:
        return

    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Logs go to stderr so that reports printed on stdout stay clean for pipes.
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True
