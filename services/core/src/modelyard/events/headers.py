"""Kafka header names of the CloudEvents 1.0 binary content mode, W3C trace context and dead letters."""

SPECVERSION = "ce_specversion"
ID = "ce_id"
SOURCE = "ce_source"
TYPE = "ce_type"
TIME = "ce_time"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# CloudEvents extension attributes of a signed event (see modelyard.events.signing).
SIGNING_KEY_ID = "ce_signingkeyid"
SIGNATURE = "ce_signature"

# Added when a record is copied to a dead-letter topic.
DLQ_ERROR = "modelyard_dlq_error"
DLQ_ERROR_TYPE = "modelyard_dlq_error_type"
DLQ_ORIGINAL_TOPIC = "modelyard_dlq_topic"
DLQ_ORIGINAL_PARTITION = "modelyard_dlq_partition"
DLQ_ORIGINAL_OFFSET = "modelyard_dlq_offset"
DLQ_CONSUMER_GROUP = "modelyard_dlq_group"
