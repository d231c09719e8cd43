"""What a new user trips on: bad usage exits 2 with ``actorflow CMD: error:``, clear
messages instead of tracebacks, and one duration format everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import actorflow

pytestmark = pytest.mark.timeout(60)

DURATION = r"\d+\.\d{3}(ms|s)"  # 0.386ms, 12.346ms, 1.000s, 3723.457s
SHED = ("--shed-budget", "-1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("node", "--name", "n1", "--plaintext"), "give --listen, --join or both"),
        (
            ("node", "--name", "n1", "--listen", "tcp://127.0.0.1:0"),
            "give --keys DIR (CURVE) or --plaintext (loopback only)",
        ),
        (("status", "--join", "tcp://127.0.0.1:9"), "give --keys DIR (CURVE) or --plaintext"),
        (
            ("control", "r1", "pause", "--join", "tcp://127.0.0.1:9"),
            "give --keys DIR (CURVE) or --plaintext",
        ),
        (
            ("node", "--name", "n1", "--plaintext", "--listen", "tcp://0.0.0.0:7199"),
            "--listen 'tcp://0.0.0.0:7199' is not a loopback address",
        ),
        (
            ("status", "--plaintext", "--join", "coord@tcp://10.1.2.3:7100"),
            "--join 'tcp://10.1.2.3:7100' is not a loopback address",
        ),
        (("node", "--name", "n1", "--plaintext", "--join", "nowhere"), "--join: endpoint must"),
        (
            ("node", "--name", "n1", "--plaintext", "--listen", "tcp://127.0.0.1:0", *SHED),
            "--shed-budget must be >= 0 (0: never shed), got -1",
        ),
    ],
)
def test_bad_usage_seen_after_parsing_exits_2_like_argparse(
    args: tuple[str, ...], message: str
) -> None:
    result = actorflow(*args, timeout=20)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"actorflow {args[0]}: error: {message}" in result.stderr
    assert result.stderr.startswith("usage: actorflow " + args[0])
    assert result.stdout == ""


def test_plaintext_off_loopback_tells_a_cli_user_about_keys_not_the_python_api() -> None:
    result = actorflow("node", "--name", "n1", "--plaintext", "--listen", "tcp://0.0.0.0:7199")
    assert result.returncode == 2
    assert "--keys DIR" in result.stderr and "load_security" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("resume", "r1", "--app", "tests.cli.bad_app", "--db", "unused.db"),
        ("node", "--name", "n1", "--plaintext", "--listen", "tcp://127.0.0.1:0", "--app"),
    ],
    ids=["resume", "node"],
)
def test_an_app_whose_workflows_is_not_a_list_is_a_clear_error(args: tuple[str, ...]) -> None:
    argv = [*args, "tests.cli.bad_app"] if args[-1] == "--app" else list(args)
    result = actorflow(*argv, timeout=20)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    expected = "--app 'tests.cli.bad_app': workflows() returned int, not a list of workflows"
    assert f"actorflow {args[0]}: {expected}" in result.stderr


def test_show_and_resume_print_durations_the_same_way(failed_run: tuple[Path, str, Path]) -> None:
    db, run_id, marker = failed_run
    shown = actorflow("show", run_id, "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines() if line.startswith("  first ")]
    assert rows and re.fullmatch(DURATION, rows[0][6]), shown.stdout  # after the node column
    marker.unlink()
    resumed = actorflow("resume", run_id, "--app", "tests.cli.cli_app", "--db", str(db))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    lines = {line.split()[0]: line for line in resumed.stdout.splitlines() if line[:2] == "  "}
    assert "recorded, not rerun" in lines["first"]
    for step in ("fragile", "last"):
        assert re.search(rf"1 attempt\(s\), {DURATION}$", lines[step]), resumed.stdout


def test_runs_says_its_steps_column_counts_done_of_recorded(
    failed_run: tuple[Path, str, Path],
) -> None:
    db, run_id, _ = failed_run
    result = actorflow("runs", "--db", str(db))
    header, row = result.stdout.splitlines()[0], result.stdout.splitlines()[1]
    assert "DONE/REC" in header and row.startswith(run_id) and " 1/2 " in row
