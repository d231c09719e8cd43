"""actorflow.actors: the actor kernel on pykka.

Node actors and their state machine, supervisors, the event records and bus,
the injectable clock, and the workflow branch of the error tree. Event
records live in the public ``actors.events`` module (their names, such as
``Canceled``, would clash with the errors of the same name). Layering:
``actors`` imports ``transport`` only for the error root; it never imports
``runtime`` and knows nothing of sockets.
"""

from actors._clock import Clock, ManualClock, RealClock, TimerHandle
from actors._errors import (
    Canceled,
    CompositionError,
    ConditionNotMet,
    EscalationError,
    IllegalTransition,
    LockError,
    LockTimeout,
    NotLocked,
    NotLockOwner,
    PermanentError,
    PersistenceError,
    ResultTimeout,
    RunBusy,
    StaleEpoch,
    StepTimeout,
    SystemShutDown,
    TemporaryError,
)
from actors._locks import Acquire, Check, LockGrant, LockManager, Release, Renew
from actors._node import (
    CancelNode,
    NodeActor,
    Start,
    StepInfo,
    StepResult,
    current_step,
)
from actors._notify import NotifyingEvent
from actors._pool import NodePool
from actors._state import NodeState, StateChanged
from actors._supervisor import (
    ChildHandle,
    ChildSpec,
    ChildStarter,
    Restart,
    RestartIntensity,
    Strategy,
    SupervisedActor,
    Supervisor,
    SupervisorStats,
)
from actors._watch import (
    ActorHooks,
    Terminated,
    TerminationReason,
    current_context,
    current_epoch,
    start_hooked,
    takes_snapshots,
)
from actors.events import Event, EventBus, WorkflowObserver

__all__ = [
    "Acquire",
    "ActorHooks",
    "CancelNode",
    "Canceled",
    "Check",
    "ChildHandle",
    "ChildSpec",
    "ChildStarter",
    "Clock",
    "CompositionError",
    "ConditionNotMet",
    "EscalationError",
    "Event",
    "EventBus",
    "IllegalTransition",
    "LockError",
    "LockGrant",
    "LockManager",
    "LockTimeout",
    "ManualClock",
    "NodeActor",
    "NodePool",
    "NodeState",
    "NotLockOwner",
    "NotLocked",
    "NotifyingEvent",
    "PermanentError",
    "PersistenceError",
    "RealClock",
    "Release",
    "Renew",
    "Restart",
    "RestartIntensity",
    "ResultTimeout",
    "RunBusy",
    "StaleEpoch",
    "Start",
    "StateChanged",
    "StepInfo",
    "StepResult",
    "StepTimeout",
    "Strategy",
    "SupervisedActor",
    "Supervisor",
    "SupervisorStats",
    "SystemShutDown",
    "TemporaryError",
    "Terminated",
    "TerminationReason",
    "TimerHandle",
    "WorkflowObserver",
    "current_context",
    "current_epoch",
    "current_step",
    "start_hooked",
    "takes_snapshots",
]
