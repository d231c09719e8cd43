"""Joining that explains itself: refusals name the seed and the cause, the allowlist
reloads without a restart, and a node may start before its seed.

Real ``actorflow node`` processes and real CURVE handshakes on loopback.
"""

from __future__ import annotations

import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from runtime import ActorSystem, JoinRefused, NodeDown
from tests.cluster.cluster_kit import LOOPBACK, Worker, wait_members
from tests.support import wait_until
from transport import generate_keys


def free_port() -> int:
    """A loopback port nothing listens on (the OS picked it; it is closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def key_pair(directory: Path, name: str, *, knows: Path | None = None) -> Path:
    """``directory`` with ``name``'s key pair (and a copy of the public key ``knows``)."""
    generate_keys(directory, name)
    if knows is not None:
        shutil.copy(knows, directory / knows.name)
    return directory


@pytest.mark.timeout(60)
def test_a_wrong_key_is_refused_at_once_with_the_seed_and_the_cause(tmp_path: Path) -> None:
    seed_keys = key_pair(tmp_path / "seed", "seed")
    own = key_pair(tmp_path / "own", "stranger", knows=seed_keys / "seed.key")
    with ActorSystem("seed", listen=LOOPBACK, keys=seed_keys) as seed:
        target = f"seed@{seed.address}"
        began = time.monotonic()
        with pytest.raises(JoinRefused) as raised:
            ActorSystem("stranger", listen=LOOPBACK, join=[target], keys=own, join_timeout=30)
        assert time.monotonic() - began < 10.0  # not the join timeout: the refusal itself
        message = str(raised.value)
        assert f"seed {target}" in message
        assert "refused this node's CURVE key (ZAP status 400)" in message
        assert "stranger.key is not on the seed's allowlist" in message

        # A wrong key held *for the seed* is a handshake failure too, named as such.
        key_pair(tmp_path / "other", "seed")
        wrong = key_pair(tmp_path / "wrong", "stranger2", knows=tmp_path / "other" / "seed.key")
        shutil.copy(wrong / "stranger2.key", seed_keys / "stranger2.key")
        with pytest.raises(JoinRefused, match="is probably not the seed's key"):
            ActorSystem("stranger2", listen=LOOPBACK, join=[target], keys=wrong, join_timeout=30)


@pytest.mark.timeout(60)
def test_a_join_that_times_out_says_what_the_seed_connection_showed() -> None:
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(NodeDown, match="connection refused") as raised:
        ActorSystem("lonely", listen=LOOPBACK, join=[nowhere], plaintext=True, join_timeout=2)
    assert nowhere in str(raised.value)


@pytest.mark.timeout(90)
def test_a_key_copied_into_a_running_seeds_directory_is_accepted_without_restart(
    tmp_path: Path,
) -> None:
    seed_keys = key_pair(tmp_path / "seed", "seed")
    own = key_pair(tmp_path / "own", "late", knows=seed_keys / "seed.key")
    with ActorSystem("seed", listen=LOOPBACK, keys=seed_keys) as seed:
        shutil.copy(own / "late.key", seed_keys / "late.key")  # no restart, no signal
        late = Worker("late", f"seed@{seed.address}", keys=own, apps=())
        try:
            late.wait_up()
            wait_members(seed, {"seed", "late"})
        finally:
            late.stop()


@pytest.mark.timeout(90)
def test_sighup_reloads_the_allowlist_and_a_removed_key_is_refused(tmp_path: Path) -> None:
    seed_keys = key_pair(tmp_path / "seed", "seed")
    own = key_pair(tmp_path / "own", "member", knows=seed_keys / "seed.key")
    shutil.copy(own / "member.key", seed_keys / "member.key")
    # --keys-poll 0: only SIGHUP re-reads the directory (a removal is no miss to notice)
    seed = Worker("seed", None, keys=seed_keys, apps=(), options=("--keys-poll", "0"))
    try:
        target = f"seed@{seed.wait_up()}"
        with ActorSystem("member", listen=LOOPBACK, join=[target], keys=own) as member:
            assert member.members().get("seed") == "up"
            member.leave(drain_timeout=1)

        (seed_keys / "member.key").unlink()
        seed.signal(signal.SIGHUP)
        assert seed.wait_text("removed ['member']", timeout=30) is not None, seed.output()

        with pytest.raises(JoinRefused, match="refused this node's CURVE key"):
            ActorSystem("member", listen=LOOPBACK, join=[target], keys=own, join_timeout=30)
        assert seed.process.poll() is None  # SIGHUP did not stop it
    finally:
        seed.stop()


@pytest.mark.timeout(120)
def test_a_node_started_before_its_seed_joins_once_the_seed_starts() -> None:
    seed_address = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    early = Worker("early", seed_address, apps=(), options=("--join-timeout", "60"))
    try:
        # It is up and retrying (it says why), three seconds before the seed exists.
        assert early.wait_text("connection refused", timeout=30) is not None, early.output()
        assert wait_until(lambda: time.monotonic() - began >= 3.0, timeout=10)
        assert early.process.poll() is None, early.output()
        with ActorSystem("seed", listen=seed_address, plaintext=True) as seed:
            early.wait_up(timeout=30)
            wait_members(seed, {"seed", "early"})
    finally:
        early.stop()
