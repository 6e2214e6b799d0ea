"""The one wheel writer: package files plus ``.dist-info`` (METADATA, WHEEL, entry points, RECORD).

Used for wheels converted from legacy plugin ZIPs and for the metadata-only wheels of the
platform's own packages. Wheels are reproducible (fixed timestamps and order: the same input
gives the same bytes) and written atomically (a temporary file renamed at the end, so a failed
write leaves nothing behind).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import stat
import tempfile
import zipfile
from pathlib import Path

WHEEL_TAG = "py3-none-any"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def wheel_filename(name: str, version: str, tag: str = WHEEL_TAG) -> str:
    """``name-version-tag.whl`` with the name normalised as wheels spell it."""
    return f"{dist_info_stem(name, version)}-{tag}.whl"


def dist_info_stem(name: str, version: str) -> str:
    return f"{name.replace('-', '_')}-{version}"


def wheel_contents(
    name: str,
    version: str,
    files: list[tuple[str, bytes]],
    *,
    metadata: str,
    generator: str,
    entry_points: str = "",
    tag: str = WHEEL_TAG,
) -> list[tuple[str, bytes]]:
    """Return every member of the wheel, ``.dist-info`` and RECORD (with hashes) included."""
    dist_info = f"{dist_info_stem(name, version)}.dist-info"
    wheel = f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: true\nTag: {tag}\n"
    out = [
        *files,
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", wheel.encode()),
    ]
    if entry_points:
        out.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in out:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        writer.writerow([path, f"sha256={digest.decode()}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    out.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    return out


def write_wheel(target: Path, members: list[tuple[str, bytes]]) -> Path:
    """Write ``members`` to the wheel file ``target`` atomically; raise OSError on failure."""
    temporary = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        with os.fdopen(handle, "wb") as stream, zipfile.ZipFile(stream, "w") as wheel:
            for path, data in members:
                info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                wheel.writestr(info, data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise
    return target
