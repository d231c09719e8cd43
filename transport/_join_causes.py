"""Why a join through a seed is not getting anywhere, read from the seed link's socket monitor.

A joiner's hellos go out on a DEALER per seed; when nothing answers, the
reason is on that socket, not in any frame: nothing listens there yet
(connection refused, libzmq retries), or the CURVE handshake failed (the
seed's ZAP handler refused this node's key, or the key this node holds for
the seed is not the seed's). ``JoinCause`` turns those monitor events into a
sentence naming the seed and the fix; handshake failures are *final* (the
join fails at once when every seed failed so), the others are retried until
the join's timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

import zmq

__all__ = ["JoinCause", "join_cause"]

_PROTOCOL_HINTS: dict[int, str] = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: (
        "one side uses CURVE and the other plaintext (start both with --keys, or both with "
        "--plaintext)"
    ),
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "the CURVE keys do not match",
}


@dataclass(frozen=True, slots=True)
class JoinCause:
    """One seed's latest state: ``text`` says what happened, ``final`` if retrying is moot."""

    text: str
    final: bool = False


_PASSING: dict[int, JoinCause] = {
    zmq.EVENT_CONNECT_RETRIED: JoinCause(
        "connection refused (nothing listens there yet?); retrying"
    ),
    zmq.EVENT_CONNECTED: JoinCause(
        "connected; waiting for the handshake and an answer to our hello"
    ),
    zmq.EVENT_HANDSHAKE_SUCCEEDED: JoinCause(
        "connected; no answer to our hello yet (a seed of another protocol version drops "
        "it silently: see the seed's log)"
    ),
    zmq.EVENT_DISCONNECTED: JoinCause("the seed closed the connection; retrying"),
}


def join_cause(event: int, value: int, *, node: str, seed: str | None) -> JoinCause | None:
    """The cause a monitor ``event`` (with its ``value``) of a seed link reveals, or None."""
    passing = _PASSING.get(event)
    if passing is not None:
        return passing
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        text = (
            f"the seed refused this node's CURVE key (ZAP status {value}): {node}.key is not on "
            "the seed's allowlist; copy it into the seed's keys directory (seeds reload it "
            "without a restart) and start this node again"
        )
    elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        held = f"{seed}.key" if seed else "the seed's key"
        text = (
            f"the CURVE handshake failed without detail: the public key this node holds for "
            f"the seed ({held} in its keys directory) is probably not the seed's key"
        )
    elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        hint = _PROTOCOL_HINTS.get(value, "see the seed's log")
        text = f"the handshake failed with a protocol error ({_protocol_name(value)}): {hint}"
    else:
        return None
    return JoinCause(text, final=True)


def _protocol_name(value: int) -> str:
    for attribute in dir(zmq):
        if attribute.startswith("PROTOCOL_ERROR_") and getattr(zmq, attribute) == value:
            return attribute
    return hex(value)
