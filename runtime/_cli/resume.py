"""Resume a run from its last checkpoint in this process, and wait for it.

The workflow is code, so it is looked up by the name the run recorded among
the workflows that ``--app MODULE`` provides: the module must define
``workflows()`` returning the workflows it can resume (``wf.named("etl")``).
MODULE is imported because you named it on this command line; a name read
from the database or the wire is never imported.

Steps recorded completed are not run again. A run held by another live
process is refused (``RunBusy``) unless ``--force``; a run whose owner died
on this host is taken over.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from actors import CompositionError, PersistenceError
from runtime._cli._common import add_db_option, format_duration, open_store
from runtime._system import ActorSystem
from runtime.workflow import Workflow

HELP = "resume a run from its last checkpoint"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="a run id, as `actorflow runs` lists it")
    parser.add_argument(
        "--app", required=True, metavar="MODULE", help="module whose workflows() lists workflows"
    )
    parser.add_argument("--force", action="store_true", help="take over a busy or changed run")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds to wait for the run (3600)"
    )
    add_db_option(parser)


def import_app(module_name: str) -> ModuleType:
    """Import a module the user named on the command line (never a name from the wire)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: find the user's module
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise CompositionError(f"--app {module_name!r} cannot be imported: {exc}") from exc


def load_workflows(module_name: str) -> list[Workflow[Any, Any]]:
    module = import_app(module_name)
    factory = getattr(module, "workflows", None)
    if not callable(factory):
        raise CompositionError(f"--app {module_name!r} defines no workflows() function")
    try:
        found: object = factory()
        items = list(found) if isinstance(found, Iterable) and not isinstance(found, str) else None
    except Exception as exc:  # the user's code: say where, no traceback
        raise CompositionError(
            f"--app {module_name!r}: workflows() raised {type(exc).__name__}: {exc}"
        ) from exc
    if items is None:
        raise CompositionError(
            f"--app {module_name!r}: workflows() returned {type(found).__name__}, "
            "not a list of workflows"
        )
    flows = [wf for wf in items if isinstance(wf, Workflow)]
    if not flows:
        raise CompositionError(f"--app {module_name!r}: workflows() returned no Workflow")
    return flows


def run(args: argparse.Namespace) -> int:
    flows = load_workflows(args.app)
    store = open_store(args.db)
    with ActorSystem("cli", store=store, workflows=flows) as system:
        handle = system.resume(args.run_id, force=args.force)
        print(f"resumed run {handle.id}; waiting for it")
        try:
            handle.result(timeout=args.timeout)
        except PersistenceError:
            raise
        except Exception as exc:  # noqa: BLE001 - any step error is the run's outcome
            print(f"run {handle.id} ended {handle.state}: {type(exc).__name__}: {exc}")
            return 1
        finally:
            for step in handle.steps():
                if step.resumed:
                    note = "recorded, not rerun"
                else:
                    note = f"{step.attempts} attempt(s), {format_duration(step.duration)}"
                print(f"  {step.step:<24} {step.state!s:<10} {note}")
    store.close()
    print(f"run {handle.id} {handle.state}")
    return 0
