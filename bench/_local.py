"""Local messaging rows: tell throughput and ask round trip, ActorSystem vs raw pykka.

``ActorSystem.spawn`` returns a plain pykka ``ActorRef``, so these rows check
that the system adds nothing on the message path (today it should be ~1.0x;
the row is there to catch a future wrapper that does).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pykka

from bench._row import Config, Family, Row, Series, Target
from runtime import ActorSystem

__all__ = ["FAMILY"]

_COUNT = "count"


_CPU = {min(os.sched_getaffinity(0))}  # one core for caller and actors: same placement for both


class _Counter(pykka.ThreadingActor):
    """Counts tells; answers an ask with the count (or echoes the message)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_start(self) -> None:
        # Pin this actor's thread next to the caller: on 2 vCPUs an ask costs ~40 us
        # on the caller's core and ~100 us across cores, and the scheduler's choice
        # alone otherwise decides which of two identical actors looks faster.
        os.sched_setaffinity(0, _CPU)

    def on_receive(self, message: Any) -> Any:
        if message is _COUNT:
            return self.count
        self.count += 1
        return message


def _tell_seconds(ref: pykka.ActorRef[_Counter], messages: int) -> float:
    """Seconds for ``messages`` tells, drained (an ask waits for the last)."""
    before = ref.ask(_COUNT)
    started = time.perf_counter()
    for index in range(messages):
        ref.tell(index)
    drained = ref.ask(_COUNT, timeout=60)
    elapsed = time.perf_counter() - started
    assert drained - before == messages
    return elapsed


def _ask_p50_pair_us(
    first: pykka.ActorRef[_Counter], second: pykka.ActorRef[_Counter], asks: int
) -> tuple[float, float]:
    """Median microseconds of ``asks`` sequential asks to each, in 10 alternating chunks.

    Chunks alternate so a noisy neighbour hits both actors alike (one batch
    each swung 2x between identical actors here); not ask by ask, because the
    previous actor's thread still finishing its loop then slows the next ask.
    """
    chunk = max(1, asks // 10)
    latencies: tuple[list[float], list[float]] = ([], [])
    for index in range(20):
        ref = first if index % 2 == 0 else second
        for message in range(chunk):
            started = time.perf_counter()
            ref.ask(message, timeout=10)
            latencies[index % 2].append(time.perf_counter() - started)
    return statistics.median(latencies[0]) * 1e6, statistics.median(latencies[1]) * 1e6


def _tell_pair_rate(
    first: pykka.ActorRef[_Counter], second: pykka.ActorRef[_Counter], messages: int
) -> tuple[float, float]:
    """Messages per second for each, sent in 10 alternating drained chunks (see ask)."""
    chunk = max(1, messages // 10)
    elapsed = [0.0, 0.0]
    for index in range(20):
        elapsed[index % 2] += _tell_seconds(first if index % 2 == 0 else second, chunk)
    return chunk * 10 / elapsed[0], chunk * 10 / elapsed[1]


def _paired(
    config: Config,
    measure: Callable[[pykka.ActorRef[_Counter], pykka.ActorRef[_Counter]], tuple[float, float]],
) -> tuple[Series, Series]:
    """``measure`` an ``ActorSystem.spawn`` actor beside a raw ``start()`` one, per repetition.

    Each repetition gets a fresh pair: on 2 vCPUs an ask takes ~40 us when the
    actor's thread shares the caller's core and ~100 us when it does not, and
    placement sticks to an actor, so reusing one pair would bias every sample.
    """
    pairs = []
    for repetition in range(config.repeats + 1):  # fresh actors each time; the first is warm-up
        with ActorSystem("bench-local") as system:
            # Which actor starts (and is measured) first alternates: start order and
            # measuring order decide core placement, which alone made a 2x difference.
            if repetition % 2:
                raw = _Counter.start()
                spawned = system.spawn(_Counter)
            else:
                spawned = system.spawn(_Counter)
                raw = _Counter.start()
            try:
                if repetition % 2:
                    second, first = measure(raw, spawned)
                    pair = (first, second)
                else:
                    pair = measure(spawned, raw)
            finally:
                raw.stop()
        if repetition:
            pairs.append(pair)
    return (
        Series("ActorSystem.spawn", tuple(p[0] for p in pairs)),
        Series("raw pykka", tuple(p[1] for p in pairs)),
    )


def run(config: Config) -> list[Row]:
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _CPU)  # the calling thread
    try:
        return _rows(config)
    finally:
        os.sched_setaffinity(0, previous)


def _rows(config: Config) -> list[Row]:
    messages = config.size(20_000, 500)
    asks = config.size(2_000, 100)
    tell, tell_raw = _paired(config, lambda a, b: _tell_pair_rate(a, b, messages))
    ask, ask_raw = _paired(config, lambda a, b: _ask_p50_pair_us(a, b, asks))
    return [
        Row(
            "local",
            f"tell throughput, one actor ({messages} tells)",
            "msg/s",
            tell,
            (Series("raw pykka ThreadingActor tell", tell_raw.samples),),
            Target("ratio", ">=", 0.9),
        ),
        Row(
            "local",
            f"ask round trip p50 ({asks} asks)",
            "us",
            ask,
            (Series("raw pykka ask", ask_raw.samples),),
            Target("ratio", "<=", 1.3),
            "fresh actor pair per repetition; caller and actors pinned to one core",
        ),
    ]


FAMILY = Family("local", run)
