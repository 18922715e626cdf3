"""Serving's adapters to the outside world: onnxruntime, artifact and plan sources, Kafka, metrics."""
