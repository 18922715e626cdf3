"""Explanations' pure parts: features of a request, the explained output, class selection, background columns."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.serving.domain.errors import InvalidArgument
from modelyard.serving.domain.explanation import (
    Classes,
    ExplainOptions,
    Feature,
    NoReference,
    Reference,
    explained_output,
    features_of,
    row_columns,
    select,
)
from modelyard.serving.domain.model import Signature, TensorSpec

pytestmark = pytest.mark.unit

CLASSIFIER = Signature(
    (TensorSpec("X", "FP32", (-1, 3)),),
    (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))),
)


def test_features_are_the_row_values_of_each_input_in_order() -> None:
    inputs = {"x": np.zeros((2, 2, 2), np.float32), "city": np.array([[b"Oslo"], [b"Lyon"]], dtype=object)}
    features = features_of(inputs)
    assert [f.location for f in features] == ["x[0]", "x[1]", "x[2]", "x[3]", "city"]
    columns = row_columns(inputs)
    assert len(columns) == 5 and list(columns[4]) == ["Oslo", "Lyon"]  # BYTES as str, as onnxruntime wants them
    with pytest.raises(InvalidArgument, match="input 'city': element is not UTF-8"):
        row_columns({"city": np.array([[b"\xff"]], dtype=object)})


def test_the_default_output_is_the_last_floating_point_one() -> None:
    assert explained_output(CLASSIFIER, ExplainOptions()).name == "probabilities"
    index = ExplainOptions(classes=Classes.INDEX, class_index=1)
    assert explained_output(CLASSIFIER, index).name == "probabilities"
    for options, message in (
        (ExplainOptions(output="label"), "output 'label' is INT64: only floating-point outputs are explained"),
        (ExplainOptions(output="nope"), "unknown output 'nope'"),
        (ExplainOptions(classes=Classes.INDEX, class_index=2), "class index 2 is outside output 'probabilities'"),
    ):
        with pytest.raises(InvalidArgument) as error:
            explained_output(CLASSIFIER, options)
        assert str(error.value) == message
    labels_only = Signature(CLASSIFIER.inputs, CLASSIFIER.outputs[:1])
    with pytest.raises(InvalidArgument, match="no floating-point output"):
        explained_output(labels_only, ExplainOptions())


def test_classes_select_the_predicted_every_or_one_column() -> None:
    values = np.arange(12, dtype=np.float64).reshape(2, 3, 2)  # rows, features, classes
    base = np.array([0.5, 0.5])
    predictions = np.array([[0.9, 0.1], [0.2, 0.8]])
    predicted = select(values, base, predictions, ExplainOptions())
    assert [[o.index for o in row] for row in predicted] == [[0], [1]]
    assert predicted[1][0].attributions == (7.0, 9.0, 11.0)
    assert predicted[1][0].prediction == 0.8
    every = select(values, base, predictions, ExplainOptions(classes=Classes.ALL))
    assert [[o.index for o in row] for row in every] == [[0, 1], [0, 1]]
    one = select(values, base, predictions, ExplainOptions(classes=Classes.INDEX, class_index=1))
    assert [row[0].attributions for row in one] == [(1.0, 3.0, 5.0), (7.0, 9.0, 11.0)]
    with pytest.raises(InvalidArgument, match="outside the output's 2 columns"):
        select(values, base, predictions, ExplainOptions(classes=Classes.INDEX, class_index=2))


def test_background_columns_by_registered_name_else_location() -> None:
    named = Reference({"age": np.array([30.0]), "X[1]": np.array([2.0])}, {"X": ["age", "income"]}, "registry:d")
    features = [Feature("X", 0, 2), Feature("X", 1, 2)]
    assert [named.name(f) for f in features] == ["age", "income"]
    assert [list(c) for c in named.background(features, "m:1")] == [[30.0], [2.0]]
    with pytest.raises(NoReference, match="no column for feature 'b'"):
        Reference({"a": np.zeros(1)}, {}, "file:x").background([Feature("b", 0, 1)], "m:1")
