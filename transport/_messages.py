"""Tells, asks and answers from peers: the replay window, the hand-off to the inbox, answers back.

Thread: ``receive`` and ``on_answer`` run on the I/O thread (``NodeProtocol``
calls them for each tell, ask, reply or error of a member or a client
session); ``answer`` runs on whichever thread answers an ask (it goes through
the ``Outbox``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from transport._dedup import DedupWindow
from transport._envelope import ASK, ERROR, TELL, Envelope, Kind
from transport._errors import ProtocolError
from transport._inbox import Inbox
from transport._outbox import Outbox
from transport._reply import (
    CallbackReply,
    PendingAsks,
    Reply,
    complete_ask,
    error_from_wire,
    error_to_wire,
)
from transport._settings import TransportSettings

__all__ = ["Messages"]

log = logging.getLogger(__name__)


class Messages:
    """The data messages of one Transport. See the module docstring.

    Args:
        name: this node's name (answers name it as the failing node).
        settings: ``dedup_window`` sizes the replay window.
        inbox: where tells and asks go.
        outbox: where answers go.
        pending: this node's asks waiting for an answer.
        encode: ``(kind, body, correlation_id)``: an envelope of this node, encoded.
        drop: ``(reason, detail, peer)``: count and log a dropped frame.
    """

    def __init__(
        self,
        name: str,
        settings: TransportSettings,
        *,
        inbox: Inbox,
        outbox: Outbox,
        pending: PendingAsks,
        encode: Callable[[Kind, Any, int], bytes],
        drop: Callable[[str, str, str | None], None],
    ) -> None:
        self._name = name
        self._inbox = inbox
        self._outbox = outbox
        self._pending = pending
        self._encode = encode
        self._drop = drop
        self._dedup = DedupWindow(settings.dedup_window)
        self.answered = 0  # (I/O thread) answers that completed an ask (woke its asker)

    def receive(self, envelope: Envelope, reply_to: str | None = None) -> None:
        """(I/O thread) A tell or ask: refused, dropped as a replay, or handed to the inbox;
        an ask's answer goes to ``reply_to`` (a client session's key) or its sender."""
        if envelope.kind is TELL and self._inbox.refuse_tell(envelope.sender, envelope.target):
            return  # to no actor: refused before it takes a place in the replay window
        self.deliver(envelope, reply_to)

    def deliver(self, envelope: Envelope, reply_to: str | None = None) -> None:
        """(I/O thread) As ``receive``, for a message already offered to
        ``Inbox.refuse_tell`` (a batch's tell) or an ask: dropped as a replay, or
        handed to the inbox."""
        if self._dedup.seen_before(envelope.sender, envelope.message_id):
            self._drop(
                "duplicate",
                f"replayed message {envelope.message_id} from {envelope.sender!r}",
                envelope.sender,
            )
            return
        reply: Reply | None = None
        if envelope.kind is ASK:
            reply = CallbackReply(
                partial(self.answer, reply_to or envelope.sender, envelope.message_id)
            )
        # refused (its sender has too many waiting): answered Overloaded, counted there
        self._inbox.receive(envelope.sender, envelope.target, envelope.body, reply)

    def on_answer(self, envelope: Envelope) -> None:
        """(I/O thread) A reply or error: completes the pending ask it answers."""
        entry = self._pending.resolve(envelope.correlation_id, envelope.sender)
        if entry is None:
            self._drop(
                "unexpected_reply",
                f"answer from {envelope.sender!r} to no pending ask",
                envelope.sender,
            )
            return
        self.answered += 1
        if envelope.kind is ERROR:
            complete_ask(entry.future, False, error_from_wire(envelope.body))
        else:
            complete_ask(entry.future, True, envelope.body)

    def answer(self, node: str, correlation_id: int, ok: bool, value: Any) -> None:
        """Send the answer to ask ``correlation_id`` back to ``node`` (any thread)."""
        try:
            if ok:
                frame = self._encode(Kind.REPLY, value, correlation_id)
            else:
                frame = self._encode(Kind.ERROR, error_to_wire(value, self._name), correlation_id)
        except ProtocolError as exc:
            log.warning("answer to %s cannot be encoded: %s", node, exc)
            frame = self._encode(Kind.ERROR, error_to_wire(exc, self._name), correlation_id)
        self._outbox.post(node, frame)
