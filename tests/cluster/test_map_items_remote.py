"""map_items across two members: every item is a step placed on the peer like any other."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import ActorSystem, NodeState, current_step, map_items

pytestmark = pytest.mark.timeout(30)


def items_of(ctx: dict[str, Any]) -> list[int]:
    return list(ctx["items"])


def square_where(item: int) -> list[Any]:
    """Module-level, so both members name it ``tests.cluster...:square_where``."""
    return [item * item, current_step().step]


def test_the_items_run_on_the_peer_that_registered_the_workflow(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    wf = map_items(items_of, square_where).named("squares")
    peer.register_workflow(wf)  # registers the per-item task: walks see through the map
    handle = coordinator.run(wf, {"items": [1, 2, 3, 4]})
    outputs = handle.result(10)
    assert [out[0] for out in outputs] == [1, 4, 9, 16]
    assert [out[1] for out in outputs] == [f"square_where[{i}]" for i in range(4)]
    steps = handle.steps()
    assert {(s.node, s.state) for s in steps} == {("peer", NodeState.COMPLETED)}
