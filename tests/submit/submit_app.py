"""The app the submission tests' nodes run: ``actorflow node --app tests.submit.submit_app``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import ActorSystem, PermanentError, Workflow, register_persistable, task


def greet(ctx: dict[str, Any]) -> str:
    return f"hello {ctx['who']}"


def wait_for_gate(ctx: dict[str, Any]) -> str:
    """Runs until the gate file exists (the test opens it), at most 60 s."""
    gate = Path(ctx["gate"])
    deadline = time.monotonic() + 60
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.02)  # a file nobody signals: polled, bounded by the deadline
    ctx["said"] = "opened"
    return "opened"


def shout(ctx: dict[str, Any]) -> str:
    return str(ctx["said"]).upper()


def refuse(ctx: dict[str, Any]) -> str:
    raise PermanentError(f"refused {ctx!r}")


def nothing(ctx: Any) -> Any:
    return ctx


def workflows() -> list[Workflow[Any, Any]]:
    return [
        task(greet).named("greet"),
        task(wait_for_gate).then(task(shout)).named("gated"),
        task(refuse).named("refuse"),
        task(nothing).named("nothing"),
    ]


@register_persistable
@dataclass
class Who:
    """A context a client's JSON is turned into (``register_workflow(context=...)``)."""

    who: str


def greet_who(ctx: Who) -> str:
    return f"hello {ctx.who}, from an object"


def register(system: ActorSystem) -> None:
    system.register_workflow(
        task(greet_who).named("greet-object"), context=lambda value: Who(**value)
    )
