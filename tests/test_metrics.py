"""ActorSystem(metrics=...): Prometheus metrics scraped over real HTTP from a real system."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    Fixed,
    MemoryStore,
    RetryPolicy,
    TemporaryError,
    map_items,
    node_command,
    parallel,
    task,
)
from runtime import events as ev
from runtime._cli import build_parser
from runtime._metrics import parse_metrics_address, task_label
from tests.support import ROOT, EventRecorder, gate, wait_until

pytestmark = pytest.mark.timeout(30)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(system: ActorSystem) -> Samples:
    """Every sample at ``system``'s ``/metrics``, by (name, labels)."""
    assert system.metrics_address is not None
    return scrape_url(f"http://{system.metrics_address}/metrics")


def scrape_url(url: str) -> Samples:
    """Every sample a Prometheus endpoint at ``url`` shows, by (name, labels)."""
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def extract(ctx: dict[str, Any]) -> str:
    return "extracted"


def fetch(item: int) -> int:
    return item * 10


def test_task_labels_drop_item_indexes_and_repeat_numbers() -> None:
    assert task_label("fetch[3]") == "fetch"
    assert task_label("fetch[2][5]#2") == "fetch"
    assert task_label("load#3") == "load"
    assert task_label("load") == "load"


@pytest.mark.parametrize("text", ["9464", "127.0.0.1", "127.0.0.1:http", ":9464", "h:70000"])
def test_a_bad_metrics_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_metrics_address(text)
    with pytest.raises(ValueError, match="HOST:PORT"):
        ActorSystem("bad", metrics=text)


def test_ipv6_addresses_take_brackets() -> None:
    assert parse_metrics_address("[::1]:9464") == ("::1", 9464)


def test_a_run_with_a_retry_a_map_and_checkpoints_is_counted() -> None:
    calls = {"n": 0}

    def flaky(ctx: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TemporaryError("transient")
        return ctx

    wf = (
        task(extract)
        .then(task(flaky).retry(RetryPolicy(2, Fixed(0.01))))
        .then(map_items(lambda ctx: ctx["ids"], fetch))
        .named("etl")
    )
    with ActorSystem(
        "metrics",
        metrics="127.0.0.1:0",
        store=MemoryStore(),
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
    ) as system:
        assert system.run(wf, {"ids": [1, 2, 3]}).result(10) == [10, 20, 30]
        assert wait_until(
            lambda: (
                value(
                    scrape(system), "actorflow_steps_completed_total", workflow="etl", task="fetch"
                )
                == 3
            )
        )
        samples = scrape(system)

    def step(name: str, task_name: str, **more: str) -> float | None:
        return value(samples, name, workflow="etl", task=task_name, **more)

    assert step("actorflow_steps_started_total", "flaky") == 2
    assert step("actorflow_steps_failed_total", "flaky", final="false") == 1
    assert step("actorflow_steps_failed_total", "flaky", final="true") is None
    assert step("actorflow_steps_retried_total", "flaky") == 1
    assert step("actorflow_steps_completed_total", "flaky") == 1
    assert step("actorflow_steps_started_total", "extract") == 1
    assert step("actorflow_steps_started_total", "fetch") == 3  # one label, not fetch[0..2]
    assert not any("fetch[" in str(labels) for _name, labels in samples)
    assert step("actorflow_step_duration_seconds_count", "fetch") == 3
    assert step("actorflow_step_duration_seconds_count", "flaky") == 1
    # The run's start, its five completed steps, and its outcome at least.
    written = value(samples, "actorflow_checkpoint_write_seconds_count")
    assert written is not None
    assert written >= 3
    assert value(samples, "actorflow_runs", state="Completed") == 1
    assert value(samples, "actorflow_runs", state="Running") == 0
    assert value(samples, "actorflow_attempts_waiting") == 0
    assert value(samples, "actorflow_members_up") == 1
    assert value(samples, "actorflow_transport_frames_in_total") is None  # not a member


def test_attempts_waiting_under_max_running_steps_are_a_gauge() -> None:
    release, blocked = gate()
    wf = parallel(*(task(blocked, name=f"b{i}") for i in range(3))).named("wide")
    with ActorSystem("bounded", metrics="127.0.0.1:0", max_running_steps=1) as system:
        handle = system.run(wf, {})
        assert wait_until(lambda: value(scrape(system), "actorflow_attempts_waiting") == 2)
        assert value(scrape(system), "actorflow_runs", state="Running") == 1
        release.set()
        handle.result(10)
        assert wait_until(lambda: value(scrape(system), "actorflow_attempts_waiting") == 0)


def test_a_queued_attempt_of_a_canceled_branch_is_not_counted_as_waiting() -> None:
    # Regression: a canceled branch's queued attempts stayed counted until a slot freed
    # (here: until the blocker ended), though they would never run.
    release, blocked = gate()
    timed_out = parallel(task(fetch, name="q1"), task(fetch, name="q2")).timeout(0.2)
    again_much_later = RetryPolicy(2, Fixed(60), retry_on=lambda error: True)
    wf = parallel(task(blocked, name="blocker"), timed_out.retry(again_much_later)).named("cut")
    with ActorSystem("cut", metrics="127.0.0.1:0", max_running_steps=1) as system:
        recorder = EventRecorder()
        system.events.subscribe(recorder)
        handle = system.run(wf, 1)
        assert wait_until(lambda: value(scrape(system), "actorflow_attempts_waiting") == 2)
        # The branch timed out: q1 and q2 are canceled before they ever started.
        recorder.wait_for(lambda e: isinstance(e, ev.Retrying) and e.run_id == handle.id, 10)
        assert value(scrape(system), "actorflow_runs", state="Running") == 1
        assert value(scrape(system), "actorflow_attempts_waiting") == 0
        handle.cancel()
        release.set()


def test_a_cluster_member_reports_members_and_transport_frames() -> None:
    endpoint = "tcp://127.0.0.1:0"
    with ActorSystem("seed", listen=endpoint, plaintext=True, metrics="127.0.0.1:0") as seed:
        assert seed.address is not None
        with ActorSystem("worker", listen=endpoint, join=[seed.address], plaintext=True):
            assert wait_until(lambda: value(scrape(seed), "actorflow_members_up") == 2, 10)
            samples = scrape(seed)
            frames_in = value(samples, "actorflow_transport_frames_in_total")
            assert frames_in is not None
            assert frames_in > 0
            frames_out = value(samples, "actorflow_transport_frames_out_total")
            assert frames_out is not None
            assert frames_out > 0
            assert value(samples, "actorflow_transport_outbox_backlog") is not None
            assert value(samples, "actorflow_transport_held_bytes") is not None
            assert value(samples, "actorflow_transport_shed_peers") == 0


def test_shutdown_stops_the_server_and_frees_the_port() -> None:
    system = ActorSystem("first", metrics="127.0.0.1:0")
    address = system.metrics_address
    assert address is not None
    port = int(address.rpartition(":")[2])
    assert value(scrape(system), "actorflow_members_up") == 1
    system.shutdown()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{address}/metrics", timeout=2)
    # The port is free again: a second system (with its own registry) binds it.
    with ActorSystem("second", metrics=f"127.0.0.1:{port}") as second:
        assert second.metrics_address == f"127.0.0.1:{port}"
        assert value(scrape(second), "actorflow_members_up") == 1
    with socket.socket() as sock:  # as any server binds: past the scrapes' TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_a_system_without_metrics_serves_none() -> None:
    with ActorSystem("plain") as system:
        assert system.metrics_address is None


def test_a_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"actorflow\[metrics\]"):
        ActorSystem("no-client", metrics="127.0.0.1:0")


def test_the_node_command_takes_a_metrics_address() -> None:
    base = ["node", "--name", "n1", "--plaintext", "--listen", "tcp://127.0.0.1:0"]
    assert build_parser().parse_args([*base, "--metrics", "127.0.0.1:9464"]).metrics == (
        "127.0.0.1:9464"
    )
    assert build_parser().parse_args(base).metrics is None


def test_an_actorflow_node_process_serves_metrics_until_it_stops() -> None:
    command = node_command("n1", plaintext=True, metrics="127.0.0.1:0", drain_timeout=1)
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # bounded by the test's timeout
        assert first.startswith("metrics at http://127.0.0.1:"), first
        url = first.split(" at ", 1)[1].strip()
        assert process.stdout.readline().startswith("node n1 up at ")
        with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
            families = {f.name for f in text_string_to_metric_families(response.read().decode())}
        assert {"actorflow_members_up", "actorflow_transport_frames_in"} <= families
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
