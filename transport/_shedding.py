"""Shedding: tells a peer keeps sending to an actor that is not there are dropped unread.

Refusing a tell to no actor costs the I/O thread a decode, checks and a
look-up, about 2 us: less than its sender spent on it, but a peer flooding an
unknown actor still keeps the node's I/O thread busy, and on a small host the
threads of every other peer's messages wait for a CPU behind it. So the tells
refused are counted per (peer, target) in fixed windows of ``window`` seconds;
past ``budget`` in one window, that peer's tells to that target are *shed* for
the rest of the window and the whole next one: told from their first bytes
(``TELL_PREFIX``, the message id, then the sender and target as encoded) and
dropped before they are decoded, counted ``shed`` against the peer, at about a
tenth of the cost. Everything else is handled as usual: the peer's tells to
other actors, its asks (still answered ``ActorNotFound``), answers, probes; and
every other peer. Nor is a tell the inbox would not refuse now (an actor was
started there, or a ``$``-path message of its sender still waits, which may
start one: PROTOCOL.md 13): a batch's shed targets are looked up again before
its first item and after each item kept. The shedding of a target whose actor
appeared ends at the node's next periodic check (``check_interval``). A shed
tell is not counted toward the budget: once the shedding ends, the tells are
looked at again, and a peer still flooding is shed again after ``budget`` more.

A peer spreading its flood over many targets, or encoding its tells another
way (msgpack allows several encodings of one value), is not shed: each of its
tells is refused at the usual cost.

I/O thread only, but ``peers`` (any thread).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from transport._codec import pack
from transport._envelope import TELL_PREFIX
from transport._ratelog import RateLimitedLog
from transport._stats import Counters

__all__ = ["Shedding"]

_MAX_COUNTED = 4096  # (peer, target) pairs counted in one window: a bound on memory
_MAX_SHED = 256  # pairs shed at once, at most (more are refused at the usual cost)
_AT = len(TELL_PREFIX)  # where a tell's message id begins
_NEVER = float("inf")


def _id_lengths() -> bytes:
    """By the first byte of a msgpack int, how many bytes it takes (a message id is a
    positive int); 255 for any other byte, which makes the sift's look fall off the end."""
    lengths = bytearray([255] * 256)
    lengths[:0x80] = bytes([1] * 0x80)  # positive fixint
    for first, length in ((0xCC, 2), (0xCD, 3), (0xCE, 5), (0xCF, 9)):
        lengths[first] = length
    return bytes(lengths)


_ID_LENGTHS = _id_lengths()


class Shedding:
    """Which (peer, target) tells are shed now, from the refusals ``note``d.

    Args:
        name: this node's name (for the log).
        budget: tells of one peer to one target refused within one window past
            which those tells are shed (0: never shed).
        window: seconds of one counting window.
        now: the node's monotonic clock.
        counters: where shed tells are counted (reason ``shed``, against the peer).
        log: where a shedding is told (a line per peer every few seconds).
    """

    def __init__(
        self,
        name: str,
        budget: int,
        window: float,
        *,
        now: Callable[[], float],
        counters: Counters,
        log: RateLimitedLog,
    ) -> None:
        self._name = name
        self._budget = budget
        self._window = window
        self._now = now
        self._counters = counters
        self._log = log
        self._window_end = 0.0
        self._counts: dict[tuple[str, str], int] = {}
        # shed pairs: until when (monotonic); replaced, never changed (``peers`` reads it)
        self._until: dict[tuple[str, str], float] = {}
        # per shed peer: its shed targets, and the bytes its tells there carry after the id
        self._markers: dict[str, tuple[tuple[str, bytes], ...]] = {}
        self._next_expiry = _NEVER  # the earliest of ``_until``

    @property
    def active(self) -> bool:
        """Whether any tell may be shed (one attribute read on the hot path)."""
        return bool(self._until)

    def note(self, peer: str, target: str, count: int) -> None:
        """Count ``count`` tells of ``peer`` to ``target`` refused; past the budget,
        shed them."""
        if not self._budget:
            return
        moment = self._now()
        if moment >= self._window_end:
            self._counts.clear()
            self._window_end = moment + self._window
        key = (peer, target)
        total = self._counts.get(key, 0) + count
        if key in self._counts or len(self._counts) < _MAX_COUNTED:
            self._counts[key] = total
        if total <= self._budget or key in self._until or len(self._until) >= _MAX_SHED:
            return
        until = self._window_end + self._window
        self._until = {**self._until, key: until}  # a new dict: ``peers`` may be reading it
        self._rebuild()
        self._log.warning(
            "shed",
            "%s: %s had more than %d tells to %r refused within %.3gs: those tells are shed "
            "(dropped unread, counted 'shed') for %.3gs",
            self._name,
            peer,
            self._budget,
            target,
            self._window,
            until - moment,
            peer=peer,
        )

    def shed(self, peer: str, target: str) -> bool:
        """Whether ``peer``'s tells to ``target`` are dropped unread now."""
        self._expire()
        return (peer, target) in self._until

    def sheds(self, peer: str) -> bool:
        """Whether some of ``peer``'s tells are dropped unread now."""
        self._expire()
        return peer in self._markers

    def sift(
        self, peer: str, items: Sequence[bytes], refused: Callable[[str, str], bool]
    ) -> Iterator[tuple[int, bytes]]:
        """A batch's items from ``peer`` (``sheds(peer)``) but its shed tells, which
        are counted: the others with their index, one at a time. A shed tell is
        recognized by its first bytes: the tell prefix, a message id, then a 0
        correlation id, the sender and a shed target as ``encode_envelope`` writes
        them; anything else, well-formed or not, goes the usual way. So does a tell
        to a target not ``refused(peer, target)`` now, looked up before the first item
        and again after each item kept (which may have queued a ``$``-path message)."""
        prefix, at, lengths = TELL_PREFIX, _AT, _ID_LENGTHS
        markers, dropped = self._refused_markers(peer, refused), 0
        for index, item in enumerate(items):
            if (
                item.startswith(prefix)
                and len(item) > at
                and item.startswith(markers, at + lengths[item[at]])
            ):
                dropped += 1
                continue
            if dropped:  # counted before the kept item is handled: nothing is lost
                self.dropped(peer, dropped)
                dropped = 0
            yield index, item
            markers = self._refused_markers(peer, refused)
        if dropped:
            self.dropped(peer, dropped)

    def recheck(self, refused: Callable[[str, str], bool]) -> None:
        """End the shedding of the tells that would no longer be ``refused(peer,
        target)`` (an actor was started there)."""
        if any(not refused(peer, target) for peer, target in self._until):
            self._until = {key: until for key, until in self._until.items() if refused(*key)}
            self._rebuild()

    def dropped(self, peer: str, count: int) -> None:
        """Count ``count`` tells of ``peer`` shed."""
        self._counters.dropped("shed", count, peer=peer)

    def peers(self) -> tuple[str, ...]:
        """(any thread) The peers some of whose tells are shed now."""
        moment = self._now()
        shed = self._until.items()  # the I/O thread replaces this dict, never changes it
        return tuple(sorted({peer for (peer, _target), until in shed if until > moment}))

    def _refused_markers(self, peer: str, refused: Callable[[str, str], bool]) -> tuple[bytes, ...]:
        """The markers of ``peer``'s shed targets its tells to would be ``refused`` now."""
        self._expire()
        shed = self._markers.get(peer, ())
        return tuple(marker for target, marker in shed if refused(peer, target))

    def _expire(self) -> None:
        """Forget the sheddings ended."""
        if not self._until or self._now() < self._next_expiry:
            return
        moment = self._now()
        self._until = {key: until for key, until in self._until.items() if until > moment}
        self._rebuild()

    def _rebuild(self) -> None:
        """The markers and the next expiry, from ``_until``."""
        self._next_expiry = min(self._until.values(), default=_NEVER)
        markers: dict[str, tuple[tuple[str, bytes], ...]] = {}
        for peer, target in self._until:
            markers[peer] = (*markers.get(peer, ()), (target, _marker(peer, target)))
        self._markers = markers


def _marker(peer: str, target: str) -> bytes:
    """What a tell of ``peer`` to ``target`` carries right after its message id."""
    return b"\x00" + pack(peer) + pack(target)
