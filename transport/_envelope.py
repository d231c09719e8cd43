"""The envelope: the one message shape on the wire, versioned and validated after decoding.

A frame is a msgpack array of seven fields (compact, and an array cannot carry
surprise keys)::

    [version, kind, message_id, correlation_id, sender, target, body]

- ``version``: ``PROTOCOL_VERSION``; any other value is refused.
- ``kind``: one of ``Kind``.
- ``message_id``: sender-unique id (> 0), the dedup key together with ``sender``.
- ``correlation_id``: for ``reply``/``error`` (and a ``members`` answering a
  ``hello``/``leave``), the ``message_id`` answered; 0 otherwise.
- ``sender``: the sending node's name; the receiver checks it against the
  CURVE-authenticated key of the connection (see ``_security``).
- ``target``: actor path on the receiving node for ``tell``/``ask``; ``""`` otherwise.
- ``body``: the payload; its shape is checked per kind (see ``decode_envelope``).

``decode_envelope`` raises ``ProtocolError`` naming the first field that is wrong.

A ``batch`` envelope carries several encoded envelopes from one sender in one
ZeroMQ frame (body: 1 to ``MAX_BATCH`` bin items), so a burst costs one send and
one receive instead of one per message. Each item is decoded and checked on its
own, like a frame that arrived alone; a batch never nests a batch, and is no
longer than ``Limits.max_containers`` bytes, so all its items together hold no
more containers than one frame may (receivers drop a longer one).
Version 2 introduced it: a version-1 node refuses every frame of a version-2
node (and the other way round) instead of dropping batches it cannot read.

Version 3 carries each process's *incarnation* (a random id in [1, 2**63)
chosen at start, see ``_membership``): a ``hello`` body is ``{"address": str,
"incarnation": int}``, a ``heartbeat`` body is the sender's incarnation, and a
``members`` entry is ``[name, address, status, incarnation]``. A version-2 node
and a version-3 node refuse each other's frames.

Version 4 adds *roles*: a ``hello`` body names its ``role``. A member says
``{"role": "member", "address": str, "incarnation": int}``; a client (a
program that only asks, see ``_clients``) says ``{"role": "client",
"incarnation": int}``: it has no address, and is answered over the
connection it said hello on.

Capabilities (see ``_capabilities``): a member's ``hello`` may also carry a
``"capabilities"`` key (a map of kind -> array of names), and a member entry
may have a fifth item, the same map (sent only in the answering node's own
entry of a welcome).

Version 5 replaces the members' all-to-all ``heartbeat`` with SWIM's probes
(see ``_swim``; clients still heartbeat the members they talk to): ``ping``
and ``ack`` bodies are ``[incarnation, updates]``, a ``ping_req`` body is
``[incarnation, target, updates]``; ``updates`` is an array of at most
``MAX_UPDATES`` entries ``[name, address, state, incarnation, epoch, by]``
(state ``alive``, ``suspect``, ``dead`` or ``left``; ``epoch`` the member's
refutation counter; ``by`` the node that made the update).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from transport._capabilities import capabilities_from_wire
from transport._codec import DEFAULT_LIMITS, Limits, pack, unpack
from transport._errors import ProtocolError, RemoteError

__all__ = [
    "ASK",
    "BATCH",
    "ERROR",
    "MAX_BATCH",
    "MAX_ID",
    "MAX_NODE_NAME",
    "MAX_TARGET",
    "MAX_UPDATES",
    "MEMBER_STATUSES",
    "PROBE_KINDS",
    "PROTOCOL_VERSION",
    "REPLY",
    "ROLE_CLIENT",
    "ROLE_MEMBER",
    "TELL",
    "TELL_PREFIX",
    "Envelope",
    "Kind",
    "decode_envelope",
    "encode_batch",
    "encode_envelope",
    "envelope_from_fields",
    "tell_target",
    "validate_node_name",
]

PROTOCOL_VERSION = 5
ROLE_MEMBER = "member"  # hello of a node that listens and joins the member table
ROLE_CLIENT = "client"  # hello of a program that only asks: answered on its own connection
MAX_BATCH = 1000  # envelopes in one batch frame: bounds the work one received frame causes
MAX_ID = (1 << 63) - 1
MAX_NODE_NAME = 128
MAX_TARGET = 1024
MAX_ADDRESS = 256
MEMBER_STATUSES = frozenset({"up", "down", "left"})
UPDATE_STATES = frozenset({"alive", "suspect", "dead", "left"})
MAX_UPDATES = 64  # membership updates on one probe message (senders put at most 8)


class Kind(enum.StrEnum):
    """What an envelope asks of its receiver."""

    TELL = "tell"  # deliver body to target, no answer
    ASK = "ask"  # deliver body to target, answer with reply/error
    REPLY = "reply"  # successful answer to an ask (or an ack of hello/leave)
    ERROR = "error"  # failed answer to an ask; body is a RemoteError
    HELLO = "hello"  # join: body {"role", "address"?, "incarnation"}; answered by members
    MEMBERS = "members"  # member list [[name, address, status, incarnation], ...]
    HEARTBEAT = "heartbeat"  # a client's session keep-alive; body its incarnation (int)
    PING = "ping"  # SWIM probe: body [incarnation, updates]; answered by ack
    PING_REQ = "ping_req"  # probe target for me: body [incarnation, target, updates]
    ACK = "ack"  # answers a ping or ping_req (correlation_id): body [incarnation, updates]
    LEAVE = "leave"  # graceful departure; body None; answered by reply
    BATCH = "batch"  # several encoded envelopes of this sender; body [bin, ...]


# The kinds the per-message paths compare against, as module globals: ``Kind.TELL``
# is a lookup on the enum class (~70 ns on CPython 3.11), a global ~7 ns.
TELL, ASK, REPLY, ERROR, BATCH = Kind.TELL, Kind.ASK, Kind.REPLY, Kind.ERROR, Kind.BATCH

# The first bytes of every encoded tell (``encode_envelope``: an array of 7 fields,
# the version, then the kind), so a tell can be told from its bytes without decoding.
TELL_PREFIX = b"\x97" + pack(PROTOCOL_VERSION) + pack("tell")

PROBE_KINDS = frozenset({Kind.PING, Kind.PING_REQ, Kind.ACK})
_CONTROL_KINDS = frozenset(
    {Kind.HELLO, Kind.MEMBERS, Kind.HEARTBEAT, Kind.LEAVE, Kind.BATCH} | PROBE_KINDS
)


class Envelope(NamedTuple):
    """One decoded, validated message (a named tuple: built on every frame, so kept cheap)."""

    kind: Kind
    message_id: int
    correlation_id: int
    sender: str
    target: str
    body: Any
    version: int = PROTOCOL_VERSION


_new_tuple = tuple.__new__  # builds an Envelope from its 7 fields without NamedTuple.__new__
_KINDS: dict[str, Kind] = {kind.value: kind for kind in Kind}
_KIND_TEXT: dict[Kind, str] = {kind: kind.value for kind in Kind}  # plain str, cheap to look up
_NAMES_SEEN: set[str] = set()  # valid node names already checked (decoding is hot)
_NAMES_SEEN_MAX = 4096


def validate_node_name(name: object, what: str = "node name") -> str:
    """Return ``name`` if it is a usable node name (1-128 chars, no '/', '@' or whitespace).

    Raises:
        ValueError: naming ``what`` and echoing the rejected value.
    """
    if type(name) is str and name in _NAMES_SEEN:
        return name
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= MAX_NODE_NAME
        or any(char in name for char in "/@")
        or any(char.isspace() for char in name)
    ):
        raise ValueError(
            f"{what} must be 1-{MAX_NODE_NAME} chars without '/', '@' or spaces, got {name!r:.160}"
        )
    if type(name) is str and len(_NAMES_SEEN) < _NAMES_SEEN_MAX:
        _NAMES_SEEN.add(name)  # bounded: past the cap, names are simply checked every time
    return name


def encode_envelope(envelope: Envelope, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode an envelope as one frame.

    Raises:
        ProtocolError: if the body holds a type the wire cannot carry or is too large.
    """
    return pack(
        [
            envelope.version,
            _KIND_TEXT[envelope.kind],
            envelope.message_id,
            envelope.correlation_id,
            envelope.sender,
            envelope.target,
            envelope.body,
        ],
        limits,
    )


def encode_batch(
    message_id: int, sender: str, frames: list[bytes], limits: Limits = DEFAULT_LIMITS
) -> bytes:
    """Encode already-encoded envelopes of ``sender`` as one ``batch`` frame.

    Raises:
        ProtocolError: the batch would exceed ``limits.max_frame_bytes``.
    """
    return pack([PROTOCOL_VERSION, "batch", message_id, 0, sender, "", frames], limits)


def decode_envelope(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Decode and validate one frame.

    Raises:
        ProtocolError: the frame is not valid msgpack within ``limits``, or a field
            has the wrong type or value (the message names the field).
    """
    return envelope_from_fields(unpack(data, limits))


def envelope_from_fields(fields: Any) -> Envelope:
    """Validate a frame already decoded (``unpack``) as an envelope.

    Raises:
        ProtocolError: a field has the wrong type or value (the message names it).
    """
    envelope = _common_envelope(fields)
    if envelope is not None:
        return envelope
    if not isinstance(fields, list) or len(fields) != 7:
        raise ProtocolError(f"envelope must be an array of 7 fields, got {_describe(fields)}")
    version, kind_text, message_id, correlation_id, sender, target, body = fields
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version!r:.40} (this node speaks {PROTOCOL_VERSION})"
        )
    if not isinstance(kind_text, str):
        raise ProtocolError(f"envelope kind must be a str, got {_describe(kind_text)}")
    kind = _KINDS.get(kind_text)
    if kind is None:
        raise ProtocolError(f"unknown envelope kind {kind_text!r:.40}")
    _check_id("message_id", message_id, minimum=1)
    _check_id("correlation_id", correlation_id, minimum=0)
    try:
        validate_node_name(sender, "envelope sender")
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    if not isinstance(target, str) or len(target) > MAX_TARGET:
        raise ProtocolError(
            f"envelope target must be a str of <= {MAX_TARGET} chars, got {_describe(target)}"
        )
    if kind in _CONTROL_KINDS and target:
        raise ProtocolError(f"envelope target must be empty for kind {kind.value!r}")
    if kind in (Kind.TELL, Kind.ASK) and not target:
        raise ProtocolError(f"envelope target must be a non-empty path for kind {kind.value!r}")
    if kind in (Kind.REPLY, Kind.ERROR) and correlation_id == 0:
        raise ProtocolError(f"envelope correlation_id must be set for kind {kind.value!r}")
    _check_body(kind, body)
    return Envelope(kind, message_id, correlation_id, sender, target, body, version)


def tell_target(fields: Any, sender: str) -> str | None:
    """The target of ``fields`` (a decoded frame) if they are a well-formed ``tell`` from
    ``sender``, a node name already validated, else None: the checks
    ``envelope_from_fields`` makes of a tell, without building the ``Envelope`` (a
    tell refused at once needs none)."""
    if type(fields) is not list or len(fields) != 7:
        return None
    version, kind_text, message_id, correlation_id, claimed, target, _body = fields
    if (
        kind_text == "tell"
        and type(kind_text) is str
        and claimed == sender
        and type(claimed) is str
        and type(target) is str
        and 0 < len(target) <= MAX_TARGET
        and type(correlation_id) is int
        and correlation_id == 0
        and type(message_id) is int
        and 0 < message_id <= MAX_ID
        and type(version) is int
        and version == PROTOCOL_VERSION
    ):
        return target
    return None


def _common_envelope(fields: Any) -> Envelope | None:
    """The bulk of the traffic, checked in one pass: a well-formed tell, ask or reply
    from a node name already validated; None sends anything else to the full checks."""
    if type(fields) is not list or len(fields) != 7:
        return None
    version, kind_text, message_id, correlation_id, sender, target, body = fields
    if not (
        type(version) is int
        and version == PROTOCOL_VERSION
        and type(message_id) is int
        and 0 < message_id <= MAX_ID
        and type(correlation_id) is int
        and type(sender) is str
        and sender in _NAMES_SEEN
        and type(target) is str
    ):
        return None
    kind = _KINDS.get(kind_text) if type(kind_text) is str else None
    if (kind is TELL or kind is ASK) and (correlation_id == 0 and 0 < len(target) <= MAX_TARGET):
        return _new_tuple(Envelope, (kind, message_id, 0, sender, target, body, version))
    if kind is REPLY and 0 < correlation_id <= MAX_ID and not target:
        return _new_tuple(Envelope, (kind, message_id, correlation_id, sender, "", body, version))
    return None


def _check_id(name: str, value: object, *, minimum: int) -> None:
    if type(value) is not int or not minimum <= value <= MAX_ID:
        raise ProtocolError(
            f"envelope {name} must be an int in [{minimum}, 2**63), got {_describe(value)}"
        )


def _check_body(kind: Kind, body: object) -> None:
    if kind is Kind.TELL or kind is Kind.ASK or kind is Kind.REPLY:
        return  # any wire value
    if kind is Kind.BATCH and (
        not isinstance(body, list)
        or not 0 < len(body) <= MAX_BATCH
        or not all(type(item) is bytes for item in body)
    ):
        raise ProtocolError(
            f"batch body must be an array of 1-{MAX_BATCH} bin items, got {_describe(body)}"
        )
    if kind is Kind.ERROR and not isinstance(body, RemoteError):
        raise ProtocolError(f"error body must be a RemoteError, got {_describe(body)}")
    if kind is Kind.LEAVE and body is not None:
        raise ProtocolError(f"{kind.value} body must be nil, got {_describe(body)}")
    if kind is Kind.HEARTBEAT:
        _check_incarnation("heartbeat body", body)
    if kind in PROBE_KINDS:
        _check_probe_body(kind, body)
    if kind is Kind.HELLO:
        _check_hello(body)
    if kind is Kind.MEMBERS:
        if not isinstance(body, list):
            raise ProtocolError(f"members body must be an array, got {_describe(body)}")
        for entry in body:
            _check_member_entry(entry)


_HELLO_KEYS = {
    ROLE_MEMBER: frozenset({"role", "address", "incarnation"}),
    ROLE_CLIENT: frozenset({"role", "incarnation"}),
}
_HELLO_OPTIONAL = {ROLE_MEMBER: frozenset({"capabilities"}), ROLE_CLIENT: frozenset()}


def _check_hello(body: object) -> None:
    role = body.get("role") if isinstance(body, dict) else None
    keys = _HELLO_KEYS.get(role) if isinstance(role, str) else None
    if (
        not isinstance(body, dict)
        or keys is None
        or not keys <= set(body) <= keys | _HELLO_OPTIONAL[str(role)]
    ):
        raise ProtocolError(
            "hello body must be {'role': 'member', 'address': str, 'incarnation': int"
            "[, 'capabilities': map]} or {'role': 'client', 'incarnation': int}, got "
            f"{_describe(body)}"
        )
    if role == ROLE_MEMBER:
        _check_address("hello address", body["address"])
    _check_incarnation("hello incarnation", body["incarnation"])
    if "capabilities" in body:
        capabilities_from_wire(body["capabilities"])


def _check_member_entry(entry: object) -> None:
    if not isinstance(entry, list) or len(entry) not in (4, 5):
        raise ProtocolError(
            "member entry must be [name, address, status, incarnation[, capabilities]], "
            f"got {_describe(entry)}"
        )
    name, address, status, incarnation = entry[:4]
    if len(entry) == 5:
        capabilities_from_wire(entry[4])
    try:
        validate_node_name(name, "member name")
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    _check_address("member address", address)
    if status not in MEMBER_STATUSES:
        raise ProtocolError(
            f"member status must be one of {sorted(MEMBER_STATUSES)}, got {status!r:.40}"
        )
    _check_incarnation("member incarnation", incarnation)


def _check_probe_body(kind: Kind, body: object) -> None:
    size = 3 if kind is Kind.PING_REQ else 2
    shape = "[incarnation, target, updates]" if size == 3 else "[incarnation, updates]"
    if not isinstance(body, list) or len(body) != size:
        raise ProtocolError(f"{kind.value} body must be {shape}, got {_describe(body)}")
    _check_incarnation(f"{kind.value} incarnation", body[0])
    if size == 3:
        try:
            validate_node_name(body[1], "ping_req target")
        except ValueError as exc:
            raise ProtocolError(str(exc)) from exc
    updates = body[-1]
    if not isinstance(updates, list) or len(updates) > MAX_UPDATES:
        raise ProtocolError(
            f"{kind.value} updates must be an array of <= {MAX_UPDATES}, got {_describe(updates)}"
        )
    for update in updates:
        _check_update(update)


def _check_update(update: object) -> None:
    if not isinstance(update, list) or len(update) != 6:
        raise ProtocolError(
            "membership update must be [name, address, state, incarnation, epoch, by], got "
            f"{_describe(update)}"
        )
    name, address, state, incarnation, epoch, by = update
    try:
        validate_node_name(name, "update name")
        validate_node_name(by, "update author")
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    _check_address("update address", address)
    if state not in UPDATE_STATES:
        raise ProtocolError(
            f"update state must be one of {sorted(UPDATE_STATES)}, got {state!r:.40}"
        )
    _check_incarnation("update incarnation", incarnation)
    if type(epoch) is not int or not 0 <= epoch <= MAX_ID:
        raise ProtocolError(f"update epoch must be an int in [0, 2**63), got {_describe(epoch)}")


def _check_incarnation(what: str, value: object) -> None:
    if type(value) is not int or not 0 < value <= MAX_ID:
        raise ProtocolError(f"{what} must be an int in [1, 2**63), got {_describe(value)}")


def _check_address(what: str, address: object) -> None:
    if not isinstance(address, str) or not 0 < len(address) <= MAX_ADDRESS or "://" not in address:
        raise ProtocolError(
            f"{what} must be an endpoint like 'tcp://host:port', got {_describe(address)}"
        )


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
