"""The rate limiter example: a singleton in daemon processes, clients in others, kill -9."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.actors_remote.procs import START_TIMEOUT
from tests.support import ROOT


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "examples.rate_limiter", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # the daemon prints its "up" line first
    assert line.startswith("daemon "), line
    return line


def _client(seed: str, store: Path, requests: int) -> list[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.rate_limiter",
            "client",
            "--join",
            seed,
            "--store",
            str(store),
            "--requests",
            str(requests),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT * 2,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


@pytest.mark.timeout(120)
def test_clients_share_one_limiter_that_survives_a_kill_of_its_daemon(tmp_path: Path) -> None:
    store = tmp_path / "limiter.db"
    daemons: dict[int, tuple[subprocess.Popen[str], str]] = {}
    try:
        first = _start("daemon", "node-1", "--store", str(store))
        seed = _address(_first_line(first))
        daemons[first.pid] = (first, seed)
        second = _start("daemon", "node-2", "--join", seed, "--store", str(store))
        daemons[second.pid] = (second, _address(_first_line(second)))
        lines = _client(seed, store, 3)
        assert lines[:3] == [f"request {i}: allowed" for i in (1, 2, 3)]
        victim, _ = daemons.pop(int(lines[3].split()[-1]))
        victim.kill()
        victim.wait(10)
        [(survivor, address)] = daemons.values()
        lines = _client(address, store, 4)
        # 5 tokens a minute: the 3 taken before the kill are in the snapshot it resumed from.
        assert lines[:4] == [
            "request 1: allowed",
            "request 2: allowed",
            "request 3: refused",
            "request 4: refused",
        ]
        assert int(lines[4].split()[-1]) == survivor.pid
        daemons[victim.pid] = (victim, "")
    finally:
        for process, _ in daemons.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


def _address(line: str) -> str:
    found = re.search(r"up at (\S+)", line)
    assert found is not None, line
    return found.group(1)
