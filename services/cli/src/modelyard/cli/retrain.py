"""`modelyard retrain MODEL --script train.py [--param k=v]`: the next version from the newest retraining snapshot.

1. The parent is the version the alias (default production) names; its reference dataset and feature names are
   read from the registry. The snapshot is the newest the monitor took for the model (`--snapshot` names another).
2. The snapshot is split, seeded by its digest, into a training part and a held-out part (`--holdout`).
3. The script's `train(datasets, params) -> bytes` (see `retrain_runner`) runs in a subprocess on the reference
   and the training part. A script that fails, times out or returns something that is not an ONNX model is
   reported with its output, and nothing is registered.
4. The model is registered as the next version, its reference dataset the whole snapshot (the traffic it is meant
   for, so the monitor measures drift and data quality from there: the training part alone leaves out the held-out
   inputs, which live traffic keeps sending), with lineage: training datasets (reference, training part),
   evaluation dataset (the held-out part), the parameters, and tags naming the parent version, the snapshot and
   its incident.
5. Governance is asked to promote it to the alias; its `not_worse` check compares it with the serving version on
   the held-out rows.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from modelyard.cli.connection import client_tls
from modelyard.cli.governance import Governance, _governance, _show
from modelyard.cli.registry import (
    Registry,
    Token,
    _call,
    _client,
    _environment,
    _fail,
    _pairs,
    _progress,
    _stream,
    _upload,
    err,
    out,
)
from modelyard.cli.retrain_runner import METRICS_SUFFIX, Dataset
from modelyard.contracts.events.v1 import registry_events_pb2 as ev
from modelyard.contracts.governance.v1 import governance_service_pb2 as gov
from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc

Monitor = Annotated[str, typer.Option("--monitor", envvar="MODELYARD_MONITOR_URL", help="monitor REST base URL")]
MonitorToken = Annotated[
    str,
    typer.Option(
        "--monitor-token",
        envvar="MODELYARD_MONITOR_TOKEN",
        help="bearer token for the monitor, if it requires one",
        show_default=False,
    ),
]
OUTPUT_SHOWN = 4000  # characters of a failed script's output shown


class TrainingFailed(Exception):
    def __init__(self, why: str, output: str) -> None:
        super().__init__(why)
        self.output = output


def retrain(
    model: str,
    script: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="file defining train(datasets, params)")],
    param: Annotated[list[str] | None, typer.Option(help="key=value passed to train(); repeatable")] = None,
    alias: Annotated[str, typer.Option(help="the alias whose version is the parent, and the promotion's")] = (
        "production"
    ),
    snapshot: Annotated[str, typer.Option(help="snapshot digest (default: the monitor's newest)")] = "",
    holdout: Annotated[float, typer.Option(min=0.05, max=0.9, help="share of the snapshot held out")] = 0.3,
    timeout: Annotated[float, typer.Option(min=1, help="seconds the script may run")] = 900.0,
    registry: Registry = "127.0.0.1:50051",
    governance: Governance = "127.0.0.1:50054",
    monitor: Monitor = "http://127.0.0.1:8083",
    monitor_token: MonitorToken = "",
    token: Token = "",
) -> None:
    """Train the next version on the newest snapshot of labelled traffic, register it and ask for its promotion."""
    params = _pairs(param or [], "param")
    with tempfile.TemporaryDirectory(prefix="modelyard-retrain-") as tmp, _client(registry, token) as (stub, meta):
        work = Path(tmp)
        parent = _call(stub.ResolveAlias, pb.ResolveAliasRequest(model_name=model, alias=alias), meta).model_version
        if not parent.reference_dataset_digest or not parent.signature.inputs:
            _fail(f"{model} v{parent.version} has no reference dataset or no signature to train the next one from")
        found = _snapshot(monitor, model, monitor_token, snapshot)
        features = tuple(parent.signature.inputs[0].feature_names)
        label = str(found["label_column"])
        reference = _download(stub, meta, parent.reference_dataset_digest, work / "reference.csv")
        snapshot_file = _download(stub, meta, found["digest"], work / "snapshot.csv")
        train_part, held_out = _split(snapshot_file, features, holdout, work)
        datasets = [
            Dataset("reference", reference, parent.reference_dataset_digest, label, features),
            Dataset("snapshot", train_part, _sha256(train_part), label, features),
        ]
        out.print(
            f"retraining {model} from v{parent.version} on its reference and snapshot {found['digest']} "
            f"({found['rows']} rows, {holdout:.0%} held out)"
        )
        try:
            onnx_file = _run(script, datasets, params, work, timeout)
        except TrainingFailed as failed:
            err.print(failed.output[-OUTPUT_SHOWN:], markup=False, highlight=False)
            _fail(f"{script.name}: {failed}; nothing was registered")
        with _progress() as progress:
            uploaded = {path.name: _upload(stub, meta, path, progress).digest for path in (train_part, held_out)}
            artifact = _upload(stub, meta, onnx_file, progress)
        request = pb.CreateModelVersionRequest(
            model_name=model,
            artifact_digest=artifact.digest,
            reference_dataset_digest=str(found["digest"]),
            feature_names={parent.signature.inputs[0].name: pb.FeatureNames(names=features)},
            label_column=label,
            lineage=pb.Lineage(
                training_datasets=[parent.reference_dataset_digest, uploaded[train_part.name]],
                evaluation_datasets=[uploaded[held_out.name]],
                code_revision=f"sha256:{hashlib.sha256(script.read_bytes()).hexdigest()} ({script.name})",
                parameters=params,
                metrics=json.loads(Path(f"{onnx_file}{METRICS_SUFFIX}").read_text()),
                environment=_environment(),
            ),
            tags={
                "parent_version": str(parent.version),
                "retrained_from_snapshot": str(found["digest"]),
                "incident": str(found["incident_id"]),
            },
        )
        version = _call(stub.CreateModelVersion, request, meta).model_version
        _await_ready(stub, meta, version)
    out.print(f"registered [bold]{model}[/bold] version [bold]{version.version}[/bold] ({version.digest})")
    with _governance(governance, token) as rpc:
        promotion = gov.RequestPromotionRequest(model_name=model, version=version.version, target_alias=alias)
        _show(rpc("RequestPromotion", promotion).request)


def _snapshot(monitor: str, model: str, token: str, digest: str) -> dict[str, Any]:
    """The monitor's newest snapshot of the model, or the one named."""
    tls = client_tls()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=monitor, headers=headers, verify=tls.ssl_context() if tls else True) as http:
            response = http.get(f"/api/v1/models/{model}/snapshots", params={"limit": 1000})
    except httpx.HTTPError as exc:
        _fail(f"monitor {monitor}: {exc}")
    if response.status_code != 200:
        _fail(f"monitor {monitor}: HTTP {response.status_code}: {response.text[:200]}")
    snapshots: list[dict[str, Any]] = response.json()
    if digest:
        named = [s for s in snapshots if s["digest"] == digest]
        if not named:
            _fail(f"the monitor has no snapshot {digest} of {model}")
        return named[0]
    if not snapshots:
        _fail(
            f"the monitor has no retraining snapshot of {model} yet: it takes one when an incident of a signal "
            "in MODELYARD_MONITOR_RETRAIN_ON opens and enough labelled traffic is in"
        )
    return snapshots[0]


def _download(stub: pb_grpc.RegistryServiceStub, metadata: list[tuple[str, str]], digest: str, path: Path) -> Path:
    hasher = hashlib.sha256()
    with path.open("wb") as file:
        for response in _stream(stub.DownloadArtifact(pb.DownloadArtifactRequest(digest=digest), metadata=metadata)):
            if response.HasField("artifact") and response.artifact.media_type != "text/csv":
                _fail(f"{digest} is {response.artifact.media_type}: retraining reads CSV datasets")
            hasher.update(response.chunk)
            file.write(response.chunk)
    if "sha256:" + hasher.hexdigest() != digest:
        _fail(f"downloaded bytes do not match {digest}")
    return path


def _split(snapshot: Path, features: tuple[str, ...], holdout: float, work: Path) -> tuple[Path, Path]:
    """(training part, held-out part) of the snapshot's rows, drawn with a seed from its content.

    Rows with the same features fall on the same side: traffic repeats inputs, and a held-out row that the candidate
    was trained on would flatter it in the `not_worse` check."""
    import numpy as np
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(snapshot)
    keys = [name for name in features if name in table.column_names] or table.column_names
    rows = list(zip(*(table.column(name).to_pylist() for name in keys), strict=True))
    _, group = np.unique(np.array([repr(row) for row in rows]), return_inverse=True)
    seed = int(_sha256(snapshot).removeprefix("sha256:")[:16], 16)
    held = (np.random.default_rng(seed).random(int(group.max()) + 1) < holdout)[group]
    if held.all() or not held.any():
        _fail(
            f"the snapshot's {table.num_rows} rows ({int(group.max()) + 1} distinct inputs) are too few to hold "
            f"{holdout:.0%} out"
        )
    parts = work / "snapshot-train.csv", work / "snapshot-holdout.csv"
    pa_csv.write_csv(table.filter(~held), parts[0])
    pa_csv.write_csv(table.filter(held), parts[1])
    return parts


def _run(script: Path, datasets: list[Dataset], params: dict[str, str], work: Path, timeout: float) -> Path:
    """Run the script's train() in a subprocess; the ONNX file it produced, checked."""
    import onnx

    spec = work / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "datasets": [
                    {**vars(d), "path": str(d.path), "feature_names": list(d.feature_names)} for d in datasets
                ],
                "params": params,
            }
        )
    )
    output = work / "model.onnx"
    command = [sys.executable, "-m", "modelyard.cli.retrain_runner", str(script.resolve()), str(spec), str(output)]
    with _progress() as progress:
        progress.add_task(f"running {script.name}", total=None)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=script.parent)
        except subprocess.TimeoutExpired as expired:
            raise TrainingFailed(f"still running after {timeout:g}s", _text(expired.stdout, expired.stderr)) from None
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise TrainingFailed(f"exited with status {done.returncode}", log)
    try:
        onnx.checker.check_model(onnx.load_model_from_string(output.read_bytes()))
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...: any of them means "not a model"
        raise TrainingFailed(f"returned something that is not an ONNX model ({type(exc).__name__})", log) from None
    return output


def _text(*parts: str | bytes | None) -> str:
    return "".join(p.decode(errors="replace") if isinstance(p, bytes) else (p or "") for p in parts)


def _await_ready(stub: pb_grpc.RegistryServiceStub, metadata: list[tuple[str, str]], version: pb.ModelVersion) -> None:
    """The registry verifies a version in the background: wait until it is ready (or says why not)."""
    request = pb.GetModelVersionRequest(model_name=version.model_name, version=version.version)
    deadline = time.monotonic() + 120
    while version.status == ev.MODEL_VERSION_STATUS_PENDING_REGISTRATION and time.monotonic() < deadline:
        time.sleep(0.2)
        version = _call(stub.GetModelVersion, request, metadata).model_version
    if version.status != ev.MODEL_VERSION_STATUS_READY:
        _fail(f"the registry did not make v{version.version} ready: {version.status_message or 'still pending'}")


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
