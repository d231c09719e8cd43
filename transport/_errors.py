"""The root of actorflow's error tree and the errors the wire can raise.

The whole tree is rooted here, in the lowest layer, so that every layer raises
the same types and nothing needs translating twice (decided once, see README)::

    WorkflowError                 root: anything actorflow raises on purpose
    ├── ProtocolError             a frame broke the wire contract (bad shape, size, kind)
    ├── ActorNotFound             the target address names no live actor
    ├── NodeDown                  the peer node is unreachable or declared dead
    │   ├── OutboxFull            the peer did not take our frames in time (backpressure)
    │   ├── NameInUse             a join refused: a live member has this node's name
    │   └── JoinRefused           a join refused: every seed failed the CURVE handshake
    ├── Overloaded                the receiving node refused work from this sender for now
    ├── AskTimeout                no reply to an ask within its deadline
    └── RemoteError               a failure raised on another node, kept readable
    (actors/_errors.py adds the workflow, lock and persistence branches)

Each class is given the public dotted name ``runtime.<Name>`` in ``__module__``
so that a failure crossing hosts is named the same way everywhere.
"""

from __future__ import annotations

__all__ = [
    "ActorNotFound",
    "AskTimeout",
    "JoinRefused",
    "NameInUse",
    "NodeDown",
    "OutboxFull",
    "Overloaded",
    "ProtocolError",
    "RemoteError",
    "WorkflowError",
]


class WorkflowError(Exception):
    """Root of every error actorflow raises on purpose."""


class ProtocolError(WorkflowError):
    """A received frame broke the wire contract; the frame is dropped, the node serves on."""


class ActorNotFound(WorkflowError):
    """The address names no live actor on its node (the sender gets this, never a timeout)."""


class NodeDown(WorkflowError):
    """The node is unreachable or was declared down by the failure detector."""


class OutboxFull(NodeDown):
    """A send waited its bounded time for room in the transport's outbox and got none:
    the peer (or the network) does not keep up. Nothing was sent; the caller decides
    whether to retry, slow down or give up. A ``NodeDown``, as the peer is not reachable
    at the rate asked of it."""


class NameInUse(NodeDown):
    """``join`` was refused: a live member of the cluster (still heartbeating, another
    process) already uses this node's name. Pick another name, or stop that node first.
    A ``NodeDown``, like every other way a join can fail."""


class Overloaded(WorkflowError):
    """The receiving node has as many of this sender's messages waiting for its
    dispatch thread as it accepts from one sender (``dispatch_queue_per_sender``):
    this ask was refused (a tell would be dropped), while other senders are still
    served. Nothing was delivered; slow down and retry. On the wire its type name
    is ``runtime.Overloaded``."""


class JoinRefused(NodeDown):
    """``join`` failed because every seed refused the connection's handshake (this node's
    CURVE key is not on its allowlist, the key held for the seed is wrong, or one side
    is plaintext). The message names each seed and its cause; retrying cannot help."""


class AskTimeout(WorkflowError, TimeoutError):
    """An ask got no reply within its deadline."""


class RemoteError(WorkflowError):
    """An exception raised on another node, carried as text so it stays readable.

    Attributes:
        type_name: dotted name of the original exception type (``runtime.TemporaryError``).
        message: ``str()`` of the original exception.
        remote_traceback: the formatted traceback on the node that raised it.
        node: name of the node that raised it.
    """

    def __init__(
        self, type_name: str, message: str, remote_traceback: str = "", node: str = ""
    ) -> None:
        super().__init__(f"{type_name}: {message}" + (f" (on node {node})" if node else ""))
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        self.node = node


for _cls in (
    WorkflowError,
    ProtocolError,
    ActorNotFound,
    NodeDown,
    OutboxFull,
    NameInUse,
    JoinRefused,
    Overloaded,
    AskTimeout,
    RemoteError,
):
    _cls.__module__ = "runtime"
