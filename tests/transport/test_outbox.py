"""The outbox under concurrent producers: nothing lost, duplicated or reordered per peer,
the bound holds, and no wake-up is lost.

Most tests drive ``transport._outbox.Outbox`` itself: a test thread plays the I/O
thread (the same turn as ``IoLoop``: poll the wake-up, clear it, flush) and the
outbox sends through real DEALERs (``PeerLinks``) to one ROUTER per peer on
127.0.0.1, read by a receiver thread. That consumer polls with an idle timeout
longer than any deadline here, so a frame arrives in time only if a wake-up
brought it. The last tests go through real ``Transport`` objects on loopback.
Every wait has a deadline; nothing sleeps to wait for an event.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq
from conftest import LOOPBACK, RecordingHandler

from transport import Address, Limits, Reply, Transport, TransportSettings
from transport._envelope import Envelope, Kind, decode_envelope, encode_envelope
from transport._errors import OutboxFull
from transport._membership import Membership
from transport._outbox import _FLUSH_BATCH, Outbox
from transport._parts import NodeParts
from transport._reply import PendingAsks, new_id_counter
from transport._sockets import PeerLinks
from transport._stats import Counters

MakeTransport = Callable[..., Transport]

PEERS = ("p0", "p1", "p2")
IDLE_MS = 30_000  # the consumer's idle poll: longer than every deadline below


def pad_size(seq: int) -> int:
    """A fixed mix of frame sizes: mostly small (batched), some alone for their size."""
    if seq % 31 == 5:
        return 12_000  # over a batch's byte budget (max_containers - 2048): always alone
    if seq % 11 == 4:
        return 5_000  # over max_bin_len (4096 in the stress test): never batched
    if seq % 7 == 3:
        return 3_000  # batched, two to a batch at most
    return 0


def frame(peer: str, producer: int, seq: int, pad: int = 0) -> bytes:
    body = [peer, producer, seq, b"x" * pad]
    return encode_envelope(Envelope(Kind.TELL, seq + 1, 0, "src", "sink", body))


class Receiver:
    """One ROUTER per peer on loopback, read by one thread as fast as frames come.

    Records ``(peer whose ROUTER got it, body)`` in arrival order, unpacking batch
    frames, and the byte size and item sizes of every batch frame.
    """

    def __init__(self, context: zmq.Context[Any], peers: tuple[str, ...]) -> None:
        self.routers: dict[str, zmq.Socket[Any]] = {}
        self.addresses: dict[str, str] = {}
        for name in peers:
            router: zmq.Socket[Any] = context.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            router.bind(LOOPBACK)
            self.routers[name] = router
            self.addresses[name] = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.received: list[tuple[str, list[Any]]] = []
        self.batches: list[tuple[int, list[int]]] = []  # (frame bytes, item sizes)
        self.last_seq: dict[int, int] = {}  # producer -> highest seq received
        self.error: BaseException | None = None
        self.condition = threading.Condition()
        self._stop_read, self._stop_write = os.pipe()
        self.thread = threading.Thread(target=self._run, name="test-outbox-receiver", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        for router in self.routers.values():
            poller.register(router, zmq.POLLIN)
        poller.register(self._stop_read, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if self._stop_read in ready:
                    return
                for peer, router in self.routers.items():
                    if router in ready:
                        self._drain(peer, router)
        except BaseException as exc:
            with self.condition:
                self.error = exc
                self.condition.notify_all()

    def _drain(self, peer: str, router: zmq.Socket[Any]) -> None:
        arrived: list[tuple[str, list[Any]]] = []
        while True:
            try:
                _, payload = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            envelope = decode_envelope(payload)
            if envelope.kind is Kind.BATCH:
                self.batches.append((len(payload), [len(item) for item in envelope.body]))
                arrived += [(peer, decode_envelope(item).body) for item in envelope.body]
            else:
                arrived.append((peer, envelope.body))
        with self.condition:
            self.received += arrived
            for _, body in arrived:
                self.last_seq[body[1]] = body[2]
            self.condition.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.condition:
            self.condition.wait_for(lambda: self.error is not None or predicate(), timeout)
            if self.error is not None:
                raise self.error
            return predicate()

    def count(self) -> int:
        return len(self.received)

    def seqs(self, peer: str, producer: int) -> list[int]:
        with self.condition:
            return [body[2] for at, body in self.received if at == peer and body[1] == producer]

    def close(self) -> None:
        os.write(self._stop_write, b"x")
        self.thread.join(10)
        for router in self.routers.values():
            router.close(linger=0)
        os.close(self._stop_read)
        os.close(self._stop_write)


class Consumer:
    """Plays the I/O thread of an ``Outbox``: the turn ``IoLoop`` runs, on a thread of its own.

    It starts paused (``resume`` lets it go); ``delay`` slows it down between turns.
    """

    def __init__(
        self, context: zmq.Context[Any], settings: TransportSettings, peers: dict[str, str]
    ) -> None:
        self.counters = Counters()
        membership = Membership("src", None, 8)
        for name, address in peers.items():
            membership.on_hello(name, address, time.monotonic(), 1)  # up, and never checked again
        node = NodeParts(
            name="src",
            settings=settings,
            security=None,
            now=time.monotonic,
            ids=new_id_counter(),
            membership=membership,
            pending=PendingAsks(1),
            counters=self.counters,
        )
        self.thread = threading.Thread(target=self._run, name="test-outbox-io", daemon=True)
        self._peers = peers
        self._links = PeerLinks(context, settings, None, self.counters)
        self.outbox = Outbox(node, self._links, self.thread)
        self.resume = threading.Event()
        self.delay = 0.0
        self.turns = 0
        self.error: BaseException | None = None
        self.condition = threading.Condition()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._stop_read, self._stop_write = os.pipe()
        self.thread.start()
        assert self._ready.wait(10)
        self.outbox.serve()

    def _run(self) -> None:
        outbox = self.outbox
        try:
            for name, address in self._peers.items():  # sockets live on this thread only
                assert self._links.open(name, address, name)
            self._ready.set()
            self.resume.wait(60)
            poller = zmq.Poller()
            poller.register(outbox.fd, zmq.POLLIN)
            poller.register(self._stop_read, zmq.POLLIN)
            while True:
                ready = dict(poller.poll(outbox.poll_timeout(IDLE_MS)))
                if self._stop_read in ready:
                    return
                if outbox.fd in ready:
                    outbox.clear_wakeup()
                outbox.flush()
                with self.condition:
                    self.turns += 1
                    self.condition.notify_all()
                if self.delay:
                    self._stopping.wait(
                        self.delay
                    )  # pacing a slow consumer, not a wait for an event
        except BaseException as exc:
            self.error = exc
        finally:
            outbox.shut()
            self._links.close_all()

    def after_turn(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate`` holds at the end of a turn."""
        with self.condition:
            return self.condition.wait_for(predicate, timeout)

    def close(self) -> None:
        self._stopping.set()
        self.resume.set()
        os.write(self._stop_write, b"x")
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.outbox.close()
        os.close(self._stop_read)
        os.close(self._stop_write)
        assert self.error is None, self.error


Rig = Callable[[TransportSettings], tuple[Consumer, Receiver]]


@pytest.fixture
def rig() -> Iterator[Rig]:
    """Factory: a paused ``Consumer`` sending to a ``Receiver``'s peers; all closed at teardown."""
    context: zmq.Context[Any] = zmq.Context()
    made: list[tuple[Consumer, Receiver]] = []

    def make(settings: TransportSettings) -> tuple[Consumer, Receiver]:
        receiver = Receiver(context, PEERS)
        consumer = Consumer(context, settings, receiver.addresses)
        made.append((consumer, receiver))
        return consumer, receiver

    yield make
    for consumer, receiver in made:
        consumer.close()
        receiver.close()
    context.term()


class Progress:
    """Posts returned by producer threads, and their failures, under a Condition."""

    def __init__(self) -> None:
        self.returned = 0
        self.failures: list[BaseException] = []
        self.condition = threading.Condition()

    def add(self) -> None:
        with self.condition:
            self.returned += 1
            self.condition.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.condition:
            self.failures.append(exc)
            self.condition.notify_all()

    def wait_for(self, predicate: Callable[[int], bool], timeout: float) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: predicate(self.returned), timeout)


def start_threads(count: int, target: Callable[[int], None], progress: Progress) -> list[Any]:
    def run(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            progress.fail(exc)

    threads = [
        threading.Thread(target=run, args=(index,), name=f"test-producer-{index}", daemon=True)
        for index in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread], progress: Progress) -> None:
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive(), thread.name
    assert progress.failures == []


# -- the outbox itself -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_producers_to_several_peers_lose_duplicate_and_reorder_nothing(rig: Rig) -> None:
    """Four producers, three peers; the consumer is paused (the bound fills and every
    producer blocks), then slow, then fast."""
    limits = Limits(max_bin_len=4096)
    settings = TransportSettings(outbox_size=64, send_timeout=30.0, limits=limits)
    consumer, receiver = rig(settings)
    outbox, bound = consumer.outbox, settings.outbox_size
    producers, per_peer = 4, 250
    total = producers * len(PEERS) * per_peer
    progress = Progress()

    def produce(producer: int) -> None:
        for seq in range(per_peer):
            for peer in PEERS:
                data = frame(peer, producer, seq, pad_size(seq))
                assert outbox.post(peer, data, settings.send_timeout)
                progress.add()

    threads = start_threads(producers, produce, progress)
    # Paused: nothing drains, so posts stop at the bound; racing producers may each
    # pass the (lock-free) check once more.
    assert progress.wait_for(lambda returned: returned >= bound, 10)
    assert not progress.wait_for(lambda returned: returned > bound + producers - 1, 0.3)
    assert bound <= outbox.held() <= bound + producers - 1
    assert all(thread.is_alive() for thread in threads)  # each blocked in post

    consumer.delay = 0.003
    consumer.resume.set()
    assert receiver.wait_for(lambda: receiver.count() >= total // 3, 30), receiver.count()
    consumer.delay = 0.0
    assert receiver.wait_for(lambda: receiver.count() >= total, 30), receiver.count()
    join_all(threads, progress)
    assert consumer.after_turn(lambda: outbox.held() == 0, 10)

    assert len(receiver.received) == total  # nothing duplicated
    assert all(at == body[0] for at, body in receiver.received)  # each on its own peer's link
    for peer in PEERS:
        for producer in range(producers):
            assert receiver.seqs(peer, producer) == list(range(per_peer)), (peer, producer)
    assert consumer.counters.snapshot()[2] == {}
    print("frames", total, "batch frames", len(receiver.batches), "turns", consumer.turns)
    assert receiver.batches  # batching happened, within its limits:
    for size, items in receiver.batches:
        assert size <= limits.max_containers
        assert 2 <= len(items) <= 256
        assert max(items) <= limits.max_bin_len


@pytest.mark.timeout(30)
def test_a_producer_past_outbox_size_blocks_then_gets_outbox_full_with_nothing_sent(
    rig: Rig,
) -> None:
    settings = TransportSettings(outbox_size=16, send_timeout=0.3)
    consumer, receiver = rig(settings)
    outbox = consumer.outbox
    for seq in range(16):
        assert outbox.post("p0", frame("p0", 0, seq), settings.send_timeout)

    started = time.monotonic()
    with pytest.raises(OutboxFull, match="outbox to p0 full"):
        outbox.post("p0", frame("p0", 0, 16), settings.send_timeout)
    waited = time.monotonic() - started
    assert settings.send_timeout <= waited < settings.send_timeout + 5
    assert outbox.held() == 16  # the refused frame was not queued
    assert consumer.counters.snapshot()[2] == {"outbox_full": 1}

    # Another producer blocks, and gets in once the consumer makes room, long before
    # its own timeout.
    returned = threading.Event()
    progress = Progress()

    def late(_: int) -> None:
        assert outbox.post("p0", frame("p0", 0, 17), 20.0)
        returned.set()

    threads = start_threads(1, late, progress)
    assert not returned.wait(0.3)  # blocked: the outbox is still full
    consumer.resume.set()
    assert returned.wait(10)
    join_all(threads, progress)
    assert receiver.wait_for(lambda: receiver.count() >= 17, 10)
    assert receiver.seqs("p0", 0) == [*range(16), 17]  # frame 16 was never sent


@pytest.mark.timeout(60)
def test_no_wake_up_is_lost_between_racing_producers_and_the_consumer(rig: Rig) -> None:
    """Each producer posts one frame and waits until it arrived before the next, racing
    the others: the consumer only polls every 30 s, so each frame needs a wake-up."""
    settings = TransportSettings()
    consumer, receiver = rig(settings)
    consumer.resume.set()
    producers, rounds = 3, 400
    progress = Progress()

    def ping(producer: int) -> None:
        peer = PEERS[producer % len(PEERS)]
        for seq in range(rounds):
            assert consumer.outbox.post(peer, frame(peer, producer, seq), settings.send_timeout)

            def seen(seq: int = seq) -> bool:
                return receiver.last_seq.get(producer, -1) >= seq

            assert receiver.wait_for(seen, 10), f"producer {producer}: frame {seq} not delivered"

    join_all(start_threads(producers, ping, progress), progress)
    for producer in range(producers):
        peer = PEERS[producer % len(PEERS)]
        assert receiver.seqs(peer, producer) == list(range(rounds))


@pytest.mark.timeout(60)
def test_a_post_right_after_a_full_flush_turn_wakes_the_consumer(rig: Rig) -> None:
    """A turn that takes exactly ``_FLUSH_BATCH`` frames and empties the queue must not
    leave the wake-up flag set, or the next post would not wake the consumer."""
    settings = TransportSettings()
    consumer, receiver = rig(settings)
    outbox = consumer.outbox
    for seq in range(_FLUSH_BATCH):  # queued while the consumer is paused: one turn's worth
        assert outbox.post("p0", frame("p0", 0, seq))
    consumer.resume.set()
    assert receiver.wait_for(lambda: receiver.count() >= _FLUSH_BATCH, 20)
    assert consumer.after_turn(lambda: outbox.held() == 0, 10)
    turns = consumer.turns

    assert outbox.post("p0", frame("p0", 0, _FLUSH_BATCH))
    assert receiver.wait_for(lambda: receiver.count() > _FLUSH_BATCH, 10)
    assert receiver.seqs("p0", 0) == list(range(_FLUSH_BATCH + 1))
    print("turns for the full batch", turns)


# -- through a Transport ----------------------------------------------------------------


class _Recorder(RecordingHandler):
    """Records ``(producer, seq)`` per arrival, on the I/O thread; slow while ``pace`` > 0.

    On the client, a tell to ``stall`` holds its I/O thread until ``gate`` is set.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.arrivals: list[tuple[str, int, int]] = []
        self.last_seq: dict[int, int] = {}  # producer -> highest seq arrived
        self.pace = 0.0
        self.gate = threading.Event()
        self.entered = threading.Event()
        self._never = threading.Event()

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        if target == "stall":
            self.entered.set()
            self.gate.wait(20)
            return True
        if self.pace:
            self._never.wait(self.pace)  # pacing a slow receiver, not a wait for an event
        with self._condition:
            self.arrivals.append((message[0], message[1], message[2]))
            self.last_seq[message[1]] = message[2]
            self._condition.notify_all()
        return True

    def wait_arrivals(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(predicate, timeout)


@pytest.mark.timeout(60)
def test_producers_through_a_transport_to_several_peers_keep_order_past_a_full_outbox(
    make_transport: MakeTransport,
) -> None:
    """The client's I/O thread is held (its outbox fills to the bound and the producers
    block), then released to peers that read slowly, then fast."""
    settings = TransportSettings(
        send_hwm=5, receive_hwm=5, outbox_size=20, send_timeout=30.0, suspicion_timeout=20.0
    )
    peers = {name: _Recorder(name) for name in ("p0", "p1")}
    servers = {
        name: make_transport(name, handler, settings=settings) for name, handler in peers.items()
    }
    client_handler = _Recorder("test")
    client = make_transport("test", client_handler, settings=settings)
    for server in servers.values():
        assert server.address is not None
        client.join([server.address], timeout=10)
    io = client._io
    assert io is not None
    servers["p0"].tell(Address("test", "stall"), "hold the client's I/O thread")
    assert client_handler.entered.wait(10)

    producers, per_peer = 3, 300
    each = producers * per_peer  # tells to each peer
    progress = Progress()

    def produce(producer: int) -> None:
        for seq in range(per_peer):
            for name in peers:
                pad = b"x" * (100_000 if seq % 10 == 0 else 20)
                client.tell(Address(name, "sink"), [name, producer, seq, pad])
                progress.add()

    threads = start_threads(producers, produce, progress)
    try:
        bound = settings.outbox_size
        assert progress.wait_for(lambda returned: returned >= bound, 10)
        assert not progress.wait_for(lambda returned: returned > bound + producers - 1, 0.3)
        assert bound <= io.outbox.held() <= bound + producers - 1
        for handler in peers.values():
            handler.pace = 0.001
    finally:
        client_handler.gate.set()

    first = peers["p0"]
    assert first.wait_arrivals(lambda: len(first.arrivals) >= each // 4, 30), len(first.arrivals)
    for handler in peers.values():
        handler.pace = 0.0
    for handler in peers.values():
        assert handler.wait_arrivals(lambda h=handler: len(h.arrivals) >= each, 30)
    join_all(threads, progress)

    for name, handler in peers.items():
        assert all(peer == name for peer, _, _ in handler.arrivals)
        assert len(handler.arrivals) == each  # nothing duplicated
        for producer in range(producers):
            seqs = [seq for _, who, seq in handler.arrivals if who == producer]
            assert seqs == list(range(per_peer)), (name, producer)
    dropped = client.stats().frames_dropped
    assert not {"outbox_full", "node_down", "no_route"} & dropped.keys(), dropped


@pytest.mark.timeout(60)
def test_no_wake_up_is_lost_through_a_transport(make_transport: MakeTransport) -> None:
    """Ping-pong tells from racing threads with a 5 s idle poll and no heartbeats
    meanwhile: only the wake-ups can deliver each tell within its 4 s deadline."""
    quiet = TransportSettings(
        probe_interval=10.0,
        suspicion_timeout=30.0,
        check_interval=5.0,
        pause_tolerance=6.0,
        gossip_interval=60.0,
    )
    peers = {name: _Recorder(name) for name in ("p0", "p1")}
    servers = [make_transport(name, handler, settings=quiet) for name, handler in peers.items()]
    client = make_transport("test", settings=quiet)
    for server in servers:
        assert server.address is not None
        client.join([server.address], timeout=10)
    producers, rounds = 3, 200
    progress = Progress()

    def ping(producer: int) -> None:
        name = ("p0", "p1")[producer % 2]
        handler = peers[name]
        for seq in range(rounds):
            client.tell(Address(name, "sink"), [name, producer, seq])

            def seen(seq: int = seq) -> bool:
                return handler.last_seq.get(producer, -1) >= seq

            assert handler.wait_arrivals(seen, 4), f"tell {seq} of {producer} not delivered"

    join_all(start_threads(producers, ping, progress), progress)
    for producer in range(producers):
        handler = peers[("p0", "p1")[producer % 2]]
        assert [seq for _, who, seq in handler.arrivals if who == producer] == list(range(rounds))


@pytest.mark.timeout(60)
def test_answers_of_the_holding_thread_share_one_wake_up(rig: Rig) -> None:
    """The dispatch thread holds its wake-ups: a burst of answers is queued without an
    eventfd write each, and one release wakes the I/O thread for all of them."""
    consumer, receiver = rig(TransportSettings())
    outbox = consumer.outbox
    outbox.hold_wakeups(threading.current_thread())
    for seq in range(100):
        assert outbox.post("p0", frame("p0", 0, seq))  # no timeout: an answer
    assert select.select([outbox.fd], [], [], 0)[0] == []  # not woken yet
    outbox.release_wakeups()
    assert select.select([outbox.fd], [], [], 0)[0] == [outbox.fd]  # woken once, for all
    consumer.resume.set()
    assert receiver.wait_for(lambda: receiver.count() >= 100, 20)
    assert receiver.seqs("p0", 0) == list(range(100))
