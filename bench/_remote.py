"""Remote messaging rows: tell and ask between two processes over tcp loopback.

Every actorflow figure is measured beside the raw building blocks in the same
run, interleaved:

- tell throughput (messages the remote actor actually received per second)
  vs raw pykka tell in one process (the delivery ceiling) and raw pyzmq
  PUSH/PULL + msgpack between the same two processes;
- ask round trip p50 / p99, one outstanding, vs raw DEALER/ROUTER + msgpack;
- ask throughput with 100 outstanding vs raw DEALER/ROUTER with 100 outstanding;
- failover: ``kill -9`` of the worker running a step until the step's
  ``Started`` event arrives from the other worker (coordinator + 2 worker
  processes), beside the detector bound of the default heartbeat settings.

The peer is a separate interpreter started with ``subprocess`` (never a fork
of this threaded process): ``python -m bench._remote peer SEED`` joins this
process's ActorSystem, spawns ``Echo`` as ``peer/echo``, and serves raw
PULL/PUSH and ROUTER sockets on one thread of its own. It exits when its stdin
closes.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, cast

import msgpack
import pykka
import zmq

from bench._failover_app import workflows
from bench._row import Config, Family, Row, Series, Target, interleaved
from runtime import ActorSystem, node_command
from runtime import events as ev
from runtime.cluster import Ref
from transport import TransportSettings

__all__ = ["FAMILY"]

ROOT = Path(__file__).resolve().parent.parent
_COUNT = "count"
_WINDOW = 100  # outstanding asks in the throughput rows
_TIMEOUT = 30.0


class Echo(pykka.ThreadingActor):
    """Counts every message; answers ``"count"`` with the count, anything else with itself."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == _COUNT:
            return self.count
        self.count += 1
        return message


# -- the peer process ---------------------------------------------------------------------


def _serve_raw(context: zmq.Context[Any], ready: threading.Event, info: dict[str, str]) -> None:
    """Raw baseline sockets, all owned by this thread: PULL->PUSH counter and ROUTER echo."""
    pull = context.socket(zmq.PULL)
    push = context.socket(zmq.PUSH)
    router = context.socket(zmq.ROUTER)
    control = context.socket(zmq.PAIR)
    for socket in (pull, push, router, control):
        socket.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    pull.bind("tcp://127.0.0.1:0")
    push.bind("tcp://127.0.0.1:0")
    router.bind("tcp://127.0.0.1:0")
    control.bind("inproc://bench-raw-stop")
    info["pull"] = pull.getsockopt_string(zmq.LAST_ENDPOINT)
    info["push"] = push.getsockopt_string(zmq.LAST_ENDPOINT)
    info["router"] = router.getsockopt_string(zmq.LAST_ENDPOINT)
    ready.set()
    poller = zmq.Poller()
    for socket in (pull, router, control):
        poller.register(socket, zmq.POLLIN)
    count = 0
    try:
        while True:
            for socket, _ in poller.poll():
                if socket is control:
                    return
                if socket is pull:
                    message = msgpack.unpackb(pull.recv())
                    if message == _COUNT:
                        push.send(msgpack.packb(count))
                    else:
                        count += 1
                else:
                    identity, payload = router.recv_multipart()
                    router.send_multipart([identity, msgpack.packb(msgpack.unpackb(payload))])
    finally:
        for socket in (pull, push, router, control):
            socket.close()


def _peer_main(seed: str) -> int:
    context: zmq.Context[Any] = zmq.Context()
    info: dict[str, str] = {}
    ready = threading.Event()
    raw = threading.Thread(target=_serve_raw, args=(context, ready, info), daemon=True)
    raw.start()
    ready.wait(10)
    with ActorSystem("peer", listen="tcp://127.0.0.1:0", join=[seed], plaintext=True) as system:
        system.spawn(Echo, name="echo")
        print(f"ready {info['pull']} {info['push']} {info['router']}", flush=True)
        sys.stdin.read()  # until the bench closes our stdin
    stop = context.socket(zmq.PAIR)
    stop.setsockopt(zmq.LINGER, 0)
    stop.connect("inproc://bench-raw-stop")
    stop.send(b"stop")
    raw.join(5)
    stop.close()
    context.term()
    return 0


# -- helpers on the bench side ---------------------------------------------------------------


def _read_line(stream: IO[str], prefix: str, timeout: float) -> str:
    """The first line of ``stream`` starting with ``prefix`` (bounded wait, reader thread)."""
    found: list[str] = []
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in stream:
            seen.append(line.rstrip())
            if line.startswith(prefix):
                found.append(line.rstrip())
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout) or not found:
        tail = "\n".join(seen[-10:])
        raise RuntimeError(f"no {prefix!r} line within {timeout}s; output:\n{tail}")
    return found[0]


def _wait_members(system: ActorSystem, names: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not names <= {n for n, s in system.members().items() if s == "up"}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sorted(names)} did not join within {timeout}s")
        time.sleep(0.02)  # polling a member table, bounded by the deadline


def _stop(process: subprocess.Popen[str], timeout: float = 10.0) -> None:
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- measures ---------------------------------------------------------------------------------


class _Measures:
    """Every measure of the messaging rows, against one peer process."""

    def __init__(self, ref: Ref, endpoints: list[str], context: zmq.Context[Any]) -> None:
        self.ref = ref
        self.drops = 0
        self.push = context.socket(zmq.PUSH)
        self.counts = context.socket(zmq.PULL)
        self.dealer = context.socket(zmq.DEALER)
        for socket in (self.push, self.counts, self.dealer):
            socket.setsockopt(zmq.LINGER, 0)
        self.push.connect(endpoints[0])
        self.counts.connect(endpoints[1])
        self.dealer.connect(endpoints[2])
        self.local = Echo.start()

    def close(self) -> None:
        self.local.stop()
        for socket in (self.push, self.counts, self.dealer):
            socket.close()

    # tell throughput: messages received per second, drained by an ask/count behind the tells

    def tell_actorflow(self, messages: int) -> float:
        before = self.ref.ask(_COUNT, timeout=_TIMEOUT)
        started = time.perf_counter()
        for index in range(messages):
            self.ref.tell(index)
        received = self.ref.ask(_COUNT, timeout=_TIMEOUT) - before
        elapsed = time.perf_counter() - started
        self.drops += messages - received
        return float(received / elapsed)

    def tell_pykka(self, messages: int) -> float:
        before = cast(int, self.local.ask(_COUNT, timeout=_TIMEOUT))
        started = time.perf_counter()
        for index in range(messages):
            self.local.tell(index)
        after = cast(int, self.local.ask(_COUNT, timeout=_TIMEOUT))
        received = after - before
        return float(received / (time.perf_counter() - started))

    def _raw_count(self) -> int:
        self.push.send(msgpack.packb(_COUNT))
        if not self.counts.poll(_TIMEOUT * 1000):
            raise RuntimeError("raw peer did not report its count")
        count: int = msgpack.unpackb(self.counts.recv())
        return count

    def tell_raw(self, messages: int) -> float:
        before = self._raw_count()
        started = time.perf_counter()
        for index in range(messages):
            self.push.send(msgpack.packb(index))
        received = self._raw_count() - before
        return float(received / (time.perf_counter() - started))

    # ask round trip, one outstanding: list of microseconds

    def ask_actorflow(self, asks: int) -> list[float]:
        latencies = []
        for index in range(asks):
            started = time.perf_counter()
            self.ref.ask(index, timeout=_TIMEOUT)
            latencies.append((time.perf_counter() - started) * 1e6)
        return latencies

    def _raw_recv(self) -> Any:
        if not self.dealer.poll(_TIMEOUT * 1000):
            raise RuntimeError("raw peer did not answer")
        return msgpack.unpackb(self.dealer.recv())

    def ask_raw(self, asks: int) -> list[float]:
        latencies = []
        for index in range(asks):
            started = time.perf_counter()
            self.dealer.send(msgpack.packb(index))
            self._raw_recv()
            latencies.append((time.perf_counter() - started) * 1e6)
        return latencies

    # ask throughput, ``_WINDOW`` outstanding: answers per second

    def window_actorflow(self, asks: int) -> float:
        started = time.perf_counter()
        futures: collections.deque[Any] = collections.deque()
        for index in range(asks):
            if len(futures) >= _WINDOW:
                futures.popleft().result(_TIMEOUT)
            futures.append(self.ref.ask_future(index, timeout=_TIMEOUT))
        for future in futures:
            future.result(_TIMEOUT)
        return asks / (time.perf_counter() - started)

    def window_raw(self, asks: int) -> float:
        started = time.perf_counter()
        outstanding = 0
        for index in range(asks):
            if outstanding >= _WINDOW:
                self._raw_recv()
                outstanding -= 1
            self.dealer.send(msgpack.packb(index))
            outstanding += 1
        for _ in range(outstanding):
            self._raw_recv()
        return asks / (time.perf_counter() - started)


def _latency_rows(config: Config, measures: _Measures, asks: int) -> list[Row]:
    p50: list[list[float]] = [[], []]
    p99: list[list[float]] = [[], []]
    runs = [measures.ask_actorflow, measures.ask_raw]
    for run in runs:
        run(max(10, asks // 10))  # warm-up
    for repetition in range(config.repeats):
        for offset in range(2):
            index = (repetition + offset) % 2
            latencies = runs[index](asks)
            p50[index].append(statistics.median(latencies))
            p99[index].append(_percentile(latencies, 0.99))
    rows = []
    for label, figures in (("p50", p50), ("p99", p99)):
        rows.append(
            Row(
                "remote",
                f"remote ask round trip {label}, one outstanding ({asks} asks)",
                "us",
                Series("actorflow ref.ask", tuple(figures[0])),
                (Series("raw DEALER/ROUTER + msgpack", tuple(figures[1])),),
                Target("ratio", "<=", 2.5),
            )
        )
    return rows


def _messaging_rows(config: Config) -> list[Row]:
    messages = config.size(20_000, 300)
    asks = config.size(2_000, 100)
    window_asks = config.size(20_000, 300)
    with ActorSystem("bench", listen="tcp://127.0.0.1:0", plaintext=True) as system:
        peer = subprocess.Popen(
            [sys.executable, "-m", "bench._remote", "peer", str(system.address)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        context: zmq.Context[Any] = zmq.Context()
        measures: _Measures | None = None
        try:
            assert peer.stdout is not None
            endpoints = _read_line(peer.stdout, "ready ", 30).split()[1:]
            _wait_members(system, {"peer"}, 10)
            measures = _Measures(system.ref("peer/echo"), endpoints, context)
            tell, tell_raw, tell_pykka = interleaved(
                config.repeats,
                [
                    ("actorflow remote tell", lambda: measures.tell_actorflow(messages)),
                    ("raw pyzmq PUSH/PULL + msgpack", lambda: measures.tell_raw(messages)),
                    ("raw pykka tell (one process)", lambda: measures.tell_pykka(messages)),
                ],
            )
            tell_drops, measures.drops = measures.drops, 0
            latency = _latency_rows(config, measures, asks)
            window, window_raw = interleaved(
                config.repeats,
                [
                    ("actorflow ask_future", lambda: measures.window_actorflow(window_asks)),
                    ("raw DEALER/ROUTER + msgpack", lambda: measures.window_raw(window_asks)),
                ],
            )
        finally:
            if measures is not None:
                measures.close()
            context.term()
            _stop(peer)
    lower, higher = sorted((tell_raw, tell_pykka), key=lambda series: series.median)
    return [
        Row(
            "remote",
            f"remote tell throughput into an actor ({messages} tells)",
            "msg/s",
            tell,
            (lower, higher),
            Target("ratio", ">=", 0.5),
            "received by the actor, drained by an ask; ratio to the lower baseline"
            + (f"; {tell_drops} tells dropped" if tell_drops else ""),
            extra={"dropped": tell_drops},
        ),
        *latency,
        Row(
            "remote",
            f"remote ask throughput, {_WINDOW} outstanding ({window_asks} asks)",
            "ask/s",
            window,
            (window_raw,),
            Target("ratio", ">=", 0.3),
        ),
    ]


# -- failover ------------------------------------------------------------------------------


def _start_worker(name: str, seed: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        node_command(
            name, join=[seed], plaintext=True, apps=["bench._failover_app"], drain_timeout=1
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "ACTORFLOW_BENCH_NODE": name},
    )


class _Failover:
    """Kills the node a step starts on; times the step's restart on the other node."""

    def __init__(self, workers: dict[str, subprocess.Popen[str]]) -> None:
        self.workers = workers
        self.killed_at: float | None = None
        self.victim: str | None = None
        self.recovered = threading.Event()
        self.seconds = 0.0
        self.lock = threading.Lock()

    def on_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.Started) or not event.step:
            return
        with self.lock:
            if self.victim is None and event.node in self.workers:
                self.victim = event.node
                self.killed_at = time.perf_counter()
                os.kill(self.workers[event.node].pid, signal.SIGKILL)
            elif (
                self.killed_at is not None
                and event.node not in (self.victim, "")
                and not self.recovered.is_set()
            ):
                self.seconds = time.perf_counter() - self.killed_at
                self.recovered.set()


def _failover_once() -> float:
    workflow = workflows()[0]
    with ActorSystem(
        "coordinator", listen="tcp://127.0.0.1:0", plaintext=True, workflows=[workflow]
    ) as coordinator:
        seed = str(coordinator.address)
        workers = {name: _start_worker(name, seed) for name in ("worker-1", "worker-2")}
        try:
            for process in workers.values():
                assert process.stdout is not None
                _read_line(process.stdout, "node ", 30)
            _wait_members(coordinator, set(workers), 10)
            failover = _Failover(workers)
            handle = coordinator.run(workflow, {"hold": 60.0}, observers=[failover])
            try:
                if not failover.recovered.wait(20):
                    raise RuntimeError(f"the step did not restart elsewhere: {handle.steps()}")
            finally:
                handle.cancel()
                handle.wait(5)
            return failover.seconds
        finally:
            for process in workers.values():
                if process.poll() is None:
                    process.kill()
                process.wait(10)


def _failover_row(config: Config) -> Row:
    settings = TransportSettings()
    # SWIM, small cluster: next probe, its period, shortest suspicion, three ticks late
    bound = 2 * settings.probe_interval + settings.suspicion_timeout + 3 * settings.check_interval
    samples = tuple(_failover_once() for _ in range(config.repeats))
    return Row(
        "remote",
        "failover: kill -9 of a worker to its step started elsewhere",
        "s",
        Series("kill -9 -> Started on worker-2", samples),
        (Series("detector bound (3 members)", (bound,) * len(samples)),),
        Target("value", "<=", 2.0),
        f"default settings: probe every {settings.probe_interval}s, suspicion >= "
        f"{settings.suspicion_timeout}s, check {settings.check_interval}s",
    )


def run(config: Config) -> list[Row]:
    return [*_messaging_rows(config), _failover_row(config)]


FAMILY = Family("remote", run)


if __name__ == "__main__":
    if sys.argv[1:2] == ["peer"] and len(sys.argv) == 3:
        sys.exit(_peer_main(sys.argv[2]))
    sys.exit("usage: python -m bench._remote peer SEED")
