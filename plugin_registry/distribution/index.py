"""A small client for the plugin index: a devpi-server, read through PEP 691, written with tokens.

Where the index is: ``SERVICES_AI_INDEX_URL`` (the stable index, e.g.
``http://127.0.0.1:3141/services-ai/stable``) with ``SERVICES_AI_INDEX_USER`` and
``SERVICES_AI_INDEX_PASSWORD``; without them, the embedded index that ``services-ai index init``
created under ``SERVICES_AI_HOME/index``.

(Over 400 lines: the one client of the index keeps every request, its errors and its connections
in one place; the server it talks to is ``index_server``.)
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PathDistribution
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from plugin_registry.errors import RegistryError
from plugin_registry.registry.metadata import header
from services_ai import conf

PEP691 = "application/vnd.pypi.simple.v1+json"
DEFAULT_USER = "services-ai"
DEFAULT_PORT = 3141
INDEXES = ("stable", "dev")


class IndexUnavailable(RegistryError):
    """The index could not be reached: nothing was changed."""


class IndexRefused(RegistryError):
    """The index answered with an error."""


class UnknownProject(RegistryError):
    """No project of that name is on the index."""


def index_dir() -> Path:
    """Return the folder of the embedded index (server data, credentials, log, pid)."""
    return conf.home() / "index"


def embedded_port() -> int:
    path = index_dir() / "port"
    if path.exists():
        return int(path.read_text().strip())
    return conf.from_env("SERVICES_AI_INDEX_PORT", str(DEFAULT_PORT), int)


@dataclass(frozen=True)
class IndexConfig:
    """Where the plugin index is and who the platform is on it."""

    server: str  # e.g. http://127.0.0.1:3141
    user: str
    password: str
    stable: str = "stable"
    dev: str = "dev"
    embedded: bool = True

    @classmethod
    def load(cls) -> IndexConfig:
        url = os.environ.get("SERVICES_AI_INDEX_URL", "").rstrip("/")
        password = os.environ.get("SERVICES_AI_INDEX_PASSWORD", "")
        if url:
            server, _, path = url.rpartition("/")
            server, _, user = server.rpartition("/")
            if not server.startswith(("http://", "https://")) or not user or not path:
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(
                    f"SERVICES_AI_INDEX_URL={url!r} is not valid: expected "
                    "http(s)://HOST:PORT/USER/INDEX, the URL of a devpi index"
                )
            return cls(
                server=server,
                user=os.environ.get("SERVICES_AI_INDEX_USER", user),
                password=password,
                stable=path,
                dev=os.environ.get("SERVICES_AI_INDEX_DEV", "dev"),
                embedded=False,
            )
        secret = index_dir() / "password"
        if not password and secret.exists():
            password = secret.read_text().strip()
        return cls(
            server=f"http://127.0.0.1:{embedded_port()}",
            user=os.environ.get("SERVICES_AI_INDEX_USER", DEFAULT_USER),
            password=password,
        )

    def index_url(self, index: str = "stable") -> str:
        name = {"stable": self.stable, "dev": self.dev}.get(index)
        if name is None:
            raise RegistryError(f"unknown index {index!r}: use one of {', '.join(INDEXES)}")
        return f"{self.server}/{self.user}/{name}"

    def simple_url(self, index: str = "stable") -> str:
        return f"{self.index_url(index)}/+simple/"


@dataclass(frozen=True)
class IndexFile:
    """One wheel on the index, as PEP 691 lists it."""

    project: str
    version: str
    filename: str
    url: str
    sha256: str
    requires_python: str = ""


@dataclass(frozen=True)
class IndexListing:
    """The projects of an index and the point in the server's history they were read at.

    devpi counts every change of the whole server in one serial (``X-Devpi-Serial``; its
    ``X-Devpi-Uuid`` names the server, whose serials start again at 0 if it is set up anew): the
    same (server, serial) twice means that nothing on the server changed in between.
    """

    projects: list[str]
    server: str = ""
    serial: str = ""


_REDIRECTS = (301, 302, 303, 307, 308)


class IndexClient:
    """Reads and writes one devpi server; every failure becomes a RegistryError with the cause.

    The reads of the catalogue (``listing``, ``files``, ``download``) use one connection per
    thread, kept open while the server allows it (devpi closes it after a streamed PEP 691 page;
    listings and wheels keep it), so a pool of threads can read many projects at once. The other
    requests open one connection each. ``close()`` closes the kept ones.
    """

    def __init__(self, config: IndexConfig | None = None, timeout: float = 15.0) -> None:
        self.config = config or IndexConfig.load()
        self.timeout = timeout
        self._token: str | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[http.client.HTTPConnection] = set()
        self._proxies = urllib.request.getproxies()  # read once, as urllib's own opener does

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connections (they are opened again when needed)."""
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.close()

    # -- transport -----------------------------------------------------------------------

    def _request(
        self,
        url: str,
        *,
        method: str = "GET",
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = False,
    ) -> tuple[int, bytes]:
        headers = dict(headers or {})
        if auth:
            token = self.login()
            credentials = f"{self.config.user}:{token}".encode()
            headers["X-Devpi-Auth"] = base64.b64encode(credentials).decode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            raise self._unreachable(getattr(exc, "reason", exc)) from None

    def _unreachable(self, reason: object) -> IndexUnavailable:
        hint = (
            "start it with `services-ai index start`"
            if self.config.embedded
            else "check SERVICES_AI_INDEX_URL"
        )
        return IndexUnavailable(
            f"the plugin index at {self.config.server} is not reachable ({reason}); {hint}"
        )

    def _get(self, url: str, accept: str = "*/*") -> tuple[int, bytes, Mapping[str, str]]:
        """GET ``url`` on this thread's kept-alive connection; follow redirects.

        Behind a proxy configured in the environment (``http_proxy``, ...) it goes through
        urllib, which honours it, instead.
        """
        for _ in range(5):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in self._proxies and not urllib.request.proxy_bypass(parts.netloc):
                status, body = self._request(url, headers={"Accept": accept})
                return status, body, {}
            status, body, headers = self._get_once(parts, accept)
            location = headers.get("location")
            if status not in _REDIRECTS or not location:
                return status, body, headers
            url = urllib.parse.urljoin(url, location)
        raise IndexRefused(f"{url}: too many redirects")

    def _get_once(
        self, parts: urllib.parse.SplitResult, accept: str
    ) -> tuple[int, bytes, Mapping[str, str]]:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "connections", {}
        )
        key = (parts.scheme, parts.netloc)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        for attempt in (1, 2):
            connection = pool.get(key)
            if connection is None:
                factory = (
                    http.client.HTTPSConnection
                    if parts.scheme == "https"
                    else http.client.HTTPConnection
                )
                connection = pool[key] = factory(parts.netloc, timeout=self.timeout)
            reused = connection.sock is not None
            if not reused:  # connects now (again, if it was closed): close() must see it
                with self._lock:
                    self._connections.add(connection)
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                if reused and attempt == 1:
                    continue  # the server closed the idle connection meanwhile: a new one
                raise self._unreachable(exc) from None
            if response.will_close:
                connection.close()
            return response.status, body, {k.lower(): v for k, v in response.getheaders()}
        raise AssertionError("unreachable")

    def _json(self, url: str, accept: str = "application/json") -> tuple[int, Any]:
        status, body = self._request(url, headers={"Accept": accept})
        return status, self._decode(url, status, body)

    def ping(self) -> None:
        """Raise IndexUnavailable unless the server answers."""
        status, _ = self._json(f"{self.config.server}/+api")
        if status != 200:
            raise IndexRefused(f"{self.config.server}/+api answered HTTP {status}")

    def login(self) -> str:
        """Return a login token (one password check per client; a token is ~10x cheaper)."""
        if self._token is None:
            if not self.config.password:
                raise RegistryError(
                    f"no password for index user {self.config.user!r}: set "
                    "SERVICES_AI_INDEX_PASSWORD (or run `services-ai index init` for the "
                    "embedded index)"
                )
            body = json.dumps({"user": self.config.user, "password": self.config.password})
            status, answer = self._request(
                f"{self.config.server}/+login",
                method="POST",
                data=body.encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            if status != 200:
                raise IndexRefused(
                    f"login to {self.config.server} as {self.config.user!r} failed "
                    f"(HTTP {status}): "
                    + (
                        "check the index password"
                        if status < 500
                        else "the server failed; a devpi replica does so while its primary "
                        "is unreachable (writes go to the primary)"
                    )
                )
            self._token = json.loads(answer)["result"]["password"]
        return self._token

    # -- reading (PEP 691) ---------------------------------------------------------------

    def projects(self, index: str = "stable") -> list[str]:
        """Return the normalised names of the projects uploaded to the index itself.

        Projects of its bases (a PyPI mirror, say) are not plugins of this platform: listing
        them would mean reading all of PyPI.
        """
        return self.listing(index).projects

    def listing(self, index: str = "stable") -> IndexListing:
        """Return the index's own projects with the server's serial at the time (one request)."""
        url = self.config.index_url(index)
        status, body, headers = self._get(url, "application/json")
        data = self._decode(url, status, body)
        if status != 200 or not isinstance(data, dict) or "result" not in data:
            raise IndexRefused(f"listing {url} answered HTTP {status}")
        return IndexListing(
            projects=sorted(canonicalize_name(n) for n in data["result"].get("projects", [])),
            server=headers.get("x-devpi-uuid", ""),
            serial=headers.get("x-devpi-serial", ""),
        )

    def _decode(self, url: str, status: int, body: bytes) -> Any:
        if status == 404:
            return None
        try:
            return json.loads(body) if body else None
        except ValueError:
            raise IndexRefused(
                f"the plugin index answered {url} with HTTP {status} and no JSON: is "
                f"{self.config.server} a devpi-server?"
            ) from None

    def files(self, project: str, index: str = "stable") -> list[IndexFile]:
        """Return the wheels of one project; raise UnknownProject if the index has none."""
        name = canonicalize_name(project)
        url = f"{self.config.simple_url(index)}{name}/"
        status, body, _ = self._get(url, PEP691)
        data = self._decode(url, status, body)
        if status == 404 or (status == 200 and not (data or {}).get("files")):
            raise UnknownProject(
                f"no plugin named {project!r} on the index {self.config.index_url(index)}"
            )
        if status != 200 or not isinstance(data, dict):
            raise IndexRefused(f"{url} answered HTTP {status}")
        found = []
        for item in data["files"]:
            try:
                dist, version, _, _ = parse_wheel_filename(item["filename"])
            except InvalidWheelFilename:
                continue  # sdists and docs: the platform installs wheels only
            found.append(
                IndexFile(
                    project=canonicalize_name(dist),
                    version=str(version),
                    filename=item["filename"],
                    url=urllib.parse.urljoin(url, item["url"]),
                    sha256=item.get("hashes", {}).get("sha256", ""),
                    requires_python=item.get("requires-python") or "",
                )
            )
        return found

    def download(self, file: IndexFile) -> bytes:
        """Return a wheel's bytes, checked against the hash the index listed."""
        status, body, _ = self._get(file.url)
        if status != 200:
            raise IndexRefused(f"downloading {file.filename} answered HTTP {status}")
        if file.sha256 and hashlib.sha256(body).hexdigest() != file.sha256:
            raise IndexRefused(
                f"{file.filename}: the downloaded file does not match the index's sha256"
            )
        return body

    # -- writing -------------------------------------------------------------------------

    def upload(self, wheel: Path, index: str = "stable") -> str:
        """Upload one wheel; return "uploaded" or "already there" (identical file)."""
        try:
            content = wheel.read_bytes()
        except OSError as exc:
            raise RegistryError(f"{wheel}: cannot read it ({exc.strerror})") from None
        metadata = open_wheel(content, wheel.name)[1].metadata
        digest = hashlib.sha256(content).hexdigest()
        # Whether the very file is there already, from the index's listing (devpi answers 200
        # to an identical re-upload too, saying so only in prose).
        try:
            listed = {f.filename: f.sha256 for f in self.files(metadata["Name"], index)}
        except UnknownProject:
            listed = {}
        if listed.get(wheel.name) == digest:
            return "already there"
        fields: list[tuple[str, str]] = [
            (":action", "file_upload"),
            ("protocol_version", "1"),
            ("filetype", "bdist_wheel"),
            ("pyversion", "py3"),
            ("sha256_digest", digest),
        ]
        for key in ("Name", "Version", "Summary", "Author", "Author-email", "Requires-Python"):
            value = header(metadata, key)
            if value:
                fields.append((key.lower().replace("-", "_"), value))
        fields += [("requires_dist", value) for value in metadata.get_all("Requires-Dist") or []]
        body, content_type = _multipart(fields, "content", wheel.name, content)
        url = self.config.index_url(index) + "/"
        status, answer = self._request(
            url, method="POST", data=body, headers={"Content-Type": content_type}, auth=True
        )
        text = answer.decode(errors="replace")
        if status == 200:
            return "uploaded"
        if status == 409:
            raise IndexRefused(
                f"{wheel.name} is already on {self.config.index_url(index)} with other content; "
                "a published version is never replaced: raise the version and publish again"
            )
        raise IndexRefused(f"uploading {wheel.name} to {url} answered HTTP {status}: {text[:300]}")

    def push(self, project: str, version: str, source: str = "dev", target: str = "stable") -> None:
        """Copy one release from one of the platform's indexes to another (promotion)."""
        body = json.dumps(
            {
                "name": canonicalize_name(project),
                "version": version,
                "targetindex": f"{self.config.user}/{getattr(self.config, target)}",
            }
        )
        status, answer = self._request(
            self.config.index_url(source),
            method="PUSH",
            data=body.encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            auth=True,
        )
        if status != 200:
            try:
                message = json.loads(answer).get("message", "")
            except ValueError:
                message = answer.decode(errors="replace")[:300]
            raise IndexRefused(f"promoting {project}=={version} to {target} failed: {message}")


def open_wheel(data: bytes, filename: str) -> tuple[zipfile.ZipFile, PathDistribution]:
    """Open a wheel's bytes; return the archive and its distribution (metadata, entry points)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise RegistryError(f"{filename}: not a wheel (not a zip archive)") from None
    infos = [
        n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1
    ]
    if len(infos) != 1:
        raise RegistryError(f"{filename}: not a wheel (no single .dist-info/METADATA)")
    info_dir = zipfile.Path(archive, infos[0].rsplit("/", 1)[0] + "/")
    return archive, PathDistribution(info_dir)


def _multipart(
    fields: list[tuple[str, str]], file_field: str, filename: str, content: bytes
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for key, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
