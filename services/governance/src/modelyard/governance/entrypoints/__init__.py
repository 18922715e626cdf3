"""Thin governance transports (gRPC, REST, Kafka consumers): convert, then delegate to handlers."""
