"""Prometheus metrics of one ActorSystem: ``ActorSystem(metrics="127.0.0.1:9464")``.

Needs the ``metrics`` extra (``pip install 'actorflow[metrics]'``): ``prometheus_client``
is imported only when a system asks for metrics, so the core needs nothing more.

Each system has its own ``CollectorRegistry`` (never the process-global one)
and its own HTTP server thread, which ``close`` stops, freeing the port.
Step figures come from the event bus, counted on the node that coordinates
the run wherever its steps ran (labelled by workflow and task name): the
run-level view. A node that runs steps for another coordinator counts them
too, under their own names (``actorflow_hosted_steps_*``, labelled by task
and coordinator; the workflow is not on the wire), so summing both never
counts an attempt twice. The others are read when Prometheus scrapes: runs by
state, attempts queued under ``max_running_steps``, members up, the
transport's frame counters.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors import NodeState
from actors import events as ev

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from runtime._system import ActorSystem

__all__ = ["Metrics", "parse_metrics_address", "task_label"]

log = logging.getLogger(__name__)

_ITEM_AND_REPEAT = re.compile(r"(?:\[\d+\])*(?:#\d+)?$")

# Seconds: steps run from milliseconds to hours; a store write from microseconds up.
STEP_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)
WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def task_label(step: str) -> str:
    """The task name of a step key: ``fetch[3]`` and ``fetch#2`` are both ``fetch``.

    Keys carry an item index per enclosing ``map_items`` and ``#n`` for a name
    repeated in one workflow; labels keep only the name, so their number is
    bounded by the workflow's tasks, not by its items.
    """
    return _ITEM_AND_REPEAT.sub("", step) or step


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0 picks a free one) -> (host, port)."""
    if not isinstance(text, str):
        raise TypeError(f"metrics must be 'HOST:PORT', got {text!r}")
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"metrics must be 'HOST:PORT' (e.g. 127.0.0.1:9464), got {text!r}")
    return host, int(port_text)


def _prometheus() -> Any:
    try:
        import prometheus_client  # noqa: PLC0415 - optional: only systems with metrics need it
    except ImportError as exc:
        raise ImportError(
            "ActorSystem(metrics=...) needs prometheus_client: pip install 'actorflow[metrics]'"
        ) from exc
    return prometheus_client


@dataclass(frozen=True)
class _Scraped:
    """The figures read from the system at scrape time."""

    system: ActorSystem

    def describe(self) -> list[Metric]:
        return []  # no description: collect() runs only on a scrape, not at registration

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (  # noqa: PLC0415 - optional
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        system = self.system
        runs = GaugeMetricFamily(
            "actorflow_runs",
            "Runs this system holds in memory (live and recently finished), by state",
            labels=["state"],
        )
        by_state = Counter(run.state for run in system._runs.stats())
        for state in NodeState:
            runs.add_metric([str(state)], by_state.get(str(state), 0))
        yield runs
        yield GaugeMetricFamily(
            "actorflow_attempts_waiting",
            "Step attempts queued under max_running_steps, over all runs of this system",
            value=system._runs.waiting.count(),
        )
        members = system.members()
        yield GaugeMetricFamily(
            "actorflow_members_up",
            "Cluster members this node sees up (itself included)",
            value=sum(1 for status in members.values() if status == "up"),
        )
        if system.cluster is None:
            return
        stats = system.cluster.transport.stats()
        yield CounterMetricFamily(
            "actorflow_transport_frames_in", "Frames received", value=stats.frames_in
        )
        yield CounterMetricFamily(
            "actorflow_transport_frames_out", "Frames handed to a socket", value=stats.frames_out
        )
        dropped = CounterMetricFamily(
            "actorflow_transport_frames_dropped", "Frames dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats.frames_dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield GaugeMetricFamily(
            "actorflow_transport_outbox_backlog",
            "Outgoing frames queued, not yet handed to a socket",
            value=stats.outbox_backlog,
        )
        yield GaugeMetricFamily(
            "actorflow_transport_held_bytes",
            "Bytes of received frames not handled yet (peers sending faster than handled)",
            value=stats.held_bytes,
        )
        yield GaugeMetricFamily(
            "actorflow_transport_shed_peers",
            "Peers whose tells to an unknown actor are dropped unread for now (shed)",
            value=len(stats.shed_peers),
        )


class _StepCounter:
    """The event-fed metrics: step counters and durations, by workflow and task."""

    def __init__(self, prom: Any, registry: Any) -> None:
        labels = ["workflow", "task"]
        self.started = prom.Counter(
            "actorflow_steps_started", "Step attempts started", labels, registry=registry
        )
        self.completed = prom.Counter(
            "actorflow_steps_completed", "Steps completed", labels, registry=registry
        )
        self.failed = prom.Counter(
            "actorflow_steps_failed",
            "Step attempts failed (final: no retry follows)",
            [*labels, "final"],
            registry=registry,
        )
        self.retried = prom.Counter(
            "actorflow_steps_retried", "Step retries scheduled", labels, registry=registry
        )
        self.duration = prom.Histogram(
            "actorflow_step_duration_seconds",
            "Duration of a completed step's successful attempt",
            labels,
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self.checkpoint = prom.Histogram(
            "actorflow_checkpoint_write_seconds",
            "Duration of one checkpoint store write (a journal flush or a record)",
            buckets=WRITE_BUCKETS,
            registry=registry,
        )


class _HostedCounter:
    """Attempts this node ran for runs other nodes coordinate, by task and coordinator."""

    def __init__(self, prom: Any, registry: Any) -> None:
        labels = ["task", "coordinator"]
        self.started = prom.Counter(
            "actorflow_hosted_steps_started",
            "Step attempts this node started for another node's run",
            labels,
            registry=registry,
        )
        self.completed = prom.Counter(
            "actorflow_hosted_steps_completed",
            "Step attempts this node completed for another node's run",
            labels,
            registry=registry,
        )
        self.failed = prom.Counter(
            "actorflow_hosted_steps_failed",
            "Step attempts this node ran that failed (the coordinator decides on a retry)",
            labels,
            registry=registry,
        )
        self.duration = prom.Histogram(
            "actorflow_hosted_step_duration_seconds",
            "Duration of a completed attempt this node ran for another node's run",
            labels,
            buckets=STEP_BUCKETS,
            registry=registry,
        )


class Metrics:
    """The metrics of ``system`` and the HTTP endpoint serving them; ``close`` stops it.

    Also the ``HostedSteps`` observer of the system's cluster membership.
    """

    def __init__(self, system: ActorSystem, address: str) -> None:
        host, port = parse_metrics_address(address)
        prom = _prometheus()
        self.registry = prom.CollectorRegistry(auto_describe=False)
        self._steps = _StepCounter(prom, self.registry)
        self._hosted = _HostedCounter(prom, self.registry)
        self.registry.register(_Scraped(system))
        self._workflows: dict[str, str] = {}  # run id -> workflow name, while the run lives
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[[Any, str, str], None]] = {
            ev.Started: self._started,
            ev.Completed: self._completed,
            ev.Failed: self._failed,
            ev.Retrying: self._retrying,
        }
        self._server, self._thread = prom.start_http_server(port, host, registry=self.registry)
        self.address = f"{host}:{self._server.server_port}"
        self._thread.name = f"actorflow-metrics-{system.name}"

    # -- hooks: Runs calls these -----------------------------------------------------

    def run_started(self, run_id: str, workflow: str) -> None:
        """A run this system coordinates starts (before its first event)."""
        with self._lock:
            self._workflows[run_id] = workflow

    def checkpoint_written(self, seconds: float) -> None:
        self._steps.checkpoint.observe(seconds)

    # -- HostedSteps: the cluster's step host calls these --------------------------------

    def hosted_started(self, coordinator: str, step: str) -> None:
        self._hosted.started.labels(task_label(step), coordinator).inc()

    def hosted_ended(self, coordinator: str, step: str, state: NodeState, seconds: float) -> None:
        labels = (task_label(step), coordinator)
        if state is NodeState.COMPLETED:
            self._hosted.completed.labels(*labels).inc()
            self._hosted.duration.labels(*labels).observe(seconds)
        elif state is NodeState.FAILED:
            self._hosted.failed.labels(*labels).inc()

    # -- WorkflowObserver --------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        run_id = getattr(event, "run_id", None)
        if run_id is None:
            return
        step = getattr(event, "step", None)
        with self._lock:
            workflow = self._workflows.get(run_id)
            if workflow is not None and step is None and _ends_run(event):
                del self._workflows[run_id]
        handler = self._handlers.get(type(event))
        if workflow is None or step is None or handler is None:
            return  # a run-level event, or a step of a run another node coordinates
        handler(event, workflow, task_label(step))

    def _started(self, event: ev.Started, workflow: str, task: str) -> None:
        self._steps.started.labels(workflow, task).inc()

    def _completed(self, event: ev.Completed, workflow: str, task: str) -> None:
        self._steps.completed.labels(workflow, task).inc()
        self._steps.duration.labels(workflow, task).observe(max(event.duration, 0.0))

    def _failed(self, event: ev.Failed, workflow: str, task: str) -> None:
        self._steps.failed.labels(workflow, task, "true" if event.final else "false").inc()

    def _retrying(self, event: ev.Retrying, workflow: str, task: str) -> None:
        self._steps.retried.labels(workflow, task).inc()

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)


def _ends_run(event: ev.Event) -> bool:
    return isinstance(event, ev.Completed | ev.Canceled) or (
        isinstance(event, ev.Failed) and event.final
    )
