"""CURVE keys, the node allowlist, the ZAP authenticator and the plaintext-on-loopback rule.

Keys directory layout (one directory per cluster; ``actorflow keys`` and
``generate_keys`` write it)::

    keys/
        worker-1.key          public certificate of node "worker-1" (share it)
        worker-1.key_secret   its secret key, mode 0600 (never leaves that host)
        worker-2.key
        ...

The allowlist is *every* ``<node>.key`` public certificate directly in the
directory, and the file stem is the node's name: a node joins a cluster when
its public key file is copied into every member's keys directory, and is
refused new sessions once the file is removed: members re-read the directory
when it changes and on ``Transport.reload_allowlist`` (SIGHUP to ``actorflow
node``), see ``_allowlist``. A secret key
readable by group or others is refused (fail closed, like ssh).

Authentication: ``start_authenticator`` runs pyzmq's ``ThreadAuthenticator`` on
the transport's own ``zmq.Context``, *before* any socket binds (a CURVE socket
without a ZAP handler on its context accepts every client key). The ZAP
handler accepts only allowlisted keys and sets each connection's User-Id to the
node name of its key, so every received frame carries the authenticated node
name (``frame.get("User-Id")``) and the transport drops any message whose
envelope sender differs. Any failure to start raises: there is no fallback to
an unauthenticated socket.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from transport._allowlist import PUBLIC_SUFFIX, Allowlist, load_certificate
from transport._envelope import validate_node_name

__all__ = [
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "Security",
    "check_endpoint",
    "generate_keys",
    "is_loopback_endpoint",
    "load_security",
    "parse_seed",
    "start_authenticator",
]

log = logging.getLogger(__name__)

SECRET_SUFFIX = ".key_secret"  # noqa: S105 - a file suffix, not a secret
ZAP_DOMAIN = "actorflow"


@dataclass(frozen=True, slots=True)
class Security:
    """This node's CURVE key pair and the public keys of the nodes it accepts.

    Attributes:
        name: this node's name (the stem of its key files).
        public_key: this node's Z85 public key.
        secret_key: this node's Z85 secret key (hidden from repr).
        authorized: node name -> Z85 public key of every allowed node.
    """

    name: str
    public_key: bytes
    secret_key: bytes = field(repr=False)
    authorized: Mapping[str, bytes]

    def public_key_of(self, node: str) -> bytes | None:
        """The allowlisted public key of ``node``, or None if it is not allowed.

        A name not found re-reads the keys directory first if its key files
        changed, so a key copied there is usable at once (no poll to wait for).
        """
        key = self.authorized.get(node)
        if key is None and self._refreshed():
            key = self.authorized.get(node)
        return key

    def node_of(self, public_key_z85: bytes) -> str | None:
        """The node name an allowlisted Z85 public key belongs to, or None (re-read as above)."""
        node = self._node_of(public_key_z85)
        if node is None and self._refreshed():
            node = self._node_of(public_key_z85)
        return node

    def reload(self) -> tuple[list[str], list[str]]:
        """Re-read the keys directory now: the (added or changed, removed) node names.

        New handshakes use the new allowlist at once; a removed node is refused on
        its next connection. Nothing to do for an allowlist given as a mapping.
        """
        if not isinstance(self.authorized, Allowlist):
            return [], []
        return self.authorized.reload()

    def _node_of(self, public_key_z85: bytes) -> str | None:
        if isinstance(self.authorized, Allowlist):
            return self.authorized.node_of(public_key_z85)
        for node, key in self.authorized.items():
            if key == public_key_z85:
                return node
        return None

    def _refreshed(self) -> bool:
        """Re-read a keys directory whose key files changed; True if it was re-read."""
        allowlist = self.authorized
        if not isinstance(allowlist, Allowlist):
            return False
        try:
            if not allowlist.changed():
                return False
        except OSError:
            return False
        allowlist.reload()
        return True


def generate_keys(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Create the key pair of node ``name`` in ``directory`` (made 0700 if new).

    The secret file is created 0600 from the start (never briefly world-readable).

    Returns:
        (public key file, secret key file).

    Raises:
        ValueError: ``name`` is not a valid node name.
        FileExistsError: a key of that name already exists (never overwritten).
    """
    validate_node_name(name)
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    public_file = folder / f"{name}{PUBLIC_SUFFIX}"
    secret_file = folder / f"{name}{SECRET_SUFFIX}"
    for path in (public_file, secret_file):
        if path.exists():
            raise FileExistsError(f"key file {path} already exists; refusing to overwrite it")
    public_key, secret_key = zmq.curve_keypair()
    _write_certificate(secret_file, public_key, secret_key, mode=0o600)
    _write_certificate(public_file, public_key, None, mode=0o644)
    return public_file, secret_file


def load_security(directory: str | os.PathLike[str], name: str) -> Security:
    """Load node ``name``'s key pair and the allowlist from ``directory``.

    Raises:
        FileNotFoundError: the directory or ``<name>.key_secret`` is missing.
        PermissionError: the secret key file is readable by group or others.
        ValueError: a key file is malformed or names an invalid node.
    """
    validate_node_name(name)
    folder = Path(directory)
    secret_file = folder / f"{name}{SECRET_SUFFIX}"
    mode = secret_file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"secret key {secret_file} has mode {stat.S_IMODE(mode):o}; "
            "it must be readable by its owner only (chmod 600)"
        )
    public_key, secret_key = load_certificate(secret_file)
    if secret_key is None:
        raise ValueError(f"{secret_file} holds no secret-key")
    return Security(name, public_key, secret_key, Allowlist(folder))


def _write_certificate(path: Path, public_key: bytes, secret_key: bytes | None, mode: int) -> None:
    kind = "Secret" if secret_key is not None else "Public"
    created = datetime.datetime.now(datetime.UTC).isoformat()
    lines = [
        f"#   ****  Generated on {created} by actorflow  ****",
        f"#   ZeroMQ CURVE **{kind}** Certificate",
        "",
        "metadata",
        "curve",
        f'    public-key = "{public_key.decode("ascii")}"',
    ]
    if secret_key is not None:
        lines.append(f'    secret-key = "{secret_key.decode("ascii")}"')
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write("\n".join(lines) + "\n")


class _AllowlistAuthenticator(ThreadAuthenticator):
    """ZAP handler: accepts allowlisted keys, names each connection by its node name."""

    def __init__(self, context: zmq.Context[Any], security: Security) -> None:
        super().__init__(context=context, log=logging.getLogger(f"{__name__}.zap"))
        self._security = security

    def curve_user_id(self, client_public_key: bytes) -> str:
        node = self._security.node_of(z85.encode(client_public_key))
        # Only called after callback() accepted the key, so node is never None.
        return node if node is not None else ""

    def callback(self, domain: str, key: bytes) -> bool:
        node = self._security.node_of(key)
        if node is None:
            log.warning("ZAP refused a CURVE client key that is not on the allowlist")
            return False
        return True


def start_authenticator(
    context: zmq.Context[Any], security: Security, thread_name: str
) -> ThreadAuthenticator:
    """Start the ZAP authenticator on ``context``; call before binding any CURVE socket.

    Raises:
        RuntimeError: the authenticator could not start (fail closed).
    """
    authenticator = _AllowlistAuthenticator(context, security)
    try:
        authenticator.start()
        authenticator.thread.name = thread_name
        authenticator.configure_curve_callback(ZAP_DOMAIN, credentials_provider=authenticator)
    except (zmq.ZMQError, RuntimeError) as exc:
        authenticator.stop()
        raise RuntimeError(f"ZAP authenticator failed to start: {exc}") from exc
    if not authenticator.is_alive():
        authenticator.stop()
        raise RuntimeError("ZAP authenticator thread is not running")
    return authenticator


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``tcp://host:port`` into (host, port); IPv6 hosts may be bracketed.

    Raises:
        ValueError: naming ``endpoint`` if it is not a tcp endpoint with a port.
    """
    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://"):
        raise ValueError(f"endpoint must look like 'tcp://host:port', got {endpoint!r}")
    host, sep, port_text = endpoint.removeprefix("tcp://").rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"endpoint must look like 'tcp://host:port', got {endpoint!r}")
    return host.removeprefix("[").removesuffix("]"), int(port_text)


def is_loopback_endpoint(endpoint: str) -> bool:
    """True if ``endpoint`` is tcp on 127.0.0.0/8, ::1 or ``localhost``.

    Raises:
        ValueError: ``endpoint`` is not a tcp endpoint.
    """
    host, _ = split_endpoint(endpoint)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname, '*' or an interface name: assume it reaches the network


def check_endpoint(endpoint: str, *, what: str, secured: bool, allow_plaintext: bool) -> None:
    """Refuse an endpoint that would carry plaintext off this host (before any bind/connect).

    Raises:
        ValueError: ``endpoint`` is malformed, or plaintext was not asked for, or it
            is not loopback while CURVE is off. The message names ``what``.
    """
    loopback = is_loopback_endpoint(endpoint)
    if secured:
        return
    if not loopback:
        raise ValueError(
            f"{what} {endpoint!r} is not a loopback address and CURVE security is off: "
            "refusing to send plaintext over the network (pass security=load_security(...))"
        )
    if not allow_plaintext:
        raise ValueError(
            f"{what} {endpoint!r} would be plaintext: pass security=load_security(...) "
            "or allow_plaintext=True (loopback only)"
        )


def parse_seed(seed: str, *, secured: bool, allow_plaintext: bool) -> tuple[str | None, str]:
    """``name@tcp://host:port`` or ``tcp://host:port`` as (name or None, address).

    Raises:
        ValueError: a bad name or endpoint, or no name while CURVE is on (the name
            selects the seed's server key).
    """
    name, sep, address = seed.rpartition("@") if "@" in seed else (None, "", seed)
    if sep and name is not None:
        validate_node_name(name, f"seed {seed!r} node name")
    elif secured:
        raise ValueError(f"with CURVE a seed must be 'name@tcp://host:port', got {seed!r}")
    check_endpoint(address, what="seed", secured=secured, allow_plaintext=allow_plaintext)
    return (name or None), address
