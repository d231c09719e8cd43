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
from runtime.store._open import StoreSpec, open_store
from runtime.store._postgres import PostgresStore
from runtime.store._postgres_db import is_postgres_url, redact_url
from runtime.store._postgres_locks import StoreLocks
from runtime.store._protocol import (
    AdoptingStore,
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
    "AdoptingStore",
    "Checkpoint",
    "CheckpointStore",
    "MemoryStore",
    "Outcome",
    "Persistable",
    "PersistableRegistry",
    "PostgresStore",
    "Replay",
    "RunHeader",
    "RunRecorder",
    "RunSummary",
    "SQLiteStore",
    "StepRecord",
    "StoreLocks",
    "StoreSpec",
    "StoreStats",
    "decode_value",
    "encode_value",
    "is_postgres_url",
    "new_owner_id",
    "open_store",
    "owner_is_dead",
    "parse_duration",
    "prune_runs",
    "redact_url",
    "register_persistable",
    "replay_from",
    "stored_output",
]
