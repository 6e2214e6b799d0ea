"""Sanitising HTML that plugins return (widgets, settings pages) with nh3."""

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


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def sanitize(html: str) -> str:
    """Return ``html`` without scripts, event handler attributes or ``javascript:`` URLs."""
    return _cleaner().clean(html)
