"""Publishing: every way a plugin reaches an index goes through the same check.

``services-ai plugin publish`` (authors: the dev index by default, then ``plugin promote``),
``services-ai index publish`` and the console's upload (admins: the stable index) all call
:func:`publish`. A project folder is built into a wheel and a legacy ZIP converted into one;
then the wheel itself is checked exactly as ``services-ai plugin check`` checks it, and only a
wheel without problems is uploaded. A refused file leaves the index as it was, so no version
number is burnt by an invalid upload.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from plugin_registry.authoring.check import Problem, checked_wheel
from plugin_registry.distribution.index import IndexClient
from plugin_registry.errors import RegistryError


class CheckFailed(RegistryError):
    """A file was refused before it reached an index; ``problems`` lists what to fix."""

    def __init__(self, label: str, problems: list[Problem]) -> None:
        self.label = label
        self.problems = problems
        listed = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(
            f"{label}: {len(problems)} problem(s); nothing was built or published\n{listed}"
        )


@dataclass
class Published:
    name: str
    version: str
    wheel: str
    outcome: str  # "uploaded" or "already there"
    url: str
    warnings: list[Problem] = field(default_factory=list)


def publish(
    path: Path,
    index: str,
    *,
    client: IndexClient | None = None,
    label: str = "",
    say: Callable[[str], None] = lambda message: None,
) -> Published:
    """Check ``path`` as ``plugin check`` does, then upload its wheel to ``index``.

    Raise CheckFailed naming every problem (nothing is uploaded), or RegistryError.
    """
    client = client or IndexClient()
    label = label or path.name
    with tempfile.TemporaryDirectory(prefix="plugin-publish-") as tmp:
        wheel, report = checked_wheel(path.resolve(), Path(tmp), label=label)
        if report.problems:
            raise CheckFailed(label, report.problems)
        client.ping()
        if wheel.parent == Path(tmp):
            say(f"built {wheel.name}" if path.is_dir() else f"converted {label} into {wheel.name}")
        outcome = client.upload(wheel, index)
        return Published(
            report.name,
            report.version,
            wheel.name,
            outcome,
            client.config.index_url(index),
            report.warnings,
        )
