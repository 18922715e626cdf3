"""`Evaluator` with onnxruntime, scikit-learn metrics, fairlearn and shap: governance measures a model itself on the
version's registered evaluation dataset (CSV), rather than trusting the metrics the trainer reported.

Global importance explains a classifier's class probabilities (every class; a skl2onnx classifier's second output)
or a regressor's prediction, over a seeded sample of the evaluation rows against a seeded background sample of
the same dataset (`modelyard.attributions`, as serving's explanations).

Governance runs it as `IsolatedEvaluator`, in a worker process: measuring a model is seconds of GIL-heavy work
(shap's explainer, scikit-learn, fairlearn) that in a thread would starve governance's event loop, its alert
consumer among them, which must order a rollback at once; and a model that crashes onnxruntime takes the worker
down, not governance."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from modelyard.attributions import Column, Model, attribute, global_importance, method
from modelyard.governance.domain.checks import Measurements
from modelyard.governance.domain.errors import FailedPrecondition
from modelyard.governance.domain.model import Signature
from modelyard.governance.domain.policy import EvaluationCheck, FairnessCheck
from modelyard.worker_pool import WorkerDied, WorkerPool

LATENCY_RUNS = 50  # single-row predictions timed for the p95: enough for a stable tail on small models


class OnnxEvaluator:
    def measure(
        self,
        model: bytes,
        dataset: bytes,
        dataset_digest: str,
        signature: Signature,
        evaluation: EvaluationCheck,
        fairness: FairnessCheck | None,
    ) -> Measurements:
        columns = _read_csv(dataset)
        if evaluation.label_column not in columns:
            raise FailedPrecondition(f"evaluation dataset lacks the label column {evaluation.label_column!r}")
        sensitive = fairness.sensitive_column if fairness else None
        if sensitive is not None and sensitive not in columns:
            raise FailedPrecondition(f"evaluation dataset lacks the sensitive column {sensitive!r}")
        features = _feature_names(signature, columns, {evaluation.label_column, sensitive or ""})
        x = np.column_stack([columns[name].astype(np.float32) for name in features])
        y_true = columns[evaluation.label_column]
        session = _session(model)
        outputs = session.run(None, {session.get_inputs()[0].name: x})
        y_pred = np.asarray(outputs[0]).reshape(len(x))
        scores = np.asarray(outputs[1]) if len(outputs) > 1 else None
        computed = {str(m): _metric(m, y_true, y_pred, scores) for m in evaluation.metrics}
        dpd = eod = None
        if sensitive is not None:
            # Imported on first use: fairlearn (with pandas and scikit-learn) takes seconds to import, which
            # would otherwise delay every start of the service, evaluations or not.
            from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

            groups = columns[sensitive]
            truth, predicted = y_true.astype(np.int64), y_pred.astype(np.int64)
            dpd = float(demographic_parity_difference(truth, predicted, sensitive_features=groups))
            eod = float(equalized_odds_difference(truth, predicted, sensitive_features=groups))
        importance = evaluation.importance
        explained = _sample(x, importance.rows, seed=0)
        attributions = attribute(
            _model(session, output=1 if len(outputs) > 1 else 0),
            list(explained.T),
            list(_sample(x, importance.background_rows, seed=1).T),
            permutations=importance.permutations,
        )
        return Measurements(
            dataset=dataset_digest,
            rows=len(x),
            metrics=computed,
            latency_p95_ms=_p95_ms(session, x[:1]),
            demographic_parity_difference=dpd,
            equalized_odds_difference=eod,
            importance=dict(zip(features, global_importance(attributions).tolist(), strict=True)),
            importance_rows=len(explained),
            importance_method=method(importance.permutations),
        )

    def latency_p95_ms(self, model: bytes, signature: Signature) -> float:
        session = _session(model)
        width = next((d for d in (session.get_inputs()[0].shape or [])[1:] if isinstance(d, int)), 1)
        return _p95_ms(session, np.zeros((1, width), dtype=np.float32))


class IsolatedEvaluator:
    """`OnnxEvaluator` in one worker process, started on the first evaluation. At normal CPU priority: it times the
    model's latency, which a lower priority would inflate whenever the machine is busy."""

    def __init__(self) -> None:
        self._pool = WorkerPool(1, niceness=0)
        self._evaluator = OnnxEvaluator()

    def measure(
        self,
        model: bytes,
        dataset: bytes,
        dataset_digest: str,
        signature: Signature,
        evaluation: EvaluationCheck,
        fairness: FairnessCheck | None,
    ) -> Measurements:
        try:
            return self._pool.call(
                self._evaluator.measure, model, dataset, dataset_digest, signature, evaluation, fairness
            )
        except WorkerDied as exc:
            raise FailedPrecondition(f"measuring the model failed: {exc}") from exc

    def latency_p95_ms(self, model: bytes, signature: Signature) -> float:
        try:
            return self._pool.call(self._evaluator.latency_p95_ms, model, signature)
        except WorkerDied as exc:
            raise FailedPrecondition(f"timing the model failed: {exc}") from exc

    def close(self) -> None:
        self._pool.close()


def _sample(x: np.ndarray[Any, Any], rows: int, seed: int) -> np.ndarray[Any, Any]:
    if len(x) <= rows:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))]


def _model(session: ort.InferenceSession, output: int) -> Model:
    """The session as a function of feature columns, answering its `output`-th output."""
    name, output_name = session.get_inputs()[0].name, session.get_outputs()[output].name

    def run(columns: list[Column]) -> np.ndarray[Any, Any]:
        return np.asarray(session.run([output_name], {name: np.column_stack(columns).astype(np.float32)})[0])

    return run


def _session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # One thread: the machine is shared with the event loop and other services; latency is per request anyway.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _p95_ms(session: ort.InferenceSession, row: np.ndarray[Any, Any]) -> float:
    feeds = {session.get_inputs()[0].name: row}
    session.run(None, feeds)  # warm-up: the first run allocates
    timings = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        session.run(None, feeds)
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 95))


def _read_csv(data: bytes) -> dict[str, np.ndarray[Any, Any]]:
    rows = list(csv.reader(io.StringIO(data.decode())))
    if len(rows) < 2:
        raise FailedPrecondition("evaluation dataset has no rows")
    header, body = rows[0], rows[1:]
    return {name: _column([row[i] for row in body]) for i, name in enumerate(header)}


def _column(values: list[str]) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        return np.asarray(values)  # a categorical column (e.g. a sensitive attribute)


def _feature_names(signature: Signature, columns: dict[str, Any], excluded: set[str]) -> list[str]:
    declared = list(signature.inputs[0].feature_names) if signature.inputs else []
    names = declared or [c for c in columns if c not in excluded]
    missing = [n for n in names if n not in columns]
    if missing:
        raise FailedPrecondition(f"evaluation dataset lacks feature columns {', '.join(missing)}")
    return names


def _metric(
    name: str, y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any], scores: np.ndarray[Any, Any] | None
) -> float:
    from sklearn import metrics as skm  # on first use, like fairlearn above

    if name == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if name == "f1":
        return float(skm.f1_score(y_true, y_pred, average="macro"))
    if name == "roc_auc":
        if scores is None:
            raise FailedPrecondition("roc_auc needs class probabilities; the model outputs none")
        if scores.shape[1] == 2:
            return float(skm.roc_auc_score(y_true, scores[:, 1]))
        return float(skm.roc_auc_score(y_true, scores, multi_class="ovr"))
    if name == "mae":
        return float(skm.mean_absolute_error(y_true, y_pred))
    if name == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    return float(skm.r2_score(y_true, y_pred))
