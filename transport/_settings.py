"""Tuning knobs of a Transport, grouped in one frozen object (no 30-keyword constructors)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from transport._codec import DEFAULT_LIMITS, Limits

__all__ = ["DEFAULT_SETTINGS", "TransportSettings"]


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Timing, bounds and socket options of one Transport. Defaults suit a LAN or loopback.

    Attributes:
        probe_interval: the SWIM protocol period (0.25 s): each period this node
            pings one member (round-robin over a shuffled list), so each member
            sends about 8 probe messages a second whatever the cluster's size.
        probe_timeout: how long the direct ``ack`` is awaited before
            ``indirect_probes`` other members are asked to ping the target (0.1 s);
            with no ack by the end of the period the target is suspected.
        indirect_probes: members asked to probe a silent target (3).
        suspicion_timeout: the shortest time a suspect has to refute before it
            is declared down (1.0 s); it grows with log10 of the cluster's size
            and with fewer independent confirmations (see ``_swim``).
        check_interval: how often the I/O thread runs the failure detector and
            expires asks (0.1 s); also the granularity of ask timeouts.
        pause_tolerance: a longer stall of this node's I/O thread is absorbed as
            a local pause (probe and suspicion deadlines move) instead of
            suspecting every peer (0.5 s).
        gossip_interval: seconds between anti-entropy rounds (5.0): the full
            member list to one random live member, and a ping to one random
            ``down`` member (so healed partitions and resumed nodes come back).
        retransmit_mult: each membership update rides on about
            ``retransmit_mult * ceil(log10(members + 1))`` outgoing messages (4).
        max_piggyback: most membership updates on one probe message (8).
        join_retry_interval: seconds between hellos while joining (0.5).
        linger: seconds a closing socket may spend flushing (0.2).
        reconnect_interval / reconnect_interval_max: ZMQ reconnect backoff
            (0.1 s up to 2 s), so a refused peer does not retry every 100 ms.
        send_hwm / receive_hwm: frames queued per socket before sends are
            dropped (and counted) rather than blocking (1000).
        max_pending_asks: asks in flight at once; more fail at once (10,000).
        dedup_window: (sender, message id) pairs remembered to drop replays (10,000).
        max_members: most nodes in the member table (256); a departed node
            (down or left) gives its place up to a new one when the table is full.
        forget_after: seconds after which a departed (down or left) node is
            forgotten, i.e. removed from the member table (60.0).
        dispatch_queue_size: inbound tells/asks waiting for the handler, all
            senders together (10,000); a sender with fewer than 16 waiting is
            accepted past it, so heavy senders cannot lock light ones out.
        dispatch_queue_per_sender: inbound tells/asks of one sender waiting for
            the handler (5,000); past it that sender's asks are answered
            ``Overloaded`` and its tells dropped (counted against it).
        outbox_size: outgoing tells/asks queued for the I/O thread, plus those
            waiting for a peer's full DEALER (10,000); past it, ``tell`` and
            ``ask`` block their caller (backpressure, see ``Transport``).
        send_timeout: longest such a caller waits for room before
            ``OutboxFull`` is raised (5.0 s).
        max_clients: client sessions held at once (1024); a client is never a
            member: it takes no place in the member table (see ``_clients``).
        max_clients_per_name: of those, sessions of one client name (256; with
            CURVE a name is a key), so one program opening connection after
            connection cannot take every session from the others.
        shed_budget: tells of one peer to one actor that is not there, refused
            within one ``shed_window``, past which its further tells to that actor
            are shed: dropped unread, counted ``shed`` against it, for the rest
            of that window and the next (10,000; 0: never shed). See ``_shedding``.
        shed_window: seconds of one such counting window (1.0).
        client_idle_after: seconds without a frame after which a client session
            is forgotten (30.0); a client keeps its session with heartbeats.
        limits: decoding bounds; ``limits.max_frame_bytes`` is also ZMQ_MAXMSGSIZE.
        keys_poll_interval: seconds between looks at the keys directory (CURVE
            only): when its key files changed, the allowlist is re-read (2.0;
            0 turns polling off: only ``Transport.reload_allowlist`` re-reads it).
    """

    probe_interval: float = 0.25
    probe_timeout: float = 0.1
    indirect_probes: int = 3
    suspicion_timeout: float = 1.0
    check_interval: float = 0.1
    pause_tolerance: float = 0.5
    gossip_interval: float = 5.0
    retransmit_mult: int = 4
    max_piggyback: int = 8
    join_retry_interval: float = 0.5
    linger: float = 0.2
    reconnect_interval: float = 0.1
    reconnect_interval_max: float = 2.0
    send_hwm: int = 1000
    receive_hwm: int = 1000
    max_pending_asks: int = 10_000
    dedup_window: int = 10_000
    max_members: int = 256
    forget_after: float = 60.0
    dispatch_queue_size: int = 10_000
    dispatch_queue_per_sender: int = 5000
    outbox_size: int = 10_000
    send_timeout: float = 5.0
    max_clients: int = 1024
    max_clients_per_name: int = 256
    shed_budget: int = 10_000
    shed_window: float = 1.0
    client_idle_after: float = 30.0
    limits: Limits = DEFAULT_LIMITS
    keys_poll_interval: float = 2.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "limits":
                if not isinstance(value, Limits):
                    raise ValueError(f"TransportSettings.limits must be a Limits, got {value!r}")
            elif field.name in ("keys_poll_interval", "shed_budget") and value == 0:
                continue  # off
            elif isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"TransportSettings.{field.name} must be > 0, got {value!r}")
        for name in (
            "indirect_probes",
            "retransmit_mult",
            "max_piggyback",
            "max_clients_per_name",
            "shed_budget",
        ):
            if type(getattr(self, name)) is not int:
                raise ValueError(
                    f"TransportSettings.{name} must be an int, got {getattr(self, name)!r}"
                )
        if self.max_piggyback > 8:
            raise ValueError(
                f"TransportSettings.max_piggyback must be <= 8, got {self.max_piggyback}"
            )
        if self.probe_timeout >= self.probe_interval:
            raise ValueError(
                f"TransportSettings.probe_interval ({self.probe_interval}) must exceed "
                f"probe_timeout ({self.probe_timeout})"
            )
        if not self.check_interval < self.pause_tolerance < self.suspicion_timeout:
            raise ValueError(
                "TransportSettings needs check_interval < pause_tolerance < suspicion_timeout, "
                f"got {self.check_interval}, {self.pause_tolerance}, {self.suspicion_timeout}"
            )


DEFAULT_SETTINGS = TransportSettings()
