"""Rendering templates shipped inside a plugin's package (``PACKAGE/templates/``)."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.template import Context, Engine

from plugin_registry.registry.models import Plugin


@lru_cache(maxsize=256)
def _engine(package_dir: str) -> Engine:
    return Engine(dirs=[str(Path(package_dir) / "templates")], autoescape=True)


def package_dir(plugin_name: str) -> Path:
    """Return the folder of the plugin's top-level package (the plugin is already loaded)."""
    entry_point = Plugin.objects.values_list("entry_point", flat=True).get(name=plugin_name)
    package = entry_point.split(":")[0].split(".")[0]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"plugin {plugin_name!r}: package {package!r} not found")
    return Path(next(iter(spec.submodule_search_locations)))


def render_plugin_template(plugin_name: str, template_name: str, context: dict[str, Any]) -> str:
    """Render ``template_name`` from the plugin's own templates folder, autoescaped."""
    engine = _engine(str(package_dir(plugin_name)))
    return engine.get_template(template_name).render(Context(context))
