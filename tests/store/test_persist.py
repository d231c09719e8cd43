"""The checkpoint value codec: round trips, Persistables, and errors that name the field."""

from __future__ import annotations

import datetime
import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Self

import msgpack
import pytest

from actors import PersistenceError
from runtime.store import (
    PersistableRegistry,
    decode_value,
    encode_value,
    register_persistable,
)


@register_persistable
@dataclass(frozen=True)
class Money:
    cents: int
    currency: str

    def to_bytes(self) -> bytes:
        return f"{self.cents}:{self.currency}".encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        cents, currency = data.decode().split(":")
        return cls(int(cents), currency)


@dataclass(frozen=True)
class Unregistered:
    value: int

    def to_bytes(self) -> bytes:
        return str(self.value).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        return cls(int(data))


def round_trip(value: Any) -> Any:
    return decode_value(encode_value(value, what="test"), what="test")


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**63),
        2**64 - 1,
        1.5,
        "héllo",
        b"\x00\xff",
        [],
        {},
        [1, [2, [3]]],
        {"a": {"b": [None, False]}},
        {1: "int key", "s": "str key"},
    ],
)
def test_msgpack_natives_round_trip_unchanged(value: Any) -> None:
    decoded = round_trip(value)
    assert decoded == value
    assert type(decoded) is type(value)


def test_tuples_decode_as_tuples_at_any_depth() -> None:
    value = {"pair": (1, "a"), "nested": [(), ((1, 2), [3, (4,)])], (1, 2): "tuple key"}
    decoded = round_trip(value)
    assert decoded == value
    assert type(decoded["pair"]) is tuple
    assert type(decoded["nested"][1][0]) is tuple
    assert type(decoded["nested"][1][1]) is list


def test_registered_persistable_round_trips_inside_containers() -> None:
    value = {"total": Money(1250, "EUR"), "lines": [(Money(1, "EUR"), 2)]}
    assert round_trip(value) == value


def test_register_persistable_returns_the_class_and_is_idempotent() -> None:
    assert register_persistable(Money) is Money


def test_registering_another_class_under_a_taken_name_is_refused() -> None:
    registry = PersistableRegistry()
    registry.register(Money)
    impostor = type("Money", (Unregistered,), {"__module__": Money.__module__})
    impostor.__qualname__ = Money.__qualname__
    with pytest.raises(ValueError, match="already registered"):
        registry.register(impostor)


def test_registering_a_class_without_the_protocol_is_refused() -> None:
    with pytest.raises(TypeError, match="to_bytes"):
        PersistableRegistry().register(datetime.datetime)  # type: ignore[type-var]


def test_a_large_context_of_100k_rows_round_trips() -> None:
    context = {
        "rows": [{"id": index, "name": f"row-{index}", "ok": True} for index in range(100_000)]
    }
    assert round_trip(context) == context


# --- encoding errors name the field path ------------------------------------------------


def test_unencodable_value_error_names_the_field_path_and_type() -> None:
    rows: list[dict[str, Any]] = [{"when": 1}, {"when": 2}, {"when": 3}]
    rows.append({"when": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)})
    with pytest.raises(PersistenceError) as caught:
        encode_value({"rows": rows}, what="run 7f3a context", root="context")
    assert str(caught.value) == (
        "run 7f3a context: cannot encode context['rows'][3]['when']: "
        "datetime.datetime is not msgpack-encodable (register a Persistable)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"tags": {"a"}}, r"value\['tags'\]: set is not msgpack-encodable"),
        ([(1, 2, object())], r"value\[0\]\[2\]: object is not msgpack-encodable"),
        ({"n": 2**64}, r"value\['n'\]: int 18446744073709551616 does not fit in 64 bits"),
        ({"d": OrderedDict(a=1)}, r"value\['d'\]: collections.OrderedDict is not"),
        ({frozenset(): 1}, r"cannot encode value: key frozenset\(\) of type frozenset"),
        ({"money": Unregistered(3)}, r"value\['money'\]: .*Unregistered is not registered"),
    ],
)
def test_each_kind_of_unencodable_value_is_reported_with_its_path(value: Any, message: str) -> None:
    with pytest.raises(PersistenceError, match=message):
        encode_value(value, what="run r1 context")


def test_a_str_subclass_is_refused_rather_than_decoded_as_plain_str() -> None:
    class Color(enum.StrEnum):
        RED = "red"

    with pytest.raises(PersistenceError, match=r"value\[0\]: .*Color is not msgpack-encodable"):
        encode_value([Color.RED], what="ctx")


def test_nesting_too_deep_is_a_persistence_error_not_a_crash() -> None:
    value: list[Any] = []
    innermost = value
    for _ in range(3000):
        innermost.append([])
        innermost = innermost[0]
    with pytest.raises(PersistenceError, match="nested deeper than"):
        encode_value(value, what="deep")


def test_a_persistable_whose_to_bytes_raises_is_reported_with_the_cause() -> None:
    registry = PersistableRegistry()

    @registry.register
    class Broken(Unregistered):
        def to_bytes(self) -> bytes:
            raise RuntimeError("no disk")

    with pytest.raises(PersistenceError, match=r"value\['b'\]: .*to_bytes\(\) raised") as caught:
        encode_value({"b": Broken(1)}, what="ctx", registry=registry)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_persistable_whose_to_bytes_returns_str_is_refused() -> None:
    registry = PersistableRegistry()

    @registry.register
    class Sloppy(Unregistered):
        def to_bytes(self) -> bytes:
            return "text"  # type: ignore[return-value]

    with pytest.raises(PersistenceError, match=r"value\[0\]: .*returned str, not bytes"):
        encode_value([Sloppy(1)], what="ctx", registry=registry)


# --- decoding errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda data: data[:-3], id="truncated"),
        pytest.param(lambda data: data + b"\x00", id="trailing-bytes"),
        pytest.param(lambda data: b"\xc1" + data, id="invalid-format-byte"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_corrupt_bytes_raise_persistence_error_naming_what_with_the_cause(mangle: Any) -> None:
    data = encode_value({"rows": [1, 2, 3], "name": "x" * 40}, what="ctx")
    with pytest.raises(PersistenceError, match=r"^run 7f3a context: cannot decode") as caught:
        decode_value(mangle(data), what="run 7f3a context")
    assert caught.value.__cause__ is not None


def test_an_unknown_ext_type_is_refused() -> None:
    data = msgpack.packb(msgpack.ExtType(42, b"\x00"))
    with pytest.raises(PersistenceError, match="unknown ext type code 42"):
        decode_value(data, what="ctx")


def test_a_persistable_name_not_registered_here_is_refused_never_imported() -> None:
    writer = PersistableRegistry()
    writer.register(Unregistered)
    data = encode_value({"u": Unregistered(5)}, what="ctx", registry=writer)
    assert decode_value(data, what="ctx", registry=writer) == {"u": Unregistered(5)}
    with pytest.raises(PersistenceError, match=r"run x context: .*Unregistered' is not registered"):
        decode_value(data, what="run x context", registry=PersistableRegistry())


def test_a_persistable_name_that_looks_importable_is_not_imported() -> None:
    payload = msgpack.packb(["os:system", b"echo pwned"])
    data = msgpack.packb(msgpack.ExtType(2, payload))
    with pytest.raises(PersistenceError, match="'os:system' is not registered"):
        decode_value(data, what="ctx")


def test_a_persistable_whose_from_bytes_raises_is_reported_with_the_cause() -> None:
    data = encode_value(Money(1, "EUR"), what="ctx")
    corrupted = data.replace(b"1:EUR", b"x:EUR")
    with pytest.raises(PersistenceError, match=r"Money.from_bytes\(\) raised") as caught:
        decode_value(corrupted, what="ctx")
    assert caught.value.__cause__ is not None


def test_decode_rejects_a_non_bytes_argument() -> None:
    with pytest.raises(PersistenceError, match="expected bytes"):
        decode_value("text", what="ctx")  # type: ignore[arg-type]


@register_persistable
@dataclass
class Order:
    id: int
    lines: list[Money]
    note: str | None = None
    tags: tuple[str, ...] = ()
    total: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.total = sum(line.cents for line in self.lines)


@register_persistable
@dataclass
class Batch:
    orders: dict[str, Order]


def test_a_registered_dataclass_round_trips_field_by_field_with_nesting() -> None:
    batch = Batch({"a": Order(1, [Money(250, "EUR"), Money(100, "EUR")], tags=("x", "y"))})
    back = round_trip({"batch": batch, "list": [Order(2, [])]})
    assert back == {"batch": batch, "list": [Order(2, [])]}
    order = back["batch"].orders["a"]
    assert (type(order), order.tags, order.total) == (Order, ("x", "y"), 350)  # post_init ran


def test_an_unregistered_dataclass_is_refused_naming_the_path_and_the_fix() -> None:
    @dataclass
    class Loose:
        n: int

    with pytest.raises(PersistenceError, match=r"context\['x'\]: .*Loose is not registered"):
        encode_value({"x": Loose(1)}, what="run r", root="context")


def test_a_bad_field_inside_a_dataclass_is_named_by_its_attribute_path() -> None:
    order = Order(1, [Money(1, "EUR")], note=datetime.date(2026, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(PersistenceError, match=r"context\.note: .*datetime\.date"):
        encode_value(order, what="run r", root="context")


def test_a_dataclass_whose_fields_changed_since_it_was_written_is_refused_clearly() -> None:
    registry = PersistableRegistry()

    @dataclass
    class Point:
        x: int
        y: int

    registry.register(Point)
    data = encode_value(Point(1, 2), what="w", registry=registry)

    @dataclass
    class Renamed:  # the same name, registered in another process after a refactor
        x: int
        z: int

    Renamed.__qualname__ = Point.__qualname__
    other = PersistableRegistry()
    other.register(Renamed)
    with pytest.raises(PersistenceError, match=r"Point\(\*\*\['x', 'y'\]\) raised TypeError"):
        decode_value(data, what="run r context", registry=other)


@pytest.mark.parametrize(
    "payload",
    [
        ["tests.store.test_persist:Order"],  # no fields
        ["tests.store.test_persist:Order", {1: 2}],  # non-str field name
        ["tests.store.test_persist:Money", {"cents": 1, "currency": "EUR"}],  # not by fields
        ["os:system", {"command": "true"}],  # never imported
    ],
)
def test_malformed_or_foreign_dataclass_payloads_are_refused(payload: Any) -> None:
    def ext(obj: Any) -> Any:
        raise TypeError(obj)

    inner = msgpack.packb(payload, use_bin_type=True, strict_types=True, default=ext)
    data = msgpack.packb(msgpack.ExtType(3, inner), use_bin_type=True)
    with pytest.raises(PersistenceError, match="cannot decode"):
        decode_value(data, what="run r context")
