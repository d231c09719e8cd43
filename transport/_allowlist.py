"""The allowlist of node public keys, re-read from its keys directory while the node runs.

``Allowlist`` is the ``Security.authorized`` mapping (node name -> Z85 public
key) of a node started from a keys directory: every ``<node>.key`` file
directly in it. ``reload`` reads the directory again and swaps the table in
one assignment, so readers (the ZAP handler's thread, the I/O thread) see the
old table or the new one, never a mix. A key added is accepted on the next
handshake; a key removed is refused on its holder's next connection
(connections already authenticated stay up until they close).

``reload`` runs on ``Transport.reload_allowlist`` (``actorflow node`` calls it
on SIGHUP) and whenever ``changed`` sees the directory differ from the last
read: names, sizes and modification times of its ``*.key`` files, polled by
the I/O thread every ``TransportSettings.keys_poll_interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import zmq.auth

from transport._envelope import validate_node_name

__all__ = ["PUBLIC_SUFFIX", "Allowlist", "KeysWatch", "load_certificate", "read_allowlist"]

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"


def load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    """(public key, secret key or None) of a ZeroMQ certificate file, checked."""
    try:
        public_key, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read CURVE certificate {path}: {exc}") from exc
    for key in (public_key, secret_key):
        if key is not None and len(key) != 40:
            raise ValueError(f"{path} holds a key that is not 40 Z85 chars")
    return public_key, secret_key


def read_allowlist(folder: Path) -> dict[str, bytes]:
    """Node name -> public key of every ``*.key`` file in ``folder``.

    Raises:
        ValueError: a key file is malformed or its name is not a valid node name.
    """
    authorized: dict[str, bytes] = {}
    for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}")):
        node = validate_node_name(path.name.removesuffix(PUBLIC_SUFFIX), f"key file name {path}")
        authorized[node] = load_certificate(path)[0]
    return authorized


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What ``changed`` compares: (name, size, mtime) of each key file, sorted."""
    found = []
    for path in folder.glob(f"*{PUBLIC_SUFFIX}"):
        try:
            info = path.stat()
        except OSError:
            continue  # removed between the listing and the stat
        found.append((path.name, info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


class Allowlist(Mapping[str, bytes]):
    """Node name -> Z85 public key, from ``folder``; ``reload`` re-reads it (thread-safe)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()  # one reload at a time
        self._signature = _signature(folder)
        self._keys: dict[str, bytes] = read_allowlist(folder)
        self._nodes: dict[bytes, str] = {key: node for node, key in self._keys.items()}

    def __getitem__(self, node: str) -> bytes:
        return self._keys[node]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def node_of(self, public_key_z85: bytes) -> str | None:
        return self._nodes.get(public_key_z85)

    def changed(self) -> bool:
        """Whether the key files differ from the last read (cheap: one listing, no parsing)."""
        return _signature(self.folder) != self._signature

    def reload(self) -> tuple[list[str], list[str]]:
        """Read the directory again; returns (added, removed) node names.

        A malformed key file keeps the old table (logged): a half-copied file must
        not lock everybody out.
        """
        with self._lock:
            signature = _signature(self.folder)
            try:
                keys = read_allowlist(self.folder)
            except ValueError as exc:
                log.error("allowlist of %s not reloaded: %s", self.folder, exc)
                self._signature = signature  # not again until the files change
                return [], []
            old = self._keys
            nodes = {key: node for node, key in keys.items()}
            self._keys, self._nodes, self._signature = keys, nodes, signature
        added = sorted(n for n in keys if old.get(n) != keys[n])
        removed = sorted(n for n in old if n not in keys)
        if added or removed:
            log.warning(
                "allowlist %s reloaded: added or changed %s, removed %s",
                self.folder,
                added or "none",
                removed or "none",
            )
        return added, removed


class KeysWatch:
    """Re-reads an ``Allowlist`` when its directory changed, every ``interval`` s (I/O thread).

    Does nothing for a plaintext node, one whose allowlist is a fixed mapping, or with
    ``interval`` 0.
    """

    def __init__(self, security: object, interval: float, now: float) -> None:
        authorized = getattr(security, "authorized", None)
        polled = isinstance(authorized, Allowlist) and interval > 0
        self._allowlist = authorized if polled else None
        self._interval = interval
        self._next = now + interval

    def tick(self, now: float) -> None:
        if self._allowlist is None or now < self._next:
            return
        self._next = now + self._interval
        try:
            if self._allowlist.changed():
                self._allowlist.reload()
        except OSError as exc:  # the directory itself went away: keep the last table
            log.error("keys directory %s unreadable: %s", self._allowlist.folder, exc)
