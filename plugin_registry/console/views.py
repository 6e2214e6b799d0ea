"""The plugin console: catalogue, plugin pages, consent, settings, upload, history, audit log.

Every page needs a staff user; every change needs the ``plugin_registry.manage_plugins``
permission, is a POST with a CSRF token, and is written to the audit log. GET never changes
anything.
"""

from __future__ import annotations

import tempfile
from functools import wraps
from pathlib import Path
from typing import Any, TypedDict

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails
from packaging.utils import canonicalize_name

from plugin_registry.authoring.publishing import CheckFailed, publish
from plugin_registry.console import operations
from plugin_registry.console.forms import SettingsForm, UploadForm
from plugin_registry.distribution.catalogue import by_project, sync_catalogue, why_not
from plugin_registry.distribution.environment import Environment
from plugin_registry.distribution.index import IndexClient
from plugin_registry.distribution.reconcile import history, node_is_behind, registry_action
from plugin_registry.host.sanitize import sanitize
from plugin_registry.registry import actions, nodes
from plugin_registry.registry.audit import record
from plugin_registry.registry.models import (
    AuditEntry,
    CatalogueVersion,
    EnvironmentGeneration,
    Operation,
    Plugin,
    PluginFailure,
)
from plugin_registry.registry.settings_store import missing_required, unreadable_secrets
from plugin_registry.runtime import call_budgeted
from services_ai.access import staff_required as staff_member_required
from services_ai.events.stats import delivery_stats

MANAGE = "plugin_registry.manage_plugins"


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware (in ``MIDDLEWARE``) hands it on: with ``htmx``.

    django-htmx 1.x ships no such class; its documentation suggests declaring this one.
    """

    htmx: HtmxDetails


def require_manage(request: HttpRequest) -> None:
    if not _can_manage(request):
        raise PermissionDenied("managing plugins needs the manage_plugins permission")


def manager_required(view):
    """Staff, holding the manage_plugins permission; the view changes state."""

    @wraps(view)
    @staff_member_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        require_manage(request)
        return view(request, *args, **kwargs)

    return wrapped


def actor(request: HttpRequest) -> str:
    return f"console:{request.user.get_username()}"


# -- catalogue ---------------------------------------------------------------------------------


class CatalogueProject(TypedDict):
    """One project on the catalogue page."""

    name: str
    versions: list[CatalogueVersion]  # newest first
    latest: CatalogueVersion | None
    installed: str | None  # the installed version


@require_GET
@staff_member_required
def catalogue(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    rows = CatalogueVersion.objects.filter(is_plugin=True, available=True)
    if query:
        rows = rows.filter(Q(name__icontains=query) | Q(summary__icontains=query))
    names = rows.order_by("name").values_list("name", flat=True).distinct()
    page = Paginator(names, 20).get_page(request.GET.get("page"))
    versions = by_project(
        CatalogueVersion.objects.filter(name__in=list(page), is_plugin=True, available=True)
    )
    installed = dict(Plugin.objects.filter(installed=True).values_list("name", "version"))
    projects: list[CatalogueProject] = [
        {
            "name": name,
            "versions": versions.get(name, []),
            "latest": next(iter(versions.get(name, [])), None),
            "installed": installed.get(name),
        }
        for name in page
    ]
    for project in projects:
        for row in project["versions"]:
            row.verdict = why_not(row)
    return render(
        request,
        "console/catalogue.html",
        {"projects": projects, "page": page, "query": query, "can_manage": _can_manage(request)},
    )


def _can_manage(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(MANAGE))


@require_POST
@manager_required
def catalogue_refresh(request: HttpRequest) -> HttpResponse:
    op = operations.start("refresh the catalogue", actor(request), {"kind": "refresh"})
    return redirect("console:operation", pk=op.pk)


@staff_member_required
def install(request: HttpRequest, name: str) -> HttpResponse:
    """GET: the confirmation (what this version asks for). POST: install it."""
    version = request.GET.get("version") or request.POST.get("version") or ""
    row = CatalogueVersion.objects.filter(name=canonicalize_name(name), version=version).first()
    if row is None:
        raise Http404(f"{name} {version} is not in the catalogue")
    current = Plugin.objects.filter(name=row.name, installed=True).first()
    if request.method == "POST":
        require_manage(request)
        if not row.installable:
            messages.error(
                request, f"{row.name}=={row.version} cannot be installed: {why_not(row)}"
            )
            return redirect("console:catalogue")
        verb = "install" if current is None else "upgrade"
        requirement = f"{row.name}=={row.version}"
        operation = operations.start(
            f"{verb} {requirement}", actor(request), {"kind": verb, "requirements": [requirement]}
        )
        return redirect("console:operation", pk=operation.pk)
    granted: set[str] = set()
    if current is not None:
        granted = set(current.permissions.filter(granted=True).values_list("name", flat=True))
    asked = [{"name": p, "new": p not in granted} for p in row.permissions]
    return render(
        request,
        "console/install.html",
        {"row": row, "current": current, "asked": asked, "verdict": why_not(row)},
    )


# -- operations --------------------------------------------------------------------------------


@require_GET
@staff_member_required
def operation(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    op = get_object_or_404(Operation, pk=pk)
    template = "console/_operation.html" if request.htmx else "console/operation.html"
    return render(request, template, operations.page_context(op))


# -- plugins -----------------------------------------------------------------------------------


@require_GET
@staff_member_required
def plugin_list(request: HttpRequest) -> HttpResponse:
    plugins = Plugin.objects.prefetch_related("permissions")
    return render(
        request,
        "console/plugins.html",
        {"plugins": plugins, "behind": node_is_behind()},
    )


def _plugin_context(request: HttpRequest, plugin: Plugin, form: SettingsForm | None = None):
    stored = dict(plugin.settings.values_list("key", "value"))
    form = form or SettingsForm(plugin.setting_specs, stored)
    for problem in unreadable_secrets(plugin):  # named, with the fix; the secret counts as unset
        messages.error(request, str(problem))
    settings_html = ""
    if plugin.enabled:
        outcome = call_budgeted(plugin.name, "settings_page", plugin_id=plugin.name)
        if outcome.failure is not None:
            settings_html = ""
            messages.warning(request, f"Its settings page failed: {outcome.failure.message}")
        elif isinstance(outcome.value, str):
            settings_html = sanitize(outcome.value)
    stats = next((s for s in delivery_stats() if s["plugin"] == plugin.name), None)
    return {
        "plugin": plugin,
        "permissions": plugin.permissions.filter(requested=True).order_by("name"),
        "form": form,
        "missing": missing_required(plugin) if not plugin.manifest_error else [],
        "settings_html": settings_html,
        "failures": PluginFailure.objects.filter(plugin_name=plugin.name)[:10],
        "stats": stats,
        "history": history()[:10],
        "can_manage": _can_manage(request),
        "in_environment": plugin.name in Environment().requested(),
    }


@require_GET
@staff_member_required
def plugin_detail(request: HttpRequest, name: str) -> HttpResponse:
    plugin = get_object_or_404(Plugin, name=name)
    return render(request, "console/plugin.html", _plugin_context(request, plugin))


def _registry_action(request: HttpRequest, name: str, action, success: str) -> HttpResponse:
    try:
        registry_action(lambda report: action(), lambda message: messages.info(request, message))
    except actions.RegistryError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect("console:plugin", name=name)


@require_POST
@manager_required
def plugin_enable(request: HttpRequest, name: str) -> HttpResponse:
    enable = request.POST.get("enabled") == "1"
    if enable:
        return _registry_action(
            request, name, lambda: actions.enable(name, actor=actor(request)), f"Enabled {name}."
        )
    return _registry_action(
        request, name, lambda: actions.disable(name, actor=actor(request)), f"Disabled {name}."
    )


@require_POST
@manager_required
def plugin_grant(request: HttpRequest, name: str) -> HttpResponse:
    permission = request.POST.get("permission", "")
    grant = request.POST.get("granted") == "1"
    verb = "Granted" if grant else "Revoked"
    return _registry_action(
        request,
        name,
        lambda: actions.set_grant(name, permission, grant, actor=actor(request)),
        f"{verb} {permission}.",
    )


@require_POST
@manager_required
def plugin_settings(request: HttpRequest, name: str) -> HttpResponse:
    plugin = get_object_or_404(Plugin, name=name)
    stored = dict(plugin.settings.values_list("key", "value"))
    form = SettingsForm(plugin.setting_specs, stored, request.POST)
    if form.is_valid():
        try:
            actions.configure(name, form.changed_values(), actor=actor(request))
        except actions.SettingsInvalid as exc:
            for error in exc.errors:
                field = error.key if error.key in form.fields else None
                form.add_error(field, error.reason or str(error))
        except actions.RegistryError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Settings saved.")
            return redirect("console:plugin", name=name)
    plugin.refresh_from_db()
    response = render(request, "console/plugin.html", _plugin_context(request, plugin, form))
    response.status_code = 400
    return response


@require_POST
@manager_required
def plugin_uninstall(request: HttpRequest, name: str) -> HttpResponse:
    if request.POST.get("confirm") != name:
        messages.error(request, f"Type {name} to confirm the uninstall.")
        return redirect("console:plugin", name=name)
    op = operations.start(f"uninstall {name}", actor(request), {"kind": "uninstall", "name": name})
    return redirect("console:operation", pk=op.pk)


@require_POST
@manager_required
def rollback(request: HttpRequest, number: int) -> HttpResponse:
    get_object_or_404(EnvironmentGeneration, number=number)
    op = operations.start(
        f"roll back to generation {number}", actor(request), {"kind": "rollback", "to": number}
    )
    return redirect("console:operation", pk=op.pk)


@require_GET
@staff_member_required
def environment_history(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "console/history.html",
        {
            "generations": history()[:50],
            "can_manage": _can_manage(request),
            "nodes": nodes.nodes(),
            "this_node": nodes.node_name(),
        },
    )


# -- upload ------------------------------------------------------------------------------------


@staff_member_required
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm()
    if request.method == "POST":
        require_manage(request)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                name, version = _publish_upload(form.cleaned_data["wheel"], actor(request))
            except actions.RegistryError as exc:
                form.add_error("wheel", str(exc))
            else:
                messages.success(
                    request, f"Published {name} {version}; it is in the catalogue now."
                )
                return redirect(reverse("console:catalogue") + f"?q={name}")
    status = 400 if form.errors else 200
    return render(request, "console/upload.html", {"form": form}, status=status)


def _publish_upload(upload, who: str) -> tuple[str, str]:
    """Check an uploaded wheel (or legacy ZIP) as `plugin check` does, then publish it."""
    name = Path(upload.name).name
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        path = Path(tmp) / ("upload.zip" if name.endswith(".zip") else name)
        with path.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        client = IndexClient()
        try:
            published = publish(path, "stable", client=client, label=name)
        except CheckFailed as exc:
            raise actions.RegistryError(
                f"{name} was refused: " + "; ".join(str(p) for p in exc.problems)
            ) from None
        sync_catalogue(client, [published.name])
        record(
            who, "publish", f"{published.name}=={published.version}", None,
            {"upload": published.outcome},
        )  # fmt: skip
    return published.name, published.version


# -- audit -------------------------------------------------------------------------------------


@require_GET
@staff_member_required
def audit_log(request: HttpRequest) -> HttpResponse:
    entries = AuditEntry.objects.all()
    if who := request.GET.get("actor"):
        entries = entries.filter(actor__icontains=who)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "console/audit.html", {"page": page})
