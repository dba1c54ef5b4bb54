"""The app's settings: one dict, ``settings.FEEDBACK_APP``, read through ``app_settings``.

Every key and its default is listed in ``DEFAULTS``; docs/settings.md documents each one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

#: Backend used for a provider key when its entry names no ``BACKEND``.
BUILTIN_BACKENDS: dict[str, str] = {
    "locmem": "feedback_app.providers.locmem.LocmemProvider",
    "twilio": "feedback_app.providers.twilio.TwilioProvider",
    "aws_sms": "feedback_app.providers.aws_sms.AwsSmsProvider",
    "chime": "feedback_app.providers.chime.ChimeProvider",
    "alibaba": "feedback_app.providers.alibaba.AlibabaProvider",
    "infobip": "feedback_app.providers.infobip.InfobipProvider",
    "plivo": "feedback_app.providers.plivo.PlivoProvider",
    "sinch": "feedback_app.providers.sinch.SinchProvider",
    "telesign": "feedback_app.providers.telesign.TelesignProvider",
    "vonage": "feedback_app.providers.vonage.VonageProvider",
}

DEFAULTS: dict[str, Any] = {
    # Secret for the keyed hash (HMAC-SHA256) of recipients. Required; keep it stable, since
    # changing it makes old hashes unmatchable.
    "HASH_KEY": None,
    # Provider key -> {"BACKEND": dotted path, ...backend options}. Keys are the names used
    # everywhere (settings, URLs, admin filters, reports).
    "PROVIDERS": {},
    # Seconds a message has to be confirmed before it expires. Looked up most specific first:
    # "<provider>:<purpose>", "<provider>", "*:<purpose>", "*".
    "FEEDBACK_WINDOWS": {"*": 3600},
    # Region used to parse numbers written without "+<country code>"; None requires E.164.
    "DEFAULT_REGION": None,
    # Outbox delivery of provider calls: exponential backoff with full jitter.
    "RETRY": {
        "BASE_DELAY": 5,  # seconds before the first retry (upper bound of the jitter)
        "MAX_DELAY": 600,  # cap on one wait
        "MAX_AGE": 86400,  # after this many seconds since the call was written: gave_up
        # And after this many attempts. With the other defaults MAX_AGE decides (a wait averages
        # MAX_DELAY / 2, so a day is about 290 attempts); this bounds a call that keeps killing
        # its worker or failing at once.
        "MAX_ATTEMPTS": 500,
    },
    # Seconds a worker holds a claimed call; after that the sweep may hand it to another worker.
    # Must exceed the provider timeout and stay below django-q2's ``retry``.
    "CLAIM_TIMEOUT": 90,
    # Calls the sweep hands to the queue per run; a pending call is only swept once it has waited
    # SWEEP_GRACE seconds, so the sweep does not double the task enqueued on commit.
    "SWEEP_BATCH": 500,
    "SWEEP_GRACE": 30,
    # Messages moved to ``expired`` per statement batch.
    "EXPIRE_BATCH": 5000,
    # Minutes between runs of the periodic jobs: the django-q2 schedules created on migrate, or
    # ``manage.py feedback_worker --periodic`` with django_tasks.
    # refresh_rollups keeps the dashboard's pre-aggregated hours fresh; reports read the messages
    # changed since, so a longer interval costs speed, never correctness.
    "SCHEDULES": {
        "sweep_outbox": 1,
        "expire_overdue": 1,
        "poll_statuses": 1,
        "refresh_rollups": 1,
        "purge_idempotency": 60,
        "block_pumped_prefixes": 1,
    },
    # Messages whose open status is polled, and for how long after sending (seconds).
    "POLL_BATCH": 200,
    "POLL_MAX_AGE": 3600,
    # ``manage.py feedback_sync`` also asks providers that can fetch a status (``fetch_status``)
    # about messages still in one of their ``sync_statuses`` (Twilio: ``sent``, often the last
    # status when a carrier sends no receipt) once this many seconds have passed since sending,
    # for messages sent within SYNC_MAX_AGE seconds.
    "SYNC_STALE_AFTER": 3600,
    "SYNC_MAX_AGE": 172800,
    # Days a message (with its events and provider calls) is kept; ``manage.py feedback_purge``
    # deletes older ones. None keeps everything.
    "RETENTION_DAYS": 90,
    # The django-two-factor-auth SMS gateway (``feedback_app.integrations.two_factor``): the
    # provider key it sends through, the purpose and sender recorded, and the text ({token} is
    # the code).
    "TWO_FACTOR": {
        "PROVIDER": None,
        "PURPOSE": "2fa",
        "SENDER": None,
        "BODY": "Your verification code is {token}",
    },
    # Seconds after its ``Timestamp`` that an SNS message is still accepted by the SNS webhook
    # (plus five minutes of clock skew); older ones are refused as replays. SNS gives up
    # retrying an HTTP/S delivery within 3600 seconds (a hard limit of its delivery policies).
    "SNS_MAX_AGE": 3600,
    # Public base URL of this site ("https://example.com"), used to build webhook URLs given to
    # providers and to check signatures behind a proxy; None: taken from each request.
    "PUBLIC_URL": None,
    # The task queue provider calls are handed to: "django_q" (django-q2) or "django_tasks"
    # (Django's django.tasks, or the django-tasks backport on Django 5.2). See queue.py.
    "QUEUE": "django_q",
    # QUEUE "django_q": the cluster (queue) name for the app's tasks and schedules; None: the
    # cluster's default.
    "DJANGO_Q_CLUSTER": None,
    # QUEUE "django_tasks": the alias in TASKS of the backend the deliver task is enqueued on.
    "TASKS_BACKEND": "default",
    # Where the confirmation link (``c/<token>/``) sends the recipient: a URL or a URL name.
    "CONFIRM_REDIRECT_URL": "/",
    # Where it sends them when the token is bad or the window has closed; None: a plain
    # 400/404 page.
    "CONFIRM_INVALID_URL": None,
    # Seconds an ``Idempotency-Key`` is remembered (its first response is replayed).
    "IDEMPOTENCY_TTL": 86400,
    # Seconds after which a key whose first request never finished (its process died) is
    # taken over by a retry instead of answering 409. Keep it above the longest request.
    "IDEMPOTENCY_CLAIM_TIMEOUT": 300,
    # The database alias (a key of settings.DATABASES) the reports read: the dashboard, the
    # stats API, feedback_report and the alerts. Point it at a read replica to keep report reads
    # off the primary; writes (services, the rollup refresh) always go to "default".
    "REPORTS_DATABASE": "default",
    # The dashboard's alerts: a country or sender whose conversion rate over the last 24 hours
    # is below its own rate over the 30 days before by more than DROP (0.3: under 70 % of it),
    # when both periods have at least MIN_VOLUME messages (fewer are noise).
    "ALERTS": {"MIN_VOLUME": 50, "DROP": 0.3},
    # The SMS-pumping guard that send() consults before calling a provider (docs/guard.md).
    # A rate limit is [max sends, window seconds] or None (off); windows are fixed, counted in
    # the CACHE alias with atomic increments (Redis in production).
    "GUARD": {
        "ENABLED": True,
        "RECIPIENT_LIMIT": [5, 600],
        "VERIFICATION_LIMIT": [5, 86400],
        "CLIENT_LIMIT": None,
        "PREFIX_LIMIT": None,
        "COUNTRY_LIMIT": None,
        # Purpose (or "*") -> ISO country codes; a purpose's own entry replaces "*".
        "ALLOWED_COUNTRIES": {},
        "BLOCKED_COUNTRIES": {},
        # Automatic blocks: a prefix with at least MIN_ATTEMPTS sends in the last WINDOW seconds
        # converting below MAX_CONVERSION, or below its own 30-day rate by more than DROP, is
        # blocked for BLOCK_FOR seconds.
        "AUTO_BLOCK": True,
        "WINDOW": 3600,
        "MIN_ATTEMPTS": 100,
        "MAX_CONVERSION": 0.05,
        "DROP": 0.8,
        "BLOCK_FOR": 86400,
        # Sends younger than this many seconds are left out of the conversion (not yet typed).
        "SETTLE": 60,
        "CACHE": "default",
        # Seconds a process keeps its copy of the active blocks before reading them again.
        "BLOCKS_REFRESH": 5,
    },
}


class AppSettings:
    """Attribute access to FEEDBACK_APP merged over DEFAULTS, cached until settings change."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        user = getattr(settings, "FEEDBACK_APP", {}) or {}
        # Not a dict: the defaults apply, and the system checks report it (E003).
        return user if isinstance(user, dict) else {}

    def merged(self) -> dict[str, Any]:
        if self._cache is None:
            merged = dict(DEFAULTS)
            user = self.user_settings
            merged.update(user)
            # Nested dicts merge one level deep so a project can override one retry knob.
            # A value that is not a dict is kept as given, for the system checks to report.
            for key in ("RETRY", "SCHEDULES", "TWO_FACTOR", "GUARD"):
                value = user.get(key, {})
                merged[key] = {**DEFAULTS[key], **value} if isinstance(value, dict) else value
            self._cache = merged
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(name)
        return self.merged()[name]

    def reload(self) -> None:
        self._cache = None


app_settings = AppSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "FEEDBACK_APP":
        app_settings.reload()


setting_changed.connect(_reload)


def feedback_window(provider: str, purpose: str) -> int:
    """Seconds allowed for confirming a message of this provider and purpose."""
    windows = app_settings.FEEDBACK_WINDOWS
    for key in (f"{provider}:{purpose}", provider, f"*:{purpose}", "*"):
        if key in windows:
            return int(windows[key])
    return int(DEFAULTS["FEEDBACK_WINDOWS"]["*"])
