"""Workflow descriptions: immutable values that say what to run, never how.

Imports nothing else of ``runtime``: the engine interprets these values, the
store records them, the cluster names their tasks. The part classes (``Task``,
``Then``, ``Parallel``...) are what the engine's interpreter dispatches on.
"""

from runtime.workflow._adaptive import (
    Fastest,
    LeastLoaded,
    MemoPredictor,
    NodeLoad,
    PlacementStrategy,
    Prediction,
    Predictor,
    RoundRobin,
)
from runtime.workflow._checkpoint_strategy import CheckpointStrategy, StepProgress
from runtime.workflow._graph import Graph, GraphBuilder, PartRef, graph
from runtime.workflow._map import ItemsFailed, MapItems, OnFailure, map_items
from runtime.workflow._names import qualified_name
from runtime.workflow._parallel import parallel
from runtime.workflow._plan import StepPlan, planned_steps
from runtime.workflow._retry import Custom, Exponential, Fixed, RetryPolicy
from runtime.workflow._workflow import (
    Adaptive,
    Checkpointed,
    Deadline,
    Dynamic,
    Locked,
    Monitored,
    Named,
    Nested,
    Parallel,
    Predictive,
    Retry,
    Task,
    Then,
    When,
    Workflow,
    dynamic,
    monitors,
    persists,
    task,
    tasks_of,
)

__all__ = [
    "Adaptive",
    "CheckpointStrategy",
    "Checkpointed",
    "Custom",
    "Deadline",
    "Dynamic",
    "Exponential",
    "Fastest",
    "Fixed",
    "Graph",
    "GraphBuilder",
    "ItemsFailed",
    "LeastLoaded",
    "Locked",
    "MapItems",
    "MemoPredictor",
    "Monitored",
    "Named",
    "Nested",
    "NodeLoad",
    "OnFailure",
    "Parallel",
    "PartRef",
    "PlacementStrategy",
    "Prediction",
    "Predictive",
    "Predictor",
    "Retry",
    "RetryPolicy",
    "RoundRobin",
    "StepPlan",
    "StepProgress",
    "Task",
    "Then",
    "When",
    "Workflow",
    "dynamic",
    "graph",
    "map_items",
    "monitors",
    "parallel",
    "persists",
    "planned_steps",
    "qualified_name",
    "task",
    "tasks_of",
]
