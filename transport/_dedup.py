"""A bounded memory of (sender, message id) pairs, to drop replayed or duplicated messages."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DedupWindow"]


class DedupWindow:
    """Remembers the last ``capacity`` keys seen; older ones are forgotten (bounded memory).

    Message ids start at a random 62-bit offset per transport instance, so a
    restarted node reusing its name does not collide with its previous ids.
    Not thread-safe: used by the I/O thread only.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()

    def seen_before(self, sender: str, message_id: int) -> bool:
        """Record the key; True if it was already in the window."""
        key = (sender, message_id)
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        self._seen[key] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._seen)
