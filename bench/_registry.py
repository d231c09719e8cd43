"""The explicit table of row families, in the order the table prints them.

To add rows, write ``bench/_<family>.py`` exposing ``FAMILY = Family(name, run)``
and add its module here (see the ``bench`` package docstring for the contract).
"""

from __future__ import annotations

import importlib

from bench._row import Family

__all__ = ["FAMILY_MODULES", "families"]

FAMILY_MODULES: tuple[str, ...] = (
    "bench._local",
    "bench._steps",
    "bench._memory",
    "bench._checkpoint",
    "bench._history",
    "bench._remote",
    "bench._cluster",
    "bench._submit",
    "bench._actors_remote",
    "bench._membership",
    "bench._postgres",
    "bench._isolation",
)


def families() -> list[Family]:
    """Import every registered module and return its ``FAMILY``."""
    found = []
    for module_name in FAMILY_MODULES:
        family = importlib.import_module(module_name).FAMILY
        if not isinstance(family, Family):
            raise TypeError(f"{module_name}.FAMILY must be a bench.Family, got {family!r}")
        found.append(family)
    return found
