"""What a member's change of status does on this node.

The failure detector, hellos and leaves decide that a member is up, down or
left (``Transition``s from ``_membership``); ``MemberChanges`` carries each one
out: a member up gets a link to its (new) address; a member left has this
turn's answers to it flushed first, then its link closed; a member down or
left fails the asks waiting on it with ``NodeDown``; every change is told to
the subscribers (``Transport.subscribe``). A member forgotten (departed longer
than ``forget_after``) loses its link and what the node knew of its
capabilities.

I/O thread only.
"""

from __future__ import annotations

import logging

from transport._capabilities import Capabilities
from transport._errors import NodeDown
from transport._membership import MemberEvent, Membership, Transition
from transport._outbox import Outbox
from transport._reply import PendingAsks, complete_ask
from transport._sockets import PeerLinks
from transport._subscribers import Subscribers

__all__ = ["MemberChanges"]

log = logging.getLogger(__name__)


class MemberChanges:
    """Carries out members' changes of status. See the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        membership: Membership,
        links: PeerLinks,
        outbox: Outbox,
        pending: PendingAsks,
        subscribers: Subscribers,
        capabilities: Capabilities,
    ) -> None:
        self._name = name
        self._membership = membership
        self._links = links
        self._outbox = outbox
        self._pending = pending
        self._subscribers = subscribers
        self._capabilities = capabilities

    def apply(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            node = transition.node
            if transition.new == "up":
                if not self._links.has(node) or self._links.address(node) != transition.address:
                    self._links.open(node, transition.address, node)
            else:
                if transition.new == "left":
                    self._outbox.flush()  # this turn's answers to it (refusals) go out first
                    self._links.close(node)
                reason = "left the cluster" if transition.new == "left" else "was declared down"
                for entry in self._pending.take_node(node):
                    complete_ask(entry.future, False, NodeDown(f"node {node} {reason}"))
            log.info("%s: member %s is %s", self._name, node, transition.new)
            self._subscribers.publish(MemberEvent(node, transition.new))

    def close_forgotten(self) -> None:
        """Close the links of the members forgotten since the last call."""
        for node in self._membership.take_forgotten():
            self._links.close(node)
            self._capabilities.forget(node)
            log.info("%s: member %s is forgotten", self._name, node)
