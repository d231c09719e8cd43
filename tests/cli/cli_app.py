"""A tiny app for the CLI tests: ``actorflow resume --app tests.cli.cli_app``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime import PermanentError, Workflow, task


def _append(ctx: dict[str, Any], name: str) -> None:
    with Path(ctx["log"]).open("a") as log:
        log.write(name + "\n")


def first(ctx: dict[str, Any]) -> str:
    _append(ctx, "first")
    ctx["first"] = True
    return "one"


def fragile(ctx: dict[str, Any]) -> str:
    """Fails for good while the marker file exists (the "cause" a person fixes)."""
    _append(ctx, "fragile")
    if Path(ctx["marker"]).exists():
        raise PermanentError(f"marker {ctx['marker']} is present")
    if Path(ctx["marker"] + ".exit").exists():
        raise SystemExit(3)  # a task that would end the process running it
    return "two"


def last(ctx: dict[str, Any]) -> str:
    _append(ctx, "last")
    return f"done after first={ctx['first']}"


def workflows() -> list[Workflow[Any, Any]]:
    return [task(first).then(task(fragile)).then(task(last)).named("cli-demo")]
