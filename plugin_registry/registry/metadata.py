"""The core metadata of an installed plugin distribution that the registry mirrors."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses
from importlib.metadata import Distribution, EntryPoint

from packaging.utils import canonicalize_name


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
        author = meta.get("Author") or ""
        email = ""
        # Builders such as hatchling write "Author-email: Name <email>" and no Author line.
        addresses = getaddresses([meta.get("Author-email") or ""])
        if addresses and addresses[0][1]:
            author = author or addresses[0][0]
            email = addresses[0][1]
        return cls(
            name=canonicalize_name(meta["Name"] or entry_point.name),
            version=meta["Version"] or "",
            summary=meta.get("Summary") or "",
            author=author,
            author_email=email,
            entry_point=entry_point.value,
        )
