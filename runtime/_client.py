"""``Client``: hand runs to a running cluster, and look at them, without joining it.

A client is not a member (see ``transport.ClientTransport``): it connects to
one member (the *seed*), needs no listen address, takes no place in the
member table, and with CURVE authenticates with its own key pair (its name is
the key's name, which the members' allowlist must hold).

``submit(name, ctx)`` asks the seed to start its registered workflow ``name``
on ``ctx``: the seed coordinates the run and checkpoints it in its own store,
so the submitter may exit at once. The returned ``SubmittedRun`` (or
``client.run(run_id)`` from any later process) reads the run's state and
waits for its result by asking the node that coordinates it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors import ResultTimeout
from runtime._submissions import UnknownWorkflow, check_run_id
from runtime.cluster import SYSTEM_PATH
from runtime.store import decode_value, encode_value
from transport import (
    AskTimeout,
    ClientTransport,
    NodeDown,
    RemoteError,
    TransportSettings,
    load_security,
)

__all__ = ["Client", "RunInfo", "SubmittedRun"]

_POLL = 0.2  # seconds between two looks at a run being waited for
_SILENCE = 60.0  # seconds a waited-for run's node may not answer (a restart) before wait gives up


@dataclass(frozen=True)
class RunInfo:
    """A run as the node coordinating it sees it, at one moment.

    ``progress`` is the run's progress line (``[3/5] 1 running, ETA 2.0s``), or
    None when the node has no events of it (a run it only has in its store).
    ``error`` is ``"TypeName: message"`` of a run that did not complete.
    """

    run_id: str
    node: str
    workflow: str
    state: str | None
    done: bool
    progress: str | None
    error: str | None
    output: bytes | None  # encoded by ``runtime.store``; ``SubmittedRun.result`` decodes it

    @classmethod
    def from_wire(cls, answer: dict[str, Any]) -> RunInfo:
        progress = answer.get("progress")
        error, error_type = answer.get("error"), answer.get("error_type")
        return cls(
            run_id=answer["run"],
            node=answer["node"],
            workflow=answer.get("workflow") or "",
            state=answer.get("state"),
            done=bool(answer.get("done")),
            progress=progress["line"] if isinstance(progress, dict) else None,
            error=f"{error_type}: {error}" if error and error_type else error,
            output=answer.get("output"),
        )


class SubmittedRun:
    """A handle on a run in the cluster: ``id``, ``node``, ``state``, ``info()``, ``result()``."""

    def __init__(self, client: Client, run_id: str, node: str) -> None:
        self._client = client
        self.id = run_id
        self.node = node  # the member that coordinates the run

    def __repr__(self) -> str:
        return f"SubmittedRun({self.id!r} on {self.node!r})"

    def info(self) -> RunInfo:
        """Ask the coordinating node for the run's state, progress and outcome."""
        answer = self._client._ask(self.node, {"op": "run", "run": self.id})
        return RunInfo.from_wire(dict(answer))

    @property
    def state(self) -> str | None:
        """``Pending``, ``Running``, ``Completed``, ``Failed`` or ``Canceled`` (asked now)."""
        return self.info().state

    def wait(
        self,
        timeout: float | None = None,
        *,
        on_info: Callable[[RunInfo], None] | None = None,
        silence: float = _SILENCE,
    ) -> RunInfo:
        """Wait until the run ended (asking every 0.2 s); ``on_info`` sees every answer.

        The coordinating node may leave questions unanswered for up to ``silence``
        seconds in a row (it restarts on the same address and resumes the run, or
        the network blips): the asking goes on meanwhile.

        Raises:
            ResultTimeout: still not done after ``timeout`` seconds.
            AskTimeout, NodeDown: the node answered nothing for ``silence`` seconds
                (or until ``timeout``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        silent_since: float | None = None
        while True:
            try:
                info = self.info()
            except (AskTimeout, NodeDown):
                now = time.monotonic()
                silent_since = now if silent_since is None else silent_since
                if now - silent_since >= silence or (deadline is not None and now >= deadline):
                    raise
                time.sleep(_POLL)  # asking again soon: the wait is bounded by ``silence``
                continue
            silent_since = None
            if on_info is not None:
                on_info(info)
            if info.done:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"run {self.id} not done after {timeout}s (state {info.state})")
            time.sleep(_POLL)  # polling the node: the wait is bounded by the deadline

    def result(self, timeout: float | None = None) -> Any:
        """The run's output, once it completed.

        Raises:
            ResultTimeout: not done after ``timeout`` seconds.
            RemoteError: the run failed or was canceled (``type_name`` and message
                say why, ``node`` where it was coordinated).
        """
        info = self.wait(timeout)
        if info.state == "Completed" and info.output is not None:
            return decode_value(info.output, what=f"run {self.id} output")
        type_name, _, message = (info.error or f"run ended {info.state}").partition(": ")
        if not message:
            type_name, message = "runtime.WorkflowError", type_name
        raise RemoteError(type_name, f"run {self.id} {info.state}: {message}", "", info.node)


class Client:
    """A client of a running cluster. See the module docstring.

    Args:
        seed: a member's endpoint: ``name@tcp://host:port`` (required with ``keys``)
            or ``tcp://host:port`` (plaintext).
        keys: a keys directory (CURVE): the client's own key pair ``<name>.key`` /
            ``<name>.key_secret`` must be there, and its public key on the members'
            allowlist. Without it, ``plaintext=True`` and a loopback seed are required.
        name: the client's name; with ``keys`` the name of its key pair (required),
            else ``client-<pid>-<random>``. It may not be a member's name.
        plaintext: explicitly allow unencrypted TCP on loopback.
        timeout: seconds to wait for the seed's welcome and for each answer.
        settings: socket options and codec limits (the transport's defaults).

    Raises:
        ValueError: a malformed seed, keys without a name, or plaintext refused.
        NameInUse: ``name`` is a member's.
        NodeDown: the seed did not answer within ``timeout`` (not up, or with CURVE
            this client's key is not on its allowlist).
    """

    def __init__(
        self,
        seed: str,
        *,
        keys: str | os.PathLike[str] | None = None,
        name: str | None = None,
        plaintext: bool = False,
        timeout: float = 10.0,
        settings: TransportSettings | None = None,
    ) -> None:
        if keys is not None and name is None:
            raise ValueError(
                "Client(keys=...) needs name=: the client authenticates with its own key "
                "pair in the keys directory (actorflow keys generate DIR --name NAME)"
            )
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        name = name or f"client-{os.getpid()}-{secrets.token_hex(3)}"
        security = load_security(keys, name) if keys is not None else None
        self.timeout = float(timeout)
        self._transport = ClientTransport(
            name,
            security=security,
            allow_plaintext=plaintext,
            settings=settings or TransportSettings(),
        )
        try:
            self.seed = self._transport.connect(seed, timeout=self.timeout)
        except BaseException:
            self._transport.close(0.5)
            raise
        self.name = name

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Say goodbye to the members this client talked to (their sessions end)."""
        self._transport.close(min(2.0, self.timeout))

    def members(self) -> dict[str, str]:
        """The cluster's members and their status, as the seed listed them."""
        return {name: status for name, (_, status) in self._transport.members().items()}

    def submit(self, workflow: str, ctx: Any = None, *, run_id: str | None = None) -> SubmittedRun:
        """Start the workflow the seed registered as ``workflow`` on ``ctx``; returns at once.

        The seed coordinates the run and checkpoints it in its store. ``ctx`` is
        anything ``runtime.store`` can encode (plain data, tuples, registered
        persistables and dataclasses).

        Raises:
            ValueError: ``workflow`` is not a non-empty str, or ``run_id`` is not 1-128
                printable characters without whitespace.
            UnknownWorkflow: the seed has no workflow of that name (the message lists
                the names it has).
            PersistenceError: ``ctx`` cannot be encoded.
            RemoteError: the node could not start the run (the message says why).
        """
        if not isinstance(workflow, str) or not workflow:
            raise ValueError(f"submit(workflow) must be a non-empty str, got {workflow!r}")
        if run_id is not None:
            check_run_id(run_id)
        encoded = encode_value(ctx, what=f"context for {workflow!r}")
        message: dict[str, Any] = {"op": "submit", "workflow": workflow, "ctx": encoded}
        if run_id is not None:
            message["run"] = run_id
        try:
            answer = self._ask(self.seed, message)
        except RemoteError as exc:
            if exc.type_name == "runtime.UnknownWorkflow":
                raise UnknownWorkflow(exc.message) from None
            raise
        return SubmittedRun(self, str(answer["run"]), self.seed)

    def run(self, run_id: str) -> SubmittedRun:
        """A handle on run ``run_id``, found on the member that coordinates it.

        Raises:
            KeyError: no member knows the run.
        """
        for node in self._nodes():
            try:
                self._ask(node, {"op": "run", "run": run_id})
            except RemoteError as exc:
                if exc.type_name == "KeyError":
                    continue
                raise
            except (NodeDown, AskTimeout):
                continue
            return SubmittedRun(self, run_id, node)
        raise KeyError(f"no member of the cluster knows run {run_id!r}")

    def runs(self) -> list[dict[str, Any]]:
        """The runs the members know, the newest 1,000 of each (``run``, ``workflow``,
        ``state``, ``node``, ...); a member that does not answer is left out."""
        rows: list[dict[str, Any]] = []
        for answer in self.ask_members({"op": "runs"}).values():
            if not isinstance(answer, BaseException):
                rows.extend(dict(row) for row in answer)
        return sorted(rows, key=lambda row: row.get("updated_at") or 0.0, reverse=True)

    def control(self, run_id: str, action: str) -> list[str]:
        """``cancel``, ``pause`` or ``unpause`` run ``run_id`` wherever it is coordinated;
        the names of the members that took it (empty: none runs it now)."""
        if action not in ("cancel", "pause", "unpause"):
            raise ValueError(f"action must be cancel, pause or unpause, got {action!r}")
        answers = self.ask_members({"op": "control", "run": run_id, "action": action})
        return [name for name, answer in answers.items() if answer is True]

    def ask_members(self, message: dict[str, Any]) -> dict[str, Any]:
        """Ask ``$system`` of every up member; answers (or the exception) by node name."""
        futures = {
            node: self._transport.ask(node, SYSTEM_PATH, message, timeout=self.timeout)
            for node in self._nodes()
        }
        answers: dict[str, Any] = {}
        for node, future in sorted(futures.items()):
            try:
                answers[node] = future.result(self.timeout + 1.0)
            except Exception as exc:  # noqa: BLE001 - reported per node
                answers[node] = exc
        return answers

    def _nodes(self) -> list[str]:
        """The up members, the seed first."""
        others = sorted(n for n, s in self.members().items() if s == "up" and n != self.seed)
        return [self.seed, *others]

    def _ask(self, node: str, message: dict[str, Any]) -> Any:
        future = self._transport.ask(node, SYSTEM_PATH, message, timeout=self.timeout)
        return future.result(self.timeout + 1.0)
