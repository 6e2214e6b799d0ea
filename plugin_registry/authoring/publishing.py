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

from plugin_registry.authoring.build import build
from plugin_registry.authoring.check import (
    CheckReport,
    Problem,
    check_pyproject,
    check_wheel,
    source_root_of,
)
from plugin_registry.authoring.legacy_zip import convert_legacy_zip
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


def checked_wheel(path: Path, workdir: Path, *, label: str = "") -> tuple[Path, CheckReport]:
    """Turn a project folder, wheel or legacy ZIP into a wheel in ``workdir`` and check it."""
    label = label or path.name
    if path.is_dir():
        report = check_pyproject(path)
        if report.problems:
            return path, report
        wheel = build(path, workdir)
        return wheel, check_wheel(wheel, project=path, source_root=source_root_of(path))
    if path.suffix == ".zip" and path.is_file():
        wheel = convert_legacy_zip(path, workdir, label=label)
        return wheel, check_wheel(wheel)
    if path.suffix == ".whl" and path.is_file():
        return path, check_wheel(path)
    raise RegistryError(f"{label}: not a plugin project folder, a wheel or a legacy plugin ZIP")


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
