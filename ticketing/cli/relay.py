"""`ticketing relay`: publish the event store's events to Kafka."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog
import typer
from eventsourcing.persistence import PersistenceError
from kafka.errors import KafkaError

from ticketing.cli.servers import exit_if_unavailable, require_servers
from ticketing.settings import Settings
from ticketing.stream.relay import Relay, RelayFailed, RelayOptions
from ticketing.stream.relay_session import RelaySessionError
from ticketing.stream.schemas import SchemaError
from ticketing.stream.topics import TopicSetupError

log = structlog.get_logger(__name__)


RELAY_HELP = f"""Publish every stored domain event to its Kafka topic as Avro, in order, at least once.

Stops cleanly on SIGTERM or SIGINT: the in-flight batch finishes, or after a grace period of {RelayOptions().shutdown_grace_seconds:g} s it is dropped without recording its position, so the next run publishes it again.

Exit code 1 means that the relay failed, for example on an event it cannot publish, or that Kafka or PostgreSQL could not be reached. The log line "relay failed" or the error line names the cause.
"""


def relay(
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=100_000, help="Maximum events read and published per batch."
    ),
    once: bool = typer.Option(
        False, "--once", help="Publish the events stored so far, then exit instead of waiting for new ones."
    ),
) -> None:
    # Imported here so that `ticketing --help` does not load the whole write side.
    from ticketing.application import HelpdeskApplication

    settings = Settings.from_env()
    stop = threading.Event()
    received = _stop_on_signals(stop)

    with require_servers(settings, kafka=True, postgres=True):
        application = HelpdeskApplication(env=settings.eventsourcing_env())
        try:
            runner = Relay(
                settings,
                source=application.recorder,
                mapper=application.mapper,
                channel=application.recorder.channel_name,
                options=RelayOptions(batch_size=batch_size),
            )
            runner.run(stop, once=once)
            if received:
                log.info("relay exited on signal", signal=received[0])
        except (RelayFailed, RelaySessionError, TopicSetupError, SchemaError, PersistenceError, KafkaError) as error:
            # PersistenceError: eventsourcing gave up reading the event store after its
            # own retries. KafkaError: no broker responded when the producer started.
            exit_if_unavailable(error, settings)
            log.error("relay failed", error=str(error), error_type=type(error).__name__)
            raise typer.Exit(1) from error
        finally:
            application.close()


def _stop_on_signals(stop: threading.Event) -> list[str]:
    """Set `stop` on SIGTERM or SIGINT. Return the list that collects the signal names."""
    received: list[str] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the loop checks it between steps, so a batch is never cut
        # between Kafka's acknowledgement and the position write. No logging here,
        # because a write to stderr that interrupts another one raises RuntimeError.
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return received


def register(app: typer.Typer) -> None:
    app.command(name="relay", help=RELAY_HELP)(relay)
