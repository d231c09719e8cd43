"""The value codec for checkpoints: msgpack, tuples, registered Persistables and dataclasses.

Accepted values: ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``,
``bytes``, ``list``, ``tuple`` (decoded as a tuple, not a list), ``dict`` (keys
are str or int; any other encodable hashable key also round-trips), and
instances of classes registered with :func:`register_persistable`: either
:class:`Persistable` (``to_bytes``/``from_bytes``), or a dataclass, encoded as
its ``init`` fields (each by these same rules) and rebuilt with
``cls(**fields)`` (so ``__post_init__`` runs again and ``init=False`` fields
are recomputed, not stored). Types are checked exactly (msgpack
``strict_types``): a ``str`` subclass, an ``OrderedDict`` or an ``IntEnum`` is
refused rather than silently decoded as its base type.

Safety: a Persistable is encoded under its registered name ``module:qualname``
and decoded by looking that name up in a :class:`PersistableRegistry`; a name is
never imported and nothing is ever pickled. Unknown ext codes are refused.

Errors: every failure raises :class:`~actors._errors.PersistenceError` whose
message starts with the caller's ``what`` (e.g. ``"run 7f3a context"``); an
encoding error names the path of the offending field and its type, a decoding
error chains the cause (``raise ... from exc``).

Limits: decoding is bounded by msgpack's defaults, which scale with the input
length (a 100k-row context decodes fine; a 1 KB blob cannot claim a 1 GB array)
and by a nesting limit. Checkpoint blobs come from our own store, not from the
network, so no tighter per-message limits are imposed here.

Thread-safety: encoding and decoding are pure; the registry is guarded by a lock.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol, Self, TypeVar, runtime_checkable

import msgpack

from actors import PersistenceError

__all__ = [
    "DEFAULT_REGISTRY",
    "Persistable",
    "PersistableRegistry",
    "decode_value",
    "encode_value",
    "register_persistable",
]

_TUPLE_EXT: Final = 1
_PERSISTABLE_EXT: Final = 2
_DATACLASS_EXT: Final = 3
_MAX_DEPTH: Final = 500  # below msgpack's packer recursion limit (511) and unpacker stack (1024)
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


@runtime_checkable
class Persistable(Protocol):
    """A user type that serializes itself; register it with ``register_persistable``."""

    def to_bytes(self) -> bytes:
        """Return the bytes ``from_bytes`` turns back into an equal object."""
        ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild the object from ``to_bytes`` output."""
        ...


_PersistableT = TypeVar("_PersistableT", bound=type[Any])


def _by_fields(cls: type[Any]) -> bool:
    """A registered class encoded field by field: a dataclass without its own to_bytes."""
    return dataclasses.is_dataclass(cls) and not callable(getattr(cls, "to_bytes", None))


def _init_mismatch(cls: type[Any]) -> str | None:
    """Why ``cls(**init_fields)`` cannot rebuild ``cls`` (an InitVar, an own __init__), or None."""
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # no signature to check: decoding will tell
        return None
    keywords = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    positional_only = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if keywords == fields and not positional_only:
        return None
    return (
        f"its __init__ takes {sorted(keywords | set(positional_only))}, but only the init "
        f"fields {sorted(fields)} are stored (InitVar or an own __init__?); give it "
        "to_bytes()/from_bytes() instead"
    )


def _init_fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}


def _type_name(cls: type[Any]) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _persistable_name(cls: type[Any]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class PersistableRegistry:
    """Names (``module:qualname``) of the Persistable classes and dataclasses allowed to be decoded.

    Thread-safe. Registering the same class twice is a no-op; registering a
    different class under a name already taken raises ``ValueError``.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[Any]] = {}
        self._lock = threading.Lock()

    def register(self, cls: _PersistableT) -> _PersistableT:
        """Allow ``cls`` to be encoded and decoded; returns it (usable as a decorator)."""
        if not isinstance(cls, type) or not (
            _by_fields(cls)
            or (
                callable(getattr(cls, "to_bytes", None))
                and callable(getattr(cls, "from_bytes", None))
            )
        ):
            raise TypeError(
                f"register_persistable: cls={cls!r} must be a dataclass, or a class with "
                "to_bytes() and a classmethod from_bytes()"
            )
        mismatch = _init_mismatch(cls) if _by_fields(cls) else None
        if mismatch is not None:
            raise TypeError(f"register_persistable: dataclass {cls.__qualname__}: {mismatch}")
        name = _persistable_name(cls)
        with self._lock:
            existing = self._classes.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(
                    f"register_persistable: name {name!r} is already registered to another class"
                )
            self._classes[name] = cls
        return cls

    def name_of(self, cls: type[Any]) -> str | None:
        """The registered name of ``cls``, or None when ``cls`` is not registered."""
        name = _persistable_name(cls)
        with self._lock:
            return name if self._classes.get(name) is cls else None

    def lookup(self, name: str) -> type[Any] | None:
        """The class registered under ``name``, or None."""
        with self._lock:
            return self._classes.get(name)


DEFAULT_REGISTRY: Final = PersistableRegistry()


def register_persistable(cls: _PersistableT) -> _PersistableT:
    """Register ``cls`` in the default registry; usable as a class decorator."""
    return DEFAULT_REGISTRY.register(cls)


class _UnencodableError(Exception):
    """Raised by the packer's ``default`` hook; the walker then finds the path."""


def encode_value(
    value: Any,
    *,
    what: str,
    root: str = "value",
    registry: PersistableRegistry = DEFAULT_REGISTRY,
) -> bytes:
    """Encode ``value`` to msgpack bytes.

    Args:
        value: the value to encode (see the module docstring for what is accepted).
        what: prefix for error messages, e.g. ``"run 7f3a context"``.
        root: the name the field path starts with, e.g. ``"context"``.
        registry: where Persistable classes are looked up.

    Raises:
        PersistenceError: naming the path and type of the first field that
            cannot be encoded, e.g. ``context['rows'][3]['when']``.
    """

    def default(obj: Any) -> msgpack.ExtType:
        cls = type(obj)
        if cls is tuple:
            return msgpack.ExtType(_TUPLE_EXT, pack(list(obj)))
        name = registry.name_of(cls)
        if name is None:
            raise _UnencodableError
        if _by_fields(cls):
            return msgpack.ExtType(_DATACLASS_EXT, pack([name, _init_fields(obj)]))
        payload = obj.to_bytes()
        if type(payload) is not bytes:
            raise _UnencodableError
        return msgpack.ExtType(_PERSISTABLE_EXT, pack([name, payload]))

    def pack(obj: Any) -> bytes:
        packed: bytes = msgpack.packb(obj, default=default, strict_types=True, use_bin_type=True)
        return packed

    try:
        return pack(value)
    except (_UnencodableError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        problem = _find_problem(value, root, registry)
        if problem is None:  # the walker disagrees with msgpack: report msgpack's reason
            problem = f"cannot encode {root}: {exc}"
        raise PersistenceError(f"{what}: {problem}") from exc
    except Exception as exc:  # a Persistable's to_bytes raised: its path is found below
        problem = _find_problem(value, root, registry)
        raise PersistenceError(f"{what}: {problem or f'cannot encode {root}: {exc!r}'}") from exc


def _find_problem(value: Any, root: str, registry: PersistableRegistry) -> str | None:
    """Walk ``value`` with the encoder's rules; describe the first bad field, or None."""
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        obj, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return f"cannot encode {_short(path)}: nested deeper than {_MAX_DEPTH} levels"
        cls = type(obj)
        if cls is list or cls is tuple:
            items = list(enumerate(obj))
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in reversed(items))
        elif cls is dict:
            problem = _check_keys(obj, path)
            if problem is not None:
                return problem
            pairs = list(obj.items())
            stack.extend((item, f"{path}[{key!r}]", depth + 1) for key, item in reversed(pairs))
        elif _by_fields(cls) and registry.name_of(cls) is not None:
            fields = list(_init_fields(obj).items())
            stack.extend((item, f"{path}.{name}", depth + 1) for name, item in reversed(fields))
        else:
            problem = _check_leaf(obj, path, registry)
            if problem is not None:
                return problem
    return None


def _short(path: str) -> str:
    return path if len(path) <= 200 else f"{path[:60]}...{path[-120:]}"


def _check_keys(mapping: dict[Any, Any], path: str) -> str | None:
    for key in mapping:
        if key is not None and type(key) not in (str, int, bytes, bool, float, tuple):
            return (
                f"cannot encode {path}: key {key!r} of type {_type_name(type(key))} "
                "is not msgpack-encodable (use str or int keys)"
            )
    return None


def _check_leaf(obj: Any, path: str, registry: PersistableRegistry) -> str | None:
    cls = type(obj)
    if obj is None or cls in (bool, float, str, bytes):
        return None
    if cls is int:
        if _INT_MIN <= obj <= _INT_MAX:
            return None
        return f"cannot encode {path}: int {obj} does not fit in 64 bits"
    if registry.name_of(cls) is not None:
        return _check_persistable(obj, path)
    if isinstance(obj, Persistable) or dataclasses.is_dataclass(cls):
        return (
            f"cannot encode {path}: {_type_name(cls)} is not registered "
            "(decorate it with @register_persistable)"
        )
    return (
        f"cannot encode {path}: {_type_name(cls)} is not msgpack-encodable (register a Persistable)"
    )


def _check_persistable(obj: Any, path: str) -> str | None:
    cls_name = _type_name(type(obj))
    try:
        payload = obj.to_bytes()
    except Exception as exc:  # noqa: BLE001 - user code; the caller chains the original error
        return f"cannot encode {path}: {cls_name}.to_bytes() raised {exc!r}"
    if type(payload) is not bytes:
        return (
            f"cannot encode {path}: {cls_name}.to_bytes() returned "
            f"{_type_name(type(payload))}, not bytes"
        )
    return None


class _UndecodableError(Exception):
    """Raised inside the ext hook; ``decode_value`` turns it into PersistenceError."""


def _make_ext_hook(registry: PersistableRegistry) -> Callable[[int, bytes], Any]:
    def unpack(data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook)

    def ext_hook(code: int, data: bytes) -> Any:
        if code == _TUPLE_EXT:
            items = unpack(data)
            if type(items) is not list:
                raise _UndecodableError(f"tuple ext holds {_type_name(type(items))}, not a list")
            return tuple(items)
        if code == _PERSISTABLE_EXT:
            pair = unpack(data)
            if not (
                type(pair) is list
                and len(pair) == 2
                and type(pair[0]) is str
                and type(pair[1]) is bytes
            ):
                raise _UndecodableError("malformed Persistable ext (expected [name, bytes])")
            name, payload = pair
            cls = registry.lookup(name)
            if cls is None:
                raise _UndecodableError(
                    f"Persistable {name!r} is not registered in this process "
                    "(import the module that registers it before loading)"
                )
            if _by_fields(cls):
                raise _UndecodableError(f"{name} is a dataclass, but was stored as bytes")
            try:
                return cls.from_bytes(payload)
            except Exception as exc:
                raise _UndecodableError(f"{name}.from_bytes() raised {exc!r}") from exc
        if code == _DATACLASS_EXT:
            return dataclass_from(unpack(data))
        raise _UndecodableError(f"unknown ext type code {code}")

    def dataclass_from(pair: Any) -> Any:
        if not (
            type(pair) is list
            and len(pair) == 2
            and type(pair[0]) is str
            and type(pair[1]) is dict
            and all(type(key) is str for key in pair[1])
        ):
            raise _UndecodableError("malformed dataclass ext (expected [name, {field: value}])")
        name, fields = pair
        cls = registry.lookup(name)
        if cls is None:
            raise _UndecodableError(
                f"dataclass {name!r} is not registered in this process "
                "(import the module that registers it before loading)"
            )
        if not _by_fields(cls):
            raise _UndecodableError(f"{name} is not a dataclass encoded by fields")
        try:
            return cls(**fields)
        except Exception as exc:  # fields renamed or removed since it was written, ...
            raise _UndecodableError(f"{name}(**{sorted(fields)}) raised {exc!r}") from exc

    return ext_hook


def decode_value(
    data: bytes, *, what: str, registry: PersistableRegistry = DEFAULT_REGISTRY
) -> Any:
    """Decode bytes written by :func:`encode_value`.

    Raises:
        PersistenceError: naming ``what`` and the cause, for truncated, corrupt
            or trailing bytes, too deep nesting, unknown ext codes, and
            Persistable names not registered in ``registry``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PersistenceError(f"{what}: expected bytes to decode, got {_type_name(type(data))}")
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=False, ext_hook=_make_ext_hook(registry)
        )
    except _UndecodableError as exc:
        raise PersistenceError(f"{what}: cannot decode: {exc}") from exc
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
        # ValueError covers truncated input, ExtraData, FormatError, StackError, bad UTF-8;
        # TypeError an unhashable map key.
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise PersistenceError(f"{what}: cannot decode ({len(data)} bytes): {reason}") from exc
