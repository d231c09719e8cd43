"""Membership that scales: the failure detector's idle cost on real members, and the
protocol at 500 and 1,000 members in the simulation (the same ``_swim`` code on a
virtual clock and a lossy in-process fabric).

- idle CPU per member of real ``actorflow node`` processes on loopback, 32
  members against 8 (the cost per member must not grow with the cluster);
- from the simulation: messages per member per second (against what the
  all-to-all heartbeats of protocol v3 sent), time from a kill to the first
  ``down`` (p50, p99; against v3's detector bound), time until every live member
  has it down (p99), and false suspicions per hour at 1% and 5% loss (against
  the probes made in that hour: the ratio is the false-suspicion rate per probe).
"""

from __future__ import annotations

import statistics

from bench._idle import idle_cpu_per_member
from bench._row import Config, Family, Row, Series, Target
from transport._settings import DEFAULT_SETTINGS
from transport._simulation import measure_deaths, measure_quiet

__all__ = ["FAMILY"]

V3_BOUND = 1.6  # protocol v3: down_after 1.5 s + check_interval 0.1 s after the last heartbeat
BEFORE = "before (v3 all-to-all heartbeats, same machine): 0.300% at 8, 0.656% at 32 (2.19x)"


def _idle_row(config: Config) -> Row:
    small, large = config.size(8, 3), config.size(32, 5)
    window = config.size(20, 2)
    repeats = 1 if config.smoke else max(1, config.repeats // 2)
    smalls, larges = [], []
    for _ in range(repeats):
        smalls.append(idle_cpu_per_member(small, window))
        larges.append(idle_cpu_per_member(large, window))
    return Row(
        "membership",
        f"idle CPU per member, {large} real members vs {small}",
        "% core",
        Series(f"{large} members", tuple(larges)),
        (Series(f"{small} members", tuple(smalls)),),
        Target("ratio", "<=", 1.3),
        f"plaintext `actorflow node` processes, {window:g}s idle windows; {BEFORE}",
    )


def _death_rows(config: Config, size: int) -> list[Row]:
    deaths = config.size(20, 5)
    reports = [measure_deaths(size, deaths, seed=seed) for seed in range(1 if config.smoke else 2)]
    summaries = [report.summary() for report in reports]
    rate = tuple(report.messages_per_member_second for report in reports)
    heartbeats = 2.0 * (size - 1)  # v3: one heartbeat to every peer every 0.5 s
    missed = sum(report.undetected for report in reports)
    false_downs = sum(report.false_downs for report in reports)
    note = f"{deaths} kills per run, no loss; {missed} not learned by all; {false_downs} false down"

    def series(key: str) -> tuple[float, ...]:
        return tuple(summary[key] for summary in summaries)

    v3 = Series("v3 detector bound", (V3_BOUND,) * len(reports))
    p99 = Series("detection p99", series("detect_p99"))
    return [
        Row(
            "membership",
            f"sim {size}: messages sent per member per second",
            "msg/s",
            Series("SWIM probes + acks + gossip", rate),
            (Series("v3 heartbeats to all", (heartbeats,) * len(rate)),),
            Target("value", "<=", 10.0),
            note,
        ),
        Row(
            "membership",
            f"sim {size}: kill to first down, p50",
            "s",
            Series("detection p50", series("detect_p50")),
            (v3,),
            Target("value", "<=", 3.0),
            note,
        ),
        Row(
            "membership",
            f"sim {size}: kill to first down, p99",
            "s",
            p99,
            (v3,),
            Target("value", "<=", 4.0),
            note,
        ),
        Row(
            "membership",
            f"sim {size}: kill to every member knowing, p99",
            "s",
            Series("dissemination p99", series("disseminate_p99")),
            (p99,),
            Target("value", "<=", 6.0),
            note,
        ),
    ]


def _quiet_row(config: Config, size: int, loss: float) -> Row:
    seconds = config.size(120.0, 10.0)
    report = measure_quiet(size, seconds, loss=loss, seed=11)
    probes_per_hour = 3600.0 / DEFAULT_SETTINGS.probe_interval * size
    return Row(
        "membership",
        f"sim {size}: false suspicions per hour at {loss:.0%} loss",
        "/h",
        Series("false suspicions (cluster)", (report.suspicions_per_hour,)),
        (Series("probes made (cluster)", (probes_per_hour,)),),
        None,
        f"{seconds:g}s simulated: {report.suspicions} suspicions, {report.refutations} "
        f"refutations, {report.downs} false downs; "
        f"{statistics.fmean([report.messages_per_member_second]):.1f} msg/member/s",
    )


def run(config: Config) -> list[Row]:
    rows = [_idle_row(config)]
    for size in (config.size(500, 30), config.size(1000, 60)):
        rows += _death_rows(config, size)
    for size in (config.size(500, 30), config.size(1000, 60)):
        rows += [_quiet_row(config, size, 0.01), _quiet_row(config, size, 0.05)]
    return rows


FAMILY = Family("membership", run)
