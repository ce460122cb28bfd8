"""Stopping cleanly: SIGINT and SIGTERM ask a long job to stop at its next safe point."""
from __future__ import annotations

import signal
import threading

__all__ = ["StopSignals"]


class StopSignals:
    """Within ``with StopSignals() as stop:``, SIGINT/SIGTERM set ``stop.signal`` instead of killing.

    The job checks ``stop.signal`` (or ``stop.name``) at its safe points: the training loop after
    a meta-iteration, a kept evaluation after a chunk. A second signal raises
    :class:`KeyboardInterrupt` at once. Outside the main thread (where handlers cannot be
    installed) nothing is caught.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, install: bool = True):
        self.signal = None
        self.install = install
        self._old = {}

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        if self.install and threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""
