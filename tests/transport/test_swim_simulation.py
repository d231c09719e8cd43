"""The membership protocol at a cluster size no test machine could start: the real
``Swim``/``Membership`` code on a virtual clock and a lossy in-process fabric
(``_simulation``). Small sizes here; 500 and 1,000 members under ``make bench``
(family ``membership``). Every figure is counted on the virtual clock: nothing
here depends on the machine's speed."""

from __future__ import annotations

import pytest

from transport._simulation import Fabric, measure_deaths, measure_quiet

pytestmark = pytest.mark.timeout(120)


def test_deaths_are_detected_within_the_bound_and_learned_by_every_member() -> None:
    report = measure_deaths(60, 8, every=1.0, seed=4)
    summary = report.summary()
    assert report.undetected == 0 and report.false_downs == 0
    assert len(report.detect) == len(report.disseminate) == 8
    assert summary["detect_max"] <= 3.5, summary
    assert summary["disseminate_max"] <= 5.0, summary


def test_deaths_are_learned_by_everyone_under_5_percent_loss() -> None:
    report = measure_deaths(60, 5, every=1.0, loss=0.05, seed=5)
    assert report.undetected == 0 and report.false_downs == 0
    assert report.summary()["disseminate_max"] <= 6.0, report.summary()


def test_no_false_down_at_1_percent_loss() -> None:
    report = measure_quiet(60, 300.0, loss=0.01, seed=6)
    assert report.downs == 0, report
    assert report.refutations == report.suspicions  # every false suspicion was refuted


def test_no_false_down_at_5_percent_loss_and_suspicions_are_refuted() -> None:
    report = measure_quiet(60, 120.0, loss=0.05, seed=7)
    assert report.suspicions > 0  # the loss is real enough to make some
    assert report.downs == 0, report


def test_a_partition_is_detected_on_both_sides_and_heals() -> None:
    fabric = Fabric(16, seed=8)
    left, right = fabric.names[:8], fabric.names[8:]
    fabric.run(2.0)
    fabric.partition([left, right])
    fabric.run(12.0)
    assert all(fabric.status(a, b) == "down" for a in left for b in right)
    assert all(fabric.status(b, a) == "down" for a in left for b in right)
    assert all(fabric.status(a, b) == "up" for a in left for b in left if a != b)
    fabric.heal()
    fabric.run(40.0)  # anti-entropy pings a down member every gossip_interval (5 s)
    broken = [
        (a, b) for a in fabric.names for b in fabric.names if a != b and fabric.status(a, b) != "up"
    ]
    assert broken == []


def test_a_member_isolated_briefly_is_not_declared_down() -> None:
    fabric = Fabric(30, seed=9)
    fabric.run(2.0)
    fabric.partition([fabric.names[:29]])  # the last member in no group: cut off
    fabric.run(2.6)
    fabric.heal()
    fabric.run(10.0)
    assert [t for t in fabric.transitions if t[3] == "down"] == []
