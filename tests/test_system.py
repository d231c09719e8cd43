"""ActorSystem: refusing runs it cannot take (shut down, or a run id already running)."""

from __future__ import annotations

import pytest

from runtime import ActorSystem, SystemShutDown, task

pytestmark = pytest.mark.timeout(30)


def test_running_on_a_shut_down_system_raises_a_clear_error() -> None:
    system = ActorSystem("short-lived")
    system.shutdown()
    with pytest.raises(SystemShutDown, match="short-lived"):
        system.run(task(lambda c: c), 1)
