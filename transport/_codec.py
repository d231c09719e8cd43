"""The msgpack codec: values to bytes and back, strictly and within bounds. Never pickle.

Wire values are what msgpack carries natively (None, bool, int, float, str,
bytes, list, dict with str/bytes keys) plus three extension types, and nothing
else::

    code 1  Address       payload: msgpack [node, path]
    code 2  RemoteError   payload: msgpack [type_name, message, traceback, node]
    code 3  tuple         payload: msgpack [items...]  (so tuples stay tuples)

Any other ext code, msgpack's own timestamp ext (-1) included, is a
``ProtocolError``: nothing on the wire is ever mapped to code or to an import.

Decoding is bounded by ``Limits`` and one frame is decoded per ``unpackb`` call
(never a reused streaming ``Unpacker``). Byte limits alone do not bound memory
(1 MiB of empty maps decodes to ~73 MiB of Python objects, measured with msgpack
1.2.4), so the decoder also counts containers across the whole frame, nested ext
payloads included.
Every way msgpack can reject input (truncation, trailing bytes, nesting deeper
than 1024, bad UTF-8, over-long lengths, bad map keys) becomes ``ProtocolError``
with the original exception as ``__cause__``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import msgpack

from transport._address import Address
from transport._errors import ProtocolError, RemoteError

__all__ = [
    "DEFAULT_LIMITS",
    "EXT_ADDRESS",
    "EXT_REMOTE_ERROR",
    "EXT_TUPLE",
    "Limits",
    "pack",
    "unpack",
]

EXT_ADDRESS = 1
EXT_REMOTE_ERROR = 2
EXT_TUPLE = 3

_DECODE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one decoded frame; all counts apply to the frame as a whole or per item.

    Attributes:
        max_frame_bytes: largest encoded frame accepted (also the socket's
            ``ZMQ_MAXMSGSIZE``). Default 1 MiB.
        max_str_len: longest str, in bytes. Default 1 MiB.
        max_bin_len: longest bytes value. Default 1 MiB.
        max_ext_len: longest ext payload. Default 1 MiB.
        max_array_len: most items in one array. Default 10,000.
        max_map_len: most pairs in one map. Default 10,000.
        max_containers: most arrays + maps + ext values in the whole frame, which
            is what bounds decoded memory and CPU (~2.5 MB and a few ms per frame
            worst case); also the longest batch frame in bytes, which bounds the
            containers of all its items together. Default 10,000.
        max_ext_depth: deepest nesting of ext values inside ext values. Default 32.
    """

    max_frame_bytes: int = 1 << 20
    max_str_len: int = 1 << 20
    max_bin_len: int = 1 << 20
    max_ext_len: int = 1 << 20
    max_array_len: int = 10_000
    max_map_len: int = 10_000
    max_containers: int = 10_000
    max_ext_depth: int = 32

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = Limits()


def pack(obj: Any, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode ``obj`` as one msgpack frame.

    Raises:
        ProtocolError: if ``obj`` holds a type the wire cannot carry (the message
            names it) or the frame would exceed ``limits.max_frame_bytes``.
    """
    try:
        data = _pack_value(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode message: {exc}") from exc
    if len(data) > limits.max_frame_bytes:
        raise ProtocolError(
            f"encoded message is {len(data)} bytes, over max_frame_bytes={limits.max_frame_bytes}"
        )
    return data


def unpack(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode exactly one msgpack frame within ``limits``.

    Raises:
        ProtocolError: for any malformed, oversized, over-nested or unknown-ext input.
    """
    small = _small
    if small.limits is not limits:
        small = _set_small(limits)
    if type(data) is bytes and len(data) <= small.largest and 0xFF not in data:
        # Most frames: too small to hold over max_containers containers and no
        # timestamp ext possible (see _Decoder.decode), so no hooks but ext_hook.
        # (An int in ``bytes`` is a memchr; a bytes needle costs ~10x as much.)
        try:
            if small.default_lengths:
                return msgpack.unpackb(
                    data, raw=False, use_list=True, strict_map_key=True, ext_hook=small.ext_hook
                )
            return msgpack.unpackb(data, **small.options)
        except ProtocolError:
            raise
        except _DECODE_ERRORS as exc:
            raise ProtocolError(f"malformed msgpack frame: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"frame must be bytes, got {type(data).__name__}")
    if len(data) > limits.max_frame_bytes:
        raise ProtocolError(
            f"frame is {len(data)} bytes, over max_frame_bytes={limits.max_frame_bytes}"
        )
    return _Decoder(limits).decode(data)


class _SmallFrames:
    """The ``unpackb`` options for small frames under one ``Limits`` (built once, not per frame)."""

    __slots__ = ("default_lengths", "ext_hook", "largest", "limits", "options")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.largest = largest = min(limits.max_containers, limits.max_frame_bytes)
        self.ext_hook = partial(_small_frame_ext, limits)
        self.options: dict[str, Any] = {
            "raw": False,
            "use_list": True,
            "strict_map_key": True,
            "ext_hook": self.ext_hook,
            "max_str_len": limits.max_str_len,
            "max_bin_len": limits.max_bin_len,
            "max_ext_len": limits.max_ext_len,
            "max_array_len": limits.max_array_len,
            "max_map_len": limits.max_map_len,
        }
        # unpackb's own length limits are the frame's length (half of it for maps): no
        # value of a small frame can be longer, so ours need not be passed (which costs
        # more than the decoding) unless one of them is shorter than the largest frame.
        self.default_lengths = (
            min(
                limits.max_str_len,
                limits.max_bin_len,
                limits.max_ext_len,
                limits.max_array_len,
                2 * limits.max_map_len,
            )
            >= largest
        )


def _small_frame_ext(limits: Limits, code: int, payload: bytes) -> Any:
    """A top-level ext value of a small frame: decoded as ``_Decoder.decode`` would."""
    decoder = _Decoder(limits)
    decoder._counting = False  # the whole frame is small: its ext payloads are too
    return decoder._ext_hook(code, payload)


_small = _SmallFrames(DEFAULT_LIMITS)  # the limits last used (one transport: always the same)


def _set_small(limits: Limits) -> _SmallFrames:
    global _small  # noqa: PLW0603 - a one-entry cache; swapping it is atomic
    _small = _SmallFrames(limits)
    return _small


def _pack_value(obj: Any) -> bytes:
    # strict_types: a tuple (or a subclass of a native type) is not silently turned
    # into a list, it goes through _default and keeps its type across the wire.
    packed: bytes = msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)
    return packed


def _default(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, Address):
        return msgpack.ExtType(EXT_ADDRESS, _pack_value([obj.node, obj.path]))
    if isinstance(obj, RemoteError):
        fields = [obj.type_name, obj.message, obj.remote_traceback, obj.node]
        return msgpack.ExtType(EXT_REMOTE_ERROR, _pack_value(fields))
    if type(obj) is tuple:
        return msgpack.ExtType(EXT_TUPLE, _pack_value(list(obj)))
    raise TypeError(f"type {type(obj).__module__}.{type(obj).__qualname__} cannot be sent")


class _Decoder:
    """Decodes one frame; counts containers and ext depth across nested ext payloads."""

    __slots__ = ("_containers", "_counting", "_ext_depth", "_limits")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._containers = 0
        self._ext_depth = 0
        self._counting = True

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        # A timestamp ext (-1) needs a 0xff type byte: without one, skip the costly scan.
        scan = 0xFF in data if not isinstance(data, memoryview) else 0xFF in data.tobytes()
        # Every array, map or ext value takes at least one byte of the frame (an ext's
        # nested payload lies inside the frame too), so a whole frame of at most
        # max_containers bytes cannot exceed the limit: skip the per-container
        # Python callbacks then (most frames; they cost more than the decoding).
        # Decided once per frame, at the top level: nested ext payloads of a large
        # frame are counted even when each of them is small.
        if self._ext_depth == 0:
            self._counting = len(data) > self._limits.max_containers
        count = scan or self._counting
        list_hook = (self._list_hook if scan else self._count_list) if count else None
        map_hook = (self._map_hook if scan else self._count_map) if count else None
        try:
            value = msgpack.unpackb(
                data,
                raw=False,
                use_list=True,
                strict_map_key=True,
                ext_hook=self._ext_hook,
                list_hook=list_hook,
                object_hook=map_hook,
                max_str_len=self._limits.max_str_len,
                max_bin_len=self._limits.max_bin_len,
                max_ext_len=self._limits.max_ext_len,
                max_array_len=self._limits.max_array_len,
                max_map_len=self._limits.max_map_len,
            )
        except ProtocolError:
            raise
        except _DECODE_ERRORS as exc:
            raise ProtocolError(f"malformed msgpack frame: {type(exc).__name__}: {exc}") from exc
        if type(value) is msgpack.Timestamp:
            raise ProtocolError("unknown ext type -1 (msgpack timestamp) is not accepted")
        return value

    def _count(self) -> None:
        self._containers += 1
        if self._containers > self._limits.max_containers:
            raise ProtocolError(f"frame holds over max_containers={self._limits.max_containers}")

    def _count_list(self, items: list[Any]) -> list[Any]:
        self._count()
        return items

    def _count_map(self, pairs: dict[Any, Any]) -> dict[Any, Any]:
        self._count()
        return pairs

    def _list_hook(self, items: list[Any]) -> list[Any]:
        self._count()
        # msgpack decodes ext -1 to Timestamp without calling ext_hook: reject it here.
        if msgpack.Timestamp in map(type, items):
            raise ProtocolError("unknown ext type -1 (msgpack timestamp) is not accepted")
        return items

    def _map_hook(self, pairs: dict[Any, Any]) -> dict[Any, Any]:
        self._count()
        if msgpack.Timestamp in map(type, pairs.values()):
            raise ProtocolError("unknown ext type -1 (msgpack timestamp) is not accepted")
        return pairs

    def _ext_hook(self, code: int, payload: bytes) -> Any:
        if code not in (EXT_ADDRESS, EXT_REMOTE_ERROR, EXT_TUPLE):
            raise ProtocolError(f"unknown ext type {code}")
        self._count()
        self._ext_depth += 1
        try:
            if self._ext_depth > self._limits.max_ext_depth:
                raise ProtocolError(
                    f"ext values nested over max_ext_depth={self._limits.max_ext_depth}"
                )
            fields = self.decode(payload)
        finally:
            self._ext_depth -= 1
        if not isinstance(fields, list):
            raise ProtocolError(
                f"ext type {code} payload must be an array, got {type(fields).__name__}"
            )
        if code == EXT_TUPLE:
            return tuple(fields)
        if code == EXT_ADDRESS:
            if len(fields) != 2 or not all(isinstance(field, str) for field in fields):
                raise ProtocolError(
                    f"Address ext payload must be [node, path] strs, got {_shape(fields)}"
                )
            try:
                return Address(fields[0], fields[1])
            except ValueError as exc:
                raise ProtocolError(f"invalid Address on the wire: {exc}") from exc
        if len(fields) != 4 or not all(isinstance(field, str) for field in fields):
            raise ProtocolError(f"RemoteError ext payload must be 4 strs, got {_shape(fields)}")
        return RemoteError(fields[0], fields[1], fields[2], fields[3])


def _shape(items: list[Any]) -> str:
    """What a bad ext payload held, cheaply: a repr of a deeply nested value costs
    ~300 us, paid per frame by whoever sends such frames."""
    return f"{len(items)} items of types " + ", ".join(type(item).__name__ for item in items[:4])
