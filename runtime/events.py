"""Events of runs and of the cluster, and the observers that receive them.

``system.events.subscribe(observer)`` sees every run; ``wf.monitored(obs)``
or ``system.run(..., observers=[obs])`` see one workflow's. Observers run on
the event bus thread, in emission order; one that raises is logged and kept.
"""

from __future__ import annotations

import logging

from actors import StateChanged
from actors.events import (
    Canceled,
    Checkpointed,
    Completed,
    Event,
    EventBus,
    Failed,
    NodeDown,
    NodeUp,
    Planned,
    Retrying,
    Started,
    WorkflowObserver,
)

__all__ = [
    "Canceled",
    "Checkpointed",
    "Completed",
    "Event",
    "EventBus",
    "Failed",
    "LoggingObserver",
    "NodeDown",
    "NodeUp",
    "Planned",
    "Retrying",
    "Started",
    "StateChanged",
    "WorkflowObserver",
]


class LoggingObserver:
    """Logs every event on stdlib ``logging``: failures at WARNING, the rest at ``level``.

    Each record carries the event (``record.event``) and its ``run_id``,
    ``step`` and ``attempt`` as attributes, so ``runtime.JsonFormatter`` (or a
    filter) can use them without parsing the message.
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("actorflow.events")
        self.level = level

    def on_event(self, event: Event) -> None:
        level = logging.WARNING if isinstance(event, Failed | NodeDown) else self.level
        if not self.logger.isEnabledFor(level):
            return
        attempt = getattr(event, "attempt", None) or getattr(event, "attempts", None)
        extra = {
            "event": event,
            "run_id": getattr(event, "run_id", None),
            "step": getattr(event, "step", None),
            "attempt": attempt,
        }
        if isinstance(event, StateChanged):
            self.logger.log(
                level,
                "run %s step %s: %s -> %s",
                event.run_id,
                event.step,
                event.old,
                event.new,
                extra=extra,
            )
            return
        self.logger.log(level, "%s", event, extra=extra)
