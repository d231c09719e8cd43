"""How a part of a workflow ends: ``Ok(output, ctx)`` or ``Err(error)``, passed to a continuation.

The engine runs workflows in continuation-passing style: starting a part
never blocks; the part later calls its continuation exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Continuation", "Err", "Ok", "Outcome"]


@dataclass(frozen=True)
class Ok:
    output: Any
    ctx: Any


@dataclass(frozen=True)
class Err:
    error: BaseException


Outcome = Ok | Err
Continuation = Callable[[Outcome], None]
