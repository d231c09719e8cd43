"""Profile the per-step overhead row: ``python -m bench._profile [--steps N] [--top K]``.

cProfile sees only the thread that enabled it, and every step runs on other
threads (coordinator, node actors, event dispatcher, clock). So a
``threading.setprofile`` hook enables one ``cProfile.Profile`` in each thread
as it starts; after the run the per-thread stats are merged and printed by
own time and by cumulative time. Profiling slows everything ~2-3x; read the
shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time
from typing import Any

from bench._steps import linear_chain
from runtime import ActorSystem

__all__ = ["profile_chain"]


def profile_chain(steps: int) -> tuple[pstats.Stats, float]:
    """Run a ``steps``-long no-op chain with every new thread profiled; merged stats, seconds."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_profiling(*_: Any) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    main_profile = cProfile.Profile()
    threading.setprofile(start_profiling)
    try:
        main_profile.enable()
        with ActorSystem("bench-profile") as system:
            started = time.perf_counter()
            system.run(linear_chain(steps), {}).result(timeout=600)
            elapsed = time.perf_counter() - started
        main_profile.disable()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    stats = pstats.Stats(main_profile)
    with lock:
        for profile in profiles:
            stats.add(profile)
    return stats, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    stats, elapsed = profile_chain(args.steps)
    print(f"{args.steps} steps in {elapsed:.2f}s under cProfile, all threads merged")
    stats.stream = sys.stdout  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
