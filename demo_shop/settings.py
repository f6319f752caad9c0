"""Settings for the demo shop, a Django project that uses rabbitbus."""

import logging
import os
from pathlib import Path
from typing import Any

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")  # noqa: S105
# Off unless asked for (scripts/demo.sh asks): error pages show code and settings.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rabbitbus",
    "demo_shop.catalog",
    "demo_shop.orders",
    "demo_shop.inventory",
    "demo_shop.billing",
    "demo_shop.tutorial",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS, the dashboard's JS) served by the app itself,
    # under daphne as under any WSGI server: https://whitenoise.readthedocs.io/
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Error pages and error e-mails never show the password inside a RABBITBUS URL.
DEFAULT_EXCEPTION_REPORTER_FILTER = "rabbitbus.error_reports.ExceptionReporterFilter"

ROOT_URLCONF = "demo_shop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "demo_shop" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demo_shop.wsgi.application"
ASGI_APPLICATION = "demo_shop.asgi.application"


# Web, workers and relay write from separate processes: take the write lock at
# BEGIN (no deadlock on upgrade), wait for it, let readers in.
_SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
# DATABASE_URL as https://github.com/jazzband/dj-database-url reads it
# (postgres://user:password@host:port/name, sqlite:////absolute/path.sqlite3, ...).
_DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES: dict[str, dict[str, Any]] = {"default": dict(dj_database_url.parse(_DATABASE_URL))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = _SQLITE_OPTIONS
# Workers handle messages one after another: keep the connection, check it before use.
DATABASES["default"].update(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# `manage.py collectstatic` (scripts/demo.sh, the Dockerfile) gathers them here for WhiteNoise.
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# RABBITBUS_URLS: the nodes of a cluster, comma separated (docker-compose.yml's profile
# `cluster`, scripts/cluster.sh urls); tried in a per-process shuffled order.
_RABBITBUS_URLS = [url for url in os.environ.get("RABBITBUS_URLS", "").split(",") if url.strip()]
_BROKER: dict[str, object] = (
    {"URLS": _RABBITBUS_URLS}
    if _RABBITBUS_URLS
    else {"URL": os.environ.get("RABBITBUS_URL", "amqp://guest:guest@127.0.0.1:5672/")}
)

RABBITBUS: dict[str, Any] = {
    "CONNECTIONS": {
        "default": {
            **_BROKER,
            "CONNECTION_NAME": "demo_shop",
        },
    },
    "APP_ID": "demo_shop",
    "EXCHANGES": {"shop": {"TYPE": "topic"}},
    # Each step of an order is one outbox hop: keep an idle relay's wait short.
    "OUTBOX": {"IDLE_INTERVAL": 0.25},
    # The dashboard's rates, unacked counts and charts come from the management API
    # (scripts/demo.sh enables the plugin; docker-compose.yml's broker image has it).
    "MANAGEMENT": {
        "URL": os.environ.get("RABBITBUS_MANAGEMENT_URL", "http://127.0.0.1:15672"),
        "USER": "guest",
        "PASSWORD": os.environ.get("RABBITBUS_MANAGEMENT_PASSWORD", "guest"),
    },
}

# Background tasks (django.tasks) on RabbitMQ: the invoice email is one (billing/tasks.py),
# enqueued when the saga confirms an order, run by the billing worker (`rabbit_consume
# billing --tasks`), its result stored in the database and shown on the order page.
TASKS = {
    "default": {
        "BACKEND": "rabbitbus.tasks.RabbitMQBackend",
        "QUEUES": ["default"],
    }
}

# Invoices are emailed; the demo writes them to files (one per email) instead of sending them.
_MAIL_DIR = os.environ.get("DJANGO_EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
if django.VERSION >= (6, 1):
    MAILERS = {
        "default": {
            "BACKEND": "demo_shop.mail.EmailBackend",
            "OPTIONS": {"file_path": _MAIL_DIR},
        }
    }
else:
    EMAIL_BACKEND = "demo_shop.mail.EmailBackend"
    EMAIL_FILE_PATH = _MAIL_DIR
DEFAULT_FROM_EMAIL = "shop@example.com"


def _not_daphne_http2_notice(record: logging.LogRecord) -> bool:
    # daphne says at every start that HTTP/2 is off (it needs Twisted's http2 and tls
    # extras, and TLS, which the demo does not terminate): noise for a demo user.
    return not record.getMessage().startswith("HTTP/2 support not enabled")


# One format for every process (workers, relay, RPC server, daphne): everything goes to
# the root logger's one handler. Configuring the root replaces the handler daphne's
# command line installs before Django starts, so its lines carry the logger name too.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "no_http2_notice": {
            "()": "django.utils.log.CallbackFilter",
            "callback": _not_daphne_http2_notice,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "daphne": {"level": "INFO"},
        "daphne.server": {"filters": ["no_http2_notice"]},
        "rabbitbus": {"level": "INFO"},
        "demo_shop": {"level": "INFO"},
        # pika logs every connection step at INFO; rabbitbus logs what matters.
        "pika": {"level": "WARNING"},
    },
}

# Prometheus metrics (docker-compose.yml turns them on): every process counts, the
# workers, the RPC server and the relay serve /metrics on RABBITBUS_METRICS_PORT, the
# web server at /metrics (demo_shop/urls.py). docs/observability.md has the dashboard.
if os.environ.get("RABBITBUS_METRICS", "0") == "1":
    _metrics_port = os.environ.get("RABBITBUS_METRICS_PORT")
    RABBITBUS["METRICS"] = {"PORT": int(_metrics_port) if _metrics_port else None}

# Traces over OTLP/HTTP (e.g. to Jaeger) only when an endpoint is given: without it,
# no OpenTelemetry SDK is imported and rabbitbus adds no trace headers.
if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
    from demo_shop import telemetry

    telemetry.export_traces()
    # A span per request, so that a checkout is one trace from the view to the handlers.
    MIDDLEWARE = ["demo_shop.telemetry.RequestSpanMiddleware", *MIDDLEWARE]
