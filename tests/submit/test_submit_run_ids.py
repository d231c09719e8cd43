"""Run ids a client chooses (``submit --run-id``): checked on both sides, never reused."""

from __future__ import annotations

import pytest

from runtime import Client, RemoteError
from runtime.store import encode_value
from tests.submit.conftest import Node
from tests.support import actorflow

pytestmark = pytest.mark.timeout(120)

# Over 1019 characters, an id would not fit its run's ``$run/<id>`` target: the results
# of its remote steps could never reach the coordinator, and the run would never end.
BAD_IDS = ["x" * 1100, "x" * 129, "two words", "line\nbreak", "tab\there"]


@pytest.mark.parametrize("run_id", BAD_IDS, ids=["1100", "129", "space", "newline", "tab"])
def test_a_malformed_run_id_is_refused_by_the_client_and_by_the_node(
    node: Node, run_id: str
) -> None:
    with Client(node.seed, plaintext=True) as client:
        with pytest.raises(ValueError, match="submitted run id must be 1-128 printable"):
            client.submit("greet", {"who": "ada"}, run_id=run_id)
        # a client that does not check (another implementation): the node refuses it too
        ctx = encode_value({"who": "ada"}, what="ctx")
        message = {"op": "submit", "workflow": "greet", "ctx": ctx, "run": run_id}
        with pytest.raises(RemoteError, match="submitted run id must be 1-128 printable"):
            client._ask(node.name, message)
        assert all(row["run"] != run_id for row in client.runs())


def test_a_run_id_in_use_is_refused_and_its_run_is_untouched(node: Node) -> None:
    with Client(node.seed, plaintext=True) as client:
        first = client.submit("greet", {"who": "ada"}, run_id="chosen-id_1.x")
        assert first.id == "chosen-id_1.x" and first.result(timeout=30) == "hello ada"
        with pytest.raises(RemoteError, match="already in the checkpoint store"):
            client.submit("greet", {"who": "bob"}, run_id="chosen-id_1.x")
        assert client.run("chosen-id_1.x").result(timeout=30) == "hello ada"


def test_actorflow_submit_refuses_a_malformed_run_id_as_bad_usage(node: Node) -> None:
    done = actorflow("submit", "greet", "--join", node.seed, "--plaintext", "--run-id", "a b")
    assert done.returncode == 2 and "--run-id: a submitted run id must be" in done.stderr
