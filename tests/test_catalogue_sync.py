"""Refreshing the catalogue against a real devpi-server: what is read, what is kept.

The refresh runs in this process against an index of this module (uploads and deletions here
do not disturb the session's index); every request the catalogue sends is counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin_registry.distribution.catalogue import (
    choose,
    forget_index_serial,
    set_withdrawn,
    sync_catalogue,
)
from plugin_registry.distribution.index import (
    IndexClient,
    IndexConfig,
    IndexUnavailable,
    UnknownProject,
)
from plugin_registry.distribution.wheelfile import wheel_contents, wheel_filename, write_wheel
from plugin_registry.errors import RegistryError
from plugin_registry.registry.models import CatalogueVersion
from services_ai.testing.wheels import free_port
from tests.conftest import PluginIndex, running_index

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db]


def plugin_wheel(
    folder: Path, name: str, version: str = "1.0.0", permissions: tuple[str, ...] = ("read_leads",)
) -> Path:
    """A small real plugin wheel (entry point and manifest), without a build backend."""
    package = name.replace("-", "_")
    manifest = {"hook_specs": ["lead_created"], "permissions": list(permissions), "settings": []}
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {name} {version}\n"
        "Requires-Dist: services-ai>=0.1\n"
    )
    members = wheel_contents(
        name, version,
        [
            (f"{package}/__init__.py", b""),
            (f"{package}/main.py", f"# {permissions}\ndef lead_created(lead): pass\n".encode()),
            (f"{package}/manifest.json", json.dumps(manifest).encode()),
        ],
        metadata=metadata, generator="tests",
        entry_points=f"[services_ai]\n{name} = {package}.main\n",
    )  # fmt: skip
    return write_wheel(folder / version / wheel_filename(name, version), members)


class CountingClient(IndexClient):
    """An IndexClient that records every request it sends."""

    def __init__(self, config: IndexConfig) -> None:
        super().__init__(config)
        self.sent: list[str] = []

    def _get(self, url, accept="*/*"):
        self.sent.append(url)
        return super()._get(url, accept)

    def _request(self, url, **kwargs):
        self.sent.append(url)
        return super()._request(url, **kwargs)

    def reset(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


def wheels(sent: list[str]) -> list[str]:
    return [url for url in sent if url.endswith(".whl")]


def pages(sent: list[str]) -> list[str]:
    return [url for url in sent if "/+simple/" in url]


class Index:
    def __init__(self, index: PluginIndex, folder: Path) -> None:
        self.index = index
        self.folder = folder
        self.config = IndexConfig(
            server=f"http://127.0.0.1:{index.port}", user="services-ai",
            password=index.password, embedded=False,
        )  # fmt: skip
        self.root = IndexClient(
            IndexConfig(
                server=self.config.server, user="root", embedded=False,
                password=(index.runner.home / "index" / "root-password").read_text().strip(),
            )
        )  # fmt: skip

    def publish(self, name: str, version: str = "1.0.0", index: str = "stable", **kw) -> None:
        IndexClient(self.config).upload(plugin_wheel(self.folder, name, version, **kw), index)

    def delete(self, path: str) -> None:
        """Delete a project or a version (``?force``: the stable index is not volatile)."""
        url = f"{self.config.index_url()}/{path}?force"
        status, answer = self.root._request(url, method="DELETE", auth=True)
        assert status == 200, (status, answer)

    def projects(self) -> int:
        return len(IndexClient(self.config).projects())


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[Index]:
    with running_index(tmp_path_factory.mktemp("catalogue-index")) as running:
        index = Index(running, tmp_path_factory.mktemp("catalogue-wheels"))
        for name in ("alpha", "beta", "gamma"):
            index.publish(name)
        index.publish("beta", "1.1.0", permissions=("read_leads", "read_bookings"))
        yield index


@pytest.fixture
def client(index) -> CountingClient:
    forget_index_serial()  # every test starts from its own empty catalogue
    return CountingClient(index.config)


def rows(name: str) -> dict[str, CatalogueVersion]:
    return {row.version: row for row in CatalogueVersion.objects.filter(name=name)}


def test_a_warm_refresh_with_nothing_changed_downloads_no_wheel(index, client):
    projects = index.projects()
    cold = sync_catalogue(client)
    sent = client.reset()
    assert {"alpha==1.0.0", "beta==1.0.0", "beta==1.1.0", "gamma==1.0.0"} <= set(cold.new)
    assert len(pages(sent)) == projects
    assert len(wheels(sent)) == CatalogueVersion.objects.count()  # each new version once
    assert rows("beta")["1.1.0"].permissions == ["read_leads", "read_bookings"]

    # Nothing changed on the server: the project list is the only request.
    warm = sync_catalogue(client)
    assert warm.unchanged_index and not (warm.new or warm.changed or warm.gone)
    assert len(client.reset()) == 1

    # Something changed elsewhere on the server (the dev index): one page per project, and no
    # wheel, since every file is mirrored already.
    index.publish("elsewhere", index="dev")
    warm = sync_catalogue(client)
    sent = client.reset()
    assert not warm.unchanged_index and not (warm.new or warm.changed or warm.gone)
    assert wheels(sent) == [] and len(pages(sent)) == projects
    assert len(sent) == projects + 1


def test_compatibility_is_recomputed_on_every_refresh_even_with_nothing_changed(client):
    sync_catalogue(client)
    client.reset()
    CatalogueVersion.objects.filter(name="alpha").update(compatible=False, compatibility="stale")
    report = sync_catalogue(client)
    assert report.unchanged_index and len(client.reset()) == 1  # the project list only
    alpha = rows("alpha")["1.0.0"]
    assert alpha.compatible and alpha.compatibility.startswith("services-ai>=0.1 admits ")


def test_a_new_version_appears_after_a_refresh(index, client):
    index.publish("delta")
    sync_catalogue(client)
    client.reset()
    index.publish("delta", "2.0.0", permissions=("read_leads", "read_bookings"))
    report = sync_catalogue(client)
    assert report.new == ["delta==2.0.0"]
    assert [url.rsplit("/", 1)[1] for url in wheels(client.reset())] == [
        "delta-2.0.0-py3-none-any.whl"
    ]
    assert choose("delta", None).version == "2.0.0"
    assert rows("delta")["2.0.0"].permissions == ["read_leads", "read_bookings"]


def test_a_project_removed_from_the_index_is_marked_unavailable(index, client):
    index.publish("epsilon")
    index.publish("epsilon", "1.1.0")
    sync_catalogue(client)
    client.reset()
    assert choose("epsilon", None).version == "1.1.0"

    index.delete("epsilon/1.1.0")
    report = sync_catalogue(client)
    assert report.gone == ["epsilon==1.1.0"] and wheels(client.reset()) == []
    assert choose("epsilon", None).version == "1.0.0"

    index.delete("epsilon")
    report = sync_catalogue(client)
    assert report.gone == ["epsilon==1.0.0"]
    assert not any(row.available for row in rows("epsilon").values())
    with pytest.raises(UnknownProject, match="no plugin named 'epsilon' in the catalogue"):
        choose("epsilon", None)

    # Refreshing the named project says the same.
    sync_catalogue(client, ["epsilon"])
    assert not any(row.available for row in rows("epsilon").values())


def test_a_withdrawn_version_stays_withdrawn(index, client):
    index.publish("zeta")
    sync_catalogue(client)
    set_withdrawn("zeta", "1.0.0", True, "leaks lead emails", actor="test")
    for _ in range(2):  # the index unchanged, then changed elsewhere
        sync_catalogue(client)
        index.publish("zeta-elsewhere", index="dev")
    assert rows("zeta")["1.0.0"].withdrawn

    # Even when the version is replaced on the index by a file with other content.
    index.delete("zeta/1.0.0")
    index.publish("zeta", permissions=("read_leads", "read_bookings"))
    client.reset()
    report = sync_catalogue(client)
    assert report.changed == ["zeta==1.0.0"] and len(wheels(client.reset())) == 1
    zeta = rows("zeta")["1.0.0"]
    assert zeta.withdrawn and zeta.withdrawn_reason == "leaks lead emails"
    assert zeta.permissions == ["read_leads", "read_bookings"]
    with pytest.raises(RegistryError, match=r"zeta==1.0.0 cannot be installed: withdrawn"):
        choose("zeta", "1.0.0")


def test_a_package_of_the_platform_is_never_installable(index, client):
    index.publish("pluggy", "99.0")
    sync_catalogue(client)
    pluggy = rows("pluggy")["99.0"]
    assert not pluggy.compatible and not pluggy.installable
    assert "is a package of the platform itself" in pluggy.compatibility


def test_an_index_that_is_down_is_named_and_nothing_changes(index, client):
    sync_catalogue(client)
    before = list(CatalogueVersion.objects.values_list("name", "version", "available"))
    down = IndexConfig(server=f"http://127.0.0.1:{free_port()}", user="u", password="p",
                       embedded=False)  # fmt: skip
    for projects in (None, ["alpha"]):
        with pytest.raises(IndexUnavailable, match=r"the plugin index at .* is not reachable"):
            sync_catalogue(IndexClient(down), projects)
    assert list(CatalogueVersion.objects.values_list("name", "version", "available")) == before
