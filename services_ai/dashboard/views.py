"""The dashboard (one lazily loaded card per plugin widget), plugin static files and exports."""

from __future__ import annotations

import csv
import io
import mimetypes
import re
from typing import TypedDict

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from plugin_registry.registry.models import Plugin
from plugin_registry.registry.templates import package_dir
from plugin_registry.runtime import call_budgeted, follow_active_environment, get_host
from services_ai.access import staff_required as staff_member_required
from services_ai.bookings.models import BOOKING_FILTERS, Booking
from services_ai.dashboard.widgets import render_card
from services_ai.leads.models import LEAD_FILTERS, Lead
from services_ai.plugins.permissions import EXPORT_DATA_TYPES


@require_GET
@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The page: an empty card per widget; each card loads in its own request."""
    plugins = get_host().implementers("dashboard_widget")
    return render(request, "dashboard/dashboard.html", {"plugins": plugins})


@require_GET
@staff_member_required
def widget(request: HttpRequest, name: str) -> HttpResponse:
    """One card: the plugin's widget, sanitised; a failure stays inside this card."""
    host = get_host()
    if name not in host.implementers("dashboard_widget"):
        raise Http404("no such widget")
    card = render_card(name, request.user.get_username())
    return render(request, "dashboard/_card.html", {"card": card, "plugin": name})


# A plugin's own files are served as data, never as a page of the platform: a document opened
# from here (HTML, SVG) runs no script and submits no form (``sandbox``), and loads nothing.
PLUGIN_STATIC_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; sandbox"


@require_GET
@staff_member_required
def plugin_static(request: HttpRequest, name: str, path: str) -> FileResponse:
    """A file from an enabled, installed plugin's ``static/`` folder (never outside it).

    The process first follows the active environment generation, so a plugin installed or
    upgraded by another process is served at once. Nothing of the plugin is imported: its
    package folder is found on ``sys.path`` without running its code.
    """
    if "\x00" in path:  # no file has one; the path functions below would raise
        raise Http404("no such file")
    # Enabled as the host sees it: a quarantined plugin counts as disabled here too.
    plugins = Plugin.objects.filter(enabled=True, installed=True, quarantined_at__isnull=True)
    if not plugins.filter(name=name).exists():
        raise Http404("no such plugin")
    follow_active_environment()
    try:
        root = (package_dir(name) / "static").resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise Http404("no such file")
        file = target.open("rb")
    except (LookupError, OSError, RuntimeError, ValueError):  # not here, too long, a loop, ...
        raise Http404("no such file") from None
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    response = FileResponse(file, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = PLUGIN_STATIC_CSP
    response["Cache-Control"] = "private, max-age=300"
    return response


# -- exports -----------------------------------------------------------------------------------


class ExportSpec(TypedDict):
    """What the exports page offers of one data type."""

    model: type[Lead] | type[Booking]
    filters: tuple[str, ...]
    permission: str
    columns: list[str]


DATA: dict[str, ExportSpec] = {
    "leads": {
        "model": Lead,
        "filters": LEAD_FILTERS,
        "permission": "leads.view_lead",
        "columns": ["id", "name", "email", "phone", "company", "source", "notes", "created_at"],
    },
    "bookings": {
        "model": Booking,
        "filters": BOOKING_FILTERS,
        "permission": "bookings.view_booking",
        "columns": [
            "id", "lead_id", "service", "status", "start", "end", "notes", "created_by",
            "created_at", "updated_at",
        ],
    },
}  # fmt: skip


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet must not run a cell as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@require_GET
@staff_member_required
def exports(request: HttpRequest) -> HttpResponse:
    """GET with ``download``: the file; without: the form with every format on offer."""
    data_type = request.GET.get("data_type", "leads")
    if data_type not in DATA:
        raise Http404("unknown data type")
    spec = DATA[data_type]
    filters = {key: value for key in spec["filters"] if (value := request.GET.get(key, ""))}
    host = get_host()
    offers = host.implementers("data_export", EXPORT_DATA_TYPES.get(data_type))
    fmt = request.GET.get("format", "csv")
    if "download" not in request.GET:
        return render(
            request,
            "dashboard/exports.html",
            {"data": DATA, "data_type": data_type, "filters": filters, "offers": offers},
        )
    if not request.user.has_perm(spec["permission"]):
        raise PermissionDenied(f"exporting {data_type} needs {spec['permission']}")
    try:
        rows = spec["model"].objects.filtered(filters).order_by("id")
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("exports")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(spec["columns"])
        for row in rows:
            writer.writerow([_cell(getattr(row, column)) for column in spec["columns"]])
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{data_type}.csv"'
        return response
    plugin = fmt.removeprefix("plugin:")
    if plugin not in offers:
        messages.error(request, f"{plugin} offers no export of {data_type} (or may not read them)")
        return redirect("exports")
    outcome = call_budgeted(plugin, "data_export", data_type=data_type, filters=filters)
    export = outcome.value
    if outcome.failure is not None or not isinstance(export, dict) or "content" not in export:
        why = outcome.failure.message if outcome.failure else "it offered nothing for this data"
        messages.error(request, f"{plugin}'s export failed: {why}")
        return redirect("exports")
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", str(export.get("filename") or "export"))[:100]
    response = HttpResponse(
        str(export["content"]), content_type=str(export.get("content_type") or "text/plain")
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
