"""Logs with their context: ``current_step().log`` records and ``JsonFormatter`` lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    Fixed,
    JsonFormatter,
    LoggingObserver,
    RetryPolicy,
    TemporaryError,
    current_step,
    task,
)

pytestmark = pytest.mark.timeout(30)


class Records(logging.Handler):
    """Keeps every record it handles (records are handed over on the task's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def step_records() -> Iterator[Records]:
    logger = logging.getLogger("actorflow.step")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_step_log_records_carry_run_step_and_attempt(
    system: ActorSystem, step_records: Records
) -> None:
    def flaky(ctx: Any) -> str:
        info = current_step()
        info.log.info("attempt %d working", info.attempt, extra={"rows": 12})
        if info.attempt == 1:
            raise TemporaryError("once")
        return "ok"

    handle = system.run(task(flaky, name="load", retry=RetryPolicy(2, Fixed(0.01))), {})
    assert handle.result(5) == "ok"
    seen = [
        (r.run_id, r.step, r.attempt, r.getMessage(), r.rows)  # type: ignore[attr-defined]
        for r in step_records.records
    ]
    assert seen == [
        (handle.id, "load", 1, "attempt 1 working", 12),
        (handle.id, "load", 2, "attempt 2 working", 12),
    ]
    assert {r.name for r in step_records.records} == {"actorflow.step"}


def test_json_formatter_writes_one_object_per_step_record(
    system: ActorSystem, step_records: Records
) -> None:
    def work(ctx: Any) -> None:
        current_step().log.warning("half done\nstill going")
        try:
            raise ValueError("bad row")
        except ValueError:
            current_step().log.exception("skipped a row")

    handle = system.run(task(work), {})
    handle.result(5)
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in step_records.records]
    assert all("\n" not in line for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert {k: first[k] for k in ("level", "logger", "message", "run_id", "step", "attempt")} == {
        "level": "WARNING",
        "logger": "actorflow.step",
        "message": "half done\nstill going",
        "run_id": handle.id,
        "step": "work",
        "attempt": 1,
    }
    assert "ValueError: bad row" in second["exc"]


def test_json_formatter_writes_event_records_with_the_events_fields(system: ActorSystem) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json_events")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    calls = {"n": 0}

    def flaky(ctx: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TemporaryError("locked")
        return 1

    try:
        wf = task(flaky, retry=RetryPolicy(2, Fixed(0.01)))
        handle = system.run(wf, {}, observers=[LoggingObserver(logger)])
        handle.result(5)
    finally:
        logger.removeHandler(handler)
    objects = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(o["run_id"] == handle.id and o["logger"] == "tests.json_events" for o in objects)
    kinds = [(o["event"], o["step"]) for o in objects if o["event"] != "StateChanged"]
    assert kinds == [
        ("Started", None),
        ("Planned", None),
        ("Started", "flaky"),
        ("Failed", "flaky"),
        ("Retrying", "flaky"),
        ("Started", "flaky"),
        ("Completed", "flaky"),
        ("Completed", None),
    ]
    failed = next(o for o in objects if o["event"] == "Failed")
    assert (failed["level"], failed["error"], failed["final"], failed["attempt"]) == (
        "WARNING",
        "TemporaryError: locked",
        False,
        1,
    )
    retrying = next(o for o in objects if o["event"] == "Retrying")
    assert (retrying["attempt"], retrying["delay"]) == (2, 0.01)
    planned = next(o for o in objects if o["event"] == "Planned")
    assert (planned["total"], planned["open"]) == (1, 0)
    state = next(o for o in objects if o["event"] == "StateChanged")
    assert (state["old"], state["new"]) == ("Pending", "Running")


def test_json_formatter_handles_records_without_a_run() -> None:
    record = logging.LogRecord("plain", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "INFO",
        "logger": "plain",
        "message": "hello you",
    }
