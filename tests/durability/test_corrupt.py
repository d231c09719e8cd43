"""Resuming from a damaged checkpoint, or with a changed workflow, fails loudly and touches nothing.

The orphaned run is made once per module by a real worker killed with ``step_5``
in flight; each test works on its own copy, damages it with raw sqlite3, then
resumes in this process. A resume that cannot trust the checkpoint must raise
``PersistenceError`` naming the run, run no step, and leave the store as it was
(no claim, no epoch bump): never silently start the run over.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from runtime import ActorSystem, CheckpointStrategy, PersistenceError, SQLiteStore

from .chain_worker import build_chain
from .procs import CHAIN, Worker, counts, kill_at_step, load, read_log, settle

RUN = "run-c"
K = 5


@dataclass(frozen=True)
class Orphan:
    db: Path
    log: Path


@pytest.fixture(scope="module")
def orphan_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orphan]:
    folder = tmp_path_factory.mktemp("orphan")
    workers: list[Worker] = []

    def spawn(*args: Any) -> Worker:
        workers.append(Worker(*args))
        return workers[-1]

    try:
        kill_at_step(spawn, folder / "state.db", RUN, folder / "effects.log", K)
    finally:
        for worker in workers:
            worker.finish()
    settle(folder / "state.db")
    yield Orphan(folder / "state.db", folder / "effects.log")


@pytest.fixture
def orphan(orphan_template: Orphan, tmp_path: Path) -> Orphan:
    copy = Orphan(tmp_path / "state.db", tmp_path / "effects.log")
    shutil.copyfile(orphan_template.db, copy.db)
    shutil.copyfile(orphan_template.log, copy.log)
    return copy


def raw_rows(db: Path) -> tuple[list[Any], list[Any]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return (
            conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall(),
            conn.execute("SELECT * FROM steps ORDER BY seq").fetchall(),
        )


@contextlib.contextmanager
def system_for(
    db: Path, log: Path, *, register: bool = True, recover: bool = False
) -> Iterator[ActorSystem]:
    with (
        SQLiteStore(db) as store,
        ActorSystem(
            "corrupt",
            store=store,
            checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
            workflows=[build_chain(log)] if register else [],
            recover=recover,
        ) as system,
    ):
        yield system


def set_output(conn: sqlite3.Connection, key: str, blob: bytes | None, crc: int | None) -> None:
    conn.execute(
        "UPDATE steps SET output = ?, output_crc = ? WHERE run_id = ? AND step = ?",
        (blob, crc, RUN, key),
    )


def output_of(conn: sqlite3.Connection, key: str) -> bytes:
    row = conn.execute(
        "SELECT output FROM steps WHERE run_id = ? AND step = ?", (RUN, key)
    ).fetchone()
    assert isinstance(row[0], bytes)
    return row[0]


def truncate_output(conn: sqlite3.Connection) -> None:
    conn.execute(
        "UPDATE steps SET output = substr(output, 1, length(output) - 3)"
        " WHERE run_id = ? AND step = 'step_2'",
        (RUN,),
    )


def flip_output_byte(conn: sqlite3.Connection) -> None:
    blob = bytearray(output_of(conn, "step_2"))
    blob[len(blob) // 2] ^= 0xFF
    conn.execute(
        "UPDATE steps SET output = ? WHERE run_id = ? AND step = 'step_2'", (bytes(blob), RUN)
    )


def with_crc(blob: bytes) -> Callable[[sqlite3.Connection], None]:
    """Replace step_2's output by ``blob`` with a matching CRC: only decoding can catch it."""
    return lambda conn: set_output(conn, "step_2", blob, zlib.crc32(blob))


def truncated_with_crc(conn: sqlite3.Connection) -> None:
    with_crc(output_of(conn, "step_2")[:-3])(conn)


def drop_output(conn: sqlite3.Connection) -> None:
    set_output(conn, "step_2", None, None)


def truncate_context(conn: sqlite3.Connection) -> None:
    conn.execute(
        "UPDATE runs SET context = substr(context, 1, length(context) - 1) WHERE run_id = ?",
        (RUN,),
    )


def garble_context_with_crc(conn: sqlite3.Connection) -> None:
    blob = b"\xc1"  # a byte msgpack never uses
    conn.execute(
        "UPDATE runs SET context = ?, context_len = ?, context_crc = ? WHERE run_id = ?",
        (blob, len(blob), zlib.crc32(blob), RUN),
    )


CORRUPTIONS: dict[str, tuple[Callable[[sqlite3.Connection], None], str]] = {
    "output truncated": (truncate_output, "step 'step_2' fails its CRC-32"),
    "output byte flipped": (flip_output_byte, "step 'step_2' fails its CRC-32"),
    "output truncated, CRC fixed": (truncated_with_crc, "step 'step_2' output: cannot decode"),
    "output undecodable, CRC fixed": (with_crc(b"\xc1"), "step 'step_2' output: cannot decode"),
    "output of the wrong shape": (
        with_crc(msgpack.packb({"not": "a pair"})),
        "step 'step_2' output has an unexpected shape",
    ),
    "output with an unknown ext type": (
        with_crc(msgpack.packb(msgpack.ExtType(42, b"?"))),
        "step 'step_2' output: cannot decode",
    ),
    "output missing": (drop_output, "completed step 'step_2' has no recorded output"),
    "context truncated": (truncate_context, "context is"),
    "context undecodable, CRC fixed": (garble_context_with_crc, "context: cannot decode"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_resume_from_a_damaged_checkpoint_raises_and_changes_nothing(
    orphan: Orphan, damage: str
) -> None:
    corrupt, reason = CORRUPTIONS[damage]
    with contextlib.closing(sqlite3.connect(orphan.db, isolation_level=None)) as conn:
        corrupt(conn)
    before = raw_rows(orphan.db)
    log_before = orphan.log.read_bytes()

    with system_for(orphan.db, orphan.log) as system:
        with pytest.raises(PersistenceError) as caught:
            system.resume(RUN)
        message = str(caught.value)
        assert f"run {RUN}" in message
        assert reason in message

    assert raw_rows(orphan.db) == before  # not claimed, not rewritten, not reset
    assert orphan.log.read_bytes() == log_before  # no step ran


@pytest.mark.timeout(30)
def test_recover_never_silently_restarts_a_damaged_run(orphan: Orphan) -> None:
    """``recover=True`` must not start a run it cannot read over (today it raises)."""
    with contextlib.closing(sqlite3.connect(orphan.db, isolation_level=None)) as conn:
        truncate_output(conn)
    before = raw_rows(orphan.db)
    log_before = orphan.log.read_bytes()
    try:
        with system_for(orphan.db, orphan.log, recover=True) as system:
            assert system.runs()[0].run_id == RUN
    except PersistenceError as exc:
        assert f"run {RUN}" in str(exc)
    assert raw_rows(orphan.db) == before
    assert orphan.log.read_bytes() == log_before


@pytest.mark.timeout(30)
def test_resume_with_a_changed_workflow_raises_unless_forced(orphan: Orphan) -> None:
    longer = build_chain(orphan.log, length=21)  # step_20 appended, same name
    before = raw_rows(orphan.db)
    with system_for(orphan.db, orphan.log) as system:
        with pytest.raises(PersistenceError, match=rf"run {RUN}: the workflow's structure changed"):
            system.resume(RUN, longer)
        with pytest.raises(PersistenceError, match=rf"run {RUN}: the workflow's structure changed"):
            system.resume(RUN, build_chain(orphan.log, length=20, name="renamed"))
        assert raw_rows(orphan.db) == before
        assert counts(read_log(orphan.log)) == dict.fromkeys(CHAIN[: K + 1], 1)

        # The owner is dead, so force=True is needed here only for the structure.
        assert system.resume(RUN, longer, force=True).result(20) == list(range(21))

    expected = dict.fromkeys([*CHAIN, "step_20"], 1)
    expected[CHAIN[K]] = 2
    assert counts(read_log(orphan.log)) == expected
    checkpoint = load(orphan.db, RUN)
    assert (checkpoint.state, checkpoint.epoch) == ("Completed", 2)
    assert len(checkpoint.steps) == 21
    assert checkpoint.fingerprint == longer.fingerprint()  # the forced resume rewrote the header


@pytest.mark.timeout(30)
def test_resume_of_an_unknown_run_or_workflow_raises_naming_the_run(orphan: Orphan) -> None:
    before = raw_rows(orphan.db)
    with system_for(orphan.db, orphan.log, register=False) as system:
        with pytest.raises(PersistenceError, match=rf"run {RUN}: no workflow named 'chain20'"):
            system.resume(RUN)
        with pytest.raises(PersistenceError, match=r"run nope: no checkpoint stored"):
            system.resume("nope")
    assert raw_rows(orphan.db) == before
