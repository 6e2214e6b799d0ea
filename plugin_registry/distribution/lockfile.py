"""``plugins.in`` and ``plugins.lock``: pip-tools' requirements format with ``--hash`` lines.

A lock pins every package of the managed environment to one version and the sha256 of its
wheel. Packages the platform itself provides (Django, pluggy, services-ai, ...) are not
installed into the environment: our locks name them in a comment, and a lock written by
``pip-compile --generate-hashes`` that pins them is accepted when it pins the platform's own
versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from plugin_registry.errors import RegistryError

HEADER = """\
# plugins.lock - written by `services-ai plugins lock`; install exactly this set with
#   services-ai plugins sync plugins.lock
# or: pip install --require-hashes --no-deps -r plugins.lock (next to the platform)
"""


class LockError(RegistryError):
    """A lock file that cannot be installed as it is."""


@dataclass(frozen=True)
class Pin:
    name: str  # normalised
    version: str
    hashes: frozenset[str]

    def line(self) -> str:
        hashes = "".join(f" \\\n    --hash={h}" for h in sorted(self.hashes))
        return f"{self.name}=={self.version}{hashes}\n"


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            lines.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        lines.append((start, buffer.strip()))
    return lines


def parse_lock(text: str, source: str = "plugins.lock") -> list[Pin]:
    """Parse a hash-pinned requirements file; refuse anything that is not ``name==version``.

    Option lines (``--index-url``, ``--find-links``) are ignored: the platform installs from its
    own index only, and the hashes decide what is acceptable.
    """
    pins: dict[str, Pin] = {}
    for number, line in _logical_lines(text):
        where = f"{source}, line {number}"
        if line.startswith("-"):
            if line.startswith(("-e", "--editable", "-r", "-c", "--requirement", "--constraint")):
                raise LockError(f"{where}: {line.split()[0]} is not allowed in a plugin lock")
            continue
        tokens = line.split()
        first_option = next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))
        wanted = " ".join(tokens[:first_option])
        options = tokens[first_option:]
        hashes = frozenset(o.split("=", 1)[1] for o in options if o.startswith("--hash="))
        others = [o for o in options if not o.startswith("--hash=")]
        if others:
            raise LockError(f"{where}: unexpected {' '.join(others)!r} after the requirement")
        try:
            requirement = Requirement(wanted)
        except InvalidRequirement as exc:
            raise LockError(f"{where}: {wanted!r} is not a requirement ({exc})") from None
        specs = list(requirement.specifier)
        if requirement.url or len(specs) != 1 or specs[0].operator not in ("==", "==="):
            raise LockError(
                f"{where}: {wanted!r} is not pinned; every line of a lock is NAME==VERSION "
                "with --hash lines (write it with `services-ai plugins lock` or "
                "`pip-compile --generate-hashes`)"
            )
        if not hashes:
            raise LockError(
                f"{where}: {wanted} has no --hash; a plugin lock must pin every file by hash"
            )
        bad = [h for h in hashes if not re.fullmatch(r"sha256:[0-9a-f]{64}", h)]
        if bad:
            raise LockError(f"{where}: {bad[0]!r} is not a sha256 hash (sha256:<64 hex digits>)")
        name = canonicalize_name(requirement.name)
        if name in pins:
            raise LockError(f"{where}: {name} is pinned twice")
        pins[name] = Pin(name, specs[0].version, hashes)
    return sorted(pins.values(), key=lambda pin: pin.name)


def split_host(
    pins: list[Pin], host: dict[str, str], source: str = "plugins.lock"
) -> tuple[list[Pin], list[Pin]]:
    """Split pins into (installed into the environment, provided by the platform).

    A pin of a platform package must name the platform's own version: the environment never
    installs a second copy of a host package.
    """
    own, provided = [], []
    for pin in pins:
        if pin.name in host:
            if pin.version != host[pin.name]:
                raise LockError(
                    f"{source}: pins {pin.name}=={pin.version}, but the platform provides "
                    f"{pin.name} {host[pin.name]}; plugins run beside the platform's own "
                    "packages and cannot replace them: lock again against this platform"
                )
            provided.append(pin)
        else:
            own.append(pin)
    return own, provided


def format_lock(pins: list[Pin], provided: list[Pin], requested: dict[str, str]) -> str:
    out = [HEADER, "#\n# requested: "]
    out.append(", ".join(f"{n}=={v}" for n, v in sorted(requested.items())) or "(nothing)")
    out.append("\n")
    if provided:
        names = ", ".join(f"{p.name}=={p.version}" for p in provided)
        out.append(f"# provided by the platform, not installed: {names}\n")
    out.append("\n")
    out += [pin.line() for pin in pins]
    return "".join(out)


def format_in(requested: dict[str, str]) -> str:
    lines = "".join(f"{name}=={version}\n" for name, version in sorted(requested.items()))
    return (
        "# plugins.in - the plugins requested by the admins (services-ai plugins install)\n" + lines
    )


def parse_in(text: str, source: str = "plugins.in") -> dict[str, str]:
    """Parse a ``plugins.in``: one ``NAME==VERSION`` per line."""
    requested: dict[str, str] = {}
    for number, line in _logical_lines(text):
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise LockError(f"{source}, line {number}: {line!r} ({exc})") from None
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise LockError(f"{source}, line {number}: pin each plugin as NAME==VERSION")
        requested[canonicalize_name(requirement.name)] = specs[0].version
    return requested
