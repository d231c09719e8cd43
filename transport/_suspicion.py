"""One suspicion of a member and its Lifeguard timeout. Pure (it is given ``now``).

The timeout starts at ``BETA`` times its minimum and falls to the minimum as
independent members confirm the suspicion (their own probes failed too), as in
Lifeguard (Dadgar et al., 2018): a real death is confirmed by everyone's
probes within a period or two and is declared quickly; a lost packet or a
member slowed by load is accused by one member, and has the longest time to
refute. The minimum grows with log10 of the cluster's size, the time gossip
needs to reach every member (so the suspect hears of it, and its refutation
spreads back)::

    low  = max(suspicion_timeout, ALPHA * log10(N) * probe_interval)
    high = BETA * low            (low when no confirmation can come: N = 2)
    timeout(C) = max(low, high - (high - low) * log(C + 1) / log(K + 1))

with C confirmations counted up to K = min(indirect_probes, N - 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transport._settings import TransportSettings

__all__ = ["ALPHA", "BETA", "Suspicion"]

ALPHA = 2.0  # the minimum suspicion, in protocol periods per decade of members
BETA = 3.0  # an unconfirmed suspicion lasts BETA x the minimum


@dataclass(slots=True)
class Suspicion:
    """A member suspected at ``epoch`` since ``started``; declared dead at ``deadline``."""

    epoch: int
    started: float
    deadline: float
    low: float
    high: float
    expected: int
    accusers: set[str]

    @classmethod
    def start(
        cls, settings: TransportSettings, members: int, epoch: int, accuser: str, now: float
    ) -> Suspicion:
        members = max(2, members)
        low = max(settings.suspicion_timeout, ALPHA * math.log10(members) * settings.probe_interval)
        expected = min(settings.indirect_probes, members - 2)
        high = low if expected == 0 else BETA * low
        return cls(epoch, now, now + high, low, high, expected, {accuser})

    def confirm(self, accuser: str) -> bool:
        """Count an independent accuser: the deadline comes closer. True if it was new."""
        confirmations = len(self.accusers) - 1
        if accuser in self.accusers or confirmations >= self.expected:
            return False
        self.accusers.add(accuser)
        fraction = math.log(confirmations + 2) / math.log(self.expected + 1)
        timeout = max(self.low, self.high - (self.high - self.low) * fraction)
        self.deadline = self.started + timeout
        return True

    def shift(self, gap: float) -> None:
        """This node was paused ``gap`` seconds: the suspect gets that time back."""
        self.started += gap
        self.deadline += gap
