"""The Kafka bus: producer, at-least-once consumer runner, topic admin and the embedded broker."""
