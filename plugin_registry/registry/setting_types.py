"""Typed plugin settings: the one table of setting types.

Each type has its coercer (what an admin typed, on the command line or in the console, into a
valid value or a clear error) and the console's form field for it. The manifest schema lists the
same names; the CLI, the registry and the console all go through ``TYPES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from services_ai.plugins.exceptions import SettingsError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
MAX_TEXT = 10_000


def _text(spec: dict, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("must be text")
    if len(raw) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    return raw if spec["type"] == "textarea" else raw.strip()


def _number(spec: dict, raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise ValueError("must be a number")
    if isinstance(raw, int | float):
        value = raw
    else:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    if "min" in spec and value < spec["min"]:
        raise ValueError(f"must be at least {spec['min']}")
    if "max" in spec and value > spec["max"]:
        raise ValueError(f"must be at most {spec['max']}")
    return int(value) if float(value).is_integer() else value


def _checkbox(spec: dict, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not true or false (use true/false, yes/no, on/off, 1/0)")


def _select(spec: dict, raw: Any) -> str:
    values = [option["value"] for option in spec.get("options", [])]
    if raw not in values:
        raise ValueError(f"{raw!r} is not one of {', '.join(map(repr, values))}")
    return str(raw)


def _validated_by(validator: Callable[[str], None], what: str) -> Callable[[dict, Any], str]:
    def coerce(spec: dict, raw: Any) -> str:
        value = _text(spec, raw)
        try:
            validator(value)
        except ValidationError:
            raise ValueError(f"{value!r} is not a valid {what}") from None
        return value

    return coerce


def _text_field(spec: dict) -> forms.Field:
    return forms.CharField()


def _textarea_field(spec: dict) -> forms.Field:
    # Text areas keep their whitespace, as the coercer does.
    return forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 4}))


def _secret_field(spec: dict) -> forms.Field:
    # Secrets are never rendered back: an empty field keeps the stored value.
    return forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
    )


def _number_field(spec: dict) -> forms.Field:
    # Text, not a Django number field: the coercer's rules and messages are the only ones.
    attrs: dict[str, Any] = {"step": "any"}
    attrs.update({bound: spec[bound] for bound in ("min", "max") if bound in spec})
    return forms.CharField(widget=forms.NumberInput(attrs=attrs))


def _checkbox_field(spec: dict) -> forms.Field:
    return forms.BooleanField()


def _select_field(spec: dict) -> forms.Field:
    options = [(o["value"], o.get("label") or o["value"]) for o in spec.get("options", [])]
    return forms.ChoiceField(choices=[("", "—"), *options])


def _url_field(spec: dict) -> forms.Field:
    return forms.CharField(widget=forms.URLInput())


def _email_field(spec: dict) -> forms.Field:
    return forms.CharField(widget=forms.EmailInput())


@dataclass(frozen=True)
class SettingType:
    """One setting type: how a value is coerced, and the console's form field for it."""

    coerce: Callable[[dict, Any], Any]
    form_field: Callable[[dict], forms.Field]


TYPES: dict[str, SettingType] = {
    "text": SettingType(_text, _text_field),
    "textarea": SettingType(_text, _textarea_field),
    "number": SettingType(_number, _number_field),
    "checkbox": SettingType(_checkbox, _checkbox_field),
    "select": SettingType(_select, _select_field),
    "secret": SettingType(_text, _secret_field),
    "url": SettingType(
        _validated_by(URLValidator(schemes=["http", "https"]), "http(s) URL"), _url_field
    ),
    "email": SettingType(_validated_by(EmailValidator(), "email address"), _email_field),
}
SETTING_TYPES = tuple(TYPES)


def setting_type(spec: dict) -> SettingType:
    """The type of the setting ``spec`` (text when it names none)."""
    return TYPES[spec.get("type", "text")]


def form_field(spec: dict) -> forms.Field:
    """A new, unconfigured form field for the setting ``spec``."""
    return setting_type(spec).form_field(spec)


def coerce_setting(spec: dict, raw: Any, *, plugin: str = "") -> Any:
    """Return ``raw`` as a valid value of the setting ``spec``; raise SettingsError naming it.

    An empty value clears an optional setting (``None``) and is refused for a required one.
    """
    key = spec["name"]
    if raw is None or (isinstance(raw, str) and raw == "" and spec["type"] != "checkbox"):
        if spec.get("required"):
            raise SettingsError(f"setting {key!r} is required", plugin=plugin, key=key)
        return None
    try:
        return TYPES[spec["type"]].coerce(spec, raw)
    except ValueError as exc:
        raise SettingsError(
            f"setting {key!r} ({spec['type']}): {exc}", plugin=plugin, key=key, reason=str(exc)
        ) from None


def is_set(spec: dict, value: Any) -> bool:
    """Return whether a required setting counts as set (a default counts)."""
    if value is None:
        value = spec.get("default")
    return value is not None and value != ""
