"""SIGTERM / SIGINT as a request to stop at the next safe point (after the current batch), so that a
preempted job (SLURM sends SIGTERM, waits, then kills) leaves an exact checkpoint behind.

The trainer and the evaluation poll `StopRequest.signum` after each batch (a Python attribute: no
device sync). A second signal while the first is pending falls back to the default action, so a
second Ctrl-C still stops a hung run at once. Python runs a handler between bytecodes, so two signals
that arrive during one long C call (a forward pass) would reach it as one; the C-level handler also
writes one byte per delivery to a wakeup pipe, and the handler counts those, so a second signal
stops at once however close behind the first it comes.
"""
from __future__ import annotations

import os
import signal
import sys
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


_ACTIVE: list["StopRequest"] = []     # the StopRequest whose wakeup pipe is installed, if any


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker) keeps the handlers but must not write its own signals into
    the parent's wakeup pipe: a Ctrl-C reaching the whole process group would count as several."""
    for request in _ACTIVE:
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:       # forked from another thread: signals are not ours to handle there
            pass
        request._pipe = None
        request._in_child = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def _notice(text: str) -> None:
    """A line on stdout from a signal handler. The handler may have interrupted a print to stdout, and
    a buffered stream refuses the reentrant write (RuntimeError, which would escape into that print):
    the line then goes to the file descriptor itself, or is dropped where there is none."""
    try:
        print(text, flush=True)
    except RuntimeError:
        try:
            os.write(sys.stdout.fileno(), (text + "\n").encode())
        except (OSError, ValueError):
            pass


class StopRequest:
    """Catches SIGTERM and SIGINT while active (a context manager; the previous handlers come back on
    exit). Outside the main thread signals cannot be caught, and it only records nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._pipe: tuple[int, int] | None = None
        self._previous_wakeup = -1
        self._in_child = False       # in a forked worker (which its parent stops)
        hook = os.environ.get(TEST_HOOK, "")
        self._hook = tuple(hook.split(":")) if hook else None

    def _deliveries(self) -> int:
        """Signals of ours delivered since the last call (the wakeup pipe's bytes); 1 without a pipe."""
        if self._pipe is None:
            return 1
        count = 0
        try:
            while data := os.read(self._pipe[0], 512):
                count += sum(1 for b in data if b in SIGNALS)
        except BlockingIOError:
            pass
        return max(count, 1)

    def _handle(self, signum: int, frame) -> None:
        deliveries = self._deliveries()
        if self.signum is not None or deliveries > 1:      # a second signal: the default action, now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.signum = signum
        if not self._in_child:      # a worker outlives the first signal silently; its parent speaks
            _notice(f"{signal.Signals(signum).name} received: stopping after the current batch "
                    "(send it again to stop at once)")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
            self._pipe = os.pipe()
            for fd in self._pipe:
                os.set_blocking(fd, False)
            self._previous_wakeup = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
            _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def agreed(self, dist, device) -> int | None:
        """The signal to stop on, the same on every rank (`dist`: runner.infra.distributed.Dist): a signal that
        reached one rank stops them all after the same batch. None: go on."""
        return dist.max_int(self.signum or 0, device) or None

    def after_batch(self, dist, device, epoch: int, batch: int) -> int | None:
        """At the end of a training batch: the test hook's point, then the signal agreed over ranks."""
        self.test_point(epoch, batch)
        return self.agreed(dist, device)

    def test_point(self, *where: object) -> None:
        """Send the test hook's signal when `where` (e.g. (epoch, batch)) is the hooked point."""
        if self._hook and tuple(str(w) for w in where) == self._hook[:-1]:
            os.kill(os.getpid(), getattr(signal, self._hook[-1]))
