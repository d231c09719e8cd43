"""actorflow.transport: ZeroMQ + msgpack between actor systems.

Layering: ``transport`` imports neither ``actors`` nor ``runtime`` (only the
standard library, ``zmq`` and ``msgpack``); it knows nothing of workflows. The
root of the error tree lives here (lowest layer).

Modules, one concept each: ``_address`` (Address), ``_codec`` (msgpack, limits,
ext types), ``_envelope`` (wire message shape), ``_swim`` (the SWIM failure
detector, pure: a clock and a send function), ``_suspicion`` (a suspicion's
Lifeguard timeout), ``_piggyback`` (membership updates riding on probes),
``_simulation`` (the same protocol on a virtual clock and an in-process
fabric), ``_membership`` (member table), ``_security`` (CURVE keys, ZAP,
loopback rule), ``_sockets`` (socket options, peer DEALERs), ``_protocol``
(what the I/O thread does per frame and tick), ``_intake`` (a frame's and a
batch item's checks before the protocol), ``_messages`` (tells, asks and
answers: replay window, inbox hand-off, answers back), ``_outbox`` (outgoing frames:
batching, wake-up, back-pressure), ``_io`` (the I/O thread, owner of the
sockets), ``_inbox`` (incoming tells and asks to the handler), ``_subscribers``
(member-event callbacks), ``_reply`` (handler protocols, pending asks and their
futures), ``_workers`` (the notify thread), ``_fair`` (the dispatch thread: per-sender
queues, round-robin), ``_parts`` (what the
threads of one node share), ``_endpoint`` (``Transport``), ``_settings``,
``_stats``, ``_dedup``, ``_clients`` and ``_client_gate`` (a member's client
sessions), ``_client`` (``ClientTransport``: the client role).
"""

from transport._address import Address
from transport._client import ClientTransport
from transport._codec import Limits, pack, unpack
from transport._endpoint import Transport
from transport._envelope import Envelope
from transport._errors import (
    ActorNotFound,
    AskTimeout,
    JoinRefused,
    NameInUse,
    NodeDown,
    OutboxFull,
    Overloaded,
    ProtocolError,
    RemoteError,
    WorkflowError,
)
from transport._membership import Member, MemberEvent, MemberStatus
from transport._ratelog import RateLimitedLog
from transport._reply import InlineHandler, MessageHandler, Reply
from transport._security import Security, generate_keys, is_loopback_endpoint, load_security
from transport._settings import TransportSettings
from transport._stats import TransportStats

# Plain-sorted, which here is also ruff's isort-style order (no CONSTANT names exported).
__all__ = [
    "ActorNotFound",
    "Address",
    "AskTimeout",
    "ClientTransport",
    "Envelope",
    "InlineHandler",
    "JoinRefused",
    "Limits",
    "Member",
    "MemberEvent",
    "MemberStatus",
    "MessageHandler",
    "NameInUse",
    "NodeDown",
    "OutboxFull",
    "Overloaded",
    "ProtocolError",
    "RateLimitedLog",
    "RemoteError",
    "Reply",
    "Security",
    "Transport",
    "TransportSettings",
    "TransportStats",
    "WorkflowError",
    "generate_keys",
    "is_loopback_endpoint",
    "load_security",
    "pack",
    "unpack",
]
