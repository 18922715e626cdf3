"""`modelyard retrain`'s own parts, without a stack: the training script runs in a subprocess and what comes back is
checked (a failing script or a non-ONNX result is reported with the script's output); the snapshot's split into
training and held-out rows is seeded by its content, so a rerun splits the same way."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pyarrow.csv as pa_csv
import pytest
from onnx import TensorProto, helper

from modelyard.cli.retrain import TrainingFailed, _run, _split
from modelyard.cli.retrain_runner import METRICS_SUFFIX, Dataset

pytestmark = pytest.mark.unit


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(body)
    return path


def datasets(tmp_path: Path) -> list[Dataset]:
    data = tmp_path / "reference.csv"
    data.write_text("a,b,target\n1,2,0\n3,4,1\n")
    return [Dataset("reference", data, "sha256:ref", "target", ("a", "b"))]


def identity_model() -> bytes:
    node = helper.make_node("Identity", ["X"], ["Y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def test_a_script_that_fails_is_reported_with_its_output(tmp_path: Path) -> None:
    failing = script(tmp_path, "def train(datasets, params):\n    print('loading', len(datasets))\n    1 / 0\n")
    with pytest.raises(TrainingFailed) as failed:
        _run(failing, datasets(tmp_path), {}, tmp_path, timeout=120)
    assert str(failed.value) == "exited with status 1"
    assert "loading 1" in failed.value.output and "ZeroDivisionError" in failed.value.output
    assert not (tmp_path / "model.onnx").exists()


def test_a_script_that_returns_no_onnx_model_is_refused(tmp_path: Path) -> None:
    not_onnx = script(tmp_path, "def train(datasets, params):\n    print('done')\n    return b'not a model'\n")
    with pytest.raises(TrainingFailed) as failed:
        _run(not_onnx, datasets(tmp_path), {}, tmp_path, timeout=120)
    assert "returned something that is not an ONNX model" in str(failed.value) and "done" in failed.value.output
    text = script(tmp_path, "def train(datasets, params):\n    return 'model.onnx'\n")
    with pytest.raises(TrainingFailed) as failed:
        _run(text, datasets(tmp_path), {}, tmp_path, timeout=120)
    assert "train() returned str, not the ONNX model's bytes" in failed.value.output
    nothing = script(tmp_path, "x = 1\n")
    with pytest.raises(TrainingFailed) as failed:
        _run(nothing, datasets(tmp_path), {}, tmp_path, timeout=120)
    assert "defines no function train(datasets, params)" in failed.value.output


def test_the_model_and_metrics_of_a_script_come_back(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(identity_model())
    good = script(
        tmp_path,
        "from pathlib import Path\n"
        "def train(datasets, params):\n"
        "    x, y = datasets[0].arrays()\n"
        "    assert x.shape == (2, 2) and list(y) == [0, 1] and params == {'C': '0.5'}\n"
        "    return Path(__file__).with_name('model.bin').read_bytes(), {'accuracy': 0.75}\n",
    )
    output = _run(good, datasets(tmp_path), {"C": "0.5"}, tmp_path, timeout=120)
    assert onnx.load_model_from_string(output.read_bytes()).graph.node[0].op_type == "Identity"
    assert json.loads(Path(f"{output}{METRICS_SUFFIX}").read_text()) == {"accuracy": 0.75}


def test_the_snapshot_split_is_disjoint_and_seeded_by_its_content(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.csv"
    snapshot.write_text("a,target\n" + "".join(f"{i},{i % 2}\n" for i in range(200)))
    train, held = _split(snapshot, ("a",), 0.3, tmp_path)
    train_rows = pa_csv.read_csv(train).column("a").to_pylist()
    held_rows = pa_csv.read_csv(held).column("a").to_pylist()
    assert sorted(train_rows + held_rows) == list(range(200)) and 30 < len(held_rows) < 90
    again = tmp_path / "again"
    again.mkdir()
    assert pa_csv.read_csv(_split(snapshot, ("a",), 0.3, again)[1]).column("a").to_pylist() == held_rows


def test_rows_with_the_same_inputs_fall_on_the_same_side_of_the_split(tmp_path: Path) -> None:
    # Traffic repeats inputs: a held-out row the candidate was trained on would flatter it in `not_worse`.
    snapshot = tmp_path / "snapshot.csv"
    snapshot.write_text("a,b,target,event_time\n" + "".join(f"{i % 40},{i % 40 * 2},{i % 2},{i}\n" for i in range(400)))
    train, held = _split(snapshot, ("a", "b"), 0.3, tmp_path)
    train_inputs = set(pa_csv.read_csv(train).column("a").to_pylist())
    held_inputs = set(pa_csv.read_csv(held).column("a").to_pylist())
    assert train_inputs and held_inputs and not train_inputs & held_inputs
    assert train_inputs | held_inputs == set(range(40))
