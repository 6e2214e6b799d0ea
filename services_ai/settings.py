"""Django settings of the Services AI platform.

Embedded defaults need no setup: SQLite in ``SERVICES_AI_HOME`` (default ``./var``). Scale-out
is configuration: ``DATABASE_URL=postgresql://user@host:5432/name``.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from services_ai import conf
from services_ai.events.conf import parse_budgets

HOME = conf.home()
conf.add_plugin_site_dirs()

SECRET_KEY = conf.secret_key()
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "services_ai",
    "services_ai.leads",
    "services_ai.bookings",
    "services_ai.events",
    "services_ai.dashboard",
    "plugin_registry",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Static files, answered before sessions and auth; below the CSP so they carry it too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Every response carries a strict Content-Security-Policy (django-csp, see the README): scripts
# and styles only from the platform's own files, nothing inline, no eval, no plugins or frames,
# forms only to the platform. htmx is configured to match in base.html (no inline indicator
# style, no eval, no scripts in swapped content).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
# Django's defaults, spelled out: they are part of the platform's hardening.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

ROOT_URLCONF = "services_ai.urls"
WSGI_APPLICATION = "services_ai.wsgi.application"
ASGI_APPLICATION = "services_ai.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "plugin_registry.console.context.quarantined_plugins",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """Return a Django ``DATABASES`` entry for a ``postgresql://`` or ``sqlite:///`` URL."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
        }
    if parts.scheme == "sqlite":
        return sqlite_database(unquote(parts.path) or str(HOME / "services_ai.sqlite3"))
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unsupported scheme {parts.scheme!r}; use postgresql:// or sqlite:///"
    )


def sqlite_database(path: str) -> dict:
    # WAL and IMMEDIATE transactions let a web process and workers write side by side.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": str(HOME / "test_services_ai.sqlite3")},
    }


DATABASES = {
    "default": database_from_url(os.environ["DATABASE_URL"])
    if os.environ.get("DATABASE_URL")
    else sqlite_database(str(HOME / "services_ai.sqlite3"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Fan-outs, deliveries and console operations (install, upgrade, ...) have queues of their own,
# so operators can watch and size them apart.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "events", "deliveries", "operations"],
    }
}

# Event delivery (see services_ai/events/conf.py for every key and its default).
SERVICES_AI_EVENTS = {
    "TIME_BUDGET": conf.from_env("SERVICES_AI_TIME_BUDGET", "30", parse_budgets),
    "KILL_GRACE": conf.from_env("SERVICES_AI_KILL_GRACE", "5", conf.seconds),
    "MAX_ATTEMPTS": conf.from_env("SERVICES_AI_MAX_ATTEMPTS", "8", int),
    "BACKOFF_BASE": conf.from_env("SERVICES_AI_BACKOFF_BASE", "5", conf.seconds),
    "BACKOFF_MAX": conf.from_env("SERVICES_AI_BACKOFF_MAX", "3600", conf.seconds),
    "STALE_MARGIN": conf.from_env("SERVICES_AI_STALE_MARGIN", "10", conf.seconds),
    "RETENTION_DAYS": conf.from_env("SERVICES_AI_RETENTION_DAYS", "14", conf.seconds),
    "PLUGIN_CONCURRENCY": conf.from_env("SERVICES_AI_PLUGIN_CONCURRENCY", "0", int),
}

# Quarantine of plugins that crash or stall processes (plugin_registry/registry/quarantine.py).
SERVICES_AI_QUARANTINE = {
    "STRIKES": conf.from_env("SERVICES_AI_QUARANTINE_STRIKES", "3", int),
    "WINDOW": conf.from_env("SERVICES_AI_QUARANTINE_WINDOW", "600", conf.seconds),
    "IMPORT_BUDGET": conf.from_env("SERVICES_AI_IMPORT_BUDGET", "10", conf.seconds),
    "SYNC_BUDGET": conf.from_env(
        "SERVICES_AI_SYNC_BUDGET", "default=30,dashboard_widget=5,settings_page=5", parse_budgets
    ),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# `services-ai serve` runs collectstatic into it; WhiteNoise serves it (gzip variants included),
# with ETag and a short max-age: the names carry no hash, so no manifest is needed in tests
# and development.
STATIC_ROOT = HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing folder in every process
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "services_ai": {
            "handlers": ["console"],
            "level": os.environ.get("SERVICES_AI_LOG_LEVEL", "INFO"),
        },
        "django_tasks_db": {"handlers": ["console"], "level": "WARNING"},
        "plugin_registry": {
            "handlers": ["console"],
            "level": os.environ.get("SERVICES_AI_LOG_LEVEL", "INFO"),
        },
    },
}
