"""Handing runs to a running cluster: real ``actorflow node`` processes, real clients.

The node coordinates and checkpoints what clients submit; the submitter may
exit at once; any later client (or ``actorflow wait``) reads the outcome. A
client is never a member: it appears in no member table, however many come
and go.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import Client, NodeDown, RemoteError, SQLiteStore, UnknownWorkflow, generate_keys
from tests.submit.conftest import Node
from tests.support import actorflow, wait_until

pytestmark = pytest.mark.timeout(120)


def test_a_run_submitted_by_one_process_is_awaited_by_another(node: Node, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ctx = json.dumps({"gate": str(gate)})
    submitted = actorflow("submit", "gated", "--join", node.seed, "--plaintext", "--ctx", ctx)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.startswith("run ") and "of gated submitted to n1" in submitted.stdout
    run_id = submitted.stdout.split()[1]
    # the submitter has exited; the run goes on on the node
    with Client(node.seed, plaintext=True) as client:
        assert client.run(run_id).state == "Running"
    gate.touch()
    waited = actorflow("wait", run_id, "--join", node.seed, "--plaintext", "--json")
    assert waited.returncode == 0, waited.stderr
    outcome = json.loads(waited.stdout)
    assert outcome["state"] == "Completed" and outcome["output"] == "OPENED"
    assert outcome["node"] == "n1" and outcome["workflow"] == "gated"
    assert f"run {run_id}: " in waited.stderr  # the progress line
    # checkpointed in the node's store
    with SQLiteStore(Path(node_db(node))) as store:
        assert store.load(run_id).state == "Completed"


def node_db(node: Node) -> str:
    command = node.process.args
    assert isinstance(command, list)
    return str(command[command.index("--db") + 1])


def test_the_python_client_submits_and_reads_the_result(node: Node) -> None:
    with Client(node.seed, plaintext=True) as client:
        handle = client.submit("greet", {"who": "ada"})
        assert handle.node == "n1" and handle.id
        assert handle.result(timeout=30) == "hello ada"
        assert handle.state == "Completed"
        assert any(row["run"] == handle.id for row in client.runs())
    with Client(node.seed, plaintext=True) as later:
        assert later.run(handle.id).result(timeout=30) == "hello ada"


def test_a_registered_context_builder_turns_json_into_the_context(node: Node) -> None:
    result = actorflow(
        "submit", "greet-object", "--join", node.seed, "--plaintext",
        "--ctx", '{"who": "bob"}', "--wait", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == "hello bob, from an object"


def test_a_failed_run_exits_non_zero_and_says_why(node: Node) -> None:
    result = actorflow(
        "submit", "refuse", "--join", node.seed, "--plaintext", "--ctx", "[1]", "--wait"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Failed on n1: runtime.PermanentError: refused [1]" in result.stdout
    with Client(node.seed, plaintext=True) as client, pytest.raises(RemoteError, match="refused"):
        client.submit("refuse", {}).result(timeout=30)


def test_an_unknown_workflow_name_is_refused_with_the_known_names(node: Node) -> None:
    with Client(node.seed, plaintext=True) as client, pytest.raises(UnknownWorkflow) as raised:
        client.submit("nope", {})
    message = str(raised.value)
    assert "'nope'" in message and "known: gated, greet, greet-object, nothing, refuse" in message
    assert "--app" in message
    result = actorflow("submit", "nope", "--join", node.seed, "--plaintext")
    assert result.returncode == 1 and "no workflow named 'nope'" in result.stderr


def test_bad_arguments_exit_2_with_a_clear_message(node: Node, tmp_path: Path) -> None:
    cases = {
        ("--ctx", "{bad"): "--ctx is not valid JSON",
        ("--ctx", f"@{tmp_path / 'missing.json'}"): "cannot read it",
        ("--keys", str(tmp_path)): "--keys needs --name",
    }
    for extra, message in cases.items():
        result = actorflow("submit", "greet", "--join", node.seed, "--plaintext", *extra)
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr, (extra, result.stderr)
    no_join = actorflow("wait", "r1", "--plaintext")
    assert no_join.returncode == 2 and "--join" in no_join.stderr


def test_clients_never_appear_as_members(node: Node) -> None:
    with Client(node.seed, plaintext=True, name="watcher") as watcher:
        status = actorflow("status", "--join", node.seed, "--plaintext", "--json")
        assert status.returncode == 0, status.stderr
        nodes = json.loads(status.stdout)["nodes"]
        assert [n["node"] for n in nodes] == ["n1"]
        assert nodes[0]["members"] == {"n1": "up"}
        assert watcher.members() == {"n1": "up"}


def test_three_hundred_clients_leave_the_member_table_unchanged(node: Node) -> None:
    with Client(node.seed, plaintext=True) as observer:
        before = observer.ask_members({"op": "stats"})["n1"]["members"]
        for _ in range(300):
            with Client(node.seed, plaintext=True, timeout=20) as client:
                assert client.members() == {"n1": "up"}
        stats = observer.ask_members({"op": "stats"})["n1"]
        assert stats["members"] == before == {"n1": "up"}
        # every client said leave: only the observer's session is left
        assert wait_until(
            lambda: observer.ask_members({"op": "stats"})["n1"]["clients"] == 1, 20
        ), observer.ask_members({"op": "stats"})["n1"]


def test_curve_clients_need_their_own_key_on_the_allowlist(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    for name in ("n1", "admin"):
        generate_keys(keys, name)
    node = node_factory("n1", keys=keys)
    with Client(node.seed, keys=keys, name="admin") as admin:
        assert admin.submit("greet", {"who": "curve"}).result(timeout=30) == "hello curve"
    strangers = tmp_path / "stranger-keys"
    generate_keys(strangers, "stranger")
    shutil.copy(keys / "n1.key", strangers / "n1.key")
    with pytest.raises(NodeDown, match="allowlist"):
        Client(node.seed, keys=strangers, name="stranger", timeout=2)
    refused = actorflow(
        "status", "--join", node.seed, "--keys", str(strangers), "--name", "stranger",
        "--timeout", "2",
    )  # fmt: skip
    assert refused.returncode == 1 and "allowlist" in refused.stderr, refused.stderr
    status = actorflow("status", "--join", node.seed, "--keys", str(keys), "--name", "admin")
    assert status.returncode == 0, status.stderr
    assert "member n1" in status.stdout and "admin" not in status.stdout
