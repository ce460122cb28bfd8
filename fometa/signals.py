"""Stopping cleanly: SIGINT and SIGTERM ask a long job to stop at its next safe point
(:class:`StopSignals`), or, for a job that has none (packing a data set), stop it at once and alike:
:func:`terminate_interrupts` makes SIGTERM raise as Ctrl-C does, so what is cleaned up on one
(a temporary file) is cleaned up on the other."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

__all__ = ["StopSignals", "Terminated", "terminate_interrupts"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C raises :class:`KeyboardInterrupt` (within :func:`terminate_interrupts`)."""


def _terminate(signum, frame):
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def terminate_interrupts():
    """Within the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``): the block's clean-up
    runs as on Ctrl-C, and the command line exits with status 143. Only in the main thread, and only
    where SIGTERM has its default action (a handler someone installed is left alone)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
        self._old: dict[int, Any] = {}  # the handlers replaced, restored on exit

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
