"""The run engine: one coordinator actor that runs one workflow to its outcome.

It interprets ``runtime.workflow`` descriptions, records through a
``runtime.store`` recorder, and reaches other hosts only through the step
protocol it is handed (a ``Cluster``); it never opens a socket itself.
"""

from runtime.engine._coordinator import RunCoordinator, cancel_run, pause_run
from runtime.engine._handle import RunHandle, StepLog, StepReport

__all__ = ["RunCoordinator", "RunHandle", "StepLog", "StepReport", "cancel_run", "pause_run"]
