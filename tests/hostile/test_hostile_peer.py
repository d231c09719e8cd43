"""One noisy or hostile peer cannot starve the others (issue 14), with real processes.

Three processes: the node under attack (``_victim``: ``serve`` with an echo
actor), a peer flooding it (``_flooder``: raw zmq + msgpack, a member that
heartbeats), and this test process, a legitimate member asking ``echo`` over
and over. The legitimate asks must keep being answered, within a generous
bound (the machine is shared and loaded), while the flooder sends each kind of
bad or unwelcome traffic; only the flooder is refused with ``Overloaded``;
SIGUSR1 during a flood dumps the stacks and leaves the node running.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import ActorSystem
from runtime._stats import SystemStats
from tests.hostile._flooder import KINDS
from tests.support import ROOT, LineProcess, wait_until
from transport import Overloaded

pytestmark = pytest.mark.timeout(180)

START = 30.0
# Generous: a legitimate ask takes 1-2 ms on an idle node; under the flood, on a
# 2-core machine shared with other test runs, it must still come back well within this.
ASK_BOUND = 3.0


class Process(LineProcess):
    """A child ``python -m MODULE``; a missing line fails the test, naming what it printed."""

    def __init__(self, module: str, *args: str) -> None:
        super().__init__([sys.executable, "-m", module, *args], name=module)

    def wait_line(self, prefix: str, timeout: float = START) -> str:
        line = super().wait_line(prefix, timeout)
        if line is None:
            raise AssertionError(f"no line {prefix!r} within {timeout}s:\n{self.output()}")
        return line

    def wait_count(self, prefix: str, count: int, timeout: float) -> None:
        def reached(lines: list[str]) -> bool | None:
            return sum(1 for line in lines if line.startswith(prefix)) >= count or None

        if self.wait_lines(reached, timeout) is None:
            raise AssertionError(f"{prefix!r} not seen {count} times:\n{self.output()}")


class Victim:
    def __init__(self, *args: str) -> None:
        self.proc = Process("tests.hostile._victim", *args)
        self.address = self.proc.wait_line("READY ").split()[1]


@pytest.fixture
def victim_factory() -> Iterator[Any]:
    started: list[Process] = []

    def make(*args: str) -> Victim:
        victim = Victim(*args)
        started.append(victim.proc)
        return victim

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def flooders() -> Iterator[Any]:
    started: list[Process] = []

    def make(address: str, kinds: str, seconds: float, name: str = "flooder") -> Process:
        proc = Process(
            "tests.hostile._flooder",
            address,
            "--kinds",
            kinds,
            "--seconds",
            str(seconds),
            "--name",
            name,
        )
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def member(victim_factory: Any) -> Iterator[Any]:
    systems: list[ActorSystem] = []

    def make(victim: Victim) -> ActorSystem:
        system = ActorSystem(
            "legit", listen="tcp://127.0.0.1:0", plaintext=True, join=[victim.address]
        )
        systems.append(system)
        return system

    yield make
    for system in systems:
        system.shutdown()


def ask_until(system: ActorSystem, flooder: Process) -> list[float]:
    """Ask the victim's echo every 20 ms until the flooder is done; each ask's seconds."""
    echo = system.ref("victim/echo")
    took: list[float] = []
    n = 0
    while flooder.process.poll() is None:
        n += 1
        started = time.monotonic()
        assert echo.ask(n, timeout=ASK_BOUND * 3) == ["echo", n]
        took.append(time.monotonic() - started)
        time.sleep(0.02)  # pacing between asks, not a wait for something
    return took


def summary(flooder: Process) -> dict[str, Any]:
    return dict(json.loads(flooder.wait_line("SUMMARY ").split(" ", 1)[1]))


def victim_stats(system: ActorSystem) -> SystemStats:
    answer = system.ref("victim/$system").ask({"op": "stats"}, timeout=10)
    return SystemStats.from_wire(dict(answer))


def test_a_member_keeps_being_answered_while_a_peer_floods_every_kind(
    victim_factory: Any, flooders: Any, member: Any
) -> None:
    victim = victim_factory()
    system = member(victim)
    assert system.ref("victim/echo").ask(0, timeout=10) == ["echo", 0]
    flooder = flooders(victim.address, ",".join(KINDS), 0.8)
    flooder.wait_line("JOINED")
    took = ask_until(system, flooder)
    result = summary(flooder)
    assert set(result["sent"]) == set(KINDS), result
    assert len(took) >= 20, took
    assert max(took) < ASK_BOUND, sorted(took)[-5:]
    assert victim.proc.process.poll() is None
    # the flooder's asks to nothing were refused (cheaply), not left unanswered
    assert result["answers"].get("runtime.ActorNotFound", 0) > 0, result
    refusals = {name for name in result["answers"] if name.startswith("runtime.")}
    # (its asks past its bound there were refused Overloaded: asks of other kinds too)
    assert refusals <= {"runtime.ActorNotFound", "runtime.ProtocolError", "runtime.Overloaded"}
    # Its tells came last, behind its own $system asks: whether they met its full dispatch
    # queue (dropped dispatch_full) or an unknown actor depends on the machine's pace. So
    # a second peer floods tells to an unknown actor alone: each is dropped and counted.
    teller = flooders(victim.address, "tell_unknown", 0.5, name="teller")
    teller.wait_line("JOINED")
    assert set(summary(teller)["sent"]) == {"tell_unknown"}
    assert wait_until(
        lambda: victim_stats(system).dropped_by_peer.get("teller", {}).get("unknown_actor", 0) > 0,
        timeout=60,
        interval=0.5,
    )
    stats = victim_stats(system)
    assert stats.frames_dropped.get("malformed", 0) > 0, stats.frames_dropped
    assert stats.dropped_by_peer.get("flooder"), stats.dropped_by_peer  # counted against it
    assert "legit" not in stats.dropped_by_peer, stats.dropped_by_peer
    assert stats.log_suppressed.get("unknown_actor@teller", 0) > 0, stats.log_suppressed
    # actorflow status shows them too, as text and as JSON
    command = [sys.executable, "-m", "runtime._cli", "status", "--join", victim.address]
    command += ["--plaintext", "--timeout", "20"]
    # (exit 1 if the flooder, gone without leaving, is still listed up and asked)
    text = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert "dropped from flooder:" in text.stdout, text.stdout + text.stderr
    assert "log lines suppressed" in text.stdout, text.stdout
    as_json = subprocess.run(
        [*command, "--json"], check=False, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    nodes = {node["node"]: node for node in json.loads(as_json.stdout)["nodes"]}
    assert nodes["victim"]["dropped_by_peer"]["teller"]["unknown_actor"] > 0, nodes["victim"]
    assert nodes["victim"]["log_suppressed"]["unknown_actor@teller"] > 0, nodes["victim"]
    # per-message lines are rate-limited: a few WARNINGs, not one per bad frame
    warnings = [line for line in victim.proc.lines if line.startswith("[victim]")]
    assert len(warnings) < 200, warnings[-20:]


def test_a_peer_flooding_an_unknown_actor_is_shed_and_status_says_so(
    victim_factory: Any, flooders: Any, member: Any
) -> None:
    """Past its budget of refused tells, the teller's tells to ``nobody`` are shed
    (dropped unread, counted ``shed`` against it); the member is answered all the
    while; ``actorflow status`` names the peer shed; the shedding ends after the flood."""
    victim = victim_factory("--shed-budget", "500")
    system = member(victim)
    assert system.ref("victim/echo").ask(0, timeout=10) == ["echo", 0]
    teller = flooders(victim.address, "tell_unknown", 60.0, name="teller")
    teller.wait_line("JOINED")
    assert wait_until(
        lambda: victim_stats(system).dropped_by_peer.get("teller", {}).get("shed", 0) > 0,
        timeout=60,
        interval=0.2,
    )
    echo = system.ref("victim/echo")
    for n in range(20):
        started = time.monotonic()
        assert echo.ask(n, timeout=ASK_BOUND * 3) == ["echo", n]
        assert time.monotonic() - started < ASK_BOUND
    stats = victim_stats(system)
    assert stats.dropped_by_peer["teller"]["unknown_actor"] > 500, stats.dropped_by_peer
    assert "legit" not in stats.dropped_by_peer, stats.dropped_by_peer
    command = [sys.executable, "-m", "runtime._cli", "status", "--join", victim.address]
    command += ["--plaintext", "--timeout", "20", "--json"]
    as_json = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    nodes = {node["node"]: node for node in json.loads(as_json.stdout)["nodes"]}
    assert nodes["victim"]["shed_peers"] == ["teller"], nodes["victim"]
    assert nodes["victim"]["dropped_by_peer"]["teller"]["shed"] > 0, nodes["victim"]
    assert (
        "shedding tells to unknown actors from teller"
        in SystemStats.from_wire(nodes["victim"]).render()
    )
    teller.stop()
    assert wait_until(lambda: victim_stats(system).shed_peers == [], timeout=30, interval=0.2)


def test_the_flooding_peer_gets_overloaded_and_the_others_do_not(
    victim_factory: Any, flooders: Any, member: Any
) -> None:
    victim = victim_factory("--per-sender", "20")
    system = member(victim)
    assert system.ref("victim/echo").ask(0, timeout=10) == ["echo", 0]
    # asks to $system queue for the dispatch thread (asks to no actor are refused at once)
    flooder = flooders(victim.address, "bad_op,spawn_unregistered,bad_op", 1.5)
    flooder.wait_line("JOINED")
    try:
        took = ask_until(system, flooder)
    except Overloaded as exc:  # pragma: no cover - the failure this test exists for
        raise AssertionError(f"the legitimate member was refused: {exc}") from exc
    result = summary(flooder)
    assert result["answers"].get("runtime.Overloaded", 0) > 0, result
    assert max(took) < ASK_BOUND, sorted(took)[-5:]
    stats = victim_stats(system)
    assert stats.dropped_by_peer["flooder"].get("dispatch_full", 0) > 0, stats.dropped_by_peer
    assert "legit" not in stats.dropped_by_peer, stats.dropped_by_peer


def test_sigusr1_during_a_flood_dumps_the_stacks_and_leaves_the_node_running(
    victim_factory: Any, flooders: Any, member: Any
) -> None:
    victim = victim_factory()
    system = member(victim)
    flooder = flooders(victim.address, "deep,deep_ext,deep", 1.5)
    flooder.wait_line("FLOODING deep_ext")
    for count in (1, 2, 3):
        victim.proc.process.send_signal(signal.SIGUSR1)
        victim.proc.wait_count("-- end of stack dump", count, timeout=15)
    summary(flooder)
    assert victim.proc.process.poll() is None, victim.proc.output()[-3000:]
    dump = victim.proc.output()
    assert '"actorflow-io-victim"' in dump and '"actorflow-dispatch-victim"' in dump
    assert system.ref("victim/echo").ask("still there", timeout=10) == ["echo", "still there"]


HELD_BOUND = 4 << 20  # what the node holds of frames read but not handled yet, at most...
FRAME = 10_000  # ...plus a frame (a batch frame is at most max_containers bytes)


def test_what_a_flooder_makes_the_node_hold_stays_bounded(
    victim_factory: Any, flooders: Any, member: Any
) -> None:
    victim = victim_factory()
    system = member(victim)
    echo = system.ref("victim/echo")
    assert echo.ask(0, timeout=10) == ["echo", 0]
    flooder = flooders(victim.address, "replayed_batch", 3.0)
    flooder.wait_line("FLOODING replayed_batch")
    held: list[int] = []
    took: list[float] = []
    while flooder.process.poll() is None:
        held.append(victim_stats(system).held_bytes)
        started = time.monotonic()
        assert echo.ask(len(held), timeout=ASK_BOUND * 3) == ["echo", len(held)]
        took.append(time.monotonic() - started)
    summary(flooder)
    # the flood outran the node (it held frames back) and yet never held past the bound
    assert max(held) > HELD_BOUND // 4, held
    assert max(held) <= HELD_BOUND + FRAME, max(held)
    assert max(took) < ASK_BOUND, sorted(took)[-5:]
    assert wait_until(lambda: victim_stats(system).held_bytes == 0, timeout=60, interval=0.2)
    assert victim.proc.process.poll() is None
