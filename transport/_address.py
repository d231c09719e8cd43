"""Actor addresses: ``node/path``, the one way to name an actor anywhere in a cluster.

An ``Address`` is a frozen value. It travels on the wire as msgpack ext type 1
(see ``_codec``), so a ref can be sent inside messages and stays an ``Address``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Address"]


@dataclass(frozen=True, slots=True)
class Address:
    """The address of one actor: the node that hosts it and its path on that node.

    ``str(address)`` is ``"node/path"``; ``Address.parse`` is its inverse.

    Raises:
        ValueError: (from the constructor) if ``node`` is empty or contains ``/``,
            or ``path`` is empty; the message echoes the rejected value.
    """

    node: str
    path: str

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not self.node or "/" in self.node:
            raise ValueError(f"Address node must be a non-empty str without '/', got {self.node!r}")
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"Address path must be a non-empty str, got {self.path!r}")

    def __str__(self) -> str:
        return f"{self.node}/{self.path}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``"node/path"`` (the path may itself contain ``/``).

        Raises:
            ValueError: naming ``text`` if it has no ``/``, or an empty node or path.
        """
        if not isinstance(text, str):
            raise ValueError(f"address must be a str like 'node/path', got {text!r}")
        node, sep, path = text.partition("/")
        if not sep:
            raise ValueError(f"address must look like 'node/path', got {text!r}")
        try:
            return cls(node, path)
        except ValueError as exc:
            raise ValueError(f"invalid address {text!r}: {exc}") from exc
