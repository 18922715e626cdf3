"""Traffic for `modelyard demo`: stock tritonclient over gRPC, one request per row, in a process of its own.

Run as `python -m modelyard.cli.demo_traffic ADDRESS MODEL ROWS.npy ID_PREFIX [CA CERT KEY]`; prints one JSON
object: how many answers each model version gave and how many calls failed. With CA, CERT and KEY (PEM files), over
mutual TLS. A separate process because tritonclient ships its
own generated `inference` protobuf modules, which cannot share a process with `modelyard.contracts.inference`
(both register the same names in protobuf's default pool). Nothing from `modelyard` is imported here for that
reason.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

INPUT_NAME = "X"  # skl2onnx names the input of a model converted from an array "X"


def send(address: str, model: str, rows: np.ndarray, id_prefix: str, tls: list[str]) -> dict[str, object]:
    import tritonclient.grpc as triton  # type: ignore[import-untyped]
    from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

    versions: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    if tls:
        ca, cert, key = tls
        client = triton.InferenceServerClient(
            address, ssl=True, root_certificates=ca, certificate_chain=cert, private_key=key
        )
    else:
        client = triton.InferenceServerClient(address)
    try:
        for index, row in enumerate(rows):
            tensor = triton.InferInput(INPUT_NAME, [1, row.shape[0]], "FP32")
            tensor.set_data_from_numpy(row.reshape(1, -1).astype(np.float32))
            try:
                # The request id decides the canary share (a hash of it), so the same ids split the same way.
                result = client.infer(model, [tensor], request_id=f"{id_prefix}-{index}", client_timeout=30)
            except InferenceServerException as exc:
                errors[str(exc.status())] += 1
                continue
            versions[result.get_response().model_version] += 1
    finally:
        client.close()
    return {"versions": dict(versions), "errors": dict(errors)}


def main() -> None:
    address, model, rows_path, id_prefix = sys.argv[1:5]
    rows = np.load(Path(rows_path))
    print(json.dumps(send(address, model, rows, id_prefix, sys.argv[5:8])))


if __name__ == "__main__":
    main()
