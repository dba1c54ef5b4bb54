"""Settings of the example project: SQLite and the django-q2 ORM broker unless the environment
names PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SECRET_KEY", "example-project-insecure-key-change-me")  # noqa: S105
# Off unless asked for (DEBUG=1): `make demo` turns it on for its own processes.
DEBUG = os.environ.get("DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "feedback_app",
    # Two-factor login whose SMS tokens go through feedback_app (docs/otp.md, /account/login/).
    "django_otp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_totp",
    "two_factor",
    "two_factor.plugins.phonenumber",
    "feedback_app.integrations.two_factor",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The two-factor login pages in the admin's look (templates/two_factor/).
        "DIRS": [BASE_DIR / "example_project" / "templates"],
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


def database_from_env() -> dict:
    """DATABASE_URL (anything dj-database-url reads), else a SQLite file beside manage.py."""
    config = dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_health_checks=True
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE takes the write lock when a transaction starts, so concurrent
        # read-modify-write requests wait (up to "timeout" seconds) instead of failing with
        # "database is locked"; WAL lets readers run beside the writer.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        config["CONN_MAX_AGE"] = 0
    else:
        # Persistent connections: the confirm path is a few short statements.
        config["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "60"))
    return config


DATABASES = {"default": database_from_env()}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "build" / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")

# django-q2, configured deliberately (see README, "Workers"):
# - the outbox row is the record, so a lost task costs a sweep interval, never a report;
# - timeout < CLAIM_TIMEOUT < retry: a task is re-delivered only after our claim ran out;
# - max_attempts bounds re-delivery of a task that keeps crashing a worker;
# - save_limit=-1 keeps no successful task rows (250 cut throughput about sixfold here);
#   failures are still saved for the admin.
Q_CLUSTER = {
    "name": "feedback_app",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    "timeout": 60,
    "retry": 120,
    "max_attempts": 3,
    "save_limit": -1,
    "ack_failures": True,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5

# The REST API (docs/api.md): token and session authentication, drf-spectacular's schema
# class, and the rates of the app's throttle scopes.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so an anonymous caller gets 401 with "WWW-Authenticate: Token".
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "feedback_app.send": os.environ.get("THROTTLE_SEND", "120/minute"),
        "feedback_app.confirm": os.environ.get("THROTTLE_CONFIRM", "600/minute"),
    },
}

FEEDBACK_APP = {
    "HASH_KEY": os.environ.get("FEEDBACK_HASH_KEY", "example-project-hash-key-change-me"),
    "PROVIDERS": {
        "locmem": {"BACKEND": "feedback_app.providers.locmem.LocmemProvider"},
    },
    "FEEDBACK_WINDOWS": {"*": 600, "aws_sms": 3600},
    "CLAIM_TIMEOUT": 90,
}

# django-two-factor-auth sends its SMS tokens with feedback_app.send; a verified token confirms
# the message that carried it (feedback_app.integrations.two_factor, docs/otp.md).
TWO_FACTOR_SMS_GATEWAY = "feedback_app.integrations.two_factor.gateway.Gateway"
# django-two-factor-auth sends the admin's login to LOGIN_URL: its own login view, then back.
LOGIN_URL = "two_factor:login"
LOGIN_REDIRECT_URL = "/admin/"
FEEDBACK_APP["TWO_FACTOR"] = {"PROVIDER": os.environ.get("TWO_FACTOR_PROVIDER", "locmem")}

# FEEDBACK_FAKES_URL (set by `make demo`): the real backends of every provider, talking
# through their SDKs to `manage.py feedback_fakes` on this machine instead of the providers.
FAKES_URL = os.environ.get("FEEDBACK_FAKES_URL", "")
if FAKES_URL:
    _aws_fake = {
        "REGION": "us-east-1",
        "ENDPOINT_URL": FAKES_URL,
        "ACCESS_KEY_ID": "fake",
        "SECRET_ACCESS_KEY": "fake",  # noqa: S105
    }
    FEEDBACK_APP["PROVIDERS"].update(
        {
            "twilio": {
                # The credentials feedback_app.testing.twilio_fake accepts.
                "ACCOUNT_SID": "AC" + "0" * 32,
                "AUTH_TOKEN": "fake-auth-token",
                "FROM": "+15005550006",
                "BASE_URL": FAKES_URL,
            },
            "aws_sms": {
                **_aws_fake,
                "CONFIGURATION_SET": "demo",
                "ORIGINATION_IDENTITY": "+12065550100",
                "WEBHOOK_BASIC_AUTH": "sns:demo-webhook-password",
                "SNS_TOPIC_ARNS": ["arn:aws:sns:us-east-1:111122223333:demo-sms-events"],
                # The fakes sign their SNS notifications with a certificate they serve here;
                # honoured with DEBUG only (a system check refuses it otherwise, so without
                # DEBUG the webhook refuses the fakes' notifications).
                "SNS_DEV_CERTIFICATE_URLS": [FAKES_URL.rstrip("/") + "/sns/"] if DEBUG else [],
            },
            "chime": {
                **_aws_fake,
                "CHIME_BEARER": (
                    "arn:aws:chime:us-east-1:111122223333:app-instance/demo/user/otp-bot"
                ),
            },
        }
    )
    # The other providers' fakes, each under its own path, with the credentials they accept.
    from feedback_app.testing.demo_fakes import mounted_provider_settings

    FEEDBACK_APP["PROVIDERS"].update(mounted_provider_settings(FAKES_URL))
    # Where the fakes post status callbacks (the runserver of `make demo`).
    FEEDBACK_APP["PUBLIC_URL"] = os.environ.get("FEEDBACK_PUBLIC_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"feedback_app": {"handlers": ["console"], "level": "INFO"}},
}
