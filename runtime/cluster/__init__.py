"""Membership in a cluster: the node's message handler, remote steps, refs, registry, locks.

Builds on ``transport`` (sockets, envelopes) and names tasks the way
``runtime.workflow`` does; the engine sees it only through the step protocol.
"""

from runtime.cluster._cluster import Cluster
from runtime.cluster._locks import Lock, LockClient
from runtime.cluster._refs import Ref
from runtime.cluster._registry import Registry
from runtime.cluster._wire import NodeLost, RemoteReport

__all__ = ["Cluster", "Lock", "LockClient", "NodeLost", "Ref", "Registry", "RemoteReport"]
