"""Typed plugin settings: turning what an admin typed into a valid value, or a clear error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from services_ai.plugins.exceptions import SettingsError

SETTING_TYPES = ("text", "textarea", "number", "checkbox", "select", "secret", "url", "email")
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


_COERCERS: dict[str, Callable[[dict, Any], Any]] = {
    "text": _text,
    "textarea": _text,
    "secret": _text,
    "number": _number,
    "checkbox": _checkbox,
    "select": _select,
    "url": _validated_by(URLValidator(schemes=["http", "https"]), "http(s) URL"),
    "email": _validated_by(EmailValidator(), "email address"),
}


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
        return _COERCERS[spec["type"]](spec, raw)
    except ValueError as exc:
        raise SettingsError(
            f"setting {key!r} ({spec['type']}): {exc}", plugin=plugin, key=key, reason=str(exc)
        ) from None


def is_set(spec: dict, value: Any) -> bool:
    """Return whether a required setting counts as set (a default counts)."""
    if value is None:
        value = spec.get("default")
    return value is not None and value != ""
