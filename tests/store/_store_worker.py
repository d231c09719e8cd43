"""A subprocess for the multi-process store tests; talks line by line on stdin/stdout.

Usage, from the repository root (``python -m tests.store._store_worker MODE ...``):

``saver DB SYNCHRONOUS RUN_ID``
    Claims and starts the run, then appends forever, one step per append;
    prints ``acked N`` only after append N returned. The test kills it with SIGKILL.
``threads DB SYNCHRONOUS COUNT``
    COUNT threads, each appending forever to its own run ``run-T``; prints
    ``acked T N`` only after that thread's append N returned (group commit
    batches them). The test kills it with SIGKILL.
``claimer DB OWNER``
    Prints ``ready``; for each stdin line RUN_ID claims it and prints
    ``won RUN_ID EPOCH`` or ``busy RUN_ID``.
``zombie DB RUN_ID LEASE``
    Claims the run with a short lease, starts it, prints ``claimed EPOCH``; then
    for each stdin line ``append`` or ``renew`` prints ``ok`` or ``stale``.
"""

from __future__ import annotations

import sys
import threading

from actors import RunBusy, StaleEpoch
from runtime.store import SQLiteStore
from tests.store.store_testkit import append, header, started, step

_SAY = threading.Lock()


def say(line: str) -> None:
    with _SAY:  # whole lines, also from several threads
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def saver(db: str, synchronous: str, run_id: str) -> None:
    with SQLiteStore(db, synchronous=synchronous) as store:
        epoch = started(store, run_id, owner="saver", context="saver")
        for index in range(1, 1_000_000):
            append(store, run_id, epoch, step(f"s{index}", output=index), updated_at=index)
            say(f"acked {index}")


def threads(db: str, synchronous: str, count: int) -> None:
    with SQLiteStore(db, synchronous=synchronous) as store:
        epochs = {t: started(store, f"run-{t}", owner="threads") for t in range(count)}

        def appender(t: int) -> None:
            for index in range(1, 1_000_000):
                append(store, f"run-{t}", epochs[t], step(f"s{index}", output=index))
                say(f"acked {t} {index}")

        workers = [threading.Thread(target=appender, args=(t,)) for t in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


def claimer(db: str, owner: str) -> None:
    with SQLiteStore(db) as store:
        say("ready")
        for line in sys.stdin:
            run_id = line.strip()
            try:
                epoch = store.claim(run_id, owner=owner, lease=600)
            except RunBusy:
                say(f"busy {run_id}")
            else:
                say(f"won {run_id} {epoch}")


def zombie(db: str, run_id: str, lease: float) -> None:
    with SQLiteStore(db) as store:
        epoch = store.claim(run_id, owner="zombie", lease=lease)
        store.start(header(run_id, context="zombie-1"), epoch=epoch, state="r", updated_at=1)
        say(f"claimed {epoch}")
        for line in sys.stdin:
            try:
                if line.strip() == "append":
                    append(store, run_id, epoch, step("zombie-2"))
                else:
                    store.renew(run_id, epoch=epoch, lease=lease)
            except StaleEpoch:
                say("stale")
            else:
                say("ok")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "saver":
        saver(args[0], args[1], args[2])
    elif mode == "threads":
        threads(args[0], args[1], int(args[2]))
    elif mode == "claimer":
        claimer(args[0], args[1])
    elif mode == "zombie":
        zombie(args[0], args[1], float(args[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
