"""Workflow, lock and persistence errors (the root lives in ``transport._errors``).

::

    WorkflowError
    ├── TemporaryError        a step failed for a passing reason; retried by default
    ├── PermanentError        a step failed for good; never retried by default
    ├── ConditionNotMet       a ``when`` condition was false and the composition did not skip
    ├── Canceled              the run or step was canceled (a result, not an unwinding signal)
    ├── StepTimeout           a step ran past its deadline
    ├── ResultTimeout         ``RunHandle.result(timeout)`` passed its deadline, run still going
    ├── SystemShutDown        the actor system is shut down; nothing new can start
    ├── EscalationError       a supervisor exceeded its restart intensity and gave up
    ├── CompositionError      a workflow was composed wrongly (bad callable, arity, ...)
    ├── IllegalTransition     a node was asked to move between states the table forbids
    ├── LockError
    │   ├── NotLockOwner      the caller's fencing token is not the current holder's
    │   ├── NotLocked         the lock is not held by anyone
    │   └── LockTimeout       the lock could not be acquired within the timeout
    └── PersistenceError      a checkpoint could not be written, read or decoded
        ├── StaleEpoch        another process took the run over; this writer is a zombie
        └── RunBusy           another live process owns the run
"""

from __future__ import annotations

from transport import WorkflowError

__all__ = [
    "Canceled",
    "CompositionError",
    "ConditionNotMet",
    "EscalationError",
    "IllegalTransition",
    "LockError",
    "LockTimeout",
    "NotLockOwner",
    "NotLocked",
    "PermanentError",
    "PersistenceError",
    "ResultTimeout",
    "RunBusy",
    "StaleEpoch",
    "StepTimeout",
    "SystemShutDown",
    "TemporaryError",
]


class TemporaryError(WorkflowError):
    """A step failed for a passing reason; the default retry policy retries it."""


class PermanentError(WorkflowError):
    """A step failed for good; the default retry policy does not retry it."""


class ConditionNotMet(WorkflowError):
    """A ``when`` condition evaluated false and the composition did not say to skip."""


class Canceled(WorkflowError):
    """The run or step was canceled before it could complete."""


class StepTimeout(WorkflowError, TimeoutError):
    """A step ran longer than its timeout."""


class ResultTimeout(WorkflowError, TimeoutError):
    """Waiting for a run's result passed the deadline; the run itself goes on."""


class SystemShutDown(WorkflowError):
    """The actor system was shut down; it cannot spawn or run anything new."""


class EscalationError(WorkflowError):
    """A supervisor exceeded its restart intensity and escalated to its parent."""


class CompositionError(WorkflowError, TypeError):
    """A workflow was composed with a bad argument (not callable, wrong arity, ...)."""


class IllegalTransition(WorkflowError, RuntimeError):
    """A node state change not in the transition table (a bug in the caller, never retried)."""


class LockError(WorkflowError):
    """Base of the distributed lock errors."""


class NotLockOwner(LockError):
    """The fencing token presented is not the current holder's (stale or foreign)."""


class NotLocked(LockError):
    """The lock is not held, so it cannot be released or renewed."""


class LockTimeout(LockError, TimeoutError):
    """The lock could not be acquired before the timeout."""


class PersistenceError(WorkflowError):
    """A checkpoint could not be written, read or decoded; names the run and the cause."""


class StaleEpoch(PersistenceError):
    """This writer's epoch is older than the run's: another process took the run over."""


class RunBusy(PersistenceError):
    """Another live process holds the run's lease; resume it there or wait for expiry."""


for _name in __all__:
    globals()[_name].__module__ = "runtime"
