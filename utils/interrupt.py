"""SIGTERM / SIGINT as a request to stop at the next safe point (after the current batch), so that a
preempted job (SLURM sends SIGTERM, waits, then kills) leaves an exact checkpoint behind.

The trainer and the evaluation poll `StopRequest.signum` after each batch (a Python attribute: no
device sync). A second signal while the first is pending falls back to the default action, so a
second Ctrl-C still stops a hung run at once.
"""
from __future__ import annotations

import os
import signal
import threading

# Test hook: "EPOCH:BATCH:SIGNAL" (e.g. "2:3:SIGTERM") makes the trainer send itself that signal with
# os.kill after batch BATCH of epoch EPOCH (0-based batch index); "eval:NAME:BATCH:SIGNAL" after that
# evaluation batch. Read only where set, so a normal run never looks at it.
TEST_HOOK = "PART_TEST_INTERRUPT_AT"
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """The run stopped on a signal after writing its state; the exit code is 128 + the signal."""

    def __init__(self, signum: int, where: str, resume_args: list[str]) -> None:
        super().__init__(signum, where)
        self.signum, self.where, self.resume_args = signum, where, resume_args

    def __str__(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name} {self.where}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """Catches SIGTERM and SIGINT while active (a context manager; the previous handlers come back on
    exit). Outside the main thread signals cannot be caught, and it only records nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        hook = os.environ.get(TEST_HOOK, "")
        self._hook = tuple(hook.split(":")) if hook else None

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:      # a second signal: the default action, now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.signum = signum
        print(f"{signal.Signals(signum).name} received: stopping after the current batch "
              "(send it again to stop at once)", flush=True)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def agreed(self, dist, device) -> int | None:
        """The signal to stop on, the same on every rank (`dist`: utils.distributed.Dist): a signal that
        reached one rank stops them all after the same batch. None: go on."""
        return dist.max_int(self.signum or 0, device) or None

    def test_point(self, *where: object) -> None:
        """Send the test hook's signal when `where` (e.g. (epoch, batch)) is the hooked point."""
        if self._hook and tuple(str(w) for w in where) == self._hook[:-1]:
            os.kill(os.getpid(), getattr(signal, self._hook[-1]))
