"""Forms of the plugin console: settings generated from a manifest, and the wheel upload."""

from __future__ import annotations

from typing import Any

from django import forms

from plugin_registry.registry.setting_types import form_field

MAX_UPLOAD = 20 * 1024 * 1024

SECRET_KEPT = "A value is stored; leave empty to keep it."


class SettingsForm(forms.Form):
    """One field per setting of the manifest, from the setting types' table.

    Values are validated by the registry (``services.configure``), with its messages: every
    field stays optional for Django, and required settings are marked for the browser and
    assistive technology only (``required``, ``aria-required``).
    """

    def __init__(self, specs: list[dict], stored: dict[str, Any], *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.specs = {spec["name"]: spec for spec in specs}
        for key, spec in self.specs.items():
            field = form_field(spec)
            field.required = False  # the registry decides what is required, with its message
            field.label = spec.get("label") or key
            field.help_text = spec.get("description", "")
            secret = spec.get("type") == "secret"
            value = stored.get(key)
            if secret:
                if value:
                    field.help_text = f"{field.help_text} {SECRET_KEPT}".strip()
            else:
                field.initial = value if value is not None else spec.get("default")
            if spec.get("required"):
                field.label = f"{field.label} *"
                # A required checkbox is set either way; a stored secret may be left empty.
                if spec.get("type") != "checkbox" and not (secret and value):
                    field.widget.attrs.update({"required": True, "aria-required": "true"})
            self.fields[key] = field

    def changed_values(self) -> dict[str, Any]:
        """The values to store: an empty secret keeps the stored one."""
        values = {}
        for key, spec in self.specs.items():
            value = self.cleaned_data.get(key)
            if spec.get("type") == "secret" and not value:
                continue
            if spec.get("type") == "checkbox":
                value = bool(value)
            values[key] = value
        return values


class UploadForm(forms.Form):
    wheel = forms.FileField(
        label="Plugin wheel (.whl) or legacy plugin ZIP (.zip)",
        help_text=f"At most {MAX_UPLOAD // (1024 * 1024)} MB.",
    )

    def clean_wheel(self):
        upload = self.cleaned_data["wheel"]
        if upload.size > MAX_UPLOAD:
            raise forms.ValidationError(
                f"{upload.name} is {upload.size // 1024} KB; the limit is {MAX_UPLOAD // 1024} KB"
            )
        if not upload.name.endswith((".whl", ".zip")):
            raise forms.ValidationError(
                f"{upload.name} is not a wheel (.whl) or a legacy plugin ZIP (.zip)"
            )
        return upload
