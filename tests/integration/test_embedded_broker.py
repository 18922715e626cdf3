import os
import signal
import subprocess
import sys
import time

import pytest

from modelyard.kafka.embedded import BrokerStartError, EmbeddedBroker

pytestmark = pytest.mark.integration

STARTER = (
    "from modelyard.kafka.embedded import EmbeddedBroker\n"
    "broker = EmbeddedBroker(); broker.start(); print(broker.pid, flush=True)\n"
    "import time; time.sleep(120)\n"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_broker_dies_with_the_process_that_started_it() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    broker_pid = int(starter.stdout.readline())
    assert _alive(broker_pid)
    starter.send_signal(signal.SIGKILL)  # no chance to clean up: only the kernel's parent-death signal helps
    starter.wait()
    deadline = time.monotonic() + 10
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(broker_pid)


def test_a_taken_port_is_named_in_the_error() -> None:
    with EmbeddedBroker() as first, pytest.raises(BrokerStartError, match=f"port {first.port} .* already in use"):
        EmbeddedBroker(port=first.port).start()
