"""Events: the CloudEvents envelope on Kafka, header names and the topic catalogue."""
