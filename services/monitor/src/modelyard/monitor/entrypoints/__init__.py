"""Thin monitor transports (gRPC, REST, Kafka consumers): convert, then delegate to handlers."""
