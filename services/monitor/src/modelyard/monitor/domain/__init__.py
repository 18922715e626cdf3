"""Pure monitor logic and value objects: no Kafka, gRPC, FastAPI or SQLAlchemy imports."""
