"""The demo's data and models: scikit-learn's breast cancer data, split once (seeded), a logistic regression per
version exported to ONNX, and the incoming cases the demo sends, before and after the data shifts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # numpy, scikit-learn and skl2onnx are imported where used: every `modelyard` command loads the demo's command,
    # and only the demo needs them.
    import numpy as np

LABEL_COLUMN = "target"
# A recalibrated imaging pipeline reports every size larger: radius, perimeter and area, mean and worst.
SHIFTED_FEATURES = ("mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter", "worst area")
SHIFT_SD = 1.5  # in training standard deviations: well past the monitor's critical effect size (3 x 0.1)
SEED = 7


@dataclass(frozen=True)
class DemoData:
    feature_names: tuple[str, ...]
    x_train: np.ndarray[Any, np.dtype[np.float32]]
    y_train: np.ndarray[Any, np.dtype[np.int64]]
    x_test: np.ndarray[Any, np.dtype[np.float32]]
    y_test: np.ndarray[Any, np.dtype[np.int64]]

    def traffic(self, rows: int, seed: int, *, shifted: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        """`rows` incoming cases, drawn from the held-out data (seeded, so every run sends the same)."""
        return self.labelled_traffic(rows, seed, shifted=shifted)[0]

    def labelled_traffic(
        self, rows: int, seed: int, *, shifted: bool
    ) -> tuple[np.ndarray[Any, np.dtype[np.float32]], np.ndarray[Any, np.dtype[np.int64]]]:
        """`traffic` and the true diagnosis of each case (what the application learns later)."""
        import numpy as np

        drawn = np.random.default_rng(seed).integers(0, len(self.x_test), size=rows)
        x = self.x_test[drawn].copy()
        if shifted:
            columns = [self.feature_names.index(f) for f in SHIFTED_FEATURES]
            x[:, columns] += SHIFT_SD * self.x_train[:, columns].std(axis=0)
        return x.astype(np.float32), self.y_test[drawn]

    def csv(self, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any] | None, columns: list[str]) -> bytes:
        header = ",".join(f'"{c}"' for c in columns) + (f",{LABEL_COLUMN}" if y is not None else "")
        lines = [header]
        for index, row in enumerate(x):
            values = ",".join(f"{v:.6g}" for v in row)
            lines.append(values + (f",{int(y[index])}" if y is not None else ""))
        return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class TrainedVersion:
    onnx: bytes
    parameters: dict[str, str]
    metrics: dict[str, float]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.onnx).hexdigest()


def load_data() -> DemoData:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=0.3, random_state=SEED, stratify=data.target
    )
    return DemoData(tuple(str(f) for f in data.feature_names), x_train, y_train, x_test, y_test)


def train(data: DemoData, regularization: float) -> TrainedVersion:
    """Standardise + logistic regression, exported with skl2onnx (zipmap off: outputs are plain tensors)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=1000))
    estimator.fit(data.x_train, data.y_train)
    metrics = {
        "accuracy": float(accuracy_score(data.y_test, estimator.predict(data.x_test))),
        "roc_auc": float(roc_auc_score(data.y_test, estimator.predict_proba(data.x_test)[:, 1])),
    }
    model = to_onnx(estimator, data.x_train[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # any batch size
    return TrainedVersion(
        model.SerializeToString(), {"C": str(regularization), "model": "logistic_regression"}, metrics
    )
