"""Sanitising HTML that plugins return (widgets, settings pages) with nh3.

Besides removing scripts, event handlers and ``javascript:`` URLs, every class a plugin writes
gets the prefix ``plugin-`` (``class="messages error"`` becomes
``class="plugin-messages plugin-error"``): plugin HTML can never take on the platform's own
classes, so a widget cannot dress up as a platform notice or borrow the console's styles and
behaviour. (So the platform's stylesheet must not style a ``plugin-`` class on a tag plugins
may use; its ``section.plugin-page`` frame is a tag they may not.)
"""

from __future__ import annotations

from functools import cache

import nh3

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "div",
    "em",
    "h3",
    "h4",
    "h5",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "small",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
    "dl",
    "dt",
    "dd",
}
ALLOWED_ATTRIBUTES = {"*": {"class", "title"}, "a": {"href"}, "td": {"colspan"}, "th": {"colspan"}}
CLASS_PREFIX = "plugin-"


def prefixed_classes(value: str) -> str | None:
    """Return the class list ``value`` with ``plugin-`` before every class, or None if empty."""
    classes = [CLASS_PREFIX + name for name in value.split()]
    return " ".join(classes) or None


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    return prefixed_classes(value) if attribute == "class" else value


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        attribute_filter=_filter_attribute,
    )


def sanitize(html: str) -> str:
    """Return ``html`` without scripts, event handlers or ``javascript:`` URLs, classes prefixed."""
    return _cleaner().clean(html)
