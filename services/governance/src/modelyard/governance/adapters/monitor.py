"""`PredictionLog` over the monitor's gRPC API (blocking: the use cases run in worker threads), with the channel,
TLS and bearer token helpers every internal client uses."""

from __future__ import annotations

from datetime import UTC

import grpc
from google.protobuf.json_format import MessageToDict

from modelyard.contracts.monitor.v1 import monitor_service_pb2 as pb
from modelyard.contracts.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from modelyard.governance.domain.errors import InvalidArgument, MonitorUnavailable, NotFound
from modelyard.governance.domain.provenance import PredictionFacts
from modelyard.tls import ClientTls, grpc_channel

TIMEOUT_S = 10.0


class MonitorPredictionLog:
    def __init__(self, address: str, token: str | None = None, tls: ClientTls | None = None) -> None:
        self._channel = grpc_channel(address, tls)
        self._stub = pb_grpc.MonitorServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def close(self) -> None:
        self._channel.close()

    def prediction(self, request_id: str) -> PredictionFacts:
        request = pb.GetPredictionRequest(request_id=request_id)
        try:
            found: pb.GetPredictionResponse = self._stub.GetPrediction(
                request, metadata=self._metadata, timeout=TIMEOUT_S
            )
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()  # the error of a failed call is also its Call object
            if code is grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"monitor: {details}") from None
            if code is grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(f"monitor: {details}") from None
            raise MonitorUnavailable(f"monitor: {code.name}: {details}") from None
        logged = found.prediction
        return PredictionFacts(
            request_id=logged.request_id,
            model_name=logged.version.model_name,
            version=logged.version.version,
            digest=logged.version.digest,
            plan_revision=logged.plan_revision,
            event_time=logged.event_time.ToDatetime(tzinfo=UTC),
            monitor=MessageToDict(found, preserving_proto_field_name=True),
        )
