"""Triton 2.51 through PyTriton 0.7, with Triton's dynamic batcher (runs inside the pytriton virtualenv).

Usage: python pytriton_server.py GRPC_PORT HTTP_PORT METRICS_PORT NAME=MODEL.onnx...
"""

import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def infer_function(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    @batch
    def infer(X):
        label, probabilities = session.run(["label", "probabilities"], {"X": X})
        return {"label": label.reshape(-1, 1), "probabilities": probabilities}

    return infer


def main():
    grpc_port, http_port, metrics_port = (int(p) for p in sys.argv[1:4])
    config = TritonConfig(
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        grpc_address="127.0.0.1",
        http_address="127.0.0.1",
    )
    with Triton(config=config) as triton:
        for spec in sys.argv[4:]:
            name, path = spec.split("=", 1)
            triton.bind(
                model_name=name,
                infer_func=infer_function(path),
                inputs=[Tensor(name="X", dtype=np.float32, shape=(30,))],
                outputs=[
                    Tensor(name="label", dtype=np.int64, shape=(1,)),
                    Tensor(name="probabilities", dtype=np.float32, shape=(2,)),
                ],
                config=ModelConfig(max_batch_size=64, batcher=DynamicBatcher(max_queue_delay_microseconds=100)),
            )
        triton.serve()


if __name__ == "__main__":
    main()
