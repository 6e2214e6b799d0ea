"""Forms of the plugin console: settings generated from a manifest, and the wheel upload."""

from __future__ import annotations

from typing import Any

from django import forms

MAX_UPLOAD = 20 * 1024 * 1024

WIDGETS: dict[str, Any] = {
    "text": lambda spec: forms.CharField(),
    "textarea": lambda spec: forms.CharField(widget=forms.Textarea(attrs={"rows": 4})),
    "number": lambda spec: forms.CharField(widget=forms.NumberInput(attrs={"step": "any"})),
    "checkbox": lambda spec: forms.BooleanField(),
    "select": lambda spec: forms.ChoiceField(
        choices=[("", "—")] + [(str(o), str(o)) for o in spec.get("options", [])]
    ),
    # Secrets are never rendered back: an empty field keeps the stored value.
    "secret": lambda spec: forms.CharField(widget=forms.PasswordInput(render_value=False)),
    "url": lambda spec: forms.CharField(widget=forms.URLInput()),
    "email": lambda spec: forms.CharField(widget=forms.EmailInput()),
}


class SettingsForm(forms.Form):
    """One field per setting of the manifest; values are validated by the registry's types."""

    def __init__(self, specs: list[dict], stored: dict[str, Any], *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.specs = {spec["name"]: spec for spec in specs}
        for key, spec in self.specs.items():
            field = WIDGETS.get(spec.get("type", "text"), WIDGETS["text"])(spec)
            field.required = False  # the registry decides what is required, with its message
            field.label = spec.get("label") or key
            field.help_text = spec.get("description", "")
            if spec.get("required"):
                field.label = f"{field.label} *"
            if spec.get("type") != "secret":
                value = stored.get(key, spec.get("default"))
                field.initial = value
            elif stored.get(key):
                field.help_text = (field.help_text + " " if field.help_text else "") + (
                    "A value is stored; leave empty to keep it."
                )
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
