"""`modelyard demo`: the whole loop on this machine, in a few minutes.

It starts the same stack as `modelyard up` (embedded broker, SQLite, the four services as processes), then:
trains a logistic regression on scikit-learn's breast cancer data, exports it to ONNX, registers v1 with its
reference and evaluation data, asks for promotion, approves as two people, waits until serving has loaded it,
sends traffic through stock tritonclient over gRPC, registers v2 and rolls it out as a 20 % canary, shifts the
incoming data (sizes reported 1.5 SD larger by a recalibrated imaging pipeline), waits for the monitor to raise
drift on the canary and for governance to roll it back, checks that serving answers from v1 again; then sends the
true diagnoses of the shifted cases as feedback, waits for the monitor's retraining snapshot, runs `modelyard
retrain` (demo_retrain.py), and follows v3 through its checks, two approvals, a canary and its promotion to the
realised accuracy on the new data; and verifies the audit chain. Every step has a deadline; the command exits 1 if
one is missed.

`run_demo` is what the command and the e2e test both run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelyard.cli.demo_data import LABEL_COLUMN
from modelyard.cli.demo_scenario import ALIAS, CANARY_WEIGHT, MODEL, Scenario
from modelyard.cli.demo_timeline import ROLLBACK_STEPS, STEPS, DemoResult, StepFailed, Timeline
from modelyard.cli.stack import DEFAULT_DATA_DIR, StackError, StackState
from modelyard.cli.up import StackOptions, running_stack, stack_errors_exit
from modelyard.cli.users import SERVICE_PRINCIPALS, Identity, UsersFile, identity_settings

MARKER = ".modelyard-demo"  # in a data dir the demo made, so that it only ever wipes its own
DEFAULT_DEMO_DIR = DEFAULT_DATA_DIR / "demo"
WINDOW_EVENTS = 100  # the monitor's window for the demo: small, so the canary's 20 % fills windows quickly
TOKENS_FILE = "tokens.json"
OBSERVATION_S = 60  # of a canary
SNAPSHOT_MIN_ROWS = 500  # labelled predictions in a retraining snapshot: the demo labels 2 rounds of 300 first

# Who does what. Separation of duties: the registrant and requester (alice) may not approve; carol and dave do.
PRINCIPALS: dict[str, list[str]] = {
    "alice": ["publisher"],  # the data scientist: registers versions and asks for their promotion
    "carol": ["approver"],
    "dave": ["approver"],
    **SERVICE_PRINCIPALS,  # the services as callers of each other
}

POLICY = f"""\
# The demo's governance policy (docs/governance.md). Written by `modelyard demo`.
version: modelyard-demo
promotions:
  - models: "{MODEL}"
    alias: {ALIAS}
    checks:
      lineage_metrics: {{accuracy: {{min: 0.9}}}}
      evaluation: {{label_column: {LABEL_COLUMN}, metrics: {{accuracy: {{min: 0.9}}, roc_auc: {{min: 0.95}}}}}}
      latency_budget_ms: 250
      not_worse: {{metric: accuracy, label_column: {LABEL_COLUMN}}}
      signature_compatible: true
    approvals: {{count: 2, role: approver}}
    # observation_s: long enough that canary v2 drifts (and is rolled back) before it would be promoted, short
    # enough that canary v3, which does not drift, is promoted within the demo.
    # fresh_s: 0: v1 has served for seconds when the data shifts and its own windows drift too; the incident
    # that must roll back is the canary's (there is nothing before v1 to roll back to).
    rollout: {{canary_weight: {CANARY_WEIGHT}, observation_s: {OBSERVATION_S}, auto_promote: true, fresh_s: 0}}
rollbacks:
  - models: "*"
    min_severity: critical
    action: rollback
"""

# soft_wrap: a timeline line stays one line in a log file or a narrow terminal
out = Console(highlight=False, soft_wrap=True)


def prepare_work_dir(data_dir: Path) -> Path:
    """A fresh data dir for every run (the embedded broker starts empty, so old registry or governance state would
    not match it); only a directory the demo made itself is ever wiped."""
    data_dir = data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise StackError(f"{data_dir} is not empty and was not made by `modelyard demo`: choose another --data-dir")
        state = StackState.load(data_dir)
        if state is not None and state.owner_alive():
            raise StackError(f"a stack (pid {state.pid}) is still running with data dir {data_dir}")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("made by `modelyard demo`; wiped by the next run\n")
    work = data_dir / "scenario"  # the demo's own files (policy, tokens, traffic) beside the services'
    work.mkdir()
    return work


def demo_settings(work: Path, tokens: dict[str, str]) -> tuple[str, ...]:
    """The services' settings for the demo, as `modelyard up --env SERVICE.KEY=VALUE` options."""
    grants = {name: Identity(token=tokens[name], roles=roles) for name, roles in PRINCIPALS.items()}
    identities = UsersFile(
        users={name: grant for name, grant in grants.items() if name not in SERVICE_PRINCIPALS},
        services={name: grant for name, grant in grants.items() if name in SERVICE_PRINCIPALS},
    )
    (work / "policy.yaml").write_text(POLICY)
    return (
        *identity_settings(identities),
        f"governance.policy_file={work / 'policy.yaml'}",
        "governance.work_interval_s=0.2",
        f"monitor.window_max_events={WINDOW_EVENTS}",
        f"monitor.window_min_events={WINDOW_EVENTS // 2}",
        'monitor.retrain_on=["data_drift"]',
        f"monitor.retrain_snapshot_min_rows={SNAPSHOT_MIN_ROWS}",
        "monitor.retrain_interval_s=0.5",
    )


def prepare_demo(options: StackOptions) -> tuple[StackOptions, Path, dict[str, str]]:
    """A fresh work dir, the bearer tokens of the demo's people (also in <work>/tokens.json) and the options of the
    stack that knows them."""
    work = prepare_work_dir(options.data_dir)
    tokens = {name: secrets.token_urlsafe(24) for name in PRINCIPALS}
    # Readable by this user only: with --keep, this is how a person gets to call the stack as carol or alice.
    tokens_file = work / TOKENS_FILE
    tokens_file.touch(mode=0o600)
    tokens_file.write_text(json.dumps(tokens, indent=2))
    return replace(options, env=(*demo_settings(work, tokens), *options.env)), work, tokens


def run_demo(options: StackOptions, *, keep: bool = False, retrain: bool = True, console: Console = out) -> DemoResult:
    """Start the stack, run the loop, print the timeline; with `keep`, leave the stack running until Ctrl-C;
    without `retrain`, stop after the rollback (and the audit).

    Raises what `running_stack` raises when the stack itself cannot start.
    """
    options, work, tokens = prepare_demo(options)
    tokens_file = work / TOKENS_FILE
    with running_stack(options) as stack:
        timeline = Timeline(console)
        scenario = Scenario(stack.state, work, tokens, timeline)
        scenario.result.expected = STEPS if retrain else ROLLBACK_STEPS
        try:
            asyncio.run(scenario.run(retrain=retrain))
        except StepFailed as exc:
            scenario.result.failure = exc
            timeline.add("demo", f"[red]✗ {exc.step}: {exc.why}[/]")
        result = scenario.result
        result.timeline = list(timeline.entries)
        console.print(_summary(result))
        console.print(f"dashboard: [bold]{result.dashboard_url}[/]")
        if not result.ok:
            console.print(
                f"[red]the loop did not complete[/]; the services' logs are in {stack.state.data_dir / 'logs'}"
            )
        if keep and result.ok:
            console.print(f"bearer tokens of the demo's people: {tokens_file}")
            console.print(
                f"the stack keeps running (`modelyard status --data-dir {stack.state.data_dir}`); Ctrl-C to stop."
            )
            # Ctrl-C is how a kept stack ends: the demo itself succeeded, so it is not an error.
            with contextlib.suppress(KeyboardInterrupt):
                stack.watch()
            console.print("stopping")
    return result


def _summary(result: DemoResult) -> Table:
    done = {entry.what.removeprefix("[green]✓[/] "): entry for entry in result.timeline if entry.actor == "demo"}
    table = Table(title="modelyard demo")
    for column in ("step", "at", "after"):
        table.add_column(column, no_wrap=True)
    failed = result.failure.step if result.failure else None
    for step in STEPS:
        entry = done.get(step)
        if step in result.steps and entry is not None:
            table.add_row(f"[green]✓[/] {step}", f"{entry.at:%H:%M:%S}", f"{entry.elapsed_s:.1f}s")
        elif step == failed:
            table.add_row(f"[red]✗ {step}[/]", "", result.failure.why if result.failure else "")
        else:
            table.add_row(f"[dim]· {step}[/]", "", "")
    return table


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the stack running afterwards, until Ctrl-C.")] = False,
    data_dir: Annotated[
        Path, typer.Option(help="The demo's own state (wiped at the start of every run).")
    ] = DEFAULT_DEMO_DIR,
    broker_port: Annotated[int, typer.Option(help="Port of the embedded broker (on 127.0.0.1).")] = 9092,
    base_port: Annotated[
        int | None, typer.Option(help="Eight consecutive ports from here, as for `modelyard up`.")
    ] = None,
    port: Annotated[
        list[str] | None,
        typer.Option("--port", metavar="SERVICE.KIND=PORT", help="One port, e.g. serving.grpc=9001; repeatable."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service to be ready.")] = 120.0,
    tls: Annotated[bool, typer.Option(help="Everything over mutual TLS, as `modelyard up --tls`.")] = False,
    retrain: Annotated[
        bool, typer.Option(help="Play the retraining act after the rollback (--no-retrain: stop after the rollback).")
    ] = True,
) -> None:
    """Run the whole loop on this machine: register, approve, serve, drift, roll back, retrain, promote, audit."""
    options = StackOptions(
        data_dir=data_dir,
        broker_port=broker_port,
        base_port=base_port,
        ports=tuple(port or ()),
        timeout=timeout,
        tls=tls,
    )
    result: DemoResult | None = None
    with stack_errors_exit():
        result = run_demo(options, keep=keep, retrain=retrain)
    if result is None or not result.ok:  # None: interrupted
        raise typer.Exit(1)
