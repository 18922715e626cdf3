"""The governance service's outside world: stores, Kafka, gRPC clients of other services."""
