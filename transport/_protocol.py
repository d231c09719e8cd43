"""The node protocol: what the I/O thread does with each received envelope and on each tick.

``NodeProtocol`` holds the thread-side state of a Transport apart from the
sockets themselves: it decodes frames checked by ``_intake`` (the envelope
sender must equal the CURVE User-Id of the connection), hands tells, asks and
their answers to ``_messages`` (which drops replays), answers
hellos with the member list (or refuses a hello naming a live member from
another incarnation), keeps client sessions (``_clients``: hellos with the
client role, answered over the ROUTER), probes gossiped members (gossip is only a hint: see
``_handshake``), hands membership transitions to ``_member_changes`` (open or
close the peer's DEALER, fail asks waiting on a node that went down, notify
subscribers, forget departed members), runs the SWIM failure detector
(``_swim``) over the peers' DEALERs, sheds the tells a peer keeps sending to
an actor that is not there (``_shedding``), expires asks, retries joins.

Thread: every method runs on the I/O thread; API threads register joins and
re-adverts with ``handshakes`` (a lock guards the waiters). Nothing here blocks
or runs user code.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from transport._client_gate import ClientGate
from transport._envelope import (
    ASK,
    BATCH,
    ERROR,
    PROBE_KINDS,
    REPLY,
    ROLE_CLIENT,
    TELL,
    Envelope,
    Kind,
    decode_envelope,
    encode_envelope,
    tell_target,
)
from transport._errors import AskTimeout, ProtocolError
from transport._handshake import Handshakes
from transport._inbox import Inbox
from transport._intake import (
    Dropped,
    batch_item,
    batch_item_fields,
    oversized_batch,
    read_payload,
)
from transport._member_changes import MemberChanges
from transport._membership import NameTaken, Transition
from transport._messages import Messages
from transport._outbox import Outbox
from transport._parts import NodeParts
from transport._ratelog import RateLimitedLog
from transport._reply import complete_ask
from transport._security import check_endpoint
from transport._shedding import Shedding
from transport._sockets import PeerLinks
from transport._subscribers import Subscribers
from transport._swim import Swim

__all__ = ["NodeProtocol"]

log = logging.getLogger(__name__)


class NodeProtocol:
    """Thread-side protocol state of one Transport. See the module docstring.

    Args:
        node: the parts this node's threads share.
        links: the peers' DEALERs (opened and closed here as members come and go).
        outbox: where answers go (from any thread).
        inbox: where received tells and asks go.
        subscribers: who hears of member changes.
    """

    def __init__(
        self,
        node: NodeParts,
        *,
        links: PeerLinks,
        outbox: Outbox,
        inbox: Inbox,
        subscribers: Subscribers,
    ) -> None:
        self._name = node.name
        self._security = node.security
        self._settings = settings = node.settings
        self._now = now = node.now
        self._membership = node.membership
        self._pending = node.pending
        self._counters = node.counters
        self._next_id = node.next_id
        self._links = links
        self._outbox = outbox
        self._inbox = inbox
        self.bound_address: str | None = None
        self.left = threading.Event()  # set once this node left: no more probes or gossip
        # set when it starts leaving: the members that let it go drop its probes, so
        # probing them while it waits for the others' answers would take them for dead
        self.leaving = threading.Event()
        self._messages = Messages(
            node.name,
            settings,
            inbox=inbox,
            outbox=outbox,
            pending=node.pending,
            encode=self._encode,
            drop=self._drop,
        )
        self._changes = MemberChanges(
            node.name,
            membership=node.membership,
            links=links,
            outbox=outbox,
            pending=node.pending,
            subscribers=subscribers,
            capabilities=node.capabilities,
        )
        self._incarnation = node.membership.self_incarnation
        self._capabilities = node.capabilities
        self.handshakes = Handshakes(
            node.name,
            self._incarnation,
            settings,
            links,
            node.ids,
            node.capabilities,
            node.security,
        )
        self._drops_log = node.counters.watch(RateLimitedLog(log))  # per reason (and peer)
        self._shedding = Shedding(
            node.name,
            settings.shed_budget,
            settings.shed_window,
            now=now,
            counters=node.counters,
            log=self._drops_log,
        )
        self._clients = ClientGate(
            node.name,
            settings,
            node.membership,
            links,
            encode=self._encode,
            drop=self._drop,
            deliver=self._messages.receive,
            flush=outbox.flush,
        )
        self._route: zmq.Frame | bytes = b""  # routing id of the frame being handled
        now_value = now()
        self._next_check = now_value
        rng = random.Random()  # noqa: S311 - whom to probe: needs spread, not secrecy
        self.swim = Swim(node.membership, settings, self._send, rng=rng, now=now_value)

    @property
    def client_count(self) -> int:
        """Client sessions held now (read from any thread: one ``len``)."""
        return len(self._clients)

    @property
    def handoffs(self) -> int:
        """(I/O thread) Messages handed to other threads and asks answered so far: a
        turn that changed it woke a thread that now waits for the GIL."""
        return self._inbox.handoffs + self._messages.answered

    @property
    def shed_peers(self) -> tuple[str, ...]:
        """(any thread) The peers whose tells are shed now (see ``_shedding``)."""
        return self._shedding.peers()

    def tick(self, now: float) -> None:
        """Each turn: count the tells refused (against their senders' budgets); if a
        check is due, the periodic work (ask expiry, joins, the failure detector)."""
        for sender, target, count in self._inbox.settle():
            self._shedding.note(sender, target, count)
        if now < self._next_check:
            return
        self._next_check = now + self._settings.check_interval
        self._membership.check(now)
        self._changes.close_forgotten()
        self._shedding.recheck(self._inbox.refuses)  # an actor started: its tells flow again
        for entry in self._pending.expire(now):
            complete_ask(entry.future, False, AskTimeout(f"no answer from {entry.node} in time"))
        self.handshakes.retry_joins(now, self.bound_address)
        self.handshakes.expire(now, self._is_member)
        self._clients.expire(now)
        if self.leaving.is_set():
            return
        self._apply(self._swim_hints(self.swim.tick(now), now))

    def refused_connection(self, detail: str) -> None:
        """The ROUTER's monitor saw a failed handshake (bad key, no CURVE, wrong server key)."""
        self._drop("handshake_failed", detail)

    def on_frames(self, parts: list[zmq.Frame] | list[bytes]) -> Iterator[None] | None:
        """Handle one message received on the ROUTER: [routing id, payload].

        Parts are ``zmq.Frame``s (needed with CURVE, for the User-Id) or, on a
        plaintext socket, ``bytes``. A ``batch`` is not handled at once: the
        returned iterator handles one of its envelopes per step, so the I/O
        thread can spread a peer's batch over several turns (see ``_io``).
        """
        self._route = parts[0]
        taken = read_payload(parts, curve=self._security is not None)
        if isinstance(taken, Dropped):
            self._drop(taken.reason, taken.detail)
            return None
        data, authenticated = taken
        try:
            envelope = decode_envelope(data, self._settings.limits)
        except ProtocolError as exc:
            peer = f" from {authenticated!r}" if authenticated is not None else ""
            self._drop("malformed", f"frame{peer}: {exc}", authenticated)
            return None
        if authenticated is not None and envelope.sender != authenticated:
            self._drop(
                "sender_mismatch",
                f"node {authenticated!r} sent a message claiming sender {envelope.sender!r}",
            )
            return None
        if envelope.sender == self._name:
            self._from_own_name(envelope)
            return None
        if envelope.kind is BATCH:
            return self._on_batch(envelope, len(data), parts[0])
        self._on_envelope(envelope)
        return None

    def _on_batch(self, batch: Envelope, size: int, route: zmq.Frame | bytes) -> Iterator[None]:
        """Handle each envelope of a batch as if it had arrived alone, in order, one
        per step of the iterator; a bad item is dropped, naming the peer, and the
        others are still handled. Other frames may be handled between two steps, so
        each item is handled with the batch's own routing id (``route``).

        A live member's well-formed tell (the bulk of the traffic) is refused
        right here if no actor is at its target (see ``Inbox.refuse_tell``), else
        delivered without the per-envelope checks: a peer flooding an unknown
        actor then costs a decode and a look-up per tell, less than the sender
        spent on it.
        """
        sender, limits = batch.sender, self._settings.limits
        oversized = oversized_batch(batch, size, limits)
        if oversized is not None:
            self._drop(oversized.reason, oversized.detail, oversized.peer)
            return
        status, refuse_tell = self._membership.status, self._inbox.refuse_tell
        if status(sender) == "up":
            self._apply(self.swim.heard(sender, self._now()))  # for its refused tells too
        shedding = self._shedding
        items: Iterable[tuple[int, bytes]] = enumerate(batch.body)
        if shedding.active and shedding.sheds(sender):
            # some of its tells are dropped unread (not one the inbox would not refuse)
            items = shedding.sift(sender, batch.body, self._inbox.refuses)
        for index, data in items:
            fields = batch_item_fields(sender, index, data, limits)
            if isinstance(fields, Dropped):
                self._drop(fields.reason, fields.detail, fields.peer)
                yield
                continue
            target = tell_target(fields, sender)
            if target is not None and status(sender) == "up":  # the bulk: a member's tell
                if not refuse_tell(sender, target):  # (its liveness was heard above)
                    self._route = route
                    self._messages.deliver(Envelope(TELL, fields[2], 0, sender, target, fields[6]))
                yield
                continue
            item = batch_item(sender, index, fields)
            if isinstance(item, Dropped):
                self._drop(item.reason, item.detail, item.peer)
            else:
                self._route = route
                self._on_envelope(item)
            yield

    def _on_envelope(self, envelope: Envelope) -> None:
        kind, sender = envelope.kind, envelope.sender
        if (
            kind is TELL or kind is ASK or kind is REPLY or kind is ERROR
        ) and self._membership.status(sender) == "up":
            # The bulk of the traffic, from a live member: the same steps as below
            # without the checks that only other kinds or statuses need.
            self._apply(self.swim.heard(sender, self._now()))
            shedding = self._shedding
            if (
                kind is TELL
                and shedding.active
                and shedding.shed(sender, envelope.target)
                and self._inbox.refuses(sender, envelope.target)  # no spawn on its way
            ):
                shedding.dropped(sender, 1)
            elif kind is TELL or kind is ASK:
                self._messages.receive(envelope)
            else:
                self._messages.on_answer(envelope)
            return
        now = self._now()
        if kind is Kind.HELLO:
            self._on_hello(envelope, now)
            return
        correlation_id = envelope.correlation_id
        if (
            correlation_id
            and (kind is Kind.MEMBERS or kind is Kind.ERROR)
            and self._answers_our_hello(envelope, now)
        ):
            return
        status = self._membership.status(sender)
        is_answer = kind in (Kind.REPLY, Kind.ERROR)
        if (status is None or status == "left") and not is_answer:
            self._from_non_member(envelope, now)
            return
        if kind in PROBE_KINDS or kind is Kind.HEARTBEAT:
            self._on_probe(envelope, now)
            return
        self._apply(self.swim.heard(sender, now))
        if is_answer:
            self._messages.on_answer(envelope)
        elif kind is Kind.MEMBERS:
            self.handshakes.advertised(correlation_id)  # answers a repeated hello?
            self._hint(envelope.body, now)
        elif kind is Kind.LEAVE:
            # The answers this turn gave it (refusals, queued) go before the ack and its link.
            self._outbox.flush()
            self._links.send(sender, self._encode(Kind.REPLY, None, envelope.message_id))
            self._apply(self._membership.on_leave(sender, now))
        elif kind in (Kind.TELL, Kind.ASK):
            self._messages.receive(envelope)

    def _on_probe(self, envelope: Envelope, now: float) -> None:
        """``ping``, ``ping_req`` or ``ack`` from a member: the failure detector's (a
        member's ``heartbeat``, which version 5 members no longer send, only counts)."""
        kind, sender, body = envelope.kind, envelope.sender, envelope.body
        incarnation = body if kind is Kind.HEARTBEAT else body[0]
        if incarnation != self._membership.incarnation(sender):
            self._drop(
                "stale_incarnation",
                f"{kind.value} from incarnation {incarnation} of {sender!r}, which is not the "
                "member's (a superseded process)",
            )
            return
        if kind is Kind.HEARTBEAT:
            transitions = self.swim.heard(sender, now)
        else:
            ids = envelope.message_id, envelope.correlation_id
            transitions = self.swim.receive(kind, sender, *ids, body, now)
        self._apply(self._swim_hints(transitions, now))

    def _on_hello(self, envelope: Envelope, now: float) -> None:
        sender, body = envelope.sender, envelope.body
        if body["role"] == ROLE_CLIENT:
            self._clients.hello(envelope, self._route_id(), now)
            return
        try:
            self._admit(sender, body["address"], body["incarnation"], now)
        except NameTaken as exc:
            self.handshakes.refuse(envelope, str(exc), now, self._drop)
            return
        except (ValueError, OverflowError) as exc:
            self._drop("refused_hello", f"hello from {sender!r}: {exc}")
            return
        self._capabilities.learn_wire(sender, body["incarnation"], body.get("capabilities", {}))
        entries = self._capabilities.welcome(self._membership.gossip_entries(), self._name)
        self._links.send(sender, self._encode(Kind.MEMBERS, entries, envelope.message_id))

    def readvertise(self, token: int) -> None:
        """This node's capabilities changed: say hello again to every live peer."""
        bound = self.bound_address
        peers = [] if bound is None or self.left.is_set() else self._membership.names("up")
        self.handshakes.advertise(token, peers, self._now(), bound or "")

    def _answers_our_hello(self, envelope: Envelope, now: float) -> bool:
        """Handle ``envelope`` if it answers a join or probe hello of ours; True if it did."""
        handshakes, sender = self.handshakes, envelope.sender
        correlation_id = envelope.correlation_id
        join_token = handshakes.join_token(correlation_id)
        if join_token is None and not handshakes.is_probe(correlation_id, sender):
            return False
        self._on_hello_answer(envelope, join_token, now)
        handshakes.probed(correlation_id, sender)  # after admitting: a settled join sees it
        return True

    def _from_non_member(self, envelope: Envelope, now: float) -> None:
        """A frame of a sender not in the member table: a client's (on its session's
        connection, see ``_client_gate``), or dropped."""
        if not self._clients.frame(envelope, self._route_id(), now):
            sender = envelope.sender
            self._drop(
                "not_member", f"{envelope.kind.value} from {sender!r}, which is not a member"
            )

    def _route_id(self) -> bytes:
        """The routing id of the frame being handled (a client's connection, if it is one)."""
        route = self._route
        return route if isinstance(route, bytes) else route.bytes

    def _on_hello_answer(self, envelope: Envelope, join_token: int | None, now: float) -> None:
        """A seed or a probed peer answered our hello: welcome (``members``) or refusal."""
        sender = envelope.sender
        if envelope.kind is Kind.ERROR:
            refusal = str(envelope.body.message)
            self._drop("hello_refused", f"{sender!r} refused our hello: {refusal}")
            if join_token is not None:
                self.handshakes.end_join(join_token, refusal=f"{refusal} (said {sender})")
            elif not self._is_member(sender):
                self._links.close(sender)  # the probe's link
            return
        own = [entry for entry in envelope.body if entry[0] == sender]
        try:
            if not own or own[0][2] != "up":
                raise ValueError("its member list does not list it as up")
            self._admit(sender, own[0][1], own[0][3], now)
            self._capabilities.learn_wire(sender, own[0][3], own[0][4] if len(own[0]) == 5 else {})
        except (ValueError, OverflowError) as exc:  # NameTaken included
            self._drop("refused_member", f"answer to our hello from {sender!r}: {exc}")
            if join_token is None and not self._is_member(sender):
                self._links.close(sender)  # the probe's link
            return
        probes = self._hint(envelope.body, now)
        if join_token is not None:
            self.handshakes.end_join(join_token, succeeded=True, probes=probes)

    def _admit(self, name: str, address: str, incarnation: int, now: float) -> None:
        """``name`` completed a hello handshake: up at ``address`` as ``incarnation``.

        Raises:
            NameTaken, OverflowError, ValueError: see ``Membership.on_hello``; a bad address.
        """
        check_endpoint(
            address, what="hello address", secured=self._security is not None, allow_plaintext=True
        )
        try:
            transitions = self._membership.on_hello(name, address, now, incarnation)
        finally:
            self._changes.close_forgotten()
        self._apply(transitions)

    def _hint(self, entries: list[list[Any]], now: float) -> frozenset[int]:
        """Gossip names members; probe the unknown ones (they join the table once they
        answer). Returns the probes' hello ids."""
        if self.bound_address is None:
            return frozenset()
        return self.handshakes.hint(entries, now, self.bound_address, self._is_member, self._drop)

    def _from_own_name(self, envelope: Envelope) -> None:
        """Another process with this node's name: a hello is refused (a client's on its own
        connection); its refusal of our join hello (we are the second process) is the answer
        to that join."""
        kind = envelope.kind
        if kind is Kind.HELLO and envelope.body["role"] == ROLE_CLIENT:
            self._clients.hello(envelope, self._route_id(), self._now())  # refused: our name
        elif kind is Kind.HELLO and envelope.body["incarnation"] != self._incarnation:
            reason = (
                f"node name {self._name!r} is in use by a live member (at {self.bound_address})"
            )
            self.handshakes.refuse(envelope, reason, self._now(), self._drop)
        elif kind is Kind.ERROR and self.handshakes.join_token(envelope.correlation_id):
            token = self.handshakes.join_token(envelope.correlation_id)
            self._on_hello_answer(envelope, token, self._now())
        else:
            self._drop("sender_mismatch", "a message claiming to come from this node")

    def _is_member(self, name: str) -> bool:
        return self._membership.status(name) is not None

    # -- membership and joins ----------------------------------------------------

    def _swim_hints(self, transitions: list[Transition], now: float) -> list[Transition]:
        """Say hello to the members the detector's gossip named but the table lacks."""
        hints = self.swim.take_hints()
        if hints:
            self._hint(hints, now)
        return transitions

    def _send(self, node: str, kind: Kind, body: Any, correlation_id: int) -> int:
        """The detector's way out: one envelope to ``node``'s DEALER; its message id."""
        message_id = self._next_id()
        envelope = Envelope(kind, message_id, correlation_id, self._name, "", body)
        self._links.send(node, encode_envelope(envelope, self._settings.limits))
        return message_id

    def _apply(self, transitions: list[Transition]) -> None:
        if transitions:
            self.swim.observe(transitions)
            self._changes.apply(transitions)

    def start_join(self, token: int, seeds: list[tuple[str | None, str]]) -> None:
        """Open links to the seeds and say hello to each (retried until answered)."""
        self.handshakes.start_join(token, seeds, self._now(), self.bound_address)

    def end_join(self, token: int) -> None:
        """The joiner gave up: close the seed links of the join."""
        self.handshakes.end_join(token)

    # -- helpers -------------------------------------------------------------------

    def _encode(self, kind: Kind, body: Any, correlation_id: int = 0) -> bytes:
        envelope = Envelope(kind, self._next_id(), correlation_id, self._name, "", body)
        return encode_envelope(envelope, self._settings.limits)

    def _drop(self, reason: str, detail: str, peer: str | None = None) -> None:
        """Count a dropped frame (against ``peer`` when known, i.e. a member or an
        authenticated sender); log one warning per reason (and peer) every few seconds."""
        self._counters.dropped(reason, peer=peer)
        self._drops_log.warning(
            reason, "%s dropped a frame (%s): %s", self._name, reason, detail, peer=peer
        )
