"""Per-message log lines are rate-limited: a burst writes a few WARNINGs, not one per message."""

from __future__ import annotations

import logging

import pytest

from runtime import ActorSystem
from transport import RateLimitedLog

pytestmark = pytest.mark.timeout(30)


def test_one_warning_per_reason_per_window_then_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("ratelog-test"), every=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ratelog-test"):
        for n in range(1000):
            limited.warning("unknown_actor", "tell %d dropped", n)
        limited.warning("other", "another reason")
        now[0] = 5.0
        limited.warning("unknown_actor", "tell %d dropped", 1000)
    assert [r.getMessage() for r in caplog.records] == [
        "tell 0 dropped",
        "another reason",
        "tell 1000 dropped (and 999 more like it since the last such line)",
    ]


# Issue 11: one WARNING line per tell to an unknown actor (24,000 lines in one burst).
def test_a_burst_of_tells_to_an_unknown_actor_writes_a_few_lines(
    caplog: pytest.LogCaptureFixture, coordinator_and_peer: tuple[ActorSystem, ActorSystem]
) -> None:
    _coordinator, peer = coordinator_and_peer
    with caplog.at_level(logging.WARNING):
        ref = peer.ref("coord/nobody-here")
        for n in range(2000):
            ref.tell({"n": n})
        # An ask behind the tells on the same connection: once it is answered (here with
        # ActorNotFound), every tell before it was handled.
        with pytest.raises(Exception, match="nobody-here"):
            ref.ask({"n": "last"}, timeout=5)
    dropped = [r for r in caplog.records if "unknown actor" in r.getMessage()]
    assert 1 <= len(dropped) <= 3


def test_a_handler_failing_on_every_tell_writes_a_few_error_lines(
    caplog: pytest.LogCaptureFixture, coordinator_and_peer: tuple[ActorSystem, ActorSystem]
) -> None:
    _coordinator, peer = coordinator_and_peer
    with caplog.at_level(logging.WARNING):
        system_ref = peer.ref("coord/$system")
        for n in range(500):
            system_ref.tell({"op": "no-such-op", "n": n})  # the handler raises on each
        # An ask behind the tells: once answered, every tell before it was handled.
        assert system_ref.ask({"op": "ping"}, timeout=5) == "pong"
    failed = [r for r in caplog.records if "handler failed on a tell" in r.getMessage()]
    assert 1 <= len(failed) <= 3
    assert all(r.levelno == logging.ERROR for r in failed)


def test_each_peer_has_its_own_window_and_the_suppressed_lines_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("ratelog-peers"), every=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ratelog-peers"):
        for n in range(100):
            limited.warning("unknown_actor", "tell %d from noisy", n, peer="noisy")
        limited.warning("unknown_actor", "tell from quiet", peer="quiet")  # not hidden
        limited.warning("malformed", "a frame")
        limited.warning("malformed", "another frame")
    assert [r.getMessage() for r in caplog.records] == [
        "tell 0 from noisy",
        "tell from quiet",
        "a frame",
    ]
    assert limited.suppressed() == {"unknown_actor@noisy": 99, "malformed": 1}
