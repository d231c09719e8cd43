"""Registered dataclasses whose init fields are not what cls(**fields) needs."""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass, field

import pytest

from actors import PersistenceError
from runtime.store import PersistableRegistry, decode_value, encode_value

pytestmark = pytest.mark.timeout(10)


@dataclass
class Salted:
    value: int
    salt: InitVar[str]
    digest: str = field(init=False)

    def __post_init__(self, salt: str) -> None:
        self.digest = f"{salt}:{self.value}"


@dataclass(init=False)
class OwnInit:
    total: int

    def __init__(self, a: int, b: int) -> None:
        self.total = a + b


@pytest.mark.parametrize("obj", [Salted(1, "pepper"), OwnInit(1, 2)], ids=type)
def test_a_registered_dataclass_either_round_trips_or_is_refused_up_front(obj: object) -> None:
    """Never a checkpoint that is written fine and can then not be read back (resume fails)."""
    registry = PersistableRegistry()
    try:
        registry.register(type(obj))
        data = encode_value(obj, what="ctx", registry=registry)
    except (TypeError, PersistenceError):
        return  # refused when registering or writing: the author finds out at once
    assert dataclasses.asdict(decode_value(data, what="ctx", registry=registry)) == (
        dataclasses.asdict(obj)  # type: ignore[call-overload]
    )
