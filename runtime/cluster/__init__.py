"""Membership in a cluster: the node's message handler, remote steps, refs, registry, locks.

Builds on ``transport`` (sockets, envelopes) and names tasks the way
``runtime.workflow`` does; the engine sees it only through the step protocol
(the message classes of ``_messages``).
"""

from runtime.cluster._cluster import Cluster, ClusterSettings, Unplaceable
from runtime.cluster._local import LocalNode
from runtime.cluster._locks import Lock, LockClient
from runtime.cluster._messages import CancelStep, EndRun, NodeLost, RunStep, StepOutcome
from runtime.cluster._paths import ACTORS_PATH, LOCKS_PATH, RUN_PREFIX, SYSTEM_PATH, run_path
from runtime.cluster._refs import Ref
from runtime.cluster._registry import ACTORS, Registry
from runtime.cluster._store_locks import StoreLockClient
from runtime.cluster._wire import require

__all__ = [
    "ACTORS",
    "ACTORS_PATH",
    "LOCKS_PATH",
    "RUN_PREFIX",
    "SYSTEM_PATH",
    "CancelStep",
    "Cluster",
    "ClusterSettings",
    "EndRun",
    "LocalNode",
    "Lock",
    "LockClient",
    "NodeLost",
    "Ref",
    "Registry",
    "RunStep",
    "StepOutcome",
    "StoreLockClient",
    "Unplaceable",
    "require",
    "run_path",
]
