"""A submitted run outlives its coordinator's process: ``actorflow node`` restarted on the
same ``--db`` after a kill -9 resumes it, and a client reads its result there (a client
already waiting on it, too, when the node comes back on the same address)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import Client, RunInfo
from tests.submit.conftest import Node
from tests.support import actorflow, wait_until

pytestmark = pytest.mark.timeout(180)


def test_a_submitted_run_resumes_when_its_node_restarts_on_the_same_db(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    first = node_factory("n1")
    ctx = json.dumps({"gate": str(gate)})
    submitted = actorflow("submit", "gated", "--join", first.seed, "--plaintext", "--ctx", ctx)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.split()[1]
    with Client(first.seed, plaintext=True) as client:
        handle = client.run(run_id)
        assert wait_until(lambda: (handle.info().progress or "").find("1 running") >= 0, 30)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(30)
    second = node_factory("n1")  # same name, same --db
    gate.touch()
    with Client(second.seed, plaintext=True) as client:
        assert client.run(run_id).result(timeout=60) == "OPENED"


def test_a_client_waiting_on_a_run_outlasts_its_node_restarting_on_the_same_address(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    """The restarted node has forgotten the client's session: the client says hello again
    once its connection is back, and its wait goes on to the run's end."""
    gate = tmp_path / "gate"
    first = node_factory("n1")
    with Client(first.seed, plaintext=True, timeout=3) as client:
        handle = client.submit("gated", {"gate": str(gate)})
        assert wait_until(lambda: (handle.info().progress or "").find("1 running") >= 0, 30)
        ended: list[RunInfo | BaseException] = []

        def wait() -> None:
            try:
                ended.append(handle.wait(150))
            except BaseException as exc:  # the test reads what was raised
                ended.append(exc)

        waiter = threading.Thread(target=wait, name="waiter", daemon=True)
        waiter.start()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
        node_factory("n1", listen=first.address)  # same name, --db and address
        gate.touch()
        waiter.join(160)
        assert len(ended) == 1 and isinstance(ended[0], RunInfo), ended
        assert ended[0].state == "Completed"
        assert handle.result(30) == "OPENED"
