"""Actors across hosts with real processes and kill -9: remote children, watchers, singletons."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from runtime import ChildSpec, NodeLoad, Ref, TerminationReason
from tests.actors_remote.procs import AppWorker, coordinator, workers
from tests.actors_remote.remote_app import FencedFile
from tests.actors_remote.watch_kit import Counter, Inbox
from tests.support import wait_until


class OnWorkers:
    """Placement: the first live worker (never the coordinator)."""

    def choose(self, step: str, candidates: Sequence[NodeLoad]) -> str:
        workers_up = sorted(c.node for c in candidates if c.node.startswith("worker"))
        return workers_up[0] if workers_up else candidates[0].node


@pytest.mark.timeout(120)
def test_a_child_on_a_killed_worker_restarts_on_another_with_its_snapshot(tmp_path: Path) -> None:
    store = tmp_path / "state.db"
    with coordinator(store) as system, workers(system, store, ["worker-a", "worker-b"]) as procs:
        supervisor = system.supervise(
            [ChildSpec("counter", Counter, placement=OnWorkers())], name="sup"
        )
        child: Ref = supervisor.ask("children")["counter"]
        assert child.address.node == "worker-a"
        assert [child.ask("add", timeout=10) for _ in range(5)] == [1, 2, 3, 4, 5]
        assert child.ask("get", timeout=10) == [5, procs["worker-a"].pid]
        inbox = Inbox()
        system.watch(child, inbox)  # confirmed or not before the kill: NODE_DOWN either way

        procs["worker-a"].kill()

        [terminated] = inbox.wait(1, timeout=30)
        assert terminated.address == child.address
        assert terminated.reason is TerminationReason.NODE_DOWN
        assert wait_until(lambda: _child_node(supervisor) == "worker-b", 30)
        restarted: Ref = supervisor.ask("children")["counter"]
        assert restarted.ask("get", timeout=10) == [5, procs["worker-b"].pid]
        assert restarted.ask("add", timeout=10) == 6
        stats = supervisor.ask("stats")
        assert stats.restarts_total == 1


def _child_node(supervisor: object) -> str | None:
    child = supervisor.ask("children").get("counter")  # type: ignore[attr-defined]
    return child.address.node if isinstance(child, Ref) else None


@pytest.mark.timeout(180)
def test_a_singleton_never_runs_twice_at_once_across_repeated_kills(tmp_path: Path) -> None:
    store, fence = tmp_path / "state.db", tmp_path / "fence.log"
    names = ["worker-1", "worker-2", "worker-3"]
    with (
        coordinator(store) as system,
        workers(system, store, names, "--singleton", str(fence)) as procs,
    ):
        ticker = system.singleton_ref("ticker")
        seen_pids: list[int] = []
        for round_ in range(3):
            ok, pid, _epoch, ticks = ticker.ask("tick", timeout=60)
            assert ok, f"round {round_}: the live instance's write was refused"
            if seen_pids:
                assert pid != seen_pids[-1]
                assert ticks > 1  # resumed from the snapshot of the instance before
            seen_pids.append(pid)
            for _ in range(3):
                assert ticker.ask("tick", timeout=30)[0]
            victim = next(w for w in procs.values() if w.pid == pid)
            victim.kill()
            replacement = f"worker-r{round_}"
            procs[replacement] = AppWorker(
                replacement, str(system.address), store, "--singleton", str(fence)
            )
            procs[replacement].wait_up()
        ok, pid, _epoch, _ticks = ticker.ask("tick", timeout=60)
        assert ok and pid not in seen_pids
    lines = FencedFile(fence).lines()
    accepted = [(token, pid) for kind, token, pid in lines if kind == "accepted"]
    assert [kind for kind, _t, _p in lines].count("refused") == 0
    tokens = [token for token, _pid in accepted]
    assert tokens == sorted(tokens)
    pids_by_token: dict[int, set[int]] = {}
    for token, pid in accepted:
        pids_by_token.setdefault(token, set()).add(pid)
    assert all(len(pids) == 1 for pids in pids_by_token.values()), pids_by_token
    assert len({pid for _t, pid in accepted}) == 4


@pytest.mark.timeout(120)
def test_a_lease_only_singleton_moves_after_its_lease_expires(tmp_path: Path) -> None:
    store, fence = tmp_path / "state.db", tmp_path / "fence.log"
    extra = ("--singleton", str(fence), "--lease-only")
    with (
        coordinator(store) as system,
        workers(system, store, ["worker-1", "worker-2"], *extra) as procs,
    ):
        ticker = system.singleton_ref("ticker")
        ok, pid, epoch, _ticks = ticker.ask("tick", timeout=60)
        assert ok
        next(w for w in procs.values() if w.pid == pid).kill()
        ok, new_pid, new_epoch, ticks = ticker.ask("tick", timeout=60)
        assert ok and new_pid != pid and new_epoch > epoch
        assert ticks == 2  # resumed from the killed instance's snapshot
        lease = system.store.actor_lease("singleton/ticker")  # type: ignore[attr-defined]
        assert lease is not None and lease.epoch == new_epoch
