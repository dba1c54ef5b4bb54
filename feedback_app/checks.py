"""System checks (``manage.py check``) for FEEDBACK_APP."""

from __future__ import annotations

import re
from importlib import import_module
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import BUILTIN_BACKENDS, DEFAULTS, app_settings
from .queue import DJANGO_Q, DJANGO_TASKS, QUEUES, tasks_api
from .schedules import SCHEDULES

PREFIX = "feedback_app"


@register(Tags.security)
def check_hash_key(app_configs: Any = None, **kwargs: Any) -> list:
    key = app_settings.HASH_KEY
    if not key:
        return [
            Error(
                "FEEDBACK_APP['HASH_KEY'] is not set.",
                hint="Set it to a long random secret (recipients are stored as an HMAC with it); "
                "keep it stable across deploys.",
                id=f"{PREFIX}.E001",
            )
        ]
    if not isinstance(key, str | bytes) or len(key) < 16:
        return [
            Error(
                "FEEDBACK_APP['HASH_KEY'] must be a string of at least 16 characters.",
                hint="Generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id=f"{PREFIX}.E002",
            )
        ]
    return []


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    errors: list = []
    user = getattr(settings, "FEEDBACK_APP", {})
    if not isinstance(user, dict):
        return [Error("FEEDBACK_APP must be a dict.", id=f"{PREFIX}.E003")]
    for key in user:
        if key not in DEFAULTS:
            errors.append(
                Error(
                    f"FEEDBACK_APP has an unknown key {key!r}.",
                    hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                    id=f"{PREFIX}.E004",
                )
            )
    errors += _check_providers(app_settings.PROVIDERS)
    errors += _check_windows(app_settings.FEEDBACK_WINDOWS)
    errors += _check_window_keys(app_settings.FEEDBACK_WINDOWS, app_settings.PROVIDERS)
    errors += _check_retry(app_settings.RETRY)
    errors += _check_positive_ints(POSITIVE_INTS)
    errors += _check_schedules(app_settings.SCHEDULES)
    errors += _check_default_region(app_settings.DEFAULT_REGION)
    errors += _check_retention(app_settings.RETENTION_DAYS)
    errors += _check_two_factor(app_settings.TWO_FACTOR, app_settings.PROVIDERS)
    errors += _check_alerts(app_settings.ALERTS)
    errors += _check_reports_database(app_settings.REPORTS_DATABASE)
    errors += _check_queue()
    errors += _check_guard(app_settings.GUARD)
    return errors


#: Settings that must be positive integers (E011).
POSITIVE_INTS = [
    "CLAIM_TIMEOUT",
    "SWEEP_BATCH",
    "SWEEP_GRACE",
    "EXPIRE_BATCH",
    "POLL_BATCH",
    "POLL_MAX_AGE",
    "SYNC_STALE_AFTER",
    "SYNC_MAX_AGE",
    "IDEMPOTENCY_TTL",
    "IDEMPOTENCY_CLAIM_TIMEOUT",
    "SNS_MAX_AGE",
]

_SLUG = re.compile(r"^[-a-zA-Z0-9_]+\Z")


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_providers(providers: Any) -> list:
    if not isinstance(providers, dict) or not providers:
        return [
            Error(
                "FEEDBACK_APP['PROVIDERS'] must name at least one provider.",
                hint='For example {"locmem": {}} for tests, or {"twilio": {...}}.',
                id=f"{PREFIX}.E005",
            )
        ]
    errors = []
    for key, config in providers.items():
        if not isinstance(config, dict):
            errors.append(Error(f"Provider {key!r}: settings must be a dict.", id=f"{PREFIX}.E006"))
            continue
        path = config.get("BACKEND") or BUILTIN_BACKENDS.get(key)
        if not path:
            errors.append(
                Error(
                    f"Unknown provider {key!r}.",
                    hint=f"Use one of {', '.join(BUILTIN_BACKENDS)} "
                    "or set BACKEND to a dotted path.",
                    id=f"{PREFIX}.E007",
                )
            )
            continue
        try:
            backend = import_string(path)
        except ImportError as exc:
            errors.append(
                Error(
                    f"Provider {key!r}: cannot import backend {path!r} ({exc}).",
                    hint="Install the extra it needs, e.g. pip install 'django-feedback-app[aws]'.",
                    id=f"{PREFIX}.E008",
                )
            )
            continue
        errors += backend.check_config(key, config)
    return errors


def _check_windows(windows: Any) -> list:
    if not isinstance(windows, dict) or any(
        not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in windows.values()
    ):
        return [
            Error(
                "FEEDBACK_APP['FEEDBACK_WINDOWS'] must map keys to positive integers (seconds).",
                hint='For example {"*": 3600, "twilio:otp": 600}.',
                id=f"{PREFIX}.E009",
            )
        ]
    return []


def _check_retry(retry: Any) -> list:
    if not isinstance(retry, dict):
        return [Error("FEEDBACK_APP['RETRY'] must be a dict.", id=f"{PREFIX}.E010")]
    bad = [
        k
        for k, v in retry.items()
        if isinstance(v, bool)
        or not isinstance(v, int | float)
        or v <= 0
        # A count of attempts: 2.5 would silently mean 3.
        or (k == "MAX_ATTEMPTS" and not isinstance(v, int))
    ]
    unknown = [k for k in retry if k not in DEFAULTS["RETRY"]]
    if bad or unknown:
        return [
            Error(
                f"FEEDBACK_APP['RETRY'] has bad values: {', '.join(bad + unknown)}.",
                hint=f"Known keys, each a positive number: {', '.join(DEFAULTS['RETRY'])}; "
                "MAX_ATTEMPTS a whole number.",
                id=f"{PREFIX}.E010",
            )
        ]
    return []


def _check_positive_ints(names: list[str]) -> list:
    return [
        Error(
            f"FEEDBACK_APP['{name}'] must be a positive integer.",
            hint=f"Leave it out for the default ({DEFAULTS[name]}).",
            id=f"{PREFIX}.E011",
        )
        for name in names
        if not _is_positive_int(getattr(app_settings, name))
    ]


def _check_window_keys(windows: Any, providers: Any) -> list:
    """Keys are "*", "<provider>", "*:<purpose>" or "<provider>:<purpose>" (conf.feedback_window).

    A malformed key never matches (an error). One naming a provider that is neither configured
    nor built in is most likely a typo ("twillio"), and its messages silently get another
    window (a warning). A built-in provider not configured here is fine: history recorded for
    it (the demo's) still uses its window.
    """
    if not isinstance(windows, dict) or not isinstance(providers, dict) or not providers:
        return []  # E009, E005
    malformed, unconfigured = [], []
    for key in windows:
        if not isinstance(key, str):
            malformed.append(repr(key))
            continue
        provider, colon, purpose = key.partition(":")
        if not provider or (colon and not _SLUG.match(purpose)):
            malformed.append(repr(key))
        elif provider != "*" and provider not in providers and provider not in BUILTIN_BACKENDS:
            unconfigured.append(repr(key))
    hint = (
        'Keys are "*", "<provider>", "*:<purpose>" or "<provider>:<purpose>", with a provider '
        "key of PROVIDERS and a purpose slug."
    )
    issues: list = []
    if malformed:
        issues.append(
            Error(
                f"FEEDBACK_APP['FEEDBACK_WINDOWS'] has malformed keys: {', '.join(malformed)}.",
                hint=hint,
                id=f"{PREFIX}.E012",
            )
        )
    if unconfigured:
        issues.append(
            Warning(
                "FEEDBACK_APP['FEEDBACK_WINDOWS'] has keys naming a provider that is neither "
                f"in PROVIDERS nor built in: {', '.join(unconfigured)}.",
                hint=hint,
                id=f"{PREFIX}.W004",
            )
        )
    return issues


def _check_schedules(schedules: Any) -> list:
    known = [name.removeprefix("feedback_app.") for name in SCHEDULES]
    hint = f"A dict of schedule name to minutes (a positive integer); names: {', '.join(known)}."
    if not isinstance(schedules, dict):
        return [Error("FEEDBACK_APP['SCHEDULES'] must be a dict.", hint=hint, id=f"{PREFIX}.E013")]
    bad = [
        repr(name)
        for name, minutes in schedules.items()
        if name not in known or not _is_positive_int(minutes)
    ]
    if not bad:
        return []
    return [
        Error(
            f"FEEDBACK_APP['SCHEDULES'] has bad entries: {', '.join(bad)}.",
            hint=hint,
            id=f"{PREFIX}.E013",
        )
    ]


def _check_default_region(region: Any) -> list:
    if region is None or region in phonenumbers.SUPPORTED_REGIONS:
        return []
    return [
        Error(
            f"FEEDBACK_APP['DEFAULT_REGION'] {region!r} is not a region phonenumbers knows.",
            hint='An upper-case ISO 3166 code such as "US" or "GB", or None to require E.164 '
            "numbers (+<country code>...).",
            id=f"{PREFIX}.E014",
        )
    ]


def _check_retention(days: Any) -> list:
    if days is None or _is_positive_int(days):
        return []
    return [
        Error(
            "FEEDBACK_APP['RETENTION_DAYS'] must be a positive integer or None.",
            hint="Days a message is kept before feedback_purge deletes it; None keeps everything.",
            id=f"{PREFIX}.E015",
        )
    ]


def _check_two_factor(config: Any, providers: Any) -> list:
    hint = (
        'For example {"PROVIDER": "twilio", "PURPOSE": "2fa", "BODY": "Your code is {token}"}: '
        "PROVIDER a key of PROVIDERS (or None when the two-factor gateway is not used), "
        "PURPOSE a slug, SENDER a string or None, BODY a string with {token}."
    )
    if not isinstance(config, dict):
        return [Error("FEEDBACK_APP['TWO_FACTOR'] must be a dict.", hint=hint, id=f"{PREFIX}.E016")]
    problems = [f"unknown key {key!r}" for key in config if key not in DEFAULTS["TWO_FACTOR"]]
    provider = config.get("PROVIDER")
    # No valid PROVIDERS at all is E005 already.
    configured = providers if isinstance(providers, dict) and providers else None
    if provider is not None and not isinstance(provider, str):
        problems.append(f"PROVIDER {provider!r} is not a provider key")
    elif provider is not None and configured is not None and provider not in configured:
        problems.append(f"PROVIDER {provider!r} is not configured")
    purpose = config.get("PURPOSE")
    if not isinstance(purpose, str) or not _SLUG.match(purpose):
        problems.append(f"PURPOSE {purpose!r} is not a slug")
    sender = config.get("SENDER")
    if sender is not None and not isinstance(sender, str):
        problems.append("SENDER is not a string")
    body = config.get("BODY")
    if not isinstance(body, str) or "{token}" not in body:
        problems.append("BODY is not a string with {token}")
    elif not _formats(body):
        problems.append("BODY has other {placeholders} than {token}")
    if not problems:
        return []
    return [
        Error(f"FEEDBACK_APP['TWO_FACTOR']: {'; '.join(problems)}.", hint=hint, id=f"{PREFIX}.E016")
    ]


def _formats(body: str) -> bool:
    try:
        body.format(token="000000")  # noqa: S106 - a placeholder, not a secret
    except (KeyError, IndexError, ValueError):
        return False
    return True


def _check_alerts(alerts: Any) -> list:
    hint = (
        'For example {"MIN_VOLUME": 50, "DROP": 0.3}: MIN_VOLUME a positive integer (messages '
        "per period), DROP a fraction between 0 and 1 (0.3: alert under 70 % of the baseline)."
    )
    if alerts is None:  # the defaults (alerts.py reads None as {})
        return []
    if not isinstance(alerts, dict):
        return [Error("FEEDBACK_APP['ALERTS'] must be a dict.", hint=hint, id=f"{PREFIX}.E017")]
    problems = [f"unknown key {key!r}" for key in alerts if key not in DEFAULTS["ALERTS"]]
    if "MIN_VOLUME" in alerts and not _is_positive_int(alerts["MIN_VOLUME"]):
        problems.append(f"MIN_VOLUME {alerts['MIN_VOLUME']!r}")
    if "DROP" in alerts:
        drop = alerts["DROP"]
        if isinstance(drop, bool) or not isinstance(drop, int | float) or not 0 < drop < 1:
            problems.append(f"DROP {drop!r}")
    if not problems:
        return []
    return [
        Error(
            f"FEEDBACK_APP['ALERTS'] has bad values: {', '.join(problems)}.",
            hint=hint,
            id=f"{PREFIX}.E017",
        )
    ]


def _check_reports_database(alias: Any) -> list:
    """The alias the reports read (E040) must be one of settings.DATABASES."""
    if isinstance(alias, str) and alias in settings.DATABASES:
        return []
    return [
        Error(
            f"FEEDBACK_APP['REPORTS_DATABASE'] is {alias!r}, not an alias in DATABASES.",
            hint=(
                f'Use one of {", ".join(map(repr, settings.DATABASES))}: "default" (the '
                "default), or the alias of a read replica of it (docs/deployment.md)."
            ),
            id=f"{PREFIX}.E040",
        )
    ]


@register()
def check_sqlite_transaction_mode(app_configs: Any = None, **kwargs: Any) -> list:
    """On SQLite, confirmations are read-modify-write transactions: DEFERRED ones that collide
    fail with "database is locked" at once instead of waiting for the lock."""
    config = settings.DATABASES.get("default", {})
    if "sqlite" not in str(config.get("ENGINE", "")):
        return []
    mode = str((config.get("OPTIONS") or {}).get("transaction_mode") or "").upper()
    if mode in ("IMMEDIATE", "EXCLUSIVE"):  # both take the write lock at BEGIN
        return []
    return [
        Warning(
            "The default database is SQLite without OPTIONS['transaction_mode'] = 'IMMEDIATE'.",
            hint='Set DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", '
            '"timeout": 20}: without it, concurrent confirmations fail with "database is '
            'locked" (README, "Add it to your project").',
            id=f"{PREFIX}.W003",
        )
    ]


def _check_queue() -> list:
    """The chosen queue is installed and can run the deliver task (E018, W018)."""
    queue = app_settings.QUEUE
    if queue == DJANGO_Q:
        return _check_django_q() + _check_q_cluster()
    if queue == DJANGO_TASKS:
        return _check_django_tasks()
    return [
        Error(
            f"FEEDBACK_APP['QUEUE'] is {queue!r}, not a queue the app knows.",
            hint=f"One of {', '.join(repr(q) for q in QUEUES)}. A django-q2 cluster name (what "
            "QUEUE used to hold) now goes in DJANGO_Q_CLUSTER.",
            id=f"{PREFIX}.E018",
        )
    ]


def _check_django_q() -> list:
    from django.apps import apps

    cluster = app_settings.DJANGO_Q_CLUSTER
    errors = []
    if not apps.is_installed("django_q"):
        errors.append(
            Error(
                "FEEDBACK_APP['QUEUE'] is 'django_q' but django_q is not in INSTALLED_APPS.",
                hint="Add 'django_q' to INSTALLED_APPS (pip install django-q2), or set QUEUE to "
                "'django_tasks' to use django.tasks instead.",
                id=f"{PREFIX}.E018",
            )
        )
    if cluster is not None and (not isinstance(cluster, str) or not cluster):
        errors.append(
            Error(
                "FEEDBACK_APP['DJANGO_Q_CLUSTER'] must be a cluster name or None.",
                hint="None uses the cluster's default queue.",
                id=f"{PREFIX}.E018",
            )
        )
    return errors


def _check_django_tasks() -> list:
    alias = app_settings.TASKS_BACKEND
    try:
        api = tasks_api()
    except ImportError:
        return [
            Error(
                "FEEDBACK_APP['QUEUE'] is 'django_tasks' but neither django.tasks (Django 6) "
                "nor the django-tasks backport can be imported.",
                hint="On Django 5.2: pip install django-tasks (and a backend, e.g. "
                "django-tasks-db); or set QUEUE to 'django_q'.",
                id=f"{PREFIX}.E018",
            )
        ]
    try:
        backend = api.task_backends[alias]
    except Exception as exc:  # unknown alias, a backend that cannot be imported or built
        return [
            Error(
                f"FEEDBACK_APP['TASKS_BACKEND'] {alias!r} is not a usable TASKS backend ({exc}).",
                hint="Name an alias of the TASKS setting whose BACKEND can be imported.",
                id=f"{PREFIX}.E018",
            )
        ]
    try:
        from .tasks_django import deliver_call

        deliver_call.using(backend=alias)  # the backend's own validation of the task
    except Exception as exc:
        return [
            Error(
                f"The TASKS backend {alias!r} refuses the app's deliver task ({exc}).",
                hint="The task goes to the backend's 'default' queue, with one argument: "
                "include 'default' in the backend's QUEUES.",
                id=f"{PREFIX}.E018",
            )
        ]
    dummy = import_module(f"{api.__name__}.backends.dummy").DummyBackend
    if isinstance(backend, dummy):
        return [
            Warning(
                f"The TASKS backend {alias!r} is a DummyBackend: it stores tasks and never runs "
                "them, so no conversion is reported to a provider.",
                hint="Configure a backend with a worker (e.g. django_tasks_db.DatabaseBackend "
                "and manage.py db_worker), or ImmediateBackend to run calls in the process.",
                id=f"{PREFIX}.W018",
            )
        ]
    return []


def _check_q_cluster() -> list:
    """django-q2 must retry a task only after our claim on its call has run out."""
    q = getattr(settings, "Q_CLUSTER", {}) or {}
    if q.get("sync"):
        return []
    timeout, retry = q.get("timeout"), q.get("retry", 60)
    warnings = []
    if timeout is not None and retry <= timeout:
        warnings.append(
            Warning(
                "Q_CLUSTER['retry'] should be larger than Q_CLUSTER['timeout'].",
                hint="Otherwise django-q2 hands a task to a second worker while the first runs.",
                id=f"{PREFIX}.W001",
            )
        )
    if timeout is not None and timeout >= app_settings.CLAIM_TIMEOUT:
        warnings.append(
            Warning(
                "FEEDBACK_APP['CLAIM_TIMEOUT'] should be larger than Q_CLUSTER['timeout'].",
                hint="A worker's claim on a provider call must outlive the task that holds it.",
                id=f"{PREFIX}.W002",
            )
        )
    return warnings


_GUARD_LIMITS = (
    "RECIPIENT_LIMIT",
    "VERIFICATION_LIMIT",
    "CLIENT_LIMIT",
    "PREFIX_LIMIT",
    "COUNTRY_LIMIT",
)


def _guard_problems(guard: dict) -> list[str]:
    problems = [f"unknown key {key!r}" for key in guard if key not in DEFAULTS["GUARD"]]
    for key in ("ENABLED", "AUTO_BLOCK"):
        if not isinstance(guard.get(key), bool):
            problems.append(f"{key} {guard.get(key)!r} (True or False)")
    for key in _GUARD_LIMITS:
        rule = guard.get(key)
        if rule is not None and not (
            isinstance(rule, list | tuple) and len(rule) == 2 and all(map(_is_positive_int, rule))
        ):
            problems.append(f"{key} {rule!r} ([max sends, window seconds] or None)")
    for key in ("ALLOWED_COUNTRIES", "BLOCKED_COUNTRIES"):
        rules = guard.get(key)
        if not isinstance(rules, dict) or not all(
            isinstance(codes, list | tuple)
            and all(code in phonenumbers.SUPPORTED_REGIONS for code in codes)
            for codes in rules.values()
        ):
            problems.append(f"{key} {rules!r} (purpose or '*' -> ISO country codes)")
    for key in ("WINDOW", "MIN_ATTEMPTS", "BLOCK_FOR", "BLOCKS_REFRESH"):
        if not _is_positive_int(guard.get(key)):
            problems.append(f"{key} {guard.get(key)!r} (a positive integer)")
    settle = guard.get("SETTLE")
    if not isinstance(settle, int) or isinstance(settle, bool) or settle < 0:
        problems.append(f"SETTLE {settle!r} (seconds, 0 or more)")
    elif _is_positive_int(guard.get("WINDOW")) and settle >= guard["WINDOW"]:
        problems.append(f"SETTLE {settle!r} (less than WINDOW)")
    for key in ("MAX_CONVERSION", "DROP"):
        value = guard.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            problems.append(f"{key} {value!r} (a fraction from 0 to 1)")
    return problems


def _check_guard(guard: Any) -> list:
    hint = "See docs/settings.md (GUARD) and docs/guard.md."
    if not isinstance(guard, dict):
        return [Error("FEEDBACK_APP['GUARD'] must be a dict.", hint=hint, id=f"{PREFIX}.E030")]
    problems = _guard_problems(guard)
    if problems:
        return [
            Error(
                f"FEEDBACK_APP['GUARD'] has bad values: {'; '.join(problems)}.",
                hint=hint,
                id=f"{PREFIX}.E030",
            )
        ]
    alias = guard["CACHE"]
    caches = getattr(settings, "CACHES", {"default": {}})
    if alias not in caches:
        return [
            Error(
                f"FEEDBACK_APP['GUARD']['CACHE'] names no cache: {alias!r}.",
                hint=f"Name an alias of CACHES ({', '.join(caches)}).",
                id=f"{PREFIX}.E031",
            )
        ]
    backend = caches[alias].get("BACKEND", "")
    if guard["ENABLED"] and backend.endswith("DummyCache"):
        return [
            Warning(
                f"The guard's cache {alias!r} is a DummyCache: its rate limits never count.",
                hint="Point GUARD['CACHE'] at a shared cache (Redis) or turn the limits off.",
                id=f"{PREFIX}.W030",
            )
        ]
    return []
