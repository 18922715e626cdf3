"""The one way every Modelyard service runs: gRPC (health, reflection, APIs) and HTTP (probes, metrics, REST)
servers, background tasks, readiness and a bounded graceful stop. A service's bootstrap builds a `Service`;
its `__main__` hands it to `run_service`."""

from modelyard.runtime.grpc_server import GrpcApi
from modelyard.runtime.ports import PortInUseError, StartupError
from modelyard.runtime.process import run_service
from modelyard.runtime.readiness import ReadinessCheck, ReadinessReport, kafka_check, probe_kafka
from modelyard.runtime.service import BackgroundTask, Hook, Service

__all__ = [
    "BackgroundTask",
    "GrpcApi",
    "Hook",
    "PortInUseError",
    "ReadinessCheck",
    "ReadinessReport",
    "Service",
    "StartupError",
    "kafka_check",
    "probe_kafka",
    "run_service",
]
