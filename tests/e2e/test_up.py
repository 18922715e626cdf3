"""`modelyard up` and `modelyard status` as a person runs them: the whole stack as processes, healthy over
both transports, and nothing left running after it stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelyard.kafka.embedded import port_is_free
from modelyard.testing.stack import SERVICES, Stack, alive, descendants, modelyard, planned_ports, port_options

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "data")
    yield stack
    stack.stop()


def test_up_serves_every_service_until_sigterm_then_leaves_nothing_behind(stack: Stack) -> None:
    state = stack.wait_healthy()
    started = descendants(stack.process.pid)
    services = state["services"]
    assert isinstance(services, dict) and set(services) == set(SERVICES)
    assert {record["pid"] for record in services.values()} <= started
    assert len(started) >= len(SERVICES) + 1  # and the broker

    for service, record in services.items():
        assert record["grpc"] == f"127.0.0.1:{stack.ports[service]['grpc']}"
        with grpc.insecure_channel(record["grpc"]) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
    for service in SERVICES:
        assert (stack.data_dir / "logs" / f"{service}.log").stat().st_size > 0

    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=40) == 0, stack.output.read_text()
    assert [pid for pid in started if alive(pid)] == []
    assert not (stack.data_dir / "up.json").exists()
    assert port_is_free("127.0.0.1", stack.broker_port)

    status = subprocess.run(modelyard("status", "--data-dir", str(stack.data_dir)), capture_output=True, text=True)
    assert status.returncode != 0


def test_children_die_with_their_parent_even_when_it_is_killed(tmp_path: Path) -> None:
    # What `up` relies on when it is SIGKILLed: the kernel's parent-death signal, set in `spawn`.
    parent_script = (
        "import sys, time; from pathlib import Path; from modelyard.cli.supervisor import spawn; "
        "child = spawn('sleeper', [sys.executable, '-c', 'import time; time.sleep(60)'], {}, Path(sys.argv[1])); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_script, str(tmp_path / "sleeper.log")], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert alive(child_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child_pid):
        assert time.monotonic() < deadline, "the child outlived its killed parent"
        time.sleep(0.05)


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    broker_port, ports = planned_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports["monitor"]["http"] = taken_port = taken.getsockname()[1]
        data_dir = tmp_path / "data"
        result = subprocess.run(
            modelyard("up", "--data-dir", str(data_dir), "--broker-port", str(broker_port), *port_options(ports)),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"monitor http port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()  # nothing started, nothing written
    assert port_is_free("127.0.0.1", broker_port)
