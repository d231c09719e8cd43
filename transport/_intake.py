"""Frame intake: what a frame received on the ROUTER must be before the protocol sees it.

Two checks that need no protocol state: the framing and, on a CURVE socket, the
connection's authenticated node (``read_payload``); and the items of a ``batch``,
each decoded on its own and held to the batch's sender (``oversized_batch``,
``batch_item_fields``, ``batch_item``). A bad frame or item becomes a
``Dropped`` naming the reason, which the protocol counts and logs; the other
items of a batch are still handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import zmq

from transport._codec import Limits, unpack
from transport._envelope import BATCH, Envelope, envelope_from_fields
from transport._errors import ProtocolError

__all__ = ["Dropped", "batch_item", "batch_item_fields", "oversized_batch", "read_payload"]


@dataclass(frozen=True, slots=True)
class Dropped:
    """A frame or batch item refused: the drop reason, a detail, and the peer blamed."""

    reason: str
    detail: str
    peer: str | None = None


def read_payload(
    parts: list[zmq.Frame] | list[bytes], curve: bool
) -> tuple[bytes, str | None] | Dropped:
    """The frame's payload and, with CURVE, the node its key authenticates.

    A bad framing, or a frame without a User-Id on a CURVE socket, is ``Dropped``
    (fail closed: a plaintext ``bytes`` part never passes on a CURVE socket).
    """
    if len(parts) != 2:
        return Dropped("bad_framing", f"{len(parts) - 1} frames in one message")
    payload = parts[1]
    if isinstance(payload, bytes):
        if curve:
            return Dropped("unauthenticated", "frame without a User-Id on a CURVE socket")
        return payload, None
    if not curve:
        return payload.bytes, None
    try:
        authenticated = str(payload.get("User-Id"))
    except zmq.ZMQError:
        authenticated = ""
    if not authenticated:
        return Dropped("unauthenticated", "frame without a User-Id on a CURVE socket")
    return payload.bytes, authenticated


def oversized_batch(batch: Envelope, size: int, limits: Limits) -> Dropped | None:
    """Why ``batch`` (``size`` bytes on the wire) is refused whole, or None.

    A batch of more than ``max_containers`` bytes is refused: a batch of at most
    that many bytes holds at most that many containers in all (each takes a byte
    at least), so one batch costs no more than one frame may (no amplification).
    """
    if size <= limits.max_containers:
        return None
    return Dropped(
        "malformed",
        f"batch from {batch.sender!r} is {size} bytes, over max_containers={limits.max_containers}",
        batch.sender,
    )


def batch_item_fields(sender: str, index: int, item: bytes, limits: Limits) -> Any:
    """Item ``index`` of a batch from ``sender``, decoded on its own (``unpack``: not yet
    checked as an envelope), or a ``Dropped`` if it is not msgpack within ``limits``.

    Items are decoded one by one, so a caller may handle one per turn."""
    try:
        return unpack(item, limits)
    except ProtocolError as exc:
        return _malformed_item(sender, index, str(exc))


def batch_item(sender: str, index: int, fields: Any) -> Envelope | Dropped:
    """Item ``index`` of a batch from ``sender``, from its decoded ``fields``: the
    envelope, or why it is dropped."""
    try:
        envelope = envelope_from_fields(fields)
    except ProtocolError as exc:
        return _malformed_item(sender, index, str(exc))
    if envelope.sender != sender:
        return Dropped(
            "sender_mismatch",
            f"item {index} of a batch from {sender!r} claims sender {envelope.sender!r}",
            sender,
        )
    if envelope.kind is BATCH:
        return _malformed_item(sender, index, "a batch in a batch")
    return envelope


def _malformed_item(sender: str, index: int, why: str) -> Dropped:
    return Dropped("malformed", f"item {index} of a batch from {sender!r}: {why}", sender)
