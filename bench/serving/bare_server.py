"""The floor to beat: the least a grpc.aio server can do to answer ModelInfer with onnxruntime.

No validation, no routing, no metrics, no stream: parse, frombuffer, session.run on the event loop, answer raw.
Usage: python bare_server.py MODEL.onnx PORT
"""

from __future__ import annotations

import asyncio
import sys

import grpc
import numpy as np
import onnxruntime as ort

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc


class Bare(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    async def ModelReady(self, request: pb.ModelReadyRequest, context: object) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=True)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: object) -> pb.ModelInferResponse:
        tensor = request.inputs[0]
        x = np.frombuffer(request.raw_input_contents[0], np.float32).reshape(tuple(tensor.shape))
        results = self.session.run(self.outputs, {self.input: x})
        response = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
        for name, array in zip(self.outputs, results, strict=True):
            response.outputs.add(
                name=name, datatype="FP32" if array.dtype == np.float32 else "INT64", shape=array.shape
            )
            response.raw_output_contents.append(array.tobytes())
        return response


async def main(path: str, port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Bare(path), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
