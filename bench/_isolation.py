"""Isolation rows: one noisy peer must not starve the others (issue 14).

Four processes over tcp loopback: the node (``python -m bench._isolation
node``: an ``Echo`` actor named ``echo``), two noisy peers (``python -m
bench._isolation flood ADDRESS [idle]``: on ``start`` it tells ``node/nobody``,
an actor that does not exist, as fast as its outbox takes them, until ``stop``;
on ``burst N``, N such tells) and this process, a legitimate member asking
``echo``. One noisy peer runs at normal priority, the other (``idle``) under
Linux's ``SCHED_IDLE`` policy, all its threads.

Why two: on this one machine the flooder shares the node's CPUs, which a peer
on another host would not. A busy thread that sleeps now and then (the flooder
hands its tells to its I/O thread) is not preempted by a woken thread on this
kernel until the next tick (4 ms at HZ=250), and the idle CPU does not take the
woken thread over meanwhile: the legitimate ask's threads (its own, the node's
ZeroMQ and I/O threads, the echo actor) wait behind the flooder's, whatever the
node does (measured with ftrace: see README, "isolation"). A ``SCHED_IDLE``
flooder gets all the CPU nobody else wants (its flood rate is printed) but
never delays a woken thread, as if it ran on a host of its own.

- legitimate ask round trip p99 (one outstanding) while the ``SCHED_IDLE``
  peer floods, beside the same p99 with no flood, interleaved (target <= 5x);
  the same with the normal-priority flooder (no target: the machine's share);
- the node's CPU time per tell of a burst to an unknown actor (refused, and
  past ``shed_budget`` refusals shed), beside the noisy peer's CPU time per
  tell sent (target <= 1x: a flood costs its sender more than the node it
  floods);
- the node's CPU time per refused ask (``ActorNotFound``: an unknown actor),
  beside its CPU time per successful ask, both with 100 asks outstanding,
  read from ``/proc/<pid>/stat`` of the node process.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pykka

from bench._remote import ROOT, _read_line, _stop
from bench._row import Config, Family, Row, Series, Target, interleaved
from runtime import ActorSystem
from transport import ActorNotFound, OutboxFull, Overloaded

__all__ = ["FAMILY"]

_WINDOW = 100
_TIMEOUT = 60.0
_TICKS = os.sysconf("SC_CLK_TCK")
_MIN_CPU = 0.1  # seconds of the node's CPU a cost figure is read over, at least
_MAX_ROUNDS = 50


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


# -- the other processes --------------------------------------------------------------------


def _node_main() -> int:
    with ActorSystem("node", listen="tcp://127.0.0.1:0", plaintext=True) as system:
        system.spawn(Echo, name="echo")
        print(f"ready {system.address}", flush=True)
        sys.stdin.read()  # until the bench closes our stdin
    return 0


def _flood_main(address: str, idle: bool) -> int:
    if idle:  # before any thread starts: they all inherit the policy
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:  # a sandbox may refuse it: the family fails, saying why
            sys.exit(f"cannot run the flooder under SCHED_IDLE: {exc}")
    name = "noisy-idle" if idle else "noisy"
    with ActorSystem(name, listen="tcp://127.0.0.1:0", join=[address], plaintext=True) as system:
        nobody = system.ref("node/nobody")
        flooding = threading.Event()
        stop = threading.Event()
        starts = [0]  # "start" lines read so far: each one is answered by a "flooding" line
        sent = [0, 0.0]  # tells sent this round, and when it began (monotonic)

        def flood() -> None:
            n, start = 0, 0
            while not stop.is_set():
                if not flooding.wait(0.1):
                    continue
                if start != starts[0]:  # a new round (the last may have ended just now)
                    n, start = 0, starts[0]
                    sent[:] = [0, time.monotonic()]
                with contextlib.suppress(OutboxFull):  # the node does not keep up: go on
                    nobody.tell({"n": n})
                    sent[0] += 1
                n += 1
                if n == 2000:
                    print("flooding", flush=True)

        def drained() -> None:
            """Answered behind every tell of ours the node still holds: then it is idle
            (refused Overloaded while our queue there is still full: ask again)."""
            while True:
                try:
                    nobody.ask("drained?", timeout=_TIMEOUT)
                except ActorNotFound:
                    return
                except Overloaded:
                    time.sleep(0.05)  # our queue there is full: give it time to drain

        thread = threading.Thread(target=flood, daemon=True)
        thread.start()
        print("ready", flush=True)
        for line in sys.stdin:
            if line.startswith("burst "):  # this many tells at once, then wait until handled
                count = int(line.split()[1])
                for n in range(count):
                    nobody.tell({"n": n})  # an OutboxFull here ends the bench: it must not
                drained()
                print(f"sent {count}", flush=True)
            elif line.strip() == "start":
                starts[0] += 1
                flooding.set()
            elif line.strip() == "stop":
                flooding.clear()
                rate = sent[0] / max(time.monotonic() - sent[1], 1e-9)
                drained()
                print(f"idle {rate:.0f}", flush=True)
        stop.set()
        thread.join(5)
    return 0


# -- the bench side ---------------------------------------------------------------------------


class _Process:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._isolation", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self._stdout: IO[str] = self.process.stdout
        self._stdin: IO[str] = self.process.stdin

    def send(self, line: str) -> None:
        self._stdin.write(line + "\n")
        self._stdin.flush()

    def read_line(self, prefix: str, timeout: float = _TIMEOUT) -> str:
        return _read_line(self._stdout, prefix, timeout)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime

    def stop(self) -> None:
        _stop(self.process, 15)


def _p99_ms(system: ActorSystem, asks: int) -> float:
    echo = system.ref("node/echo")
    took = []
    for n in range(asks):
        started = time.perf_counter()
        echo.ask(n, timeout=_TIMEOUT)
        took.append(time.perf_counter() - started)
        time.sleep(0.002)  # paced like a member asking now and then, not a flood of its own
    took.sort()
    return took[min(len(took) - 1, int(0.99 * len(took)))] * 1000


def _p99_under_flood(system: ActorSystem, noisy: _Process, asks: int, rates: list[float]) -> float:
    """The p99 while ``noisy`` floods; its flood rate (tells/s sent) goes to ``rates``."""
    noisy.send("start")
    noisy.read_line("flooding")
    try:
        return _p99_ms(system, asks)
    finally:
        noisy.send("stop")
        rates.append(float(noisy.read_line("idle").split()[1]))


def _wait_unshed(system: ActorSystem) -> None:
    """Until the node sheds no peer's tells (a shedding lasts up to two windows)."""
    deadline = time.monotonic() + _TIMEOUT
    while system.ref("node/$system").ask({"op": "stats"}, timeout=_TIMEOUT)["shed_peers"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the node still sheds a peer's tells after {_TIMEOUT}s")
        time.sleep(0.1)  # polling the node's stats: nothing signals the end of a shedding


def _cpu_per_ask_us(system: ActorSystem, node: _Process, path: str, asks: int) -> float:
    """The node's CPU time per ask to ``path``, ``_WINDOW`` asks outstanding; rounds of
    ``asks`` until the node spent ``_MIN_CPU`` s (``/proc`` counts in 10 ms ticks)."""
    ref = system.ref(f"node/{path}")
    before = node.cpu_seconds()
    sent = 0
    for _ in range(_MAX_ROUNDS):
        pending: set[concurrent.futures.Future[Any]] = set()
        for n in range(asks):
            if len(pending) >= _WINDOW:
                _done, pending = concurrent.futures.wait(
                    pending, _TIMEOUT, concurrent.futures.FIRST_COMPLETED
                )
            pending.add(ref.ask_future(n, timeout=_TIMEOUT))
        concurrent.futures.wait(pending, _TIMEOUT)
        sent += asks
        if node.cpu_seconds() - before >= _MIN_CPU:
            break
    return (node.cpu_seconds() - before) / sent * 1e6


def _cpu_per_tell_us(node: _Process, noisy: _Process, tells: int) -> tuple[float, float]:
    """CPU time per tell of the node refusing a burst of ``tells`` to no actor, and of
    the noisy peer sending them (both processes, all threads, until the node drained)."""
    node_before, noisy_before = node.cpu_seconds(), noisy.cpu_seconds()
    noisy.send(f"burst {tells}")
    noisy.read_line("sent ", timeout=_TIMEOUT * 5)
    node_spent = node.cpu_seconds() - node_before
    noisy_spent = noisy.cpu_seconds() - noisy_before
    return node_spent / tells * 1e6, noisy_spent / tells * 1e6


def run(config: Config) -> list[Row]:
    asks = config.size(1000, 100)
    costed = config.size(20_000, 1000)
    node = _Process("node")
    flooders: list[_Process] = []
    try:
        address = node.read_line("ready ").split()[1]
        flooders.append(_Process("flood", address))
        flooders.append(_Process("flood", address, "idle"))
        for flooder in flooders:
            flooder.read_line("ready")
        noisy, idle = flooders
        rates: dict[str, list[float]] = {"noisy": [], "idle": []}
        with ActorSystem(
            "legit", listen="tcp://127.0.0.1:0", join=[address], plaintext=True
        ) as system:
            quiet, apart, shared = interleaved(
                config.repeats,
                [
                    ("no flood", lambda: _p99_ms(system, asks)),
                    ("idle flood", lambda: _p99_under_flood(system, idle, asks, rates["idle"])),
                    ("flood", lambda: _p99_under_flood(system, noisy, asks, rates["noisy"])),
                ],
            )
            burst = config.size(200_000, 20_000)
            costs = []
            for _ in range(config.repeats):
                _wait_unshed(system)  # each burst is refused, then shed, from the start
                costs.append(_cpu_per_tell_us(node, noisy, burst))
            refused, answered = interleaved(
                config.repeats,
                [
                    ("refused ask", lambda: _cpu_per_ask_us(system, node, "nobody", costed)),
                    ("echo ask", lambda: _cpu_per_ask_us(system, node, "echo", costed)),
                ],
            )
    finally:
        for flooder in flooders:
            flooder.stop()
        node.stop()

    def rate(which: str) -> str:
        return f"flood rate {statistics.median(rates[which]) / 1000:.0f}k tells/s sent"

    # The row means something only if the SCHED_IDLE peer flooded as hard as the other.
    flooded = statistics.median(rates["idle"]) >= 0.5 * statistics.median(rates["noisy"])
    return [
        Row(
            "isolation",
            f"legitimate ask p99 while a peer floods tells to an unknown actor ({asks} asks)",
            "ms",
            Series("p99 under the flood", apart.samples),
            (Series("p99 with no flood", quiet.samples),),
            Target("ratio", "<=", 5.0),
            note=f"the flooder at SCHED_IDLE, as on a host of its own; {rate('idle')}"
            + ("" if flooded else f" against {rate('noisy')} at normal priority: no flood"),
            unavailable=None if flooded else "ERROR",
        ),
        Row(
            "isolation",
            "the same p99, the flooder sharing this machine's CPUs at normal priority",
            "ms",
            Series("p99 under the flood", shared.samples),
            (Series("p99 with no flood", quiet.samples),),
            note=f"no target: the kernel's share of the tail (see the docstring); {rate('noisy')}",
        ),
        Row(
            "isolation",
            f"node CPU per tell of a peer's burst of {burst} tells to an unknown actor",
            "us",
            Series("node, refusing then shedding", tuple(node_us for node_us, _ in costs)),
            (Series("the peer, sending", tuple(sender_us for _, sender_us in costs)),),
            Target("ratio", "<=", 1.0),
            note="both processes' CPU from /proc; a flood must cost its sender more than the node",
        ),
        Row(
            "isolation",
            f"node CPU per refused ask (unknown actor), {_WINDOW} outstanding ({costed} asks)",
            "us",
            Series("refused ask (ActorNotFound)", refused.samples),
            (Series("successful ask (echo)", answered.samples),),
            Target("ratio", "<=", 1.5),
        ),
    ]


FAMILY = Family("isolation", run)


if __name__ == "__main__":
    if sys.argv[1] == "node":
        sys.exit(_node_main())
    if sys.argv[1] == "flood":
        sys.exit(_flood_main(sys.argv[2], sys.argv[3:] == ["idle"]))
    sys.exit(f"usage: python -m bench._isolation node | flood ADDRESS [idle] (got {sys.argv[1:]})")
