"""Fixtures for the transport tests: keys, real transports, peer processes, waiters.

Every wait has a deadline (Events, Conditions, futures, queue gets); nothing
sleeps to wait for an event. Everything a fixture starts, it stops.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from transport import (
    ActorNotFound,
    Envelope,
    MemberEvent,
    Reply,
    Security,
    Transport,
    generate_keys,
    load_security,
)
from transport._envelope import Kind, encode_envelope

PEER_SCRIPT = Path(__file__).with_name("_peer.py")
LOOPBACK = "tcp://127.0.0.1:0"
KEY_NAMES = ("test", "local", "p1", "p2", "p3", "victim", "fuzzer", "insider", "lonely")


class RecordingHandler:
    """A MessageHandler recording every delivery; ``echo`` answers, ``fail`` raises."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.deliveries: list[tuple[str, str, Any]] = []
        self._condition = threading.Condition()

    def deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        with self._condition:
            self.deliveries.append((sender, target, message))
            self._condition.notify_all()
        if target == "echo":
            if reply is not None:
                reply.ok([self.name, message])
        elif target == "fail":
            raise ValueError(f"refused {message!r}")
        elif target == "hold":
            pass  # never answers: the ask must time out
        elif target != "sink":
            raise ActorNotFound(f"no actor {target!r}")

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: len(self.deliveries) >= count, timeout)


class KnowsAbsent(RecordingHandler):
    """No actor lives at ``nobody``: the transport refuses messages to it as it reads them."""

    def absent(self, target: str) -> bool:
        return target == "nobody"


@dataclass
class EventLog:
    """Collects MemberEvents from ``Transport.subscribe``; ``wait_for`` has a deadline."""

    events: list[tuple[float, MemberEvent]] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, event: MemberEvent) -> None:
        with self.condition:
            self.events.append((time.monotonic(), event))
            self.condition.notify_all()

    def wait_for(self, node: str, status: str, timeout: float, after: float = 0.0) -> float | None:
        """Monotonic time of the first matching event at or after ``after``, or None."""

        def match() -> float | None:
            for stamp, event in self.events:
                if stamp >= after and event.node == node and event.status == status:
                    return stamp
            return None

        with self.condition:
            self.condition.wait_for(lambda: match() is not None, timeout)
            return match()

    def statuses(self, node: str) -> list[str]:
        with self.condition:
            return [event.status for _, event in self.events if event.node == node]


class LogWatcher(logging.Handler):
    """Collects log messages of the ``transport`` package, DEBUG and up."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.condition = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.condition:
            self.messages.append(record.getMessage())
            self.condition.notify_all()

    def count(self, text: str) -> int:
        with self.condition:
            return sum(text in message for message in self.messages)

    def wait_for(self, text: str, count: int = 1, timeout: float = 5.0) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: self.count(text) >= count, timeout)


@pytest.fixture
def log_watcher() -> Iterator[LogWatcher]:
    logger = logging.getLogger("transport")
    watcher = LogWatcher()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(watcher)
    yield watcher
    logger.removeHandler(watcher)
    logger.setLevel(previous)


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cluster's keys directory: a key pair for every name in KEY_NAMES."""
    directory = tmp_path_factory.mktemp("keys")
    for name in KEY_NAMES:
        generate_keys(directory, name)
    return directory


@pytest.fixture(scope="session")
def security_of(keys_dir: Path) -> Callable[[str], Security]:
    return lambda name: load_security(keys_dir, name)


@pytest.fixture
def make_transport() -> Iterator[Callable[..., Transport]]:
    """Factory for started transports on loopback; all closed at teardown."""
    created: list[Transport] = []

    def make(name: str, handler: Any = None, **options: Any) -> Transport:
        options.setdefault("listen", LOOPBACK)
        if options.get("security") is None:
            options.setdefault("allow_plaintext", True)
        transport = Transport(name, handler=handler or RecordingHandler(name), **options)
        created.append(transport)
        transport.start()
        return transport

    yield make
    for transport in reversed(created):
        transport.close()


RawDealer = Callable[..., "zmq.Socket[Any]"]


@pytest.fixture
def raw_dealer() -> Iterator[RawDealer]:
    """Factory for hand-driven DEALERs (``curve=(public, secret, server)`` optional)."""
    context: zmq.Context[Any] = zmq.Context()
    sockets: list[zmq.Socket[Any]] = []

    def make(address: str, curve: tuple[bytes, bytes, bytes] | None = None) -> zmq.Socket[Any]:
        dealer: zmq.Socket[Any] = context.socket(zmq.DEALER)
        sockets.append(dealer)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.SNDTIMEO, 10_000)
        if curve is not None:
            dealer.setsockopt(zmq.CURVE_PUBLICKEY, curve[0])
            dealer.setsockopt(zmq.CURVE_SECRETKEY, curve[1])
            dealer.setsockopt(zmq.CURVE_SERVERKEY, curve[2])
        dealer.connect(address)
        return dealer

    yield make
    for dealer in sockets:
        dealer.close(linger=0)
    context.term()


@dataclass
class Peer:
    """A transport node in a child process (see _peer.py)."""

    name: str
    process: subprocess.Popen[str]
    address: str

    @property
    def seed(self) -> str:
        return f"{self.name}@{self.address}"

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.signal(signal.SIGCONT)
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(5)
            except (subprocess.TimeoutExpired, OSError):
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def start_peers(specs: list[tuple[str, list[str]]], keys: Path | None) -> list[Peer]:
    """Start one process per (name, seeds) in parallel; return once all printed READY."""
    launched = []
    for name, seeds in specs:
        command = [sys.executable, str(PEER_SCRIPT), name]
        command += ["--keys", str(keys)] if keys is not None else ["--plaintext"]
        for seed in seeds:
            command += ["--seed", seed]
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda p=process, q=lines: q.put(p.stdout.readline()),  # type: ignore[union-attr]
            name=f"test-reader-{name}",
            daemon=True,
        )
        reader.start()
        launched.append((name, process, lines))
    peers = []
    for name, process, lines in launched:
        try:
            line = lines.get(timeout=20)
        except queue.Empty:
            line = ""
        if not line.startswith("READY "):
            process.kill()
            process.wait(5)
            raise AssertionError(f"peer {name} did not start: {line!r}")
        peers.append(Peer(name, process, line.split()[1]))
    return peers


@pytest.fixture
def spawn_peers(keys_dir: Path) -> Iterator[Callable[..., list[Peer]]]:
    """Factory: ``spawn_peers([(name, seeds), ...], secure=True)``; all stopped at teardown."""
    started: list[Peer] = []

    def spawn(specs: list[tuple[str, list[str]]], *, secure: bool = True) -> list[Peer]:
        peers = start_peers(specs, keys_dir if secure else None)
        started.extend(peers)
        return peers

    yield spawn
    for peer in started:
        peer.stop()


def hello(sender: str, message_id: int = 1) -> bytes:
    return encode_envelope(
        Envelope(
            Kind.HELLO,
            message_id,
            0,
            sender,
            "",
            {"role": "member", "address": "tcp://127.0.0.1:9", "incarnation": 1},
        )
    )


def ghost_member(
    make_transport: Callable[..., Transport],
    raw_dealer: RawDealer,
    handler: RecordingHandler,
    **options: Any,
) -> tuple[Transport, zmq.Socket[Any]]:
    """Transport ``a`` delivering to ``handler``, and a raw DEALER that said hello to it as
    the member ``ghost``."""
    a = make_transport("a", handler, **options)
    assert a.address is not None
    dealer = raw_dealer(a.address)
    dealer.send(hello("ghost"))
    return a, dealer
