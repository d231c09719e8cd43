"""The member table's identity rules, with a clock the test drives (no sockets, no sleeps).

The table is driven by the failure detector (``_swim``), here by hand: ``declare_down``
is what a confirmed suspicion does."""

from __future__ import annotations

import pytest

from transport._membership import Membership, NameTaken

A = "tcp://127.0.0.1:2"
B = "tcp://127.0.0.1:3"


def table(max_members: int = 3, forget_after: float = 10.0) -> Membership:
    return Membership(
        "self",
        "tcp://127.0.0.1:1",
        max_members,
        incarnation=99,
        forget_after=forget_after,
    )


def down(members: Membership, name: str, now: float) -> list[tuple[str, str]]:
    """What a confirmed suspicion does; the transitions it made."""
    return [(t.node, t.new) for t in members.declare_down(name, now)]


def test_a_hello_from_another_incarnation_of_a_live_member_is_refused() -> None:
    members = table()
    members.on_hello("b", A, 100.0, 1)
    with pytest.raises(NameTaken, match=r"'b' is in use by a live member"):
        members.on_hello("b", B, 101.0, 2)
    assert (members.status("b"), members.address("b"), members.incarnation("b")) == ("up", A, 1)


def test_a_new_incarnation_is_refused_until_the_detector_declares_the_old_one_down() -> None:
    members = table()
    members.on_hello("b", A, 100.0, 1)
    with pytest.raises(NameTaken):
        members.on_hello("b", B, 160.0, 2)  # long silent, but only the detector decides
    assert down(members, "b", 160.1) == [("b", "down")]
    transitions = members.on_hello("b", B, 160.2, 2)
    assert [(t.old, t.new) for t in transitions] == [("down", "up")]
    assert (members.address("b"), members.incarnation("b")) == (B, 2)


@pytest.mark.parametrize("departure", ["down", "left"])
def test_a_new_incarnation_supersedes_a_departed_member(departure: str) -> None:
    members = table()
    members.on_hello("b", A, 100.0, 1)
    if departure == "left":
        members.on_leave("b", 100.5)
    else:
        assert down(members, "b", 101.6) == [("b", "down")]
    [back] = members.on_hello("b", B, 102.0, 2)
    assert (back.old, back.new, members.incarnation("b")) == (departure, "up", 2)
    assert members.snapshot()["b"].incarnation == 2


def test_departed_members_are_forgotten_after_forget_after() -> None:
    members = table(forget_after=10.0)
    members.on_hello("b", A, 100.0, 1)
    members.on_hello("c", B, 100.0, 2)
    members.on_leave("c", 100.0)
    assert down(members, "b", 101.6) == [("b", "down")]
    members.check(110.0)
    assert members.status("c") == "left" and members.take_forgotten() == []
    members.check(110.1)
    assert members.status("c") is None and members.take_forgotten() == ["c"]
    members.check(111.5)
    assert members.status("b") == "down"
    members.check(111.7)
    assert members.status("b") is None and members.take_forgotten() == ["b"]
    assert list(members.snapshot()) == ["self"]


def test_a_down_member_heard_again_is_not_forgotten() -> None:
    members = table(forget_after=10.0)
    members.on_hello("b", A, 100.0, 1)
    assert down(members, "b", 101.6) == [("b", "down")]
    assert [(t.old, t.new) for t in members.heard("b", 102.0)] == [("down", "up")]
    members.heard("b", 112.0)
    members.check(112.1)
    assert members.status("b") == "up"


def test_a_full_table_gives_the_oldest_departed_place_to_a_newcomer() -> None:
    members = table(max_members=2)
    members.on_hello("b", A, 100.0, 1)
    members.on_hello("c", B, 100.0, 2)
    with pytest.raises(OverflowError, match="live nodes"):
        members.on_hello("d", "tcp://127.0.0.1:4", 100.0, 3)
    members.on_leave("c", 100.2)
    members.on_hello("d", "tcp://127.0.0.1:4", 100.3, 3)
    assert members.names("up") == ["b", "d"] and members.status("c") is None
    assert members.take_forgotten() == ["c"]


def test_gossip_entries_carry_incarnations_self_first() -> None:
    members = table()
    members.on_hello("b", A, 100.0, 7)
    assert members.gossip_entries() == [["self", "tcp://127.0.0.1:1", "up", 99], ["b", A, "up", 7]]
