"""Durable run history: the store protocol, SQLite and memory stores, the value codec.

Imports only ``runtime.workflow`` of the runtime (a checkpoint strategy is a
description). ``RunRecorder`` writes one run's history under its epoch: a header
once, then step records appended (see ``runtime.store._protocol``).
"""

from runtime.store._actor_state import ActorLease, ActorSnapshot, ActorStateStore
from runtime.store._codec import (
    Persistable,
    PersistableRegistry,
    decode_value,
    encode_value,
    register_persistable,
)
from runtime.store._memory import MemoryStore
from runtime.store._protocol import (
    Checkpoint,
    CheckpointStore,
    Outcome,
    RunHeader,
    RunSummary,
    StepRecord,
)
from runtime.store._prune import FINISHED_STATES, parse_duration, prune_runs
from runtime.store._recorder import (
    Replay,
    RunRecorder,
    new_owner_id,
    owner_is_dead,
    replay_from,
    stored_output,
)
from runtime.store._sqlite import DEFAULT_PATH, SQLiteStore, StoreStats

__all__ = [
    "DEFAULT_PATH",
    "FINISHED_STATES",
    "ActorLease",
    "ActorSnapshot",
    "ActorStateStore",
    "Checkpoint",
    "CheckpointStore",
    "MemoryStore",
    "Outcome",
    "Persistable",
    "PersistableRegistry",
    "Replay",
    "RunHeader",
    "RunRecorder",
    "RunSummary",
    "SQLiteStore",
    "StepRecord",
    "StoreStats",
    "decode_value",
    "encode_value",
    "new_owner_id",
    "owner_is_dead",
    "parse_duration",
    "prune_runs",
    "register_persistable",
    "replay_from",
    "stored_output",
]
