"""A stack dump that is safe on a busy node: SIGUSR1 -> every thread's stack, from Python.

``faulthandler.register(SIGUSR1, all_threads=True)`` walks the other threads'
frames from inside the C signal handler without holding the GIL; on a node
whose I/O thread was busy decoding, that crashed the process (SIGSEGV, 2 times
out of 2). Here the signal handler only writes a byte to a pipe; a thread of
ours (``actorflow-stackdump``), blocked reading that pipe, then holds the GIL
and formats every thread's stack with ``sys._current_frames()`` and
``traceback``, and writes it in one piece. faulthandler stays for fatal errors
(``faulthandler.enable``), which is what it is safe for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from typing import TextIO

__all__ = ["StackDumper", "format_all_stacks"]

END_MARKER = "-- end of stack dump --"


def format_all_stacks() -> str:
    """Every thread's stack, most recent call last, threads named (call with the GIL)."""
    names = {thread.ident: thread for thread in threading.enumerate()}
    frames = sys._current_frames()
    lines = [f"actorflow stack dump of process {os.getpid()}: {len(frames)} threads"]
    for ident, frame in sorted(frames.items()):
        thread = names.get(ident)
        label = thread.name if thread is not None else "?"
        daemon = " daemon" if thread is not None and thread.daemon else ""
        lines.append(f'Thread {ident:#x} "{label}"{daemon} (most recent call last):')
        lines.extend(line.rstrip("\n") for line in traceback.format_stack(frame))
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


class StackDumper:
    """Writes ``format_all_stacks()`` to ``stream`` on each ``signum`` (SIGUSR1).

    ``install`` must run on the main thread (signal handlers are set there);
    ``uninstall`` puts the previous handler back and ends the thread.
    """

    def __init__(self, stream: TextIO | None = None, signum: int = signal.SIGUSR1) -> None:
        self._stream = stream
        self._signum = signum
        self._previous: object = None
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="actorflow-stackdump", daemon=True)

    def install(self) -> None:
        write_fd = self._write_fd

        def on_signal(signum: int, frame: object) -> None:
            # Runs on the main thread between bytecodes: take no lock, only wake the dumper.
            with contextlib.suppress(OSError):  # pipe full: a dump is pending anyway
                os.write(write_fd, b"d")

        self._thread.start()
        self._previous = signal.signal(self._signum, on_signal)

    def uninstall(self) -> None:
        signal.signal(self._signum, self._previous)  # type: ignore[arg-type]
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"q")
        self._thread.join(5)
        if not self._thread.is_alive():
            os.close(self._read_fd)
        os.close(self._write_fd)

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 64)  # blocks without the GIL
            except OSError:
                return
            if not data or self._stopping:
                return
            text = format_all_stacks()
            stream = self._stream if self._stream is not None else sys.stderr
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):  # closed stream: nothing to write to
                pass
