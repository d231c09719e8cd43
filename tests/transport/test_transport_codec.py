"""The codec and the envelope: exact round trips, and every malformed input is a ProtocolError."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest

from transport import Address, Envelope, Limits, ProtocolError, RemoteError, pack, unpack
from transport._envelope import PROTOCOL_VERSION, Kind, decode_envelope, encode_envelope


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**63),
        2**64 - 1,
        1.5,
        "",
        "héllo ✓",
        b"\x00\xff",
        [],
        {},
        [1, [2, [3, {"a": b"b"}]]],
        {"nested": {"list": [None, 1.0, "x"]}, b"bin-key": 1},
        (),
        (1, "two", (3, (4,))),
        [(1, 2), {"t": (3,)}],
        Address("worker-2", "run-7f3a/transform"),
        (Address("n", "p"), [Address("m", "q/r")]),
    ],
)
def test_values_survive_a_round_trip_with_their_types(value: Any) -> None:
    decoded = unpack(pack(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_tuples_stay_tuples_and_lists_stay_lists_when_nested() -> None:
    decoded = unpack(pack({"t": (1, [2, (3,)])}))
    assert type(decoded["t"]) is tuple
    assert type(decoded["t"][1]) is list
    assert type(decoded["t"][1][1]) is tuple


def test_remote_error_round_trips_with_all_fields() -> None:
    error = RemoteError("runtime.TemporaryError", "disk full", "Traceback ...\n", "worker-3")
    decoded = unpack(pack(error))
    assert isinstance(decoded, RemoteError)
    assert (decoded.type_name, decoded.message, decoded.remote_traceback, decoded.node) == (
        "runtime.TemporaryError",
        "disk full",
        "Traceback ...\n",
        "worker-3",
    )


class _Custom:
    pass


@pytest.mark.parametrize("value", [{1, 2}, _Custom(), object(), [1, frozenset()], 1j])
def test_pack_refuses_types_the_wire_cannot_carry_and_names_them(value: Any) -> None:
    with pytest.raises(ProtocolError, match="cannot"):
        pack(value)


def test_pack_refuses_a_frame_over_the_size_limit() -> None:
    with pytest.raises(ProtocolError, match="max_frame_bytes"):
        pack(b"x" * 2000, Limits(max_frame_bytes=1000))


def _ext(code: int, payload: bytes) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, payload))


def _nested_tuples(depth: int) -> bytes:
    data = msgpack.packb([])
    for _ in range(depth):
        data = _ext(3, msgpack.packb([msgpack.ExtType(3, data)]))
    return data


MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "truncated array": b"\x93\x01\x02",
    "truncated str": b"\xa5ab",
    "trailing bytes": b"\x01\x02",
    "reserved byte 0xc1": b"\xc1",
    "invalid utf-8": b"\xa2\xff\xfe",
    "nesting deeper than 1024": b"\x91" * 2000 + b"\x01",
    "str32 declaring 4 GiB": b"\xdb\xff\xff\xff\xff" + b"a" * 10,
    "bin32 declaring 4 GiB": b"\xc6\xff\xff\xff\xff" + b"a" * 10,
    "array32 declaring 4 billion items": b"\xdd\xff\xff\xff\xff\x01",
    "map32 declaring 4 billion pairs": b"\xdf\xff\xff\xff\xff\x01\x01",
    "ext32 declaring 4 GiB": b"\xc9\xff\xff\xff\xff\x03" + b"a" * 10,
    "array over max_array_len": msgpack.packb([0] * 10_001),
    "map over max_map_len": msgpack.packb({str(i): 0 for i in range(10_001)}),
    "too many containers": msgpack.packb([[[]] * 1000] * 11),
    "int map key": b"\x81\x01\x01",
    "array map key": b"\x81\x91\x01\x01",
    "unknown ext code 5": _ext(5, b"\x90"),
    "unknown negative ext code -2": b"\xd4\xfe\x90",
    "msgpack timestamp ext -1": msgpack.packb(msgpack.Timestamp(1, 0)),
    "timestamp hidden in a list": msgpack.packb([1, msgpack.Timestamp(1, 0)]),
    "timestamp hidden in a map": msgpack.packb({"t": msgpack.Timestamp(1, 0)}),
    "malformed timestamp ext": b"\xd5\xff\x00\x00",
    "ext payload not msgpack": _ext(3, b"\xc1"),
    "ext payload not an array": _ext(3, msgpack.packb({"a": 1})),
    "address with empty node": _ext(1, msgpack.packb(["", "path"])),
    "address node with slash": _ext(1, msgpack.packb(["a/b", "path"])),
    "address with three fields": _ext(1, msgpack.packb(["a", "b", "c"])),
    "address with int path": _ext(1, msgpack.packb(["a", 7])),
    "remote error with two fields": _ext(2, msgpack.packb(["T", "m"])),
    "remote error with bytes field": _ext(2, msgpack.packb(["T", "m", b"tb", "n"])),
    "ext values nested over the depth limit": _nested_tuples(40),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_raises_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        unpack(data)


def test_protocol_error_keeps_the_msgpack_exception_as_cause() -> None:
    with pytest.raises(ProtocolError) as caught:
        unpack(b"\x01\x02")
    assert isinstance(caught.value.__cause__, msgpack.ExtraData)


def test_frame_over_max_frame_bytes_is_refused_before_decoding() -> None:
    with pytest.raises(ProtocolError, match="max_frame_bytes"):
        unpack(msgpack.packb(b"x" * 200), Limits(max_frame_bytes=100))


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(ProtocolError, match="bytes"):
        unpack("text")  # type: ignore[arg-type]


def test_limits_reject_non_positive_values_naming_the_field() -> None:
    with pytest.raises(ValueError, match="max_array_len"):
        Limits(max_array_len=0)


# -- Address ---------------------------------------------------------------------


def test_address_prints_and_parses_as_node_slash_path() -> None:
    address = Address.parse("worker-2/run-7f3a/transform")
    assert address == Address("worker-2", "run-7f3a/transform")
    assert str(address) == "worker-2/run-7f3a/transform"


@pytest.mark.parametrize("text", ["", "no-slash", "/path-only", "node/", 7])
def test_address_parse_rejects_bad_text_and_echoes_it(text: Any) -> None:
    with pytest.raises(ValueError, match=repr(text) if isinstance(text, str) else "7"):
        Address.parse(text)


# -- Envelope ----------------------------------------------------------------------


def _frame(*fields: Any) -> bytes:
    return msgpack.packb(list(fields), use_bin_type=True)


def _valid(**changes: Any) -> list[Any]:
    fields = {
        "version": PROTOCOL_VERSION,
        "kind": "tell",
        "message_id": 7,
        "correlation_id": 0,
        "sender": "worker-1",
        "target": "actor/path",
        "body": {"k": "v"},
    }
    fields.update(changes)
    return list(fields.values())


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope(Kind.TELL, 1, 0, "a", "x/y", [1, (2, 3)]),
        Envelope(Kind.ASK, 2**63 - 1, 0, "node-a", "p", Address("b", "q")),
        Envelope(Kind.REPLY, 5, 4, "a", "", None),
        Envelope(Kind.ERROR, 5, 4, "a", "", RemoteError("T", "m", "tb", "a")),
        Envelope(
            Kind.HELLO,
            5,
            0,
            "a",
            "",
            {"role": "member", "address": "tcp://127.0.0.1:5000", "incarnation": 7},
        ),
        Envelope(Kind.MEMBERS, 5, 3, "a", "", [["a", "tcp://127.0.0.1:1", "up", 7]]),
        Envelope(Kind.PING, 5, 0, "a", "", [7, [["b", "tcp://127.0.0.1:2", "suspect", 3, 0, "a"]]]),
        Envelope(Kind.PING_REQ, 5, 0, "a", "", [7, "b", []]),
        Envelope(Kind.ACK, 6, 5, "a", "", [7, [["a", "tcp://127.0.0.1:1", "alive", 7, 2, "a"]]]),
        Envelope(Kind.LEAVE, 5, 0, "a", "", None),
    ],
    ids=lambda envelope: envelope.kind.value,
)
def test_envelopes_round_trip(envelope: Envelope) -> None:
    decoded = decode_envelope(encode_envelope(envelope))
    if envelope.kind is Kind.ERROR:
        assert decoded.body.type_name == envelope.body.type_name
        assert decoded.body.remote_traceback == "tb"
    else:
        assert decoded == envelope


BAD_ENVELOPES: dict[str, tuple[bytes, str]] = {
    "not an array": (msgpack.packb({"kind": "tell"}), "array of 7"),
    "six fields": (_frame(*_valid()[:6]), "array of 7"),
    "eight fields": (_frame(*_valid(), None), "array of 7"),
    "future version": (_frame(*_valid(version=PROTOCOL_VERSION + 1)), "version"),
    "old version": (_frame(*_valid(version=PROTOCOL_VERSION - 1)), "version"),
    "version as str": (_frame(*_valid(version="1")), "version"),
    "unknown kind": (_frame(*_valid(kind="exec")), "unknown envelope kind"),
    "kind as int": (_frame(*_valid(kind=1)), "kind"),
    "zero message id": (_frame(*_valid(message_id=0)), "message_id"),
    "negative message id": (_frame(*_valid(message_id=-1)), "message_id"),
    "bool message id": (_frame(*_valid(message_id=True)), "message_id"),
    "message id over 2**63": (_frame(*_valid(message_id=2**63)), "message_id"),
    "str correlation id": (_frame(*_valid(correlation_id="1")), "correlation_id"),
    "empty sender": (_frame(*_valid(sender="")), "sender"),
    "sender with slash": (_frame(*_valid(sender="a/b")), "sender"),
    "sender with at sign": (_frame(*_valid(sender="a@b")), "sender"),
    "huge sender": (_frame(*_valid(sender="x" * 500)), "sender"),
    "sender as bytes": (_frame(*_valid(sender=b"a")), "sender"),
    "tell without target": (_frame(*_valid(target="")), "target"),
    "target as int": (_frame(*_valid(target=3)), "target"),
    "ping with target": (_frame(*_valid(kind="ping", target="x", body=[7, []])), "target"),
    "ping without incarnation": (
        _frame(*_valid(kind="ping", target="", body=[[]])),
        "ping body",
    ),
    "ping with incarnation 0": (
        _frame(*_valid(kind="ping", target="", body=[0, []])),
        "ping incarnation",
    ),
    "heartbeat with target": (_frame(*_valid(kind="heartbeat", target="x", body=7)), "target"),
    "heartbeat with incarnation 0": (
        _frame(*_valid(kind="heartbeat", target="", body=0)),
        "heartbeat body",
    ),
    "ping_req without target": (
        _frame(*_valid(kind="ping_req", target="", body=[7, []])),
        "ping_req body",
    ),
    "ping_req to a bad name": (
        _frame(*_valid(kind="ping_req", target="", body=[7, "a/b", []])),
        "ping_req target",
    ),
    "ack with too many updates": (
        _frame(
            *_valid(
                kind="ack",
                target="",
                correlation_id=3,
                body=[7, [["b", "tcp://127.0.0.1:2", "alive", 1, 0, "b"]] * 65],
            )
        ),
        "updates",
    ),
    "update with a bad state": (
        _frame(*_valid(kind="ping", target="", body=[7, [["b", "tcp://h:1", "up", 1, 0, "b"]]])),
        "update state",
    ),
    "update with a negative epoch": (
        _frame(
            *_valid(kind="ping", target="", body=[7, [["b", "tcp://h:1", "alive", 1, -1, "b"]]])
        ),
        "update epoch",
    ),
    "update of five fields": (
        _frame(*_valid(kind="ping", target="", body=[7, [["b", "tcp://h:1", "alive", 1, 0]]])),
        "membership update",
    ),
    "reply without correlation": (_frame(*_valid(kind="reply", target="")), "correlation_id"),
    "error body not a RemoteError": (
        _frame(*_valid(kind="error", target="", correlation_id=3, body="oops")),
        "RemoteError",
    ),
    "hello without address": (_frame(*_valid(kind="hello", target="", body={})), "hello"),
    "hello with extra key": (
        _frame(
            *_valid(
                kind="hello",
                target="",
                body={"role": "member", "address": "tcp://127.0.0.1:1", "incarnation": 1, "x": 1},
            )
        ),
        "hello",
    ),
    "hello without incarnation": (
        _frame(*_valid(kind="hello", target="", body={"address": "tcp://127.0.0.1:1"})),
        "hello",
    ),
    "hello incarnation as str": (
        _frame(
            *_valid(
                kind="hello",
                target="",
                body={"role": "member", "address": "tcp://127.0.0.1:1", "incarnation": "1"},
            )
        ),
        "hello incarnation",
    ),
    "member entry without incarnation": (
        _frame(*_valid(kind="members", target="", body=[["a", "tcp://127.0.0.1:1", "up"]])),
        "member entry",
    ),
    "member incarnation negative": (
        _frame(*_valid(kind="members", target="", body=[["a", "tcp://127.0.0.1:1", "up", -1]])),
        "member incarnation",
    ),
    "hello address not an endpoint": (
        _frame(
            *_valid(
                kind="hello",
                target="",
                body={"role": "member", "address": "nowhere", "incarnation": 1},
            )
        ),
        "address",
    ),
    "members not a list": (_frame(*_valid(kind="members", target="", body={})), "members"),
    "member entry too short": (
        _frame(*_valid(kind="members", target="", body=[["a", "tcp://127.0.0.1:1"]])),
        "member entry",
    ),
    "member with unknown status": (
        _frame(*_valid(kind="members", target="", body=[["a", "tcp://127.0.0.1:1", "zombie", 1]])),
        "status",
    ),
    "member with bad name": (
        _frame(*_valid(kind="members", target="", body=[["a/b", "tcp://127.0.0.1:1", "up", 1]])),
        "member name",
    ),
}


@pytest.mark.parametrize(("data", "named"), BAD_ENVELOPES.values(), ids=list(BAD_ENVELOPES.keys()))
def test_invalid_envelope_raises_protocol_error_naming_the_field(data: bytes, named: str) -> None:
    with pytest.raises(ProtocolError, match=named):
        decode_envelope(data)


def test_envelope_decoding_applies_the_codec_limits() -> None:
    data = _frame(*_valid(body=[0] * 100))
    with pytest.raises(ProtocolError):
        decode_envelope(data, Limits(max_array_len=50))
    assert decode_envelope(data).body == [0] * 100


def test_encode_envelope_refuses_an_unencodable_body() -> None:
    with pytest.raises(ProtocolError, match="cannot"):
        encode_envelope(Envelope(Kind.TELL, 1, 0, "a", "p", {1, 2}))


def test_struct_sanity_of_the_huge_length_vectors() -> None:
    # Guards the fuzz vectors above: the declared lengths really are 2**32 - 1.
    assert struct.unpack(">I", MALFORMED["str32 declaring 4 GiB"][1:5])[0] == 2**32 - 1
