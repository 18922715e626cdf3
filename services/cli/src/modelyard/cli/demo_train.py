"""The training script `modelyard demo` hands to `modelyard retrain` (the entry point of `retrain_runner`): the
same pipeline as v1 and v2 (standardise + logistic regression, exported by skl2onnx), fitted on the reference and
the snapshot of drifted, labelled traffic; its cross-validated accuracy goes to the version's lineage."""

from __future__ import annotations

import numpy as np

from modelyard.cli.retrain_runner import Dataset


def train(datasets: list[Dataset], params: dict[str, str]) -> tuple[bytes, dict[str, float]]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parts = [d.arrays() for d in datasets]
    x = np.vstack([features for features, _ in parts])
    y = np.concatenate([labels for _, labels in parts]).astype(np.int64)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(C=float(params.get("C", "1.0")), max_iter=1000))
    accuracy = float(cross_val_score(estimator, x, y, cv=5).mean())
    estimator.fit(x, y)
    model = to_onnx(estimator, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # any batch size
    print(
        f"trained on {len(x)} rows ({', '.join(f'{d.name} {len(p[1])}' for d, p in zip(datasets, parts, strict=True))})"
    )
    return model.SerializeToString(), {"accuracy": accuracy}
