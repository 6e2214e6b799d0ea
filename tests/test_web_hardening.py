"""Web hardening: a strict Content-Security-Policy on every response (checked in a real browser
too), plugin HTML kept out of the platform's own classes, and plugin static files served from
the active environment generation as soon as it is active."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template import Context, Template
from django.utils import timezone

from plugin_registry.host.sanitize import sanitize
from plugin_registry.registry import actions
from plugin_registry.registry.models import CatalogueVersion, Plugin
from plugin_registry.registry.sync import sync_registry
from plugin_registry.runtime import follow_active_environment
from services_ai import conf
from tests.plugin_projects import REPO, build_wheel, install_wheels, write_plugin_project

TEMPLATE_DIRS = [
    REPO / "services_ai" / "templates",
    REPO / "services_ai" / "dashboard" / "templates",
    REPO / "plugin_registry" / "templates",
]

# A widget that tries to pass for a platform notice, with static files of its own.
NOTICE_WIDGET = """
from services_ai.plugins import hookimpl

@hookimpl
def dashboard_widget(context):
    return {
        "title": "Notice",
        "html": '<ul class="messages"><li class="error" role="status">Your session expired:'
        ' <a href="https://example.com/login">log in again</a></li></ul>'
        '<p class="notice-body">fine print</p>',
    }
"""
NOTICE_MANIFEST = {"hook_specs": ["dashboard_widget"], "permissions": [], "settings": []}
NOTICE_CSS = "notice_widget/notice.css"
NOTICE_PAGE = "notice_widget/page.html"


def css_of(version: str) -> str:
    return f"/* notice-widget {version} */ .plugin-notice-body {{ color: #555; }}\n"


# -- the plugin environment: real wheels installed into generations of a temporary home ---------


@pytest.fixture(scope="module")
def notice_wheels(tmp_path_factory) -> dict[str, Path]:
    """notice-widget 1.0.0 and 2.0.0 (other CSS), real wheels with a ``static/`` folder."""
    root = tmp_path_factory.mktemp("notice-projects")
    out = tmp_path_factory.mktemp("notice-wheels")
    wheels = {}
    for version in ("1.0.0", "2.0.0"):
        project = write_plugin_project(
            root, "notice-widget", NOTICE_WIDGET, NOTICE_MANIFEST, version=version
        )
        static = project / "notice_widget" / "static" / "notice_widget"
        static.mkdir(parents=True)
        (static / "notice.css").write_text(css_of(version))
        (static / "page.html").write_text(
            "<!doctype html><title>plugin page</title><script>window.__ran = 1</script>"
            "<form action='/accounts/logout/' method='post'><button>go</button></form>\n"
        )
        wheels[version] = build_wheel(project, out)
    return wheels


class Environment:
    """The managed plugin environment of a temporary ``SERVICES_AI_HOME``, as installs leave it:
    generations under ``env/generations/NNNN`` and the ``env/active`` symlink, moved atomically.
    """

    def __init__(self, home: Path, wheels: dict[str, Path]):
        self.home = home
        self.wheels = wheels

    def activate(self, number: int, version: str) -> Path:
        """Install notice-widget ``version`` into a new generation and make it the active one."""
        folder = conf.environment_dir() / "generations" / f"{number:04d}"
        install_wheels([self.wheels[version]], conf.site_packages(folder))
        link = conf.active_link()
        tmp = link.with_name("active.tmp")
        tmp.symlink_to(folder.relative_to(link.parent))
        os.replace(tmp, link)
        return folder


@pytest.fixture
def environment(tmp_path, monkeypatch, notice_wheels):
    """A temporary home whose environment generations this process follows; undone after."""
    loaded = conf.loaded_generation()
    monkeypatch.setenv(conf.HOME_ENV, str(tmp_path / "home"))
    yield Environment(tmp_path / "home", notice_wheels)
    conf.use_generation(loaded)  # sys.path and the modules imported from the temporary ones


def notice_widget_installed(environment: Environment, *, enabled: bool) -> None:
    """Activate a generation with notice-widget and mirror it, as ``plugins install`` does."""
    environment.activate(1, "1.0.0")
    follow_active_environment()
    sync_registry()
    if enabled:
        actions.enable("notice-widget")


# -- the Content-Security-Policy header ----------------------------------------------------------


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_strict(response) -> None:
    csp = policy(response)
    assert csp["script-src"] == ["'self'"], csp
    assert csp["style-src"] == ["'self'"], csp
    assert csp["default-src"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["img-src"] == ["'self'"]
    header = response["Content-Security-Policy"]
    for loophole in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'strict-dynamic'",
                     "data:", "*", "http:", "https:"):  # fmt: skip
        assert loophole not in header.split(), (loophole, header)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


STAFF_PAGES = [
    "/",
    "/widgets/booking-widget/",
    "/exports/",
    "/console/catalogue/",
    "/console/catalogue/crm-sync/install/?version=1.2.0",
    "/console/plugins/",
    "/console/plugins/crm-sync/",
    "/console/upload/",
    "/console/history/",
    "/console/audit/",
    "/admin/",
]


def catalogue_row() -> None:
    CatalogueVersion.objects.create(
        name="crm-sync", version="1.2.0", filename="crm_sync-1.2.0-py3-none-any.whl",
        sha256="0" * 64, summary="CRM sync", manifest={
            "hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    )  # fmt: skip


@pytest.mark.django_db
def test_every_page_carries_the_strict_content_security_policy(registry, admin_client, client):
    registry.enable("booking-widget", "read_bookings")
    registry.enable("crm-sync", api_key="k")
    catalogue_row()
    for url in STAFF_PAGES:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_strict(response)
    # Anonymous pages, redirects, errors and posts too.
    assert_strict(client.get("/accounts/login/"))
    assert_strict(client.get("/admin/login/"))
    assert_strict(client.get("/"))  # a redirect to the login page
    assert_strict(admin_client.get("/no/such/page/"))
    assert_strict(admin_client.post("/console/plugins/crm-sync/enable/", {"enabled": "0"}))


class _Inline(HTMLParser):
    """Collects what a strict CSP would block, or what needs eval, in one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.in_script = False
        self.htmx_config: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.in_script = True
            if not values.get("src"):
                self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        if tag == "meta" and values.get("name") == "htmx-config":
            self.htmx_config = json.loads(values["content"] or "")
        for name, value in attrs:
            if name == "style":
                self.found.append(f"style attribute on <{tag}>")
            if name.startswith("on") or name.startswith(("hx-on", "data-hx-on")):
                self.found.append(f"handler {name} on <{tag}>")
            if name in ("hx-vars", "data-hx-vars"):
                self.found.append(f"{name} (evaluated) on <{tag}>")
            if value and re.match(r"\s*(javascript|js):", value, re.IGNORECASE):
                self.found.append(f"script URL in {name} on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.found.append("script content")


def inline_code(html: str) -> _Inline:
    parser = _Inline()
    parser.feed(html)
    return parser


@pytest.mark.django_db
def test_pages_have_no_inline_scripts_styles_or_handlers(registry, admin_client, client):
    registry.enable("booking-widget", "read_bookings")
    registry.enable("crm-sync", api_key="k")
    catalogue_row()
    pages = {url: admin_client.get(url).content.decode() for url in STAFF_PAGES}
    pages["/accounts/login/"] = client.get("/accounts/login/").content.decode()
    for url, html in pages.items():
        assert inline_code(html).found == [], url
    config = inline_code(pages["/"]).htmx_config
    assert config == {"includeIndicatorStyles": False, "allowEval": False, "allowScriptTags": False}


def test_templates_have_no_inline_scripts_styles_or_handlers():
    templates = [path for folder in TEMPLATE_DIRS for path in sorted(folder.rglob("*.html"))]
    assert len(templates) >= 14
    for path in templates:
        text = path.read_text()
        # Template tags are blanked out first: the parser then sees the markup as written.
        markup = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "x", text, flags=re.DOTALL)
        assert inline_code(markup).found == [], path.relative_to(REPO)
        assert not re.search(r"\bstyle\s*=|\son[a-z]+\s*=|javascript:", text), path


def test_htmx_script_tag_emits_no_inline_script(settings):
    settings.DEBUG = False
    html = Template("{% load django_htmx %}{% htmx_script %}").render(Context({}))
    assert re.fullmatch(r'<script src="/static/django_htmx/htmx-2\.min\.js" defer></script>', html)
    assert inline_code(html).found == []


def test_htmx_indicators_are_styled_by_the_platforms_stylesheet():
    css = (REPO / "services_ai" / "static" / "services_ai" / "console.css").read_text()
    assert ".htmx-indicator { opacity: 0; visibility: hidden; }" in css
    assert ".htmx-request .htmx-indicator, .htmx-request.htmx-indicator {" in css


# -- plugin HTML never carries the platform's classes --------------------------------------------


def test_the_sanitiser_prefixes_every_class_of_plugin_html():
    assert sanitize('<ul class="messages error"><li>x</li></ul>') == (
        '<ul class="plugin-messages plugin-error"><li>x</li></ul>'
    )
    assert sanitize('<p class=" card\tbanner\n quarantine ">x</p>') == (
        '<p class="plugin-card plugin-banner plugin-quarantine">x</p>'
    )
    assert sanitize('<p class="">x</p><p class="   ">y</p>') == "<p>x</p><p>y</p>"
    # Already prefixed or not, every class gets the prefix: no class escapes it.
    assert sanitize('<span class="plugin-page">x</span>') == (
        '<span class="plugin-plugin-page">x</span>'
    )
    # Non-ASCII whitespace splits too, so no part can reach the page unprefixed.
    assert (
        sanitize('<b class="x\u00a0messages">x</b>') == '<b class="plugin-x plugin-messages">x</b>'
    )
    # Everything else is as before: titles kept, scripts, handlers and javascript: URLs removed.
    dirty = (
        '<p class="x" title="t" onclick="steal()">hi</p><script>alert(1)</script>'
        '<img src=x onerror="alert(2)"><a class="btn" href="javascript:alert(3)">a</a>'
        '<a href="https://example.com" style="color:red">ok</a>'
    )
    assert sanitize(dirty) == (
        '<p class="plugin-x" title="t">hi</p><a class="plugin-btn" rel="noopener noreferrer">'
        'a</a><a href="https://example.com" rel="noopener noreferrer">ok</a>'
    )


class _Classes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes += (dict(attrs).get("class") or "").split()


def card_body_classes(card: str) -> list[str]:
    body = card.split('<div class="body">', 1)[1].rsplit("</div>", 1)[0]
    parser = _Classes()
    parser.feed(body)
    return parser.classes


@pytest.mark.django_db
def test_a_dashboard_widget_cannot_carry_the_platforms_classes(registry, admin_client, environment):
    notice_widget_installed(environment, enabled=True)
    card = admin_client.get("/widgets/notice-widget/").content.decode()
    assert '<ul class="plugin-messages"><li class="plugin-error">Your session expired' in card
    classes = card_body_classes(card)
    assert classes == ["plugin-messages", "plugin-error", "plugin-notice-body"]
    assert not {"messages", "error", "banner", "quarantine", "success", "warning"} & set(classes)


# -- plugin static files ---------------------------------------------------------------------


def fetch(client, url: str):
    response = client.get(url)
    # Reading the whole stream closes the file (the test client's wrapper does it safely).
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


@pytest.mark.django_db
def test_a_new_plugins_static_files_are_served_as_soon_as_its_generation_is_active(
    admin_client, environment, monkeypatch
):
    from services_ai.dashboard import views

    url = f"/plugin-static/notice-widget/{NOTICE_CSS}"
    assert admin_client.get("/").status_code == 200  # this process has served, built its host
    before = conf.loaded_generation()

    # Another process installs and enables notice-widget: a new generation, the registry row.
    first = environment.activate(1, "1.0.0")
    Plugin.objects.create(
        name="notice-widget", version="1.0.0", entry_point="notice_widget.main",
        installed=True, enabled=True,
    )  # fmt: skip

    def no_hook_calls():
        raise AssertionError("serving a static file must not need a hook call")

    monkeypatch.setattr(views, "get_host", no_hook_calls)
    response, body = fetch(admin_client, url)
    assert response.status_code == 200
    assert body.decode() == css_of("1.0.0")
    assert response["Content-Type"].startswith("text/css")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert conf.loaded_generation() == first != before
    assert not [name for name in sys.modules if name.startswith("notice_widget")]  # not imported

    # An upgrade: the next request is served from the new generation, again at once.
    environment.activate(2, "2.0.0")
    response, body = fetch(admin_client, url)
    assert response.status_code == 200 and body.decode() == css_of("2.0.0")

    # Disabled, quarantined or uninstalled: not served, and still never imported.
    Plugin.objects.filter(name="notice-widget").update(enabled=False)
    assert admin_client.get(url).status_code == 404
    Plugin.objects.filter(name="notice-widget").update(enabled=True, quarantined_at=timezone.now())
    assert admin_client.get(url).status_code == 404
    Plugin.objects.filter(name="notice-widget").update(quarantined_at=None)
    assert fetch(admin_client, url)[0].status_code == 200
    Plugin.objects.filter(name="notice-widget").update(enabled=True, installed=False)
    assert admin_client.get(url).status_code == 404
    assert not [name for name in sys.modules if name.startswith("notice_widget")]


@pytest.mark.django_db
def test_a_disabled_plugins_static_files_are_not_served_nor_its_code_imported(
    admin_client, environment
):
    notice_widget_installed(environment, enabled=False)
    assert Plugin.objects.get(name="notice-widget").enabled is False
    assert admin_client.get(f"/plugin-static/notice-widget/{NOTICE_CSS}").status_code == 404
    assert not [name for name in sys.modules if name.startswith("notice_widget")]


@pytest.mark.django_db
def test_bad_plugin_static_paths_are_not_found(admin_client, environment):
    notice_widget_installed(environment, enabled=True)
    static = conf.site_packages(conf.active_generation_dir()) / "notice_widget" / "static"
    (static / "outside.css").symlink_to("/etc/passwd")
    (static / "loop.css").symlink_to(static / "loop.css")
    base = "/plugin-static/notice-widget/"
    assert fetch(admin_client, base + NOTICE_CSS)[0].status_code == 200
    bad = [
        "a%00b.css",
        "notice_widget/notice.css%00.png",
        "../main.py",
        "%2e%2e/main.py",
        "notice_widget/../../main.py",
        "..%2fmain.py",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "outside.css",
        "loop.css",
        "notice_widget",
        "notice_widget/",
        "notice_widget/missing.css",
        "a" * 5000,
        "x/" * 3000 + "y.css",
        "%ff%fe.css",
    ]
    for path in bad:
        response = admin_client.get(base + path)
        assert response.status_code == 404, path
    assert admin_client.get("/plugin-static/no-such-plugin/x.css").status_code == 404
    assert admin_client.get("/plugin-static/../notice-widget/x.css").status_code == 404


@pytest.mark.django_db
def test_plugin_static_files_are_served_sandboxed(admin_client, environment):
    """A plugin's HTML or SVG opened from there runs no script and submits no form."""
    notice_widget_installed(environment, enabled=True)
    response, body = fetch(admin_client, f"/plugin-static/notice-widget/{NOTICE_PAGE}")
    assert response.status_code == 200 and b"<script>" in body
    csp = policy(response)
    assert csp["sandbox"] == [] and csp["default-src"] == ["'none'"]
    assert "script-src" not in csp


# -- in a real browser -------------------------------------------------------------------------

VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
    `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
document.addEventListener("htmx:evalDisallowedError", (e) => window.__violations.push("htmx eval"));
"""


@pytest.mark.browser
def test_the_console_runs_under_the_csp_without_violations(
    live_server, page, transactional_db, django_user_model, environment
):
    from services_ai.bookings.models import Booking
    from services_ai.leads.models import Lead

    django_user_model.objects.create_superuser("admin", password="pw-csp-12345")
    notice_widget_installed(environment, enabled=True)
    actions.enable("booking-widget")
    actions.set_grant("booking-widget", "read_bookings", True)
    actions.configure("crm-sync", {"api_key": "k"})
    actions.enable("crm-sync")
    catalogue_row()
    start = timezone.now() + timedelta(days=1)
    Booking.objects.create(
        lead=Lead.objects.create(name="Ada"), service="Window cleaning", start=start, end=start
    )

    console: list[str] = []
    errors: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(VIOLATIONS)

    def violations() -> list[str]:
        found = page.evaluate("window.__violations") + [
            text for text in console if "Content Security Policy" in text
        ]
        console.clear()
        return found

    def visit(path: str) -> None:
        response = page.goto(live_server.url + path)
        assert response is not None and response.ok, path
        assert "'unsafe-inline'" not in (response.headers.get("content-security-policy") or "x")
        assert response.headers.get("content-security-policy"), path

    visit("/accounts/login/")
    assert violations() == []
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "pw-csp-12345")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))

    # The dashboard: every card is loaded by htmx, plugin HTML in plugin- classes only.
    page.wait_for_selector("section[data-plugin=booking-widget] .plugin-bw-card")
    page.wait_for_selector("section[data-plugin=notice-widget] .plugin-messages")
    assert "Window cleaning" in page.inner_text("section[data-plugin=booking-widget]")
    assert page.locator(".messages").count() == 0  # the widget is no platform notice
    assert page.evaluate("document.querySelectorAll('style, [style]').length") == 0
    assert page.evaluate("[htmx.config.allowEval, htmx.config.includeIndicatorStyles]") == [
        False,
        False,
    ]
    assert violations() == []

    visit("/console/plugins/crm-sync/")
    assert page.locator("section.plugin-page p.plugin-crm-sync-note").count() == 1
    assert violations() == []

    visit("/console/catalogue/")
    assert "crm-sync" in page.inner_text("table.list")
    page.click("tr[data-plugin=crm-sync] button[type=submit]")
    assert "crm-sync" in page.inner_text("h1")
    assert violations() == []

    # htmx again: the exports form swaps in the other data type's filters.
    visit("/exports/")
    page.select_option("select[name=data_type]", "bookings")
    page.wait_for_url(re.compile(r".*data_type=bookings"))
    page.wait_for_selector("select[name=status]")
    assert violations() == []

    for path in ("/console/plugins/", "/console/history/", "/console/audit/", "/console/upload/",
                 "/admin/", "/admin/plugin_registry/plugin/"):  # fmt: skip
        visit(path)
        assert violations() == [], path

    # The listener does see what the policy blocks: an inline style, an inline script, eval.
    page.evaluate("""() => {
        document.body.insertAdjacentHTML("beforeend", '<p style="color: red">x</p>');
        const script = document.createElement("script");
        script.textContent = "window.__inline = 1";
        document.body.append(script);
        setTimeout("window.__evaluated = 1", 0);
    }""")
    page.wait_for_function("window.__violations.length >= 3")
    assert page.evaluate("[typeof window.__inline, typeof window.__evaluated]") == [
        "undefined",
        "undefined",
    ]
    blocked = {found.split(" blocked ")[0] for found in violations() if " blocked " in found}
    assert blocked == {"style-src-attr", "script-src-elem", "script-src"}
    assert errors == []

    # A plugin's own HTML page, opened directly, runs nothing.
    visit(f"/plugin-static/notice-widget/{NOTICE_PAGE}")
    assert page.evaluate("typeof window.__ran") == "undefined"
