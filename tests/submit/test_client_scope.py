"""A client asks; it does not do what only members do: run a step on a member, spawn an
actor there, take a cluster lock. Those come from members only (a client is never told
a step's result, never declared down to clean up after it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import ActorSystem, Client, RemoteError
from runtime.cluster import LOCKS_PATH, SYSTEM_PATH, RunStep
from runtime.store import encode_value
from tests.cluster.cluster_app import Echo

pytestmark = pytest.mark.timeout(60)


def touch(ctx: dict[str, str]) -> str:
    Path(ctx["file"]).touch()
    return "touched"


@pytest.fixture
def member() -> Iterator[ActorSystem]:
    with ActorSystem("m", listen="tcp://127.0.0.1:0", plaintext=True) as system:
        system.register_actor(Echo)
        system.register_task(touch, name="touch")
        yield system


def test_a_client_may_not_run_steps_spawn_actors_or_take_locks(
    member: ActorSystem, tmp_path: Path
) -> None:
    file = tmp_path / "touched"
    step = RunStep("r1", "touch", 1, 1, "touch", {}, encode_value({"file": str(file)}, what="ctx"))
    spawn = {"op": "spawn", "class": f"{Echo.__module__}:Echo", "args": [], "name": "mine"}
    lock = {"op": "acquire", "name": "l", "owner": "c", "lease": 5.0, "timeout": 0}
    with Client(str(member.address), plaintext=True) as client:
        for message in (step.encode(), spawn):
            with pytest.raises(RemoteError, match="only a cluster member"):
                client._ask("m", message)
        with pytest.raises(RemoteError, match="only a cluster member"):
            client._transport.ask("m", LOCKS_PATH, lock, timeout=10).result(11)
        # what a client is for still works
        assert client._ask("m", {"op": "ping"}) == "pong"
        assert client._transport.ask("m", SYSTEM_PATH, {"op": "stats"}, timeout=10).result(11)
    assert not file.exists()
