"""SQL schemas and apply logic of the consumer groups: reports, retention, notifications."""
