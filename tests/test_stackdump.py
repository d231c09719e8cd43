"""SIGUSR1 -> every thread's stack, written by a thread of ours holding the GIL."""

from __future__ import annotations

import io
import os
import signal
import threading

import pytest

from runtime._stackdump import END_MARKER, StackDumper, format_all_stacks
from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)


def test_every_thread_is_named_with_its_stack() -> None:
    parked = threading.Event()
    thread = threading.Thread(target=parked.wait, name="parked-for-the-dump", daemon=True)
    thread.start()
    try:
        text = format_all_stacks()
    finally:
        parked.set()
        thread.join(5)
    assert '"parked-for-the-dump" daemon' in text
    assert "in wait" in text  # its frame: Event.wait
    assert text.rstrip().endswith(END_MARKER)


def test_sigusr1_writes_a_dump_and_the_handler_is_put_back() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    stream = io.StringIO()
    dumper = StackDumper(stream)
    dumper.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_until(lambda: END_MARKER in stream.getvalue(), timeout=10)
    finally:
        dumper.uninstall()
    assert '"actorflow-stackdump"' in stream.getvalue()
    assert signal.getsignal(signal.SIGUSR1) == before
