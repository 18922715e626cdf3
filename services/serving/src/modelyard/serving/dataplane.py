"""The one data plane behind gRPC and REST: route, decode, run, encode, record, shadow.

It speaks the Open Inference Protocol's messages (REST converts its JSON to the same ModelInferRequest), so it
lives next to the codec rather than in the domain, which knows only arrays, versions and plans.

Kept lean on purpose: no logging, no JSON, no per-request objects beyond the arrays and the response.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.errors import ErrorKind
from modelyard.serving.domain.deployment import ModelManager, ServedVersion
from modelyard.serving.domain.errors import ServingError
from modelyard.serving.domain.model import TensorSpec
from modelyard.serving.domain.stream import Prediction, PredictionBuffer, RateLimitedLog
from modelyard.serving.domain.tensors import Array

_NO_INPUTS: Mapping[str, Array] = {}


class ModelFailed(ServingError):
    """The runtime raised while running a model on inputs that passed validation."""


class ShadowRunner:
    """Runs copies of requests on shadow versions, off the request path, in a bounded queue (drops when full)."""

    def __init__(self, capacity: int, stream: PredictionBuffer | None) -> None:
        self._queue: asyncio.Queue[tuple[ServedVersion, str, Mapping[str, Array], str, int]] = asyncio.Queue(capacity)
        self._stream = stream
        self._failure_log = RateLimitedLog()
        self._drop_log = RateLimitedLog()

    def offer(
        self, version: ServedVersion, request_id: str, inputs: Mapping[str, Array], trace: str, revision: int
    ) -> None:
        try:
            self._queue.put_nowait((version, request_id, inputs, trace, revision))
        except asyncio.QueueFull:
            self._drop_log.warning("shadow queue full: a copy for %s was dropped", version.ref)

    async def run(self) -> None:
        """Background task: forever take a queued copy and run it on its shadow version."""
        while True:
            version, request_id, inputs, trace, revision = await self._queue.get()
            outputs = version.output_names
            start = time.perf_counter()
            code = ErrorKind.OK
            arrays: Sequence[Array] = ()
            version.enter()
            try:
                # In the pool even for an inline or batched version: shadow work must not delay live requests.
                arrays = await asyncio.get_running_loop().run_in_executor(
                    version.pool, version.runner.run, inputs, outputs
                )
            except Exception as exc:
                code = ErrorKind.INTERNAL
                self._failure_log.warning("shadow %s failed: %r", version.ref, exc)
            finally:
                version.leave()
            latency = time.perf_counter() - start
            version.metrics.observe(code, latency)
            if self._stream is not None:
                self._stream.add(
                    Prediction(
                        request_id,
                        version.ref,
                        time.time_ns(),
                        inputs,
                        outputs if arrays else (),
                        arrays,
                        latency,
                        code,
                        trace,
                        revision,
                    )
                )


class DataPlane:
    def __init__(
        self, manager: ModelManager, stream: PredictionBuffer | None = None, shadows: ShadowRunner | None = None
    ) -> None:
        self.manager = manager
        self.stream = stream
        self.shadows = shadows

    async def infer(self, request: pb.ModelInferRequest, traceparent: str = "") -> pb.ModelInferResponse:
        """Answer one ModelInferRequest; raises a ServingError (with its code) for anything but success."""
        start = time.perf_counter()
        deployment, served = self.manager.resolve(request.model_name, request.model_version, request.id)
        served.enter()
        code = ErrorKind.OK
        inputs = _NO_INPUTS
        names: Sequence[str] = ()
        arrays: Sequence[Array] = ()
        try:
            decoded = served.codec.decode(request)
            inputs, names = decoded.inputs, decoded.outputs
            try:
                if served.inline:
                    arrays = served.runner.run(inputs, names)
                else:
                    arrays = await served.run(inputs, names)
            except (ServingError, asyncio.CancelledError):
                raise
            except Exception as exc:
                raise ModelFailed(f"model '{served.ref.model}' version {served.label} failed: {exc}") from exc
            response: pb.ModelInferResponse = served.codec.encode(request, served.label, names, arrays, decoded.raw)
        except ServingError as exc:
            code = exc.kind
            names, arrays = (), ()
            raise
        except asyncio.CancelledError:  # the caller went away (deadline, disconnect)
            code = ErrorKind.CANCELLED
            names, arrays = (), ()
            raise
        finally:
            served.leave()
            latency = time.perf_counter() - start
            served.metrics.observe(code, latency)
            if self.stream is not None:
                self.stream.add(
                    Prediction(
                        request.id,
                        served.ref,
                        time.time_ns(),
                        inputs,
                        names,
                        arrays,
                        latency,
                        code,
                        traceparent,
                        deployment.plan.revision,
                    )
                )
        shadow = deployment.shadow
        if shadow is not None and self.shadows is not None and shadow is not served:
            self.shadows.offer(shadow, request.id, inputs, traceparent, deployment.plan.revision)
        return response

    def is_ready(self, model: str, version: str) -> bool:
        try:
            self.manager.resolve(model, version, "")
        except ServingError:
            return False
        return True

    def metadata(self, model: str, version: str) -> pb.ModelMetadataResponse:
        deployment, served = self.manager.resolve(model, version, "")
        if not version:
            served = deployment.primary  # the version policy's answer, not a random canary pick
        signature = served.codec.signature
        return pb.ModelMetadataResponse(
            name=model,
            versions=[v.label for v in deployment.versions],
            platform=PLATFORM,
            inputs=[_tensor_metadata(spec) for spec in signature.inputs],
            outputs=[_tensor_metadata(spec) for spec in signature.outputs],
        )


PLATFORM = "onnxruntime_onnx"


def _tensor_metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=spec.datatype, shape=spec.shape)
