"""Distributed locks for users: ``system.lock(name, lease=...)`` and the client behind it.

The ``LockManager`` actor runs on one node (``ActorSystem(locks_on=...)``,
this node by default); ``LockClient`` talks to it in-process, or over the
transport at ``<node>/$locks`` with msgpack messages. Remote errors are mapped
back to ``NotLockOwner`` / ``NotLocked`` / ``LockTimeout``.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors import (
    Acquire,
    Check,
    LockError,
    LockGrant,
    LockTimeout,
    NotLocked,
    NotLockOwner,
    Release,
    Renew,
)
from runtime.cluster._paths import LOCKS_PATH
from transport import Address, RemoteError, Transport

__all__ = ["Lock", "LockClient"]

_ERRORS: dict[str, type[LockError]] = {
    "runtime.NotLockOwner": NotLockOwner,
    "runtime.NotLocked": NotLocked,
    "runtime.LockTimeout": LockTimeout,
}
_MARGIN = 5.0  # seconds a blocking call waits beyond the lock's own timeout for the answer


def _local_error(error: BaseException) -> BaseException:
    if isinstance(error, RemoteError) and error.type_name in _ERRORS:
        return _ERRORS[error.type_name](error.message)
    return error


class LockClient:
    """Sends lock requests to the manager, local (a pykka ref) or on another node."""

    def __init__(
        self,
        *,
        local: Callable[[], pykka.ActorRef[Any]] | None,
        node: str,
        transport: Transport | None,
    ) -> None:
        """``local`` returns the in-process manager (started on first use), else None."""
        self._local = local
        self._node = node
        self._transport = transport

    def request(self, op: str, fields: dict[str, Any], callback: Callable[[Any], None]) -> None:
        """Send ``op``; ``callback`` gets a LockGrant, True, or an exception (any thread)."""
        if self._local is not None:
            self._local().tell(_message(op, fields, callback))
            return
        assert self._transport is not None
        wait = fields.get("timeout")
        deadline = (wait if wait is not None else 3600.0) + _MARGIN
        future = self._transport.ask(
            Address(self._node, LOCKS_PATH), {"op": op, **fields}, timeout=deadline
        )

        def done(f: concurrent.futures.Future[Any]) -> None:
            error = f.exception()
            if error is not None:
                callback(_local_error(error))
                return
            value = f.result()
            callback(LockGrant(**value) if isinstance(value, dict) else value)

        future.add_done_callback(done)

    def call(self, op: str, fields: dict[str, Any], wait: float) -> Any:
        """Blocking ``request``: returns the answer or raises the error (bounded by ``wait``)."""
        answer: list[Any] = []
        done = threading.Event()

        def callback(value: Any) -> None:
            answer.append(value)
            done.set()

        self.request(op, fields, callback)
        if not done.wait(wait + _MARGIN):
            raise LockTimeout(f"lock manager on {self._node} did not answer {op}")
        if isinstance(answer[0], BaseException):
            raise answer[0]
        return answer[0]


def _message(op: str, fields: dict[str, Any], reply: Callable[[Any], None]) -> Any:
    if op == "acquire":
        return Acquire(fields["name"], fields["owner"], fields["lease"], fields["timeout"], reply)
    if op == "release":
        return Release(fields["name"], fields["token"], reply)
    if op == "renew":
        return Renew(fields["name"], fields["token"], fields["lease"], reply)
    if op == "check":
        return Check(fields["name"], fields["token"], reply)
    raise ValueError(f"unknown lock operation {op!r}")


_FIELDS: dict[str, tuple[str, ...]] = {
    "acquire": ("name", "owner", "lease", "timeout"),
    "release": ("name", "token"),
    "renew": ("name", "token", "lease"),
    "check": ("name", "token"),
}


def _number(value: Any, *, positive: bool) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value > 0 if positive else value >= 0)


def lock_message(op: str, fields: dict[str, Any], reply: Callable[[Any], None]) -> Any:
    """The manager message for a request that came over the wire, checked field by field.

    Raises:
        ValueError: naming the operation or field that is missing or of the wrong type.
    """
    if op not in _FIELDS:
        raise ValueError(f"unknown lock operation {op!r}")
    missing = [name for name in _FIELDS[op] if name not in fields]
    if missing:
        raise ValueError(f"lock {op}: missing {missing}")
    checks = {
        "name": lambda v: isinstance(v, str) and bool(v),
        "owner": lambda v: isinstance(v, str),
        "lease": lambda v: _number(v, positive=True),
        "timeout": lambda v: v is None or _number(v, positive=False),
        "token": lambda v: isinstance(v, int) and not isinstance(v, bool),
    }
    for name in _FIELDS[op]:
        if not checks[name](fields[name]):
            raise ValueError(f"lock {op}: bad {name} {fields[name]!r}")
    return _message(op, fields, reply)


class Lock:
    """A named lease lock. ``acquire`` returns a fencing token; use it as a context manager.

    Not reentrant and not thread-safe: one holder at a time per handle.
    """

    def __init__(self, client: LockClient, name: str, *, lease: float, owner: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"lock name must be a non-empty str, got {name!r}")
        if not isinstance(lease, int | float) or lease <= 0:
            raise ValueError(f"lease must be a number of seconds > 0, got {lease!r}")
        self.name = name
        self.lease = float(lease)
        self._client = client
        self._owner = owner
        self.token: int | None = None

    def acquire(self, timeout: float | None = None) -> int:
        """Wait at most ``timeout`` s (None: forever, 0: try once); returns the fencing token.

        Raises:
            LockTimeout: not acquired within ``timeout``.
        """
        if timeout is not None and not _number(timeout, positive=False):
            raise TypeError(f"acquire(timeout) must be None or a number >= 0, got {timeout!r}")
        fields = {"name": self.name, "owner": self._owner, "lease": self.lease, "timeout": timeout}
        grant = self._client.call("acquire", fields, wait=timeout if timeout is not None else 1e9)
        self.token = int(grant.token)
        return self.token

    def renew(self) -> None:
        """Extend the lease; NotLockOwner if it expired and someone else took the lock."""
        self._client.call(
            "renew", {"name": self.name, "token": self._held(), "lease": self.lease}, wait=0.0
        )

    def release(self) -> None:
        """Give the lock up; NotLockOwner if our lease expired and another holder has it."""
        token = self._held()
        self.token = None
        self._client.call("release", {"name": self.name, "token": token}, wait=0.0)

    def check(self, token: int) -> None:
        """Raise NotLockOwner/NotLocked unless ``token`` is the current holder's (fencing)."""
        self._client.call("check", {"name": self.name, "token": token}, wait=0.0)

    def _held(self) -> int:
        if self.token is None:
            raise NotLocked(f"lock {self.name!r} is not held by this handle")
        return self.token

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.token is not None:
            self.release()
