"""The actorflow command line against a real SQLite checkpoint file and real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime import node_command
from runtime._cli import build_parser  # no public name: the CLI's own parser
from tests.support import actorflow

pytestmark = pytest.mark.timeout(60)


def test_runs_lists_the_recorded_run_with_its_state(failed_run: tuple[Path, str, Path]) -> None:
    db, run_id, _ = failed_run
    result = actorflow("runs", "--db", str(db))
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith(run_id))
    assert "cli-demo" in line and "Failed" in line and "1/2" in line


def test_show_prints_each_step_with_state_attempts_node_and_error(
    failed_run: tuple[Path, str, Path],
) -> None:
    db, run_id, _ = failed_run
    result = actorflow("show", run_id, "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "workflow   cli-demo" in result.stdout
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[8:] if line.strip()}
    assert "Completed" in rows["first"]
    assert "Failed" in rows["fragile"] and "marker" in rows["fragile"]
    assert "NODE" in result.stdout
    assert rows["first"].split()[3] == rows["fragile"].split()[3] == "cli-test"  # who ran it


def test_resume_after_the_cause_is_fixed_continues_without_rerunning_completed_steps(
    failed_run: tuple[Path, str, Path],
) -> None:
    db, run_id, marker = failed_run
    marker.unlink()  # a person fixes the cause
    result = actorflow("resume", run_id, "--app", "tests.cli.cli_app", "--db", str(db))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recorded, not rerun" in result.stdout
    log = (db.parent / "side-effects.log").read_text().split()
    assert log == ["first", "fragile", "fragile", "last"]  # first ran once, ever
    assert "Completed" in actorflow("runs", "--db", str(db)).stdout


def test_show_takes_a_unique_prefix_of_a_run_id(failed_run: tuple[Path, str, Path]) -> None:
    db, run_id, _ = failed_run
    result = actorflow("show", run_id[:5], "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert f"run        {run_id}" in result.stdout


# Issue 9: a task's SystemExit(3) used to escape result() and exit `actorflow resume` with 3.
def test_a_task_raising_system_exit_fails_the_resume_with_the_documented_exit_code(
    failed_run: tuple[Path, str, Path],
) -> None:
    db, run_id, marker = failed_run
    marker.unlink()
    Path(str(marker) + ".exit").touch()
    result = actorflow("resume", run_id, "--app", "tests.cli.cli_app", "--db", str(db))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "raised SystemExit: 3" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "nope"), 1, "no checkpoint database"),
        (("frobnicate",), 2, "invalid choice"),
        (("resume", "x"), 2, "--app"),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_code(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = actorflow(*args, "--db", str(tmp_path / "missing.db"))
    assert result.returncode == code
    assert message in result.stderr
    assert not (tmp_path / "missing.db").exists()  # reading never creates a database


def test_show_of_an_unknown_run_names_it(failed_run: tuple[Path, str, Path]) -> None:
    db, _, _ = failed_run
    result = actorflow("show", "no-such-run", "--db", str(db))
    assert result.returncode == 1
    assert "run no-such-run" in result.stderr and "unknown run" in result.stderr


def test_resume_with_an_app_that_cannot_be_imported_is_refused(
    failed_run: tuple[Path, str, Path],
) -> None:
    db, run_id, _ = failed_run
    result = actorflow("resume", run_id, "--app", "no_such_module_here", "--db", str(db))
    assert result.returncode == 1
    assert "cannot be imported" in result.stderr


def test_node_command_is_what_the_node_cli_parses(tmp_path: Path) -> None:
    argv = node_command(
        "w1",
        join=["tcp://127.0.0.1:7100", "tcp://127.0.0.1:7101"],
        apps=["examples.etl", "cluster_app"],
        keys=tmp_path,
        drain_timeout=2.5,
    )
    assert argv[:4] == [sys.executable, "-m", "runtime._cli", "node"]
    args = build_parser().parse_args(argv[3:])
    assert (args.command, args.name, args.listen) == ("node", "w1", "tcp://127.0.0.1:0")
    assert args.join == ["tcp://127.0.0.1:7100", "tcp://127.0.0.1:7101"]
    assert args.app == ["examples.etl", "cluster_app"]
    assert (args.keys, args.plaintext, args.drain_timeout) == (tmp_path, False, 2.5)
    plain = build_parser().parse_args(node_command("w2", plaintext=True)[3:])
    assert (plain.keys, plain.plaintext, plain.join) == (None, True, [])
