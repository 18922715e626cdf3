"""Thin registry transports (gRPC, REST, Kafka consumers): convert, then delegate to handlers."""
