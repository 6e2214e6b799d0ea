"""Time budgets for plugin code: interrupt a block that runs too long (main thread only)."""

from __future__ import annotations

import signal
import threading


class TimeBudgetExceeded(BaseException):
    """Raised inside plugin code that outlived its time budget.

    A ``BaseException``, like ``KeyboardInterrupt``, so a plugin's ``except Exception:`` cannot
    swallow it and have an overrun recorded as a success.
    """


class ImportBudgetExceeded(TimeBudgetExceeded):
    """Raised inside a plugin's import that outlived the import budget."""


class time_limit:  # lower case: used like a function, ``with time_limit(3):``
    """Interrupt the block with :attr:`error` after ``seconds`` (main thread only; 0: none).

    ``fired`` tells afterwards whether the deadline passed, even if the code caught the
    interruption. Code that blocks the signal or never returns to Python is not interrupted:
    the worker supervisor kills and replaces such a process once its lease has passed.
    """

    error: type[TimeBudgetExceeded] = TimeBudgetExceeded
    message = "exceeded the time budget of this hook"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._active = False

    def _interrupt(self, signum: int, frame: object) -> None:
        self.fired = True
        raise self.error(self.message)

    def __enter__(self) -> time_limit:
        self._active = threading.current_thread() is threading.main_thread() and self.seconds > 0
        if self._active:
            self._previous = signal.signal(signal.SIGALRM, self._interrupt)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)


class import_limit(time_limit):
    """The budget of one plugin's import."""

    error = ImportBudgetExceeded
    message = "exceeded the import budget"
