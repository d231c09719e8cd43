"""actorflow benchmarks: every figure measured beside its raw baseline, in one run.

Run ``python -m bench`` (``make bench``) for the full table, ``python -m bench
--smoke`` (``make bench-smoke``) for a quick check that every row still runs.
The same figures go to ``bench/results/latest.json`` (smoke:
``bench/results/smoke.json``; ``--json PATH`` overrides either).

Adding rows (e.g. ``bench/_remote.py``, remote tell/ask over ZeroMQ)::

    from bench import Config, Family, Row, Series, Target, interleaved

    def run(config: Config) -> list[Row]:
        messages = config.size(20_000, 200)         # full size, smoke size
        value, baseline = interleaved(
            config.repeats,                          # one sample per repetition
            [("actorflow remote tell", lambda: my_rate(messages)),
             ("raw pyzmq PUSH/PULL", lambda: raw_rate(messages))],
        )
        return [Row("remote", "remote tell throughput", "msg/s", value,
                    (baseline,), Target("ratio", ">=", 0.5))]

    FAMILY = Family("remote", run)

then add ``"bench._remote"`` to ``FAMILY_MODULES`` in ``bench/_registry.py``.

The contract:

- ``run(config)`` runs in the benchmark process, on the main thread, after the
  families before it; it must leave no actor, thread, socket or file behind.
  Work that must not share the process (memory) runs in a subprocess.
- Each ``Series`` holds one float per repetition (``config.repeats`` of
  them), all in the row's ``unit``; a row's ``value`` and its ``baselines``
  are measured in the same run, interleaved (``interleaved`` rotates their
  order and warms each up once). The table reports median and min-max.
- ``Row.ratio`` is value median / first baseline's median; other baselines
  are informative. ``Target("ratio" | "value", "<=" | ">=", limit)`` gives
  PASS/MISS; ``Target("delta", ...)`` compares value median minus the first
  baseline's median, in the row's unit (the table shows it signed in the
  ratio column); a row without a target is INFO.
- A row that cannot run yet has ``value=None``, ``unavailable="N/A"`` and a
  ``note`` saying what is missing. If ``run`` raises, the runner prints one
  ERROR row for the family, carries on, and exits 1 at the end.
- Smoke sizes must keep the whole smoke run under ~30 s on 2 cores.
"""

from __future__ import annotations

from bench._row import Config, Family, Row, Series, Target, interleaved

__all__ = ["Config", "Family", "Row", "Series", "Target", "interleaved"]
