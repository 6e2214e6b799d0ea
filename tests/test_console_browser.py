"""The web console in headless Chromium, against a real server process and a real devpi.

The server runs as its own process (``services-ai runserver``), like in production, beside a
real ``services-ai worker`` that runs the console's operations (catalogue refresh, install,
uninstall) from the queue; each follows the new environment generation in its own process,
never in the test process. Screenshots of the main pages land in docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from services_ai.testing.databases import Rows
from services_ai.testing.processes import stop_group
from services_ai.testing.wheels import free_port
from tests.conftest import SAI
from tests.plugin_projects import GREETER_V1, REPO, build_wheel, write_plugin_project

pytestmark = [pytest.mark.subprocess, pytest.mark.browser]
SHOTS = REPO / "docs" / "screenshots"


class Server:
    def __init__(self, sai: SAI, log: Path):
        self.sai = sai
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sai.executable, "runserver", "--noreload", "--insecure", f"127.0.0.1:{self.port}"],
            env=sai.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2)
                return
            except (urllib.error.URLError, OSError):
                assert self.process.poll() is None, log.read_text()
                time.sleep(0.2)
        raise AssertionError(f"the server did not start:\n{log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Worker:
    """``services-ai worker`` on the server's home and database, in a process group of its own."""

    def __init__(self, sai: SAI, log: Path):
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sai.executable, "worker"],
            env=sai.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        stop_group(self.process)
        self.log.close()


@pytest.fixture
def console(tmp_path, plugin_index):
    sai = SAI(tmp_path / "home", [], **plugin_index.env())
    sai("migrate", "--no-input", "-v0")
    sai("ensure_admin")
    sai("demo_data")
    worker = Worker(sai, tmp_path / "worker.log")
    try:
        server = Server(sai, tmp_path / "server.log")
        try:
            yield server
        finally:
            server.stop()
    finally:
        worker.stop()


def login(page, server: Server) -> None:
    password = (server.sai.home / "admin-password").read_text().strip()
    page.goto(f"{server.url}/console/")
    assert "/accounts/login/" in page.url  # every page needs a staff user
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/catalogue/"))


def wait_for_operation(page) -> str:
    page.wait_for_selector("#operation.succeeded, #operation.failed", timeout=60_000)
    return page.inner_text("#operation")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_console_walkthrough(console, page, tmp_path):
    sai = console.sai
    rows = Rows("", sai.home)
    login(page, console)

    # The catalogue lists what is on the index, with versions and what each asks for.
    assert "No plugins" in page.inner_text("table.list")
    page.click("text=Refresh from the index")
    assert "Catalogue refreshed:" in wait_for_operation(page)  # run by the worker
    page.goto(f"{console.url}/console/catalogue/")
    row = page.locator("tr[data-plugin=greeter]")
    assert "2.0.0" in row.inner_text() and "1.0.0" in row.inner_text()
    assert "permissions: read_leads, read_bookings" in row.inner_text()
    future = page.locator("tr[data-plugin=future-plugin]").inner_text()
    assert "incompatible" in future
    page.fill("input[name=q]", "greet")
    page.click("form[role=search] button")
    found = page.locator("tr[data-plugin]").evaluate_all(
        "rows => rows.map(row => row.dataset.plugin)"
    )
    assert "greeter" in found and "lead-scorer" not in found  # the index is shared by tests
    assert all("greet" in name for name in found)
    shot(page, "catalogue")

    # Install greeter at a chosen (older) version; the confirmation shows its permissions.
    page.select_option("tr[data-plugin=greeter] select[name=version]", "1.0.0")
    page.click("tr[data-plugin=greeter] button[type=submit]")
    assert "Install greeter 1.0.0" in page.inner_text("h1")
    assert "new: not granted until you grant it" in page.inner_text("ul.permissions")
    shot(page, "install-confirmation")
    page.click("button.primary")
    result = wait_for_operation(page)
    assert "Generation 1 is active." in result and "+ greeter 1.0.0" in result

    # Grant its permission and enable it on its page.
    page.goto(f"{console.url}/console/plugins/greeter/")
    assert "not granted" in page.inner_text("tr[data-permission=read_leads]")
    page.click("tr[data-permission=read_leads] button")
    assert "Granted read_leads." in page.inner_text(".messages")
    assert "granted" in page.inner_text("tr[data-permission=read_leads]")
    page.click("form[action$='/enable/'] button")
    assert page.inner_text("#state") == "enabled"

    # Settings generated from the manifest; a wrong value shows the error and stores nothing.
    sai("plugins", "install", "lead-scorer", "booking-widget", "evil-widget", "broken-widget",
        "slow-widget")  # fmt: skip
    page.goto(f"{console.url}/console/plugins/lead-scorer/")
    page.fill("input[name=threshold]", "150")
    page.click("form.settings button[type=submit]")
    invalid = page.locator(".field.invalid")
    assert invalid.count() == 1 and invalid.locator("input[name=threshold]").count() == 1
    assert "must be at most 100" in invalid.inner_text()
    assert rows.all("SELECT key FROM plugin_registry_pluginsetting") == []
    page.fill("input[name=threshold]", "75")
    page.click("form.settings button[type=submit]")
    assert "Settings saved." in page.inner_text(".messages")
    assert rows.one("SELECT value FROM plugin_registry_pluginsetting WHERE key='threshold'") in (
        "75", "75.0", 75, 75.0,
    )  # fmt: skip
    shot(page, "plugin-page")

    # Dashboard: one card per widget, each in its own request; hostile HTML runs nothing; a
    # failing widget and a slow one only affect their own cards.
    for name in ("booking-widget", "evil-widget", "broken-widget", "slow-widget"):
        if name == "booking-widget":
            sai("plugins", "grant", name, "read_bookings")
        sai("plugins", "enable", name)
    page.goto(f"{console.url}/")
    page.wait_for_selector("section[data-plugin=evil-widget] b.plugin-kept")
    page.wait_for_selector("section[data-plugin=booking-widget] h2:not(:text('booking-widget'))")
    assert "widget exploded" in page.inner_text("section[data-plugin=broken-widget]")
    evil = page.locator("section[data-plugin=evil-widget]")
    assert "<script" not in evil.inner_html() and "onerror" not in evil.inner_html()
    assert "javascript:" not in evil.inner_html()
    evil.get_by_text("click me").click()
    evil.get_by_text("click", exact=True).click()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The server answers for the slow widget once its budget (5 s) is spent, with a retry.
    page.wait_for_selector(
        "section[data-plugin=slow-widget]:has-text('This widget did not answer in time.')",
        timeout=20_000,
    )
    assert page.locator("section[data-plugin=slow-widget] button").inner_text() == "Try again"
    assert "bold ok" in evil.inner_text()  # the other cards are unaffected
    shot(page, "dashboard")

    # Upload a wheel: it is checked, published to the index and shows up in the catalogue.
    project = write_plugin_project(
        tmp_path / "src", "uploaded-plugin", GREETER_V1,
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    )  # fmt: skip
    wheel = build_wheel(project, tmp_path / "dist")
    bogus = tmp_path / "bogus-1.0-py3-none-any.whl"
    bogus.write_text("not a zip")
    page.goto(f"{console.url}/console/upload/")
    page.set_input_files("input[name=wheel]", str(bogus))
    page.click("button.primary")
    assert "not a wheel (not a zip archive)" in page.inner_text("main form")
    page.set_input_files("input[name=wheel]", str(wheel))
    page.click("button.primary")
    assert "Published uploaded-plugin 1.0.0; it is in the catalogue now." in page.inner_text(
        ".messages"
    )
    assert page.locator("tr[data-plugin=uploaded-plugin]").count() == 1

    # Export leads as CSV (with a filter).
    page.goto(f"{console.url}/exports/")
    with page.expect_download() as download_info:
        page.click("form.exports button.primary")
    csv_text = Path(download_info.value.path()).read_text()
    lines = csv_text.strip().splitlines()
    assert lines[0] == "id,name,email,phone,company,source,notes,created_at"
    assert len(lines) == 1 + rows.one("SELECT COUNT(*) FROM leads_lead")

    # Uninstall greeter, with confirmation.
    page.goto(f"{console.url}/console/plugins/greeter/")
    page.fill("form.danger input[name=confirm]", "greeter")
    page.click("form.danger button")
    assert "Uninstalled greeter" in wait_for_operation(page)
    page.goto(f"{console.url}/console/plugins/")
    assert "not installed" in page.locator("tr", has_text="greeter").inner_text()

    # Every admin action is in the audit log, with who did it.
    page.goto(f"{console.url}/console/audit/")
    audit = page.inner_text("table.audit")
    for action in ("grant", "enable", "configure", "environment", "publish"):
        assert re.search(rf"console:admin\s+{action}\b", audit), action
    shot(page, "audit-log")
    assert os.path.getsize(SHOTS / "dashboard.png") > 10_000


def test_a_select_setting_is_changed_and_kept_through_the_console(console, page):
    sai = console.sai
    rows = Rows("", sai.home)

    def stored(key: str):
        value = rows.all(
            "SELECT s.value FROM plugin_registry_pluginsetting s JOIN plugin_registry_plugin p"
            " ON p.id = s.plugin_id WHERE p.name = 'crm-sync' AND s.key = ?",
            (key,),
        )
        return json.loads(value[0][0]) if value and value[0][0] is not None else None

    def stored_secret(key: str):
        # Encrypted at rest: the row holds a Fernet token, readable with the home's key file.
        from cryptography.fernet import Fernet

        value = stored(key)
        assert set(value) == {"fernet"} and "k-123" not in json.dumps(value)
        fernet = Fernet((sai.home / "secret-settings.key").read_text().split()[0])
        return json.loads(fernet.decrypt(value["fernet"].encode()))

    sai("plugins", "install", "crm-sync")
    login(page, console)
    page.goto(f"{console.url}/console/plugins/crm-sync/")
    select = page.locator("select[name=sync_mode]")
    assert select.locator("option").all_inner_texts() == ["—", "Real time", "Nightly batch"]
    assert select.input_value() == "realtime"  # the default
    api_key = page.locator("input[name=api_key]")
    assert api_key.get_attribute("autocomplete") == "new-password"
    assert api_key.get_attribute("aria-required") == "true"
    api_key.fill("k-123")
    select.select_option(label="Nightly batch")
    page.click("form.settings button[type=submit]")
    assert "Settings saved." in page.inner_text(".messages")
    assert stored("sync_mode") == "nightly" and stored_secret("api_key") == "k-123"

    # Reloaded, the stored choice is selected; saving another field keeps it.
    page.reload()
    assert page.locator("select[name=sync_mode]").input_value() == "nightly"
    assert page.locator("input[name=api_key]").input_value() == ""  # never rendered back
    page.fill("input[name=endpoint]", "https://crm2.example.com/api")
    page.click("form.settings button[type=submit]")
    assert "Settings saved." in page.inner_text(".messages")
    assert page.locator("select[name=sync_mode]").input_value() == "nightly"
    assert stored("sync_mode") == "nightly" and stored_secret("api_key") == "k-123"
    assert stored("endpoint") == "https://crm2.example.com/api"
