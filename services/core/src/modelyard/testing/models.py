"""Small real ONNX models for tests: scikit-learn trained on bundled datasets, exported with skl2onnx.

Trained once per test session (`onnx_models` fixture) and kept in pytest's cache between sessions. Needs the dev
dependencies scikit-learn and skl2onnx, imported lazily so that importing this module costs nothing elsewhere.
Classifiers are exported with `zipmap=False`, so their outputs are plain tensors (label, probabilities) that
every ONNX runtime can serve.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

LABEL_COLUMN = "target"


@dataclass(frozen=True)
class TrainedModel:
    name: str
    onnx: bytes
    feature_names: tuple[str, ...]
    # A few rows to predict on, and the reference dataset (features + LABEL_COLUMN) as CSV.
    sample: np.ndarray[Any, np.dtype[np.float32]]
    reference_csv: bytes
    task: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.onnx).hexdigest()

    @property
    def reference_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.reference_csv).hexdigest()

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.name}.onnx"
        path.write_bytes(self.onnx)
        return path


def _csv(features: tuple[str, ...], x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*features, LABEL_COLUMN])
    for row, target in zip(x, y, strict=True):
        writer.writerow([*(f"{v:.6g}" for v in row), target])
    return out.getvalue().encode()


def _train(name: str, load: Callable[..., Any], make_estimator: Callable[[], Any], task: str) -> TrainedModel:
    from skl2onnx import to_onnx

    data = load()
    x = data.data.astype(np.float32)
    features = tuple(str(f) for f in data.feature_names)
    estimator = make_estimator().fit(x, data.target)
    options = {"zipmap": False} if task == "classification" else None
    # Export with a dynamic batch dimension: serving batches requests.
    onnx_model = to_onnx(estimator, x[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    graph_input = onnx_model.graph.input[0].type.tensor_type.shape.dim[0]
    graph_input.dim_param = "N"
    return TrainedModel(
        name=name,
        onnx=onnx_model.SerializeToString(),
        feature_names=features,
        sample=x[:8],
        reference_csv=_csv(features, x[:200], data.target[:200]),
        task=task,
    )


def train_models() -> dict[str, TrainedModel]:
    """Breast cancer (logistic regression), iris (random forest) and diabetes (ridge), as ONNX."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models = [
        _train(
            "breast-cancer",
            load_breast_cancer,
            lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
            "classification",
        ),
        _train(
            "iris",
            load_iris,
            lambda: RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0),
            "classification",
        ),
        _train("diabetes", load_diabetes, lambda: Ridge(alpha=1.0), "regression"),
    ]
    return {m.name: m for m in models}


def _cache_key() -> str:
    """Changes whenever the models would: this file or the versions of the packages that make them."""
    versions = [importlib.metadata.version(p) for p in ("scikit-learn", "skl2onnx", "onnx", "numpy")]
    return hashlib.sha256(Path(__file__).read_bytes() + repr(versions).encode()).hexdigest()[:16]


def _to_json(model: TrainedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "onnx": base64.b64encode(model.onnx).decode(),
        "feature_names": list(model.feature_names),
        "sample": model.sample.tolist(),
        "reference_csv": base64.b64encode(model.reference_csv).decode(),
        "task": model.task,
    }


def _from_json(data: dict[str, Any]) -> TrainedModel:
    return TrainedModel(
        name=data["name"],
        onnx=base64.b64decode(data["onnx"]),
        feature_names=tuple(data["feature_names"]),
        sample=np.asarray(data["sample"], dtype=np.float32),
        reference_csv=base64.b64decode(data["reference_csv"]),
        task=data["task"],
    )


@pytest.fixture(scope="session")
def onnx_models(pytestconfig: pytest.Config) -> dict[str, TrainedModel]:
    """Trained once, then kept in pytest's cache: importing scikit-learn and skl2onnx costs far more than
    training these models, and a fresh checkout (CI) trains them again."""
    key = f"modelyard/onnx-models/{_cache_key()}"
    cache = getattr(pytestconfig, "cache", None)  # absent under `-p no:cacheprovider`
    cached = cache.get(key, None) if cache else None
    if cached is not None:
        return {name: _from_json(data) for name, data in cached.items()}
    models = train_models()
    if cache:
        cache.set(key, {name: _to_json(model) for name, model in models.items()})
    return models
