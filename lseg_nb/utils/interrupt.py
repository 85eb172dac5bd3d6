"""Stopping long loops cleanly: Ctrl-C (SIGINT) or SIGTERM ends the current step instead of tearing through it.

Inside ``with StopRequest() as stop:`` the first SIGINT/SIGTERM only sets ``stop.requested`` and prints a note,
so a training loop can finish its step, save a consistent checkpoint and say where it stopped; a second one
raises :class:`KeyboardInterrupt` at once. Handlers can only be installed in the main thread; elsewhere nothing
is deferred and signals behave as usual.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Defer SIGINT/SIGTERM to the next step boundary (see the module docstring)."""

    def __init__(
        self, note: str = "stopping after the current step (press Ctrl-C again to stop at once)"
    ) -> None:
        self.note = note
        self.requested = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum
        print(f"\n{self.note}", file=sys.stderr, flush=True)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in _SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


def ignore_interrupts(*_: object) -> None:
    """``worker_init_fn`` of data-loading workers: the main process alone decides what Ctrl-C stops (a worker
    killed by the terminal's SIGINT would make the loader fail while the main process finishes its step)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
