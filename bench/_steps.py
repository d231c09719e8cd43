"""Workflow step rows: per-step overhead of a long chain (sync and async), and wide fan-outs.

The chain is ``task(noop).then(task(noop)).then(...)``, the way users write it
(a left fold, which the runtime keeps as one flat sequence). The async chain
is the same with ``async def`` steps that ``await asyncio.sleep(0)``. The
fan-outs are ``parallel`` of N tasks, and ``map_items`` over N items beside it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from bench._row import Config, Family, Row, Series, Target, interleaved
from runtime import ActorSystem, Workflow, map_items, parallel, task

__all__ = ["FAMILY", "async_noop", "chain_for", "linear_chain", "noop"]

_RESULT_TIMEOUT = 600.0  # generous: a slow machine must finish, not fail the row


def noop(ctx: Any) -> None:
    """The step body: does nothing, so the figures are pure runtime overhead."""
    return None


async def async_noop(ctx: Any) -> None:
    """The async step body: one trip through the loop, nothing else."""
    await asyncio.sleep(0)


def linear_chain(steps: int, body: Callable[[Any], Any] = noop) -> Workflow[Any, Any]:
    """``task(body).then(task(body))...`` as a user writes it (left-nested ``Then``)."""
    workflow: Workflow[Any, Any] = task(body)
    for _ in range(steps - 1):
        workflow = workflow.then(task(body))
    return workflow


def _run_us_per_step(workflow: Workflow[Any, Any], steps: int) -> float:
    """Microseconds per step of one ``system.run(workflow).result()`` (system setup excluded)."""
    with ActorSystem("bench-steps") as system:
        started = time.perf_counter()
        system.run(workflow, {}).result(timeout=_RESULT_TIMEOUT)
        return (time.perf_counter() - started) / steps * 1e6


def chain_for(steps: int) -> tuple[Workflow[Any, Any], str]:
    """The chain to measure and its note."""
    return linear_chain(steps), "left fold .then chain"


class _Noop(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return noop(message)


def _plain_calls_us(steps: int) -> float:
    ctx: dict[str, Any] = {}
    started = time.perf_counter()
    for _ in range(steps):
        noop(ctx)
    return (time.perf_counter() - started) / steps * 1e6


def _raw_pykka_us(steps: int) -> float:
    """One fresh actor per step, like a node: start, ask the step, stop (blocking)."""
    ctx: dict[str, Any] = {}
    started = time.perf_counter()
    for _ in range(steps):
        ref = _Noop.start()
        ref.ask(ctx, timeout=10)
        ref.stop(timeout=10)
    return (time.perf_counter() - started) / steps * 1e6


def _chain_rows(config: Config) -> list[Row]:
    steps = config.size(1000, 20)
    workflow, note = chain_for(steps)
    value, raw, plain = interleaved(
        config.repeats,
        [
            ("actorflow chain", lambda: _run_us_per_step(workflow, steps)),
            ("raw pykka spawn+ask+stop per step", lambda: _raw_pykka_us(steps)),
            (f"{steps} plain function calls", lambda: _plain_calls_us(steps)),
        ],
    )
    return [
        Row(
            "steps",
            f"per-step overhead, {steps}-step no-op chain, no checkpoint",
            "us/step",
            value,
            (raw, plain),
            Target("value", "<=", 250),
            note,
        )
    ]


def _asyncio_run_us(steps: int) -> float:
    """What a fresh loop per step would cost: ``asyncio.run(async_noop(ctx))``, no actors."""
    ctx: dict[str, Any] = {}
    started = time.perf_counter()
    for _ in range(steps):
        asyncio.run(async_noop(ctx))
    return (time.perf_counter() - started) / steps * 1e6


def _async_chain_rows(config: Config) -> list[Row]:
    """Async steps on the node actors' kept loops, beside the same chain of sync no-ops.

    Target ratio <= 1.5: a kept loop adds ~20 us to a sync step's 60-100 us
    (``run_until_complete`` ~11 us, and its epoll calls let other threads take
    the GIL); a fresh loop per step (``asyncio.run``, the second baseline,
    ~90 us on 2 cores) would put the ratio at 2x or more.
    """
    steps = config.size(1000, 20)
    async_chain, sync_chain = linear_chain(steps, async_noop), linear_chain(steps)
    value, sync, fresh = interleaved(
        config.repeats,
        [
            ("actorflow async chain", lambda: _run_us_per_step(async_chain, steps)),
            ("same chain of sync no-op steps", lambda: _run_us_per_step(sync_chain, steps)),
            ("asyncio.run(step) per step, no actors", lambda: _asyncio_run_us(steps)),
        ],
    )
    return [
        Row(
            "steps",
            f"per-step overhead, {steps}-step async chain, no checkpoint",
            "us/step",
            value,
            (sync, fresh),
            Target("ratio", "<=", 1.5),
            "async def steps, each awaits asyncio.sleep(0) on its node actor's loop",
        )
    ]


def _os_threads() -> int:
    """Threads of this process as the kernel counts them (falls back to Python's count)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


class ThreadSampler:
    """Samples the process's thread count every ``interval`` s in a background thread.

    ``peak`` includes the sampler's own thread. Use as a context manager; the
    sampler thread is joined on exit.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-thread-sampler")
        self.peak = _os_threads()

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, _os_threads())

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, _os_threads())


def _fan_out_actorflow(branches: int, peaks: list[float]) -> float:
    workflow = parallel(*[task(noop) for _ in range(branches)])
    with ActorSystem("bench-fanout") as system, ThreadSampler() as sampler:
        started = time.perf_counter()
        system.run(workflow, {}).result(timeout=_RESULT_TIMEOUT)
        elapsed = time.perf_counter() - started
    peaks.append(sampler.peak)
    return elapsed * 1e3


def _fan_out_pykka(branches: int, peaks: list[float]) -> float:
    """Raw pykka: start ``branches`` actors, ask all without blocking, gather, stop all."""
    ctx: dict[str, Any] = {}
    with ThreadSampler() as sampler:
        started = time.perf_counter()
        refs = [_Noop.start() for _ in range(branches)]
        futures = [ref.ask(ctx, block=False) for ref in refs]
        for future in futures:
            future.get(timeout=60)
        for ref in refs:
            ref.stop(block=False)
        elapsed = time.perf_counter() - started
        for ref in refs:
            ref.actor_stopped.wait(60)
    peaks.append(sampler.peak)
    return elapsed * 1e3


def _fan_out_rows(config: Config) -> list[Row]:
    branches = config.size(1000, 20)
    peaks: list[float] = []
    raw_peaks: list[float] = []
    value, raw = interleaved(
        config.repeats,
        [
            ("actorflow parallel", lambda: _fan_out_actorflow(branches, peaks)),
            ("raw pykka start+ask+stop x N", lambda: _fan_out_pykka(branches, raw_peaks)),
        ],
    )
    before = _os_threads()
    del peaks[0], raw_peaks[0]  # the warm-up runs of interleaved()
    return [
        Row("steps", f"fan-out, parallel({branches} no-op steps): time", "ms", value, (raw,)),
        Row(
            "steps",
            f"fan-out, parallel({branches} no-op steps): peak threads",
            "threads",
            Series("actorflow parallel", tuple(peaks)),
            (Series("raw pykka start+ask+stop x N", tuple(raw_peaks)),),
            note=f"OS threads of the process (incl. 1 sampler); {before} when idle; "
            f"{os.cpu_count()} cores; default max_running_steps=256",
        ),
    ]


def _items(ctx: dict[str, Any]) -> range:
    return range(ctx["items"])


def _map_us_per_item(workflow: Workflow[Any, Any], items: int, peaks: list[float]) -> float:
    """Microseconds per item of one run over ``items`` items; its peak threads go to ``peaks``."""
    with ActorSystem("bench-map") as system, ThreadSampler() as sampler:
        started = time.perf_counter()
        system.run(workflow, {"items": items}).result(timeout=_RESULT_TIMEOUT)
        elapsed = time.perf_counter() - started
    peaks.append(sampler.peak)
    return elapsed / items * 1e6


def _map_rows(config: Config) -> list[Row]:
    items = config.size(10_000, 200)
    mapped = map_items(_items, noop)
    fanned = parallel(*[task(noop) for _ in range(items)])
    peaks: list[float] = []
    parallel_peaks: list[float] = []
    value, baseline = interleaved(
        config.repeats,
        [
            ("actorflow map_items", lambda: _map_us_per_item(mapped, items, peaks)),
            (
                "actorflow parallel, same steps",
                lambda: _map_us_per_item(fanned, items, parallel_peaks),
            ),
        ],
    )
    del peaks[0], parallel_peaks[0]  # the warm-up runs of interleaved()
    name = f"map_items over {items:,} no-op items"
    return [
        Row("steps", f"{name}: time", "us/item", value, (baseline,), Target("ratio", "<=", 1.2)),
        Row(
            "steps",
            f"{name}: peak threads",
            "threads",
            Series("actorflow map_items", tuple(peaks)),
            (Series("actorflow parallel, same steps", tuple(parallel_peaks)),),
            note="items read from the context at run time; default max_running_steps=256",
        ),
    ]


def run(config: Config) -> list[Row]:
    return [
        *_chain_rows(config),
        *_async_chain_rows(config),
        *_fan_out_rows(config),
        *_map_rows(config),
    ]


FAMILY = Family("steps", run)
