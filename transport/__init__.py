"""actorflow.transport: ZeroMQ + msgpack between actor systems.

Layering: ``transport`` imports neither ``actors`` nor ``runtime``; it knows
nothing of workflows. The root of the error tree lives here (lowest layer).
"""

from transport._errors import (
    ActorNotFound,
    AskTimeout,
    NodeDown,
    ProtocolError,
    RemoteError,
    WorkflowError,
)

__all__ = [
    "ActorNotFound",
    "AskTimeout",
    "NodeDown",
    "ProtocolError",
    "RemoteError",
    "WorkflowError",
]
