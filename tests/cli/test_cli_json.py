"""``--json`` on runs, show and status: one JSON document on stdout, with the README's keys."""

from __future__ import annotations

import datetime
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime import ActorSystem, CheckpointStrategy, PermanentError, SQLiteStore, task
from runtime import events as ev
from tests.cli.cli_app import workflows
from tests.support import EventRecorder, actorflow

pytestmark = pytest.mark.timeout(60)

RUN_KEYS = {
    "run_id",
    "workflow",
    "state",
    "steps_completed",
    "steps_recorded",
    "epoch",
    "owner",
    "lease_until",
    "created_at",
    "updated_at",
}
SHOW_KEYS = {
    "run_id",
    "workflow",
    "fingerprint",
    "state",
    "epoch",
    "created_at",
    "updated_at",
    "steps",
    "outcome",
}
STEP_KEYS = {
    "step",
    "state",
    "attempts",
    "node",
    "started_at",
    "finished_at",
    "duration_s",
    "error",
}
OUTCOME_KEYS = {"output", "output_repr", "error", "no_output"}
NODE_KEYS = {
    "node",
    "address",
    "members",
    "heartbeat_age",
    "runs",
    "actors",
    "node_actors_idle",
    "node_actors_spawned",
    "node_actors_reused",
    "steps_hosted",
    "frames_in",
    "frames_out",
    "frames_dropped",
    "in_flight_asks",
    "clients",
    "held_bytes",
    "dropped_by_peer",
    "log_suppressed",
    "shed_peers",
}
NODE_RUN_KEYS = {"run_id", "state", "paused", "steps_total", "steps_completed"}


def _utc(text: str) -> datetime.datetime:
    """An ISO-8601 UTC timestamp as the CLI prints it (``...Z``), parsed."""
    assert text.endswith("Z"), text
    moment = datetime.datetime.fromisoformat(text)
    assert moment.utcoffset() == datetime.timedelta(0)
    return moment


def _json(*args: str) -> Any:
    result = actorflow(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # the whole of stdout is one document


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, str, str, str]:
    """A real SQLite file with a Failed, a Completed and a tuple-returning Completed run."""
    path, marker = tmp_path / "state.db", tmp_path / "broken"
    marker.touch()
    ctx = {"log": str(tmp_path / "log"), "marker": str(marker)}
    store = SQLiteStore(path)
    with ActorSystem("cli-json", store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP) as s:
        failed = s.run(workflows()[0], ctx)
        with pytest.raises(PermanentError):
            failed.result(10)
        marker.unlink()
        completed = s.run(workflows()[0], ctx)
        completed.result(10)
        pair = s.run(task(lambda c: ("a", b"\x00"), name="pair").named("pair"), {})
        assert pair.result(10) == ("a", b"\x00")
    store.close()
    return path, failed.id, completed.id, pair.id


def test_runs_json_is_a_list_of_runs_with_the_documented_keys(
    db: tuple[Path, str, str, str],
) -> None:
    path, failed, completed, pair = db
    runs = _json("runs", "--json", "--db", str(path))
    assert isinstance(runs, list) and len(runs) == 3
    assert all(set(run) == RUN_KEYS for run in runs)
    by_id = {run["run_id"]: run for run in runs}
    assert by_id[failed]["workflow"] == "cli-demo" and by_id[failed]["state"] == "Failed"
    assert (by_id[failed]["steps_completed"], by_id[failed]["steps_recorded"]) == (1, 2)
    assert (by_id[completed]["steps_completed"], by_id[completed]["steps_recorded"]) == (3, 3)
    assert by_id[pair]["epoch"] == 1 and by_id[pair]["owner"] is None
    assert by_id[pair]["lease_until"] is None  # finished: no one holds it
    for run in runs:
        assert _utc(run["created_at"]) <= _utc(run["updated_at"])
    updated = [_utc(run["updated_at"]) for run in runs]
    assert updated == sorted(updated, reverse=True)  # newest first, as the table


def test_runs_json_of_an_empty_database_is_an_empty_list(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "empty.db").close()
    assert _json("runs", "--json", "--db", str(tmp_path / "empty.db")) == []


def test_show_json_of_a_failed_run_has_its_steps_and_error(
    db: tuple[Path, str, str, str],
) -> None:
    path, failed, _, _ = db
    shown = _json("show", failed[:6], "--json", "--db", str(path))
    assert set(shown) == SHOW_KEYS
    assert (shown["run_id"], shown["workflow"], shown["state"]) == (failed, "cli-demo", "Failed")
    assert [s["step"] for s in shown["steps"]] == ["first", "fragile"]
    assert all(set(step) == STEP_KEYS for step in shown["steps"])
    first, fragile = shown["steps"]
    assert (first["state"], first["attempts"], first["error"]) == ("Completed", 1, None)
    assert fragile["state"] == "Failed" and "marker" in fragile["error"]
    assert first["node"] == fragile["node"] == "cli-json"  # the system that ran them
    assert _utc(first["started_at"]) <= _utc(first["finished_at"])
    assert isinstance(first["duration_s"], float) and 0 <= first["duration_s"] < 10
    outcome = shown["outcome"]
    assert set(outcome) == OUTCOME_KEYS
    assert (outcome["output"], outcome["output_repr"]) == (None, None)
    assert "PermanentError" in outcome["error"] and "no output" in outcome["no_output"]


def test_show_json_of_a_completed_run_has_its_output(db: tuple[Path, str, str, str]) -> None:
    path, _, completed, _ = db
    outcome = _json("show", completed, "--json", "--db", str(path))["outcome"]
    assert outcome == {
        "output": "done after first=True",
        "output_repr": None,
        "error": None,
        "no_output": None,
    }


def test_show_json_gives_the_repr_of_an_output_json_cannot_hold(
    db: tuple[Path, str, str, str],
) -> None:
    path, _, _, pair = db
    outcome = _json("show", pair, "--json", "--db", str(path))["outcome"]
    assert outcome["output"] is None and outcome["no_output"] is None
    assert outcome["output_repr"] == repr(("a", b"\x00"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "--json"), "no checkpoint database"),
        (("show", "no-such-run", "--json"), "no checkpoint database"),
    ],
)
def test_json_errors_exit_1_with_the_message_on_stderr_only(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = actorflow(*args, "--db", str(tmp_path / "missing.db"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"actorflow {args[0]}: ") and message in result.stderr


def test_show_json_of_an_unknown_run_exits_1_with_nothing_on_stdout(
    db: tuple[Path, str, str, str],
) -> None:
    result = actorflow("show", "no-such-run", "--json", "--db", str(db[0]))
    assert result.returncode == 1 and result.stdout == ""
    assert "unknown run" in result.stderr


def test_status_json_has_the_stats_of_every_node() -> None:
    release, recorder = threading.Event(), EventRecorder()

    def held(ctx: Any) -> str:
        if not release.wait(10):
            raise TimeoutError("never released")
        return "done"

    with ActorSystem("coord", listen="tcp://127.0.0.1:0", plaintext=True) as coordinator:
        seed = str(coordinator.address)
        handle = coordinator.run(task(held), {}, observers=[recorder])
        recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "held")
        try:
            status = _json("status", "--join", seed, "--plaintext", "--json")
        finally:
            release.set()
        handle.result(10)
    assert status["unanswered"] == []
    (node,) = status["nodes"]
    assert set(node) == NODE_KEYS
    assert node["node"] == "coord" and node["address"] == seed
    assert node["members"]["coord"] == "up"
    (run,) = node["runs"]
    assert set(run) == NODE_RUN_KEYS
    assert (run["run_id"], run["state"], run["paused"]) == (handle.id, "Running", False)


def test_status_json_without_keys_or_plaintext_is_bad_usage() -> None:
    result = actorflow("status", "--join", "tcp://127.0.0.1:9", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert "actorflow status: error: give --keys DIR (CURVE) or --plaintext" in result.stderr
