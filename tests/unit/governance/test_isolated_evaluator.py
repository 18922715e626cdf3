"""The isolated evaluator: a worker that dies while measuring fails the evidence (FailedPrecondition, which the
promotion records as a failed check), and governance itself lives on."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest

from modelyard.governance.adapters.evaluation import IsolatedEvaluator
from modelyard.governance.domain.errors import FailedPrecondition
from modelyard.governance.domain.model import Signature


class Crashing:
    """Stands in for onnxruntime crashing on a hostile model: the worker process exits mid-job."""

    def latency_p95_ms(self, *args: Any) -> NoReturn:
        os._exit(11)


def test_a_worker_that_dies_fails_the_evidence_not_governance() -> None:
    evaluator = IsolatedEvaluator()
    evaluator._evaluator = Crashing()  # type: ignore[assignment]
    try:
        with pytest.raises(FailedPrecondition, match="timing the model failed: a worker process stopped"):
            evaluator.latency_p95_ms(b"not a model", Signature(inputs=(), outputs=()))
    finally:
        evaluator.close()
