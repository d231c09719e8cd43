"""An ``--app`` whose ``workflows()`` returns something that is not a list of workflows."""

from __future__ import annotations


def workflows() -> int:
    return 42
