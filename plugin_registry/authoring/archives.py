"""Reading untrusted ZIP archives safely: zip-slip, bombs, links and lying headers refused.

Decisions (see ``legacy_zip`` for the plugin layout read on top of this):

* Entry names: backslashes are read as separators (old Windows tools wrote them) and ``.`` and
  empty components are dropped *before* any check, so ``pkg\\..\\..\\x`` is a zip-slip and
  ``pkg/./main.py`` duplicates ``pkg/main.py``. Names that differ only in case are duplicates
  too (they collide on macOS and Windows). Components made only of dots (``..``, ``...``) are
  refused as zip-slip; so are absolute names (``/x``, ``C:x``, ``C:\\x``).
* Skipped silently and never read: ``__MACOSX/`` trees, ``.DS_Store``, ``Thumbs.db``,
  ``desktop.ini`` and ``._*`` files anywhere, ``__pycache__/`` folders, ``*.pyc``/``*.pyo``
  bytecode, and folder entries.
* ZIP bombs: the central directory is checked first (number of entries, counting folders and
  skipped entries; each entry's and the total declared uncompressed size; the compression
  ratio), then every entry read is read in 64 KiB chunks and reading stops as soon as the real
  size passes the declared size or a limit, since headers can lie. The ratio is only checked
  for entries larger than ``ZipLimits.ratio_min_size`` (1 MiB) uncompressed: small text files
  legitimately compress better than 100:1.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

MiB = 1024 * 1024
CHUNK_SIZE = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class ZipLimits:
    """What a legacy ZIP may hold; sizes are uncompressed bytes."""

    max_files: int = 2000  # entries in the central directory, folders and skipped ones included
    max_total_size: int = 50 * MiB
    max_file_size: int = 10 * MiB
    max_ratio: float = 100  # uncompressed / compressed size of one entry ...
    ratio_min_size: int = 1 * MiB  # ... checked only for entries larger than this


@dataclass(frozen=True)
class Entry:
    path: str  # normalised: forward slashes, no '.' or empty components
    info: zipfile.ZipInfo


class SafeZip:
    """One archive read under limits; ``fail(problem, entry)`` reports a refusal (and raises)."""

    def __init__(self, path: Path, limits: ZipLimits, fail: Callable[..., NoReturn]) -> None:
        self.path = path
        self.limits = limits
        self.fail = fail

    def open(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except FileNotFoundError:
            self.fail("no such file; check the path")
        except IsADirectoryError:
            self.fail("is a folder, not a ZIP archive; zip the plugin folder first")
        except OSError as exc:
            self.fail(f"cannot read the file ({exc.strerror or exc})")
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            self.fail(
                f"not a ZIP archive, or a corrupt one ({exc}); re-create it by zipping the "
                "plugin package folder"
            )

    def scan(self, archive: zipfile.ZipFile) -> list[Entry]:
        """Check every entry of the central directory; return the files to consider."""
        limits = self.limits
        infos = archive.infolist()
        if len(infos) > limits.max_files:
            self.fail(
                f"holds {len(infos)} entries; at most {limits.max_files} are allowed "
                "(ZipLimits.max_files)"
            )
        seen: dict[str, str] = {}
        kept: list[Entry] = []
        for info in infos:
            name = info.filename
            path = self._safe_path(name)
            if info.flag_bits & 0x1:
                self.fail(
                    f"entry {name!r} is encrypted; re-create the ZIP without a password", name
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                self.fail(
                    f"entry {name!r} is a symbolic link; replace it with the file it points "
                    "to and re-create the ZIP",
                    name,
                )
            is_dir = name.replace("\\", "/").endswith("/")
            key = path.casefold() + ("/" if is_dir else "")
            if key in seen:
                other = seen[key]
                also = f" (as {other!r})" if other != name else ""
                self.fail(
                    f"entry {name!r} appears more than once{also}; re-create the ZIP so that "
                    "every file appears once",
                    name,
                )
            seen[key] = name
            self._check_declared(info)
            if not is_dir and not skipped(path):
                kept.append(Entry(path, info))
        total = sum(info.file_size for info in infos)
        if total > limits.max_total_size:
            self.fail(
                f"entries declare {total} bytes uncompressed in total; the limit is "
                f"{limits.max_total_size} bytes (ZipLimits.max_total_size)"
            )
        paths = {entry.path for entry in kept}
        for entry in kept:
            parts = entry.path.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent in paths:
                    self.fail(
                        f"entry {parent!r} is both a file and a folder; re-create the ZIP",
                        parent,
                    )
        return kept

    def _safe_path(self, name: str) -> str:
        if not name:
            self.fail("an entry has an empty name; re-create the ZIP")
        if any(ord(char) < 32 or char == "\x7f" for char in name):
            self.fail(f"entry {name!r} has control characters in its name; rename it", name)
        raw = name.replace("\\", "/")
        if raw.startswith("/") or _DRIVE.match(raw):
            self.fail(
                f"entry {name!r} has an absolute path; re-create the ZIP with paths relative "
                "to the folder that holds the plugin package",
                name,
            )
        parts = [part for part in raw.split("/") if part not in ("", ".")]
        if any(part.rstrip(". ") == "" for part in parts):
            self.fail(
                f"entry {name!r} points outside the archive ('..' in its path, a zip-slip); "
                "re-create the ZIP from the plugin folder",
                name,
            )
        if not parts:
            self.fail(f"entry {name!r} has no file name; re-create the ZIP", name)
        return "/".join(parts)

    def _check_declared(self, info: zipfile.ZipInfo) -> None:
        limits, name = self.limits, info.filename
        if info.file_size > limits.max_file_size:
            self.fail(
                f"entry {name!r} declares {info.file_size} bytes uncompressed; the limit per "
                f"file is {limits.max_file_size} bytes (ZipLimits.max_file_size)",
                name,
            )
        self._check_ratio(info, info.file_size)

    def _check_ratio(self, info: zipfile.ZipInfo, size: int) -> None:
        limits = self.limits
        if size <= limits.ratio_min_size:
            return
        ratio = size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            self.fail(
                f"entry {info.filename!r} expands {ratio:.0f}:1 ({info.compress_size} -> "
                f"{size} bytes); the limit is {limits.max_ratio:g}:1 (ZipLimits.max_ratio): "
                "refusing a likely ZIP bomb",
                info.filename,
            )

    def read(self, archive: zipfile.ZipFile, root: str, files: list[Entry]) -> dict[str, bytes]:
        """Read the package's files (relative paths) in chunks, enforcing the limits."""
        limits = self.limits
        contents: dict[str, bytes] = {}
        total = 0
        for entry in sorted(files, key=lambda e: e.path):
            info, name = entry.info, entry.info.filename
            data = bytearray()
            try:
                with archive.open(info) as stream:
                    while chunk := stream.read(CHUNK_SIZE):
                        data += chunk
                        total += len(chunk)
                        if len(data) > info.file_size:
                            self.fail(
                                f"entry {name!r} holds more data than its header declares "
                                f"({info.file_size} bytes); the ZIP is corrupt or crafted: "
                                "re-create it",
                                name,
                            )
                        if len(data) > limits.max_file_size:
                            self.fail(
                                f"entry {name!r} is larger than {limits.max_file_size} bytes "
                                "(ZipLimits.max_file_size)",
                                name,
                            )
                        if total > limits.max_total_size:
                            self.fail(
                                f"the files hold more than {limits.max_total_size} bytes "
                                "uncompressed in total (ZipLimits.max_total_size)",
                                name,
                            )
                        self._check_ratio(info, len(data))
            except NotImplementedError as exc:
                self.fail(
                    f"entry {name!r} uses an unsupported compression method ({exc}); "
                    "re-create the ZIP with deflate",
                    name,
                )
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
                self.fail(f"entry {name!r} is corrupt ({exc}); re-create the ZIP", name)
            if len(data) != info.file_size:
                self.fail(
                    f"entry {name!r} holds {len(data)} bytes, its header declares "
                    f"{info.file_size}; the ZIP is corrupt: re-create it",
                    name,
                )
            contents[entry.path[len(root) + 1 :] if root else entry.path] = bytes(data)
        return contents


def skipped(path: str) -> bool:
    """Entries that archivers add and a plugin never needs: skipped, never read."""
    parts = path.split("/")
    last = parts[-1]
    return (
        parts[0] == "__MACOSX"
        or "__pycache__" in parts
        or last in _JUNK_NAMES
        or last.startswith("._")
        or last.endswith((".pyc", ".pyo"))
    )


#: Limits for a wheel that is checked before it is published: roomier than a legacy ZIP's, since
#: a wheel may carry data files, but a small wheel that expands to gigabytes is still refused.
WHEEL_LIMITS = ZipLimits(max_file_size=50 * MiB, max_total_size=200 * MiB)


class ArchiveRefused(Exception):
    """An archive broke a rule of :class:`SafeZip`; ``problem`` says which, ``entry`` where."""

    def __init__(self, problem: str, entry: str = "") -> None:
        self.problem = problem
        self.entry = entry
        super().__init__(problem)


def _refuse(problem: str, entry: str = "") -> NoReturn:
    raise ArchiveRefused(problem, entry)


def extract_safely(path: Path, target: Path, limits: ZipLimits = WHEEL_LIMITS) -> list[str]:
    """Extract every file of the archive at ``path`` into ``target`` under ``limits``.

    Return the extracted paths (relative, ``/``-separated); raise ArchiveRefused for a zip-slip,
    a link, an encrypted or lying entry, or a bomb, before anything beyond the limits is read.
    """
    archive = SafeZip(path, limits, _refuse)
    with archive.open() as opened:
        entries = archive.scan(opened)
        contents = archive.read(opened, "", entries)
    for name, data in contents.items():
        destination = target.joinpath(*name.split("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
    return sorted(contents)
