"""The well-known paths on every node, defined here once.

Every other path names an actor spawned with ``ActorSystem.spawn(..., name=path)``,
which may not start with ``$``: these can never collide with one.
"""

from __future__ import annotations

__all__ = ["ACTORS_PATH", "LOCKS_PATH", "RUN_PREFIX", "SYSTEM_PATH", "run_path"]

SYSTEM_PATH = "$system"  # step requests, remote spawn, stats, control, ping
ACTORS_PATH = "$actors"  # death watch, and starting/stopping supervised children
LOCKS_PATH = "$locks"  # the lock manager's requests (on the node ``locks_on`` names)
RUN_PREFIX = "$run/"  # + run id: the mailbox of a run coordinator, for its remote steps


def run_path(run_id: str) -> str:
    """The path of run ``run_id``'s coordinator: results and events of its remote steps."""
    return RUN_PREFIX + run_id
