"""Records the host keeps about loading and calling plugins."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded; the other plugins loaded without it."""

    plugin: str
    # "missing" (not installed here), "import", "budget" (import too slow), "register", "validate"
    stage: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} failed to load ({self.stage}): {self.message}"


@dataclass(frozen=True)
class HookFailure:
    """One implementation that raised during a hook call."""

    plugin: str
    hook: str
    message: str
    traceback: str
    at: float = field(default_factory=time.time)

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} raised in hook {self.hook!r}: {self.message}"


@dataclass(slots=True)
class HookStats:
    """Per-(plugin, hook) counters: calls, errors and time spent, in nanoseconds."""

    calls: int = 0
    errors: int = 0
    total_ns: int = 0

    @property
    def mean_ms(self) -> float:
        return self.total_ns / self.calls / 1e6 if self.calls else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "total_ms": round(self.total_ns / 1e6, 3),
            "mean_ms": round(self.mean_ms, 3),
        }


@dataclass(frozen=True)
class HookOutcome:
    """The result of calling one plugin's implementation of a hook."""

    plugin: str
    hook: str
    value: Any = None
    failure: HookFailure | None = None
    skipped: str = ""  # why the plugin was not called, e.g. a missing permission

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.skipped
