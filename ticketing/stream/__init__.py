"""The stream: Avro encoding of domain events and the relay that publishes them to Kafka."""
