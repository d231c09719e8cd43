"""``client.runs()`` against a member whose store holds more runs than one answer may carry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import Client, SQLiteStore
from tests.submit.conftest import Node

pytestmark = pytest.mark.timeout(120)


def test_runs_answers_the_newest_runs_of_a_big_store(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    # 12,000 runs: over max_array_len (10,000) and max_frame_bytes (1 MiB) as one answer
    with SQLiteStore(tmp_path / "n1.db", synchronous="NORMAL") as store:
        for n in range(12_000):
            run_id = f"old-{n:05d}"
            store.release(run_id, epoch=store.claim(run_id, owner="gone", lease=1.0))
    node = node_factory("n1")  # on that --db
    with Client(node.seed, plaintext=True) as client:
        fresh = client.submit("greet", {"who": "ada"})
        assert fresh.result(timeout=30) == "hello ada"
        rows = client.runs()
    assert rows, "the member's answer was lost: runs() listed nothing"
    assert rows[0]["run"] == fresh.id and len(rows) == 1000
