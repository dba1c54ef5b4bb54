"""System checks (``manage.py check``) for FEEDBACK_APP."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import BUILTIN_BACKENDS, DEFAULTS, app_settings

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
    errors += _check_retry(app_settings.RETRY)
    errors += _check_positive_ints(["CLAIM_TIMEOUT", "SWEEP_BATCH", "SWEEP_GRACE", "EXPIRE_BATCH"])
    errors += _check_q_cluster()
    return errors


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
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0
    ]
    unknown = [k for k in retry if k not in DEFAULTS["RETRY"]]
    if bad or unknown:
        return [
            Error(
                f"FEEDBACK_APP['RETRY'] has bad values: {', '.join(bad + unknown)}.",
                hint=f"Known keys, each a positive number: {', '.join(DEFAULTS['RETRY'])}.",
                id=f"{PREFIX}.E010",
            )
        ]
    return []


def _check_positive_ints(names: list[str]) -> list:
    return [
        Error(f"FEEDBACK_APP['{name}'] must be a positive integer.", id=f"{PREFIX}.E011")
        for name in names
        if isinstance(getattr(app_settings, name), bool)
        or not isinstance(getattr(app_settings, name), int)
        or getattr(app_settings, name) <= 0
    ]


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
