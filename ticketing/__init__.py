"""Service layer and adapters of the helpdesk backend: settings, the event-store
application, the Kafka relay, the importer and the `ticketing` command."""
