"""actorflow.runtime: the user-facing API.

Layering (enforced by tests/test_layering.py)::

    runtime    ActorSystem, Workflow composition, retry, events, CLI
      |  imports
    actors     node actors, state machine, supervisors, clock, events bus
      |  imports (error root only)
    transport  ZeroMQ + msgpack; imports neither of the above

Event records live in ``runtime.events`` (``Canceled`` and ``NodeDown`` there
are events; the names here are the errors).
"""

from actors import (
    Canceled,
    ChildSpec,
    Clock,
    CompositionError,
    ConditionNotMet,
    EscalationError,
    IllegalTransition,
    LockError,
    LockTimeout,
    ManualClock,
    NodeState,
    NotLocked,
    NotLockOwner,
    PermanentError,
    PersistenceError,
    RealClock,
    Restart,
    RestartIntensity,
    ResultTimeout,
    RunBusy,
    StaleEpoch,
    StepInfo,
    StepTimeout,
    Strategy,
    SupervisedActor,
    Supervisor,
    SystemShutDown,
    TemporaryError,
    current_step,
)
from runtime import events
from runtime._adaptive import (
    Fastest,
    LeastLoaded,
    MemoPredictor,
    NodeLoad,
    PlacementStrategy,
    Prediction,
    Predictor,
    RoundRobin,
)
from runtime._checkpoint import CheckpointStrategy, StepProgress
from runtime._daemon import node_command, serve
from runtime._handle import RunHandle, StepReport
from runtime._locks import Lock
from runtime._memory_store import MemoryStore
from runtime._persist import Persistable, PersistableRegistry, register_persistable
from runtime._remote import Ref
from runtime._retry import Custom, Exponential, Fixed, RetryPolicy
from runtime._sqlite_store import SQLiteStore
from runtime._store import Checkpoint, CheckpointStore, RunSummary, StepRecord
from runtime._system import ActorSystem
from runtime._workflow import Workflow, dynamic, parallel, task
from runtime.events import LoggingObserver, WorkflowObserver
from transport import (
    ActorNotFound,
    Address,
    AskTimeout,
    NodeDown,
    OutboxFull,
    ProtocolError,
    RemoteError,
    TransportSettings,
    WorkflowError,
    generate_keys,
)

one_for_one = Strategy.ONE_FOR_ONE
one_for_all = Strategy.ONE_FOR_ALL
rest_for_one = Strategy.REST_FOR_ONE

__all__ = [
    "ActorNotFound",
    "ActorSystem",
    "Address",
    "AskTimeout",
    "Canceled",
    "Checkpoint",
    "CheckpointStore",
    "CheckpointStrategy",
    "ChildSpec",
    "Clock",
    "CompositionError",
    "ConditionNotMet",
    "Custom",
    "EscalationError",
    "Exponential",
    "Fastest",
    "Fixed",
    "IllegalTransition",
    "LeastLoaded",
    "Lock",
    "LockError",
    "LockTimeout",
    "LoggingObserver",
    "ManualClock",
    "MemoPredictor",
    "MemoryStore",
    "NodeDown",
    "NodeLoad",
    "NodeState",
    "NotLockOwner",
    "NotLocked",
    "OutboxFull",
    "PermanentError",
    "Persistable",
    "PersistableRegistry",
    "PersistenceError",
    "PlacementStrategy",
    "Prediction",
    "Predictor",
    "ProtocolError",
    "RealClock",
    "Ref",
    "RemoteError",
    "Restart",
    "RestartIntensity",
    "ResultTimeout",
    "RetryPolicy",
    "RoundRobin",
    "RunBusy",
    "RunHandle",
    "RunSummary",
    "SQLiteStore",
    "StaleEpoch",
    "StepInfo",
    "StepProgress",
    "StepRecord",
    "StepReport",
    "StepTimeout",
    "Strategy",
    "SupervisedActor",
    "Supervisor",
    "SystemShutDown",
    "TemporaryError",
    "TransportSettings",
    "Workflow",
    "WorkflowError",
    "WorkflowObserver",
    "current_step",
    "dynamic",
    "events",
    "generate_keys",
    "node_command",
    "one_for_all",
    "one_for_one",
    "parallel",
    "register_persistable",
    "rest_for_one",
    "serve",
    "task",
]
