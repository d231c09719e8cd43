"""``python -m bench [--smoke] [--json PATH] [--repeats N] [--only FAMILY,...]``.

Runs every registered row family (``bench/_registry.py``) in this process,
prints one table to stdout (progress goes to stderr) and writes the same
figures as JSON. Exit status 1 when a family crashed; a MISS is a figure, not
a failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

from bench._machine import machine_facts
from bench._registry import families
from bench._row import Config, Row
from bench._table import document, render, write_json

_RESULTS = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="actorflow benchmarks against the raw building blocks"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, 1 repetition: does it run?"
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the JSON (default bench/results/: latest, partial or smoke.json)",
    )
    parser.add_argument("--repeats", type=int, help="repetitions per figure (default 5; smoke 1)")
    parser.add_argument("--only", help="comma-separated family names to run (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    repeats = args.repeats or (1 if args.smoke else 5)
    if repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {repeats}")
    config = Config(smoke=args.smoke, repeats=repeats)
    selected = set(args.only.split(",")) if args.only else None
    machine = machine_facts()
    rows: list[Row] = []
    crashed = False
    for family in families():
        if selected is not None and family.name not in selected:
            continue
        started = time.perf_counter()
        print(f"bench: running {family.name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(family.run(config))
        except Exception as exc:
            crashed = True
            traceback.print_exc()
            rows.append(
                Row(
                    family.name,
                    f"{family.name} (crashed)",
                    "-",
                    None,
                    note=f"{type(exc).__name__}: {exc}",
                    unavailable="ERROR",
                )
            )
        print(
            f"bench: {family.name} took {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    print(render(rows, machine, config))
    # a partial run must not replace the full table the README is made from
    name = "smoke" if config.smoke else ("partial" if selected is not None else "latest")
    path = args.json or _RESULTS / f"{name}.json"
    write_json(path, document(rows, machine, config))
    print(f"\nJSON: {path}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
