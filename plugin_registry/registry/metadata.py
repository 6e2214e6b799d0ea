"""The core metadata of an installed plugin distribution that the registry mirrors."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses
from importlib.metadata import Distribution, EntryPoint, PackageMetadata

from packaging.utils import canonicalize_name


def header(meta: PackageMetadata, name: str) -> str | None:
    """Return the first ``name`` header of core metadata, or ``None`` when there is none.

    What ``email.message.Message.get`` answers; the ``PackageMetadata`` protocol declares only
    ``[]`` and ``get_all``, so it is read through ``get_all``.
    """
    values = meta.get_all(name)
    if not values:
        return None
    first: str = values[0]
    return first


@dataclass(frozen=True)
class DistMetadata:
    name: str  # normalised
    version: str
    summary: str
    author: str
    author_email: str
    entry_point: str

    @classmethod
    def of(cls, dist: Distribution, entry_point: EntryPoint) -> DistMetadata:
        meta = dist.metadata
        author = header(meta, "Author") or ""
        email = ""
        # Builders such as hatchling write "Author-email: Name <email>" and no Author line.
        addresses = getaddresses([header(meta, "Author-email") or ""])
        if addresses and addresses[0][1]:
            author = author or addresses[0][0]
            email = addresses[0][1]
        return cls(
            name=canonicalize_name(meta["Name"] or entry_point.name),
            version=meta["Version"] or "",
            summary=header(meta, "Summary") or "",
            author=author,
            author_email=email,
            entry_point=entry_point.value,
        )
