"""A node runs only what it registered; a name it does not know is refused with the fix."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import ActorNotFound, ActorSystem, task
from runtime.cluster import Registry

pytestmark = pytest.mark.timeout(30)


def test_an_unknown_task_names_the_fix() -> None:
    with pytest.raises(
        ActorNotFound, match=r"not registered on node 'w1'; start the node with --app"
    ):
        Registry().task("shop.tasks:fetch", node="w1")


# Issue 11: a task defined in __main__ failed on a cluster with no hint of the fix.
def test_a_task_defined_in_main_is_refused_with_a_hint_to_move_it(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, _peer = coordinator_and_peer

    def scripted(ctx: Any) -> str:
        return "ran"

    scripted.__module__ = "__main__"  # as if defined in the script `python my_script.py` ran
    scripted.__qualname__ = "scripted"
    handle = coordinator.run(task(scripted, on="peer"), {})
    with pytest.raises(Exception, match=r"defined in the script that was run \(__main__\)"):
        handle.result(10)
