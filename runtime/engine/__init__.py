"""The run engine: one coordinator actor that runs one workflow to its outcome.

It interprets ``runtime.workflow`` descriptions, records through a
``runtime.store`` recorder, and reaches other nodes only through the step
protocol it is handed (a ``Cluster``); it never opens a socket itself.
"""

from runtime.engine._coordinator import RunCoordinator, RunSpec, cancel_run, pause_run
from runtime.engine._handle import RunHandle, StepLog, StepReport
from runtime.engine._ports import Engine, LockService, RunOwner, StepCluster
from runtime.engine._waiting import WaitingAttempts

__all__ = [
    "Engine",
    "LockService",
    "RunCoordinator",
    "RunHandle",
    "RunOwner",
    "RunSpec",
    "StepCluster",
    "StepLog",
    "StepReport",
    "WaitingAttempts",
    "cancel_run",
    "pause_run",
]
