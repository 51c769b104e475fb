"""Measure the batching of the importer and the relay against a one-at-a-time baseline.

Each figure is compared with a baseline run in the same process on the same data, so
the ratio means something on any machine. Everything runs against the real PostgreSQL
and Kafka servers, in a throwaway event-store schema and topic prefix that are removed
afterwards.

    .venv/bin/python scripts/benchmark.py [--cases 300] [--log PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
import uuid
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient
from rich.console import Console
from rich.table import Table

from ticketing import logs
from ticketing.application import HelpdeskApplication
from ticketing.importer.mapping import default_mapping_path, load_mapping
from ticketing.importer.runner import ImportOptions, ImportRun
from ticketing.settings import Settings
from ticketing.stream.relay import Relay, RelayOptions

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_LOG = REPOSITORY.parent / "shared" / "data" / "helpdesk" / "helpdesk.csv"


@dataclasses.dataclass(frozen=True)
class Measurement:
    name: str
    batch_size: int
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _settings(schema: str, prefix: str) -> Settings:
    return dataclasses.replace(Settings.from_env(), event_store_schema=schema, topic_prefix=prefix)


def measure_import(log: Path, cases: int, batch_size: int) -> Measurement:
    settings = _settings(f"bench_{uuid.uuid4().hex[:10]}", "unused.")
    app = HelpdeskApplication(env=settings.eventsourcing_env())
    try:
        run = ImportRun(app, load_mapping(default_mapping_path()), log,
                        ImportOptions(limit_cases=cases, batch_size=batch_size))
        started = time.perf_counter()
        summary = run.run()
        seconds = time.perf_counter() - started
    finally:
        app.close()
        _drop_schema(settings)
    return Measurement("import", batch_size, summary.events_stored_total, seconds)


def measure_relay(app: HelpdeskApplication, settings: Settings, batch_size: int) -> Measurement:
    # A fresh topic prefix per run, because the relay keeps one position per prefix.
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    relay_settings = dataclasses.replace(settings, topic_prefix=prefix)
    relay = Relay(
        relay_settings,
        source=app.recorder,
        mapper=app.mapper,
        channel=app.recorder.channel_name,
        options=RelayOptions(batch_size=batch_size),
    )
    started = time.perf_counter()
    totals = relay.run(threading.Event(), once=True)
    seconds = time.perf_counter() - started
    _delete_topics(relay_settings, relay.topics())
    return Measurement("relay", batch_size, totals.published, seconds)


def _drop_schema(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{settings.event_store_schema}" CASCADE')


def _delete_topics(settings: Settings, topics: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_topics(topics)
    finally:
        admin.close()


def _print(measurements: list[Measurement]) -> None:
    table = Table(title="Batching against a one-at-a-time baseline (same process, same data)")
    for column in ("stage", "batch size", "events", "seconds", "events/s", "× baseline"):
        table.add_column(column, justify="right")

    baselines = {item.name: item for item in measurements if item.batch_size == 1}
    for item in measurements:
        baseline = baselines[item.name].rate
        ratio = item.rate / baseline if baseline else float("nan")
        table.add_row(
            item.name, str(item.batch_size), f"{item.events:,}", f"{item.seconds:.2f}", f"{item.rate:,.0f}", f"{ratio:.1f}"
        )
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="tickets imported from the log (default 300)")
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG, help="helpdesk CSV log")
    arguments = parser.parse_args()
    logs.configure("WARNING")

    measurements = [measure_import(arguments.log, arguments.cases, size) for size in (1, 50)]

    settings = _settings(f"bench_{uuid.uuid4().hex[:10]}", "unused.")
    app = HelpdeskApplication(env=settings.eventsourcing_env())
    try:
        ImportRun(app, load_mapping(default_mapping_path()), arguments.log,
                  ImportOptions(limit_cases=arguments.cases)).run()
        measurements += [measure_relay(app, settings, size) for size in (1, 500)]
    finally:
        app.close()
        _drop_schema(settings)

    _print(measurements)


if __name__ == "__main__":
    main()
